//! End to end on real LocalStack SQS and real Postgres: what goes in, what lands, what
//! leaves the queue.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tokio_postgres::Row;

use crate::helpers::{
    login, masker, pipe_through, sample_file, stdout_ok, summary_numbers, wait_until, RunOptions,
    TestEnv, KEYS,
};

/// A `user_logins` row, read by column name.
struct LoginRow {
    user_id: String,
    device_type: Option<String>,
    masked_ip: Option<String>,
    masked_device_id: Option<String>,
    locale: Option<String>,
    app_version: Option<i32>,
    create_date: NaiveDate,
}

impl LoginRow {
    const SELECT: &'static str = "SELECT user_id, device_type, masked_ip, masked_device_id, \
         locale, app_version, create_date FROM user_logins";

    fn from_row(r: &Row) -> Self {
        Self {
            user_id: r.get("user_id"),
            device_type: r.get("device_type"),
            masked_ip: r.get("masked_ip"),
            masked_device_id: r.get("masked_device_id"),
            locale: r.get("locale"),
            app_version: r.get("app_version"),
            create_date: r.get("create_date"),
        }
    }
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
    let bad = serde_json::json!({"foo": "oops_wrong_msg_type", "bar": "123"});
    sample_core(&env, &path, &path, &bad).await;
}

/// The core of the original exercise on `env`'s queue: `send --file sent` (the sample
/// file at `sample`, or its messages wrapped), `run --until-empty`, then 99 rows, 1 reject
/// whose sealed body reveals to `reject_body` (what was sent), nulls kept, versions
/// encoded, tokens that reveal, an empty queue.
pub(crate) async fn sample_core(
    env: &TestEnv,
    sample: &std::path::Path,
    sent: &std::path::Path,
    reject_body: &serde_json::Value,
) {
    let sample: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    assert_eq!(sample.len(), 100);

    let loaded_on = send_and_run_through_cli(env, sent).await;
    let rows = assert_rows_of_sample(env, loaded_on).await;
    assert_tokens_hide_and_reveal_originals(env, &sample, &rows);
    assert_reject_is_sealed_and_reveals(env, reject_body).await;
    env.assert_queue_empty().await;
}

/// `send --file` then `run --until-empty`, checking the summary; returns the days the
/// run may have stamped as create_date (the run may cross midnight).
async fn send_and_run_through_cli(env: &TestEnv, path: &std::path::Path) -> [NaiveDate; 2] {
    let out = stdout_ok(&env.run_cmd(&["send", "--file", path.to_str().unwrap()]));
    assert!(out.starts_with("sent 100 messages"), "{out}");
    let day_before = chrono::Utc::now().date_naive();
    let out = stdout_ok(&env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]));
    let day_after = chrono::Utc::now().date_naive();
    let summary = summary_numbers(&out);
    assert_eq!(summary["received"], 100, "{out}");
    assert_eq!(summary["loaded"], 99, "{out}");
    assert_eq!(summary["rejected"], 1, "{out}");
    assert_eq!(summary["rejected/missing_field:user_id"], 1, "{out}");
    assert_eq!(summary["deleted"], 100, "{out}");
    [day_before, day_after]
}

/// 99 rows, 29 without a locale, versions encoded as numbers, dated the day of the run;
/// returns them by user_id.
async fn assert_rows_of_sample(env: &TestEnv, days: [NaiveDate; 2]) -> HashMap<String, LoginRow> {
    let rows: Vec<LoginRow> = env
        .rows(LoginRow::SELECT)
        .await
        .iter()
        .map(LoginRow::from_row)
        .collect();
    assert_eq!(rows.len(), 99);
    assert_eq!(rows.iter().filter(|r| r.locale.is_none()).count(), 29);
    for r in &rows {
        assert!(
            days.contains(&r.create_date),
            "create_date {}",
            r.create_date
        );
    }
    let by_user: HashMap<String, LoginRow> =
        rows.into_iter().map(|r| (r.user_id.clone(), r)).collect();
    assert_eq!(
        by_user["424cdd21-063a-43a7-b91b-7ca1a833afae"].app_version,
        Some(20300)
    );
    assert_eq!(
        by_user["181452ad-20c3-4e93-86ad-1934c9248903"].app_version,
        Some(9600)
    );
    by_user
}

/// Every masked value differs from its original and reveals back to it (through the CLI).
fn assert_tokens_hide_and_reveal_originals(
    env: &TestEnv,
    sample: &[serde_json::Value],
    by_user: &HashMap<String, LoginRow>,
) {
    let mut ip_tokens = Vec::new();
    let mut dev_tokens = Vec::new();
    let mut originals = Vec::new();
    for v in sample.iter().filter(|v| v.get("user_id").is_some()) {
        let r = &by_user[v["user_id"].as_str().unwrap()];
        assert_eq!(r.device_type.as_deref(), v["device_type"].as_str());
        let ip = r.masked_ip.clone().unwrap();
        let dev = r.masked_device_id.clone().unwrap();
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
    let revealed_ips = reveal(env, "ip", &ip_tokens);
    let revealed_devs = reveal(env, "device_id", &dev_tokens);
    for (i, (ip, dev)) in originals.iter().enumerate() {
        assert_eq!(&revealed_ips[i], ip);
        assert_eq!(&revealed_devs[i], dev);
    }
}

/// The reject keeps its body, sealed, and reveal opens it verbatim.
async fn assert_reject_is_sealed_and_reveals(env: &TestEnv, want: &serde_json::Value) {
    let rejects = env
        .rows(
            "SELECT reason, body_ciphertext, receive_count, sent_at IS NOT NULL AS has_sent_at \
             FROM user_logins_rejects",
        )
        .await;
    assert_eq!(rejects.len(), 1);
    let rej = &rejects[0];
    assert_eq!(rej.get::<_, String>("reason"), "missing_field:user_id");
    let sealed: String = rej.get("body_ciphertext");
    assert!(!sealed.contains("oops_wrong_msg_type"));
    assert_eq!(rej.get::<_, Option<i32>>("receive_count"), Some(1));
    assert!(rej.get::<_, bool>("has_sent_at"));
    let body: serde_json::Value = serde_json::from_str(&masker(KEYS).reveal_body(&sealed)).unwrap();
    assert_eq!(&body, want);
}

/// `sqs2pg reveal` on one token a line; its output lines, in input order.
fn reveal(env: &TestEnv, column: &str, tokens: &[String]) -> Vec<String> {
    let mut cmd = env.cmd(&[
        "reveal",
        "--column",
        column,
        "--reason",
        "test: sample round trip",
    ]);
    let out = pipe_through(&mut cmd, &(tokens.join("\n") + "\n"));
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
    // user_id -> (ip token, device token)
    let tok: BTreeMap<String, (String, String)> = env
        .rows("SELECT user_id, masked_ip, masked_device_id FROM user_logins")
        .await
        .iter()
        .map(|r| {
            (
                r.get("user_id"),
                (r.get("masked_ip"), r.get("masked_device_id")),
            )
        })
        .collect();
    assert_eq!(tok["a"], tok["b"]);
    assert_eq!(tok["a"].0, tok["c"].0);
    assert_ne!(tok["a"].1, tok["c"].1);
    assert_ne!(tok["a"].0, tok["d"].0);
    assert_eq!(tok["d"].1, tok["e"].1);
    assert_eq!(tok["e"].0, tok["f"].0);
    assert_ne!(tok["d"].0, tok["e"].0);
    assert_eq!(
        env.count("SELECT count(DISTINCT masked_ip) FROM user_logins")
            .await,
        3
    );
    env.assert_queue_empty().await;
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
    let received = env.receive_at_least(5).await;
    let first = env.sink().await.write_received(&received).await;
    assert_eq!(first.loaded, 5);
    env.make_visible(&received).await;

    let s = env.drain().await;
    assert_eq!(s.received, 5);
    assert_eq!(s.loaded, 0);
    assert_eq!(s.duplicates, 5);
    assert_eq!(s.deleted, 5);
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 5);
    env.assert_queue_empty().await;
}

/// One bad message among good ones: the good load, the bad is quarantined. Also a row the
/// database itself refuses (an operator's CHECK): only that one is isolated and rejected.
#[tokio::test(flavor = "multi_thread")]
async fn bad_message_in_a_batch_of_good_ones() {
    let env = TestEnv::new().await;
    env.db()
        .await
        .batch_execute(
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
    // One writer and a long window so all 42 land in one batch.
    let s = env
        .drain_with(
            RunOptions::default()
                .writers(1)
                .batch_wait(Duration::from_millis(1500)),
        )
        .await;
    assert_eq!(
        (s.received, s.loaded, s.rejected, s.deleted),
        (42, 40, 2, 42)
    );
    let reasons: Vec<String> = env
        .column("SELECT reason FROM user_logins_rejects ORDER BY reason")
        .await;
    assert_eq!(reasons, ["database_error:23514", "invalid_ip"]);
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins WHERE user_id LIKE 'good-%'")
            .await,
        40
    );
    env.assert_queue_empty().await;
}

/// A valid body with one field set to `v`, or without it (`None`).
fn body_with(k: &str, v: Option<serde_json::Value>) -> String {
    let mut b = serde_json::json!({"user_id": "u", "app_version": "1.0", "device_type": "ios", "ip": "10.0.0.1", "locale": "US", "device_id": "d"});
    match v {
        Some(v) => b[k] = v,
        None => {
            b.as_object_mut().unwrap().remove(k);
        }
    }
    b.to_string()
}

/// One body per reject rule of the contract's table, with the reason it must get.
fn one_body_per_reject_rule() -> Vec<(String, &'static str)> {
    use serde_json::{json, Value};
    let with = |k: &str, v: Value| body_with(k, Some(v));
    vec![
        ("{not json".into(), "not_json"),
        ("[1,2,3]".into(), "not_object"),
        (body_with("ip", None), "missing_field:ip"),
        (body_with("locale", None), "missing_field:locale"),
        (with("locale", json!(5)), "wrong_type:locale"),
        (with("device_id", json!({"a": 1})), "wrong_type:device_id"),
        (with("user_id", Value::Null), "null_user_id"),
        (with("user_id", json!("")), "empty_user_id"),
        (with("user_id", json!("x".repeat(129))), "too_long:user_id"),
        (
            with("device_type", json!("x".repeat(33))),
            "too_long:device_type",
        ),
        (
            with("device_id", json!("x".repeat(200))),
            "too_long:device_id",
        ),
        (with("ip", json!("256.1.1.1")), "invalid_ip"),
        (with("ip", json!("fe80::1%eth0")), "invalid_ip"),
        (with("app_version", json!("1.100")), "bad_app_version"),
        (with("app_version", json!("1.2.3.4")), "bad_app_version"),
    ]
}

/// Each rule of the contract's table, through the whole pipeline.
#[tokio::test(flavor = "multi_thread")]
async fn every_reject_rule_end_to_end() {
    let env = TestEnv::new().await;
    let cases = one_body_per_reject_rule();
    let valid = [
        // Null fields other than user_id load as NULL; unknown keys are ignored.
        body_with("ip", Some(serde_json::Value::Null)),
        r#"{"user_id":"nulls","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null,"extra":1}"#.to_string(),
        body_with("ip", Some(serde_json::json!("224.0.0.1"))),
        body_with("user_id", Some(serde_json::json!("'); DROP TABLE user_logins; --"))),
    ];
    let mut bodies: Vec<String> = cases.iter().map(|(b, _)| b.clone()).collect();
    bodies.extend(valid.iter().cloned());
    env.send(&bodies).await;

    let s = env.drain().await;
    assert_eq!(s.loaded, valid.len() as u64);
    assert_eq!(s.rejected, cases.len() as u64);
    assert_eq!(s.unknown_keys, 1);

    // Each reject reveals to its body and carries its rule's reason.
    let got = env.revealed_rejects().await;
    let mut want: Vec<(String, String)> = cases
        .iter()
        .map(|(b, r)| (b.clone(), r.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);

    let nulls = &env
        .rows("SELECT app_version, device_type, masked_ip, locale, masked_device_id FROM user_logins WHERE user_id = 'nulls'")
        .await[..];
    let [row] = nulls else {
        panic!("one 'nulls' row, got {}", nulls.len())
    };
    assert!(row.get::<_, Option<i32>>("app_version").is_none());
    for col in ["device_type", "masked_ip", "locale", "masked_device_id"] {
        assert!(row.get::<_, Option<String>>(col).is_none(), "{col}");
    }
    let n: i64 = env
        .scalar_with(
            "SELECT count(*) FROM user_logins WHERE user_id = $1",
            &[&"'); DROP TABLE user_logins; --"],
        )
        .await;
    assert_eq!(n, 1);
    env.assert_queue_empty().await;
}

/// An operator changed app_version to text: versions are stored verbatim, and migrate
/// leaves the table as it is.
#[tokio::test(flavor = "multi_thread")]
async fn text_app_version_column_is_used_as_is() {
    let env = TestEnv::unmigrated().await;
    env.db()
        .await
        .batch_execute(
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
    let ty: String = env
        .scalar("SELECT data_type FROM information_schema.columns WHERE table_name='user_logins' AND column_name='app_version'")
        .await;
    assert_eq!(ty, "character varying");

    let with_version = |user: &str, v: &str| {
        let mut b: serde_json::Value = serde_json::from_str(&login(user, "10.0.0.1", "d")).unwrap();
        b["app_version"] = v.into();
        b.to_string()
    };
    env.send(&[
        with_version("beta", "1.2-beta"),
        login("plain", "10.0.0.2", "d"),
        with_version("long", "1.2.3-very-long-build-tag"),
    ])
    .await;
    let s = env.drain().await;
    assert_eq!((s.loaded, s.rejected), (2, 1));
    let versions: BTreeMap<String, String> = env
        .rows("SELECT user_id, app_version FROM user_logins")
        .await
        .iter()
        .map(|r| (r.get("user_id"), r.get("app_version")))
        .collect();
    assert_eq!(versions["beta"], "1.2-beta");
    assert_eq!(versions["plain"], "1.2.3");
    let reason: String = env.scalar("SELECT reason FROM user_logins_rejects").await;
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
    let mut daemon = env.spawn_daemon(RunOptions::default().wait_seconds(20));
    // Wait until everything is loaded, then ask it to stop while its pollers sit in a 20 s poll.
    wait_until("all 300 deleted", Duration::from_secs(20), || async {
        daemon.deleted() == 300
    })
    .await;
    let started = Instant::now();
    let s = daemon.stop_and_join().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!((s.loaded, s.deleted), (300, 300));
    env.assert_queue_empty().await;
}
