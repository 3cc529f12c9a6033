//! The Lambda handler's edge: records it cannot identify are never acknowledged unwritten.

use crate::helpers::{failed_ids, lambda_handler, login, sqs_event, TestEnv};

/// An event whose record `index` has no `messageId`.
fn event_missing_an_id(
    records: &[(&str, &str)],
    index: usize,
) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut event = sqs_event(records);
    event.records[index].message_id = None;
    event
}

/// Two invocations, each with a record without a `messageId`: each is reported as a batch
/// item failure (an empty identifier, which Lambda reads as "retry the whole batch"), never
/// committed under a stand-in id, so the second is not mistaken for a duplicate of the first
/// and lost; the identified records still commit.
#[tokio::test(flavor = "multi_thread")]
async fn records_without_a_message_id_are_failed_not_acknowledged() {
    let env = TestEnv::new().await;
    let handler = lambda_handler(&env).await;
    let first = login("no-id-1", "10.6.1.1", "d1");
    let second = login("no-id-2", "10.6.1.2", "d2");
    let good = login("with-id", "10.6.1.3", "d3");
    let r1 = handler
        .handle(event_missing_an_id(&[("x", &first), ("m-ok", &good)], 0))
        .await;
    let r2 = handler
        .handle(event_missing_an_id(&[("y", &second)], 0))
        .await;
    for resp in [&r1, &r2] {
        assert_eq!(failed_ids(resp), [""], "{resp:?}");
    }
    let c = env.db().await;
    let users: Vec<String> = c.column("SELECT user_id FROM user_logins ORDER BY 1").await;
    assert_eq!(users, ["with-id"]);
    assert_eq!(c.count("SELECT count(*) FROM user_logins_rejects").await, 0);
    assert_eq!(c.count("SELECT count(*) FROM sqs2pg_ledger").await, 1);
    assert_eq!(handler.summary().duplicates, 0);
}

/// A reject the database refuses too (an operator's CHECK on `user_logins_rejects`) has no
/// place to be committed: its record alone is a batch item failure, so Lambda returns it to
/// the queue, while the rest of the event commits.
#[tokio::test(flavor = "multi_thread")]
async fn a_reject_the_database_refuses_is_the_only_batch_item_failure() {
    let env = TestEnv::new().await;
    env.db()
        .await
        .batch_execute(
            "ALTER TABLE user_logins_rejects ADD CONSTRAINT no_not_json CHECK (reason <> 'not_json')",
        )
        .await
        .unwrap();
    let handler = lambda_handler(&env).await;
    let (a, b) = (
        login("kept-a", "10.6.2.1", "d1"),
        login("kept-b", "10.6.2.2", "d2"),
    );
    let event = sqs_event(&[("m-a", &a), ("m-refused", "not json"), ("m-b", &b)]);
    let resp = handler.handle(event).await;
    assert_eq!(failed_ids(&resp), ["m-refused"], "{resp:?}");
    let c = env.db().await;
    let users: Vec<String> = c.column("SELECT user_id FROM user_logins ORDER BY 1").await;
    assert_eq!(users, ["kept-a", "kept-b"]);
    assert_eq!(c.count("SELECT count(*) FROM user_logins_rejects").await, 0);
    let ledger: Vec<String> = c
        .column("SELECT message_id FROM sqs2pg_ledger ORDER BY 1")
        .await;
    assert_eq!(ledger, ["m-a", "m-b"], "the refused one is not marked done");
}
