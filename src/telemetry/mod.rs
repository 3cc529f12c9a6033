//! What the run tells its operator: logs (here), the run's counters and summary
//! ([`stats`]), Prometheus text ([`metrics`]) served with the health probes ([`http`]), and
//! the progress display ([`progress`]).
//!
//! Logs go to stderr through `tracing` (`--log-format text|json`, filtered by `RUST_LOG`);
//! stdout is kept for command output such as the summary. Nothing here ever sees a raw PII
//! value: counters count, reasons are machine-readable codes, ids are SQS message ids. This
//! module observes only what [`stats::Stats`] is told; it knows neither the queue nor the
//! database.

pub mod http;
pub mod metrics;
pub mod progress;
pub mod requests;
pub mod routes;
pub mod stats;
pub mod summary_json;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use progress::{bar, Progress};
pub use requests::{CallLimits, RequestCounts, RequestKind, SqsRequests};
pub use stats::{Stats, Summary};

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// The crates whose targets may log above `info`: sqs2pg's library (`sqs2pg`, `sqs2pg::…`)
/// and the Lambda binary (`sqs2pg_lambda`). What they log is written to carry no PII; what
/// other crates log at debug and trace is not (HTTP and protocol payloads, the Lambda
/// invocation's JSON, signed canonical requests: message bodies), and a list of those
/// cannot stay complete as dependencies change, so every other target is capped at `info`.
const OWN_CRATES: [&str; 2] = ["sqs2pg", "sqs2pg_lambda"];

/// Targets capped at `error`: aws_config's instance-metadata (IMDS) providers. Where IMDS
/// refuses (a 403 for the token, as in EKS pods with a hop limit of 1) or is absent, they
/// warn with the SDK's `Debug` of the raw HTTP response (`FailedToLoadToken(… raw: Response
/// { status: StatusCode(403), headers: …`), once per lookup. The region provider is only
/// asked when neither the environment nor the profile names a region, and the credentials
/// provider only when nothing earlier in the chain had credentials; either way sqs2pg then
/// stops with its own one line that says what to set ("no AWS region configured",
/// "no AWS credentials found"), so the warning adds nothing a user can act on. Capping the
/// target rather than disabling IMDS keeps instance roles and IMDS regions working.
const IMDS_TARGETS: [&str; 1] = ["aws_config::imds"];

/// True for `target` being `prefix` or a module under it.
fn is_under(target: &str, prefix: &str) -> bool {
    target
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// True for a target of one of [`OWN_CRATES`] (the crate itself or a module of it).
fn is_own_target(target: &str) -> bool {
    OWN_CRATES
        .iter()
        .any(|crate_name| is_under(target, crate_name))
}

/// The cap: an event or span passes if it is of [`OWN_CRATES`] or at most `info`, and at
/// most `error` for [`IMDS_TARGETS`]. It is a filter of its own beside `RUST_LOG`'s, so no
/// directive lifts it, however specific.
fn foreign_cap<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber,
{
    tracing_subscriber::filter::filter_fn(|meta| {
        let target = meta.target();
        if IMDS_TARGETS.iter().any(|t| is_under(target, t)) {
            return *meta.level() <= tracing::Level::ERROR;
        }
        is_own_target(target) || *meta.level() <= tracing::Level::INFO
    })
}

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level, but only
/// within [`foreign_cap`]: other crates than sqs2pg's never log above `info`.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let registry = tracing_subscriber::registry()
        .with(foreign_cap())
        .with(filter);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json()).try_init(),
    };
}

/// Replaces the default panic output, which prints the panic's message: a message can
/// quote a string of a message body (an `expect` on a parsed value, a formatted assert).
/// This one prints where it happened and a fixed text, and the backtrace if `RUST_BACKTRACE`
/// asks for one (code locations only). Installed by both binaries before anything runs.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map_or_else(
            || "an unknown location".to_owned(),
            |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
        );
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        eprintln!(
            "panic at {at} (thread {thread}): a bug, please report it with this line; \
             its message is not shown, as it may quote message data"
        );
        let trace = std::backtrace::Backtrace::capture();
        if trace.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("{trace}");
        }
    }));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Everything a subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines [`init_tracing`]'s filters let through at `RUST_LOG=directives`, while
    /// `emit` logs.
    fn logged_at(directives: &str, emit: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(foreign_cap())
            .with(EnvFilter::new(directives))
            .with(tracing_subscriber::fmt::layer().with_writer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = out.0.lock().expect("captured log").clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Foreign targets at debug and trace (named in the directives or not, and crates no
    /// list ever named) are dropped; sqs2pg's own targets keep every level; foreign `info`
    /// and above stays.
    #[test]
    fn only_own_targets_log_above_info_whatever_rust_log_says() {
        for directives in [
            "trace",
            "lambda_runtime=trace,aws_sigv4=trace,hyper=trace,tokio_postgres=trace,trace",
            "some_future_dependency::deep::module=trace,lambda_runtime=trace,sqs2pgx=trace",
        ] {
            let log = logged_at(directives, || {
                tracing::trace!(target: "lambda_runtime", "dropped-1");
                tracing::debug!(target: "aws_sigv4::http_request", "dropped-2");
                tracing::trace!(target: "hyper::proto::h1", "dropped-3");
                tracing::trace!(target: "some_future_dependency::deep::module", "dropped-4");
                tracing::trace!(target: "sqs2pgx", "dropped-5");
                tracing::info!(target: "some_future_dependency::deep::module", "kept-info");
                tracing::warn!(target: "lambda_runtime", "kept-warn");
            });
            assert!(!log.contains("dropped"), "RUST_LOG={directives}:\n{log}");
            assert!(
                log.contains("kept-info") && log.contains("kept-warn"),
                "{log}"
            );
        }
        let log = logged_at("trace", || {
            tracing::trace!(target: "sqs2pg", "own-1");
            tracing::trace!(target: "sqs2pg::commit", "own-2");
            tracing::debug!(target: "sqs2pg_lambda", "own-3");
        });
        for own in ["own-1", "own-2", "own-3"] {
            assert!(log.contains(own), "{own} missing:\n{log}");
        }
    }

    /// aws_config's IMDS warnings (the raw HTTP response of a refused token) never pass,
    /// whatever `RUST_LOG` says; its errors, and other crates' warnings, still do.
    #[test]
    fn imds_warnings_are_dropped_and_its_errors_kept() {
        let log = logged_at("aws_config=trace,info", || {
            tracing::warn!(target: "aws_config::imds::region", "dropped-region");
            tracing::warn!(target: "aws_config::imds::credentials", "dropped-credentials");
            tracing::error!(target: "aws_config::imds::client", "kept-error");
            tracing::warn!(target: "aws_config::imdsx", "kept-other-module");
            tracing::warn!(target: "aws_config::profile", "kept-profile");
        });
        assert!(!log.contains("dropped"), "{log}");
        for kept in ["kept-error", "kept-other-module", "kept-profile"] {
            assert!(log.contains(kept), "{kept} missing:\n{log}");
        }
    }

    /// Set in the child process of [`the_panic_hook_prints_the_location_not_the_message`].
    const PANIC_CHILD: &str = "SQS2PG_TEST_PANIC_HOOK_CHILD";

    /// A panic whose message quotes a value: the hook's output names the location and
    /// withholds the message. The panic runs in a child process (this test binary again),
    /// since a hook is process-wide.
    #[test]
    fn the_panic_hook_prints_the_location_not_the_message() {
        let marker = "203.0.113.254 secret-device-in-a-panic";
        if std::env::var_os(PANIC_CHILD).is_some() {
            install_panic_hook();
            panic!("could not parse {marker:?}");
        }
        let exe = std::env::current_exe().expect("the test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "telemetry::tests::the_panic_hook_prints_the_location_not_the_message",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(PANIC_CHILD, "1")
            .output()
            .expect("run the test binary");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "the child should have panicked:\n{err}"
        );
        assert!(!err.contains(marker), "the message leaked:\n{err}");
        assert!(err.contains("panic at src/telemetry/mod.rs:"), "{err}");
        let all = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
        assert!(!all.contains("secret-device"), "{all}");
    }
}
