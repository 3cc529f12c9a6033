//! When a drain run (`--until-empty`) is done: the termination state machine the pollers
//! share. Pure (time is passed in), so its rules are unit-tested apart from SQS.
//!
//! "Empty" means all of: every poller's latest receive came back empty, this process holds
//! nothing (every message it received is deleted or given up), and the queue's
//! `ApproximateNumberOfMessages` + `ApproximateNumberOfMessagesNotVisible` are 0. The last
//! one catches messages in flight elsewhere (another consumer's; no receive of ours is in
//! flight when it is asked): while they are not 0 the pollers keep receiving, so a message that comes
//! back from another consumer's lease is drained too, until [`DrainWatch`]'s `settle` bound
//! passes with nothing received (then the run ends anyway and says how many it left).
//!
//! Receives of a drain are short long polls ([`DRAIN_WAIT_SECONDS`]) and a poller whose
//! receive came back empty parks instead of polling on, so the run ends within about a
//! second of its last commit instead of a 20-second long poll later. A parked poller sleeps
//! until something it waits for changes: the shared [`Drain`] (another poller parked, left,
//! or checked the depth), the messages held (the last one deleted), the writers' health (a
//! batch given up), or the next depth check falling due.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{futures::Notified, Notify};

use crate::source::QueueDepth;

/// The longest receive of a drain run, in seconds. One second is still a long poll (SQS asks
/// every server, so an answer is not falsely empty, unlike `WaitTimeSeconds=0`) and answers
/// at once while messages are there; all a longer one buys is fewer empty receives on an idle
/// queue, which a drain is about to leave.
pub const DRAIN_WAIT_SECONDS: i32 = 1;

/// Queue-depth checks are at most this often (each is a `GetQueueAttributes` request).
pub const DEPTH_RECHECK: Duration = Duration::from_secs(1);

/// Past the queue's visibility timeout, how long messages in flight elsewhere are waited
/// for: enough for one that another consumer let go to be received again.
pub const SETTLE_MARGIN: Duration = Duration::from_secs(5);

/// The longest wait for messages in flight elsewhere, whatever the visibility timeout.
pub const SETTLE_MAX: Duration = Duration::from_secs(5 * 60);

/// What a poller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Receive (again).
    Receive,
    /// Ask the queue its depth, then report it with [`DrainWatch::checked`].
    CheckDepth,
    /// Stay parked: ask [`DrainWatch::poll`] again once something changed.
    Wait,
    /// The drain is over: stop.
    Stop,
}

/// Why a drain ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The queue reported 0 visible and 0 in flight.
    Empty,
    /// Messages stayed in flight elsewhere for the whole settle bound.
    Settled(QueueDepth),
    /// A batch was given up: the run fails, and waiting for its messages to come back
    /// would only delay that.
    GaveUp,
}

/// The pollers' shared view of a drain. A poller whose receive came back empty parks
/// (receives no more); the last one to park, once nothing is held, asks the queue's depth:
/// 0 ends the drain (the parked pollers have no receive in flight, so they stop at once),
/// anything else wakes every poller to receive again.
#[derive(Debug)]
pub struct DrainWatch {
    /// Per poller: parked since generation `g` (its latest receive came back empty).
    parked: Vec<Option<u64>>,
    /// Per poller: stopped for good.
    gone: Vec<bool>,
    /// Bumped by each depth check that found messages: wakes the parked pollers.
    generation: u64,
    /// How long messages in flight elsewhere are waited for.
    settle: Duration,
    last_check: Option<Instant>,
    checking: bool,
    /// Since when the queue has reported messages while this process found and held none.
    waiting_since: Option<Instant>,
    ended: Option<Ended>,
}

impl DrainWatch {
    /// A watch over `pollers` pollers of a queue whose visibility timeout is `visibility`.
    pub fn new(pollers: usize, visibility: Duration) -> Self {
        Self {
            parked: vec![None; pollers.max(1)],
            gone: vec![false; pollers.max(1)],
            generation: 0,
            settle: (visibility + SETTLE_MARGIN).min(SETTLE_MAX),
            last_check: None,
            checking: false,
            waiting_since: None,
            ended: None,
        }
    }

    /// How the drain ended, once it has.
    pub fn ended(&self) -> Option<Ended> {
        self.ended
    }

    /// Poller `poller`'s receive brought `n` messages: with none it parks.
    pub fn received(&mut self, poller: usize, n: usize) {
        if let Some(p) = self.parked.get_mut(poller) {
            *p = (n == 0).then_some(self.generation);
        }
        if n > 0 {
            // Something came: whatever was in flight elsewhere is being drained.
            self.waiting_since = None;
        }
    }

    /// What poller `poller` does now; `held_nothing`: this process holds no message.
    pub fn poll(&mut self, poller: usize, held_nothing: bool, now: Instant) -> Next {
        if self.ended.is_some() {
            return Next::Stop;
        }
        match self.parked.get(poller).copied().flatten() {
            None => return Next::Receive,
            Some(g) if g != self.generation => {
                self.parked[poller] = None;
                return Next::Receive;
            }
            Some(_) => {}
        }
        let generation = self.generation;
        let all_parked = self
            .parked
            .iter()
            .zip(&self.gone)
            .all(|(p, gone)| *gone || *p == Some(generation));
        let due = self
            .last_check
            .is_none_or(|at| now.duration_since(at) >= DEPTH_RECHECK);
        if all_parked && held_nothing && due && !self.checking {
            self.checking = true;
            self.last_check = Some(now);
            Next::CheckDepth
        } else {
            Next::Wait
        }
    }

    /// When the next depth check falls due, if one was made.
    pub fn check_due_at(&self) -> Option<Instant> {
        self.last_check.map(|at| at + DEPTH_RECHECK)
    }

    /// The answer to a [`Next::CheckDepth`]: the depth, or `None` if the call failed (which
    /// counts as messages still in flight).
    pub fn checked(&mut self, depth: Option<QueueDepth>, now: Instant) -> Next {
        self.checking = false;
        if self.ended.is_some() {
            return Next::Stop;
        }
        match depth {
            Some(d) if d.visible + d.in_flight == 0 => {
                self.ended = Some(Ended::Empty);
                Next::Stop
            }
            other => {
                let since = *self.waiting_since.get_or_insert(now);
                if now.duration_since(since) >= self.settle {
                    self.ended = Some(Ended::Settled(other.unwrap_or_default()));
                    Next::Stop
                } else {
                    self.generation += 1;
                    Next::Receive
                }
            }
        }
    }

    /// Poller `poller` stopped for good (shutdown, or the queue unreachable): the others no
    /// longer wait for it.
    pub fn gone(&mut self, poller: usize) {
        if let Some(g) = self.gone.get_mut(poller) {
            *g = true;
        }
    }

    /// Ends the drain at once, for `why`.
    pub fn end(&mut self, why: Ended) {
        self.ended.get_or_insert(why);
    }
}

/// A [`DrainWatch`] shared by the pollers, waking the parked ones at each change.
#[derive(Debug)]
pub struct Drain {
    watch: Mutex<DrainWatch>,
    changed: Notify,
}

impl Drain {
    /// Shares `watch`.
    pub fn new(watch: DrainWatch) -> Self {
        Self {
            watch: Mutex::new(watch),
            changed: Notify::new(),
        }
    }

    /// The watch, to ask it ([`DrainWatch::poll`] changes nothing another poller waits on).
    pub fn lock(&self) -> MutexGuard<'_, DrainWatch> {
        self.watch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the watch and wakes every parked poller to look again.
    pub fn update<R>(&self, change: impl FnOnce(&mut DrainWatch) -> R) -> R {
        let r = change(&mut self.lock());
        self.changed.notify_waiters();
        r
    }

    /// Resolves at the next [`Drain::update`]; create it before looking, so that a change
    /// between the look and the wait is not missed.
    pub fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(visible: u64, in_flight: u64) -> Option<QueueDepth> {
        Some(QueueDepth { visible, in_flight })
    }

    #[test]
    fn ends_only_when_every_poller_is_parked_nothing_is_held_and_the_queue_says_empty() {
        let t0 = Instant::now();
        let mut w = DrainWatch::new(2, Duration::from_secs(30));
        w.received(0, 0);
        assert_eq!(w.poll(0, true, t0), Next::Wait, "poller 1 still receiving");
        w.received(1, 10);
        assert_eq!(w.poll(1, false, t0), Next::Receive);
        w.received(1, 0);
        assert_eq!(w.poll(1, false, t0), Next::Wait, "still holding messages");
        assert_eq!(w.poll(1, true, t0), Next::CheckDepth);
        assert_eq!(w.poll(0, true, t0), Next::Wait, "one check at a time");
        assert_eq!(w.checked(depth(0, 0), t0), Next::Stop);
        assert_eq!(w.ended(), Some(Ended::Empty));
        assert_eq!(w.poll(0, true, t0), Next::Stop, "the parked ones stop too");
    }

    #[test]
    fn messages_in_flight_elsewhere_wake_every_poller_until_they_come_back() {
        let s = Duration::from_secs;
        let t0 = Instant::now();
        let mut w = DrainWatch::new(2, s(10));
        w.received(0, 0);
        w.received(1, 0);
        assert_eq!(w.poll(0, true, t0), Next::CheckDepth);
        assert_eq!(w.checked(depth(0, 1), t0), Next::Receive);
        assert_eq!(w.poll(1, true, t0), Next::Receive, "woken by the check");
        w.received(0, 0);
        w.received(1, 0);
        assert_eq!(
            w.poll(1, true, t0 + Duration::from_millis(500)),
            Next::Wait,
            "depth is not asked more than once a second"
        );
        assert_eq!(w.poll(1, true, t0 + s(1)), Next::CheckDepth);
        assert_eq!(w.checked(depth(0, 1), t0 + s(1)), Next::Receive);
        // The other consumer's lease ran out: the message is received here.
        w.received(0, 1);
        w.received(1, 0);
        assert_eq!(w.poll(1, true, t0 + s(11)), Next::Wait, "poller 0 is busy");
        w.received(0, 0);
        assert_eq!(w.poll(0, true, t0 + s(12)), Next::CheckDepth);
        assert_eq!(
            w.checked(depth(0, 0), t0 + s(12)),
            Next::Stop,
            "ended by the empty queue, not by the settle bound"
        );
        assert_eq!(w.ended(), Some(Ended::Empty));
    }

    #[test]
    fn messages_held_elsewhere_for_good_end_it_after_the_settle_bound() {
        let s = Duration::from_secs;
        let t0 = Instant::now();
        let mut w = DrainWatch::new(1, s(10));
        let mut t = t0;
        loop {
            w.received(0, 0);
            match w.poll(0, true, t) {
                Next::CheckDepth => {
                    if w.checked(depth(0, 2), t) == Next::Stop {
                        break;
                    }
                }
                Next::Receive | Next::Wait => {}
                Next::Stop => unreachable!("stops only after a check"),
            }
            assert!(t < t0 + s(60), "never ended");
            t += Duration::from_millis(250);
        }
        assert_eq!(t - t0, s(10) + SETTLE_MARGIN);
        let left = QueueDepth {
            visible: 0,
            in_flight: 2,
        };
        assert_eq!(w.ended(), Some(Ended::Settled(left)));
        // A failed depth call is no proof of empty either.
        let mut w = DrainWatch::new(1, s(10));
        w.received(0, 0);
        assert_eq!(w.poll(0, true, t0), Next::CheckDepth);
        assert_eq!(w.checked(None, t0), Next::Receive);
    }

    #[test]
    fn a_gone_poller_is_not_waited_for_and_an_ended_drain_stops_everyone() {
        let t0 = Instant::now();
        let mut w = DrainWatch::new(3, Duration::from_secs(30));
        w.gone(2);
        w.received(0, 0);
        assert_eq!(w.poll(0, true, t0), Next::Wait);
        w.received(1, 0);
        assert_eq!(w.poll(1, true, t0), Next::CheckDepth);
        assert_eq!(w.checked(depth(0, 0), t0), Next::Stop);
        let mut w = DrainWatch::new(1, Duration::from_secs(30));
        w.end(Ended::GaveUp);
        assert_eq!(w.poll(0, false, t0), Next::Stop);
        let visibility = Duration::from_secs(12 * 60 * 60);
        assert_eq!(DrainWatch::new(1, visibility).settle, SETTLE_MAX);
    }

    #[test]
    fn a_parked_poller_is_woken_by_a_change_made_after_it_looked() {
        use futures::FutureExt;
        let drain = Drain::new(DrainWatch::new(2, Duration::from_secs(30)));
        let t0 = Instant::now();
        drain.update(|w| w.received(0, 0));
        let mut changed = Box::pin(drain.changed());
        assert_eq!(
            drain.lock().poll(0, true, t0),
            Next::Wait,
            "poller 1 still receiving"
        );
        assert!(
            changed.as_mut().now_or_never().is_none(),
            "a look wakes nobody"
        );
        drain.update(|w| w.received(1, 0));
        assert!(changed.now_or_never().is_some(), "the other poller parked");
        assert_eq!(drain.lock().poll(0, true, t0), Next::CheckDepth);
        assert_eq!(drain.lock().check_due_at(), Some(t0 + DEPTH_RECHECK));
    }
}
