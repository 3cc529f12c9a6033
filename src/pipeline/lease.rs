//! The visibility lease on the messages this process holds: received, not yet deleted or
//! given up. The heartbeat extends those near the end of their visibility timeout; at the end
//! of the run whatever is left is released (visibility 0) so another consumer takes it at
//! once instead of after its timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::source::{Received, Source};
use crate::telemetry::Stats;

/// Receipt handles held, with when their visibility runs out.
pub struct Tracker {
    visibility: Duration,
    held: Mutex<HashMap<String, Instant>>,
}

impl Tracker {
    /// A tracker for a queue whose visibility timeout is `visibility`.
    pub fn new(visibility: Duration) -> Self {
        Self {
            visibility,
            held: Default::default(),
        }
    }

    /// The queue's visibility timeout.
    pub fn visibility(&self) -> Duration {
        self.visibility
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts holding freshly received messages.
    pub fn hold(&self, msgs: &[Received]) {
        let until = Instant::now() + self.visibility;
        let mut held = self.lock();
        for m in msgs {
            held.insert(m.receipt_handle.clone(), until);
        }
    }

    /// Stops holding messages: deleted, or left to reappear on their own.
    pub fn forget<'a>(&self, handles: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        for h in handles {
            held.remove(h);
        }
    }

    /// Handles whose visibility ends within half the timeout; marks them extended.
    fn due(&self) -> Vec<String> {
        let now = Instant::now();
        let mut held = self.lock();
        let due: Vec<String> = held
            .iter()
            .filter(|(_, until)| until.saturating_duration_since(now) < self.visibility / 2)
            .map(|(h, _)| h.clone())
            .collect();
        for h in &due {
            held.insert(h.clone(), now + self.visibility);
        }
        due
    }

    fn drain(&self) -> Vec<String> {
        self.lock().drain().map(|(h, _)| h).collect()
    }
}

/// Extends the visibility of held messages at half their timeout, until `finished`.
pub async fn heartbeat(
    source: Source,
    tracker: Arc<Tracker>,
    finished: CancellationToken,
    stats: Arc<Stats>,
) {
    let every = (tracker.visibility / 4).max(Duration::from_millis(500));
    let seconds = i32::try_from(tracker.visibility.as_secs()).unwrap_or(i32::MAX);
    loop {
        tokio::select! {
            _ = finished.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let due = tracker.due();
        if due.is_empty() {
            continue;
        }
        let handles: Vec<&str> = due.iter().map(String::as_str).collect();
        match source.change_visibility_lenient(&handles, seconds).await {
            Ok(failed) => {
                let extended = (due.len() - failed) as u64;
                stats.add_visibility_extended(extended);
                tracing::debug!(extended, failed, "visibility extended");
            }
            Err(e) => tracing::warn!(error = %e, count = due.len(), "could not extend visibility"),
        }
    }
}

/// Releases every message still held (visibility 0), for another consumer to take now.
pub async fn release(source: &Source, tracker: &Tracker, stats: &Stats) {
    let left = tracker.drain();
    if left.is_empty() {
        return;
    }
    let handles: Vec<&str> = left.iter().map(String::as_str).collect();
    match source.change_visibility_lenient(&handles, 0).await {
        Ok(failed) => {
            let released = (left.len() - failed) as u64;
            stats.add_released(released);
            tracing::info!(released, "released uncommitted messages to other consumers");
        }
        Err(e) => {
            tracing::warn!(error = %e, count = left.len(), "could not release messages; they reappear after their visibility timeout")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_extends_only_what_is_due() {
        let t = Tracker::new(Duration::from_secs(30));
        t.lock()
            .insert("soon".into(), Instant::now() + Duration::from_secs(5));
        t.lock()
            .insert("later".into(), Instant::now() + Duration::from_secs(29));
        assert_eq!(t.due(), ["soon"]);
        assert!(t.due().is_empty(), "just extended");
        t.forget(["soon"]);
        assert_eq!(t.drain(), ["later"]);
    }
}
