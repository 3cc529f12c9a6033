//! One long poll, and the message it brings.

use std::time::Instant;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::{DateTime, Utc};

use super::fifo::{self, ReceiveAttempt};
use super::{call_err, Source, SourceError, MAX_BATCH};
use crate::decode::Framing;
use crate::pii::Pii;
use crate::telemetry::RequestKind;

/// One received message. The body is PII until decoded and masked.
#[derive(Debug, Clone)]
pub struct Received {
    /// SQS message id; the idempotency key.
    pub message_id: String,
    /// Handle for delete and visibility calls; empty where the caller deletes nothing
    /// (Lambda, replay).
    pub receipt_handle: String,
    /// The body, verbatim.
    pub body: Pii<String>,
    /// `SentTimestamp`.
    pub sent_at: Option<DateTime<Utc>>,
    /// `ApproximateReceiveCount`.
    pub receive_count: Option<i32>,
    /// How its body is read (`--envelope`, `--create-date-from`): a property of what feeds
    /// the queue, stamped on every message so each stage that transforms it agrees.
    pub framing: Framing,
    /// The group id and message attributes, received only when a mapping reads them (a
    /// group id or an attribute may be personal data).
    pub extra: Pii<Extra>,
}

/// What a receive asks for beyond the body and the system attributes every message has:
/// what the mapping reads, so a run without one pays for nothing more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wants {
    /// `MessageGroupId`.
    pub group_id: bool,
    /// Message attributes by name.
    pub attributes: Vec<String>,
}

/// A message's group id and string message attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extra {
    /// `MessageGroupId` (FIFO queues).
    pub group_id: Option<String>,
    /// String (and Number) message attributes by name.
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl Received {
    /// A message from the texts SQS gives its system attributes (`SentTimestamp` in epoch
    /// milliseconds, `ApproximateReceiveCount`), as both ReceiveMessage and the Lambda event
    /// carry them; unparsable values become `None`.
    pub fn new(
        message_id: String,
        receipt_handle: String,
        body: String,
        sent_timestamp: Option<&str>,
        receive_count: Option<&str>,
    ) -> Self {
        Self {
            message_id,
            receipt_handle,
            body: Pii::new(body),
            sent_at: sent_timestamp
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis),
            receive_count: receive_count.and_then(|v| v.parse().ok()),
            framing: Framing::default(),
            extra: Pii::default(),
        }
    }

    /// The same message, with its group id and attributes.
    pub fn with_extra(self, extra: Extra) -> Self {
        Self {
            extra: Pii::new(extra),
            ..self
        }
    }

    /// The same message, read with `framing`.
    pub fn framed(self, framing: Framing) -> Self {
        Self { framing, ..self }
    }
}

impl Source {
    /// One long poll for up to ten messages, as a logical receive of its own.
    pub async fn receive(&self, wait_seconds: i32) -> Result<Vec<Received>, SourceError> {
        self.receive_up_to(wait_seconds, MAX_BATCH, &mut ReceiveAttempt::default())
            .await
    }

    /// One long poll for at most `max_messages` (1 to 10, what the byte budget has room
    /// for), with `SentTimestamp` and `ApproximateReceiveCount`. On a FIFO queue it carries
    /// `attempt`'s `ReceiveRequestAttemptId`: the SDK's own retries of this call resend it,
    /// and a caller that retries a failed receive passes the same `attempt` to have it again.
    pub async fn receive_up_to(
        &self,
        wait_seconds: i32,
        max_messages: usize,
        attempt: &mut ReceiveAttempt,
    ) -> Result<Vec<Received>, SourceError> {
        let max = max_messages.clamp(1, MAX_BATCH) as i32;
        let attempt_id = fifo::is_fifo(&self.queue_url).then(|| attempt.id(Instant::now()));
        let mut call = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .set_receive_request_attempt_id(attempt_id);
        if self.wants.group_id {
            call = call.message_system_attribute_names(MessageSystemAttributeName::MessageGroupId);
        }
        for name in &self.wants.attributes {
            call = call.message_attribute_names(name);
        }
        let out = call.send().await;
        // A receive that failed brought nothing: counted as empty.
        self.count(match out.as_ref().map(|o| o.messages.as_deref()) {
            Ok(Some([_, ..])) => RequestKind::Receive,
            _ => RequestKind::EmptyReceive,
        });
        let out = out.map_err(|e| call_err("ReceiveMessage", e))?;
        attempt.answered();
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let attrs = m.attributes.unwrap_or_default();
                let attr = |name| attrs.get(&name).map(String::as_str);
                let received = Received::new(
                    m.message_id?,
                    m.receipt_handle?,
                    m.body.unwrap_or_default(),
                    attr(MessageSystemAttributeName::SentTimestamp),
                    attr(MessageSystemAttributeName::ApproximateReceiveCount),
                )
                .framed(self.framing);
                if self.wants == Wants::default() {
                    return Some(received);
                }
                let extra = Extra {
                    group_id: attr(MessageSystemAttributeName::MessageGroupId).map(str::to_owned),
                    attributes: m
                        .message_attributes
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(name, v)| Some((name, v.string_value?)))
                        .collect(),
                };
                Some(received.with_extra(extra))
            })
            .collect())
    }
}
