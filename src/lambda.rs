//! AWS Lambda: the same transform and commit behind an SQS-event handler.
//!
//! Lambda's SQS event source receives and deletes the messages; the handler only has to
//! commit. Each invocation's records are transformed and committed as one batch (rows,
//! rejects and ledger in one transaction, with poison isolation), so malformed messages are
//! quarantined, not failed. The response lists in `batchItemFailures` only the messages whose
//! outcome could not be committed; Lambda returns just those to the queue. Enable
//! `ReportBatchItemFailures` on the event source mapping. Connects and retries stop
//! [`DEADLINE_MARGIN`] before the invocation's deadline: a function's timeout is shorter than
//! the write bound's retries, and what Lambda cuts off is neither answered nor rolled back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;

use crate::commit::{to_items, CommitFailure, Committer, Item, Parts, WriteSignal};
use crate::config::DbConfig;
use crate::db::DbError;
use crate::decode::Framing;
use crate::mapping::{Mapping, MappingError};
use crate::mask::{Keyring, Masker};
use crate::source::receive::Extra;
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
    pub async fn new(db: DbConfig, keyring: &Keyring) -> Result<Self, DbError> {
        let client = crate::db::connect(&db).await?;
        let shape = crate::db::schema::inspect(&client, keyring.writing_kid().len()).await?;
        Self::on(client, shape, db, keyring).await
    }

    /// Connects and compiles `mapping` against its live tables (at cold start): a mapping
    /// that does not fit fails the cold start, as `run` refuses to start.
    pub async fn mapped(
        db: DbConfig,
        keyring: &Keyring,
        mapping: Arc<Mapping>,
    ) -> Result<Self, MappingError> {
        let client = crate::db::connect(&db).await?;
        let kid_len = keyring.writing_kid().len();
        let shape = crate::db::schema::inspect_mapped(&client, mapping, kid_len).await?;
        Ok(Self::on(client, shape, db, keyring).await?)
    }

    async fn on(
        client: tokio_postgres::Client,
        shape: crate::db::TableShape,
        db: DbConfig,
        keyring: &Keyring,
    ) -> Result<Self, DbError> {
        let sink = crate::db::Sink::prepare(client, &shape, &db).await?;
        let stats = Arc::new(Stats::default());
        // Never stopped: each invocation is bounded by its deadline instead.
        let committer = Committer::new(Parts {
            db,
            shape: Arc::new(tokio::sync::watch::Sender::new(shape)),
            sink,
            masker: Masker::new(keyring),
            stats: stats.clone(),
            health: WriteSignal::new(stats.clone()),
        })
        .attempts(ATTEMPTS);
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
        self.handle_within(event, None).await
    }

    /// [`Handler::handle`] for an invocation that ends at `deadline` (the Lambda context's):
    /// connects and retries stop [`DEADLINE_MARGIN`] before it, and what has not committed
    /// by then is answered as failed.
    pub async fn handle_until(&self, event: SqsEvent, deadline: SystemTime) -> SqsBatchResponse {
        self.handle_within(event, Some(deadline)).await
    }

    async fn handle_within(
        &self,
        event: SqsEvent,
        deadline: Option<SystemTime>,
    ) -> SqsBatchResponse {
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
        let mut items = to_items(msgs, &committer.recipe(), masker, &self.stats);
        let committed = AssertUnwindSafe(committer.commit(&mut items, deadline.and_then(cutoff)))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                committer.drop_connection();
                Err(CommitFailure::Panicked)
            });
        let failed: Vec<&Item> = match committed {
            // A message whose reject the database refused has nothing committed.
            Ok(_) => items.iter().filter(|i| i.refused.is_some()).collect(),
            Err(e) => {
                log_uncommitted(&e, items.len());
                items.iter().collect()
            }
        };
        response
            .batch_item_failures
            .extend(failed.into_iter().map(|item| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = item.record.message_id.clone();
                f
            }));
        response
    }

    /// What this instance has done so far.
    pub fn summary(&self) -> Summary {
        self.stats.summary(std::time::Duration::ZERO)
    }
}

/// Time kept back before the invocation's deadline: to drop the connection, log, and hand
/// the answer to the Runtime API before Lambda ends the invocation (which would fail every
/// record, and freeze the connection mid-transaction with the batch's ledger keys held).
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// When an invocation ending at `deadline` stops retrying, on the runtime's clock.
fn cutoff(deadline: SystemTime) -> Option<tokio::time::Instant> {
    let Ok(left) = deadline.duration_since(SystemTime::now()) else {
        // Lambda's deadline is always ahead when an invocation starts; one already past is a
        // placeholder (cargo lambda's emulator sends 600000, in 1970), and bounding by it
        // would fail every record.
        tracing::warn!("the invocation's deadline has already passed: not a real one; retries are bounded by their count only");
        return None;
    };
    Some(tokio::time::Instant::now() + left.saturating_sub(DEADLINE_MARGIN))
}

/// Why none of the batch's messages committed.
fn log_uncommitted(e: &CommitFailure, messages: usize) {
    match e {
        CommitFailure::Panicked => tracing::error!(
            messages,
            "the commit panicked (a bug: please report it); returning every message to the queue"
        ),
        CommitFailure::Failed(e) => {
            tracing::error!(error = %e, messages, "batch not committed; returning every message to the queue")
        }
        CommitFailure::Stopped => tracing::error!(
            messages,
            "the invocation's deadline is near and the batch has not committed; returning every message to the queue"
        ),
    }
}

/// One event record as a received message, or `None` without a `messageId`. Lambda always
/// sends one; a stand-in could not be told apart from another invocation's (the ledger would
/// take the second for a duplicate and it would be acknowledged, lost), and one derived from
/// the body would merge two messages that happen to be alike.
fn received(r: SqsMessage) -> Option<Received> {
    let attr = |name: &str| r.attributes.get(name).map(String::as_str);
    // The event carries every attribute; a mapping reads those it names.
    let extra = Extra {
        group_id: attr("MessageGroupId").map(str::to_owned),
        attributes: r
            .message_attributes
            .iter()
            .filter_map(|(name, v)| Some((name.clone(), v.string_value.clone()?)))
            .collect(),
    };
    Some(
        Received::new(
            r.message_id.clone().filter(|id| !id.is_empty())?,
            r.receipt_handle.clone().unwrap_or_default(),
            r.body.clone().unwrap_or_default(),
            attr("SentTimestamp"),
            attr("ApproximateReceiveCount"),
        )
        .with_extra(extra),
    )
}

/// The failure for a record without an id. Its identifier is empty: Lambda reads that as
/// "the whole batch failed" and returns every message of it to the queue (the committed
/// ones are no-ops on redelivery), which is the only way to not acknowledge this one.
fn unidentified_failure() -> BatchItemFailure {
    BatchItemFailure::default()
}
