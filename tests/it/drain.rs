//! When a drain run ends: not while a message is in flight in another consumer's hands
//! (it is drained once its lease runs out, so nothing is missed), and what it cost in SQS
//! requests, by kind.

use std::time::Duration;

use sqs2pg::telemetry::RequestKind;

use crate::faults::SqsFaults;
use crate::helpers::*;

fn logins(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| login(&format!("drain-{i}"), "10.4.0.1", &format!("d{i}")))
        .collect()
}

/// Another consumer holds some messages (and goes away without deleting them) while the
/// rest are drained: the drain sees the queue's in-flight count, keeps receiving, and ends
/// only after those messages came back and were loaded.
#[tokio::test(flavor = "multi_thread")]
async fn a_drain_does_not_end_while_a_message_is_in_flight_elsewhere() {
    let env = TestEnv::with_visibility(3).await;
    env.send(&logins(30)).await;
    let held = env.receive_at_least(1).await;
    assert!(held.len() < 30, "the drain has some of its own to do");

    let s = env.drain().await;

    assert_eq!(s.loaded, 30, "the held messages were loaded too: {s:?}");
    assert_eq!(s.deleted, 30, "{s:?}");
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 30);
    env.assert_queue_empty().await;
}

/// The summary counts SQS requests by kind, as SQS bills them: each kind as many as an HTTP
/// proxy in front of SQS saw of its operation (a receive that brought messages and one that
/// came back empty are both a `ReceiveMessage`), and the deletes at least the fewest
/// `DeleteMessageBatch` calls (10 messages each) that can delete them all.
#[tokio::test(flavor = "multi_thread")]
async fn a_drain_counts_its_sqs_requests_by_kind() {
    const SENT: u64 = 25;
    let env = TestEnv::new().await;
    let proxy = SqsFaults::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    env.send(&logins(SENT as usize)).await;

    let s = env
        .drain_with(RunOptions::default().sqs_endpoint(&proxy.url()))
        .await;

    let r = s.sqs_requests;
    assert_eq!((s.received, s.deleted), (SENT, SENT), "{s:?}");
    let receives = r.get(RequestKind::Receive) + r.get(RequestKind::EmptyReceive);
    assert_eq!(receives, proxy.requests("ReceiveMessage"), "{r}");
    assert_eq!(
        r.get(RequestKind::Delete),
        proxy.requests("DeleteMessageBatch"),
        "{r}"
    );
    assert_eq!(
        r.get(RequestKind::ChangeVisibility),
        proxy.requests("ChangeMessageVisibilityBatch"),
        "{r}"
    );
    assert_eq!(
        r.get(RequestKind::GetAttributes),
        proxy.requests("GetQueueAttributes"),
        "{r}"
    );
    assert_eq!(r.get(RequestKind::Send), proxy.requests("SendMessageBatch"));
    assert_eq!(r.total(), proxy.all_requests(), "nothing uncounted: {r}");
    assert!(r.get(RequestKind::Delete) >= SENT.div_ceil(10), "{r}");
    assert!(r.get(RequestKind::Receive) >= SENT.div_ceil(10), "{r}");
    // Each of the 4 pollers' last receive was empty.
    assert!(r.get(RequestKind::EmptyReceive) >= 4, "{r}");
}

/// A trigger that counts every insert attempt into `user_logins` (a sequence: its steps are
/// never rolled back) and then refuses it with an error the consumer cannot classify (P0001,
/// so the batch is backed off and retried, never rejected).
const REFUSE_EVERY_ROW: &str = "
CREATE SEQUENCE write_attempts;
CREATE FUNCTION refuse_every_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM nextval('write_attempts');
  RAISE EXCEPTION 'refused by the test';
END $$;
CREATE TRIGGER refuse_every_row BEFORE INSERT ON user_logins
  FOR EACH ROW EXECUTE FUNCTION refuse_every_row();";

/// A drain run whose one batch the database refuses every time tries it 10 times, gives it
/// up, leaves its message on the queue (not deleted, nothing committed) and exits 1.
#[tokio::test(flavor = "multi_thread")]
async fn a_drain_gives_a_batch_up_after_10_attempts_and_exits_1() {
    let env = TestEnv::new().await;
    env.db()
        .await
        .batch_execute(REFUSE_EVERY_ROW)
        .await
        .expect("install the trigger");
    env.send(&logins(1)).await;
    let log_file = std::env::temp_dir().join(format!("{}-gives-up.log", env.queue_name));
    let args = ["run", "--until-empty", "--wait-seconds", "1"];
    let mut run = env.spawn_reporting(&args, &[], &log_file);

    // Ten attempts, each backed off (0.2 s doubling to 10 s, jittered): under a minute.
    let code = run.wait_exit(Duration::from_secs(180)).await;

    let log = std::fs::read_to_string(&log_file).expect("the run's log");
    let _ = std::fs::remove_file(&log_file);
    assert_eq!(code, Some(1), "a drain that gave a batch up fails:\n{log}");
    let attempts: i64 = env
        .scalar("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM write_attempts")
        .await;
    assert_eq!(attempts, 10, "insert attempts the database saw:\n{log}");
    assert!(
        log.contains("could not be committed after retries"),
        "{log}"
    );
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        0
    );
    assert_eq!(env.count("SELECT count(*) FROM sqs2pg_ledger").await, 0);
    let d = env.depth().await;
    assert_eq!(
        d.visible + d.in_flight,
        1,
        "the message stays on the queue: {d:?}"
    );
}
