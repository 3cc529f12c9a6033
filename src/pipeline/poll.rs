//! The pollers: long-poll SQS, hold what arrives in the lease, hand it on. A full channel
//! blocks them, which is the backpressure that pauses receiving while the writers are
//! behind; a daemon also stops receiving while a batch is failing to commit, so a database
//! outage holds a bounded set of messages (kept invisible by the heartbeat) instead of
//! cycling the queue through receives that each cost a receive count.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};

use super::budget::{Budget, Charge};
use super::lease::Tracker;
use super::shutdown::Shutdown;
use crate::backoff::Backoff;
use crate::source::{Received, Source, SourceError};
use crate::telemetry::Stats;

/// How long a receive already in flight at shutdown may take to land.
const SHUTDOWN_RECEIVE_GRACE: Duration = Duration::from_secs(2);

/// How often a poller paused by failing writes looks again.
const WRITES_FAILING_RECHECK: Duration = Duration::from_millis(250);

/// Consecutive receive failures after which a drain run gives up.
const DRAIN_RECEIVE_ATTEMPTS: u32 = 8;

/// One poller's share of the run.
pub struct Poller {
    pub source: Source,
    pub tracker: Arc<Tracker>,
    pub shutdown: Shutdown,
    pub stats: Arc<Stats>,
    /// Receiving waits for room in it.
    pub budget: Arc<Budget>,
    /// Where a drain run that gave up on the queue leaves the last error.
    pub poll_error: Arc<Mutex<Option<SourceError>>>,
    pub wait_seconds: i32,
    /// Stop at the first empty receive.
    pub until_empty: bool,
}

impl Poller {
    /// Receives until shutdown, or, draining, until the queue answers empty.
    pub async fn run(self, tx: mpsc::Sender<Vec<(Received, Charge)>>) {
        let fresh = || Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut backoff = fresh();
        let mut failures = 0;
        loop {
            if !self.until_empty && !self.wait_for_writes().await {
                break;
            }
            let Some(received) = self.receive_or_stop(&tx).await else {
                break;
            };
            match received {
                Ok(msgs) if msgs.is_empty() => {
                    failures = 0;
                    self.stats.set_sqs_ok(true);
                    if self.until_empty {
                        break;
                    }
                }
                Ok(msgs) => {
                    failures = 0;
                    backoff = fresh();
                    if !self.hand_on(msgs, &tx).await {
                        break;
                    }
                }
                Err(e) => {
                    failures += 1;
                    self.stats.set_sqs_ok(false);
                    self.stats.add_sqs_retry();
                    tracing::warn!(error = %e, failures, "receive failed; backing off");
                    if self.until_empty && failures >= DRAIN_RECEIVE_ATTEMPTS {
                        *self.poll_error.lock().await = Some(e);
                        break;
                    }
                    tokio::select! {
                        _ = self.shutdown.requested.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_pause()) => {}
                    }
                }
            }
        }
    }

    /// Waits while the writers' batches are failing; false once shutdown was requested. A
    /// drain run does not wait: it gives a failing batch up after a few attempts and reports
    /// it, so the bounded channels are its only brake.
    async fn wait_for_writes(&self) -> bool {
        while !self.stats.readiness().writes_ok {
            tokio::select! {
                _ = self.shutdown.requested.cancelled() => return false,
                _ = tokio::time::sleep(WRITES_FAILING_RECHECK) => {}
            }
        }
        true
    }

    /// One receive, once the byte budget has room; `None` once shutdown was requested. Only
    /// the wait for new messages is cancelled: a receive cannot be un-sent, its answer may
    /// already hold messages that SQS made invisible, so it gets a short grace to land (under
    /// load answers take milliseconds; an idle long poll is simply abandoned) and whatever
    /// arrives is handed on.
    async fn receive_or_stop(
        &self,
        tx: &mpsc::Sender<Vec<(Received, Charge)>>,
    ) -> Option<Result<Vec<(Received, Charge)>, SourceError>> {
        let room = tokio::select! {
            r = self.budget.reserve() => r,
            _ = self.shutdown.requested.cancelled() => return None,
        };
        let receive = self
            .source
            .receive_up_to(self.wait_seconds, room.max_messages);
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
