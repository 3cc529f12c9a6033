//! `--output json`: what `run`, `rejects list`, `migrate` and `config` print for scripts,
//! each shape parsed and checked against what happened; and a fatal error under
//! `--log-format json` (a flag clap refuses too) as one JSON line on stderr, shaped like the
//! log lines.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{login, stderr, stdout_ok, TestEnv, KEYS};

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

/// The keys of a JSON object.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// `sqs2pg ARGS` with no environment but `envs`.
fn sqs2pg(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
        .env_clear()
        .envs(envs.iter().copied())
        .args(args)
        .output()
        .expect("spawn")
}

/// A file `name` holding `text` in a directory of this process's own; its path.
fn temp_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("sqs2pg-it-output-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `config --output json` is one object: every setting of both tables by its file key (the
/// `[run]` table as `run`), each `{value, source, from}` with the source of each layer (flag,
/// variable, file, default), the values those of the TOML the text form prints, and secrets
/// redacted as there: no password, no key, only key ids.
#[test]
fn config_answers_in_json_every_setting_with_its_value_and_source() {
    use sqs2pg::config::settings::{GLOBAL_SETTINGS, RUN_SETTINGS};
    let file = temp_file(
        "config-json.toml",
        "envelope = \"sns\"\n[run]\nbatch_size = 100\n",
    );
    let config = |output: &str| {
        sqs2pg(
            &[
                "--config",
                &file,
                "config",
                "--output",
                output,
                "--pollers",
                "7",
            ],
            &[
                ("SQS2PG_WRITERS", "5"),
                ("SQS2PG_KEYS", KEYS),
                (
                    "DATABASE_URL",
                    "postgres://app:s3cr3t-pw@db.internal:5432/logins",
                ),
            ],
        )
    };
    let json = json_stdout(&config("json"));
    let text = stdout_ok(&config("text"));

    let names = |list: &[sqs2pg::config::settings::Setting]| -> BTreeSet<String> {
        list.iter().map(|s| s.key.to_owned()).collect()
    };
    assert_eq!(
        keys(&json),
        BTreeSet::from(["config_file", "keyring", "settings"].map(String::from)),
        "{json}"
    );
    assert_eq!(json["config_file"], file.as_str(), "{json}");
    assert_eq!(json["keyring"]["source"], "SQS2PG_KEYS", "{json}");
    assert_eq!(json["keyring"]["key_ids"], json!(["t1"]), "{json}");
    let settings = &json["settings"];
    let mut global = names(GLOBAL_SETTINGS);
    global.insert("run".into());
    assert_eq!(keys(settings), global, "{json}");
    assert_eq!(keys(&settings["run"]), names(RUN_SETTINGS), "{json}");

    let entries = GLOBAL_SETTINGS
        .iter()
        .map(|s| (s.key, &settings[s.key]))
        .chain(
            RUN_SETTINGS
                .iter()
                .map(|s| (s.key, &settings["run"][s.key])),
        );
    let document: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}: {text}"));
    for (key, entry) in entries {
        assert_eq!(
            keys(entry),
            BTreeSet::from(["from", "source", "value"].map(String::from)),
            "{key}: {entry}"
        );
        let source = entry["source"].as_str().unwrap_or_default();
        assert!(
            ["default", "file", "env", "flag"].contains(&source),
            "{key}: {entry}"
        );
        assert_eq!(
            entry["from"].is_null(),
            source == "default",
            "{key}: {entry}"
        );
        let in_text = document
            .get(key)
            .or_else(|| document["run"].get(key))
            .map(|v| serde_json::to_value(v).unwrap());
        match in_text {
            Some(v) => assert_eq!(entry["value"], v, "{key}: JSON vs the TOML text"),
            // Unset (commented out in the text), or the URL whose password was redacted.
            None => assert!(
                entry["value"].is_null() || key == "database_url",
                "{key}: {entry}"
            ),
        }
    }

    let run = &settings["run"];
    assert_eq!(
        run["pollers"],
        json!({"value": 7, "source": "flag", "from": "--pollers"})
    );
    assert_eq!(
        run["writers"],
        json!({"value": 5, "source": "env", "from": "SQS2PG_WRITERS"})
    );
    assert_eq!(
        run["batch_size"],
        json!({"value": 100, "source": "file", "from": file})
    );
    assert_eq!(
        settings["envelope"],
        json!({"value": "sns", "source": "file", "from": file})
    );
    assert_eq!(
        run["wait_seconds"],
        json!({"value": 20, "source": "default", "from": null})
    );
    assert_eq!(
        settings["queue_url"],
        json!({"value": null, "source": "default", "from": null})
    );
    assert_eq!(
        settings["database_url"],
        json!({
            "value": "postgres://app:<redacted>@db.internal:5432/logins",
            "source": "env",
            "from": "DATABASE_URL",
        })
    );
    let all = json.to_string();
    let key = KEYS.split_once('=').unwrap().1;
    assert!(!all.contains("s3cr3t-pw") && !all.contains(key), "{all}");
}

/// Arguments, environment, the flag a refusal names (if any) and what its message says.
type Refusal<'a> = (
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
    &'a str,
);

/// A flag clap refuses (a bad value, an unknown flag, a missing one), when JSON logs were
/// asked for by flag, variable or config file, is one JSON line on stderr shaped like every
/// other fatal error's, with exit code 2 and the flag at fault; `--help` and `--version`
/// stay text, and without JSON logs clap's text is unchanged.
#[test]
fn a_refused_flag_under_json_logs_is_one_json_line_naming_it() {
    let json_file = temp_file("json-logs.toml", "log_format = \"json\"\n");
    let cases: [Refusal; 5] = [
        (
            &["--log-format", "json", "run", "--pollers", "0"],
            &[],
            Some("--pollers"),
            "1..=256",
        ),
        (
            &["run", "--no-such-flag"],
            &[("SQS2PG_LOG_FORMAT", "json")],
            Some("--no-such-flag"),
            "unexpected argument",
        ),
        (
            &["--log-format=json", "reveal", "--column", "ip"],
            &[],
            Some("--reason"),
            "required",
        ),
        (
            &["--config", &json_file, "run", "--batch-size", "many"],
            &[],
            Some("--batch-size"),
            "many",
        ),
        (
            &["--log-format", "json", "completions"],
            &[],
            None,
            "<SHELL>",
        ),
    ];
    for (args, envs, flag, says) in cases {
        let out = sqs2pg(args, envs);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: exactly one line: {text}");
        let line: Value =
            serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"));
        assert_eq!(line["level"], "ERROR", "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert_eq!(line["fields"]["exit_code"], 2, "{line}");
        assert_eq!(line["fields"]["flag"].as_str(), flag, "{line}");
        let message = line["fields"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{args:?}: {line}");
        assert!(!message.starts_with("error:"), "{line}");
    }

    for args in [
        &["--log-format", "json", "run", "--help"][..],
        &["--log-format", "json", "--version"],
    ] {
        let out = sqs2pg(args, &[]);
        let help = stdout_ok(&out);
        assert!(
            help.starts_with("sqs2pg ") || help.contains("Usage:"),
            "{args:?}: {help}"
        );
        assert!(serde_json::from_str::<Value>(&help).is_err(), "{help}");
    }
    let out = sqs2pg(&["run", "--pollers", "0"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: invalid value '0' for '--pollers"),
        "{}",
        stderr(&out)
    );
}
