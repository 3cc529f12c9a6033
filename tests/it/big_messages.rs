//! Bodies up to SQS's 1 MiB limit through the whole pipeline, and the byte budget
//! (`--max-inflight-bytes`) that bounds what is held however large the bodies are.

use std::time::Duration;

use crate::db_faults::lock_waiters;
use crate::faults::PrivatePg;
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

/// Memory stays bounded while Postgres is down: the writers held by a lock until the byte
/// budget is full, then Postgres stopped under them for 25 s while the queue holds many
/// budgets more. The process's resident memory, sampled throughout (and until everything is
/// loaded), stays within what it used once warmed up plus the budget plus a fixed allowance
/// (runtime, buffers, the allocator's slack); once Postgres is back every message loads
/// exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn memory_stays_bounded_while_postgres_is_down() {
    const BODY: usize = 256 * 1024;
    const SENT: i64 = 240;
    const BUDGET: usize = 4 * ONE_MIB;
    let env = TestEnv::new().await;
    let pg = PrivatePg::start_migrated().await;
    let db = connect(&pg.url).await;
    let rows = "SELECT count(*) FROM user_logins";
    let log = std::env::temp_dir().join(format!("{}-outage.log", env.queue_name));
    let budget = BUDGET.to_string();
    let args = [
        "run",
        "--wait-seconds",
        "1",
        "--max-inflight-bytes",
        &budget,
    ];
    let mut run = env.spawn_reporting(&args, &[("DATABASE_URL", pg.url.clone())], &log);
    env.send(&[padded_login("warm-up", BODY)]).await;
    let warm = || async { db.count(rows).await == 1 };
    wait_until("the warm-up message loaded", Duration::from_secs(60), warm).await;
    let memory = Memory::from(resident_bytes(run.pid()).expect("running"), BUDGET);
    let rss = PeakRss::sample(run.pid());

    let mut locker = connect(&pg.url).await;
    let lock = locker.lock_user_logins().await;
    let bodies: Vec<String> = (0..SENT)
        .map(|i| padded_login(&format!("u{i}"), BODY))
        .collect();
    env.send(&bodies).await;
    let blocked = || async { cluster_lock_waiters(&db).await >= 1 };
    wait_until(
        "a writer blocked on the lock",
        Duration::from_secs(60),
        blocked,
    )
    .await;
    drop((lock, db));
    let pg = outage(pg, Duration::from_secs(25)).await;
    memory.assert_within("while Postgres was down", rss.peak());

    let db = connect(&pg.url).await;
    let loaded = || async { db.count(rows).await == SENT + 1 };
    wait_until("every message loaded", Duration::from_secs(180), loaded).await;
    env.wait_drained(Duration::from_secs(60)).await;
    memory.assert_within("until everything was loaded", rss.stop());
    let once = "SELECT count(DISTINCT user_id) FROM user_logins";
    assert_eq!(db.count(once).await, SENT + 1, "each message once");
    run.sigterm();
    assert_eq!(run.wait_exit(Duration::from_secs(60)).await, Some(0));
    let _ = std::fs::remove_file(&log);
}

/// Sessions of a private cluster waiting on a lock (the cluster is the test's own).
async fn cluster_lock_waiters(db: &Db) -> i64 {
    db.count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        .await
}

/// Stops `pg` for `length`, then starts it again.
async fn outage(pg: PrivatePg, length: Duration) -> PrivatePg {
    tokio::task::spawn_blocking(move || {
        pg.stop();
        std::thread::sleep(length);
        pg.start_again();
        pg
    })
    .await
    .expect("the outage")
}

/// The bound on a consumer's resident memory: what it used once warmed up, plus its byte
/// budget, plus a fixed allowance (runtime, buffers, the allocator's slack).
struct Memory {
    warmed: u64,
    budget: u64,
}

impl Memory {
    const ALLOWANCE: u64 = 16 * ONE_MIB as u64;

    fn from(warmed: u64, budget: usize) -> Self {
        Self {
            warmed,
            budget: budget as u64,
        }
    }

    fn assert_within(&self, when: &str, peak: u64) {
        let mib = |b: u64| b as f64 / ONE_MIB as f64;
        assert!(
            peak <= self.warmed + self.budget + Self::ALLOWANCE,
            "resident memory {when} peaked at {:.1} MiB: over {:.1} MiB warmed + {:.1} MiB budget + {:.1} MiB allowance",
            mib(peak),
            mib(self.warmed),
            mib(self.budget),
            mib(Self::ALLOWANCE)
        );
    }
}
