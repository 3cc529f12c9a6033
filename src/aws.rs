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

/// What a failed call says about what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The credential chain found nothing: a setting to fix, however often it is retried.
    NoCredentials,
    /// The service refused these credentials the call (IAM): a policy to fix, not an outage.
    AccessDenied,
    /// The request never got an answer (refused, reset, timed out, DNS): an outage, which a
    /// retry or a restart may get past.
    Unreachable,
    /// The service answered with an error, or anything else.
    Other,
}

/// The codes AWS services answer a call the caller's policy does not allow with: SQS's
/// query-compatible code and the JSON protocols' (KMS, SQS's own `__type`).
const ACCESS_DENIED_CODES: [&str; 2] = ["AccessDenied", "AccessDeniedException"];

/// 403 codes that are about the credentials themselves (a wrong or expired key, a bad
/// signature), not about what the policy allows: naming an IAM action for them would send
/// the user to the wrong fix.
const CREDENTIAL_403_CODES: [&str; 7] = [
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// The [`FailureKind`] of `e`. A missing credential surfaces as a dispatch failure too, so
/// it is looked for first, among the error's causes.
pub fn failure_kind<E>(e: &SdkError<E, HttpResponse>) -> FailureKind
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<aws_credential_types::provider::error::CredentialsError>() {
            return FailureKind::NoCredentials;
        }
        cause = c.source();
    }
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => FailureKind::Unreachable,
        SdkError::ServiceError(s) if is_access_denied(e.code(), s.raw().status().as_u16()) => {
            FailureKind::AccessDenied
        }
        _ => FailureKind::Other,
    }
}

/// An answer refusing the call by policy: one of [`ACCESS_DENIED_CODES`], or any other 403
/// but those about the credentials themselves.
fn is_access_denied(code: Option<&str>, status: u16) -> bool {
    match code {
        Some(c) if ACCESS_DENIED_CODES.contains(&c) => true,
        Some(c) if CREDENTIAL_403_CODES.contains(&c) => false,
        _ => status == 403,
    }
}

/// The IAM action that allows `operation` of `service` (`sqs`, `kms`): the operation's
/// name, but for SQS's batch calls, which IAM authorises as their single form
/// (`DeleteMessageBatch` needs `sqs:DeleteMessage`).
pub fn iam_action(service: &str, operation: &str) -> String {
    let action = match (service, operation.strip_suffix("Batch")) {
        ("sqs", Some(single)) => single,
        _ => operation,
    };
    format!("{service}:{action}")
}

/// What to say when [`FailureKind::AccessDenied`]: who is refused what, and where to fix it.
pub fn access_denied_text(action: &str, detail: &str) -> String {
    format!("these AWS credentials are not allowed to call {action} ({detail}): grant it in the IAM policy of the user or role sqs2pg runs as")
}

/// What to say when [`FailureKind::NoCredentials`]: the chain's own account lists every
/// provider it tried, one a line, which says less than this.
pub const NO_CREDENTIALS: &str = "no AWS credentials found (tried the environment, the profile, web identity, ECS and instance metadata): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a role (IRSA, an instance profile)";

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

/// The queue URL names one region and the AWS configuration another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--queue-url / SQS2PG_QUEUE_URL is a queue in region {url_region}, but the configured AWS region (AWS_REGION or the profile) is {configured}: unset AWS_REGION, or set it to {url_region}")]
pub struct RegionConflict {
    /// The region in the URL.
    pub url_region: String,
    /// The region the SDK chain found.
    pub configured: String,
}

/// The region to call a queue in: the one its URL names, when the URL is a real AWS one
/// (`https://sqs.eu-west-1.amazonaws.com/123456789012/q`); `None` to keep the configured
/// region (any other URL: LocalStack, moto, a proxy). A URL and a configuration that
/// disagree are refused rather than calling the wrong region, which answers with a
/// confusing "queue does not exist". Not checked when the endpoint is overridden
/// (`AWS_ENDPOINT_URL`): emulators put any region in their URLs.
pub fn region_for_queue(
    queue_url: &str,
    configured: Option<&str>,
    endpoint_overridden: bool,
) -> Result<Option<String>, RegionConflict> {
    let Some(url_region) = queue_url_region(queue_url).filter(|_| !endpoint_overridden) else {
        return Ok(None);
    };
    match configured {
        Some(c) if c != url_region => Err(RegionConflict {
            url_region: url_region.to_owned(),
            configured: c.to_owned(),
        }),
        _ => Ok(Some(url_region.to_owned())),
    }
}

/// The region in a real AWS SQS queue URL: `sqs.<region>.amazonaws.com` (`.com.cn`, the
/// dual-stack `.api.aws`, and VPC endpoints `….sqs.<region>.vpce.amazonaws.com`), or the
/// legacy `<region>.queue.amazonaws.com` and `queue.amazonaws.com` (us-east-1).
pub fn queue_url_region(queue_url: &str) -> Option<&str> {
    let rest = queue_url
        .strip_prefix("https://")
        .or_else(|| queue_url.strip_prefix("http://"))?;
    let authority = rest.split('/').next()?;
    let host = authority.split(':').next()?;
    let labels = ["amazonaws.com", "amazonaws.com.cn", "api.aws"]
        .iter()
        .find_map(|suffix| host.strip_suffix(suffix)?.strip_suffix('.'))?;
    if labels == "queue" {
        return Some("us-east-1");
    }
    let parts: Vec<&str> = labels.split('.').collect();
    let region = match parts.as_slice() {
        [region, "queue"] => region,
        [.., "sqs", region] | [.., "sqs", region, "vpce"] => region,
        _ => return None,
    };
    is_region(region).then_some(*region)
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`: letters and hyphens, then a
/// number.
fn is_region(s: &str) -> bool {
    let Some((name, number)) = s.rsplit_once('-') else {
        return false;
    };
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && name.contains('-')
        && name
            .split('-')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_come_from_real_aws_queue_urls() {
        for (url, want) in [
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/login-queue",
                Some("eu-west-1"),
            ),
            (
                "https://sqs.us-gov-west-1.amazonaws.com/123456789012/q.fifo",
                Some("us-gov-west-1"),
            ),
            (
                "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q",
                Some("cn-north-1"),
            ),
            (
                "https://sqs.ap-southeast-2.api.aws/123456789012/q",
                Some("ap-southeast-2"),
            ),
            (
                "https://vpce-0a1b-x2y3.sqs.eu-central-1.vpce.amazonaws.com/123456789012/q",
                Some("eu-central-1"),
            ),
            (
                "https://eu-west-2.queue.amazonaws.com/123456789012/q",
                Some("eu-west-2"),
            ),
            (
                "https://queue.amazonaws.com/123456789012/q",
                Some("us-east-1"),
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com:443/123456789012/q",
                Some("eu-west-1"),
            ),
            (
                "http://127.0.0.1:4566/queue/us-east-1/000000000000/login-queue",
                None,
            ),
            ("http://localhost:4566/000000000000/login-queue", None),
            (
                "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/q",
                None,
            ),
            ("https://sqs.amazonaws.com/1/q", None),
            ("https://sqs.EU-WEST-1.amazonaws.com/1/q", None),
            ("https://sqs.eu-west.amazonaws.com/1/q", None),
            ("https://evil.example/sqs.eu-west-1.amazonaws.com/1/q", None),
            ("unused", None),
            ("", None),
        ] {
            assert_eq!(queue_url_region(url), want, "{url}");
        }
    }

    #[test]
    fn batch_calls_need_the_iam_action_of_their_single_form() {
        for (service, op, want) in [
            ("sqs", "GetQueueUrl", "sqs:GetQueueUrl"),
            ("sqs", "ReceiveMessage", "sqs:ReceiveMessage"),
            ("sqs", "DeleteMessageBatch", "sqs:DeleteMessage"),
            (
                "sqs",
                "ChangeMessageVisibilityBatch",
                "sqs:ChangeMessageVisibility",
            ),
            ("sqs", "SendMessageBatch", "sqs:SendMessage"),
            ("sqs", "GetQueueAttributes", "sqs:GetQueueAttributes"),
            ("kms", "Decrypt", "kms:Decrypt"),
            (
                "kms",
                "GenerateDataKeyWithoutPlaintext",
                "kms:GenerateDataKeyWithoutPlaintext",
            ),
        ] {
            assert_eq!(iam_action(service, op), want);
        }
    }

    #[test]
    fn a_403_is_access_denied_unless_it_is_about_the_credentials() {
        assert!(is_access_denied(Some("AccessDenied"), 400));
        assert!(is_access_denied(Some("AccessDeniedException"), 400));
        assert!(is_access_denied(Some("KMS.AccessDenied"), 403));
        assert!(is_access_denied(None, 403));
        assert!(!is_access_denied(Some("InvalidClientTokenId"), 403));
        assert!(!is_access_denied(Some("SignatureDoesNotMatch"), 403));
        assert!(!is_access_denied(Some("QueueDoesNotExist"), 400));
    }

    #[test]
    fn a_conflicting_region_is_refused_unless_the_endpoint_is_overridden() {
        let aws = "https://sqs.eu-west-1.amazonaws.com/123456789012/login-queue";
        assert_eq!(
            region_for_queue(aws, None, false),
            Ok(Some("eu-west-1".into()))
        );
        assert_eq!(
            region_for_queue(aws, Some("eu-west-1"), false),
            Ok(Some("eu-west-1".into()))
        );
        let e = region_for_queue(aws, Some("us-east-1"), false).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("eu-west-1")
                && text.contains("us-east-1")
                && text.contains("--queue-url"),
            "{text}"
        );
        assert_eq!(region_for_queue(aws, Some("us-east-1"), true), Ok(None));
        let local = "http://127.0.0.1:4566/queue/us-east-1/000000000000/login-queue";
        assert_eq!(region_for_queue(local, Some("eu-west-1"), false), Ok(None));
        assert_eq!(region_for_queue(local, None, false), Ok(None));
    }
}
