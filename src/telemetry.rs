//! Logs, run counters, the progress display and the end-of-run summary.
//!
//! Logs go to stderr through `tracing` (`--log-format text|json`, filtered by `RUST_LOG`);
//! stdout is kept for command output such as the summary. Nothing here ever sees a raw
//! PII value: counters count, reasons are machine-readable codes, ids are SQS message ids.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::sink::WriteReport;
use crate::source::Source;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// Crates whose debug and trace output would print HTTP or protocol payloads, that is,
/// message bodies. They are capped at `info` whatever `RUST_LOG` says.
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

/// Counters of one run, shared by every task.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received from SQS (redeliveries included).
    pub received: AtomicU64,
    /// Rows committed.
    pub loaded: AtomicU64,
    /// Rejects committed.
    pub rejected: AtomicU64,
    /// Rejects committed, by reason.
    pub rejected_by_reason: Mutex<BTreeMap<String, u64>>,
    /// Messages whose id was already in the ledger.
    pub duplicates: AtomicU64,
    /// Messages deleted from the queue.
    pub deleted: AtomicU64,
    /// Delete entries that failed after a retry.
    pub delete_failed: AtomicU64,
    /// Batches given up on (left for redelivery).
    pub batches_failed: AtomicU64,
    /// Extra keys seen in otherwise valid messages.
    pub unknown_keys: AtomicU64,
    /// Messages inside the writers right now.
    pub in_flight: AtomicU64,
    /// Visibility extensions made by the heartbeat.
    pub visibility_extended: AtomicU64,
    /// Messages released (visibility 0) at shutdown.
    pub released: AtomicU64,
    /// Retried SQS or Postgres calls.
    pub retries: AtomicU64,
    /// Committed batches.
    pub batches: AtomicU64,
    /// Seconds since the epoch of the last commit.
    pub last_commit_unix: AtomicU64,
    /// Consuming and not shutting down.
    pub ready: std::sync::atomic::AtomicBool,
    /// The last database call succeeded.
    pub db_ok: std::sync::atomic::AtomicBool,
    /// The last SQS receive succeeded.
    pub sqs_ok: std::sync::atomic::AtomicBool,
}

impl Stats {
    /// Adds a committed batch of `size` messages that took `took` to write.
    pub fn record_write(&self, r: &WriteReport, size: usize, took: Duration) {
        let _ = (size, took);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_commit_unix.store(now, Ordering::Relaxed);
        self.loaded.fetch_add(r.loaded, Ordering::Relaxed);
        self.duplicates.fetch_add(r.duplicates, Ordering::Relaxed);
        self.rejected
            .fetch_add(r.rejected.len() as u64, Ordering::Relaxed);
        if !r.rejected.is_empty() {
            let mut by = self
                .rejected_by_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for reason in &r.rejected {
                *by.entry(reason.clone()).or_default() += 1;
            }
        }
    }

    /// A snapshot as a summary.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            received: get(&self.received),
            loaded: get(&self.loaded),
            rejected: get(&self.rejected),
            rejected_by_reason: self
                .rejected_by_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            duplicates: get(&self.duplicates),
            deleted: get(&self.deleted),
            delete_failed: get(&self.delete_failed),
            unknown_keys: get(&self.unknown_keys),
            visibility_extended: get(&self.visibility_extended),
            released: get(&self.released),
            elapsed,
        }
    }
}

/// The end-of-run report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Messages received (redeliveries included).
    pub received: u64,
    /// Rows committed.
    pub loaded: u64,
    /// Rejects committed.
    pub rejected: u64,
    /// Rejects by reason.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Redeliveries skipped by the ledger.
    pub duplicates: u64,
    /// Messages deleted.
    pub deleted: u64,
    /// Deletes that failed (those messages come back and become duplicates).
    pub delete_failed: u64,
    /// Extra keys ignored.
    pub unknown_keys: u64,
    /// Visibility extensions.
    pub visibility_extended: u64,
    /// Messages released to other consumers at shutdown.
    pub released: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Summary {
    /// Messages handled per second of wall time.
    pub fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "received            {}", self.received)?;
        writeln!(f, "loaded              {}", self.loaded)?;
        writeln!(f, "rejected            {}", self.rejected)?;
        for (reason, n) in &self.rejected_by_reason {
            writeln!(f, "  {reason}: {n}")?;
        }
        writeln!(f, "duplicates skipped  {}", self.duplicates)?;
        writeln!(f, "deleted             {}", self.deleted)?;
        if self.delete_failed > 0 {
            writeln!(f, "delete failures     {}", self.delete_failed)?;
        }
        if self.unknown_keys > 0 {
            writeln!(f, "unknown keys        {}", self.unknown_keys)?;
        }
        if self.visibility_extended > 0 {
            writeln!(f, "visibility extended {}", self.visibility_extended)?;
        }
        if self.released > 0 {
            writeln!(f, "released            {}", self.released)?;
        }
        writeln!(f, "elapsed             {:.2}s", self.elapsed.as_secs_f64())?;
        write!(f, "rate                {:.0} messages/s", self.rate())
    }
}

/// A bar of `total` steps on a terminal; hidden elsewhere.
pub fn bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style);
    }
    pb
}

/// A progress bar on a terminal, or a log line every ten seconds elsewhere.
pub struct Progress {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts reporting. `bar` asks for a bar; it is shown only when stderr is a terminal.
    pub fn start(stats: Arc<Stats>, bar: bool, source: Source, drain: bool) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            if bar && std::io::stderr().is_terminal() {
                run_bar(stats, token, source, drain).await
            } else {
                run_lines(stats, token).await
            }
        });
        Self { stop, task }
    }

    /// Stops reporting and clears the bar.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn run_bar(stats: Arc<Stats>, stop: CancellationToken, source: Source, drain: bool) {
    // A drain run knows roughly how much there is; a daemon only counts.
    let total = if drain {
        source.depth().await.ok().map(|d| d.visible + d.in_flight)
    } else {
        None
    };
    let pb = match total {
        Some(t) if t > 0 => ProgressBar::new(t),
        _ => ProgressBar::new_spinner(),
    };
    let template = if pb.length().is_some() {
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}) {msg}"
    } else {
        "{spinner} [{elapsed_precise}] {pos} messages ({per_sec}) {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let done = stats.deleted.load(Ordering::Relaxed);
        if pb.length().is_some_and(|l| done > l) {
            pb.set_length(done);
        }
        pb.set_position(done);
        pb.set_message(format!(
            "loaded {} rejected {} duplicates {}",
            stats.loaded.load(Ordering::Relaxed),
            stats.rejected.load(Ordering::Relaxed),
            stats.duplicates.load(Ordering::Relaxed)
        ));
    }
    pb.finish_and_clear();
}

async fn run_lines(stats: Arc<Stats>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        tracing::info!(
            received = stats.received.load(Ordering::Relaxed),
            loaded = stats.loaded.load(Ordering::Relaxed),
            rejected = stats.rejected.load(Ordering::Relaxed),
            duplicates = stats.duplicates.load(Ordering::Relaxed),
            deleted = stats.deleted.load(Ordering::Relaxed),
            "progress"
        );
    }
}
