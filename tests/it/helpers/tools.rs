//! Outside tools the deployment tests drive (cargo-lambda, prometheus, promtool), found where
//! `scripts/tools` installed them. A missing tool fails the test, naming the installer:
//! a test that skipped would hide a broken deployment path.

use std::path::PathBuf;

/// The tool `name`: the path in `var` (what `eval "$(scripts/tools env)"` exports, and
/// `make test` does), else `name` on `PATH`; panics saying how to install it.
pub fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).map(PathBuf::from) {
        assert!(
            p.is_file(),
            "{var}={} is not a file: re-run `scripts/tools up`",
            p.display()
        );
        return p;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "{name} not found: run `make test`, or `eval \"$(scripts/tools env)\"` (installs pinned \
             cargo-lambda, cfn-lint, prometheus and promtool into the cache and exports {var}) before cargo test"
        )
    })
}

/// `cargo-lambda` (run as `cargo-lambda lambda SUBCOMMAND`).
pub fn cargo_lambda() -> PathBuf {
    tool("SQS2PG_CARGO_LAMBDA", "cargo-lambda")
}

/// The Prometheus server.
pub fn prometheus() -> PathBuf {
    tool("SQS2PG_PROMETHEUS", "prometheus")
}

/// `promtool`.
pub fn promtool() -> PathBuf {
    tool("SQS2PG_PROMTOOL", "promtool")
}

/// Where [`free_port`] looks: below Linux's ephemeral range (32768–60999), so no outgoing
/// connection of this or any process is given the port between the check and the child's
/// bind, as one bound to port 0 and released could be.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port on loopback nothing listens on yet, for a child server to bind (a private cluster,
/// PgBouncer, Prometheus, a Runtime API). Never the same one twice in this process, so two
/// tests starting servers at once cannot be handed one port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // A start that differs between runs, so a server a crashed run left behind is skipped
    // rather than met at every port.
    let _ = NEXT.compare_exchange(
        0,
        TEST_PORTS.start + (std::process::id() % 1000) as u16 * 10,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..TEST_PORTS.len() {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORTS.start + (port - TEST_PORTS.start) % TEST_PORTS.len() as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?}")
}

/// The `sqs2pg-lambda` binary of this build's profile, built first (`--features lambda`,
/// which `cargo test` alone does not enable; a no-op when `make test` built it already).
pub fn lambda_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_BIN_EXE_sqs2pg"))
                .parent()
                .expect("the binaries' directory")
                .to_path_buf();
            let mut cargo = std::process::Command::new(env!("CARGO"));
            cargo
                .args([
                    "build",
                    "--locked",
                    "--features",
                    "lambda",
                    "--bin",
                    "sqs2pg-lambda",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if dir.file_name().is_some_and(|n| n == "release") {
                cargo.arg("--release");
            }
            let out = cargo.output().expect("run cargo build");
            assert!(
                out.status.success(),
                "cargo build --features lambda --bin sqs2pg-lambda: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            dir.join("sqs2pg-lambda")
        })
        .clone()
}
