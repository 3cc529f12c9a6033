//! Operations: metrics and health endpoints, the config file and the Lambda handler.

use std::process::Stdio;
use std::time::Duration;

use crate::faults::PrivatePg;
use crate::helpers::{
    admin, failed_ids, http_get, lambda_handler, login, sqs_event, stdout_ok, summary_numbers,
    wait_until, Proc, TestEnv, KEYS,
};

/// Waits until `path` answers `status`.
pub(crate) async fn wait_status(addr: &str, path: &str, status: u16, limit: Duration) {
    wait_until(&format!("{path} answers {status}"), limit, || async {
        match http_get(addr, path) {
            Some((s, _)) if s == status => Ok(()),
            other => Err(other),
        }
    })
    .await
}

/// The value of one sample line (`name{labels} value`) of Prometheus text.
pub(crate) fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// An address on loopback nothing listens on yet.
pub(crate) fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// During a run, /metrics equals the run's summary; /readyz is 503 while Postgres is
/// stopped and 200 after it returns; /healthz stays 200.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_health_endpoints() {
    let env = TestEnv::new().await;
    let pg = PrivatePg::start_migrated().await;
    let addr = free_addr();
    let mut bodies: Vec<String> = (0..150)
        .map(|i| login(&format!("m{i}"), "10.8.0.1", "d"))
        .collect();
    bodies.push("{broken".into());
    bodies.push(r#"{"user_id":"x"}"#.into());
    env.send(&bodies).await;
    let mut child = Proc::spawn(
        env.cmd(&["run", "--wait-seconds", "1", "--metrics-addr", &addr])
            .env("DATABASE_URL", &pg.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    wait_status(&addr, "/healthz", 200, Duration::from_secs(30)).await;
    wait_status(&addr, "/readyz", 200, Duration::from_secs(30)).await;
    wait_until("all 152 deleted", Duration::from_secs(60), || async {
        let m = http_get(&addr, "/metrics").unwrap().1;
        if sample(&m, "sqs2pg_deleted_total") == Some(152.0) {
            Ok(())
        } else {
            Err(m)
        }
    })
    .await;

    let pg = readyz_follows_postgres(&addr, pg).await;
    let metrics = http_get(&addr, "/metrics").unwrap().1;
    assert!(
        metrics.contains("# TYPE sqs2pg_commit_seconds histogram"),
        "{metrics}"
    );
    assert!(metrics.contains("sqs2pg_batch_size_bucket"), "{metrics}");
    assert!(sample(&metrics, "sqs2pg_last_commit_timestamp_seconds").unwrap() > 1.7e9);
    assert!(sample(&metrics, "sqs2pg_queue_backlog").is_some());

    child.sigterm();
    let out = child.wait_with_output();
    assert!(out.status.success());
    assert_metrics_equal_summary(&metrics, &String::from_utf8_lossy(&out.stdout));
    drop(pg);
}

/// Postgres stopped: /readyz 503 naming the database, /healthz still 200; Postgres back:
/// /readyz 200 again.
async fn readyz_follows_postgres(addr: &str, pg: PrivatePg) -> PrivatePg {
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    wait_status(addr, "/readyz", 503, Duration::from_secs(20)).await;
    assert!(http_get(addr, "/readyz")
        .unwrap()
        .1
        .contains("database unreachable"));
    assert_eq!(http_get(addr, "/healthz").unwrap().0, 200);
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    wait_status(addr, "/readyz", 200, Duration::from_secs(30)).await;
    pg
}

/// The counters of the last scrape are the numbers of the summary printed at exit.
fn assert_metrics_equal_summary(metrics: &str, printed: &str) {
    let summary = summary_numbers(printed);
    for (metric, label) in [
        ("sqs2pg_received_total", "received"),
        ("sqs2pg_loaded_total", "loaded"),
        ("sqs2pg_deleted_total", "deleted"),
        ("sqs2pg_duplicates_total", "duplicates skipped"),
    ] {
        assert_eq!(
            sample(metrics, metric),
            Some(summary[label] as f64),
            "{metric} vs {label}\n{printed}"
        );
    }
    assert_eq!(
        sample(metrics, "sqs2pg_rejected_total{reason=\"not_json\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            metrics,
            "sqs2pg_rejected_total{reason=\"missing_field:app_version\"}"
        ),
        Some(1.0)
    );
    assert_eq!(summary.get("rejected"), Some(&2), "{printed}");
}

/// TLS to Postgres: `sslmode=require` against a server with a certificate from a private
/// CA works with `SQS2PG_DB_CA_FILE`, and fails clearly without it (the system roots do not
/// know that CA). The server accepts TLS connections only, so every success was encrypted.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_over_tls() {
    let env = TestEnv::new().await;
    let pg = tokio::task::spawn_blocking(PrivatePg::start_tls)
        .await
        .unwrap();
    let url = format!("{}?sslmode=require", pg.url);
    let out = env
        .cmd(&["migrate"])
        .env("DATABASE_URL", &url)
        .env_remove("SQS2PG_DB_CA_FILE")
        .output()
        .unwrap();
    // A certificate that does not verify is a setting to fix, not an outage to wait out.
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to Postgres") && err.to_lowercase().contains("certificate"),
        "{err}"
    );

    let ca = pg.ca_file();
    let with_ca = |args: &[&str]| {
        env.cmd(args)
            .env("DATABASE_URL", &url)
            .env("SQS2PG_DB_CA_FILE", &ca)
            .output()
            .unwrap()
    };
    stdout_ok(&with_ca(&["migrate"]));
    env.send(&[login("tls-user", "10.9.9.9", "d")]).await;
    let out = stdout_ok(&with_ca(&["run", "--until-empty", "--wait-seconds", "1"]));
    assert_eq!(summary_numbers(&out)["loaded"], 1, "{out}");
    let count = std::process::Command::new("psql")
        .args([url.as_str(), "-Atc", "SELECT count(*) FROM user_logins"])
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&count).trim(), "1");
    let plain = env
        .cmd(&["migrate"])
        .env("DATABASE_URL", format!("{}?sslmode=disable", pg.url))
        .output()
        .unwrap();
    // The server's pg_hba refusal (28000) is a setting to fix: exit 2.
    assert_eq!(
        plain.status.code(),
        Some(2),
        "the server refuses unencrypted sessions"
    );
    let bad = env
        .cmd(&["migrate"])
        .env("DATABASE_URL", &url)
        .env("SQS2PG_DB_CA_FILE", "/nonexistent.pem")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("SQS2PG_DB_CA_FILE"));
}

/// `sqs2pg config` shows the effective settings with flags > env > file > defaults, and
/// never a key or a password.
#[test]
fn config_precedence_and_no_secrets() {
    let dir = std::env::temp_dir().join(format!("sqs2pg-it-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sqs2pg.toml");
    std::fs::write(
        &file,
        "queue_name = \"from-file\"\n[run]\npollers = 3\nwriters = 5\n",
    )
    .unwrap();
    let key_b64 = KEYS.split_once('=').unwrap().1;
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"));
        c.args(args)
            .env("SQS2PG_KEYS", KEYS)
            .env(
                "DATABASE_URL",
                "postgres://app:s3cr3t-pw@db.internal:5432/logins",
            )
            .env_remove("SQS2PG_POLLERS")
            .env_remove("SQS2PG_CONFIG")
            .env_remove("SQS2PG_QUEUE_NAME");
        for (k, v) in envs {
            c.env(k, v);
        }
        stdout_ok(&c.output().unwrap())
    };
    let f = file.to_str().unwrap();
    // Each setting is followed by a comment saying where it came from.
    let set = |out: &str, line: &str| {
        out.lines()
            .any(|l| l.split("  # ").next().unwrap_or(l).trim_end() == line)
    };
    let out = run(&["--config", f, "config"], &[]);
    assert!(
        set(&out, "pollers = 3")
            && set(&out, "writers = 5")
            && out.contains("queue_name = \"from-file\""),
        "{out}"
    );
    let out = run(
        &["config"],
        &[("SQS2PG_CONFIG", f), ("SQS2PG_POLLERS", "4")],
    );
    assert!(
        set(&out, "pollers = 4") && set(&out, "writers = 5"),
        "env beats file: {out}"
    );
    let out = run(
        &["--config", f, "config", "--pollers", "7"],
        &[("SQS2PG_POLLERS", "4")],
    );
    assert!(set(&out, "pollers = 7"), "flag beats env: {out}");
    let out = run(&["config"], &[]);
    assert!(
        set(&out, "pollers = 8") && out.contains("queue_name = \"login-queue\""),
        "defaults: {out}"
    );
    for out in [run(&["config"], &[]), run(&["--config", f, "config"], &[])] {
        assert!(
            !out.contains(key_b64) && !out.contains("s3cr3t-pw"),
            "secret printed: {out}"
        );
        assert!(out.contains("key ids t1"), "{out}");
        assert!(
            out.contains("postgres://app:<redacted>@db.internal:5432/logins"),
            "{out}"
        );
    }
    // A bad file is a configuration error naming the flag.
    std::fs::write(&file, "[run]\npolers = 3\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
        .args(["--config", f, "config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--config") && err.contains("polers"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `man --dir` writes sqs2pg(1) and every page it and the others refer to
/// (`sqs2pg-run(1)`, `sqs2pg-rejects-list(1)`…): no reference to a page that does not exist.
#[test]
fn man_dir_writes_every_page_the_pages_refer_to() {
    let dir = std::env::temp_dir().join(format!("sqs2pg-man-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    stdout_ok(&out);
    let pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(pages.contains(&"sqs2pg-run.1".to_owned()), "{pages:?}");
    let mut referred = 0;
    for page in &pages {
        let roff = std::fs::read_to_string(dir.join(page)).unwrap();
        // `sqs2pg\-rejects\-list(1)` in roff; the NAME line `sqs2pg\-man \- …` is no reference.
        for reference in roff.split("sqs2pg\\-").skip(1) {
            let Some((name, _)) = reference.split_once("(1)") else {
                continue;
            };
            if !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '\\' || c == '-')
            {
                continue;
            }
            let file = format!("sqs2pg-{}.1", name.replace("\\-", "-"));
            assert!(
                pages.contains(&file),
                "{page} refers to {file}, not written: {pages:?}"
            );
            referred += 1;
        }
    }
    assert!(
        referred >= 12,
        "sqs2pg.1 refers to each command's page: {referred}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Completions and the man page generate.
#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = stdout_ok(
            &std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
                .args(["completions", shell])
                .output()
                .unwrap(),
        );
        assert!(out.contains("rekey") && out.contains("reveal"), "{shell}");
    }
    let man = stdout_ok(
        &std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
            .arg("man")
            .output()
            .unwrap(),
    );
    assert!(
        man.starts_with(".ie") || man.contains(".TH sqs2pg"),
        "{man}"
    );
}

/// The Lambda handler on a fixture event with one bad message: good rows committed, the
/// bad one rejected, no batchItemFailures; a redelivered event adds nothing; with the
/// database gone, every message is a batchItemFailure.
#[tokio::test(flavor = "multi_thread")]
async fn lambda_handler_commits_and_reports_failures() {
    let env = TestEnv::new().await;
    let handler = lambda_handler(&env).await;
    let good1 = login("lambda-1", "10.6.0.1", "d1");
    let good2 = login("lambda-2", "10.6.0.2", "d2");
    let event = sqs_event(&[
        ("m-1", &good1),
        ("m-bad", "{\"user_id\":\"\""),
        ("m-2", &good2),
    ]);
    let resp = handler.handle(event.clone()).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    let c = env.db().await;
    let rows: Vec<(String, chrono::NaiveDate)> = c
        .rows("SELECT user_id, create_date FROM user_logins ORDER BY user_id")
        .await
        .iter()
        .map(|r| (r.get("user_id"), r.get("create_date")))
        .collect();
    // The day of the fixture's SentTimestamp.
    let day = chrono::NaiveDate::from_ymd_opt(2024, 11, 24).unwrap();
    assert_eq!(
        rows,
        [("lambda-1".to_string(), day), ("lambda-2".to_string(), day)]
    );
    let rejects: Vec<(String, String)> = c
        .rows("SELECT message_id, reason FROM user_logins_rejects")
        .await
        .iter()
        .map(|r| (r.get("message_id"), r.get("reason")))
        .collect();
    assert_eq!(rejects, [("m-bad".to_string(), "not_json".to_string())]);

    // Lambda redelivers the same event: nothing new.
    let resp = handler.handle(event).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(c.count("SELECT count(*) FROM user_logins").await, 2);
    assert_eq!(handler.summary().duplicates, 3);

    // The database goes away: every message of the batch is reported for retry.
    drop(c);
    let admin = admin().await;
    let dbname = env.db_name();
    admin.batch_execute(&format!("ALTER DATABASE {dbname} ALLOW_CONNECTIONS false; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'")).await.unwrap();
    let event = sqs_event(&[
        ("m-3", &login("lambda-3", "10.6.0.3", "d3")),
        ("m-4", "nope"),
    ]);
    let resp = handler.handle(event).await;
    assert_eq!(failed_ids(&resp), ["m-3", "m-4"]);
    admin
        .batch_execute(&format!("ALTER DATABASE {dbname} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
}
