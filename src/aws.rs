//! What every AWS client here shares: the SDK configuration (standard credential chain,
//! timeouts that fit long polling) and one way to turn an SDK error into a sentence.

use std::time::Duration;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::RequestId;

/// The AWS SDK configuration from the standard chain (environment, profile, IMDS/IRSA),
/// with timeouts that fit long polling.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        // Long polls take up to 20 s; leave room for the answer.
        .operation_attempt_timeout(Duration::from_secs(40))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

/// `Code: message (request id …)` for an error the service answered with; for one that never
/// reached it (timeout, DNS, TLS), the chain of causes. Never the SDK's `Debug` dump, which
/// holds the raw HTTP response.
pub fn error_text<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let request = e
        .request_id()
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default();
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}{request}"),
        (Some(code), None) => format!("{code}{request}"),
        _ => format!("{}{request}", crate::error::causes(e)),
    }
}
