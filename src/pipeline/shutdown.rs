//! The run's stop signals. A shutdown request stops only the wait for new messages; what
//! was received is still committed and deleted. What is not done `shutdown_timeout` later is
//! abandoned and released. Mini-redis style: each task is handed the signal it obeys.

use std::time::Duration;

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
}
