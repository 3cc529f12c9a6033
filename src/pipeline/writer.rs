//! The writers: each takes the next batch, commits it, then deletes its messages from the
//! queue while it commits the next. A message is deleted only after its outcome is
//! committed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::batch::Item;
use super::commit::{CommitFailure, Committer};
use super::lease::Tracker;
use crate::source::Source;

/// `DeleteMessageBatch` calls a writer has in flight for one committed batch: its share of
/// the pollers, so that the writers together delete about as fast as the pollers receive (a
/// delete call handles the ten messages a receive brings) whatever SQS's latency, and never
/// fewer than four (with a fixed 4, 15 ms calls capped a writer at ~2.7k msgs/s; a fixed 16
/// put more calls in flight than LocalStack's receives could bear at 32 pollers). One batch's
/// deletes run while the writer commits the next; the one after waits for them, so a
/// writer never has more than these calls in flight.
pub fn delete_concurrency(pollers: usize, writers: usize) -> usize {
    pollers.div_ceil(writers.max(1)).max(4)
}

/// One writer's share of the run.
pub struct Writer {
    pub source: Source,
    pub tracker: Arc<Tracker>,
    pub committer: Committer,
    /// `DeleteMessageBatch` calls in flight per batch.
    pub delete_concurrency: usize,
}

impl Writer {
    /// Commits batches until the batcher's channel closes or the shutdown deadline.
    pub async fn run(mut self, rx: Arc<Mutex<mpsc::Receiver<Vec<Item>>>>) {
        let mut deleting: Option<JoinHandle<()>> = None;
        loop {
            let batch = tokio::select! {
                b = async { rx.lock().await.recv().await } => b,
                _ = self.committer.stop.cancelled() => None,
            };
            let Some(mut items) = batch else { break };
            let stats = self.committer.stats.clone();
            let _in_flight = stats.in_flight(items.len());
            match self.committer.commit(&mut items).await {
                Ok(_) => {
                    let committed = Committed::of(&items);
                    // The bodies go now; the deletes need only the handles.
                    drop(items);
                    finish(deleting.take()).await;
                    deleting = Some(tokio::spawn(self.delete(committed)));
                }
                Err(CommitFailure::Failed(e)) => {
                    stats.add_batch_failed();
                    // Given up, so no longer being retried: the pollers must not wait on it.
                    stats.set_writes_failing(false);
                    // Left invisible until their timeout runs out: a natural backoff before
                    // they are tried again, here or elsewhere.
                    self.tracker
                        .forget(items.iter().map(|i| i.msg.receipt_handle.as_str()));
                    tracing::error!(error = %e, messages = items.len(), "batch not committed; its messages will be redelivered");
                }
                // Still held: released when the pipeline ends.
                Err(CommitFailure::Stopped | CommitFailure::Panicked) => {}
            }
        }
        finish(deleting).await;
    }

    /// Deletes a committed batch's messages.
    fn delete(&self, batch: Committed) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (source, tracker, stats) = (
            self.source.clone(),
            self.tracker.clone(),
            self.committer.stats.clone(),
        );
        let concurrency = self.delete_concurrency;
        async move {
            stats.record_latency(batch.sent_at.into_iter());
            let handles: Vec<(&str, &str)> = batch
                .handles
                .iter()
                .map(|(id, h)| (id.as_str(), h.as_str()))
                .collect();
            let del = source.delete(&handles, concurrency).await;
            stats.add_deleted(del.deleted, del.failed);
            if del.permanent > 0 {
                tracing::warn!(refused = del.permanent, "SQS refused some deletes for good (expired receipt handles): those messages come back and are skipped as duplicates");
            }
            // Deleted, or failing to delete: either way nothing is left to protect.
            tracker.forget(handles.iter().map(|(_, h)| *h));
        }
    }
}

/// What deleting a committed batch needs: `(message id, receipt handle)` pairs and when the
/// messages were sent (for the latency histogram).
struct Committed {
    handles: Vec<(String, String)>,
    sent_at: Vec<DateTime<Utc>>,
}

impl Committed {
    fn of(items: &[Item]) -> Self {
        Self {
            handles: items
                .iter()
                .map(|i| (i.msg.message_id.clone(), i.msg.receipt_handle.clone()))
                .collect(),
            sent_at: items.iter().filter_map(|i| i.msg.sent_at).collect(),
        }
    }
}

/// Waits for a batch's deletes. They cannot fail (what SQS refused is counted and comes
/// back as a duplicate); a panic in them is logged, and its messages reappear.
async fn finish(deleting: Option<JoinHandle<()>>) {
    let Some(deleting) = deleting else { return };
    if let Err(e) = deleting.await {
        tracing::error!(error = %e, "a batch's deletes did not finish; its messages come back and are skipped as duplicates");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_keep_pace_with_the_pollers() {
        // The defaults: 8 pollers over 2 writers, 4 calls each.
        assert_eq!(delete_concurrency(8, 2), 4);
        // 32 pollers over 3 writers: 33 delete calls against 32 receives.
        assert_eq!(delete_concurrency(32, 3), 11);
        assert_eq!(delete_concurrency(1, 3), 4);
        assert_eq!(delete_concurrency(16, 0), 16);
    }
}
