//! How many delete or visibility calls go to SQS at once: a limit that adapts to the
//! endpoint, the way TCP finds a link's capacity (additive increase, multiplicative
//! decrease; the same scheme as Vector's adaptive request concurrency).
//!
//! A fixed number is wrong somewhere: the calls needed in flight grow with the endpoint's
//! latency (32 pollers behind 15 ms need ~30 delete calls to keep up, behind 50 ms more),
//! while an endpoint in trouble needs fewer. So the limit grows by one per window of calls
//! while the calls are using all of it and their mean time stays near the best seen, and
//! shrinks by a tenth when the mean time rises well above it (the endpoint is queueing) or by
//! half when calls fail as a whole (timeouts, throttling, 5xx), within the bounds its owner
//! sets. Entries SQS refuses inside an answer are not overload and do not count.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// A window's mean call time above `baseline × LATENCY_RISE + LATENCY_SLACK` means the
/// endpoint is queueing calls. The slack keeps sub-millisecond jitter on a local endpoint
/// from reading as overload.
const LATENCY_RISE: f64 = 2.0;
const LATENCY_SLACK: Duration = Duration::from_millis(5);
/// The share the limit keeps after a window whose calls queued, and after one with failures.
const SLOWER: f64 = 0.9;
const FAILING: f64 = 0.5;
/// The baseline is the lowest window mean seen, drifting up by this share of the gap per
/// window, so that an endpoint that got slower for good (a region further away) is
/// eventually taken as it is.
const BASELINE_DRIFT: f64 = 1.0 / 64.0;

/// The pure controller: fed each call's outcome, it says how many calls may be in flight.
#[derive(Debug, Clone)]
pub struct Aimd {
    limit: f64,
    min: usize,
    max: usize,
    baseline: Option<Duration>,
    window: Window,
}

#[derive(Debug, Clone, Default)]
struct Window {
    calls: usize,
    total: Duration,
    failed: bool,
    saturated: bool,
}

impl Aimd {
    /// Starts at `initial`, kept within `min..=max` (at least one).
    pub fn new(initial: usize, min: usize, max: usize) -> Self {
        let min = min.max(1);
        let max = max.max(min);
        Self {
            limit: initial.clamp(min, max) as f64,
            min,
            max,
            baseline: None,
            window: Window::default(),
        }
    }

    /// Calls allowed in flight now.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// One call ended after `took`; `in_flight` calls were in flight when it started
    /// (itself included); `failed` if the call failed as a whole. Returns the new limit.
    pub fn on_call(&mut self, took: Duration, in_flight: usize, failed: bool) -> usize {
        let limit = self.limit();
        let w = &mut self.window;
        w.calls += 1;
        w.total += took;
        w.failed |= failed;
        w.saturated |= in_flight >= limit;
        // A window is about one round of calls at the current limit; a failure ends it at
        // once, so that an endpoint in trouble gets relief within one call.
        if failed || w.calls >= limit {
            let w = std::mem::take(&mut self.window);
            self.end_window(&w);
        }
        self.limit()
    }

    fn end_window(&mut self, w: &Window) {
        if w.failed {
            // A failure may come back fast (a 500, a refused connection): its time says
            // nothing of the endpoint's speed, so the baseline keeps out of it.
            self.limit = (self.limit * FAILING).max(self.min as f64);
            return;
        }
        let mean = w.total / u32::try_from(w.calls.max(1)).unwrap_or(u32::MAX);
        let baseline = *self.baseline.get_or_insert(mean);
        if mean > baseline.mul_f64(LATENCY_RISE) + LATENCY_SLACK {
            self.limit *= SLOWER;
        } else if w.saturated {
            self.limit += 1.0;
        }
        self.limit = self.limit.clamp(self.min as f64, self.max as f64);
        self.baseline = Some(if mean < baseline {
            mean
        } else {
            baseline + (mean - baseline).mul_f64(BASELINE_DRIFT)
        });
    }
}

/// A [`Aimd`]-governed gate for one kind of call, shared by every clone of a
/// [`super::Source`].
#[derive(Debug, Clone)]
pub struct CallLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    permits: Semaphore,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    aimd: Aimd,
    in_flight: usize,
    /// Permits the limit shrank by while they were in use: each is forgotten, not returned,
    /// when its call ends.
    owed: usize,
}

/// One call's slot; give it back with [`Slot::done`] (dropping it gives it back unmeasured).
#[derive(Debug)]
pub struct Slot<'a> {
    limit: &'a Inner,
    permit: Option<SemaphorePermit<'a>>,
    started: Instant,
    in_flight: usize,
}

impl CallLimit {
    /// A gate starting at `initial` calls in flight, adapting within `min..=max`.
    pub fn new(initial: usize, min: usize, max: usize) -> Self {
        let aimd = Aimd::new(initial, min, max);
        Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(aimd.limit()),
                state: Mutex::new(State {
                    aimd,
                    in_flight: 0,
                    owed: 0,
                }),
            }),
        }
    }

    /// Calls allowed in flight now.
    pub fn limit(&self) -> usize {
        self.inner.state().aimd.limit()
    }

    /// Waits for a slot.
    pub async fn slot(&self) -> Slot<'_> {
        // The semaphore is never closed, so `ok()` only ever keeps the permit.
        let permit = self.inner.permits.acquire().await.ok();
        let in_flight = {
            let mut s = self.inner.state();
            s.in_flight += 1;
            s.in_flight
        };
        Slot {
            limit: &self.inner,
            permit,
            started: Instant::now(),
            in_flight,
        }
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Slot<'_> {
    /// The call ended; `failed` if it failed as a whole. Returns the limit now (the slot
    /// itself is given back as it drops, on return).
    pub fn done(self, failed: bool) -> usize {
        let took = self.started.elapsed();
        let mut s = self.limit.state();
        let before = s.aimd.limit();
        let after = s.aimd.on_call(took, self.in_flight, failed);
        if after > before {
            let grown = after - before;
            let repaid = grown.min(s.owed);
            s.owed -= repaid;
            self.limit.permits.add_permits(grown - repaid);
        } else if after < before {
            let shrink = before - after;
            let forgotten = self.limit.permits.forget_permits(shrink);
            s.owed += shrink - forgotten;
        }
        if after != before {
            tracing::debug!(
                limit = after,
                took_ms = took.as_millis() as u64,
                failed,
                "SQS calls in flight adapted"
            );
        }
        // Unlocked before the slot drops, which locks again.
        drop(s);
        after
    }
}

/// Gives the slot back: with [`Slot::done`] after the limit adapted, alone for a call that
/// was not measured.
impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.limit.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some(permit) = self.permit.take() {
            if s.owed > 0 {
                s.owed -= 1;
                permit.forget();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `windows` full windows of calls that each took `took`, with the limit in use
    /// (`saturated`) or one call in flight.
    fn windows(aimd: &mut Aimd, windows: usize, took: Duration, saturated: bool) -> usize {
        for _ in 0..windows {
            for _ in 0..aimd.limit() {
                let in_flight = if saturated { aimd.limit() } else { 1 };
                aimd.on_call(took, in_flight, false);
            }
        }
        aimd.limit()
    }

    #[test]
    fn the_limit_grows_by_one_per_window_while_calls_use_it_all_and_stay_fast() {
        let mut aimd = Aimd::new(4, 1, 64);
        assert_eq!(windows(&mut aimd, 10, 15 * MS, true), 14);
        assert_eq!(windows(&mut aimd, 100, 15 * MS, true), 64, "capped at max");
    }

    #[test]
    fn the_limit_does_not_grow_while_calls_leave_it_unused() {
        let mut aimd = Aimd::new(4, 1, 64);
        assert_eq!(windows(&mut aimd, 50, 15 * MS, false), 4);
    }

    #[test]
    fn calls_that_queue_shrink_the_limit_by_a_tenth_per_window() {
        let mut aimd = Aimd::new(4, 1, 64);
        assert_eq!(windows(&mut aimd, 16, 15 * MS, true), 20);
        // 34 ms is under 2 × 15 + 5 ms: jitter, not queueing.
        assert_eq!(windows(&mut aimd, 1, 34 * MS, true), 21);
        assert_eq!(windows(&mut aimd, 1, 60 * MS, true), 18);
        assert_eq!(windows(&mut aimd, 1, 60 * MS, true), 17);
    }

    #[test]
    fn a_failed_call_halves_the_limit_at_once() {
        let mut aimd = Aimd::new(20, 2, 64);
        assert_eq!(aimd.on_call(15 * MS, 20, true), 10);
        assert_eq!(aimd.on_call(15 * MS, 10, true), 5);
        assert_eq!(aimd.on_call(15 * MS, 5, true), 2);
        assert_eq!(aimd.on_call(15 * MS, 2, true), 2, "floored at min");
    }

    #[test]
    fn fast_failures_do_not_make_the_usual_speed_look_slow() {
        let mut aimd = Aimd::new(8, 2, 64);
        windows(&mut aimd, 4, 15 * MS, true);
        assert_eq!(aimd.on_call(MS / 2, 12, true), 6);
        assert_eq!(
            windows(&mut aimd, 3, 15 * MS, true),
            9,
            "15 ms is still the usual"
        );
    }

    #[test]
    fn an_endpoint_that_got_slower_for_good_is_taken_as_it_is() {
        let mut aimd = Aimd::new(16, 2, 64);
        windows(&mut aimd, 5, MS, true);
        let shrunk = windows(&mut aimd, 20, 30 * MS, true);
        assert!(shrunk < 16, "at first 30 ms reads as queueing: {shrunk}");
        let regrown = windows(&mut aimd, 100, 30 * MS, true);
        assert!(
            regrown > shrunk + 10,
            "then as the endpoint's speed: {shrunk} -> {regrown}"
        );
    }

    proptest! {
        #[test]
        fn the_limit_stays_within_its_bounds(
            min in 1usize..8,
            span in 0usize..64,
            calls in prop::collection::vec((0u32..200, 1usize..100, any::<bool>()), 0..400),
        ) {
            let mut aimd = Aimd::new(min + span / 2, min, min + span);
            for (ms, in_flight, failed) in calls {
                let limit = aimd.on_call(ms * MS, in_flight, failed);
                prop_assert!((min..=min + span).contains(&limit));
            }
        }
    }

    #[tokio::test]
    async fn no_more_calls_than_the_limit_are_in_flight() {
        let gate = CallLimit::new(3, 3, 3);
        let busy = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let calls = (0..20).map(|_| async {
            let slot = gate.slot().await;
            let now = busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(MS).await;
            busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            slot.done(false)
        });
        futures::future::join_all(calls).await;
        assert_eq!(most.into_inner(), 3);
    }

    #[tokio::test]
    async fn a_limit_that_shrinks_while_its_slots_are_in_use_takes_them_back_as_they_end() {
        let gate = CallLimit::new(8, 2, 8);
        let mut slots = Vec::new();
        for _ in 0..8 {
            slots.push(gate.slot().await);
        }
        let after = slots.pop().map(|slot| slot.done(true));
        assert_eq!(after, Some(4));
        assert_eq!(gate.limit(), 4);
        drop(slots);
        assert_eq!(gate.inner.permits.available_permits(), 4);
        let held: Vec<_> = futures::future::join_all((0..4).map(|_| gate.slot())).await;
        let fifth = tokio::time::timeout(20 * MS, gate.slot()).await;
        assert!(
            fifth.is_err(),
            "a fifth call waits while four are in flight"
        );
        drop(held);
        assert!(tokio::time::timeout(20 * MS, gate.slot()).await.is_ok());
    }
}
