//! Progress while a run goes: a bar on a terminal, else a log line every ten seconds.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::stats::Stats;

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

/// The running display; [`Progress::finish`] stops it.
pub struct Progress {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts reporting. `bar` asks for a bar (shown only when stderr is a terminal), of
    /// `total` messages when the run knows roughly how many there are, else a spinner.
    pub fn start(stats: Arc<Stats>, bar: bool, total: Option<u64>) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            if bar && std::io::stderr().is_terminal() {
                run_bar(stats, token, total).await
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

async fn run_bar(stats: Arc<Stats>, stop: CancellationToken, total: Option<u64>) {
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
        let s = stats.summary(Duration::ZERO);
        if pb.length().is_some_and(|l| s.deleted > l) {
            pb.set_length(s.deleted);
        }
        pb.set_position(s.deleted);
        pb.set_message(format!(
            "loaded {} rejected {} duplicates {}",
            s.loaded, s.rejected, s.duplicates
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
        let s = stats.summary(Duration::ZERO);
        tracing::info!(
            received = s.received,
            loaded = s.loaded,
            rejected = s.rejected,
            duplicates = s.duplicates,
            deleted = s.deleted,
            "progress"
        );
    }
}
