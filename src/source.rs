//! The SQS side: receive with long polling, delete in batches of ten, send, and queue stats.
//!
//! Built on `aws-sdk-sqs` with the standard `aws-config` chain, so `AWS_ENDPOINT_URL` points
//! it at LocalStack and real AWS works unchanged. Errors name the operation and the SDK's
//! error code; they never hold a message body.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use thiserror::Error;

use crate::config::SqsConfig;
use crate::pii::Pii;

/// SQS allows at most ten entries per batch call and per receive.
pub const MAX_BATCH: usize = 10;
/// Attempts per delete call before its messages are left to reappear.
const DELETE_ATTEMPTS: u32 = 7;
/// SQS's limit for one message, and for one `SendMessageBatch` call in total.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// An SQS call that failed. The text names the call and what to check.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The AWS configuration has no region.
    #[error("no AWS region configured: set AWS_REGION (e.g. us-east-1)")]
    NoRegion,
    /// The queue name does not resolve.
    #[error("queue {name:?} not found at the configured endpoint ({detail}): create it, or set --queue-url / SQS2PG_QUEUE_URL")]
    QueueNotFound {
        /// The name looked up.
        name: String,
        /// The SDK's explanation.
        detail: String,
    },
    /// Any other call failure.
    #[error("SQS {op} failed: {detail}")]
    Call {
        /// The operation.
        op: &'static str,
        /// The SDK's explanation (code and message, never a body).
        detail: String,
    },
    /// A message too big to send.
    #[error("message {index} is {len} bytes; SQS accepts at most {MAX_MESSAGE_BYTES}")]
    TooBig {
        /// 0-based position in the input.
        index: usize,
        /// Its size.
        len: usize,
    },
}

/// Deletes and visibility changes answer in milliseconds; a hung one is retried sooner
/// than the long-poll timeout would allow.
fn short_timeouts() -> aws_sdk_sqs::config::Builder {
    aws_sdk_sqs::config::Builder::default().timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_secs(10))
            .build(),
    )
}

fn call_err<E: std::error::Error + 'static>(op: &'static str, e: E) -> SourceError {
    SourceError::Call {
        op,
        detail: DisplayErrorContext(&e).to_string(),
    }
}

/// One received message. The body is PII until decoded and masked.
#[derive(Debug, Clone)]
pub struct Received {
    /// SQS message id; the idempotency key.
    pub message_id: String,
    /// Handle for delete and visibility calls.
    pub receipt_handle: String,
    /// The body, verbatim.
    pub body: Pii<String>,
    /// `SentTimestamp`.
    pub sent_at: Option<DateTime<Utc>>,
    /// `ApproximateReceiveCount`.
    pub receive_count: Option<i32>,
}

/// What became of a delete request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeleteReport {
    /// Entries SQS confirmed.
    pub deleted: u64,
    /// Entries that still failed after retries (they reappear after their visibility timeout
    /// and the ledger turns them into duplicates skipped).
    pub failed: u64,
}

/// Approximate queue depth.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    /// `ApproximateNumberOfMessages`.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`.
    pub in_flight: u64,
}

/// A handle on one queue. Cheap to clone (the SDK client is reference-counted).
#[derive(Clone, Debug)]
pub struct Source {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Source {
    /// Loads the AWS configuration and resolves the queue URL.
    pub async fn connect(cfg: &SqsConfig) -> Result<Self, SourceError> {
        let sdk = crate::config::aws_sdk_config().await;
        if sdk.region().is_none() {
            return Err(SourceError::NoRegion);
        }
        let client = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = match &cfg.queue_url {
            Some(url) => url.clone(),
            None => Self::resolve(&client, &cfg.queue_name).await?,
        };
        Ok(Self { client, queue_url })
    }

    async fn resolve(client: &aws_sdk_sqs::Client, name: &str) -> Result<String, SourceError> {
        let out = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| {
                let detail = match e.as_service_error() {
                    Some(s) if s.is_queue_does_not_exist() => "it does not exist".to_string(),
                    _ => DisplayErrorContext(&e).to_string(),
                };
                SourceError::QueueNotFound {
                    name: name.into(),
                    detail,
                }
            })?;
        out.queue_url.ok_or_else(|| SourceError::QueueNotFound {
            name: name.into(),
            detail: "no URL in the answer".into(),
        })
    }

    /// The queue this source reads.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The SDK client, for calls this module does not wrap.
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// One long poll for up to ten messages, with `SentTimestamp` and
    /// `ApproximateReceiveCount`.
    pub async fn receive(&self, wait_seconds: i32) -> Result<Vec<Received>, SourceError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(MAX_BATCH as i32)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| call_err("ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let attrs = m.attributes.unwrap_or_default();
                let sent_at = attrs
                    .get(&MessageSystemAttributeName::SentTimestamp)
                    .and_then(|v| v.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis);
                let receive_count = attrs
                    .get(&MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|v| v.parse().ok());
                Some(Received {
                    message_id: m.message_id?,
                    receipt_handle: m.receipt_handle?,
                    body: Pii::new(m.body.unwrap_or_default()),
                    sent_at,
                    receive_count,
                })
            })
            .collect())
    }

    /// Deletes messages in batches of ten, `concurrency` calls at a time. Failed entries are
    /// retried once, then counted and logged by message id.
    pub async fn delete(&self, handles: &[(&str, &str)], concurrency: usize) -> DeleteReport {
        let mut report = DeleteReport::default();
        for group in handles.chunks(MAX_BATCH * concurrency.max(1)) {
            let calls: Vec<_> = group
                .chunks(MAX_BATCH)
                .map(|c| self.delete_chunk(c))
                .collect();
            for r in futures::future::join_all(calls).await {
                report.deleted += r.deleted;
                report.failed += r.failed;
            }
        }
        report
    }

    async fn delete_chunk(&self, chunk: &[(&str, &str)]) -> DeleteReport {
        let mut pending: Vec<(&str, &str)> = chunk.to_vec();
        let mut report = DeleteReport::default();
        // About 25 s in all: rides out a short outage; after that the message reappears and
        // the ledger turns it into a duplicate that is deleted then.
        for attempt in 0..DELETE_ATTEMPTS {
            let entries = pending
                .iter()
                .enumerate()
                .filter_map(|(i, (_, handle))| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*handle)
                        .build()
                        .ok()
                })
                .collect();
            match self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .customize()
                .config_override(short_timeouts())
                .send()
                .await
            {
                Ok(out) => {
                    report.deleted += out.successful.len() as u64;
                    let mut retry = Vec::new();
                    for f in &out.failed {
                        let Some(&(id, handle)) =
                            f.id.parse::<usize>().ok().and_then(|i| pending.get(i))
                        else {
                            continue;
                        };
                        tracing::warn!(message_id = id, code = %f.code, sender_fault = f.sender_fault, attempt, "delete failed for one entry");
                        retry.push((id, handle));
                    }
                    pending = retry;
                }
                Err(e) => {
                    tracing::warn!(error = %DisplayErrorContext(&e), attempt, count = pending.len(), "DeleteMessageBatch failed");
                }
            }
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200u64 << attempt.min(6))).await;
        }
        report.failed += pending.len() as u64;
        report
    }

    /// Sends bodies verbatim, in batches of ten (split further to stay under 256 KiB),
    /// `concurrency` calls at a time. Returns how many were sent.
    pub async fn send(&self, bodies: &[String], concurrency: usize) -> Result<u64, SourceError> {
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
        let mut batches: Vec<&[String]> = Vec::new();
        let mut start = 0;
        let mut bytes = 0;
        for (i, b) in bodies.iter().enumerate() {
            if i - start == MAX_BATCH || bytes + b.len() > MAX_MESSAGE_BYTES {
                batches.push(&bodies[start..i]);
                start = i;
                bytes = 0;
            }
            bytes += b.len();
        }
        if start < bodies.len() {
            batches.push(&bodies[start..]);
        }
        let calls = batches.into_iter().map(|b| self.send_batch(b));
        let results: Vec<Result<u64, SourceError>> = stream::iter(calls)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        results.into_iter().sum()
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<u64, SourceError> {
        let mut pending: Vec<(usize, &String)> = bodies.iter().enumerate().collect();
        for attempt in 0..5u32 {
            let entries = pending
                .iter()
                .filter_map(|(i, b)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b.as_str())
                        .build()
                        .ok()
                })
                .collect();
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| call_err("SendMessageBatch", e))?;
            if out.failed.is_empty() {
                return Ok(bodies.len() as u64);
            }
            if let Some(f) = out.failed.iter().find(|f| f.sender_fault) {
                return Err(SourceError::Call {
                    op: "SendMessageBatch",
                    detail: format!(
                        "entry rejected: {} {}",
                        f.code,
                        f.message.as_deref().unwrap_or("")
                    ),
                });
            }
            let failed: Vec<&str> = out.failed.iter().map(|f| f.id.as_str()).collect();
            pending.retain(|(i, _)| failed.contains(&i.to_string().as_str()));
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        Err(SourceError::Call {
            op: "SendMessageBatch",
            detail: format!("{} entries still failing after retries", pending.len()),
        })
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
            let entries = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*h)
                        .visibility_timeout(seconds)
                        .build()
                        .ok()
                })
                .collect();
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .customize()
                .config_override(short_timeouts())
                .send()
                .await
                .map_err(|e| call_err("ChangeMessageVisibilityBatch", e))?;
            for f in &out.failed {
                tracing::debug!(code = %f.code, "visibility change failed for one entry");
            }
            failed += out.failed.len();
        }
        Ok(failed)
    }

    /// The queue's visibility timeout (`VisibilityTimeout`), at least one second.
    pub async fn visibility_timeout(&self) -> Result<Duration, SourceError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|e| call_err("GetQueueAttributes", e))?;
        let secs: u64 = out
            .attributes
            .unwrap_or_default()
            .get(&QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        Ok(Duration::from_secs(secs.max(1)))
    }

    /// Approximate visible and in-flight counts.
    pub async fn depth(&self) -> Result<QueueDepth, SourceError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| call_err("GetQueueAttributes", e))?;
        let attrs: HashMap<QueueAttributeName, String> = out.attributes.unwrap_or_default();
        let get = |k: &QueueAttributeName| attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(QueueDepth {
            visible: get(&QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}
