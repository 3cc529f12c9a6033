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
pub mod stats;

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

/// Crates whose debug and trace output would print HTTP or protocol payloads, that is,
/// message bodies. They are capped at `info`.
const PAYLOAD_LOGGERS: [&str; 9] = [
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_sdk_sqs",
    "hyper",
    "hyper_util",
    "h2",
    "tokio_postgres",
];

/// True for a target inside one of [`PAYLOAD_LOGGERS`] (the crate itself or a module of it).
fn is_payload_logger(target: &str) -> bool {
    PAYLOAD_LOGGERS.iter().any(|crate_name| {
        target
            .strip_prefix(crate_name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level; events of
/// [`PAYLOAD_LOGGERS`] above `info` are dropped whatever it says, by a filter of their own:
/// a directive in `RUST_LOG` cannot lift it, however specific its target.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = tracing_subscriber::filter::filter_fn(|meta| {
        !(is_payload_logger(meta.target()) && *meta.level() > tracing::Level::INFO)
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let registry = tracing_subscriber::registry().with(cap).with(filter);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json()).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_loggers_are_matched_by_crate_and_module() {
        assert!(is_payload_logger("aws_smithy_runtime"));
        assert!(is_payload_logger(
            "aws_smithy_runtime::client::orchestrator"
        ));
        assert!(is_payload_logger("tokio_postgres::query"));
        assert!(is_payload_logger(
            "aws_smithy_runtime_api::client::orchestrator"
        ));
        assert!(
            !is_payload_logger("aws_smithy_runtime_apix"),
            "another crate"
        );
        assert!(!is_payload_logger("sqs2pg::pipeline"));
    }
}
