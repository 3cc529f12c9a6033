//! FIFO queues end to end: `sqs2pg send` fills one (group and deduplication ids), `run`
//! drains it.

use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
use sha2::{Digest, Sha256};

use crate::e2e_core::sample_core;
use crate::helpers::{login, sample_file, sns_notification, stdout_ok, TestEnv};

/// The original exercise on a FIFO queue without content-based deduplication, filled by
/// `sqs2pg send`: 99 rows, 1 reject, an empty queue.
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_queue_filled_by_send_drains_like_a_standard_one() {
    let sample = sample_file()
        .expect("fetch-login-sample.json (../shared/data, or SQS2PG_SAMPLE_FILE) is missing");
    let mut env = TestEnv::new().await;
    env.use_fifo_queue(false).await;
    let bad = serde_json::json!({"foo": "oops_wrong_msg_type", "bar": "123"});
    sample_core(&env, &sample, &sample, &bad).await;
}

/// The messages on `env`'s queue as `(body, group id, deduplication id)`, in delivery order
/// (one receive of ten is enough for the few these tests send).
async fn received_with_ids(env: &TestEnv) -> Vec<(String, String, String)> {
    let out = env
        .source
        .client()
        .receive_message()
        .queue_url(&env.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(Attr::MessageGroupId)
        .message_system_attribute_names(Attr::MessageDeduplicationId)
        .send()
        .await
        .expect("receive");
    out.messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let attrs = m.attributes.unwrap_or_default();
            let get = |a: Attr| attrs.get(&a).cloned().unwrap_or_default();
            (
                m.body.unwrap_or_default(),
                get(Attr::MessageGroupId),
                get(Attr::MessageDeduplicationId),
            )
        })
        .collect()
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `send` groups by user id (also inside an envelope; one shared group without one) and
/// deduplicates by the body's hash: a body sent twice arrives once, and one user's messages
/// arrive in the order sent.
#[tokio::test(flavor = "multi_thread")]
async fn send_groups_by_user_and_deduplicates_by_body() {
    let mut env = TestEnv::new().await;
    env.use_fifo_queue(false).await;
    let first = login("u-1", "10.8.0.1", "d1");
    let second = login("u-1", "10.8.0.2", "d2");
    let wrapped = sns_notification(&login("u-2", "10.8.0.3", "d3"));
    let no_user = r#"{"foo":"oops_wrong_msg_type"}"#.to_string();
    let bodies = [&first, &second, &wrapped, &no_user, &first];
    let file = std::env::temp_dir().join(format!("sqs2pg-it-fifo-{}.jsonl", env.queue_name));
    let lines: Vec<&str> = bodies.iter().map(|b| b.as_str()).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = stdout_ok(&env.run_cmd(&["send", "--file", file.to_str().unwrap()]));
    std::fs::remove_file(&file).unwrap();
    assert!(out.starts_with("sent 5 messages"), "{out}");

    let mut got = received_with_ids(&env).await;
    got.sort_by_key(|(_, group, _)| group.clone());
    let want: Vec<(String, String, String)> = [
        (&wrapped, "u-2"),
        (&no_user, "sqs2pg"),
        (&first, "u-1"),
        (&second, "u-1"),
    ]
    .into_iter()
    .map(|(b, g)| (b.clone(), g.to_string(), sha256_hex(b)))
    .collect();
    let mut want_sorted = want.clone();
    want_sorted.sort_by_key(|(_, group, _)| group.clone());
    // A stable sort keeps u-1's two messages in delivery order: the order sent.
    assert_eq!(got, want_sorted);
}

/// On a queue with content-based deduplication, `send` leaves the id to SQS; with
/// `--message-group single` every message shares one group.
#[tokio::test(flavor = "multi_thread")]
async fn a_content_deduplicated_queue_and_a_single_group() {
    let mut env = TestEnv::new().await;
    env.use_fifo_queue(true).await;
    let bodies = [
        login("u-a", "10.8.1.1", "d1"),
        login("u-b", "10.8.1.2", "d2"),
    ];
    let file = std::env::temp_dir().join(format!("sqs2pg-it-fifo-{}.jsonl", env.queue_name));
    std::fs::write(&file, bodies.join("\n")).unwrap();
    let out = stdout_ok(&env.run_cmd(&[
        "send",
        "--file",
        file.to_str().unwrap(),
        "--message-group",
        "single",
    ]));
    std::fs::remove_file(&file).unwrap();
    assert!(out.starts_with("sent 2 messages"), "{out}");
    let got = received_with_ids(&env).await;
    let groups: Vec<&str> = got.iter().map(|(_, g, _)| g.as_str()).collect();
    assert_eq!(groups, ["sqs2pg", "sqs2pg"]);
    let bodies_got: Vec<&str> = got.iter().map(|(b, _, _)| b.as_str()).collect();
    assert_eq!(bodies_got, [bodies[0].as_str(), bodies[1].as_str()]);
}
