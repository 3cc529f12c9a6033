//! The byte budget (`--max-inflight-bytes`): the bodies held from receive to delete are
//! charged here, so memory follows bytes, not message counts (500 messages of 1 MiB are not
//! 500 of 200 bytes).
//!
//! A poller reserves room before it receives, enough for as many messages as fit at the
//! largest recent body (at first the queue's `MaximumMessageSize`), and asks SQS for no
//! more than that many; once the answer is in, the reservation becomes one [`Charge`] per
//! message, its body's size. A larger body raises the estimate at once; smaller ones bring it down
//! by an eighth per receive, to [`MIN_ESTIMATE_BYTES`]. Held bodies are counted exactly;
//! only the room for receives in flight is an estimate, so when bodies jump from small to
//! large, the receives already in flight can bring more than it (at most the pollers' ten
//! bodies each, once) before the next reservations are sized for them. Holding the
//! estimate at its start (1 MiB on a queue that allows it) for small bodies instead would
//! let 64 MiB cover only 21 messages in flight (two receives of ten, one of one), whatever
//! `--pollers` said; until the first bodies are seen, that is all that goes.
//!
//! A charge is released when its item is dropped (deleted, given up, or
//! left at shutdown), which is when the body's memory goes. Nothing here waits while
//! holding: settling and resizing only add, so held bytes may pass the limit (a body larger
//! than any seen before, a reject's sealed body being 4/3 of the raw one), and receiving
//! then simply waits until they are back under it. When nothing is held a receive always
//! gets room, so a message bigger than the whole budget goes through alone.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::source::MAX_BATCH;
use crate::telemetry::Stats;

/// The estimate never falls below this: a receive of ten small bodies still reserves
/// ~120 KiB, so 64 MiB covers ~500 receives in flight.
pub const MIN_ESTIMATE_BYTES: usize = 4 * 1024;

/// While a receive is in flight its answer is in memory about this many times over: the
/// HTTP body, the parsed response, and the bodies taken from it. A reservation covers all
/// of them and settles to the bodies alone, so held bodies plus the receives in flight stay
/// within the budget.
const RECEIVE_COPIES: usize = 3;

/// The bytes held, and the estimate of the largest body a receive may bring.
#[derive(Debug)]
struct State {
    used: usize,
    largest: usize,
}

impl State {
    /// A receive brought bodies of at most `max` bytes: a larger one is the estimate at
    /// once; smaller ones lower it by an eighth of the gap.
    fn saw(&mut self, max: usize) {
        self.largest = if max >= self.largest {
            max
        } else {
            (self.largest - (self.largest - max) / 8).max(MIN_ESTIMATE_BYTES)
        };
    }
}

/// The budget shared by pollers (who reserve) and the items they produce (who hold charges).
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    state: Mutex<State>,
    freed: Notify,
    stats: Arc<Stats>,
}

/// Room taken for one receive; given back when dropped unless settled.
#[must_use]
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
    /// The most messages the receive may ask for.
    pub max_messages: usize,
}

/// One held body's bytes, released when dropped. The default charges nothing.
#[derive(Debug, Default)]
pub struct Charge {
    budget: Option<Arc<Budget>>,
    bytes: usize,
}

impl Budget {
    /// A budget of `limit` bytes (at least 1) for bodies of at most `largest_body` bytes
    /// (the queue's `MaximumMessageSize`), reporting what it holds to `stats`. The estimate
    /// starts there, so the first receives, all in flight at once, cannot bring more than
    /// they reserved (starting at 256 KiB, eight pollers' first receives of 1 MiB bodies
    /// brought 80 MiB against a 64 MiB budget).
    pub fn new(limit: usize, largest_body: usize, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            state: Mutex::new(State {
                used: 0,
                largest: largest_body.max(MIN_ESTIMATE_BYTES),
            }),
            freed: Notify::new(),
            stats,
        })
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now (bodies charged plus receives reserved).
    pub fn used(&self) -> usize {
        self.lock().used
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for room for at least one message at the largest size seen (its
    /// [`RECEIVE_COPIES`]), then takes room for as many (up to a receive's ten) as fit.
    /// With nothing held there is always room.
    pub async fn reserve(self: &Arc<Self>) -> Reservation {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a release in between is not missed.
            freed.as_mut().enable();
            if let Some(r) = self.try_reserve() {
                return r;
            }
            freed.await;
        }
    }

    fn try_reserve(self: &Arc<Self>) -> Option<Reservation> {
        let mut s = self.lock();
        let per = (s.largest * RECEIVE_COPIES).min(self.limit);
        let fit = (self.limit.saturating_sub(s.used) / per).min(MAX_BATCH);
        let n = if s.used == 0 { fit.max(1) } else { fit };
        if n == 0 {
            return None;
        }
        s.used += n * per;
        self.publish(&s);
        Some(Reservation {
            budget: self.clone(),
            bytes: n * per,
            max_messages: n,
        })
    }

    /// Adds `add` and takes away `sub`, never waiting.
    fn adjust(&self, add: usize, sub: usize) {
        let mut s = self.lock();
        s.used = (s.used + add).saturating_sub(sub);
        self.publish(&s);
        drop(s);
        if sub > add {
            self.freed.notify_waiters();
        }
    }

    fn publish(&self, s: &State) {
        self.stats.set_inflight_bytes(s.used as u64);
    }
}

impl Reservation {
    /// The receive brought bodies of these sizes: one charge each instead of the room
    /// reserved (more or less than it).
    pub fn settle(mut self, sizes: impl IntoIterator<Item = usize>) -> Vec<Charge> {
        let sizes: Vec<usize> = sizes.into_iter().collect();
        let total: usize = sizes.iter().sum();
        let budget = self.budget.clone();
        if let Some(&max) = sizes.iter().max() {
            budget.lock().saw(max);
        }
        budget.adjust(total, std::mem::take(&mut self.bytes));
        sizes
            .into_iter()
            .map(|bytes| Charge {
                budget: Some(budget.clone()),
                bytes,
            })
            .collect()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.adjust(0, self.bytes);
        }
    }
}

impl Charge {
    /// The bytes charged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The body now takes `bytes` (a reject's sealed body instead of the raw one).
    pub fn resize(&mut self, bytes: usize) {
        if bytes == self.bytes {
            return;
        }
        if let Some(b) = &self.budget {
            b.adjust(bytes, self.bytes);
        }
        self.bytes = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.adjust(0, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MAX_MESSAGE_BYTES;

    fn budget(limit: usize) -> Arc<Budget> {
        Budget::new(limit, MAX_MESSAGE_BYTES, Arc::new(Stats::default()))
    }

    #[tokio::test]
    async fn reservations_fit_the_largest_body_seen_and_its_copies() {
        let b = budget(4 * RECEIVE_COPIES * MAX_MESSAGE_BYTES);
        let r = b.reserve().await;
        assert_eq!(r.max_messages, 4, "four bodies, each three times over");
        let charges = r.settle([100, 200]);
        assert_eq!(b.used(), 300);
        drop(charges);
        assert_eq!(b.used(), 0);
        // A 1 MiB body seen: reservations are sized for it from now on.
        let one_mib = MAX_MESSAGE_BYTES;
        let big = b.reserve().await.settle([one_mib]);
        assert_eq!(b.used(), one_mib, "settled to the body alone");
        let beside = b.try_reserve().map(|r| r.max_messages);
        assert_eq!(beside, Some(3), "three more beside it, each 3 MiB of room");
        drop(big);
        assert_eq!(b.reserve().await.max_messages, 4);
    }

    #[tokio::test]
    async fn small_bodies_bring_the_estimate_down_so_every_poller_can_receive() {
        // Room for one receive of ten at the first estimate.
        let b = budget(10 * RECEIVE_COPIES * MAX_MESSAGE_BYTES);
        let first = b.reserve().await;
        assert_eq!(first.max_messages, 10);
        assert!(
            b.try_reserve().is_none(),
            "one receive takes all the room at first"
        );
        drop(first.settle([300; 10]));
        for _ in 0..60 {
            drop(b.reserve().await.settle([300; 10]));
        }
        let pollers: Vec<Reservation> = (0..32).filter_map(|_| b.try_reserve()).collect();
        assert_eq!(
            pollers.len(),
            32,
            "32 receives of ten fit once bodies are small"
        );
        assert!(pollers.iter().all(|r| r.max_messages == 10));
        drop(pollers);
        // One large body: the next reservations are sized for it again, at once.
        drop(b.reserve().await.settle([MAX_MESSAGE_BYTES]));
        let r = b.reserve().await;
        assert_eq!(r.max_messages, 10);
        assert!(b.try_reserve().is_none());
    }

    #[tokio::test]
    async fn the_queues_message_size_limit_sizes_the_first_receives() {
        let sixty_four_mib = 64 * 1024 * 1024;
        let receives = |largest_body| {
            let b = Budget::new(sixty_four_mib, largest_body, Arc::new(Stats::default()));
            let taken: Vec<Reservation> = std::iter::from_fn(|| b.try_reserve()).collect();
            taken.iter().map(|r| r.max_messages).collect::<Vec<_>>()
        };
        let at_256_kib = [10, 10, 10, 10, 10, 10, 10, 10, 5];
        assert_eq!(
            receives(256 * 1024),
            at_256_kib,
            "85 messages: eight pollers and more"
        );
        assert_eq!(
            receives(1024 * 1024),
            vec![10, 10, 1],
            "21 messages at 1 MiB"
        );
    }

    #[tokio::test]
    async fn a_body_bigger_than_the_budget_goes_alone() {
        let b = budget(1000);
        let r = b.reserve().await;
        assert_eq!(r.max_messages, 1, "one message at the limit");
        let big = r.settle([5000]);
        assert_eq!(b.used(), 5000);
        assert!(b.try_reserve().is_none(), "nothing else while it is held");
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.reserve().await.max_messages }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(big);
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("a release wakes the waiting poller")
            .expect("task");
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn resizing_and_dropping_keep_the_count() {
        let b = budget(10_000);
        let mut c = b.reserve().await.settle([300, 600]);
        c[0].resize(400);
        assert_eq!(b.used(), 1000);
        c.pop();
        assert_eq!(b.used(), 400);
        drop(c);
        // An unused reservation gives its room back.
        drop(b.reserve().await);
        assert_eq!(b.used(), 0);
        let none = Charge::default();
        assert_eq!(none.bytes(), 0);
    }
}
