//! The visibility lease on the messages this process holds: received, not yet deleted or
//! given up. The heartbeat extends those near the end of their visibility timeout; at the end
//! of the run whatever is left is released (visibility 0) so another consumer takes it at
//! once instead of after its timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::source::{Received, Source, MAX_BATCH};
use crate::telemetry::Stats;

/// SQS keeps a message invisible at most 12 hours after it was received, whatever the
/// extensions; a message held that long is let go a little before, with a log line.
const SQS_MAX_INVISIBLE: Duration = Duration::from_secs(12 * 60 * 60 - 5 * 60);

/// `ChangeMessageVisibilityBatch` calls the heartbeat has in flight at once, at the least
/// (its adaptive limit may allow more): the pace is planned for this many.
const HEARTBEAT_CONCURRENCY: usize = crate::source::EXTEND_CALLS_MIN;

/// The furthest an extension reaches, however slow the heartbeat's calls get (unless the
/// queue's own timeout is longer): a consumer that dies meanwhile leaves its messages
/// invisible at most this long.
const MAX_REACH: Duration = Duration::from_secs(10 * 60);

/// The first pause before a beat whose calls failed is tried again; it doubles up to the
/// beat's period.
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(200);

/// How the heartbeat keeps ahead of the deadlines, from how long its calls take. With a
/// quick SQS a handle is extended with half the queue's timeout left, by one timeout. When
/// calls slow down (thousands held, a loaded or throttling SQS) handles are extended
/// earlier and further, so that the pass after this one still lands before this one's
/// extensions run out.
#[derive(Debug, Clone, Copy)]
struct Pace {
    visibility: Duration,
    /// Between beats.
    every: Duration,
    /// One `ChangeMessageVisibilityBatch` call, as recently seen: a slow call raises it at
    /// once, quick ones lower it a quarter at a time.
    call: Duration,
}

impl Pace {
    fn new(visibility: Duration) -> Self {
        Self {
            visibility,
            every: (visibility / 4).max(Duration::from_millis(500)),
            call: Duration::ZERO,
        }
    }

    /// How long a pass over `held` handles takes at the recent call time.
    fn pass(&self, held: usize) -> Duration {
        let rounds = held.div_ceil(MAX_BATCH * HEARTBEAT_CONCURRENCY).max(1);
        self.call * u32::try_from(rounds).unwrap_or(u32::MAX)
    }

    /// A handle with less than this left is extended at this beat: half the timeout, or
    /// two passes and a beat if that is longer.
    fn due_within(&self, held: usize) -> Duration {
        (self.visibility / 2).max(self.pass(held) * 2 + self.every)
    }

    /// How far an extension reaches: the timeout, or twice the lead [`Pace::due_within`]
    /// asks for, so an extended handle is not due again at the next beat.
    fn reach(&self, held: usize) -> Duration {
        let reach = self.visibility.max(self.due_within(held) * 2);
        reach.min(MAX_REACH.max(self.visibility))
    }

    /// A pass of `calls` calls took `took`.
    fn observed(&mut self, calls: usize, took: Duration) {
        let rounds = calls.div_ceil(HEARTBEAT_CONCURRENCY).max(1);
        let per_call = took / u32::try_from(rounds).unwrap_or(u32::MAX);
        self.call = per_call.max(self.call.saturating_sub(self.call / 4));
    }
}

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
    /// Woken when the last held message is let go (a drain waits for it).
    emptied: Notify,
}

/// What the heartbeat has to do.
#[derive(Debug, Default, PartialEq, Eq)]
struct Due {
    /// Handles whose visibility ends soon, the earliest first.
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
            emptied: Notify::new(),
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
        self.wake_if_empty(&held);
    }

    /// Resolves once the tracker next becomes empty; create it before looking at
    /// [`Tracker::is_empty`], so that a change between the look and the wait is not missed.
    pub fn emptied(&self) -> Notified<'_> {
        self.emptied.notified()
    }

    fn wake_if_empty(&self, held: &HashMap<String, Lease>) {
        if held.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Handles held.
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// What is due at `now` for extensions that reach `reach`: the handles with less than
    /// `within` left. Nothing is marked extended here: only SQS's answer does that
    /// ([`Tracker::extended`]), so a failed call leaves its handles due.
    fn due(&self, now: Instant, within: Duration, reach: Duration) -> Due {
        let mut held = self.lock();
        let mut due = Due::default();
        let mut extend = Vec::new();
        for (h, lease) in held.iter() {
            if now.duration_since(lease.received) + reach >= SQS_MAX_INVISIBLE {
                due.expiring.push(h.clone());
            } else if lease.until.saturating_duration_since(now) < within {
                extend.push((lease.until, h.clone()));
            }
        }
        for h in &due.expiring {
            held.remove(h);
        }
        if !due.expiring.is_empty() {
            self.wake_if_empty(&held);
        }
        extend.sort_unstable();
        due.extend = extend.into_iter().map(|(_, h)| h).collect();
        due
    }

    /// SQS confirmed these handles invisible for `reach` from `from`.
    fn extended<'a>(
        &self,
        handles: impl IntoIterator<Item = &'a str>,
        from: Instant,
        reach: Duration,
    ) {
        let mut held = self.lock();
        for h in handles {
            if let Some(lease) = held.get_mut(h) {
                lease.until = from + reach;
            }
        }
    }

    fn drain(&self) -> Vec<String> {
        self.lock().drain().map(|(h, _)| h).collect()
    }
}

/// Extends the visibility of held messages before it runs out, until `finished`, at the
/// [`Pace`] its calls allow. A beat whose calls failed is tried again after a short pause,
/// not a whole beat later: the handles are still due, and their deadline is near.
pub async fn heartbeat(
    source: Source,
    tracker: Arc<Tracker>,
    finished: CancellationToken,
    stats: Arc<Stats>,
) {
    let mut pace = Pace::new(tracker.visibility);
    let mut retry = Backoff::new(RETRY_FIRST_PAUSE, pace.every);
    let mut pause = pace.every;
    loop {
        tokio::select! {
            _ = finished.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
        crate::failpoint::hit(crate::failpoint::HEARTBEAT);
        let failed = beat(&source, &tracker, &mut pace, &stats).await;
        pause = if failed == 0 {
            retry = Backoff::new(RETRY_FIRST_PAUSE, pace.every);
            pace.every
        } else {
            retry.next_pause()
        };
    }
}

/// One beat: extends what is due; returns how many handles SQS did not confirm.
async fn beat(source: &Source, tracker: &Tracker, pace: &mut Pace, stats: &Stats) -> usize {
    let asked = Instant::now();
    let held = tracker.len();
    let reach = pace.reach(held);
    let due = tracker.due(asked, pace.due_within(held), reach);
    if !due.expiring.is_empty() {
        tracing::warn!(count = due.expiring.len(), "messages held for nearly 12 hours (SQS's cap) are let go; they come back and the ledger skips what was committed");
    }
    if due.extend.is_empty() {
        return 0;
    }
    let handles: Vec<&str> = due.extend.iter().map(String::as_str).collect();
    let seconds = i32::try_from(reach.as_secs_f64().ceil() as u64).unwrap_or(i32::MAX);
    let failed = source.extend_visibility(&handles, seconds).await;
    pace.observed(handles.len().div_ceil(MAX_BATCH), asked.elapsed());
    let ok = handles
        .iter()
        .enumerate()
        .filter(|(i, _)| failed.binary_search(i).is_err())
        .map(|(_, h)| *h);
    tracker.extended(ok, asked, reach);
    stats.add_visibility_extended((handles.len() - failed.len()) as u64);
    stats.add_visibility_extend_failed(failed.len() as u64);
    if !failed.is_empty() {
        tracing::warn!(
            failed = failed.len(),
            "some visibility extensions failed; tried again shortly"
        );
    }
    failed.len()
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

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn tracker_with(leases: &[(&str, Duration, Duration)]) -> (Tracker, Instant) {
        let t = Tracker::new(S(30));
        let now = Instant::now() + S(13 * 60 * 60);
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
    fn a_waiter_is_woken_when_the_last_held_message_is_let_go() {
        use futures::FutureExt;
        let (t, _) = tracker_with(&[("a", S(20), S(1)), ("b", S(20), S(1))]);
        let mut emptied = Box::pin(t.emptied());
        t.forget(["a"]);
        assert!(emptied.as_mut().now_or_never().is_none(), "one still held");
        t.forget(["b"]);
        assert!(emptied.now_or_never().is_some(), "woken by the last forget");
        let (t, now_b) = tracker_with(&[("old", S(20), S(12 * 60 * 60))]);
        let emptied = t.emptied();
        assert_eq!(t.due(now_b, S(15), S(30)).expiring, ["old"]);
        assert!(emptied.now_or_never().is_some(), "woken by an expiry");
    }

    #[test]
    fn only_what_sqs_confirmed_counts_as_extended() {
        let (t, now) = tracker_with(&[("soon", S(5), S(25)), ("later", S(29), S(1))]);
        assert_eq!(t.due(now, S(15), S(30)).extend, ["soon"]);
        // The call failed: still due at the next beat.
        assert_eq!(t.due(now, S(15), S(30)).extend, ["soon"]);
        t.extended(["soon"], now, S(30));
        assert!(t.due(now, S(15), S(30)).extend.is_empty(), "confirmed");
        t.forget(["soon"]);
        assert_eq!(t.drain(), ["later"]);
    }

    #[test]
    fn the_nearest_deadlines_go_first() {
        let (t, now) = tracker_with(&[("b", S(9), S(1)), ("a", S(2), S(1)), ("c", S(14), S(1))]);
        assert_eq!(t.due(now, S(15), S(30)).extend, ["a", "b", "c"]);
    }

    #[test]
    fn messages_near_the_twelve_hour_cap_are_let_go() {
        let (t, now) = tracker_with(&[("old", S(5), S(12 * 60 * 60 - 60)), ("young", S(5), S(60))]);
        let due = t.due(now, S(15), S(30));
        assert_eq!(
            (due.extend, due.expiring),
            (vec!["young".to_string()], vec!["old".to_string()])
        );
        assert_eq!(t.drain(), ["young"]);
    }

    #[test]
    fn a_quick_sqs_extends_at_half_the_timeout_by_one_timeout() {
        let mut pace = Pace::new(S(30));
        pace.observed(3, Duration::from_millis(20));
        assert_eq!((pace.due_within(30), pace.reach(30)), (S(15), S(30)));
    }

    #[test]
    fn slow_calls_make_the_heartbeat_start_earlier_and_reach_further() {
        let mut pace = Pace::new(S(5));
        // 4,000 held: 400 calls, 50 rounds of 8; one pass took 25 s (0.5 s a round).
        pace.observed(400, S(25));
        let within = pace.due_within(4000);
        assert!(within >= S(50), "two passes ahead: {within:?}");
        assert!(pace.reach(4000) >= within * 2);
        // The lead always covers the next pass, whatever was seen.
        for (calls, took) in [(1, S(4)), (50, S(9)), (800, S(120))] {
            let mut p = Pace::new(S(5));
            p.observed(calls, took);
            let held = calls * MAX_BATCH;
            assert!(
                p.due_within(held) > p.pass(held) + p.every,
                "{calls} calls in {took:?}"
            );
        }
    }

    #[test]
    fn the_reach_is_capped_and_quick_calls_bring_it_down_again() {
        let mut pace = Pace::new(S(5));
        pace.observed(1, S(600));
        assert_eq!(pace.reach(10), MAX_REACH);
        for _ in 0..40 {
            pace.observed(1, Duration::from_millis(10));
        }
        assert_eq!(pace.reach(10), S(5));
    }
}
