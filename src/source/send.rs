//! Sending bodies verbatim: `sqs2pg send`, the demo and the bench fill queues with it; on a
//! FIFO queue with the group and deduplication ids it requires.

use std::time::Duration;

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use futures::stream::{self, StreamExt};

use super::batch_call::{self, Policy, Refused, SenderFault};
use super::fifo::{self, MessageGroup};
use super::{Source, SourceError, MAX_BATCH, MAX_MESSAGE_BYTES};
use crate::telemetry::RequestKind;

/// A refusal that is the sender's fault fails the send at once; others are retried.
const SEND: Policy = Policy {
    op: "SendMessageBatch",
    attempts: 5,
    first_pause: Duration::from_millis(100),
    retry_call_errors: false,
    sender_fault: SenderFault::Fail,
};

/// What each entry sent to a FIFO queue carries; nothing on a standard queue.
#[derive(Debug, Clone, Copy)]
struct FifoEntries {
    grouping: MessageGroup,
    /// Set a deduplication id (the queue does not deduplicate by content itself).
    deduplicate: bool,
}

impl Source {
    /// [`Source::send_grouped`] with the default grouping (by user id).
    pub async fn send(&self, bodies: &[String], concurrency: usize) -> Result<u64, SourceError> {
        self.send_grouped(bodies, concurrency, MessageGroup::default())
            .await
    }

    /// Sends bodies verbatim, in batches of ten (split further to stay within 1 MiB),
    /// `concurrency` calls at a time. Returns how many were sent. On a FIFO queue each
    /// message gets its group from `grouping` and, unless the queue deduplicates by content,
    /// the hash of its body as deduplication id (the queue's attribute is read once).
    /// Within one batch the order of the input is kept; across concurrent batches it is
    /// not (`concurrency` 1 keeps it).
    pub async fn send_grouped(
        &self,
        bodies: &[String],
        concurrency: usize,
        grouping: MessageGroup,
    ) -> Result<u64, SourceError> {
        if let Some((index, b)) = bodies
            .iter()
            .enumerate()
            .find(|(_, b)| b.len() > MAX_MESSAGE_BYTES)
        {
            return Err(SourceError::TooBig {
                index,
                len: b.len(),
            });
        }
        let fifo = match fifo::is_fifo(&self.queue_url) {
            true => Some(FifoEntries {
                grouping,
                deduplicate: !self.content_based_deduplication().await?,
            }),
            false => None,
        };
        let calls = batches(bodies)
            .into_iter()
            .map(|b| self.send_batch(b, fifo));
        let results: Vec<Result<u64, SourceError>> = stream::iter(calls)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        results.into_iter().sum()
    }

    async fn content_based_deduplication(&self) -> Result<bool, SourceError> {
        let name = QueueAttributeName::ContentBasedDeduplication;
        let attrs = self.attributes(std::slice::from_ref(&name)).await?;
        Ok(attrs.get(&name).is_some_and(|v| v == "true"))
    }

    async fn send_batch(
        &self,
        bodies: &[String],
        fifo: Option<FifoEntries>,
    ) -> Result<u64, SourceError> {
        let outcome = batch_call::with_retries(bodies, SEND, |pending| async move {
            let entries = pending
                .iter()
                .filter_map(|(i, b)| {
                    let entry = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b.as_str());
                    let entry = match fifo {
                        Some(f) => entry
                            .message_group_id(fifo::group_id(b, f.grouping))
                            .set_message_deduplication_id(
                                f.deduplicate.then(|| fifo::deduplication_id(b)),
                            ),
                        None => entry,
                    };
                    entry.build().ok()
                })
                .collect();
            self.count(RequestKind::Send);
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.queue_call_err("SendMessageBatch", e))?;
            Ok(Refused::from_answer(&out.failed))
        })
        .await?;
        if outcome.failed > 0 {
            return Err(SourceError::Call {
                op: "SendMessageBatch",
                detail: format!("{} entries still failing after retries", outcome.failed),
            });
        }
        Ok(outcome.done)
    }
}

/// Consecutive runs of at most ten bodies and at most 1 MiB in all.
fn batches(bodies: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, b) in bodies.iter().enumerate() {
        if i - start == MAX_BATCH || bytes + b.len() > MAX_MESSAGE_BYTES {
            out.push(&bodies[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += b.len();
    }
    if start < bodies.len() {
        out.push(&bodies[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_ten_bodies_and_1_mib_at_most() {
        let small: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big: Vec<String> = (0..3).map(|_| "x".repeat(400 * 1024)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 1]);
        assert!(batches(&[]).is_empty());
    }
}
