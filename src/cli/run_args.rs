//! The flags of `run` (and `config`, which shows what `run` would use) and of `send`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::config::{self, PipelineConfig};
use crate::source::fifo::MessageGroup;

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stop once the queue is empty, print a summary, exit 0. Empty means: every poller's
    /// latest receive came back empty, every message received is deleted (or given up), and
    /// the queue reports 0 visible and 0 in flight (ApproximateNumberOfMessages +
    /// ApproximateNumberOfMessagesNotVisible). Messages in flight elsewhere are waited for,
    /// up to the queue's visibility timeout + 5 s (at most 5 min) with none received. Receives
    /// wait at most 1 s, so the run ends about a second after its last commit.
    #[arg(long)]
    pub until_empty: bool,
    /// Concurrent long-polling receivers.
    #[arg(long, env = "SQS2PG_POLLERS", default_value_t = config::DEFAULT_POLLERS, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub pollers: u16,
    /// Concurrent database writers (one connection each).
    #[arg(long, env = "SQS2PG_WRITERS", default_value_t = config::DEFAULT_WRITERS, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,
    /// Most messages per transaction.
    #[arg(long, env = "SQS2PG_BATCH_SIZE", default_value_t = config::DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Longest a partial batch waits for more messages, in milliseconds.
    #[arg(long, env = "SQS2PG_BATCH_WAIT_MS", default_value_t = config::DEFAULT_BATCH_WAIT_MS, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_wait_ms: u64,
    /// Most message-body bytes held from receive to delete: receiving pauses while more are
    /// held (a body larger than this goes through alone), and a batch closes at an eighth
    /// of it. Size the memory limit from it (docs/DEPLOYMENT.md).
    #[arg(long, env = "SQS2PG_MAX_INFLIGHT_BYTES", default_value_t = config::DEFAULT_MAX_INFLIGHT_BYTES,
          value_parser = clap::value_parser!(u64).range(config::MIN_MAX_INFLIGHT_BYTES..=config::MAX_MAX_INFLIGHT_BYTES))]
    pub max_inflight_bytes: u64,
    /// Long-poll wait per receive, in seconds (0-20); a --until-empty run waits at most 1.
    #[arg(long, env = "SQS2PG_WAIT_SECONDS", default_value_t = config::DEFAULT_WAIT_SECONDS, value_parser = clap::value_parser!(i32).range(0..=20))]
    pub wait_seconds: i32,
    /// After SIGINT/SIGTERM, seconds in-flight work may take to commit before it is released
    /// to other consumers (visibility 0); then the process exits 0.
    #[arg(long = "shutdown-timeout", env = "SQS2PG_SHUTDOWN_TIMEOUT", default_value_t = config::DEFAULT_SHUTDOWN_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub shutdown_timeout_secs: u64,
    /// Progress display: a bar on a terminal (auto), always a bar, or log lines only.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// When to draw the progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar for --until-empty runs on a terminal.
    Auto,
    /// A bar whenever stderr is a terminal.
    Always,
    /// Log lines only.
    Never,
}

/// Flags of `send`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["file", "synthetic"])))]
pub struct SendArgs {
    /// A JSON array (each element one message) or a JSONL file (each line one message).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Generate this many realistic login events: users (RFC 4122 v4 ids) a quarter as many
    /// as events; a user logs in from their usual address 4 times in 5; 1 user in 5 shares
    /// an address with another user and 1 in 20 a device; about 3 in 10 have a null locale.
    #[arg(long)]
    pub synthetic: Option<usize>,
    /// With --synthetic: fraction re-sent as separate messages with an earlier body.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate, requires = "synthetic")]
    pub duplicate_rate: f64,
    /// With --synthetic: fraction of malformed bodies.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate, requires = "synthetic")]
    pub malformed_rate: f64,
    /// With --synthetic: random seed, for repeatable data.
    #[arg(long, default_value_t = 42, requires = "synthetic")]
    pub seed: u64,
    /// Concurrent SendMessageBatch calls.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// On a FIFO queue: the MessageGroupId of each message, one of user-id (the event's
    /// user_id, also inside an SNS or EventBridge envelope; one shared group for messages
    /// without one) or single (one group for all: one total order, one consumer at a time).
    /// Each message's MessageDeduplicationId is the SHA-256 of its body unless the queue has
    /// ContentBasedDeduplication on. Ignored on a standard queue.
    #[arg(long, default_value_t = MessageGroup::UserId)]
    pub message_group: MessageGroup,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "{s:?} is not a fraction between 0 and 1 (e.g. 0.05)"
        )),
    }
}

impl RunArgs {
    /// The validated pipeline settings.
    pub fn pipeline(&self, metrics_addr: Option<std::net::SocketAddr>) -> PipelineConfig {
        PipelineConfig {
            pollers: self.pollers.into(),
            writers: self.writers.into(),
            batch_size: self.batch_size as usize,
            batch_wait: std::time::Duration::from_millis(self.batch_wait_ms),
            max_inflight_bytes: usize::try_from(self.max_inflight_bytes).unwrap_or(usize::MAX),
            wait_seconds: self.wait_seconds,
            until_empty: self.until_empty,
            shutdown_timeout: std::time::Duration::from_secs(self.shutdown_timeout_secs),
            metrics_addr,
            progress: match self.progress {
                ProgressMode::Auto => self.until_empty,
                ProgressMode::Always => true,
                ProgressMode::Never => false,
            },
        }
    }
}
