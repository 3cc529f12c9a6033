//! The run's stop signals. A shutdown request stops only the wait for new messages; what
//! was received is still committed and deleted. What is not done `shutdown_timeout` later is
//! abandoned and released. Mini-redis style: each task is handed the signal it obeys.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

/// The three moments of a run's end, each a token the tasks watch.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// Cancelled by the caller (SIGINT/SIGTERM, a test): pollers stop waiting for new
    /// messages. Their channel then closes and batcher and writers finish what they hold.
    pub requested: CancellationToken,
    /// Cancelled `shutdown_timeout` after `requested`: pollers stop handing on, the batcher
    /// and the writers stop (a write in progress is abandoned, its transaction rolls back),
    /// and whatever is still held is released.
    pub deadline: CancellationToken,
    /// Cancelled once every stage has returned: heartbeat, health probes and progress stop.
    pub finished: CancellationToken,
    /// The first task that panicked, if one did.
    panicked: Arc<OnceLock<&'static str>>,
}

impl Shutdown {
    /// Watches `requested`: calls `on_request` then, and cancels `deadline` `timeout` after
    /// it, unless the run finished first.
    pub fn new(
        requested: CancellationToken,
        timeout: Duration,
        on_request: impl FnOnce() + Send + 'static,
    ) -> Self {
        let s = Self {
            requested,
            deadline: CancellationToken::new(),
            finished: CancellationToken::new(),
            panicked: Arc::default(),
        };
        let watch = s.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = watch.finished.cancelled() => return,
                _ = watch.requested.cancelled() => on_request(),
            }
            tokio::select! {
                _ = watch.finished.cancelled() => {}
                _ = tokio::time::sleep(timeout) => {
                    tracing::warn!(timeout_s = timeout.as_secs(), "shutdown deadline reached; releasing what is not committed");
                    watch.deadline.cancel();
                }
            }
        });
        s
    }

    /// `task` such that a panic ends the run instead of vanishing with the task: it is
    /// logged, remembered for [`Shutdown::panicked`], and the shutdown requested, so the
    /// other stages commit what they hold and the rest is released before the process exits
    /// non-zero (a supervisor's `Restart=on-failure` then restarts it).
    pub fn guarded(
        &self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let s = self.clone();
        async move {
            if AssertUnwindSafe(task).catch_unwind().await.is_err() {
                tracing::error!(task = name, "a task panicked (a bug: please report it); stopping the run and releasing its messages");
                let _ = s.panicked.set(name);
                s.requested.cancel();
            }
        }
    }

    /// The task that panicked, if one did.
    pub fn panicked(&self) -> Option<&'static str> {
        self.panicked.get().copied()
    }
}
