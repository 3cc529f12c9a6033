//! Telling SQS what became of received messages: delete (after their outcome is committed)
//! and visibility changes (the heartbeat's extensions, the release at shutdown).

use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
};

use super::batch_call::{self, Policy, Refused, SenderFault};
use super::limit::{CallLimit, Slot};
use super::{call_err, short_timeouts, Source, SourceError, MAX_BATCH};
use crate::telemetry::RequestKind;

/// Calls per batch of ten before its messages are left to reappear: about 20 s of pauses in
/// all, which rides out a short outage. After that the message reappears after its visibility
/// timeout and the ledger turns it into a duplicate, deleted then. An entry refused as the
/// sender's fault (`ReceiptHandleIsInvalid`: the handle expired) is given up at once: no
/// retry can make that handle valid, and the writer is not held up for it.
const DELETE: Policy = Policy {
    op: "DeleteMessageBatch",
    attempts: 7,
    first_pause: Duration::from_millis(400),
    retry_call_errors: true,
    sender_fault: SenderFault::GiveUp,
};

/// One call per batch of ten: the heartbeat comes back soon anyway, and a release that fails
/// only means the message waits out its timeout.
const VISIBILITY: Policy = Policy {
    op: "ChangeMessageVisibilityBatch",
    attempts: 1,
    first_pause: Duration::from_millis(100),
    retry_call_errors: false,
    sender_fault: SenderFault::GiveUp,
};

/// The heartbeat's extensions: one call per batch of ten, no pause. A failed call or entry
/// is left due, and the heartbeat tries it again within a fraction of a second with every
/// other handle that failed: retrying inside the call would hold one of the few concurrent
/// slots through its pauses, and a pass over thousands of handles would end past their
/// deadline.
const EXTEND: Policy = Policy {
    op: "ChangeMessageVisibilityBatch",
    attempts: 1,
    first_pause: Duration::from_millis(200),
    retry_call_errors: false,
    sender_fault: SenderFault::GiveUp,
};

/// A visibility change is tried once by the SDK: its policy ([`EXTEND`], [`VISIBILITY`])
/// does the retrying, on a schedule that fits the deadline (the SDK's own backoff may wait
/// seconds between attempts, longer than a short visibility timeout has left).
fn single_attempt() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_max_attempts(1)
}

/// What became of a delete request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeleteReport {
    /// Entries SQS confirmed.
    pub deleted: u64,
    /// Entries that still failed after retries (they reappear after their visibility timeout
    /// and the ledger turns them into duplicates skipped).
    pub failed: u64,
    /// Of `failed`, entries refused as the sender's fault and given up without a retry.
    pub permanent: u64,
}

impl Source {
    /// A call within an adaptive limit ended: the limit adapts, and `/metrics` shows its new
    /// value under `kind`.
    fn call_done(&self, slot: Slot<'_>, kind: RequestKind, failed: bool) {
        let limit = slot.done(failed);
        self.requests.set_limit(kind, limit);
    }

    /// Deletes `(message id, receipt handle)` pairs in batches of ten, as many calls at a
    /// time as the adaptive limit allows (shared by every writer: [`super::limit`]). Entries
    /// that fail are retried (up to seven calls), then counted and logged by message id.
    pub async fn delete(&self, handles: &[(&str, &str)]) -> DeleteReport {
        // Every call may start: the limit's slots bound them.
        let calls = handles.chunks(MAX_BATCH).map(|c| self.delete_chunk(c));
        let reports = futures::future::join_all(calls).await;
        let mut report = DeleteReport::default();
        for r in reports {
            report.deleted += r.deleted;
            report.failed += r.failed;
            report.permanent += r.permanent;
        }
        report
    }

    async fn delete_chunk(&self, chunk: &[(&str, &str)]) -> DeleteReport {
        let outcome = batch_call::with_retries(chunk, DELETE, |pending| async move {
            let entries = pending
                .iter()
                .filter_map(|(i, (_, handle))| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*handle)
                        .build()
                        .ok()
                })
                .collect();
            let slot = self.delete_calls.slot().await;
            self.count(RequestKind::Delete);
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .customize()
                .config_override(short_timeouts())
                .send()
                .await;
            self.call_done(slot, RequestKind::Delete, out.is_err());
            let out = out.map_err(|e| call_err("DeleteMessageBatch", e))?;
            let refused = Refused::from_answer(&out.failed);
            for f in &refused {
                let message_id = chunk.get(f.index).map_or("?", |(id, _)| *id);
                tracing::warn!(message_id, code = %f.code, sender_fault = f.sender_fault, "delete failed for one entry");
            }
            Ok(refused)
        })
        .await;
        match outcome {
            Ok(o) => DeleteReport {
                deleted: o.done,
                failed: o.failed,
                permanent: o.permanent,
            },
            // Call errors are retried, so this is not reached; count it all as failed anyway.
            Err(_) => DeleteReport {
                deleted: 0,
                failed: chunk.len() as u64,
                permanent: 0,
            },
        }
    }

    /// Sets the visibility timeout of messages (0 releases them to other consumers). Fails
    /// if any entry fails; [`Source::change_visibility_lenient`] counts instead.
    pub async fn change_visibility(
        &self,
        receipt_handles: &[&str],
        seconds: i32,
    ) -> Result<(), SourceError> {
        match self
            .change_visibility_lenient(receipt_handles, seconds)
            .await?
        {
            0 => Ok(()),
            n => Err(SourceError::Call {
                op: "ChangeMessageVisibilityBatch",
                detail: format!("{n} entries failed"),
            }),
        }
    }

    /// Like [`Source::change_visibility`], but returns how many entries failed (for example
    /// messages deleted meanwhile) instead of failing.
    pub async fn change_visibility_lenient(
        &self,
        receipt_handles: &[&str],
        seconds: i32,
    ) -> Result<usize, SourceError> {
        let mut failed = 0;
        for chunk in receipt_handles.chunks(MAX_BATCH) {
            failed += self
                .visibility_chunk(chunk, seconds, VISIBILITY, None)
                .await?
                .len();
        }
        Ok(failed)
    }

    /// Extends the visibility of held messages, as many calls at a time as the heartbeat's
    /// adaptive limit allows (at least [`super::EXTEND_CALLS_MIN`]), each tried once;
    /// returns the indexes (into `receipt_handles`) that were not extended. The calls go out
    /// in the order given (the caller puts the earliest deadlines first) and a slow one holds
    /// up no other: the next call starts as soon as any finishes.
    pub async fn extend_visibility(&self, receipt_handles: &[&str], seconds: i32) -> Vec<usize> {
        use futures::stream::{self, StreamExt};
        let calls = receipt_handles
            .chunks(MAX_BATCH)
            .enumerate()
            .map(|(n, chunk)| async move {
                let failed = self
                    .visibility_chunk(chunk, seconds, EXTEND, Some(&self.extend_calls))
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, count = chunk.len(), "could not extend visibility");
                        (0..chunk.len()).collect()
                    });
                failed
                    .into_iter()
                    .map(|i| n * MAX_BATCH + i)
                    .collect::<Vec<_>>()
            })
            // Collected first: a lazy iterator of futures here trips rustc's higher-ranked
            // lifetime check once the heartbeat is spawned.
            .collect::<Vec<_>>();
        let answers: Vec<Vec<usize>> = stream::iter(calls)
            .buffer_unordered(super::EXTEND_CALLS_MAX)
            .collect()
            .await;
        let mut not_extended: Vec<usize> = answers.into_iter().flatten().collect();
        not_extended.sort_unstable();
        not_extended
    }

    /// One `ChangeMessageVisibilityBatch` of at most ten, within `calls` if given; the
    /// indexes that failed.
    async fn visibility_chunk(
        &self,
        chunk: &[&str],
        seconds: i32,
        policy: Policy,
        calls: Option<&CallLimit>,
    ) -> Result<Vec<usize>, SourceError> {
        let outcome = batch_call::with_retries(chunk, policy, |pending| async move {
            let entries = pending
                .iter()
                .filter_map(|(i, h)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(**h)
                        .visibility_timeout(seconds)
                        .build()
                        .ok()
                })
                .collect();
            let slot = match calls {
                Some(c) => Some(c.slot().await),
                None => None,
            };
            self.count(RequestKind::ChangeVisibility);
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .customize()
                .config_override(short_timeouts().retry_config(single_attempt()))
                .send()
                .await;
            if let Some(slot) = slot {
                self.call_done(slot, RequestKind::ChangeVisibility, out.is_err());
            }
            let out = out.map_err(|e| call_err("ChangeMessageVisibilityBatch", e))?;
            for f in &out.failed {
                tracing::debug!(code = %f.code, "visibility change failed for one entry");
            }
            Ok(Refused::from_answer(&out.failed))
        })
        .await?;
        Ok(outcome.failed_indexes)
    }
}
