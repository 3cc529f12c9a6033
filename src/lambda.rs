//! AWS Lambda: the same decode/mask/sink core behind an SQS-event handler.
//!
//! Lambda's SQS event source receives and deletes the messages; the handler only has to
//! commit. Each invocation's records are decoded, masked and committed as one batch (rows,
//! rejects and ledger in one transaction, with poison isolation), so malformed messages are
//! quarantined, not failed. The response lists in `batchItemFailures` only the messages whose
//! outcome could not be committed; Lambda returns just those to the queue. Enable
//! `ReportBatchItemFailures` on the event source mapping.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::DateTime;
use tokio_util::sync::CancellationToken;

use crate::config::DbConfig;
use crate::decode::Limits;
use crate::mask::{Keyring, Masker};
use crate::pii::Pii;
use crate::pipeline::{self, Committer, PipelineError};
use crate::sink::{Sink, SinkError};
use crate::source::Received;
use crate::telemetry::{Stats, Summary};

/// Retries per invocation on transient database errors; Lambda retries the rest later.
const ATTEMPTS: u32 = 3;

/// A warm handler: one database connection and one expanded keyring, reused across
/// invocations of the same Lambda instance.
pub struct Handler {
    committer: tokio::sync::Mutex<(Committer, Masker)>,
    limits: Limits,
    stats: Arc<Stats>,
}

impl Handler {
    /// Connects and reads the table's shape (at cold start).
    pub async fn new(db: DbConfig, keyring: &Keyring) -> Result<Self, PipelineError> {
        let (sink, limits): (Sink, Limits) =
            Sink::connect(&db).await.map_err(PipelineError::Sink)?;
        let stats = Arc::new(Stats::default());
        let committer = Committer {
            db,
            sink: Some(sink),
            masker: Masker::new(keyring),
            stats: stats.clone(),
            hard_stop: CancellationToken::new(),
            attempts: ATTEMPTS,
        };
        Ok(Self {
            committer: tokio::sync::Mutex::new((committer, Masker::new(keyring))),
            limits,
            stats,
        })
    }

    /// Commits one SQS event; returns the messages that must be retried.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let msgs: Vec<Received> = event
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| Received {
                // Lambda always sends message ids; a stand-in keeps a malformed event from
                // panicking and still quarantines the body.
                message_id: r
                    .message_id
                    .unwrap_or_else(|| format!("lambda-missing-id-{i}")),
                receipt_handle: r.receipt_handle.unwrap_or_default(),
                body: Pii::new(r.body.unwrap_or_default()),
                sent_at: r
                    .attributes
                    .get("SentTimestamp")
                    .and_then(|v| v.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis),
                receive_count: r
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|v| v.parse().ok()),
            })
            .collect();
        self.stats
            .received
            .fetch_add(msgs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut guard = self.committer.lock().await;
        let (committer, masker) = &mut *guard;
        let mut items = pipeline::to_items(msgs, &self.limits, masker, &self.stats);
        let mut response = SqsBatchResponse::default();
        if let Err(e) = committer.commit(&mut items).await {
            let why = match e {
                pipeline::WriteFailure::Failed(e) => e,
                pipeline::WriteFailure::Stopped => SinkError::Incompatible("stopped".into()),
            };
            tracing::error!(error = %why, messages = items.len(), "batch not committed; returning every message to the queue");
            for item in &items {
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
