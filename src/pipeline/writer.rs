//! The writers: each takes the next batch, commits it, then deletes its messages from the
//! queue while it commits the next ones. A message is deleted only after its outcome is
//! committed.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::batch::Batch;
use super::lease::Tracker;
use crate::commit::{CommitFailure, Committer, Item};
use crate::source::Source;
use crate::telemetry::Stats;

/// Committed batches whose deletes a writer lets run while it commits the next ones. The
/// calls themselves are bounded by the source's adaptive limit, shared by every writer; this
/// only bounds the receipt handles waiting for it. Waiting for each batch's deletes before
/// the next commit capped 32 pollers behind 15 ms of latency at 0.75× of linear.
const DELETING_BATCHES: usize = 4;

/// One writer's share of the run: it commits batches and deletes what committed.
pub struct Writer {
    pub source: Source,
    pub tracker: Arc<Tracker>,
    pub committer: Committer,
    pub stats: Arc<Stats>,
    /// The shutdown deadline: take no further batch.
    pub deadline: CancellationToken,
}

impl Writer {
    /// Commits batches until the batcher's channel closes or the shutdown deadline.
    pub async fn run(mut self, rx: Arc<Mutex<mpsc::Receiver<Batch>>>) {
        let mut deleting: VecDeque<JoinHandle<()>> = VecDeque::new();
        loop {
            let batch = tokio::select! {
                b = async { rx.lock().await.recv().await } => b,
                _ = self.deadline.cancelled() => None,
            };
            let Some(Batch { mut items, charges }) = batch else {
                break;
            };
            let _in_flight = self.stats.in_flight(items.len());
            match self.committer.commit(&mut items, None).await {
                Ok(_) => {
                    let (refused, items): (Vec<Item>, Vec<Item>) =
                        items.into_iter().partition(|i| i.refused.is_some());
                    self.leave_on_queue(&refused);
                    let committed = Committed::of(&items);
                    // The bodies go now; the deletes need only the handles.
                    drop((items, charges));
                    if deleting.len() >= DELETING_BATCHES {
                        if let Some(oldest) = deleting.pop_front() {
                            finish(oldest).await;
                        }
                    }
                    deleting.push_back(tokio::spawn(self.delete(committed)));
                }
                Err(CommitFailure::Failed(e)) => {
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

    /// Messages whose outcome could not be committed at all (their reject refused; the
    /// committer counted them given up): left invisible until their timeout, to come back
    /// until the redrive policy dead-letters them.
    fn leave_on_queue(&self, refused: &[Item]) {
        self.tracker
            .forget(refused.iter().map(|i| i.msg.receipt_handle.as_str()));
    }

    /// Deletes a committed batch's messages.
    fn delete(&self, batch: Committed) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (source, tracker, stats) = (
            self.source.clone(),
            self.tracker.clone(),
            self.stats.clone(),
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
