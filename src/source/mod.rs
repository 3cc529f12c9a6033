//! The SQS side: receive with long polling ([`receive`]), delete and visibility changes in
//! batches of ten ([`ack`]), send ([`send`]), and the queue's attributes.
//!
//! Built on `aws-sdk-sqs` with the standard `aws-config` chain, so `AWS_ENDPOINT_URL` points
//! it at LocalStack and real AWS works unchanged. Errors name the operation and the service's
//! own code and message; they never hold a message body.

pub mod ack;
mod batch_call;
pub mod fifo;
pub mod limit;
pub mod receive;
pub mod send;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use thiserror::Error;

use crate::config::SqsConfig;
use crate::decode::Framing;
use crate::telemetry::{RequestKind, SqsRequests};
use limit::CallLimit;

pub use ack::DeleteReport;
pub use receive::Received;

/// SQS allows at most ten entries per batch call and per receive.
pub const MAX_BATCH: usize = 10;
/// SQS's limit for one message, and for one `SendMessageBatch` call in total: 1 MiB since
/// August 2025 (256 KiB before; a queue whose `MaximumMessageSize` is lower refuses more).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The fewest delete calls in flight, for a run of fewer pollers than this.
pub const DELETE_CALLS_MIN: usize = 4;
/// The most delete calls in flight, per poller above the floor.
pub const DELETE_CALLS_PER_POLLER: usize = 4;

/// The heartbeat's visibility calls start, and stay at least, at this many in flight: with
/// thousands of messages held, one call after another could land after the first expired.
pub const EXTEND_CALLS_MIN: usize = 8;
/// At most this many.
pub const EXTEND_CALLS_MAX: usize = 64;

/// An SQS call that failed. The text names the call and what to check.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The AWS configuration has no region.
    #[error("no AWS region configured: set AWS_REGION (e.g. us-east-1)")]
    NoRegion,
    /// The queue URL names another region than the configuration.
    #[error(transparent)]
    RegionConflict(#[from] crate::aws::RegionConflict),
    /// The credential chain found no credentials.
    #[error("{}", crate::aws::NO_CREDENTIALS)]
    NoCredentials,
    /// SQS refused the call by policy: a grant to add (exit 2), named by its IAM action.
    #[error("{}", crate::aws::access_denied_text(action, detail))]
    AccessDenied {
        /// The IAM action refused (`sqs:ReceiveMessage`).
        action: String,
        /// The service's code and message.
        detail: String,
    },
    /// SQS did not answer: an outage (exit 1, so a service manager restarts), not a setting.
    #[error("cannot reach SQS for {op} ({detail}): check the network, a proxy, or AWS_ENDPOINT_URL if set")]
    Unreachable {
        /// The operation.
        op: &'static str,
        /// The chain of causes.
        detail: String,
    },
    /// The queue name does not resolve.
    #[error("queue {name:?} not found at the configured endpoint ({detail}): create it, or set --queue-url / SQS2PG_QUEUE_URL")]
    QueueNotFound {
        /// The name looked up.
        name: String,
        /// The service's explanation.
        detail: String,
    },
    /// The configured queue URL names no queue.
    #[error("no queue at --queue-url / SQS2PG_QUEUE_URL {url:?} ({detail}): check the URL, create the queue, or unset it to resolve --queue-name")]
    QueueUrlNotFound {
        /// The URL given.
        url: String,
        /// The service's code and message.
        detail: String,
    },
    /// Any other call failure.
    #[error("SQS {op} failed: {detail}")]
    Call {
        /// The operation.
        op: &'static str,
        /// The service's code and message (never a body).
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

/// Approximate queue depth.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    /// `ApproximateNumberOfMessages`.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`.
    pub in_flight: u64,
}

/// What a run needs to know of its queue before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// `VisibilityTimeout`, at least one second (30 s if the queue does not say).
    pub visibility: Duration,
    /// `MaximumMessageSize`: the largest body a receive can bring (SQS's limit if the queue
    /// does not say).
    pub max_message_bytes: usize,
}

/// A handle on one queue. Cheap to clone (the SDK client is reference-counted).
#[derive(Clone, Debug)]
pub struct Source {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    /// Stamped on every message received.
    framing: Framing,
    /// What receives ask for beyond the body (a mapping's `group_id` and attributes).
    wants: receive::Wants,
    /// Every call made through this source and its clones, by kind.
    requests: Arc<SqsRequests>,
    /// Delete calls in flight, shared by every writer.
    delete_calls: CallLimit,
    /// The heartbeat's visibility calls in flight.
    extend_calls: CallLimit,
}

impl crate::error::Classified for SourceError {
    /// A configuration the user must fix (exit 2), not an outage.
    fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NoRegion
                | Self::NoCredentials
                | Self::AccessDenied { .. }
                | Self::RegionConflict(_)
                | Self::QueueNotFound { .. }
                | Self::QueueUrlNotFound { .. }
        )
    }
}

/// The adaptive limit on delete calls for `pollers` concurrent receives. Its floor, and
/// start, is one call per poller: a delete call takes the ten messages a receive brings,
/// so when deletes answer as fast as receives that many keep pace (a fixed 4 capped a writer
/// at ~2.7k msgs/s behind 15 ms). A loaded endpoint's deletes slow down together with its
/// receives, so falling behind the receives would not relieve it. Above the floor the limit
/// grows while the calls keep up, up to [`DELETE_CALLS_PER_POLLER`] per poller.
pub fn delete_calls(pollers: usize) -> CallLimit {
    let floor = pollers.max(DELETE_CALLS_MIN);
    CallLimit::new(floor, floor, floor * DELETE_CALLS_PER_POLLER)
}

/// The adaptive limit on the heartbeat's visibility calls: from [`EXTEND_CALLS_MIN`], never
/// below it, growing while the calls keep up, up to [`EXTEND_CALLS_MAX`].
pub fn extend_calls() -> CallLimit {
    CallLimit::new(EXTEND_CALLS_MIN, EXTEND_CALLS_MIN, EXTEND_CALLS_MAX)
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

fn call_err<E>(
    op: &'static str,
    e: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> SourceError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = crate::aws::error_text(&e);
    match crate::aws::failure_kind(&e) {
        crate::aws::FailureKind::NoCredentials => SourceError::NoCredentials,
        crate::aws::FailureKind::AccessDenied => SourceError::AccessDenied {
            action: crate::aws::iam_action("sqs", op),
            detail,
        },
        crate::aws::FailureKind::Unreachable => SourceError::Unreachable { op, detail },
        crate::aws::FailureKind::Other => SourceError::Call { op, detail },
    }
}

/// SQS's answer for a queue that does not exist: `QueueDoesNotExist` in the JSON protocol,
/// `AWS.SimpleQueueService.NonExistentQueue` in the query protocol (and some emulators).
fn is_missing_queue<E>(
    e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> bool
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    matches!(
        e.code(),
        Some("QueueDoesNotExist" | "AWS.SimpleQueueService.NonExistentQueue")
    )
}

impl Source {
    /// Loads the AWS configuration and resolves the queue URL. A real AWS queue URL sets
    /// the region when none is configured, and must agree with one that is.
    pub async fn connect(cfg: &SqsConfig) -> Result<Self, SourceError> {
        let sdk = crate::aws::sdk_config().await;
        let overridden =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_SQS").is_some();
        let url_region = match &cfg.queue_url {
            Some(url) => {
                crate::aws::region_for_queue(url, sdk.region().map(|r| r.as_ref()), overridden)?
            }
            None => None,
        };
        if sdk.region().is_none() && url_region.is_none() {
            return Err(SourceError::NoRegion);
        }
        let mut conf = aws_sdk_sqs::config::Builder::from(&sdk);
        if let Some(region) = url_region {
            conf = conf.region(aws_sdk_sqs::config::Region::new(region));
        }
        if let Some(url) = &cfg.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        let client = aws_sdk_sqs::Client::from_conf(conf.build());
        let queue_url = match &cfg.queue_url {
            Some(url) => url.clone(),
            None => Self::resolve(&client, &cfg.queue_name).await?,
        };
        Ok(Self {
            client,
            queue_url,
            framing: cfg.framing,
            wants: receive::Wants::default(),
            requests: Arc::default(),
            delete_calls: delete_calls(DELETE_CALLS_MIN),
            extend_calls: extend_calls(),
        })
    }

    /// This source, its receives asking for what `wants` names.
    pub fn asking(self, wants: receive::Wants) -> Self {
        Self { wants, ..self }
    }

    /// This source, counting its calls into `requests` (the run's [`crate::telemetry::Stats`]
    /// share them with `/metrics` and the summary).
    pub fn counting_into(mut self, requests: Arc<SqsRequests>) -> Self {
        self.requests = requests;
        self
    }

    /// This source, its delete calls sized for `pollers` concurrent receives (see
    /// [`delete_calls`]).
    pub fn deleting_for(mut self, pollers: usize) -> Self {
        self.delete_calls = delete_calls(pollers);
        self
    }

    /// Counts one call of `kind`.
    fn count(&self, kind: RequestKind) {
        self.requests.add(kind);
    }

    async fn resolve(client: &aws_sdk_sqs::Client, name: &str) -> Result<String, SourceError> {
        let out = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_queue_does_not_exist() => SourceError::QueueNotFound {
                    name: name.into(),
                    detail: "it does not exist".into(),
                },
                _ => call_err("GetQueueUrl", e),
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

    /// The SDK client, for calls this module does not wrap (tests create queues with it).
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// The queue's visibility timeout and message size limit, in one call.
    pub async fn limits(&self) -> Result<QueueLimits, SourceError> {
        let attrs = self
            .attributes(&[
                QueueAttributeName::VisibilityTimeout,
                QueueAttributeName::MaximumMessageSize,
            ])
            .await?;
        let get = |k: &QueueAttributeName| attrs.get(k).and_then(|v| v.parse::<u64>().ok());
        let secs = get(&QueueAttributeName::VisibilityTimeout).unwrap_or(30);
        let max_bytes = get(&QueueAttributeName::MaximumMessageSize)
            .and_then(|b| usize::try_from(b).ok())
            .unwrap_or(MAX_MESSAGE_BYTES);
        Ok(QueueLimits {
            visibility: Duration::from_secs(secs.max(1)),
            max_message_bytes: max_bytes.clamp(1, MAX_MESSAGE_BYTES),
        })
    }

    /// Approximate visible and in-flight counts.
    pub async fn depth(&self) -> Result<QueueDepth, SourceError> {
        let attrs = self
            .attributes(&[
                QueueAttributeName::ApproximateNumberOfMessages,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ])
            .await?;
        let get = |k: &QueueAttributeName| attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(QueueDepth {
            visible: get(&QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    /// [`call_err`] for a call on the configured queue: a queue that does not exist is a
    /// setting to fix, named as such (exit 2), not an outage.
    fn queue_call_err<E>(
        &self,
        op: &'static str,
        e: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
    ) -> SourceError
    where
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        if is_missing_queue(&e) {
            SourceError::QueueUrlNotFound {
                url: self.queue_url.clone(),
                detail: crate::aws::error_text(&e),
            }
        } else {
            call_err(op, e)
        }
    }

    /// The queue's attributes `names` (`All` for every one), counted as one call.
    pub(crate) async fn attributes(
        &self,
        names: &[QueueAttributeName],
    ) -> Result<HashMap<QueueAttributeName, String>, SourceError> {
        self.count(RequestKind::GetAttributes);
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| self.queue_call_err("GetQueueAttributes", e))?;
        Ok(out.attributes.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests;
