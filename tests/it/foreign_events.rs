//! The example mappings (`examples/mappings/`) on events other AWS services really send:
//! moto's server makes S3, EventBridge and SNS deliver their events into a queue on it
//! ([`Foreign`]), the bodies are received as they arrived, and `sqs2pg mapping check
//! --sample` shows, per body, the route and row or the reason, against the example's own DDL.
//! Each example also fits its DDL as shipped, and a broken copy is refused naming the route
//! and the column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::value::RawValue;

use crate::helpers::*;

/// A queue on moto and a migrated database holding `kind`'s example table.
async fn env_with_table(kind: Foreign, sqs: Sqs) -> TestEnv {
    let env = TestEnv::on(sqs).await;
    env.db()
        .await
        .batch_execute(&kind.ddl())
        .await
        .unwrap_or_else(|e| panic!("{}.sql: {e}", kind.name()));
    env
}

/// `mapping check --mapping PATH --envelope E [--sample SAMPLE]` in `env`.
fn check(env: &TestEnv, kind: Foreign, mapping: &Path, sample: Option<&Path>) -> Output {
    let mapping = mapping.display().to_string();
    let mut args = vec![
        "mapping",
        "check",
        "--mapping",
        &mapping,
        "--envelope",
        kind.envelope(),
    ];
    let sample = sample.map(|s| s.display().to_string());
    if let Some(s) = &sample {
        args.extend(["--sample", s]);
    }
    env.run_cmd(&args)
}

/// Produces `kind`'s events with moto into `env`'s queue, receives them all, and runs the
/// example mapping on them as a sample: the bodies, in sample order, and the output.
async fn sample_run(kind: Foreign) -> (TestEnv, Vec<String>, String) {
    let env = env_with_table(kind, Sqs::Moto).await;
    let n = produce(kind, &env.queue_url);
    let bodies = receive_bodies(&env.queue_url, n);
    let sample = std::env::temp_dir().join(format!("{}-{}.json", env.queue_name, kind.name()));
    std::fs::write(&sample, sample_text(&bodies)).expect("write the sample");
    let out = check(&env, kind, &kind.mapping(), Some(&sample));
    let _ = std::fs::remove_file(&sample);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    (env, bodies, stdout)
}

/// The raw JSON at `path` (object keys, or array indexes) in `json`.
fn raw(json: &str, path: &[&str]) -> String {
    let mut at: Box<RawValue> = serde_json::from_str(json).expect("a JSON body");
    for step in path {
        at = match step.parse::<usize>() {
            Ok(i) => serde_json::from_str::<Vec<Box<RawValue>>>(at.get())
                .expect("an array")
                .into_iter()
                .nth(i),
            Err(_) => serde_json::from_str::<HashMap<String, Box<RawValue>>>(at.get())
                .expect("an object")
                .remove(*step),
        }
        .unwrap_or_else(|| panic!("no {path:?} in {json}"));
    }
    at.get().to_owned()
}

/// The string at `path` in `json`.
fn string(json: &str, path: &[&str]) -> String {
    serde_json::from_str(&raw(json, path)).expect("a string")
}

/// An RFC 3339 time as `mapping check` shows a timestamptz.
fn shown_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("RFC 3339")
        .with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn assert_lines(stdout: &str, want: &[String]) {
    for line in want {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} not in: {stdout}"
        );
    }
}

#[tokio::test]
async fn s3_notifications_from_moto_load_their_first_record_and_skip_the_test_event() {
    let (env, bodies, stdout) = sample_run(Foreign::S3).await;
    let mut want = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let n = i + 1;
        if body.contains("\"Records\"") {
            let record = |p: &[&str]| string(body, &[&["Records", "0"], p].concat());
            let key = record(&["s3", "object", "key"]);
            assert!(key.contains("summary.csv"), "{body}");
            want.push(format!(
                "{n}: route s3_object → public.s3_objects: bucket={:?}, object_key={key:?}, size=8, etag={:?}, event_name=\"ObjectCreated:Put\", event_time={}, region=\"us-east-1\"",
                format!("{}-bucket", env.queue_name).to_lowercase(),
                record(&["s3", "object", "eTag"]),
                shown_time(&record(&["eventTime"])),
            ));
        } else {
            assert_eq!(string(body, &["Event"]), "s3:TestEvent", "{body}");
            want.push(format!("{n}: route s3_test_event: skip"));
        }
    }
    assert_eq!(want.len(), 2);
    assert_lines(&stdout, &want);
}

#[tokio::test]
async fn eventbridge_events_from_moto_load_the_order_exactly_with_its_email_as_a_token() {
    let (_env, bodies, stdout) = sample_run(Foreign::EventBridge).await;
    let email = masker(KEYS).token("email", "ada@example.com");
    let mut want = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let n = i + 1;
        want.push(match string(body, &["detail-type"]).as_str() {
            "OrderPlaced" => format!(
                "{n}: route order → shop.orders: order_id=\"ORD-1001\", amount=1234.56, currency=\"EUR\", customer_id=\"C-77\", customer_email=\"{email}\", items={:?}, placed_at={}, event_id={}",
                raw(body, &["detail", "order", "items"]),
                shown_time(&string(body, &["time"])),
                string(body, &["id"]),
            ),
            "Heartbeat" => format!("{n}: route heartbeat: skip"),
            // The mapping has no route for it: quarantined, never loaded.
            "RefundIssued" => format!("{n}: reject no_route"),
            other => panic!("moto sent a {other:?}: {body}"),
        });
    }
    assert_eq!(want.len(), 3);
    assert_lines(&stdout, &want);
    assert!(!stdout.contains("ada@example.com"), "{stdout}");
}

#[tokio::test]
async fn sns_notifications_from_moto_load_the_message_and_the_envelopes_fields() {
    let (env, bodies, stdout) = sample_run(Foreign::Sns).await;
    let mut want = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let n = i + 1;
        let message = string(body, &["Message"]);
        let user = string(&message, &["user", "id"]);
        let rest = match user.as_str() {
            "U-1" => "action=\"signup\", plan=\"pro\", seats=3",
            "U-2" => "action=\"cancel\", plan=\"free\", seats=1",
            other => panic!("moto sent user {other:?}: {body}"),
        };
        let topic = string(body, &["TopicArn"]);
        assert!(
            topic.ends_with(&format!(":{}-topic", env.queue_name)),
            "{topic}"
        );
        want.push(format!(
            "{n}: route account_event → public.account_events: topic_arn={topic:?}, sns_message_id={:?}, published_at={}, user_id={user:?}, {rest}",
            string(body, &["MessageId"]),
            shown_time(&string(body, &["Timestamp"])),
        ));
    }
    assert_eq!(want.len(), 2);
    assert_lines(&stdout, &want);
}

/// `kind`'s example mapping fits its DDL as shipped: exit 0, every route fits.
async fn example_fits(kind: Foreign, routes: usize) {
    let env = env_with_table(kind, Sqs::LocalStack).await;
    let out = check(&env, kind, &kind.mapping(), None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = format!("ok: {routes} route(s) fit the database");
    assert!(stdout.lines().any(|l| l == ok), "{ok:?} not in: {stdout}");
}

#[tokio::test]
async fn the_s3_example_mapping_fits_its_ddl() {
    example_fits(Foreign::S3, 2).await;
}

#[tokio::test]
async fn the_eventbridge_example_mapping_fits_its_ddl() {
    example_fits(Foreign::EventBridge, 2).await;
}

#[tokio::test]
async fn the_sns_example_mapping_fits_its_ddl() {
    example_fits(Foreign::Sns, 1).await;
}

/// A copy of each example with one column renamed (so the table has no such column) exits 2
/// naming the file position of the entry, the route and the column.
#[tokio::test]
async fn a_broken_copy_of_each_example_is_refused_naming_the_route_and_column() {
    for (kind, route, from, to) in [
        (Foreign::S3, "s3_object", "size", "bytes"),
        (Foreign::EventBridge, "order", "currency", "currency_code"),
        (Foreign::Sns, "account_event", "plan", "plan_name"),
    ] {
        let env = env_with_table(kind, Sqs::LocalStack).await;
        let text = std::fs::read_to_string(kind.mapping()).expect("read the example");
        let line = text
            .lines()
            .position(|l| l.starts_with(&format!("{from} ")))
            .unwrap_or_else(|| panic!("no column {from} in {}.toml", kind.name()))
            + 1;
        let broken = text.replacen(&format!("\n{from} "), &format!("\n{to} "), 1);
        let path: PathBuf =
            std::env::temp_dir().join(format!("{}-broken-{}.toml", env.queue_name, kind.name()));
        std::fs::write(&path, broken).expect("write the broken copy");
        let out = check(&env, kind, &path, None);
        let _ = std::fs::remove_file(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", kind.name());
        let want = format!(
            "{}:{line}:1: route {route:?}, column {to:?}: ",
            path.display()
        );
        assert!(stderr.contains(&want), "{want:?} not in: {stderr}");
        assert!(
            stderr.contains(&format!("has no column {to:?}")),
            "{stderr}"
        );
    }
}

/// The three examples as one mapping file (EventBridge, SNS, then S3 routes), for one queue
/// that carries all three services' events.
fn combined_mapping(env: &TestEnv) -> PathBuf {
    let text: Vec<String> = [Foreign::EventBridge, Foreign::Sns, Foreign::S3]
        .iter()
        .map(|k| std::fs::read_to_string(k.mapping()).expect("example mapping"))
        .collect();
    let path = std::env::temp_dir().join(format!("{}-all.toml", env.queue_name));
    std::fs::write(&path, text.join("\n")).expect("write the mapping");
    path
}

/// Each event moto's S3, EventBridge and SNS made (seven bodies), sent again `copies` times
/// as new messages, as producers re-send, with one body no route takes: one mixed queue,
/// drained by daemons under `--mapping`, three of them SIGKILLed mid-work, the last one left
/// to finish. Every message has exactly one outcome: each table holds one row per message
/// routed to it (the order once, its re-sends skipped by key), skips and rejects are ledgered.
#[tokio::test(flavor = "multi_thread")]
async fn moto_made_events_drain_into_three_tables_exactly_once_through_kill_9() {
    let env = TestEnv::on_with_visibility(Sqs::Moto, 6).await;
    let db = env.db().await;
    for kind in [Foreign::S3, Foreign::EventBridge, Foreign::Sns] {
        db.batch_execute(&kind.ddl()).await.expect("example DDL");
    }
    let produced: usize = [Foreign::S3, Foreign::EventBridge, Foreign::Sns]
        .iter()
        .map(|k| produce(*k, &env.queue_url))
        .sum();
    let made = receive_bodies(&env.queue_url, produced);
    let copies: i64 = 30;
    let mut bodies: Vec<String> = (0..copies).flat_map(|_| made.clone()).collect();
    bodies.push(r#"{"hello":"no service sent this"}"#.to_owned());
    env.send(&bodies).await;
    let mapping = combined_mapping(&env);
    let mapping = mapping.to_str().expect("utf-8 path");
    let daemon = [
        "run",
        "--wait-seconds",
        "1",
        "--batch-wait-ms",
        "50",
        "--batch-size",
        "20",
        "--mapping",
        mapping,
    ];
    for i in 0..3 {
        let before = db.count("SELECT count(*) FROM sqs2pg_ledger").await;
        let mut child = env.spawn(&daemon, &[]);
        wait_until(
            &format!("consumer {i} commits something before its crash"),
            Duration::from_secs(60),
            || async { db.count("SELECT count(*) FROM sqs2pg_ledger").await > before },
        )
        .await;
        crate::faults::jitter_sleep(0, 400).await;
        child.sigkill();
    }
    let mut last = env.spawn(&daemon, &[]);
    env.wait_drained(Duration::from_secs(180)).await;
    last.sigterm();
    assert_eq!(last.wait_exit(Duration::from_secs(40)).await, Some(0));

    assert_eq!(
        db.count("SELECT count(*) FROM sqs2pg_ledger").await,
        bodies.len() as i64,
        "every message exactly one outcome"
    );
    assert_eq!(db.count("SELECT count(*) FROM s3_objects").await, copies);
    assert_eq!(db.count("SELECT count(*) FROM shop.orders").await, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM account_events").await,
        2 * copies
    );
    let rejects: Vec<String> = db
        .column("SELECT coalesce(route, '-') || ' ' || reason FROM user_logins_rejects")
        .await;
    // RefundIssued has no route, nor has the stray body.
    assert_eq!(rejects.len() as i64, copies + 1, "{rejects:?}");
    assert!(rejects.iter().all(|r| r == "- no_route"), "{rejects:?}");
    let _ = std::fs::remove_file(mapping);
}
