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
pub mod stats;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use progress::{bar, Progress};
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
const PAYLOAD_LOGGERS: [&str; 8] = [
    "aws_smithy_runtime",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_sdk_sqs",
    "hyper",
    "hyper_util",
    "h2",
    "tokio_postgres",
];

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level, except
/// for [`PAYLOAD_LOGGERS`].
pub fn init_tracing(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for target in PAYLOAD_LOGGERS {
        if let Ok(d) = format!("{target}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
