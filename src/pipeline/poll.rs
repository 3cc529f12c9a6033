//! The pollers: long-poll SQS, hold what arrives in the lease, hand it on. A full channel
//! blocks them, which is the backpressure that pauses receiving while the writers are
//! behind; a daemon also stops receiving while a batch is failing to commit, so a database
//! outage holds a bounded set of messages (kept invisible by the heartbeat) instead of
//! cycling the queue through receives that each cost a receive count: it waits on the
//! writers' [`WriteHealth`], woken when it changes. A drain run's pollers share a [`Drain`]
//! that says when the queue is empty.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::budget::{Budget, Charge};
use super::drain::{Drain, Ended, Next, DEPTH_RECHECK, DRAIN_WAIT_SECONDS};
use super::lease::Tracker;
use super::shutdown::Shutdown;
use crate::backoff::Backoff;
use crate::commit::WriteHealth;
use crate::source::fifo::ReceiveAttempt;
use crate::source::{Received, Source, SourceError};
use crate::telemetry::Stats;

/// How long a receive already in flight at shutdown may take to land.
const SHUTDOWN_RECEIVE_GRACE: Duration = Duration::from_secs(2);

/// Consecutive receive failures after which a drain run gives up.
const DRAIN_RECEIVE_ATTEMPTS: u32 = 8;

/// One poller's share of the run.
pub struct Poller {
    pub source: Source,
    pub tracker: Arc<Tracker>,
    pub shutdown: Shutdown,
    /// Counts what it receives (observed, never read back).
    pub stats: Arc<Stats>,
    /// Receiving waits for room in it.
    pub budget: Arc<Budget>,
    /// The writers' health: a daemon stops receiving while a batch is retried, a drain
    /// ends once one was given up.
    pub writes: watch::Receiver<WriteHealth>,
    /// Where a drain run that gave up on the queue leaves the error (the first poller's).
    pub poll_error: Arc<OnceLock<SourceError>>,
    pub wait_seconds: i32,
    /// A drain run (`--until-empty`): its end condition, and this poller's index in it.
    pub drain: Option<(Arc<Drain>, usize)>,
}

impl Poller {
    /// Receives until shutdown, or, draining, until the [`DrainWatch`] says the queue is
    /// empty.
    pub async fn run(self, tx: mpsc::Sender<Vec<(Received, Charge)>>) {
        let fresh = || Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut backoff = fresh();
        let mut failures = 0;
        // Kept across failed receives, so their retries are the same logical receive.
        let mut attempt = ReceiveAttempt::default();
        let until_empty = self.drain.is_some();
        let wait_seconds = if until_empty {
            self.wait_seconds.min(DRAIN_WAIT_SECONDS)
        } else {
            self.wait_seconds
        };
        loop {
            if !until_empty && !self.wait_for_writes().await {
                break;
            }
            let Some(received) = self.receive_or_stop(&tx, wait_seconds, &mut attempt).await else {
                break;
            };
            match received {
                Ok(msgs) => {
                    failures = 0;
                    let n = msgs.len();
                    if n == 0 {
                        self.stats.set_sqs_ok(true);
                    } else {
                        backoff = fresh();
                        if !self.hand_on(msgs, &tx).await {
                            break;
                        }
                    }
                    if !self.drain_goes_on(n).await {
                        break;
                    }
                }
                Err(e) => {
                    failures += 1;
                    self.stats.set_sqs_ok(false);
                    self.stats.add_sqs_retry();
                    tracing::warn!(error = %e, failures, "receive failed; backing off");
                    if until_empty && failures >= DRAIN_RECEIVE_ATTEMPTS {
                        let _ = self.poll_error.set(e);
                        break;
                    }
                    tokio::select! {
                        _ = self.shutdown.requested.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_pause()) => {}
                    }
                }
            }
        }
        if let Some((drain, index)) = &self.drain {
            drain.update(|w| w.gone(*index));
        }
    }

    /// After a receive of `n` messages: false once a drain run is over (a daemon always
    /// goes on). A drain's poller whose receive came back empty stays parked here until the
    /// [`Drain`] wakes or stops it, and checks the queue's depth when asked to.
    async fn drain_goes_on(&self, n: usize) -> bool {
        let Some((drain, index)) = &self.drain else {
            return true;
        };
        // No one is woken: a receive changes nothing a parked poller waits for (the last one
        // to park looks for itself next), and waking the parked ones at every receive cost
        // more CPU than the messages did.
        drain.lock().received(*index, n);
        let mut writes = self.writes.clone();
        loop {
            // Created before the look, so that no change after it is missed.
            let drain_changed = drain.changed();
            let emptied = self.tracker.emptied();
            if writes.borrow_and_update().given_up > 0 {
                drain.update(|w| w.end(Ended::GaveUp));
            }
            let held_nothing = self.tracker.is_empty();
            let (next, due) = {
                let mut w = drain.lock();
                (
                    w.poll(*index, held_nothing, Instant::now()),
                    w.check_due_at(),
                )
            };
            match next {
                Next::Receive => return true,
                Next::Stop => return false,
                Next::Wait => {
                    let due = due.unwrap_or_else(|| Instant::now() + DEPTH_RECHECK);
                    tokio::select! {
                        _ = self.shutdown.requested.cancelled() => return false,
                        _ = drain_changed => {}
                        _ = emptied => {}
                        _ = writes.changed() => {}
                        _ = tokio::time::sleep_until(due.into()) => {}
                    }
                }
                Next::CheckDepth => return self.check_depth(drain).await,
            }
        }
    }

    /// Asks the queue's depth for the [`Drain`]; false once the drain is over.
    async fn check_depth(&self, drain: &Drain) -> bool {
        let depth = match self.source.depth().await {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the queue's depth; receiving on");
                None
            }
        };
        let (next, ended) = drain.update(|w| (w.checked(depth, Instant::now()), w.ended()));
        if next == Next::Receive {
            return true;
        }
        match ended {
            Some(Ended::Settled(d)) => tracing::warn!(
                visible = d.visible,
                in_flight = d.in_flight,
                "drain ends with messages still on the queue: held by another consumer, or not yet visible, for longer than the queue's visibility timeout"
            ),
            other => tracing::debug!(ended = ?other, "drain over"),
        }
        false
    }

    /// Waits while the writers' batches are failing; false once shutdown was requested. A
    /// drain run does not wait: it gives a failing batch up after a few attempts and reports
    /// it, so the bounded channels are its only brake.
    async fn wait_for_writes(&self) -> bool {
        let mut writes = self.writes.clone();
        tokio::select! {
            _ = self.shutdown.requested.cancelled() => false,
            healthy = writes.wait_for(|h| !h.retrying) => healthy.is_ok(),
        }
    }

    /// One receive, once the byte budget has room; `None` once shutdown was requested. Only
    /// the wait for new messages is cancelled: a receive cannot be un-sent, its answer may
    /// already hold messages that SQS made invisible, so it gets a short grace to land (under
    /// load answers take milliseconds; an idle long poll is simply abandoned) and whatever
    /// arrives is handed on.
    async fn receive_or_stop(
        &self,
        tx: &mpsc::Sender<Vec<(Received, Charge)>>,
        wait_seconds: i32,
        attempt: &mut ReceiveAttempt,
    ) -> Option<Result<Vec<(Received, Charge)>, SourceError>> {
        let room = tokio::select! {
            r = self.budget.reserve() => r,
            _ = self.shutdown.requested.cancelled() => return None,
        };
        let receive = self
            .source
            .receive_up_to(wait_seconds, room.max_messages, attempt);
        tokio::pin!(receive);
        let charged = |msgs: Vec<Received>| {
            let charges = room.settle(msgs.iter().map(|m| m.body.expose().len()));
            msgs.into_iter().zip(charges).collect::<Vec<_>>()
        };
        tokio::select! {
            biased;
            _ = self.shutdown.requested.cancelled() => {
                if let Ok(Ok(msgs)) = tokio::time::timeout(SHUTDOWN_RECEIVE_GRACE, &mut receive).await {
                    if !msgs.is_empty() {
                        self.stats.add_received(msgs.len());
                        self.tracker.hold(&msgs);
                        let _ = tx.send(charged(msgs)).await;
                    }
                }
                None
            }
            r = &mut receive => Some(r.map(charged)),
        }
    }

    /// Holds and hands on received messages; false when the run is ending.
    async fn hand_on(
        &self,
        msgs: Vec<(Received, Charge)>,
        tx: &mpsc::Sender<Vec<(Received, Charge)>>,
    ) -> bool {
        self.stats.set_sqs_ok(true);
        self.stats.add_received(msgs.len());
        self.tracker.hold(msgs.iter().map(|(m, _)| m));
        // Blocks while the writers are behind. The held messages are kept invisible by the
        // heartbeat meanwhile.
        tokio::select! {
            r = tx.send(msgs) => r.is_ok(),
            _ = self.shutdown.deadline.cancelled() => false,
        }
    }
}
