//! Nothing lost, nothing doubled, under faults. Each test ends with the same invariants:
//! the multiset of rows equals the valid input column by column (tokens opened back to the
//! values sent, create_date within the days the test ran), the rejects equal the malformed
//! input by body and reason, every message id has exactly one outcome, and the queue holds 0
//! visible and 0 in-flight messages.

use std::time::Duration;

use crate::faults::{jitter_sleep, PrivatePg, Proxy};
use chrono::{NaiveDate, Utc};

use crate::helpers::{
    connect, expected_row, login, masker, stdout_ok, summary_numbers, synthetic, wait_until, Db,
    ExpectedRow, Proc, RunOptions, TestEnv, KEYS,
};

/// Synthetic input and what it must become.
pub(crate) struct Workload {
    pub(crate) bodies: Vec<String>,
    /// The row of every valid body, duplicates included (each is its own row).
    pub(crate) valid: Vec<ExpectedRow>,
    /// `(body, reason)` of every body the contract rejects.
    pub(crate) malformed: Vec<(String, String)>,
    /// The UTC day the workload was made: no row can be dated before it.
    pub(crate) made_on: NaiveDate,
}

pub(crate) fn workload(
    count: usize,
    malformed_rate: f64,
    duplicate_rate: f64,
    seed: u64,
) -> Workload {
    let made_on = Utc::now().date_naive();
    let bodies = synthetic(count, malformed_rate, duplicate_rate, seed);
    let mut valid = Vec::new();
    let mut malformed = Vec::new();
    for b in &bodies {
        match expected_row(b) {
            Ok(row) => valid.push(row),
            Err(reason) => malformed.push((b.clone(), reason)),
        }
    }
    Workload {
        bodies,
        valid,
        malformed,
        made_on,
    }
}

/// A fresh workload, already on the test's queue.
pub(crate) async fn fill_queue(env: &TestEnv, count: usize, seed: u64) -> Workload {
    let w = workload(count, 0.01, 0.05, seed);
    env.send(&w.bodies).await;
    w
}

/// The end-of-test invariants, on the test's database.
pub(crate) async fn assert_invariants(env: &TestEnv, w: &Workload) {
    assert_invariants_at(env, &env.db().await, w).await;
}

/// The end-of-test invariants, on the database of `db`: every column of every row (tokens
/// opened back to the values sent), every reject by body and reason, one outcome per message
/// id, and an empty queue.
pub(crate) async fn assert_invariants_at(env: &TestEnv, db: &Db, w: &Workload) {
    let mut want = w.valid.clone();
    want.sort();
    let mut got = stored_rows(db).await;
    got.sort();
    assert_eq!(got.len(), want.len(), "row count");
    if let Some((g, e)) = got.iter().zip(&want).find(|(g, e)| g != e) {
        panic!("rows differ from the valid input: first stored {g:?}, expected {e:?}");
    }
    let today = Utc::now().date_naive();
    let dates: Vec<NaiveDate> = db
        .column("SELECT DISTINCT create_date FROM user_logins")
        .await;
    for d in &dates {
        assert!(
            (w.made_on..=today).contains(d),
            "create_date {d} is outside the days the test ran ({}..={today})",
            w.made_on
        );
    }

    let rejected = db.revealed_rejects().await;
    let mut malformed = w.malformed.clone();
    malformed.sort();
    assert_eq!(
        rejected, malformed,
        "rejects (body, reason) differ from the malformed input"
    );
    let reject_ids = db
        .count("SELECT count(DISTINCT message_id) FROM user_logins_rejects")
        .await;
    assert_eq!(
        reject_ids as usize,
        w.malformed.len(),
        "one reject per message id"
    );

    let ledger = db.count("SELECT count(*) FROM sqs2pg_ledger").await;
    assert_eq!(
        ledger as usize,
        w.bodies.len(),
        "one outcome per message id"
    );
    let d = env.depth().await;
    assert_eq!((d.visible, d.in_flight), (0, 0), "queue not empty");
}

/// Every stored row with its tokens opened with [`KEYS`], in the shape of [`ExpectedRow`].
async fn stored_rows(db: &Db) -> Vec<ExpectedRow> {
    let mut m = masker(KEYS);
    db.rows(
        "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version \
         FROM user_logins",
    )
    .await
    .iter()
    .map(|r| ExpectedRow {
        user_id: r.get("user_id"),
        device_type: r.get("device_type"),
        ip: r
            .get::<_, Option<String>>("masked_ip")
            .map(|t| m.reveal_ip(&t)),
        device_id: r
            .get::<_, Option<String>>("masked_device_id")
            .map(|t| m.reveal_device_id(&t)),
        locale: r.get("locale"),
        app_version: r.get("app_version"),
    })
    .collect()
}

/// SIGTERM, then exit 0 within `limit`.
async fn stop_cleanly(child: &mut Proc, limit: Duration) {
    child.sigterm();
    assert_eq!(child.wait_exit(limit).await, Some(0));
}

const DAEMON: [&str; 5] = ["run", "--wait-seconds", "1", "--batch-wait-ms", "50"];

/// `times` consumers, each SIGKILLed at a random moment up to 1.5 s after it committed its
/// first outcome, so every one of them made progress before it crashed.
async fn crash_consumers(env: &TestEnv, times: usize) {
    let db = env.db().await;
    for i in 0..times {
        let before = outcomes(&db).await;
        let mut child = env.spawn(&DAEMON, &[]);
        wait_until(
            &format!("consumer {i} commits something before its crash"),
            Duration::from_secs(60),
            || async { outcomes(&db).await > before },
        )
        .await;
        // The crash moment, deliberately random.
        jitter_sleep(0, 1500).await;
        child.sigkill();
    }
}

/// Message ids with a committed outcome (row, reject or skipped duplicate).
async fn outcomes(db: &Db) -> i64 {
    db.count("SELECT count(*) FROM sqs2pg_ledger").await
}

/// 20k messages (1% malformed, 5% re-sent as separate messages), the consumer SIGKILLed at
/// random moments five times and restarted.
#[tokio::test(flavor = "multi_thread")]
async fn kill_dash_nine_loop() {
    let env = TestEnv::with_visibility(8).await;
    let w = fill_queue(&env, 20_000, 11).await;
    crash_consumers(&env, 5).await;
    let mut child = env.spawn(&DAEMON, &[]);
    env.wait_drained(Duration::from_secs(180)).await;
    stop_cleanly(&mut child, Duration::from_secs(40)).await;
    assert_invariants(&env, &w).await;
}

/// Postgres crashes (`pg_ctl restart -m immediate`) mid-run, with writers inside their
/// transactions (held there by a lock, so the crash cannot fall between batches); the
/// consumer recovers alone.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_restart_mid_run() {
    let env = TestEnv::new().await;
    let pg = PrivatePg::start_migrated().await;
    let w = fill_queue(&env, 4000, 12).await;
    let mut daemon = env.spawn_daemon(RunOptions::default().database_url(&pg.url));
    wait_until("500 rows loaded", Duration::from_secs(60), || async {
        daemon.loaded() >= 500
    })
    .await;
    let mut locker = connect(&pg.url).await;
    let _lock = locker.lock_user_logins().await;
    let observer = connect(&pg.url).await;
    wait_until(
        "a writer waits inside its transaction",
        Duration::from_secs(60),
        || async {
            let waiting: i64 = observer
                .scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                .await;
            waiting > 0
        },
    )
    .await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart_immediate();
        pg
    })
    .await
    .unwrap();
    env.wait_drained(Duration::from_secs(120)).await;
    let s = daemon.stop_and_join().await;
    assert_eq!(
        s.loaded as usize,
        w.valid.len(),
        "the one consumer loaded every row itself, across the crash"
    );
    assert!(daemon.retries() > 0, "the crash should have cost retries");
    assert_invariants_at(&env, &connect(&pg.url).await, &w).await;
}

/// A proxy between consumer and Postgres drops every connection at random moments,
/// mid-transaction included.
#[tokio::test(flavor = "multi_thread")]
async fn connections_cut_at_random() {
    let env = TestEnv::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = env
        .database_url
        .replacen("127.0.0.1:5432", &proxy.addr.to_string(), 1);
    assert_ne!(
        via_proxy, env.database_url,
        "DATABASE_URL must point at 127.0.0.1:5432 for this test"
    );
    let w = fill_queue(&env, 4000, 13).await;
    let mut daemon = env.spawn_daemon(RunOptions::default().database_url(&via_proxy));
    wait_until(
        "first message received",
        Duration::from_secs(60),
        || async { daemon.received() > 0 },
    )
    .await;
    for _ in 0..12 {
        // The cut moments, deliberately random.
        jitter_sleep(200, 700).await;
        proxy.cut();
    }
    env.wait_drained(Duration::from_secs(120)).await;
    daemon.stop_and_join().await;
    assert!(daemon.retries() > 0);
    assert!(
        proxy.accepted.load(std::sync::atomic::Ordering::Relaxed) > 3,
        "connections were re-established"
    );
    assert_invariants(&env, &w).await;
}

/// SQS cut off for 5 s (a partition: requests hang), then down for 10 s (every connection
/// refused), then back: the consumer sees the outage (its log says it backed off), and after
/// it deletes every message itself.
#[tokio::test(flavor = "multi_thread")]
async fn sqs_outage_then_recovery() {
    let env = TestEnv::new().await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let target = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let proxy = Proxy::start(target.parse().expect("AWS_ENDPOINT_URL host:port")).await;
    let w = fill_queue(&env, 3000, 14).await;
    let log = log_path(&env, "outage");
    let mut child = env.spawn_reporting(
        &DAEMON,
        &[("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))],
        &log,
    );
    first_rows_loaded(&env).await;
    // The outage: it starts at a random moment.
    jitter_sleep(0, 500).await;
    proxy.blackhole(true);
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.blackhole(false);
    proxy.refuse(true);
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.refuse(false);
    env.wait_drained(Duration::from_secs(180)).await;
    child.sigterm();
    assert_eq!(child.wait_exit(Duration::from_secs(60)).await, Some(0));
    let summary = summary_numbers(&stdout_ok(&child.wait_with_output()));
    let log = std::fs::read_to_string(&log).expect("the consumer's log");
    assert!(
        log.contains("receive failed; backing off"),
        "the outage was seen and backed off from; log:\n{log}"
    );
    // Backed off, not merely logged: pauses doubling from 0.25-0.5 s fit about seven
    // consecutive failures into the 15 s outage for each of the 8 pollers (40 leaves a wide
    // margin); retrying without a pause fails hundreds of times.
    let streaks: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("receive failed; backing off"))
        .filter_map(|l| l.split("failures=").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let longest = streaks.iter().copied().max().unwrap_or(0);
    assert!(
        (2..=40).contains(&longest) && streaks.len() <= 8 * 40,
        "receives retried with growing pauses: {} failures logged, longest streak {longest}",
        streaks.len()
    );
    assert_eq!(
        summary["deleted"], 3000,
        "every message deleted by the one consumer: {summary:?}"
    );
    assert_invariants(&env, &w).await;
}

/// Waits (bounded) until some row has landed: the consumers are at work.
async fn first_rows_loaded(env: &TestEnv) {
    wait_until("first rows loaded", Duration::from_secs(60), || async {
        env.count("SELECT count(*) FROM user_logins").await > 0
    })
    .await;
}

/// A file for a child's log, named after the test's queue, in the system's temp dir.
fn log_path(env: &TestEnv, what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}-{what}.log", env.queue_name))
}

/// A lock on user_logins held longer than the visibility timeout: the heartbeat keeps the
/// messages invisible, so none is delivered twice.
#[tokio::test(flavor = "multi_thread")]
async fn slow_sink_keeps_messages_invisible() {
    let env = TestEnv::with_visibility(3).await;
    let w = workload(300, 0.0, 0.0, 15);
    let mut daemon = env.spawn_daemon(RunOptions::default());
    daemon.wait_ready().await;
    let mut locker = env.db().await;
    let tx = locker.lock_user_logins().await;
    env.send(&w.bodies).await;
    // The fault window: the lock is held well past the 3 s visibility timeout.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(daemon.loaded(), 0, "the lock holds the writers");
    assert!(daemon.received() > 0);
    tx.rollback().await.unwrap();
    env.wait_drained(Duration::from_secs(60)).await;
    let s = daemon.stop_and_join().await;
    assert!(s.visibility_extended > 0, "visibility was extended");
    assert_eq!(s.duplicates, 0, "no message was delivered twice");
    assert_eq!(s.received, 300, "each message received once");
    assert_invariants(&env, &w).await;
}

/// Three instances on one queue at once, one of them frozen (SIGSTOP) past the visibility
/// timeout while it holds messages: the others receive those again, and the ledger turns the
/// second deliveries into skipped duplicates, never second rows. Each instance does work.
#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_a_queue() {
    let env = TestEnv::with_visibility(4).await;
    let w = fill_queue(&env, 6000, 16).await;
    let logs: Vec<_> = (0..3)
        .map(|i| log_path(&env, &format!("instance-{i}")))
        .collect();
    let mut children: Vec<Proc> = logs
        .iter()
        .map(|log| env.spawn_reporting(&DAEMON, &[], log))
        .collect();
    first_rows_loaded(&env).await;
    children[0].sigstop();
    // The fault window: frozen well past the 4 s visibility timeout.
    tokio::time::sleep(Duration::from_secs(10)).await;
    children[0].sigcont();
    env.wait_drained(Duration::from_secs(180)).await;
    for c in &mut children {
        c.sigterm();
    }
    let mut summaries = Vec::new();
    for mut c in children {
        assert_eq!(c.wait_exit(Duration::from_secs(40)).await, Some(0));
        summaries.push(summary_numbers(&stdout_ok(&c.wait_with_output())));
    }
    for (i, s) in summaries.iter().enumerate() {
        assert!(s["received"] > 0, "instance {i} did no work: {s:?}");
    }
    let skipped: u64 = summaries.iter().map(|s| s["duplicates skipped"]).sum();
    assert!(
        skipped > 0,
        "the frozen instance's messages were delivered twice: {summaries:?}"
    );
    assert_invariants(&env, &w).await;
}

/// SIGTERM under load: exit 0; what the run received it committed and deleted, none of it
/// released (its summary and the ledger agree, and the queue holds exactly the rest, none
/// in flight); the next run finishes the rest.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load() {
    let env = TestEnv::new().await;
    let w = fill_queue(&env, 20_000, 17).await;
    let sent = w.bodies.len() as u64;
    let mut args = DAEMON.to_vec();
    args.extend(["--shutdown-timeout", "5"]);
    let log = log_path(&env, "sigterm");
    let mut child = env.spawn_reporting(&args, &[], &log);
    // Stopped at a random moment mid-load.
    jitter_sleep(1000, 1500).await;
    // Held to its deadline is the stalled-writer test's proof (a lock that never lifts);
    // here the bound only keeps a hang from stalling the suite.
    stop_cleanly(&mut child, Duration::from_secs(60)).await;
    let first = summary_numbers(&String::from_utf8_lossy(&child.wait_with_output().stdout));
    let field = |name: &str| first.get(name).copied().unwrap_or(0);
    let received = field("received");
    assert!(received > 0, "stopped mid-load, not before it: {first:?}");
    assert_eq!(field("released"), 0, "nothing released: {first:?}");
    assert_eq!(
        field("deleted"),
        received,
        "every message received deleted: {first:?}"
    );
    let outcomes_counted = field("loaded") + field("rejected") + field("duplicates skipped");
    assert_eq!(outcomes_counted, received, "every one committed: {first:?}");
    let committed = outcomes(&env.db().await).await as u64;
    assert_eq!(
        committed, received,
        "the ledger holds what the run received: {first:?}"
    );
    let d = env.depth().await;
    assert!(d.visible > 0, "the first run was stopped before the end");
    assert_eq!(
        (d.visible, d.in_flight),
        (sent - received, 0),
        "the queue holds the rest, untouched: {first:?}"
    );
    let _ = std::fs::remove_file(&log);
    stdout_ok(&env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]));
    assert_invariants(&env, &w).await;
}

/// SIGTERM while the writers are stalled (a lock on user_logins) and every message is held:
/// at `--shutdown-timeout` what could not commit is released (visibility 0), so with a 300 s
/// visibility timeout nothing stays in flight; the process exits 0 and a later run loads all.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_a_stalled_writer_releases_what_it_holds_at_the_deadline() {
    let env = TestEnv::with_visibility(300).await;
    let w = workload(201, 0.0, 0.0, 21);
    let mut child = env.spawn(
        &["run", "--wait-seconds", "1", "--shutdown-timeout", "2"],
        &[],
    );
    // The first message shows the daemon is consuming before the lock is taken.
    env.send(&w.bodies[..1]).await;
    wait_until(
        "the first message loaded",
        Duration::from_secs(60),
        || async { env.count("SELECT count(*) FROM user_logins").await == 1 },
    )
    .await;
    let mut locker = env.db().await;
    let lock = locker.lock_user_logins().await;
    env.send(&w.bodies[1..]).await;
    wait_until("every message held", Duration::from_secs(60), || async {
        env.depth().await.in_flight == 200
    })
    .await;
    child.sigterm();
    assert_eq!(child.wait_exit(Duration::from_secs(30)).await, Some(0));
    let d = env.depth().await;
    assert_eq!(
        (d.visible, d.in_flight),
        (200, 0),
        "released at the deadline, not left to the 300 s visibility timeout"
    );
    lock.rollback().await.unwrap();
    stdout_ok(&env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]));
    assert_invariants(&env, &w).await;
}

/// A daemon started while its database is down waits it out (it neither exits nor gives the
/// messages up), and drains once the database is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_started_during_a_database_outage_waits_and_then_drains() {
    let env = TestEnv::new().await;
    let pg = PrivatePg::start_migrated().await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let w = fill_queue(&env, 300, 22).await;
    let mut child = env.spawn(&DAEMON, &[("DATABASE_URL", pg.url.clone())]);
    // The outage window, with the daemon started inside it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        child.try_exit_code(),
        None,
        "the daemon waits, it does not exit"
    );
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    env.wait_drained(Duration::from_secs(120)).await;
    stop_cleanly(&mut child, Duration::from_secs(40)).await;
    assert_invariants_at(&env, &connect(&pg.url).await, &w).await;
}

/// Hostile bodies with the reason each must be rejected for (`None`: it loads).
fn hostile_cases() -> Vec<(String, Option<&'static str>)> {
    let ok = |user: &str, extra: &str| {
        format!(
            r#"{{"user_id":{user},"app_version":"1.0","device_type":"ios","ip":"10.0.0.1","locale":"US","device_id":"d"{extra}}}"#
        )
    };
    let big_pad = "x".repeat(250 * 1024);
    vec![
        (ok("\"big-unknown\"", &format!(r#","pad":"{big_pad}""#)), None),
        (ok(&format!("\"{}\"", "u".repeat(200 * 1024)), ""), Some("too_long:user_id")),
        (format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)), Some("not_object")),
        (format!(r#"{{"user_id":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000)), Some("too_deep")),
        // Unknown keys are skipped unparsed, however deep.
        (ok("\"nested-unknown\"", &format!(r#","deep":{}1{}"#, "[".repeat(5000), "]".repeat(5000))), None),
        (ok("42", ""), Some("wrong_type:user_id")),
        (ok("{\"a\":1}", ""), Some("wrong_type:user_id")),
        (ok("\"'; DROP TABLE user_logins; --\"", ""), None),
        (ok("\"ctl\\u0001\\u001f\\t\"", ""), None),
        (ok("\"nul\\u0000\"", ""), Some("nul_character:user_id")),
        (r#"{"user_id":"v","app_version":"99999999999999999999999.1","device_type":null,"ip":null,"locale":null,"device_id":null}"#.into(), Some("bad_app_version")),
        (r#"{"user_id":"v2","app_version":1e400,"device_type":null,"ip":null,"locale":null,"device_id":null}"#.into(), Some("not_json")),
        (r#"{"user_id":"z","app_version":null,"device_type":null,"ip":"fe80::1%eth0","locale":null,"device_id":null}"#.into(), Some("invalid_ip")),
        (r#"{"user_id":"d1","user_id":"d2","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null}"#.into(), Some("duplicate_field:user_id")),
        ("\u{feff}{}".into(), Some("not_json")),
        ("{\"user_id\":\"\\ud800\"}".into(), Some("not_json")),
    ]
}

/// Hostile bodies: each loaded or rejected exactly as the contract says.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_bodies() {
    let env = TestEnv::new().await;
    let cases = hostile_cases();
    let bodies: Vec<String> = cases.iter().map(|(b, _)| b.clone()).collect();
    env.send(&bodies).await;
    let s = env.drain().await;
    let want_rejects = cases.iter().filter(|(_, r)| r.is_some()).count() as u64;
    assert_eq!(s.rejected, want_rejects, "{s:?}");
    assert_eq!(s.loaded, cases.len() as u64 - want_rejects);

    let got = env.revealed_rejects().await;
    let mut want: Vec<(String, String)> = cases
        .iter()
        .filter_map(|(b, r)| r.map(|r| (b.clone(), r.to_string())))
        .collect();
    want.sort();
    assert_eq!(got.len(), want.len());
    for ((got_body, got_reason), (want_body, want_reason)) in got.iter().zip(&want) {
        assert_eq!(
            got_reason,
            want_reason,
            "reason for a body of {} bytes",
            want_body.len()
        );
        assert!(got_body == want_body, "sealed body reveals verbatim");
    }
    let mut stored: Vec<String> = env.column("SELECT user_id FROM user_logins").await;
    stored.sort();
    assert_eq!(
        stored,
        [
            "'; DROP TABLE user_logins; --",
            "big-unknown",
            "ctl\u{1}\u{1f}\t",
            "nested-unknown"
        ]
    );
}

/// 100 bad_app_version rejects, 1 not_json reject and 1 row, loaded and listed.
async fn load_rejects_for_replay(env: &TestEnv) {
    let mut bodies: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"user_id":"beta-{i:03}","app_version":"2.0-beta.{i}","device_type":"ios","ip":"10.4.0.{}","locale":null,"device_id":"d{i}"}}"#, i % 250))
        .collect();
    bodies.push("still not json".into());
    bodies.push(login("fine", "10.4.1.1", "d"));
    env.send(&bodies).await;
    let s = env.drain().await;
    assert_eq!((s.loaded, s.rejected), (1, 101));
    let list = stdout_ok(&env.run_cmd(&["rejects", "list", "--ids", "2"]));
    assert!(list.starts_with("bad_app_version\t100\n  "), "{list}");
    assert!(list.contains("not_json\t1"), "{list}");
    assert!(!list.contains("beta"), "bodies are never listed");
}

/// A first `rejects replay` stalled on a locked reject in the middle (after 40 of 100
/// loaded), then SIGKILLed; returns how many rows there were then.
async fn replay_killed_halfway(env: &TestEnv) -> i64 {
    let mut locker = env.db().await;
    let tx = locker.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM user_logins_rejects WHERE message_id = (SELECT message_id FROM user_logins_rejects WHERE reason = 'bad_app_version' ORDER BY message_id OFFSET 60 LIMIT 1) FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let mut replay = env.spawn(
        &[
            "rejects",
            "replay",
            "--reason",
            "bad_app_version",
            "--batch-size",
            "10",
        ],
        &[],
    );
    let rows = || env.count("SELECT count(*) FROM user_logins");
    wait_until("41 rows replayed", Duration::from_secs(30), || async {
        rows().await >= 41
    })
    .await;
    // The fault window: give the stalled replay time to sit on the lock before the kill.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        replay.try_exit_code(),
        None,
        "the first replay is still running, stalled on the lock, when it is killed"
    );
    replay.sigkill();
    let halfway = rows().await;
    assert!((41..101).contains(&halfway), "{halfway}");
    tx.rollback().await.unwrap();
    halfway
}

/// Rejects for bad_app_version load after the column becomes text and `rejects replay`
/// runs; a replay killed halfway and rerun leaves each message exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn replay_after_the_column_changes() {
    let env = TestEnv::new().await;
    load_rejects_for_replay(&env).await;
    env.db()
        .await
        .batch_execute("ALTER TABLE user_logins ALTER COLUMN app_version TYPE varchar(32)")
        .await
        .unwrap();
    replay_killed_halfway(&env).await;

    let out = stdout_ok(&env.run_cmd(&["rejects", "replay"]));
    assert_eq!(summary_numbers(&out)["still rejected"], 1, "{out}");
    let out = stdout_ok(&env.run_cmd(&["rejects", "replay"]));
    assert_eq!(summary_numbers(&out)["loaded"], 0, "idempotent: {out}");
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 101);
    let v: String = env
        .scalar("SELECT app_version FROM user_logins WHERE user_id = 'beta-007'")
        .await;
    assert_eq!(v, "2.0-beta.7");
    let left: Vec<String> = env.column("SELECT reason FROM user_logins_rejects").await;
    assert_eq!(left, ["not_json"]);
    // Every message exactly once: 101 rows + 1 reject, no user twice.
    assert_eq!(
        env.count("SELECT count(DISTINCT user_id) FROM user_logins")
            .await,
        101
    );
}
