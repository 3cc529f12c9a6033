//! The flags of `send`, and the type of `run --progress` (`run`'s flags are defined in
//! [`crate::config::settings`]).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::source::fifo::MessageGroup;

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
