//! The AWS checks: region, endpoint, where the credentials come from (never what they are),
//! then the queue and the attributes `run` depends on.

use std::collections::HashMap;

use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sqs::types::QueueAttributeName as Attr;

use super::{Check, Status};
use crate::config::SqsConfig;
use crate::source::{Source, SourceError};

/// Where `docs/DEPLOYMENT.md` shows how to give a queue its dead-letter queue.
const DLQ_HOWTO: &str = "give the queue a dead-letter queue with a RedrivePolicy (docs/DEPLOYMENT.md, \"The queue and its dead-letter queue\")";

/// The AWS checks, in order; the queue's only when a region and credentials were found
/// (without them every call fails the same way).
pub(super) async fn checks(sqs: &SqsConfig) -> Vec<Check> {
    let sdk = crate::aws::sdk_config().await;
    let region = region(&sdk, sqs);
    let credentials = credentials(&sdk).await;
    let can_call = region.status != Status::Fail && credentials.status != Status::Fail;
    let mut checks = vec![region, endpoint(&sdk, sqs), credentials];
    if can_call {
        checks.extend(queue(sqs).await);
    }
    checks
}

/// The endpoint the SQS client calls, when something overrides AWS's own.
fn overridden_endpoint(
    sdk: &aws_config::SdkConfig,
    sqs: &SqsConfig,
) -> Option<(String, &'static str)> {
    if let Some(url) = &sqs.endpoint_url {
        return Some((url.clone(), "the caller"));
    }
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL_SQS") {
        return Some((url, "AWS_ENDPOINT_URL_SQS"));
    }
    sdk.endpoint_url()
        .map(|url| (url.to_owned(), "AWS_ENDPOINT_URL or the profile"))
}

/// The region the queue is called in, and where it came from.
fn region(sdk: &aws_config::SdkConfig, sqs: &SqsConfig) -> Check {
    const NAME: &str = "region";
    // `AWS_REGION=` (set, empty) reaches the SDK as a region and fails every call later.
    let configured = sdk
        .region()
        .map(|r| r.as_ref().to_owned())
        .filter(|r| !r.is_empty());
    let overridden = overridden_endpoint(sdk, sqs).is_some();
    let from_url = match &sqs.queue_url {
        Some(url) => crate::aws::region_for_queue(url, configured.as_deref(), overridden),
        None => Ok(None),
    };
    match (from_url, configured) {
        (Err(conflict), _) => Check::fail(
            NAME,
            conflict.to_string(),
            format!("unset AWS_REGION, or set it to {}", conflict.url_region),
        ),
        (Ok(Some(region)), _) => Check::ok(NAME, format!("{region} (from the queue URL)")),
        (Ok(None), Some(region)) => {
            let origin = ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .into_iter()
                .find(|v| std::env::var(v).as_deref() == Ok(region.as_str()))
                .unwrap_or("the profile or instance metadata");
            Check::ok(NAME, format!("{region} (from {origin})"))
        }
        (Ok(None), None) => Check::fail(
            NAME,
            "no AWS region configured",
            "set AWS_REGION (e.g. us-east-1), or give a real AWS queue URL",
        ),
    }
}

/// The SQS endpoint: AWS's own unless overridden, as it is for LocalStack.
fn endpoint(sdk: &aws_config::SdkConfig, sqs: &SqsConfig) -> Check {
    let detail = match overridden_endpoint(sdk, sqs) {
        Some((url, origin)) => format!("{} (from {origin})", without_userinfo(&url)),
        None => "AWS's own for the region".to_owned(),
    };
    Check::ok("endpoint", detail)
}

/// `url` without a `user:password@` before its host: an endpoint is shown, a password never.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{}", &rest[authority_end..]),
        None => url.to_owned(),
    }
}

/// Which provider of the standard chain gave credentials. The credentials themselves, key
/// id included, are never shown.
async fn credentials(sdk: &aws_config::SdkConfig) -> Check {
    const NAME: &str = "credentials";
    let fix = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a role (IRSA, an instance profile)";
    let Some(provider) = sdk.credentials_provider() else {
        return Check::fail(NAME, "no credential provider configured", fix);
    };
    match provider.provide_credentials().await {
        Ok(creds) => Check::ok(NAME, format!("from {}", provider_of(&creds))),
        Err(CredentialsError::CredentialsNotLoaded(_)) => Check::fail(
            NAME,
            "none found (tried the environment, the profile, web identity, ECS and instance metadata)",
            fix,
        ),
        Err(e @ CredentialsError::ProviderTimedOut(_)) => Check::outage(
            NAME,
            crate::error::causes(&e),
            "check the network to the credential provider (instance metadata, STS)",
        ),
        Err(e) => Check::fail(NAME, crate::error::causes(&e), fix),
    }
}

/// The provider as the credentials' features name it (the SDK marks each with its source).
fn provider_of(creds: &aws_credential_types::Credentials) -> String {
    use AwsCredentialFeature as F;
    let names: Vec<&str> = creds
        .get_property::<Vec<F>>()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some(match f {
                F::CredentialsEnvVars => "the environment (AWS_ACCESS_KEY_ID)",
                F::CredentialsProfile
                | F::CredentialsProfileSourceProfile
                | F::CredentialsProfileNamedProvider => "the profile (AWS_PROFILE or default)",
                F::CredentialsEnvVarsStsWebIdToken
                | F::CredentialsProfileStsWebIdToken
                | F::CredentialsStsAssumeRoleWebId => {
                    "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, IRSA)"
                }
                F::CredentialsStsAssumeRole => "an assumed role (role_arn)",
                F::CredentialsSso | F::CredentialsProfileSso => "SSO",
                F::CredentialsProcess | F::CredentialsProfileProcess => "credential_process",
                F::CredentialsHttp => "the container endpoint (ECS, EKS Pod Identity)",
                F::CredentialsImds => "instance metadata (an instance profile)",
                _ => return None,
            })
        })
        .collect();
    match names.is_empty() {
        true => "the standard chain".to_owned(),
        false => names.join(" via "),
    }
}

/// The queue exists and answers, then its attributes, each a line.
async fn queue(sqs: &SqsConfig) -> Vec<Check> {
    const NAME: &str = "queue";
    let source = match Source::connect(sqs).await {
        Ok(source) => source,
        Err(e) => return vec![queue_failure(NAME, &e, sqs)],
    };
    let attrs = match source.attributes(&[Attr::All]).await {
        Ok(attrs) => attrs,
        Err(e) => return vec![queue_failure(NAME, &e, sqs)],
    };
    let url = source.queue_url();
    let name = url.rsplit('/').next().unwrap_or(url);
    let fifo = attrs.get(&Attr::FifoQueue).is_some_and(|v| v == "true") || name.ends_with(".fifo");
    let kind = if fifo { "FIFO" } else { "standard" };
    vec![
        Check::ok(NAME, format!("{name}, {kind}, at {url}")),
        visibility(&attrs),
        redrive(&attrs, source.client()).await,
        message_size(&attrs),
    ]
}

/// A queue call that failed: the error's text, and the step its kind calls for.
fn queue_failure(name: &'static str, e: &SourceError, sqs: &SqsConfig) -> Check {
    let fix = match e {
        SourceError::QueueNotFound { name, .. } => format!(
            "create it (`aws sqs create-queue --queue-name {name}`), or set --queue-name / --queue-url to the queue run should read"
        ),
        SourceError::QueueUrlNotFound { .. } => {
            format!("check --queue-url / SQS2PG_QUEUE_URL, or unset it to resolve --queue-name {}", sqs.queue_name)
        }
        SourceError::AccessDenied { action, .. } => format!("allow {action} in the IAM policy of the user or role sqs2pg runs as"),
        SourceError::Unreachable { .. } => "check the network, a proxy, or AWS_ENDPOINT_URL if set".to_owned(),
        _ => "check the AWS settings above".to_owned(),
    };
    Check::from_error(name, e, &fix)
}

fn number(attrs: &HashMap<Attr, String>, attr: &Attr) -> Option<u64> {
    attrs.get(attr).and_then(|v| v.parse().ok())
}

/// `VisibilityTimeout`: `run` extends it while it holds a message, so any value works but 0,
/// which shows every message to other consumers while it is being written.
fn visibility(attrs: &HashMap<Attr, String>) -> Check {
    const NAME: &str = "visibility timeout";
    match number(attrs, &Attr::VisibilityTimeout) {
        Some(0) => Check::warn(
            NAME,
            "0 s: other consumers receive each message while run writes it",
            "set VisibilityTimeout to 30 s or more",
        ),
        Some(secs) => Check::ok(
            NAME,
            format!("{secs} s (run extends it while it holds a message)"),
        ),
        None => Check::ok(NAME, "not reported; run assumes 30 s"),
    }
}

/// `RedrivePolicy` and the dead-letter queue it names: without one, a message that fails
/// every time comes back forever.
async fn redrive(attrs: &HashMap<Attr, String>, client: &aws_sdk_sqs::Client) -> Check {
    const NAME: &str = "redrive policy";
    let Some(policy) = attrs.get(&Attr::RedrivePolicy) else {
        return Check::warn(
            NAME,
            "none: a message that fails every time (a poison message) comes back forever",
            DLQ_HOWTO,
        );
    };
    let policy: serde_json::Value = serde_json::from_str(policy).unwrap_or_default();
    let arn = policy["deadLetterTargetArn"].as_str().unwrap_or_default();
    let receives = match &policy["maxReceiveCount"] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    // arn:aws:sqs:REGION:ACCOUNT:NAME
    let parts: Vec<&str> = arn.split(':').collect();
    let [_, _, "sqs", _, account, dlq] = parts.as_slice() else {
        return Check::warn(
            NAME,
            "a RedrivePolicy without a dead-letter queue ARN",
            DLQ_HOWTO,
        );
    };
    let found = client
        .get_queue_url()
        .queue_name(*dlq)
        .queue_owner_aws_account_id(*account)
        .send()
        .await;
    match found {
        Ok(_) => Check::ok(
            NAME,
            format!("dead-letter queue {dlq} after {receives} receives"),
        ),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            Check::fail(
                NAME,
                format!("its dead-letter queue {dlq} does not exist"),
                format!("create {dlq}, or point the RedrivePolicy at a queue that exists"),
            )
        }
        Err(e) => Check::warn(
            NAME,
            format!(
                "dead-letter queue {dlq} after {receives} receives, not looked up: {}",
                crate::aws::error_text(&e)
            ),
            "allow sqs:GetQueueUrl on it to have it checked",
        ),
    }
}

/// `MaximumMessageSize`: the largest body the queue takes.
fn message_size(attrs: &HashMap<Attr, String>) -> Check {
    const NAME: &str = "message size";
    match number(attrs, &Attr::MaximumMessageSize) {
        Some(bytes) => Check::ok(
            NAME,
            format!("at most {bytes} bytes a message ({})", in_kib(bytes)),
        ),
        None => Check::ok(NAME, "not reported; SQS's limit, 1 MiB"),
    }
}

/// `1 MiB`, `256 KiB`: a size as SQS's documentation writes it.
fn in_kib(bytes: u64) -> String {
    match bytes % (1024 * 1024) {
        0 => format!("{} MiB", bytes / (1024 * 1024)),
        _ => format!("{} KiB", bytes / 1024),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_shown_without_its_password() {
        assert_eq!(
            without_userinfo("http://u:pw@proxy:4566/x"),
            "http://proxy:4566/x"
        );
        assert_eq!(
            without_userinfo("http://127.0.0.1:4566"),
            "http://127.0.0.1:4566"
        );
        assert_eq!(without_userinfo("https://h/p@q"), "https://h/p@q");
    }
}
