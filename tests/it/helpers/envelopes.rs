//! Message bodies in the envelopes production queues carry, and FIFO test queues.

use std::path::{Path, PathBuf};

use aws_sdk_sqs::types::QueueAttributeName;

use super::*;

/// The time every test envelope carries (SNS `Timestamp`, EventBridge `time`).
pub const ENVELOPE_DAY: &str = "2021-06-15";

/// An SNS notification around `message`, as a queue subscribed without raw message delivery
/// receives it.
pub fn sns_notification(message: &str) -> String {
    serde_json::json!({
        "Type": "Notification",
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:logins",
        "Message": message,
        "Timestamp": format!("{ENVELOPE_DAY}T23:59:58.123Z"),
        "SignatureVersion": "1",
        "Signature": "c2lnbmF0dXJl",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    })
    .to_string()
}

/// An EventBridge event around `detail` (spliced in verbatim), as a queue target receives it.
pub fn eventbridge_event(detail: &str) -> String {
    eventbridge(
        "user.login",
        "app.auth",
        &format!("{ENVELOPE_DAY}T00:00:01Z"),
        detail,
    )
}

/// A shop's EventBridge event of `detail_type` at 2026-12-01T10:00:00Z around `detail`.
pub fn shop_event(detail_type: &str, detail: &str) -> String {
    eventbridge(detail_type, "shop", "2026-12-01T10:00:00Z", detail)
}

fn eventbridge(detail_type: &str, source: &str, time: &str, detail: &str) -> String {
    format!(
        r#"{{"version":"0","id":"{}","detail-type":"{detail_type}","source":"{source}","account":"000000000000","time":"{time}","region":"us-east-1","resources":[],"detail":{detail}}}"#,
        uuid::Uuid::new_v4()
    )
}

/// The messages of the JSON array at `sample`, each wrapped by `wrap`, as a JSON array file
/// of the test's own (a message spliced in verbatim may span lines); returns its path and
/// the wrapped messages in order.
pub fn wrapped_file(
    env: &TestEnv,
    sample: &Path,
    wrap: fn(&str) -> String,
) -> (PathBuf, Vec<String>) {
    let items: Vec<Box<serde_json::value::RawValue>> =
        serde_json::from_str(&std::fs::read_to_string(sample).expect("sample")).expect("array");
    let wrapped: Vec<String> = items.iter().map(|m| wrap(m.get())).collect();
    let path = std::env::temp_dir().join(format!("sqs2pg-it-wrapped-{}.json", env.queue_name));
    std::fs::write(&path, format!("[{}]\n", wrapped.join(",\n"))).expect("write wrapped file");
    (path, wrapped)
}

impl TestEnv {
    /// Replaces the test's queue by a FIFO one (`<name>.fifo`), with content-based
    /// deduplication on or off; every helper then uses it, and it is deleted at the end.
    pub async fn use_fifo_queue(&mut self, content_based_deduplication: bool) {
        let url = self
            .source
            .client()
            .create_queue()
            .queue_name(format!("{}.fifo", self.queue_name))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(
                QueueAttributeName::ContentBasedDeduplication,
                content_based_deduplication.to_string(),
            )
            .send()
            .await
            .expect("create FIFO queue")
            .queue_url
            .expect("queue url");
        let _ = self
            .source
            .client()
            .delete_queue()
            .queue_url(&self.queue_url)
            .send()
            .await;
        self.source = Source::connect(&SqsConfig {
            queue_url: Some(url.clone()),
            queue_name: self.queue_name.clone(),
            framing: Default::default(),
            endpoint_url: self.endpoint.clone(),
        })
        .await
        .expect("source");
        self.queue_url = url;
    }
}
