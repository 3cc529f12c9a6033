//! What the queue refuses: calls SQS answers with an entry-level error, and calls it fails
//! outright while the rest of the queue keeps working.

use std::sync::Arc;
use std::time::Duration;

use sqs2pg::telemetry::{RequestKind, SqsRequests};

use crate::faults::SqsFaults;
use crate::helpers::{login, wait_until, RunOptions, TestEnv};
use crate::reliability::{assert_invariants, workload};

/// `n` valid logins from `ip`, their user ids `{prefix}0`, `{prefix}1`, …
fn logins(prefix: &str, n: usize, ip: &str) -> Vec<String> {
    (0..n)
        .map(|i| login(&format!("{prefix}{i}"), ip, "d"))
        .collect()
}

/// The SQS operation the heartbeat calls.
const EXTEND: &str = "ChangeMessageVisibilityBatch";

/// A receipt handle SQS no longer accepts (it expired, or another consumer's receive
/// replaced it) is given up at once instead of being retried for ~25 s, which held the
/// writer back from its next batch: the valid entry beside it is deleted, the refused one
/// counted as permanent.
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_receipt_handle_is_given_up_without_retries() {
    let env = TestEnv::new().await;
    env.send(&[login("del-1", "10.9.0.1", "d")]).await;
    let msgs = env.receive_at_least(1).await;
    let calls = Arc::new(SqsRequests::default());
    let report = env
        .source
        .clone()
        .counting_into(calls.clone())
        .delete(&[
            ("m-valid", msgs[0].receipt_handle.as_str()),
            ("m-expired", "not-a-receipt-handle"),
        ])
        .await;
    assert_eq!(
        (report.deleted, report.failed, report.permanent),
        (1, 1, 1),
        "{report:?}"
    );
    // Retrying the refused entry would be six more calls over ~25 s.
    assert_eq!(
        calls.counts().get(RequestKind::Delete),
        1,
        "the refused entry was retried"
    );
    env.assert_queue_empty().await;
}

/// The database is slow (user_logins locked) for more than two visibility timeouts while SQS
/// fails the heartbeat's first calls with a 500: the failed handles are extended again before their
/// deadline, so no message is received twice.
#[tokio::test(flavor = "multi_thread")]
async fn failed_heartbeat_calls_are_retried_before_the_messages_reappear() {
    let env = TestEnv::with_visibility(4).await;
    let proxy = SqsFaults::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    let w = workload(300, 0.0, 0.0, 61);
    let mut daemon = env.spawn_daemon(RunOptions::default().sqs_endpoint(&proxy.url()));
    daemon.wait_ready().await;
    let mut locker = env.db().await;
    let tx = locker.lock_user_logins().await;
    env.send(&w.bodies).await;
    wait_until("all 300 held", Duration::from_secs(30), || async {
        daemon.received() == 300
    })
    .await;
    // As many failures as one pass has calls (300 handles, ten a call): every handle's
    // extension fails once, and the heartbeat must try again before the deadline.
    proxy.fail_next(EXTEND, 30);
    wait_until("the failures given", Duration::from_secs(20), || async {
        proxy.pending(EXTEND) == 0
    })
    .await;
    // Three confirmed extensions of each held message: held past two of its 4 s timeouts.
    let s = daemon.hold_until_extended_then_drain(&env, tx, 900).await;
    assert_eq!(proxy.injected(), 30);
    assert!(
        daemon.extensions_failed() > 0,
        "some extensions failed for good"
    );
    assert!(s.visibility_extended > 0, "visibility was extended");
    assert_eq!(
        (s.received, s.duplicates),
        (300, 0),
        "no message reappeared: {s:?}"
    );
    assert_invariants(&env, &w).await;
}

/// A slow `DeleteMessageBatch` (each call held 1.5 s) does not hold the writer back: it
/// commits its next batch while the last one's deletes are still waiting on SQS.
#[tokio::test(flavor = "multi_thread")]
async fn a_writer_commits_its_next_batch_while_the_last_ones_deletes_finish() {
    let env = TestEnv::new().await;
    let proxy = SqsFaults::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    proxy.delay("DeleteMessageBatch", Some(Duration::from_millis(1500)));
    let first = logins("a", 100, "10.9.1.1");
    let second = logins("b", 100, "10.9.1.2");
    // One writer, and batches that close at their 100 messages, not on time.
    let mut daemon = env.spawn_daemon(
        RunOptions::default()
            .writers(1)
            .batch_wait(Duration::from_secs(5))
            .sqs_endpoint(&proxy.url()),
    );
    env.send(&first).await;
    wait_until(
        "the first batch committed",
        Duration::from_secs(30),
        || async { daemon.loaded() == 100 },
    )
    .await;
    env.send(&second).await;
    wait_until(
        "the second batch committed",
        Duration::from_secs(30),
        || async { daemon.loaded() == 200 },
    )
    .await;
    assert_eq!(
        daemon.deleted(),
        0,
        "both batches committed while the first one's deletes were held"
    );
    proxy.delay("DeleteMessageBatch", None);
    env.wait_drained(Duration::from_secs(60)).await;
    let s = daemon.stop_and_join().await;
    assert_eq!((s.loaded, s.deleted), (200, 200));
    env.assert_queue_empty().await;
}

/// Delete calls in flight adapt to SQS: behind 50 ms per call, more of them go out at once
/// than the limit starts with, one per poller (counted at the proxy, from outside); while
/// every delete fails, the limit falls back to that floor; when SQS recovers, everything is
/// deleted.
#[tokio::test(flavor = "multi_thread")]
async fn delete_calls_in_flight_grow_while_sqs_keeps_up_and_shrink_while_it_fails() {
    const DELETE: &str = "DeleteMessageBatch";
    // One call per poller, the tests' 4.
    const FLOOR: u64 = 4;
    let env = TestEnv::new().await;
    let proxy = Arc::new(SqsFaults::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await);
    proxy.delay(DELETE, Some(Duration::from_millis(50)));
    let most_held = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let watch = {
        let (proxy, most_held) = (proxy.clone(), most_held.clone());
        tokio::spawn(async move {
            loop {
                most_held.fetch_max(proxy.held(DELETE), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut daemon = env.spawn_daemon(RunOptions::default().sqs_endpoint(&proxy.url()));
    env.send(&logins("a", 3000, "10.9.2.1")).await;
    wait_until(
        "the first 3000 deleted",
        Duration::from_secs(120),
        || async { daemon.deleted() == 3000 },
    )
    .await;
    watch.abort();
    let most_held = most_held.load(std::sync::atomic::Ordering::Relaxed) as u64;
    let (now, peak) = daemon.delete_call_limit();
    assert!(
        most_held > FLOOR,
        "the limit grew past its start of {FLOOR}: at most {most_held} delete calls were in flight (limit peak {peak})"
    );
    assert!(
        most_held <= peak,
        "never more in flight ({most_held}) than the limit ({peak})"
    );
    assert!(
        now > FLOOR,
        "still above the floor before the failures: {now}"
    );

    proxy.fail_next(DELETE, 100_000);
    env.send(&logins("b", 300, "10.9.2.2")).await;
    wait_until(
        "the limit at its floor",
        Duration::from_secs(60),
        || async { daemon.delete_call_limit().0 == FLOOR },
    )
    .await;
    proxy.stop_failing(DELETE);
    env.wait_drained(Duration::from_secs(120)).await;
    let s = daemon.stop_and_join().await;
    assert_eq!((s.loaded, s.deleted), (3300, 3300));
    env.assert_queue_empty().await;
}

/// A stop does not wait on SQS: with every poller inside a receive SQS has not answered
/// (each held ten minutes by the proxy), the run still ends after the short receive grace
/// (2 s; the stop is allowed 6 s), with everything it loaded deleted.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_does_not_wait_for_receives_sqs_has_not_answered() {
    const RECEIVE: &str = "ReceiveMessage";
    const STOP_BOUND: Duration = Duration::from_secs(6);
    let env = TestEnv::new().await;
    let proxy = SqsFaults::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    let bodies = logins("st", 20, "10.9.2.1");
    let mut daemon = env.spawn_daemon(
        RunOptions::default()
            .wait_seconds(1)
            .sqs_endpoint(&proxy.url()),
    );
    env.send(&bodies).await;
    wait_until(
        "all 20 loaded and deleted",
        Duration::from_secs(30),
        || async { daemon.loaded() == 20 && daemon.deleted() == daemon.received() },
    )
    .await;
    proxy.delay(RECEIVE, Some(Duration::from_secs(600)));
    wait_until(
        "all four pollers waiting on a receive SQS has not answered",
        Duration::from_secs(30),
        || async { proxy.held(RECEIVE) == 4 },
    )
    .await;
    // The promise is 2 s of grace for those receives; three times that, and still under the
    // test runs' 10 s shutdown timeout, so a stop that waited for either would be caught.
    let s = tokio::time::timeout(STOP_BOUND, daemon.stop_and_join())
        .await
        .expect("the stop waited longer than the receive grace allows");
    assert_eq!((s.received, s.loaded, s.deleted), (20, 20, 20));
    env.assert_queue_empty().await;
}
