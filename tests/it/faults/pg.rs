//! A private Postgres cluster a test may crash, stop or restart without disturbing the others.

use std::path::{Path, PathBuf};
use std::process::Command;

pub(super) use crate::helpers::free_port;

fn pg_bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/services up installs them)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("an initdb")
}

/// A throwaway Postgres cluster on its own port, owned by this test.
pub struct PrivatePg {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
    /// Its port.
    pub port: u16,
    pub(super) dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePg {
    pub(super) fn pg_cmd(&self, tool: &str) -> Command {
        as_pg(&self.bin.join(tool))
    }

    /// initdb + start (a few seconds).
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// [`PrivatePg::start`] off the async runtime's threads, then the tables created.
    pub async fn start_migrated() -> Self {
        let pg = tokio::task::spawn_blocking(Self::start)
            .await
            .expect("start private cluster");
        crate::helpers::connect(&pg.url).await.migrate().await;
        pg
    }

    /// Like [`PrivatePg::start`], with TLS on: a throwaway CA (its PEM at
    /// [`PrivatePg::ca_file`]) signs a certificate for `127.0.0.1` and `localhost`.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// The test CA's certificate (PEM), when started with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn start_with(tls: bool) -> Self {
        let pg = Self::initdb();
        if tls {
            pg.make_certs();
        }
        pg.ctl(&["start"]);
        pg
    }

    /// A port and a directory of its own, nothing in it yet. The directory is named after the
    /// port so two clusters of one test run never share one.
    pub(super) fn allocate() -> Self {
        let bin = pg_bindir();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sqs2pg-it-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("pg dir");
        if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:", dir.to_str().unwrap()])
                .status();
        }
        Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            dir,
            bin,
        }
    }

    /// A new, stopped cluster with trust authentication.
    pub(super) fn initdb() -> Self {
        let pg = Self::allocate();
        run(
            pg.pg_cmd("initdb").args([
                "-D",
                pg.data().as_str(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]),
            "initdb",
        );
        pg
    }

    pub(super) fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `pg_ctl` on this cluster, built but not run, so async callers can run it off the
    /// runtime's threads.
    pub(super) fn ctl_cmd(&self, args: &[&str]) -> Command {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        let mut c = self.pg_cmd("pg_ctl");
        c.args([
            "-D",
            &self.data(),
            "-l",
            &log,
            "-w",
            "-t",
            "60",
            "-o",
            &opts,
        ])
        .args(args);
        c
    }

    pub(super) fn ctl(&self, args: &[&str]) {
        run(&mut self.ctl_cmd(args), &format!("pg_ctl {args:?}"));
    }

    /// `pg_ctl restart -m immediate`: a crash and recovery.
    pub fn restart_immediate(&self) {
        self.ctl(&["restart", "-m", "immediate"]);
    }

    /// Stops the server (fast).
    pub fn stop(&self) {
        self.ctl(&["stop", "-m", "fast"]);
    }

    /// Starts it again.
    pub fn start_again(&self) {
        self.ctl(&["start"]);
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .pg_cmd("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd`, panicking with its output (what the tool said is the diagnosis) on failure.
pub(super) fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(super) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The cluster's tools refuse to run as root, so root runs them as the `postgres` OS user.
fn as_pg(tool: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    }
}
