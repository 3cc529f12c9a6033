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

/// SQS keeps a message invisible at most 12 hours after it was received, whatever the
/// extensions; a message held that long is let go a little before, with a log line.
const SQS_MAX_INVISIBLE: Duration = Duration::from_secs(12 * 60 * 60 - 5 * 60);

/// `ChangeMessageVisibilityBatch` calls the heartbeat has in flight at once: with thousands
/// of messages held, one call after another could land after the first ones expired.
const HEARTBEAT_CONCURRENCY: usize = 8;

/// One held message's lease.
#[derive(Clone, Copy, Debug)]
struct Lease {
    /// When its visibility runs out, as far as SQS has confirmed.
    until: Instant,
    received: Instant,
}

/// Receipt handles held, with when their visibility runs out.
pub struct Tracker {
    visibility: Duration,
    held: Mutex<HashMap<String, Lease>>,
}

/// What the heartbeat has to do.
#[derive(Debug, Default, PartialEq, Eq)]
struct Due {
    /// Handles whose visibility ends within half the timeout.
    extend: Vec<String>,
    /// Handles near SQS's 12-hour cap: no longer held.
    expiring: Vec<String>,
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

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Lease>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts holding freshly received messages.
    pub fn hold<'a>(&self, msgs: impl IntoIterator<Item = &'a Received>) {
        let now = Instant::now();
        let lease = Lease {
            until: now + self.visibility,
            received: now,
        };
        let mut held = self.lock();
        for m in msgs {
            held.insert(m.receipt_handle.clone(), lease);
        }
    }

    /// Holds no message: every one received was deleted or given up.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Stops holding messages: deleted, or left to reappear on their own.
    pub fn forget<'a>(&self, handles: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        for h in handles {
            held.remove(h);
        }
    }

    /// What is due at `now`. Nothing is marked extended here: only SQS's answer does that
    /// ([`Tracker::extended`]), so a failed call leaves its handles due.
    fn due(&self, now: Instant) -> Due {
        let mut held = self.lock();
        let mut due = Due::default();
        for (h, lease) in held.iter() {
            if now.duration_since(lease.received) + self.visibility >= SQS_MAX_INVISIBLE {
                due.expiring.push(h.clone());
            } else if lease.until.saturating_duration_since(now) < self.visibility / 2 {
                due.extend.push(h.clone());
            }
        }
        for h in &due.expiring {
            held.remove(h);
        }
        due
    }

    /// SQS confirmed these handles invisible for another timeout from `from`.
    fn extended<'a>(&self, handles: impl IntoIterator<Item = &'a str>, from: Instant) {
        let mut held = self.lock();
        for h in handles {
            if let Some(lease) = held.get_mut(h) {
                lease.until = from + self.visibility;
            }
        }
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
        let asked = Instant::now();
        let due = tracker.due(asked);
        if !due.expiring.is_empty() {
            tracing::warn!(count = due.expiring.len(), "messages held for nearly 12 hours (SQS's cap) are let go; they come back and the ledger skips what was committed");
        }
        if due.extend.is_empty() {
            continue;
        }
        let handles: Vec<&str> = due.extend.iter().map(String::as_str).collect();
        let failed = source
            .extend_visibility(&handles, seconds, HEARTBEAT_CONCURRENCY)
            .await;
        let ok = handles
            .iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains(i))
            .map(|(_, h)| *h);
        tracker.extended(ok, asked);
        stats.add_visibility_extended((handles.len() - failed.len()) as u64);
        stats.add_visibility_extend_failed(failed.len() as u64);
        if !failed.is_empty() {
            tracing::warn!(
                failed = failed.len(),
                "some visibility extensions failed; retried at the next beat"
            );
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

    fn tracker_with(leases: &[(&str, Duration, Duration)]) -> (Tracker, Instant) {
        let t = Tracker::new(Duration::from_secs(30));
        let now = Instant::now() + Duration::from_secs(13 * 60 * 60);
        for (h, left, held_for) in leases {
            let lease = Lease {
                until: now + *left,
                received: now - *held_for,
            };
            t.lock().insert((*h).into(), lease);
        }
        (t, now)
    }

    #[test]
    fn only_what_sqs_confirmed_counts_as_extended() {
        let s = Duration::from_secs;
        let (t, now) = tracker_with(&[("soon", s(5), s(25)), ("later", s(29), s(1))]);
        assert_eq!(t.due(now).extend, ["soon"]);
        // The call failed: still due at the next beat.
        assert_eq!(t.due(now).extend, ["soon"]);
        t.extended(["soon"], now);
        assert!(t.due(now).extend.is_empty(), "confirmed");
        t.forget(["soon"]);
        assert_eq!(t.drain(), ["later"]);
    }

    #[test]
    fn messages_near_the_twelve_hour_cap_are_let_go() {
        let s = Duration::from_secs;
        let (t, now) = tracker_with(&[("old", s(5), s(12 * 60 * 60 - 60)), ("young", s(5), s(60))]);
        let due = t.due(now);
        assert_eq!(
            (due.extend, due.expiring),
            (vec!["young".to_string()], vec!["old".to_string()])
        );
        assert_eq!(t.drain(), ["young"]);
    }
}
