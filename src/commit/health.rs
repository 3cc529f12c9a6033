//! The writers' health: the one signal the rest of a run steers by. Committers publish it;
//! a daemon's pollers stop receiving while a batch is being retried, and a drain run ends
//! once a batch was given up. [`Stats`] only mirrors it for `/readyz` and the summary, so a
//! change to a metric cannot change what the pipeline does.

use std::sync::Arc;

use tokio::sync::watch;

use crate::telemetry::Stats;

/// What the committers report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteHealth {
    /// A batch keeps failing and is being retried, its messages held.
    pub retrying: bool,
    /// Batches (and refused messages) given up on, left on the queue for redelivery.
    pub given_up: u64,
}

/// The sending side, shared by every committer of a run.
#[derive(Clone)]
pub struct WriteSignal {
    tx: Arc<watch::Sender<WriteHealth>>,
    stats: Arc<Stats>,
}

impl WriteSignal {
    /// A healthy signal, mirrored into `stats`.
    pub fn new(stats: Arc<Stats>) -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(WriteHealth::default())),
            stats,
        }
    }

    /// A batch started (true) or stopped (false) being retried.
    pub fn retrying(&self, retrying: bool) {
        self.stats.set_writes_failing(retrying);
        self.tx.send_if_modified(|h| {
            let changed = h.retrying != retrying;
            h.retrying = retrying;
            changed
        });
    }

    /// `n` batches or messages were given up on; nothing is being retried for them any more.
    pub fn gave_up(&self, n: u64) {
        if n == 0 {
            return;
        }
        for _ in 0..n {
            self.stats.add_batch_failed();
        }
        self.stats.set_writes_failing(false);
        self.tx.send_modify(|h| {
            h.given_up += n;
            h.retrying = false;
        });
    }

    /// The health now.
    pub fn now(&self) -> WriteHealth {
        *self.tx.borrow()
    }

    /// A receiver woken at each change.
    pub fn subscribe(&self) -> watch::Receiver<WriteHealth> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_when_retrying_ends_and_stats_follow() {
        let stats = Arc::new(Stats::default());
        let signal = WriteSignal::new(stats.clone());
        signal.retrying(true);
        assert!(!stats.readiness().writes_ok);
        let mut rx = signal.subscribe();
        let waiter =
            tokio::spawn(async move { rx.wait_for(|h| !h.retrying).await.map(|h| *h).ok() });
        tokio::task::yield_now().await;
        signal.gave_up(2);
        let seen = waiter.await.expect("waiter");
        assert_eq!(
            seen,
            Some(WriteHealth {
                retrying: false,
                given_up: 2
            })
        );
        assert!(stats.readiness().writes_ok);
        assert_eq!(stats.snapshot().batches_failed, 2);
    }
}
