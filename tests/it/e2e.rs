//! End to end on real LocalStack SQS and real Postgres: what goes in, what lands, what
//! leaves the queue.

use std::collections::{BTreeMap, HashMap};

use sqs2pg::mask::{Column, Keyring, Masker};
use sqs2pg::sink::{Record, Sink};

use crate::helpers::{login, sample_file, stdout_ok, TestEnv, KEYS};

fn masker() -> Masker {
    Masker::new(&Keyring::parse(KEYS).unwrap())
}

async fn assert_queue_empty(env: &TestEnv) {
    let d = env.depth().await;
    assert_eq!((d.visible, d.in_flight), (0, 0), "queue not empty: {d:?}");
}

/// The original exercise: 99 rows, 1 reject, nulls kept, versions encoded, tokens that
/// reveal, an empty queue.
#[tokio::test(flavor = "multi_thread")]
async fn sample_file_end_to_end() {
    let Some(path) = sample_file() else {
        eprintln!("fetch-login-sample.json not present beside the checkout; nothing to load");
        return;
    };
    let env = TestEnv::new().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let sample: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(sample.len(), 100);

    let out = stdout_ok(&env.run_cmd(&["send", "--file", path.to_str().unwrap()]));
    assert!(out.starts_with("sent 100 messages"), "{out}");
    let day_before = chrono::Utc::now().date_naive();
    let out = stdout_ok(&env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]));
    let day_after = chrono::Utc::now().date_naive();
    assert!(out.contains("received            100"), "{out}");
    assert!(out.contains("loaded              99"), "{out}");
    assert!(out.contains("rejected            1"), "{out}");
    assert!(out.contains("missing_field:user_id"), "{out}");
    assert!(out.contains("deleted             100"), "{out}");

    let db = env.db().await;
    let rows = db
        .query("SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date FROM user_logins", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 99);
    let nulls = rows
        .iter()
        .filter(|r| r.get::<_, Option<String>>(4).is_none())
        .count();
    assert_eq!(nulls, 29);
    let by_user: HashMap<String, &tokio_postgres::Row> =
        rows.iter().map(|r| (r.get(0), r)).collect();
    assert_eq!(
        by_user["424cdd21-063a-43a7-b91b-7ca1a833afae"].get::<_, Option<i32>>(5),
        Some(20300)
    );
    assert_eq!(
        by_user["181452ad-20c3-4e93-86ad-1934c9248903"].get::<_, Option<i32>>(5),
        Some(9600)
    );
    for r in &rows {
        let d: chrono::NaiveDate = r.get(6);
        assert!(d == day_before || d == day_after, "create_date {d}");
    }

    // Every masked value differs from its original and reveals back to it (through the CLI).
    let mut ip_tokens = Vec::new();
    let mut dev_tokens = Vec::new();
    let mut originals = Vec::new();
    for v in sample.iter().filter(|v| v.get("user_id").is_some()) {
        let r = by_user[v["user_id"].as_str().unwrap()];
        let (ip, dev): (Option<String>, Option<String>) = (r.get(2), r.get(3));
        assert_eq!(
            r.get::<_, Option<String>>(1).as_deref(),
            v["device_type"].as_str()
        );
        let (ip, dev) = (ip.unwrap(), dev.unwrap());
        assert_ne!(Some(ip.as_str()), v["ip"].as_str());
        assert_ne!(Some(dev.as_str()), v["device_id"].as_str());
        assert_eq!(ip.len(), 49);
        ip_tokens.push(ip);
        dev_tokens.push(dev);
        originals.push((
            v["ip"].as_str().unwrap().to_owned(),
            v["device_id"].as_str().unwrap().to_owned(),
        ));
    }
    let revealed_ips = reveal(&env, "ip", &ip_tokens);
    let revealed_devs = reveal(&env, "device_id", &dev_tokens);
    for (i, (ip, dev)) in originals.iter().enumerate() {
        assert_eq!(&revealed_ips[i], ip);
        assert_eq!(&revealed_devs[i], dev);
    }

    // The reject keeps its body, sealed, and reveal opens it verbatim.
    let rej = db
        .query_one("SELECT reason, body_ciphertext, receive_count, sent_at IS NOT NULL FROM user_logins_rejects", &[])
        .await
        .unwrap();
    assert_eq!(rej.get::<_, String>(0), "missing_field:user_id");
    let sealed: String = rej.get(1);
    assert!(!sealed.contains("oops_wrong_msg_type"));
    assert_eq!(rej.get::<_, Option<i32>>(2), Some(1));
    assert!(rej.get::<_, bool>(3));
    let body: serde_json::Value =
        serde_json::from_str(&masker().reveal(Column::Body, &sealed).unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"foo": "oops_wrong_msg_type", "bar": "123"})
    );

    assert_queue_empty(&env).await;
}

fn reveal(env: &TestEnv, column: &str, tokens: &[String]) -> Vec<String> {
    use std::io::Write;
    let mut child = env
        .cmd(&[
            "reveal",
            "--column",
            column,
            "--reason",
            "test: sample round trip",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = tokens.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    stdout_ok(&out).lines().map(str::to_owned).collect()
}

/// Equal values give equal tokens across messages; different values differ; every
/// spelling of one address gives one token.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_identify_duplicates() {
    let env = TestEnv::new().await;
    env.send(&[
        login("a", "1.2.3.4", "dev-1"),
        login("b", "1.2.3.4", "dev-1"),
        login("c", "::ffff:1.2.3.4", "dev-2"),
        login("d", "5.6.7.8", "dev-3"),
        login("e", "2001:DB8::1", "dev-3"),
        login("f", "2001:db8:0:0::1", "dev-4"),
    ])
    .await;
    let s = env.drain().await;
    assert_eq!((s.loaded, s.rejected, s.deleted), (6, 0, 6));
    let db = env.db().await;
    let tok: BTreeMap<String, (String, String)> = db
        .query(
            "SELECT user_id, masked_ip, masked_device_id FROM user_logins",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    assert_eq!(tok["a"], tok["b"]);
    assert_eq!(tok["a"].0, tok["c"].0);
    assert_ne!(tok["a"].1, tok["c"].1);
    assert_ne!(tok["a"].0, tok["d"].0);
    assert_eq!(tok["d"].1, tok["e"].1);
    assert_eq!(tok["e"].0, tok["f"].0);
    assert_ne!(tok["d"].0, tok["e"].0);
    let groups: i64 = db
        .query_one("SELECT count(DISTINCT masked_ip) FROM user_logins", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(groups, 3);
    assert_queue_empty(&env).await;
}

/// A crash after COMMIT and before delete: the redelivered messages produce nothing new.
#[tokio::test(flavor = "multi_thread")]
async fn redelivery_after_commit_does_not_duplicate() {
    let env = TestEnv::new().await;
    let bodies: Vec<String> = (0..5)
        .map(|i| login(&format!("u{i}"), "10.0.0.1", &format!("d{i}")))
        .collect();
    env.send(&bodies).await;

    // Receive and commit like a writer would, then "crash" before deleting.
    let mut received = Vec::new();
    while received.len() < 5 {
        received.extend(env.source.receive(1).await.unwrap());
    }
    let (mut sink, limits) = Sink::connect(&env.run_config(env.pipeline_config()).db)
        .await
        .unwrap();
    let mut m = masker();
    let records: Vec<Record> = received
        .iter()
        .map(|msg| Record {
            message_id: msg.message_id.clone(),
            outcome: sqs2pg::pipeline::transform(msg, &limits, &mut m).0,
        })
        .collect();
    let first = sink.write(&records).await.unwrap();
    assert_eq!(first.loaded, 5);
    let handles: Vec<&str> = received.iter().map(|m| m.receipt_handle.as_str()).collect();
    env.source.change_visibility(&handles, 0).await.unwrap();

    let s = env.drain().await;
    assert_eq!(s.received, 5);
    assert_eq!(s.loaded, 0);
    assert_eq!(s.duplicates, 5);
    assert_eq!(s.deleted, 5);
    let n: i64 = env
        .db()
        .await
        .query_one("SELECT count(*) FROM user_logins", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
    assert_queue_empty(&env).await;
}

/// One bad message among good ones: the good load, the bad is quarantined. Also a row the
/// database itself refuses (an operator's CHECK): only that one is isolated and rejected.
#[tokio::test(flavor = "multi_thread")]
async fn bad_message_in_a_batch_of_good_ones() {
    let env = TestEnv::new().await;
    let db = env.db().await;
    db.batch_execute(
        "ALTER TABLE user_logins ADD CONSTRAINT no_poison CHECK (user_id <> 'poison')",
    )
    .await
    .unwrap();
    let mut bodies: Vec<String> = (0..40)
        .map(|i| login(&format!("good-{i}"), "10.1.1.1", "dev"))
        .collect();
    bodies.insert(7, login("bad-ip", "10.1.1", "dev"));
    bodies.insert(23, login("poison", "10.1.1.2", "dev"));
    env.send(&bodies).await;
    let mut cfg = env.pipeline_config();
    // One writer and a long window so all 42 land in one batch.
    cfg.writers = 1;
    cfg.batch_wait = std::time::Duration::from_millis(1500);
    let s = sqs2pg::pipeline::run(env.run_config(cfg), Default::default(), Default::default())
        .await
        .unwrap();
    assert_eq!(
        (s.received, s.loaded, s.rejected, s.deleted),
        (42, 40, 2, 42)
    );
    let reasons: Vec<String> = db
        .query(
            "SELECT reason FROM user_logins_rejects ORDER BY reason",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reasons, ["database_error:23514", "invalid_ip"]);
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM user_logins WHERE user_id LIKE 'good-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 40);
    assert_queue_empty(&env).await;
}

/// Each rule of the contract's table, through the whole pipeline.
#[tokio::test(flavor = "multi_thread")]
async fn every_reject_rule_end_to_end() {
    let env = TestEnv::new().await;
    let base = serde_json::json!({"user_id": "u", "app_version": "1.0", "device_type": "ios", "ip": "10.0.0.1", "locale": "US", "device_id": "d"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b.to_string()
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "not_json"),
        ("[1,2,3]".into(), "not_object"),
        (without("ip"), "missing_field:ip"),
        (without("locale"), "missing_field:locale"),
        (with("locale", serde_json::json!(5)), "wrong_type:locale"),
        (
            with("device_id", serde_json::json!({"a": 1})),
            "wrong_type:device_id",
        ),
        (with("user_id", serde_json::Value::Null), "null_user_id"),
        (with("user_id", serde_json::json!("")), "empty_user_id"),
        (
            with("user_id", serde_json::json!("x".repeat(129))),
            "too_long:user_id",
        ),
        (
            with("device_type", serde_json::json!("x".repeat(33))),
            "too_long:device_type",
        ),
        (
            with("device_id", serde_json::json!("x".repeat(200))),
            "too_long:device_id",
        ),
        (with("ip", serde_json::json!("256.1.1.1")), "invalid_ip"),
        (with("ip", serde_json::json!("fe80::1%eth0")), "invalid_ip"),
        (
            with("app_version", serde_json::json!("1.100")),
            "bad_app_version",
        ),
        (
            with("app_version", serde_json::json!("1.2.3.4")),
            "bad_app_version",
        ),
    ];
    let valid = [
        // Null fields other than user_id load as NULL; unknown keys are ignored.
        with("ip", serde_json::Value::Null),
        r#"{"user_id":"nulls","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null,"extra":1}"#.to_string(),
        with("ip", serde_json::json!("224.0.0.1")),
        with("user_id", serde_json::json!("'); DROP TABLE user_logins; --")),
    ];
    let mut bodies: Vec<String> = cases.iter().map(|(b, _)| b.clone()).collect();
    bodies.extend(valid.iter().cloned());
    env.send(&bodies).await;
    let s = env.drain().await;
    assert_eq!(s.loaded, valid.len() as u64);
    assert_eq!(s.rejected, cases.len() as u64);
    assert_eq!(s.unknown_keys, 1);
    let db = env.db().await;
    let mut m = masker();
    let mut got: Vec<(String, String)> = Vec::new();
    for r in db
        .query(
            "SELECT reason, body_ciphertext FROM user_logins_rejects",
            &[],
        )
        .await
        .unwrap()
    {
        let body = m.reveal(Column::Body, &r.get::<_, String>(1)).unwrap();
        got.push((body, r.get(0)));
    }
    got.sort();
    let mut want: Vec<(String, String)> = cases
        .iter()
        .map(|(b, r)| (b.clone(), r.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let row = db
        .query_one("SELECT app_version, device_type, masked_ip, locale, masked_device_id FROM user_logins WHERE user_id = 'nulls'", &[])
        .await
        .unwrap();
    assert!(row.get::<_, Option<i32>>(0).is_none() && row.get::<_, Option<String>>(1).is_none());
    assert!(row.get::<_, Option<String>>(2).is_none() && row.get::<_, Option<String>>(3).is_none());
    assert!(row.get::<_, Option<String>>(4).is_none());
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM user_logins WHERE user_id = $1",
            &[&"'); DROP TABLE user_logins; --"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert_queue_empty(&env).await;
}

/// An operator changed app_version to text: versions are stored verbatim, and migrate
/// leaves the table as it is.
#[tokio::test(flavor = "multi_thread")]
async fn text_app_version_column_is_used_as_is() {
    let env = TestEnv::unmigrated().await;
    let db = env.db().await;
    db.batch_execute(
        "CREATE TABLE user_logins(user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
           masked_device_id varchar(256), locale varchar(32), app_version varchar(20), create_date date)",
    )
    .await
    .unwrap();
    let out = stdout_ok(&env.run_cmd(&["migrate"]));
    assert!(
        out.contains("user_logins_rejects") && !out.contains("user_logins,"),
        "{out}"
    );
    let out = stdout_ok(&env.run_cmd(&["migrate"]));
    assert!(out.contains("nothing to do"), "{out}");
    let ty: String = db
        .query_one("SELECT data_type FROM information_schema.columns WHERE table_name='user_logins' AND column_name='app_version'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ty, "character varying");

    let mut beta: serde_json::Value =
        serde_json::from_str(&login("beta", "10.0.0.1", "d")).unwrap();
    beta["app_version"] = "1.2-beta".into();
    let mut long: serde_json::Value =
        serde_json::from_str(&login("long", "10.0.0.1", "d")).unwrap();
    long["app_version"] = "1.2.3-very-long-build-tag".into();
    env.send(&[
        beta.to_string(),
        login("plain", "10.0.0.2", "d"),
        long.to_string(),
    ])
    .await;
    let s = env.drain().await;
    assert_eq!((s.loaded, s.rejected), (2, 1));
    let versions: BTreeMap<String, String> = db
        .query("SELECT user_id, app_version FROM user_logins", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(versions["beta"], "1.2-beta");
    assert_eq!(versions["plain"], "1.2.3");
    let reason: String = db
        .query_one("SELECT reason FROM user_logins_rejects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "too_long:app_version");
}

/// SIGTERM-style shutdown: the daemon stops receiving, commits what it holds, exits clean.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_in_flight_work() {
    let env = TestEnv::new().await;
    let bodies: Vec<String> = (0..300)
        .map(|i| login(&format!("s{i}"), "10.2.0.1", "dev"))
        .collect();
    env.send(&bodies).await;
    let mut cfg = env.pipeline_config();
    cfg.until_empty = false;
    cfg.wait_seconds = 20;
    let token = tokio_util::sync::CancellationToken::new();
    let stats = std::sync::Arc::new(sqs2pg::telemetry::Stats::default());
    let run = tokio::spawn(sqs2pg::pipeline::run(
        env.run_config(cfg),
        token.clone(),
        stats.clone(),
    ));
    // Wait until everything is loaded, then ask it to stop while its pollers sit in a 20 s poll.
    for _ in 0..200 {
        if stats.deleted.load(std::sync::atomic::Ordering::Relaxed) == 300 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let started = std::time::Instant::now();
    token.cancel();
    let s = run.await.unwrap().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!((s.loaded, s.deleted), (300, 300));
    assert_queue_empty(&env).await;
}
