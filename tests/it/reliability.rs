//! Nothing lost, nothing doubled, under faults. Each test ends with the same invariants:
//! the multiset of rows equals the valid input (by user_id and ip token), the rejects equal
//! the malformed input, every message id has exactly one outcome, and the queue holds 0
//! visible and 0 in-flight messages.

use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqs2pg::decode::{decode, Limits};
use sqs2pg::mask::{Column, Keyring, Masker};
use sqs2pg::synth::{generate, SynthOptions};
use sqs2pg::telemetry::Stats;
use tokio_util::sync::CancellationToken;

use crate::faults::{jitter_sleep, PrivatePg, Proxy};
use crate::helpers::{stdout_ok, TestEnv, KEYS};

/// Synthetic input and what it must become.
struct Workload {
    bodies: Vec<String>,
    /// (user_id, ip) of every valid body, duplicates included (each is its own row).
    valid: Vec<(String, Option<String>)>,
    malformed: Vec<String>,
}

fn workload(count: usize, malformed_rate: f64, duplicate_rate: f64, seed: u64) -> Workload {
    let bodies = generate(SynthOptions {
        count,
        duplicate_rate,
        malformed_rate,
        seed,
    });
    let mut valid = Vec::new();
    let mut malformed = Vec::new();
    for b in &bodies {
        match decode(b.as_bytes(), &Limits::default()) {
            Ok(l) => valid.push((l.user_id, l.ip.map(|ip| ip.expose().to_string()))),
            Err(_) => malformed.push(b.clone()),
        }
    }
    Workload {
        bodies,
        valid,
        malformed,
    }
}

/// The end-of-test invariants, on the test's database.
async fn assert_invariants(env: &TestEnv, w: &Workload) {
    assert_invariants_at(env, &env.database_url, w).await;
}

/// The end-of-test invariants, on the database at `db_url`.
async fn assert_invariants_at(env: &TestEnv, db_url: &str, w: &Workload) {
    let db = crate::helpers::connect(db_url).await;
    let mut m = Masker::new(&Keyring::parse(KEYS).unwrap());
    let mut want: Vec<(String, Option<String>)> = w
        .valid
        .iter()
        .map(|(u, ip)| {
            (
                u.clone(),
                ip.as_ref().map(|ip| m.mask_ip(ip.parse().unwrap())),
            )
        })
        .collect();
    want.sort();
    let mut got: Vec<(String, Option<String>)> = db
        .query("SELECT user_id, masked_ip FROM user_logins", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    got.sort();
    assert_eq!(got.len(), want.len(), "row count");
    assert!(got == want, "rows differ from the valid input");

    let mut rejected: Vec<String> = db
        .query("SELECT body_ciphertext FROM user_logins_rejects", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| m.reveal(Column::Body, &r.get::<_, String>(0)).unwrap())
        .collect();
    rejected.sort();
    let mut malformed = w.malformed.clone();
    malformed.sort();
    assert_eq!(
        rejected, malformed,
        "rejects differ from the malformed input"
    );

    let ledger: i64 = db
        .query_one("SELECT count(*) FROM sqs2pg_ledger", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        ledger as usize,
        w.bodies.len(),
        "one outcome per message id"
    );
    let d = env.depth().await;
    assert_eq!((d.visible, d.in_flight), (0, 0), "queue not empty");
}

/// Waits until LocalStack reports the queue empty (visible and in flight) twice in a row.
async fn wait_drained(env: &TestEnv, limit: Duration) {
    let started = Instant::now();
    let mut zeros = 0;
    while started.elapsed() < limit {
        let d = env.depth().await;
        zeros = if (d.visible, d.in_flight) == (0, 0) {
            zeros + 1
        } else {
            0
        };
        if zeros == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "queue not drained within {limit:?}: {:?}",
        env.depth().await
    );
}

fn spawn(env: &TestEnv, args: &[&str], envs: &[(&str, String)]) -> Child {
    let mut c = env.cmd(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sqs2pg")
}

fn sigterm(child: &Child) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -TERM");
}

/// Waits for a child to exit, at most `limit`; returns its exit code.
async fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const DAEMON: [&str; 5] = ["run", "--wait-seconds", "1", "--batch-wait-ms", "50"];

/// 20k messages (1% malformed, 5% re-sent as separate messages), the consumer SIGKILLed at
/// random moments five times and restarted.
#[tokio::test(flavor = "multi_thread")]
async fn kill_dash_nine_loop() {
    let env = TestEnv::with_visibility(8).await;
    let w = workload(20_000, 0.01, 0.05, 11);
    env.send(&w.bodies).await;
    for _ in 0..5 {
        let mut child = spawn(&env, &DAEMON, &[]);
        jitter_sleep(800, 2500).await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut child = spawn(&env, &DAEMON, &[]);
    wait_drained(&env, Duration::from_secs(180)).await;
    sigterm(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(40)).await,
        Some(0)
    );
    assert_invariants(&env, &w).await;
}

async fn daemon(
    env: &TestEnv,
    db_url: &str,
) -> (
    tokio::task::JoinHandle<Result<sqs2pg::telemetry::Summary, sqs2pg::pipeline::PipelineError>>,
    CancellationToken,
    Arc<Stats>,
) {
    let mut cfg = env.run_config(env.pipeline_config());
    cfg.pipeline.until_empty = false;
    cfg.db = sqs2pg::config::DbConfig::parse(db_url).unwrap();
    let stop = CancellationToken::new();
    let stats = Arc::new(Stats::default());
    let task = tokio::spawn(sqs2pg::pipeline::run(cfg, stop.clone(), stats.clone()));
    (task, stop, stats)
}

/// Postgres crashes (`pg_ctl restart -m immediate`) mid-run; the consumer recovers alone.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_restart_mid_run() {
    let env = TestEnv::new().await;
    let pg = tokio::task::spawn_blocking(PrivatePg::start).await.unwrap();
    let mut c = crate::helpers::connect(&pg.url).await;
    sqs2pg::sink::migrate(&mut c, false).await.unwrap();
    drop(c);
    let w = workload(4000, 0.01, 0.05, 12);
    env.send(&w.bodies).await;
    let (task, stop, stats) = daemon(&env, &pg.url).await;
    while stats.loaded.load(Ordering::Relaxed) < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart_immediate();
        pg
    })
    .await
    .unwrap();
    wait_drained(&env, Duration::from_secs(120)).await;
    stop.cancel();
    let s = task.await.unwrap().unwrap();
    assert!(s.loaded > 0);
    assert!(
        stats.retries.load(Ordering::Relaxed) > 0,
        "the crash should have cost retries"
    );
    assert_invariants_at(&env, &pg.url, &w).await;
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
    let w = workload(4000, 0.01, 0.05, 13);
    env.send(&w.bodies).await;
    let (task, stop, stats) = daemon(&env, &via_proxy).await;
    while stats.received.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..12 {
        jitter_sleep(200, 700).await;
        proxy.cut();
    }
    wait_drained(&env, Duration::from_secs(120)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert!(stats.retries.load(Ordering::Relaxed) > 0);
    assert!(
        proxy.accepted.load(Ordering::Relaxed) > 3,
        "connections were re-established"
    );
    assert_invariants(&env, &w).await;
}

/// SQS unreachable for 10 s (traffic blackholed), then back.
#[tokio::test(flavor = "multi_thread")]
async fn sqs_outage_then_recovery() {
    let env = TestEnv::new().await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let target = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let proxy = Proxy::start(target.parse().expect("AWS_ENDPOINT_URL host:port")).await;
    let w = workload(3000, 0.01, 0.05, 14);
    env.send(&w.bodies).await;
    let mut child = spawn(
        &env,
        &DAEMON,
        &[("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))],
    );
    jitter_sleep(500, 1000).await;
    proxy.blackhole(true);
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.blackhole(false);
    wait_drained(&env, Duration::from_secs(180)).await;
    sigterm(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(60)).await,
        Some(0)
    );
    assert_invariants(&env, &w).await;
}

/// A lock on user_logins held longer than the visibility timeout: the heartbeat keeps the
/// messages invisible, so none is delivered twice.
#[tokio::test(flavor = "multi_thread")]
async fn slow_sink_keeps_messages_invisible() {
    let env = TestEnv::with_visibility(3).await;
    let w = workload(300, 0.0, 0.0, 15);
    let (task, stop, stats) = daemon(&env, &env.database_url).await;
    while !stats.ready.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut locker = env.db().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE user_logins IN SHARE MODE")
        .await
        .unwrap();
    env.send(&w.bodies).await;
    // Held well past the 3 s visibility timeout.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(
        stats.loaded.load(Ordering::Relaxed),
        0,
        "the lock holds the writers"
    );
    assert!(stats.received.load(Ordering::Relaxed) > 0);
    tx.rollback().await.unwrap();
    wait_drained(&env, Duration::from_secs(60)).await;
    stop.cancel();
    let s = task.await.unwrap().unwrap();
    assert!(s.visibility_extended > 0, "visibility was extended");
    assert_eq!(s.duplicates, 0, "no message was delivered twice");
    assert_eq!(s.received, 300, "each message received once");
    assert_invariants(&env, &w).await;
}

/// Three instances on one queue at once.
#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_a_queue() {
    let env = TestEnv::new().await;
    let w = workload(6000, 0.01, 0.05, 16);
    env.send(&w.bodies).await;
    let mut children: Vec<Child> = (0..3).map(|_| spawn(&env, &DAEMON, &[])).collect();
    wait_drained(&env, Duration::from_secs(120)).await;
    for c in &children {
        sigterm(c);
    }
    for c in &mut children {
        assert_eq!(wait_exit(c, Duration::from_secs(40)).await, Some(0));
    }
    assert_invariants(&env, &w).await;
}

/// SIGTERM under load: exit 0 within the deadline; the next run finishes the rest.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load() {
    let env = TestEnv::new().await;
    let w = workload(20_000, 0.01, 0.05, 17);
    env.send(&w.bodies).await;
    let mut args = DAEMON.to_vec();
    args.extend(["--shutdown-timeout", "5"]);
    let mut child = spawn(&env, &args, &[]);
    jitter_sleep(1000, 1500).await;
    let asked = Instant::now();
    sigterm(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(20)).await,
        Some(0)
    );
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "exit took {:?}",
        asked.elapsed()
    );
    let d = env.depth().await;
    assert!(d.visible > 0, "the first run was stopped before the end");
    assert_eq!(
        d.in_flight, 0,
        "nothing left held: committed and deleted, or released"
    );
    stdout_ok(&env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]));
    assert_invariants(&env, &w).await;
}

/// Hostile bodies: each loaded or rejected exactly as the contract says.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_bodies() {
    let env = TestEnv::new().await;
    let ok = |user: &str, extra: &str| {
        format!(
            r#"{{"user_id":{user},"app_version":"1.0","device_type":"ios","ip":"10.0.0.1","locale":"US","device_id":"d"{extra}}}"#
        )
    };
    let big_pad = "x".repeat(250 * 1024);
    let cases: Vec<(String, Option<&str>)> = vec![
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
    ];
    let bodies: Vec<String> = cases.iter().map(|(b, _)| b.clone()).collect();
    env.send(&bodies).await;
    let s = env.drain().await;
    let want_rejects = cases.iter().filter(|(_, r)| r.is_some()).count() as u64;
    assert_eq!(s.rejected, want_rejects, "{s:?}");
    assert_eq!(s.loaded, cases.len() as u64 - want_rejects);
    let db = env.db().await;
    let mut m = Masker::new(&Keyring::parse(KEYS).unwrap());
    let mut got: Vec<(String, String)> = db
        .query(
            "SELECT body_ciphertext, reason FROM user_logins_rejects",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                m.reveal(Column::Body, &r.get::<_, String>(0)).unwrap(),
                r.get(1),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = cases
        .iter()
        .filter_map(|(b, r)| r.map(|r| (b.clone(), r.to_string())))
        .collect();
    want.sort();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.1, w.1, "reason for a body of {} bytes", w.0.len());
        assert!(g.0 == w.0, "sealed body reveals verbatim");
    }
    let mut stored: Vec<String> = db
        .query("SELECT user_id FROM user_logins", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
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

/// Rejects for bad_app_version load after the column becomes text and `rejects replay`
/// runs; a replay killed halfway and rerun leaves each message exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn replay_after_the_column_changes() {
    let env = TestEnv::new().await;
    let mut bodies: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"user_id":"beta-{i:03}","app_version":"2.0-beta.{i}","device_type":"ios","ip":"10.4.0.{}","locale":null,"device_id":"d{i}"}}"#, i % 250))
        .collect();
    bodies.push("still not json".into());
    bodies.push(crate::helpers::login("fine", "10.4.1.1", "d"));
    env.send(&bodies).await;
    let s = env.drain().await;
    assert_eq!((s.loaded, s.rejected), (1, 101));
    let list = stdout_ok(&env.run_cmd(&["rejects", "list", "--ids", "2"]));
    assert!(list.starts_with("bad_app_version\t100\n  "), "{list}");
    assert!(list.contains("not_json\t1"), "{list}");
    assert!(!list.contains("beta"), "bodies are never listed");

    let db = env.db().await;
    db.batch_execute("ALTER TABLE user_logins ALTER COLUMN app_version TYPE varchar(32)")
        .await
        .unwrap();

    // Stall the first replay on a locked reject in the middle, then kill it.
    let mut locker = env.db().await;
    let tx = locker.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM user_logins_rejects WHERE message_id = (SELECT message_id FROM user_logins_rejects WHERE reason = 'bad_app_version' ORDER BY message_id OFFSET 60 LIMIT 1) FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let mut replay = spawn(
        &env,
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
    let rows = || async {
        let n: i64 = db
            .query_one("SELECT count(*) FROM user_logins", &[])
            .await
            .unwrap()
            .get(0);
        n
    };
    let started = Instant::now();
    while rows().await < 41 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    replay.kill().unwrap();
    assert!(
        !replay.wait().unwrap().success(),
        "the first replay was killed while stalled"
    );
    let halfway = rows().await;
    assert!((41..101).contains(&halfway), "{halfway}");
    tx.rollback().await.unwrap();

    let out = stdout_ok(&env.run_cmd(&["rejects", "replay"]));
    assert!(out.contains("still rejected      1"), "{out}");
    let out = stdout_ok(&env.run_cmd(&["rejects", "replay"]));
    assert!(out.contains("loaded              0"), "idempotent: {out}");
    let n: i64 = db
        .query_one("SELECT count(*) FROM user_logins", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 101);
    let v: String = db
        .query_one(
            "SELECT app_version FROM user_logins WHERE user_id = 'beta-007'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "2.0-beta.7");
    let left: Vec<String> = db
        .query("SELECT reason FROM user_logins_rejects", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["not_json"]);
    // Every message exactly once: 101 rows + 1 reject, no user twice.
    let distinct: i64 = db
        .query_one("SELECT count(DISTINCT user_id) FROM user_logins", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(distinct, 101);
}
