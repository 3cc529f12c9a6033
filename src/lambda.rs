//! AWS Lambda: the same transform and commit behind an SQS-event handler.
//!
//! Lambda's SQS event source receives and deletes the messages; the handler only has to
//! commit. Each invocation's records are transformed and committed as one batch (rows,
//! rejects and ledger in one transaction, with poison isolation), so malformed messages are
//! quarantined, not failed. The response lists in `batchItemFailures` only the messages whose
//! outcome could not be committed; Lambda returns just those to the queue. Enable
//! `ReportBatchItemFailures` on the event source mapping.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;

use crate::config::DbConfig;
use crate::decode::Framing;
use crate::mask::{Keyring, Masker};
use crate::pipeline::batch::to_items;
use crate::pipeline::budget::Charge;
use crate::pipeline::commit::{CommitFailure, Committer};
use crate::pipeline::PipelineError;
use crate::source::Received;
use crate::telemetry::{Stats, Summary};

/// Retries per invocation on transient database errors; Lambda retries the rest later.
const ATTEMPTS: u32 = 3;

/// A warm handler: one database connection and one expanded keyring, reused across
/// invocations of the same Lambda instance.
pub struct Handler {
    committer: tokio::sync::Mutex<(Committer, Masker)>,
    stats: Arc<Stats>,
    /// How the records' bodies are read, as `run` reads them (`SQS2PG_ENVELOPE`, …).
    framing: Framing,
}

impl Handler {
    /// Connects and reads the table's shape (at cold start).
    pub async fn new(db: DbConfig, keyring: &Keyring) -> Result<Self, PipelineError> {
        let client = crate::db::connect(&db).await?;
        let shape = crate::db::schema::inspect(&client).await?;
        let writer = crate::db::BatchWriter::prepare(client, &shape, &db).await?;
        let stats = Arc::new(Stats::default());
        let shape = Arc::new(tokio::sync::watch::Sender::new(shape));
        // Nothing stops a Lambda invocation but its own timeout.
        let mut committer = Committer::new(db, shape, writer, Masker::new(keyring), stats.clone());
        committer.attempts = ATTEMPTS;
        Ok(Self {
            committer: tokio::sync::Mutex::new((committer, Masker::new(keyring))),
            stats,
            framing: Framing::default(),
        })
    }

    /// The same handler, reading bodies with `framing` (the default: envelopes `auto`,
    /// create_date from SentTimestamp).
    pub fn framed(self, framing: Framing) -> Self {
        Self { framing, ..self }
    }

    /// Commits one SQS event; returns the messages that must be retried.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let mut msgs = Vec::with_capacity(event.records.len());
        for r in event.records {
            match received(r) {
                Some(m) => msgs.push(m.framed(self.framing)),
                None => response.batch_item_failures.push(unidentified_failure()),
            }
        }
        if !response.batch_item_failures.is_empty() {
            tracing::error!(
                records = response.batch_item_failures.len(),
                "event records without a messageId: not committed (the ledger needs an id); reported as failed so nothing is acknowledged unwritten"
            );
        }
        self.stats.add_received(msgs.len());
        let mut guard = self.committer.lock().await;
        let (committer, masker) = &mut *guard;
        let limits = committer.shape.borrow().limits;
        let msgs = msgs.into_iter().map(|m| (m, Charge::default()));
        let mut items = to_items(msgs, &limits, masker, &self.stats);
        let committed = AssertUnwindSafe(committer.commit(&mut items))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                // Whatever the connection was doing is not to be trusted.
                committer.writer = None;
                Err(CommitFailure::Panicked)
            });
        if let Err(e) = committed {
            match e {
                CommitFailure::Panicked => tracing::error!(
                    messages = items.len(),
                    "the commit panicked (a bug: please report it); returning every message to the queue"
                ),
                CommitFailure::Failed(e) => {
                    tracing::error!(error = %e, messages = items.len(), "batch not committed; returning every message to the queue")
                }
                CommitFailure::Stopped => tracing::error!(
                    messages = items.len(),
                    "stopped before the batch committed; returning every message to the queue"
                ),
            }
            for item in &items {
                let mut f = BatchItemFailure::default();
                f.item_identifier = item.record.message_id.clone();
                response.batch_item_failures.push(f);
            }
        } else {
            // A message whose reject the database refused has nothing committed.
            for item in items.iter().filter(|i| i.refused.is_some()) {
                let mut f = BatchItemFailure::default();
                f.item_identifier = item.record.message_id.clone();
                response.batch_item_failures.push(f);
            }
        }
        response
    }

    /// What this instance has done so far.
    pub fn summary(&self) -> Summary {
        self.stats.summary(std::time::Duration::ZERO)
    }
}

/// One event record as a received message, or `None` without a `messageId`. Lambda always
/// sends one; a stand-in could not be told apart from another invocation's (the ledger would
/// take the second for a duplicate and it would be acknowledged, lost), and one derived from
/// the body would merge two messages that happen to be alike.
fn received(r: SqsMessage) -> Option<Received> {
    let attr = |name: &str| r.attributes.get(name).map(String::as_str);
    Some(Received::new(
        r.message_id.clone().filter(|id| !id.is_empty())?,
        r.receipt_handle.clone().unwrap_or_default(),
        r.body.clone().unwrap_or_default(),
        attr("SentTimestamp"),
        attr("ApproximateReceiveCount"),
    ))
}

/// The failure for a record without an id. Its identifier is empty: Lambda reads that as
/// "the whole batch failed" and returns every message of it to the queue (the committed
/// ones are no-ops on redelivery), which is the only way to not acknowledge this one.
fn unidentified_failure() -> BatchItemFailure {
    BatchItemFailure::default()
}
