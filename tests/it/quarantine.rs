//! When the quarantine itself refuses a message: an operator's CHECK on
//! `user_logins_rejects` turns a reject away, so that message has nowhere to go in the
//! database. It must neither hold back the rest of its batch nor leave the queue.

use std::time::Duration;

use sqs2pg::pipeline::PipelineError;

use crate::helpers::{login, RunOptions, TestEnv};

/// What a message that is not JSON is quarantined as.
const NOT_JSON: &str = "not_json";

/// Twenty valid logins and one body that is not JSON, in one batch, with a CHECK that
/// refuses `not_json` rejects: bisection isolates the refused reject as it would a row, the
/// twenty rows commit and their messages are deleted, the refused message is left on the
/// queue (nothing of it committed, not even its ledger entry), and the drain run ends,
/// failing, instead of retrying the batch for ever. The redrive policy then moves the
/// message to the dead-letter queue.
#[tokio::test(flavor = "multi_thread")]
async fn a_reject_the_database_refuses_is_left_on_the_queue_and_the_rest_commits() {
    let (env, dead_letters) = TestEnv::with_redrive(2, 1).await;
    env.db()
        .await
        .batch_execute(&format!(
            "ALTER TABLE user_logins_rejects ADD CONSTRAINT no_not_json CHECK (reason <> '{NOT_JSON}')"
        ))
        .await
        .unwrap();
    let mut bodies: Vec<String> = (0..20)
        .map(|i| login(&format!("kept-{i}"), "10.2.2.2", "dev"))
        .collect();
    bodies.insert(11, "this is not json".into());
    env.send(&bodies).await;

    // One writer and a long window so all 21 land in one batch.
    let ended = env
        .try_drain_with(
            RunOptions::default()
                .writers(1)
                .batch_wait(Duration::from_millis(1500)),
        )
        .await;
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins WHERE user_id LIKE 'kept-%'")
            .await,
        20,
        "the rest of the batch committed"
    );
    assert!(
        matches!(ended, Err(PipelineError::Uncommitted(1))),
        "the drain ends, failing for the one message it could not commit: {ended:?}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM sqs2pg_ledger").await,
        20,
        "the refused message is not marked as done"
    );
    let depth = env.depth().await;
    assert_eq!(
        depth.visible + depth.in_flight,
        1,
        "only the refused message is left on the queue: {depth:?}"
    );

    // Received again once its visibility runs out, past its one allowed receive.
    env.drain().await;
    assert_eq!(dead_letters.depth().await, 1, "dead-lettered, not lost");
    env.assert_queue_empty().await;
}
