//! `--output json`: what `run`, `rejects list` and `migrate` print for scripts, each shape
//! parsed and checked against what happened; and a fatal error under `--log-format json` as
//! one JSON line on stderr, shaped like the log lines.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{login, stderr, stdout_ok, TestEnv};

const VALID: usize = 7;
const MALFORMED: usize = 3;

/// `VALID` logins and `MALFORMED` bodies that are not JSON.
fn valid_and_malformed() -> Vec<String> {
    let valid = (0..VALID).map(|i| login(&format!("json-{i}"), "10.9.0.1", &format!("d{i}")));
    let malformed = (0..MALFORMED).map(|i| format!("not json {i}"));
    valid.chain(malformed).collect()
}

/// Stdout of a command that must succeed, parsed as exactly one JSON object.
fn json_stdout(out: &std::process::Output) -> Value {
    let text = stdout_ok(out);
    assert_eq!(text.lines().count(), 1, "one line of JSON: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The field names of the table in README "Drain runs" (`| `name` | meaning |` rows).
fn documented_summary_fields() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("### Drain runs")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Drain runs section");
    section
        .lines()
        .filter_map(|l| {
            l.strip_prefix("| `")?
                .split_once('`')
                .map(|(n, _)| n.to_owned())
        })
        .collect()
}

/// A drain of valid and malformed bodies, summarised in JSON: every documented field
/// present (and nothing undocumented), the counts those of the drain, zeros included.
#[tokio::test(flavor = "multi_thread")]
async fn a_json_drain_summary_counts_what_happened_in_every_documented_field() {
    let env = TestEnv::new().await;
    env.send(&valid_and_malformed()).await;

    let out = env.run_cmd(&[
        "--output",
        "json",
        "run",
        "--until-empty",
        "--wait-seconds",
        "1",
    ]);
    let s = json_stdout(&out);

    let fields: BTreeSet<String> = s.as_object().expect("an object").keys().cloned().collect();
    assert_eq!(fields, documented_summary_fields(), "README table vs JSON");
    let all = (VALID + MALFORMED) as u64;
    assert_eq!(s["received"], all, "{s}");
    assert_eq!(s["loaded"], VALID as u64, "{s}");
    assert_eq!(s["rejected"], MALFORMED as u64, "{s}");
    assert_eq!(
        s["rejected_by_reason"],
        json!({ "not_json": MALFORMED }),
        "{s}"
    );
    assert_eq!(s["deleted"], all, "{s}");
    for zero in ["duplicates", "delete_failed", "unknown_keys", "released"] {
        assert_eq!(s[zero], 0, "{zero} is present at 0: {s}");
    }
    let per_kind: u64 = s["sqs_requests"]
        .as_object()
        .expect("by kind")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(s["sqs_requests_total"], per_kind, "{s}");
    assert_eq!(
        s["sqs_requests"]["send"], 0,
        "every kind listed, 0 too: {s}"
    );
    assert!(
        s["sqs_calls_in_flight"]["delete"]["peak"].as_u64() > Some(0),
        "{s}"
    );
    assert!(s["elapsed_secs"].as_f64() > Some(0.0), "{s}");
    assert!(s["messages_per_sec"].as_f64() > Some(0.0), "{s}");
}

/// `rejects list` in JSON: the count by reason and the message ids, never a body; and
/// `migrate` in JSON: which tables it created and which were there.
#[tokio::test(flavor = "multi_thread")]
async fn rejects_list_and_migrate_answer_in_json() {
    let env = TestEnv::unmigrated().await;
    let first = json_stdout(&env.run_cmd(&["migrate", "--output", "json"]));
    assert_eq!(first["already_there"], json!([]), "{first}");
    let created = first["created"].as_array().expect("created").len();
    let again = json_stdout(&env.run_cmd(&["migrate", "--output", "json"]));
    assert_eq!(again["created"], json!([]), "{again}");
    assert_eq!(again["already_there"], first["created"], "{again}");
    assert_eq!(created, 7, "{first}");
    assert_eq!(again["roles"], json!([]), "{again}");

    env.send(&valid_and_malformed()).await;
    stdout_ok(&env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]));
    let out = env
        .cmd(&["rejects", "list"])
        .env("SQS2PG_OUTPUT", "json")
        .output()
        .expect("spawn");
    let list = json_stdout(&out);

    assert_eq!(list["total"], MALFORMED as u64, "{list}");
    let not_json = &list["by_reason"]["not_json"];
    assert_eq!(not_json["count"], MALFORMED as u64, "{list}");
    let ids: BTreeSet<String> = env
        .column("SELECT message_id FROM user_logins_rejects")
        .await
        .into_iter()
        .collect();
    let listed: BTreeSet<String> = not_json["message_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(listed, ids, "{list}");
    assert!(!list.to_string().contains("not json"), "no body: {list}");
}

/// A fatal error under `--log-format json` (no key) is one stderr line, parsed as JSON like
/// the log lines (`timestamp`, `level`, `fields.message`) with the exit code among the
/// fields, and no plain-text `error:` line; likewise an error before the settings exist
/// (a config file that cannot be read).
#[tokio::test(flavor = "multi_thread")]
async fn a_fatal_error_under_json_logs_is_one_json_line() {
    let env = TestEnv::new().await;
    let no_key = env
        .cmd(&["--log-format", "json", "run", "--until-empty"])
        .env_remove("SQS2PG_KEYS")
        .output()
        .expect("spawn");
    let no_file = env
        .cmd(&[
            "--log-format=json",
            "--config",
            "/nonexistent/sqs2pg.toml",
            "migrate",
        ])
        .output()
        .expect("spawn");

    for (out, says) in [
        (no_key, "sqs2pg keygen"),
        (no_file, "/nonexistent/sqs2pg.toml"),
    ] {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let text = stderr(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one line: {text}");
        let line: Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(line["level"], "ERROR", "{line}");
        assert_eq!(line["fields"]["exit_code"], 2, "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        let message = line["fields"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{line}");
    }
}
