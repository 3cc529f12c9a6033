//! How `run` consumes: the validated form of `run`'s flags.

use std::time::Duration;

use super::settings::defaults::*;
use super::settings::RunArgs;
use crate::cli::run_args::ProgressMode;

/// How `run` consumes; each field is the validated form of the `run` flag of the same name
/// (see `sqs2pg run --help`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    pub pollers: usize,
    pub writers: usize,
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Body bytes held from receive to delete before receiving pauses; a batch also
    /// closes at an eighth of it.
    pub max_inflight_bytes: usize,
    pub wait_seconds: i32,
    pub until_empty: bool,
    /// A progress bar (else periodic log lines); only shown on a terminal.
    pub progress: bool,
    pub shutdown_timeout: Duration,
    /// `--metrics-addr`: serve `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            pollers: DEFAULT_POLLERS.into(),
            writers: DEFAULT_WRITERS.into(),
            batch_size: DEFAULT_BATCH_SIZE as usize,
            batch_wait: Duration::from_millis(DEFAULT_BATCH_WAIT_MS),
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES as usize,
            wait_seconds: DEFAULT_WAIT_SECONDS,
            until_empty: false,
            progress: false,
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
            metrics_addr: None,
        }
    }
}

impl RunArgs {
    /// The validated pipeline settings.
    pub fn pipeline(&self, metrics_addr: Option<std::net::SocketAddr>) -> PipelineConfig {
        PipelineConfig {
            pollers: self.pollers.into(),
            writers: self.writers.into(),
            batch_size: self.batch_size as usize,
            batch_wait: Duration::from_millis(self.batch_wait_ms),
            max_inflight_bytes: usize::try_from(self.max_inflight_bytes).unwrap_or(usize::MAX),
            wait_seconds: self.wait_seconds,
            until_empty: self.until_empty,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            metrics_addr,
            progress: match self.progress {
                ProgressMode::Auto => self.until_empty,
                ProgressMode::Always => true,
                ProgressMode::Never => false,
            },
        }
    }
}
