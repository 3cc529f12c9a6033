//! `sqs2pg check` against the real services: every line ✓ on a migrated database and a queue
//! with a dead-letter queue, then one broken thing at a time, each named with its fix and the
//! exit code its kind calls for (2 a setting, 1 an outage); and the `--output json` shape.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{role_login, stderr, TestEnv, KEYS};

/// Every check a fully working setup reports, in order.
const ALL: [&str; 12] = [
    "keyring",
    "database",
    "tables",
    "grants",
    "user_logins shape",
    "region",
    "endpoint",
    "credentials",
    "queue",
    "visibility timeout",
    "redrive policy",
    "message size",
];

/// Runs `sqs2pg check` with this test's settings, `adjust`ed.
fn check(env: &TestEnv, adjust: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = env.cmd(&["check"]);
    adjust(&mut cmd);
    cmd.output().expect("spawn sqs2pg")
}

/// The check lines of the text output: (mark, name, detail), then the `fix:` line under it.
fn lines(out: &Output) -> Vec<(char, String, String, Option<String>)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut checks: Vec<(char, String, String, Option<String>)> = Vec::new();
    for line in stdout.lines() {
        let mut chars = line.chars();
        match chars.next() {
            Some(mark @ ('✓' | '⚠' | '✗')) => {
                let rest = chars.as_str().trim_start();
                let (name, detail) = rest.split_once("  ").unwrap_or((rest, ""));
                checks.push((mark, name.to_owned(), detail.trim().to_owned(), None));
            }
            _ => {
                if let (Some(fix), Some(last)) =
                    (line.trim().strip_prefix("fix: "), checks.last_mut())
                {
                    last.3 = Some(fix.to_owned());
                }
            }
        }
    }
    checks
}

/// The line of check `name`; panics naming the output when there is none.
fn line<'a>(
    checks: &'a [(char, String, String, Option<String>)],
    name: &str,
    out: &Output,
) -> &'a (char, String, String, Option<String>) {
    checks.iter().find(|c| c.1 == name).unwrap_or_else(|| {
        panic!(
            "no {name} line\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

/// Asserts the exit code, showing the output when it differs.
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

/// The secret half of the test keyring never shows.
fn assert_no_key(out: &Output) {
    let secret = KEYS.split_once('=').map(|(_, k)| k).unwrap_or(KEYS);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    assert!(!all.contains(secret), "key material printed:\n{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_check_passes_on_a_migrated_database_and_a_queue_with_a_dead_letter_queue() {
    let (env, _dead) = TestEnv::with_redrive(30, 5).await;
    let out = check(&env, |_| {});
    assert_exit(&out, 0);
    let checks = lines(&out);
    let names: Vec<&str> = checks.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(names, ALL, "{checks:?}");
    for (mark, name, detail, fix) in &checks {
        assert_eq!((*mark, fix), ('✓', &None), "{name}: {detail}");
    }
    let redrive = line(&checks, "redrive policy", &out);
    assert!(
        redrive
            .2
            .contains(&format!("{}-dlq after 5 receives", env.queue_name)),
        "{redrive:?}"
    );
    assert!(
        line(&checks, "keyring", &out).2.contains("key ids t1"),
        "{checks:?}"
    );
    assert_no_key(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_tables_fail_with_exit_2_naming_migrate_and_the_other_checks_still_run() {
    let env = TestEnv::unmigrated().await;
    let out = check(&env, |_| {});
    assert_exit(&out, 2);
    let checks = lines(&out);
    let tables = line(&checks, "tables", &out);
    assert_eq!(tables.0, '✗', "{tables:?}");
    assert!(
        tables.2.contains("user_logins,") && tables.2.contains("user_logins_rejects"),
        "{tables:?}"
    );
    assert_eq!(
        tables.3.as_deref(),
        Some("run `sqs2pg migrate`"),
        "{tables:?}"
    );
    assert!(
        checks.iter().all(|c| c.1 != "grants"),
        "no grants without tables: {checks:?}"
    );
    assert_eq!(line(&checks, "queue", &out).0, '✓', "{checks:?}");
    assert!(stderr(&out).contains("tables"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_that_does_not_exist_fails_with_exit_2_naming_it() {
    let env = TestEnv::new().await;
    let missing = format!("{}-missing", env.queue_name);
    let out = check(&env, |c| {
        c.env_remove("SQS2PG_QUEUE_URL")
            .env("SQS2PG_QUEUE_NAME", &missing);
    });
    assert_exit(&out, 2);
    let checks = lines(&out);
    let queue = line(&checks, "queue", &out);
    assert_eq!(queue.0, '✗', "{queue:?}");
    assert!(queue.2.contains(&missing), "{queue:?}");
    assert!(
        queue
            .3
            .as_deref()
            .unwrap_or_default()
            .contains("create-queue"),
        "{queue:?}"
    );
    assert!(checks.iter().all(|c| c.1 != "redrive policy"), "{checks:?}");
    assert_eq!(line(&checks, "tables", &out).0, '✓', "{checks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_endpoint_that_does_not_answer_is_an_outage_exit_1() {
    let env = TestEnv::new().await;
    let out = check(&env, |c| {
        c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:1");
    });
    assert_exit(&out, 1);
    let checks = lines(&out);
    let queue = line(&checks, "queue", &out);
    assert_eq!(queue.0, '✗', "{queue:?}");
    assert!(queue.2.contains("cannot reach SQS"), "{queue:?}");
    assert!(
        line(&checks, "endpoint", &out)
            .2
            .contains("http://127.0.0.1:1"),
        "{checks:?}"
    );
    assert_eq!(line(&checks, "database", &out).0, '✓', "{checks:?}");
}

/// A database that does not exist is a setting (exit 2), in the server's own words; one that
/// does not answer is an outage (exit 1).
#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_does_not_exist_exits_2_and_one_that_does_not_answer_exits_1() {
    let env = TestEnv::new().await;
    let (base, _) = env
        .database_url
        .rsplit_once('/')
        .expect("a URL with a database");
    let missing = format!("{base}/{}_missing", env.db_name());
    let out = check(&env, |c| {
        c.env("DATABASE_URL", &missing);
    });
    assert_exit(&out, 2);
    let checks = lines(&out);
    let database = line(&checks, "database", &out);
    assert_eq!(database.0, '✗', "{database:?}");
    let words = format!("database \"{}_missing\" does not exist", env.db_name());
    assert!(database.2.contains(&words), "{database:?}");
    assert!(checks.iter().all(|c| c.1 != "tables"), "{checks:?}");

    let out = check(&env, |c| {
        c.env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres");
    });
    assert_exit(&out, 1);
    let checks = lines(&out);
    assert_eq!(line(&checks, "database", &out).0, '✗', "{checks:?}");
    assert_eq!(line(&checks, "queue", &out).0, '✓', "{checks:?}");
}

/// With no credentials anywhere in the chain: exit 2, the credentials line names where to
/// set them, and no queue check is tried without them.
#[tokio::test(flavor = "multi_thread")]
async fn no_aws_credentials_fail_with_exit_2_and_no_queue_check() {
    let env = TestEnv::new().await;
    let out = check(&env, |c| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/nonexistent/config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    });
    assert_exit(&out, 2);
    let checks = lines(&out);
    let credentials = line(&checks, "credentials", &out);
    assert_eq!(credentials.0, '✗', "{credentials:?}");
    assert!(
        credentials
            .3
            .as_deref()
            .unwrap_or_default()
            .contains("AWS_ACCESS_KEY_ID"),
        "{credentials:?}"
    );
    assert!(checks.iter().all(|c| c.1 != "queue"), "{checks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keys_file_others_can_read_fails_with_exit_2() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new().await;
    let dir = std::env::temp_dir().join(format!("sqs2pg-check-{}", env.queue_name));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys");
    std::fs::write(&keys, KEYS).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = keys.to_str().expect("a UTF-8 temp path");
    let out = check(&env, |c| {
        c.args(["--keys-file", path]);
    });
    std::fs::remove_dir_all(&dir).unwrap();
    assert_exit(&out, 2);
    let checks = lines(&out);
    let keyring = line(&checks, "keyring", &out);
    assert_eq!(keyring.0, '✗', "{keyring:?}");
    assert!(
        keyring.2.contains("mode 644") && keyring.2.contains(path),
        "{keyring:?}"
    );
    assert!(
        keyring
            .3
            .as_deref()
            .unwrap_or_default()
            .contains("chmod 600"),
        "{keyring:?}"
    );
    assert_no_key(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_without_a_redrive_policy_is_a_warning_and_exits_0() {
    let env = TestEnv::new().await;
    let out = check(&env, |_| {});
    assert_exit(&out, 0);
    let checks = lines(&out);
    let redrive = line(&checks, "redrive policy", &out);
    assert_eq!(redrive.0, '⚠', "{redrive:?}");
    assert!(redrive.2.contains("poison"), "{redrive:?}");
    assert!(
        redrive
            .3
            .as_deref()
            .unwrap_or_default()
            .contains("dead-letter queue"),
        "{redrive:?}"
    );
    let others = checks.iter().filter(|c| c.1 != "redrive policy");
    assert!(others.clone().all(|c| c.0 == '✓'), "{checks:?}");
}

/// A login role in `sqs2pg_ingest` passes every database check; with INSERT on user_logins
/// revoked from that role, `grants` fails naming it (exit 2).
#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_insert_on_user_logins_fails_grants_with_exit_2() {
    let env = TestEnv::new().await;
    let login = role_login(&env, "sqs2pg_ingest").await;
    let as_ingest = |c: &mut Command| {
        c.env("DATABASE_URL", &login.url);
    };
    let out = check(&env, as_ingest);
    assert_exit(&out, 0);
    assert_eq!(line(&lines(&out), "grants", &out).0, '✓');

    env.db()
        .await
        .batch_execute("REVOKE INSERT ON user_logins FROM sqs2pg_ingest")
        .await
        .unwrap();
    let out = check(&env, as_ingest);
    login.drop_in(&env).await;
    assert_exit(&out, 2);
    let checks = lines(&out);
    let grants = line(&checks, "grants", &out);
    assert_eq!(grants.0, '✗', "{grants:?}");
    assert!(
        grants.2.contains("lacks INSERT on user_logins"),
        "{grants:?}"
    );
    assert!(
        !grants.2.contains("user_logins_rejects"),
        "only what is missing: {grants:?}"
    );
    assert!(
        grants
            .3
            .as_deref()
            .unwrap_or_default()
            .contains("GRANT sqs2pg_ingest"),
        "{grants:?}"
    );
}

/// `--output json`: one object, `checks` each with exactly name, status, detail and fix
/// (null when ok), and `ok`; on a broken setup `ok` is false and the exit code still 2.
#[tokio::test(flavor = "multi_thread")]
async fn json_output_has_the_documented_shape() {
    let env = TestEnv::unmigrated().await;
    let out = check(&env, |c| {
        c.args(["--output", "json"]);
    });
    assert_exit(&out, 2);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "one line of JSON: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let keys: BTreeSet<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["checks", "ok"]), "{v}");
    assert_eq!(v["ok"], false, "{v}");
    let checks = v["checks"].as_array().expect("checks");
    for c in checks {
        let keys: BTreeSet<&str> = c
            .as_object()
            .expect("a check")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["name", "status", "detail", "fix"]),
            "{c}"
        );
        let status = c["status"].as_str().expect("status");
        assert!(["ok", "warn", "fail"].contains(&status), "{c}");
        assert_eq!(
            c["fix"].is_null(),
            status == "ok",
            "a fix exactly when not ok: {c}"
        );
    }
    let by_name = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {v}"))
    };
    assert_eq!(by_name("tables")["status"], "fail", "{v}");
    assert_eq!(by_name("tables")["fix"], "run `sqs2pg migrate`", "{v}");
    assert_eq!(by_name("redrive policy")["status"], "warn", "{v}");
    assert_eq!(by_name("queue")["status"], "ok", "{v}");
}
