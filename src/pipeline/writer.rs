//! The writers: each takes the next batch, commits it, then deletes its messages from the
//! queue while it commits the next ones. A message is deleted only after its outcome is
//! committed.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::batch::Item;
use super::commit::{CommitFailure, Committer};
use super::lease::Tracker;
use crate::source::Source;

/// Committed batches whose deletes a writer lets run while it commits the next ones. The
/// calls themselves are bounded by the source's adaptive limit, shared by every writer; this
/// only bounds the receipt handles waiting for it. Waiting for each batch's deletes before
/// the next commit capped 32 pollers behind 15 ms of latency at 0.75× of linear.
const DELETING_BATCHES: usize = 4;

/// One writer's share of the run.
pub struct Writer {
    pub source: Source,
    pub tracker: Arc<Tracker>,
    pub committer: Committer,
}

impl Writer {
    /// Commits batches until the batcher's channel closes or the shutdown deadline.
    pub async fn run(mut self, rx: Arc<Mutex<mpsc::Receiver<Vec<Item>>>>) {
        let mut deleting: VecDeque<JoinHandle<()>> = VecDeque::new();
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
                    let (refused, items): (Vec<Item>, Vec<Item>) =
                        items.into_iter().partition(|i| i.refused.is_some());
                    self.leave_on_queue(&refused);
                    let committed = Committed::of(&items);
                    // The bodies go now; the deletes need only the handles.
                    drop(items);
                    if deleting.len() >= DELETING_BATCHES {
                        if let Some(oldest) = deleting.pop_front() {
                            finish(oldest).await;
                        }
                    }
                    deleting.push_back(tokio::spawn(self.delete(committed)));
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
        for batch in deleting {
            finish(batch).await;
        }
    }

    /// Messages whose outcome could not be committed at all (their reject refused): counted
    /// as failed, as a batch given up is, and left invisible until their timeout, to come
    /// back until the redrive policy dead-letters them.
    fn leave_on_queue(&self, refused: &[Item]) {
        for _ in refused {
            self.committer.stats.add_batch_failed();
        }
        self.tracker
            .forget(refused.iter().map(|i| i.msg.receipt_handle.as_str()));
    }

    /// Deletes a committed batch's messages.
    fn delete(&self, batch: Committed) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (source, tracker, stats) = (
            self.source.clone(),
            self.tracker.clone(),
            self.committer.stats.clone(),
        );
        async move {
            stats.record_latency(batch.sent_at.into_iter());
            let handles: Vec<(&str, &str)> = batch
                .handles
                .iter()
                .map(|(id, h)| (id.as_str(), h.as_str()))
                .collect();
            let del = source.delete(&handles).await;
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
async fn finish(deleting: JoinHandle<()>) {
    if let Err(e) = deleting.await {
        tracing::error!(error = %e, "a batch's deletes did not finish; its messages come back and are skipped as duplicates");
    }
}
