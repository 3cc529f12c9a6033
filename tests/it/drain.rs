//! When a drain run ends: not while a message is in flight in another consumer's hands
//! (it is drained once its lease runs out, so nothing is missed), and what it cost in SQS
//! requests, by kind.

use sqs2pg::telemetry::RequestKind;

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

/// The summary counts SQS requests by kind, as SQS bills them.
#[tokio::test(flavor = "multi_thread")]
async fn a_drain_counts_its_sqs_requests_by_kind() {
    let env = TestEnv::new().await;
    env.send(&logins(25)).await;

    let s = env.drain().await;

    let r = s.sqs_requests;
    assert_eq!(s.deleted, 25);
    let between = |kind, lo, hi| {
        let n = r.get(kind);
        assert!(
            (lo..=hi).contains(&n),
            "{kind:?}: {n} not in {lo}..={hi} ({r})"
        );
    };
    between(RequestKind::Receive, 3, 25);
    between(RequestKind::Delete, 3, 25);
    // Each of the 4 pollers' last receive was empty.
    between(RequestKind::EmptyReceive, 4, 1000);
    // The visibility timeout at start, and at least one depth check at the end.
    between(RequestKind::GetAttributes, 2, 1000);
    between(RequestKind::Send, 0, 0);
    assert_eq!(
        r.total(),
        RequestKind::ALL.iter().map(|k| r.get(*k)).sum::<u64>()
    );
}
