//! Bodies up to SQS's 1 MiB limit through the whole pipeline, and the byte budget
//! (`--max-inflight-bytes`) that bounds what is held however large the bodies are.

use std::time::Duration;

use crate::db_faults::lock_waiters;
use crate::helpers::*;

/// SQS's limit for one message (LocalStack 4.10's default `MaximumMessageSize` too).
const ONE_MIB: usize = 1024 * 1024;

/// A valid login padded with an unknown key (ignored, counted) to exactly `size` bytes.
fn padded_login(user_id: &str, size: usize) -> String {
    let mut body: serde_json::Value =
        serde_json::from_str(&login(user_id, "198.51.100.7", "dev-big")).expect("json");
    body["padding"] = "".into();
    let bare = body.to_string().len();
    body["padding"] = "p".repeat(size - bare).into();
    let text = body.to_string();
    assert_eq!(text.len(), size);
    text
}

/// A 1 MiB valid event loads its row and a 1 MiB invalid body is quarantined intact, with
/// the default budget and with one smaller than a single body (which then goes alone).
#[tokio::test(flavor = "multi_thread")]
async fn one_mib_bodies_load_or_quarantine_intact() {
    let env = TestEnv::new().await;
    let invalid = format!("{{\"user_id\": {}", "9".repeat(ONE_MIB - 12));
    assert_eq!(invalid.len(), ONE_MIB);
    for (round, budget) in [(0, None), (1, Some(64 * 1024))] {
        let valid = padded_login(&format!("big-{round}"), ONE_MIB);
        env.send(&[valid.clone(), invalid.clone()]).await;
        let mut opts = RunOptions::default();
        if let Some(b) = budget {
            opts = opts.max_inflight_bytes(b);
        }
        let s = env.drain_with(opts).await;
        assert_eq!((s.received, s.loaded, s.rejected), (2, 1, 1), "{budget:?}");
    }
    let users: Vec<String> = env
        .column("SELECT user_id FROM user_logins ORDER BY user_id")
        .await;
    assert_eq!(users, ["big-0", "big-1"]);
    let rejects = env.revealed_rejects().await;
    assert_eq!(rejects.len(), 2);
    for (body, reason) in &rejects {
        assert!(
            *body == invalid,
            "the quarantined body is the one sent, byte for byte"
        );
        assert_eq!(reason, "not_json");
    }
    env.assert_queue_empty().await;
}

/// Thirteen 256 KiB rejects in one batch (about 4.4 MiB sealed, so several reject statements of
/// about 1 MiB each, in one transaction): every one quarantined intact, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_large_rejects_is_quarantined_whole() {
    let env = TestEnv::new().await;
    let bodies: Vec<String> = (0..13)
        .map(|i| {
            let head = format!("not json {i} ");
            format!("{head}{}", "x".repeat(256 * 1024 - head.len()))
        })
        .collect();
    env.send(&bodies).await;
    let s = env
        .drain_with(
            RunOptions::default()
                .writers(1)
                .batch_wait(Duration::from_secs(2)),
        )
        .await;
    assert_eq!((s.received, s.loaded, s.rejected), (13, 0, 13), "{s:?}");
    let mut want: Vec<(String, String)> = bodies
        .into_iter()
        .map(|b| (b, "not_json".to_owned()))
        .collect();
    want.sort();
    assert!(
        env.revealed_rejects().await == want,
        "each quarantined body is the one sent, byte for byte"
    );
    env.assert_queue_empty().await;
}

/// A database that stalls (the table locked) while messages keep arriving: receiving pauses
/// at the budget, the bytes held never pass it by more than one body, and everything loads
/// once the lock goes.
#[tokio::test(flavor = "multi_thread")]
async fn receiving_pauses_at_the_byte_budget() {
    const BODY: usize = 100 * 1024;
    const BUDGET: usize = ONE_MIB;
    const SENT: usize = 30;
    let env = TestEnv::new().await;
    let opts = RunOptions::default()
        .max_inflight_bytes(BUDGET)
        .db_write_timeout(Duration::from_secs(120));
    let mut daemon = env.spawn_daemon(opts);
    daemon.wait_ready().await;
    let mut lock = env.db().await;
    let tx = lock.transaction().await.expect("begin");
    tx.batch_execute("LOCK TABLE user_logins IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let bodies: Vec<String> = (0..SENT)
        .map(|i| padded_login(&format!("u{i}"), BODY))
        .collect();
    env.send(&bodies).await;
    wait_until(
        "a writer blocked on the lock",
        Duration::from_secs(30),
        || async { lock_waiters(&env).await >= 1 },
    )
    .await;
    // A bounded look while the database is stalled: what is held stays within the budget.
    let mut peak = 0;
    for _ in 0..30 {
        peak = peak.max(daemon.inflight_bytes() as usize);
        assert!(
            daemon.received() as usize * BODY <= BUDGET + BODY,
            "received {} bodies of {BODY} bytes against a budget of {BUDGET}",
            daemon.received()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(peak > 0 && peak <= BUDGET + BODY, "peak {peak}");
    assert!((daemon.received() as usize) < SENT, "receiving paused");
    tx.rollback().await.expect("unlock");
    env.wait_drained(Duration::from_secs(60)).await;
    let s = daemon.stop_and_join().await;
    assert_eq!((s.received, s.loaded), (SENT as u64, SENT as u64));
    assert_eq!(daemon.inflight_bytes(), 0, "every charge released");
}

/// The first receives are sized from the queue's own `MaximumMessageSize` (a queue made
/// before 2025 allows 256 KiB), read in one call with its visibility timeout, on both SQS
/// implementations.
#[tokio::test(flavor = "multi_thread")]
async fn the_queues_message_size_limit_is_read_at_start() {
    use aws_sdk_sqs::types::QueueAttributeName;
    use sqs2pg::source::QueueLimits;
    for sqs in [Sqs::LocalStack, Sqs::Moto] {
        let env = TestEnv::on(sqs).await;
        env.source
            .client()
            .set_queue_attributes()
            .queue_url(&env.queue_url)
            .attributes(QueueAttributeName::MaximumMessageSize, "262144")
            .send()
            .await
            .expect("set MaximumMessageSize");
        let limits = env.source.limits().await.expect("queue limits");
        let expected = QueueLimits {
            visibility: Duration::from_secs(30),
            max_message_bytes: 256 * 1024,
        };
        assert_eq!(limits, expected, "{sqs:?}");
    }
}
