//! The end-to-end core, run on each SQS server the suite has (LocalStack and moto's server)
//! and, by `make test-matrix`, on each PostgreSQL major: the original exercise's sample file,
//! a redelivery after commit, a bad message in a batch, a shutdown under work. Each part is
//! one function taking the server, called by one test per server, so the two cannot drift.

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;
use tokio_postgres::Row;

use crate::helpers::{
    login, masker, pipe_through, sample_file, stdout_ok, summary_numbers, wait_until, RunOptions,
    Sqs, TestEnv, KEYS,
};

/// One test per part and server: `<part>_localstack` and `<part>_moto`.
macro_rules! on_both_servers {
    ($($part:ident => $localstack:ident, $moto:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $localstack() {
            $part(Sqs::LocalStack).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn $moto() {
            $part(Sqs::Moto).await
        }
    )*};
}

on_both_servers! {
    sample_file_end_to_end => sample_file_end_to_end_localstack, sample_file_end_to_end_moto;
    redelivery_after_commit_does_not_duplicate =>
        redelivery_after_commit_does_not_duplicate_localstack,
        redelivery_after_commit_does_not_duplicate_moto;
    bad_message_in_a_batch_of_good_ones =>
        bad_message_in_a_batch_of_good_ones_localstack, bad_message_in_a_batch_of_good_ones_moto;
    shutdown_finishes_in_flight_work =>
        shutdown_finishes_in_flight_work_localstack, shutdown_finishes_in_flight_work_moto;
}

/// The original exercise: 99 rows, 1 reject, nulls kept, versions encoded, tokens that
/// reveal, an empty queue. The sample file is the test's input: without it the test fails.
pub(crate) async fn sample_file_end_to_end(sqs: Sqs) {
    let path = sample_file().expect(
        "the original exercise's sample (../shared/data/fetch-login-sample.json) is missing",
    );
    let env = TestEnv::on(sqs).await;
    let bad = serde_json::json!({"foo": "oops_wrong_msg_type", "bar": "123"});
    sample_core(&env, &path, &path, &bad).await;
}

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
    assert_each_message_taken_once(
        summary["received"],
        summary["duplicates skipped"],
        100,
        &out,
    );
    assert_eq!(summary["loaded"], 99, "{out}");
    assert_eq!(summary["rejected"], 1, "{out}");
    assert_eq!(summary["rejected/missing_field:user_id"], 1, "{out}");
    assert_eq!(summary["deleted"], summary["received"], "{out}");
    [day_before, day_after]
}

/// SQS delivers at least once (moto's server, like SQS itself, now and then hands one message
/// to two concurrent receives): of `received` messages, exactly `sent` were new and each
/// other one was a redelivery the ledger skipped.
fn assert_each_message_taken_once(received: u64, duplicates: u64, sent: u64, context: &str) {
    assert!(received >= sent, "received {received} of {sent}: {context}");
    assert_eq!(
        received - duplicates,
        sent,
        "each receive beyond the first of a message is a skipped duplicate: {context}"
    );
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

/// A crash after COMMIT and before delete: the redelivered messages produce nothing new.
pub(crate) async fn redelivery_after_commit_does_not_duplicate(sqs: Sqs) {
    let env = TestEnv::on(sqs).await;
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
    assert_each_message_taken_once(s.received, s.duplicates, 0, &format!("{s:?}"));
    assert!(s.received >= 5, "{s:?}");
    assert_eq!(s.loaded, 0);
    assert_eq!(s.deleted, s.received);
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 5);
    env.assert_queue_empty().await;
}

/// One bad message among good ones: the good load, the bad is quarantined. Also a row the
/// database itself refuses (an operator's CHECK): only that one is isolated and rejected.
pub(crate) async fn bad_message_in_a_batch_of_good_ones(sqs: Sqs) {
    let env = TestEnv::on(sqs).await;
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
    assert_each_message_taken_once(s.received, s.duplicates, 42, &format!("{s:?}"));
    assert_eq!((s.loaded, s.rejected, s.deleted), (40, 2, s.received));
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

/// SIGTERM-style shutdown: the daemon stops receiving, commits what it holds, exits clean.
/// The stop comes while the writers hold every message (a lock on user_logins stalls
/// them); the lock lifts a second later, well inside the 10 s shutdown timeout, so what
/// was received must be committed and deleted, not released.
pub(crate) async fn shutdown_finishes_in_flight_work(sqs: Sqs) {
    // Fewer than stalled writers let the pollers take (about 250 with the test's batches of
    // 100 and two writers), so every message is received and held when the stop comes.
    const HELD: usize = 150;
    let env = TestEnv::on(sqs).await;
    let bodies: Vec<String> = (0..HELD)
        .map(|i| login(&format!("s{i}"), "10.2.0.1", "dev"))
        .collect();
    let mut locker = env.db().await;
    let lock = locker.lock_user_logins().await;
    env.send(&bodies).await;
    let mut daemon = env.spawn_daemon(RunOptions::default().wait_seconds(20));
    wait_until(
        "every message received",
        Duration::from_secs(60),
        || async { daemon.received() >= HELD as u64 },
    )
    .await;
    assert_eq!(daemon.loaded(), 0, "the lock holds the writers");
    // The fault window: the stop is asked while the work is in flight; the lock lifts a
    // second later.
    let lift = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        lock.rollback().await.unwrap();
    };
    // That a stop does not wait out the poll is queue_faults' proof, with receives SQS
    // never answers; here the bound only keeps a hang from stalling the suite.
    let (s, ()) = tokio::join!(
        async {
            tokio::time::timeout(Duration::from_secs(60), daemon.stop_and_join())
                .await
                .expect("the daemon stops")
        },
        lift
    );
    assert_each_message_taken_once(s.received, s.duplicates, HELD as u64, &format!("{s:?}"));
    assert_eq!(
        (s.loaded, s.deleted, s.released),
        (HELD as u64, s.received, 0),
        "what was in flight at the stop was committed and deleted, not released: {s:?}"
    );
    env.assert_queue_empty().await;
}
