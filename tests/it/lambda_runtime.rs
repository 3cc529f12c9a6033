//! `sqs2pg-lambda`, the real binary, under the real Lambda Runtime API (cargo-lambda's
//! emulator), invoked with SQS events made of the sample file's messages: what commits, what
//! is quarantined, what `batchItemFailures` asks Lambda to retry.

use crate::faults::PrivatePg;
use std::time::Duration;

use crate::helpers::{
    connect, event_of, failed_item_ids, sample_file, sqs_event_json, LambdaRuntime, SqsRecord,
    TestEnv,
};

/// Three of the sample file's messages: two valid, and its one without a `user_id`.
fn sample_bodies() -> [String; 3] {
    let path =
        sample_file().expect("fetch-login-sample.json (../shared/data, or SQS2PG_SAMPLE_FILE)");
    let sample: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read sample"))
            .expect("sample JSON");
    let bad = sample
        .iter()
        .find(|m| m.get("user_id").is_none())
        .expect("the sample's message without user_id");
    [
        sample[0].to_string(),
        sample[1].to_string(),
        bad.to_string(),
    ]
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Rows committed, a malformed message quarantined not failed, a redelivered event (Lambda is
/// at-least-once) adding nothing, a record without an id failed alone, and with Postgres
/// stopped every record of the event answered as a batch item failure, none committed.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_under_the_runtime_api_commits_and_reports_failures() {
    let pg = PrivatePg::start_migrated().await;
    let mut rt = LambdaRuntime::start().await;
    rt.start_function(&pg.url);
    let db = connect(&pg.url).await;
    let [a, b, bad] = sample_bodies();

    let ids = [id(), id(), id()];
    let first = sqs_event_json(&[
        SqsRecord {
            id: Some(&ids[0]),
            body: &a,
            receive_count: 1,
        },
        SqsRecord {
            id: Some(&ids[1]),
            body: &b,
            receive_count: 1,
        },
        SqsRecord {
            id: Some(&ids[2]),
            body: &bad,
            receive_count: 1,
        },
    ]);
    let answer = rt.invoke(&first).await;
    assert_eq!(
        failed_item_ids(&answer),
        Vec::<String>::new(),
        "{answer}\n{}",
        rt.function_log()
    );
    assert_eq!(db.count("SELECT count(*) FROM user_logins").await, 2);
    let reasons: Vec<String> = db.column("SELECT reason FROM user_logins_rejects").await;
    assert_eq!(reasons, ["missing_field:user_id"]);

    let again = rt.invoke(&first).await;
    assert_eq!(failed_item_ids(&again), Vec::<String>::new(), "{again}");
    assert_eq!(
        db.count("SELECT count(*) FROM user_logins").await,
        2,
        "a redelivery added rows"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM user_logins_rejects").await,
        1
    );

    let (kept, unnamed) = (id(), login_body("unnamed"));
    let mixed = sqs_event_json(&[
        SqsRecord {
            id: Some(&kept),
            body: &login_body("named"),
            receive_count: 2,
        },
        SqsRecord {
            id: None,
            body: &unnamed,
            receive_count: 1,
        },
    ]);
    let answer = rt.invoke(&mixed).await;
    assert_eq!(failed_item_ids(&answer), [""], "{answer}");
    let users: Vec<String> = db
        .column("SELECT user_id FROM user_logins WHERE user_id LIKE 'rt-%'")
        .await;
    assert_eq!(users, ["rt-named"]);

    let pg = stop(pg).await;
    let down = [id(), id(), id()];
    let outage = sqs_event_json(&[
        SqsRecord {
            id: Some(&down[0]),
            body: &login_body("down-1"),
            receive_count: 1,
        },
        SqsRecord {
            id: Some(&down[1]),
            body: &login_body("down-2"),
            receive_count: 3,
        },
        SqsRecord {
            id: Some(&down[2]),
            body: &bad,
            receive_count: 1,
        },
    ]);
    let answer = rt.invoke(&outage).await;
    let mut expected = down.to_vec();
    expected.sort();
    assert_eq!(
        failed_item_ids(&answer),
        expected,
        "{answer}\n{}",
        rt.function_log()
    );

    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .expect("start Postgres again");
    let db = connect(&pg.url).await;
    assert_eq!(
        db.count("SELECT count(*) FROM user_logins").await,
        3,
        "nothing of the failed event committed"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM user_logins_rejects").await,
        1
    );
}

/// The function's timeout, as Lambda puts it in each invocation's deadline: shorter than
/// one write's bound (30 s by default), let alone its three attempts.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

/// An event of one valid login per id, user `rt-{user_prefix}-{n}`.
fn logins_event(ids: &[String], user_prefix: &str) -> serde_json::Value {
    let bodies: Vec<String> = (0..ids.len())
        .map(|n| login_body(&format!("{user_prefix}-{n}")))
        .collect();
    event_of(ids, &bodies)
}

/// With `user_logins` locked by another session, an invocation stops its connects and
/// retries before its deadline and answers in time with every record a batch item failure,
/// its half-done transaction abandoned; once the lock is gone, the same event again loads
/// each record exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_answers_before_its_deadline_while_the_table_is_locked() {
    let env = TestEnv::new().await;
    let mut rt = LambdaRuntime::start().await;
    rt.start_function_with_timeout(&env.database_url, FUNCTION_TIMEOUT)
        .await;
    let warm = rt.invoke(&logins_event(&[id()], "warm")).await;
    assert_eq!(failed_item_ids(&warm), Vec::<String>::new(), "{warm}");

    let mut locker = env.db().await;
    let lock = locker.lock_user_logins().await;
    let mut ids = vec![id(), id(), id()];
    ids.sort();
    let event = logins_event(&ids, "held");
    let answer = rt.invoke(&event).await;
    let invocation = rt.last_invocation().expect("an invocation handed out");
    let answered = invocation.answered.expect("the function answered");
    assert!(
        answered < invocation.deadline,
        "answered {:?} after its deadline\n{}",
        answered
            .duration_since(invocation.deadline)
            .unwrap_or_default(),
        rt.function_log()
    );
    assert_eq!(failed_item_ids(&answer), ids, "{answer}");
    lock.rollback().await.unwrap();

    let again = rt.invoke(&event).await;
    assert_eq!(failed_item_ids(&again), Vec::<String>::new(), "{again}");
    let users: Vec<String> = env
        .column("SELECT user_id FROM user_logins WHERE user_id LIKE 'rt-held-%' ORDER BY user_id")
        .await;
    assert_eq!(
        users,
        ["rt-held-0", "rt-held-1", "rt-held-2"],
        "each exactly once"
    );
    let ledger: i64 = env
        .scalar_with(
            "SELECT count(*) FROM sqs2pg_ledger WHERE message_id = ANY($1)",
            &[&ids],
        )
        .await;
    assert_eq!(ledger, 3);
}

fn login_body(user: &str) -> String {
    crate::helpers::login(&format!("rt-{user}"), "10.9.0.1", "d-rt")
}

async fn stop(pg: PrivatePg) -> PrivatePg {
    tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .expect("stop Postgres")
}
