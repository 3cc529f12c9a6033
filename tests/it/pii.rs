//! PII protection: rotation with online rekey, KMS-wrapped keys, audited reveal and mask,
//! keys-file permissions, least-privilege roles.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sqs2pg::mask::{Column, Keyring, Masker};
use sqs2pg::telemetry::Stats;
use tokio_util::sync::CancellationToken;

use crate::helpers::{connect, login, stdout_ok, TestEnv, KEYS};

/// Two fixed keys: k1 (0x01 bytes) and k2 (0x02 bytes).
const K1: &str =
    "k1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==";
const K2: &str =
    "k2=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg==";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn bodies(prefix: &str, n: usize) -> Vec<(String, String, String)> {
    // 37 distinct ips and 23 distinct devices, so equal values recur across batches and keys.
    (0..n)
        .map(|i| {
            (
                format!("{prefix}-{i}"),
                format!("10.9.{}.{}", i % 37, i % 37),
                format!("dev-{}", i % 23),
            )
        })
        .collect()
}

async fn drain_with(env: &TestEnv, keys: &str) -> sqs2pg::telemetry::Summary {
    let mut cfg = env.run_config(env.pipeline_config());
    cfg.keyring = Keyring::parse(keys).unwrap();
    sqs2pg::pipeline::run(cfg, CancellationToken::new(), Arc::default())
        .await
        .unwrap()
}

/// Rows under k1; the keyring becomes k2,k1; `run` keeps loading while `rekey` runs, is
/// killed halfway (held on a row lock, then SIGKILL) and is rerun. Afterwards every token
/// is under k2, equal values have equal tokens across old and new rows, and every original
/// comes back.
#[tokio::test(flavor = "multi_thread")]
async fn rotation_with_online_rekey_killed_halfway() {
    let env = TestEnv::new().await;
    let old = bodies("old", 600);
    let mut sent: Vec<String> = old.iter().map(|(u, ip, d)| login(u, ip, d)).collect();
    sent.push(r#"{"user_id":"rejected-under-k1","ip":"10.9.0.0"}"#.into());
    env.send(&sent).await;
    let s = drain_with(&env, K1).await;
    assert_eq!((s.loaded, s.rejected), (600, 1));

    let db = env.db().await;
    let rotated = format!("{K2}\n{K1}");
    // New messages arrive while the rotation happens.
    let new = bodies("new", 300);
    let new_bodies: Vec<String> = new.iter().map(|(u, ip, d)| login(u, ip, d)).collect();
    let stats = Arc::new(Stats::default());
    let stop = CancellationToken::new();
    let mut daemon_cfg = env.run_config(env.pipeline_config());
    daemon_cfg.keyring = Keyring::parse(&rotated).unwrap();
    daemon_cfg.pipeline.until_empty = false;
    let daemon = tokio::spawn(sqs2pg::pipeline::run(
        daemon_cfg,
        stop.clone(),
        stats.clone(),
    ));
    env.send(&new_bodies[..150]).await;

    // Hold a lock on the last old row (in ctid order, the order rekey walks) so the first
    // rekey stalls there after some batches, then kill it.
    let mut locker = env.db().await;
    let lock_tx = locker.transaction().await.unwrap();
    lock_tx
        .execute("SELECT 1 FROM user_logins WHERE user_id LIKE 'old-%' ORDER BY ctid DESC LIMIT 1 FOR UPDATE", &[])
        .await
        .unwrap();
    let mut rekey = env
        .cmd(&["rekey", "--batch-size", "50"])
        .env("SQS2PG_KEYS", &rotated)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let k2_rows = || async {
        let n: i64 = db
            .query_one("SELECT count(*) FROM user_logins WHERE user_id LIKE 'old-%' AND masked_ip LIKE 'v1:k2:%'", &[])
            .await
            .unwrap()
            .get(0);
        n
    };
    let mut progressed = 0;
    for _ in 0..300 {
        progressed = k2_rows().await;
        if progressed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    rekey.kill().unwrap();
    let first = rekey.wait_with_output().unwrap();
    assert!(
        !first.status.success(),
        "the first rekey should have been killed while stalled"
    );
    let halfway = k2_rows().await;
    assert!(
        progressed > 0 && halfway < 600,
        "rekey should be stalled halfway: {halfway} of 600 done"
    );
    lock_tx.rollback().await.unwrap();

    env.send(&new_bodies[150..]).await;
    let out = stdout_ok(
        &env.cmd(&["rekey", "--batch-size", "50"])
            .env("SQS2PG_KEYS", &rotated)
            .output()
            .unwrap(),
    );
    assert!(out.contains("writing key         k2"), "{out}");
    assert!(out.contains("bodies re-sealed    1"), "{out}");

    // Let the daemon finish the new messages, then stop it.
    for _ in 0..300 {
        if stats.deleted.load(Ordering::Relaxed) >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let s = daemon.await.unwrap().unwrap();
    assert_eq!(s.loaded, 300);
    // A second rekey finds nothing left (new rows were written under k2 already).
    let out = stdout_ok(
        &env.cmd(&["rekey"])
            .env("SQS2PG_KEYS", &rotated)
            .output()
            .unwrap(),
    );
    assert!(out.contains("rows updated        0"), "{out}");

    let rows = db
        .query(
            "SELECT user_id, masked_ip, masked_device_id FROM user_logins",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 900);
    let leftover: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM user_logins WHERE masked_ip NOT LIKE 'v1:k2:%' OR masked_device_id NOT LIKE 'v1:k2:%')
                  + (SELECT count(*) FROM user_logins_rejects WHERE body_ciphertext NOT LIKE 'v1:k2:%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftover, 0);

    // Equal values have equal tokens across old and new rows; every original reveals.
    let want: HashMap<String, (String, String)> = old
        .iter()
        .chain(new.iter())
        .map(|(u, ip, d)| (u.clone(), (ip.clone(), d.clone())))
        .collect();
    let mut m = Masker::new(&Keyring::parse(&rotated).unwrap());
    let mut ip_tokens: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for r in &rows {
        let (u, ip_t, dev_t): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let (ip, dev) = &want[&u];
        assert_eq!(&m.reveal(Column::Ip, &ip_t).unwrap(), ip);
        assert_eq!(&m.reveal(Column::DeviceId, &dev_t).unwrap(), dev);
        ip_tokens.entry(ip.clone()).or_default().insert(ip_t);
    }
    assert_eq!(ip_tokens.len(), 37);
    assert!(
        ip_tokens.values().all(|t| t.len() == 1),
        "one token per ip across old and new rows"
    );
    let body: String = db
        .query_one("SELECT body_ciphertext FROM user_logins_rejects", &[])
        .await
        .unwrap()
        .get(0);
    assert!(m
        .reveal(Column::Body, &body)
        .unwrap()
        .contains("rejected-under-k1"));
}

/// reveal needs --reason (exit 2), writes an audit row before any output, and --max stops
/// bulk unmasking; reveal --reject and mask are audited too.
#[tokio::test(flavor = "multi_thread")]
async fn reveal_and_mask_are_audited() {
    use std::io::Write;
    let env = TestEnv::new().await;
    env.send(&[
        login("a", "172.16.5.4", "dev-a"),
        login("b", "172.16.5.5", "dev-b"),
        login("c", "172.16.5.6", "dev-c"),
        "not json at all".into(),
    ])
    .await;
    env.drain().await;
    let db = env.db().await;
    let audit_rows = || async {
        db.query("SELECT action, column_name, reason, values_count, db_user, os_user IS NOT NULL, host IS NOT NULL FROM sqs2pg_reveal_audit ORDER BY id", &[])
            .await
            .unwrap()
    };
    let tokens: Vec<String> = db
        .query("SELECT masked_ip FROM user_logins ORDER BY user_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let input = tokens.join("\n") + "\n";
    let reveal = |args: &[&str]| {
        let mut child = env
            .cmd(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A refused reveal exits before reading stdin.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        child.wait_with_output().unwrap()
    };

    let out = reveal(&["reveal", "--column", "ip"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--reason"));
    let out = reveal(&[
        "reveal", "--column", "ip", "--reason", "TICKET-1", "--max", "2",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("--max"), "{}", stderr(&out));
    assert!(
        audit_rows().await.is_empty(),
        "a refused reveal is not audited as done"
    );

    let out = stdout_ok(&reveal(&[
        "reveal",
        "--column",
        "ip",
        "--reason",
        "TICKET-1 fraud review",
    ]));
    assert_eq!(out, "172.16.5.4\n172.16.5.5\n172.16.5.6\n");
    let rows = audit_rows().await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2),
            r.get::<_, i32>(3)
        ),
        (
            "reveal".into(),
            "ip".into(),
            "TICKET-1 fraud review".into(),
            3
        )
    );
    assert_eq!(r.get::<_, String>(4), "postgres");
    assert!(r.get::<_, bool>(5) && r.get::<_, bool>(6));

    // Forward lookup finds the row.
    let token = stdout_ok(&env.run_cmd(&[
        "mask",
        "--column",
        "ip",
        "--reason",
        "TICKET-2",
        "::ffff:172.16.5.5",
    ]));
    let user: String = db
        .query_one(
            "SELECT user_id FROM user_logins WHERE masked_ip = $1",
            &[&token.trim()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "b");
    let out = env.run_cmd(&[
        "mask",
        "--column",
        "ip",
        "--reason",
        "TICKET-2",
        "not-an-ip-secret",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !stderr(&out).contains("not-an-ip-secret"),
        "the value is not echoed"
    );

    let id: String = db
        .query_one("SELECT message_id FROM user_logins_rejects", &[])
        .await
        .unwrap()
        .get(0);
    let out = stdout_ok(&env.run_cmd(&["reveal", "--reject", &id, "--reason", "TICKET-3"]));
    assert_eq!(out, "not json at all\n");
    let actions: Vec<(String, String, i32)> = audit_rows()
        .await
        .iter()
        .map(|r| (r.get(0), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        actions,
        [
            ("reveal".into(), "TICKET-1 fraud review".into(), 3),
            ("mask".into(), "TICKET-2".into(), 1),
            ("reveal_reject".into(), "TICKET-3".into(), 1)
        ]
    );
}

/// A keys file readable by group or others is refused with the chmod to run.
#[tokio::test(flavor = "multi_thread")]
async fn group_readable_keys_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new().await;
    let path = std::env::temp_dir().join(format!("sqs2pg-it-keys-{}", env.queue_name));
    std::fs::write(&path, format!("{KEYS}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = || {
        env.cmd(&[
            "run",
            "--until-empty",
            "--wait-seconds",
            "1",
            "--keys-file",
            path.to_str().unwrap(),
        ])
        .env_remove("SQS2PG_KEYS")
        .output()
        .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("chmod 600 {}", path.display())),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    stdout_ok(&run());
    std::fs::remove_file(&path).unwrap();
}

/// KMS (LocalStack): keygen wraps a data key, run unwraps it at start-up; a relabelled blob
/// or a missing KMS key is refused (exit 2), an unreachable KMS is an outage (exit 1).
#[tokio::test(flavor = "multi_thread")]
async fn kms_wrapped_keys() {
    let env = TestEnv::new().await;
    let sdk = sqs2pg::config::aws_sdk_config().await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key_id = kms
        .create_key()
        .description("sqs2pg it")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;

    let entry = stdout_ok(&env.run_cmd(&["keygen", "--kid", "kk", "--kms-key-id", &key_id]));
    let entry = entry.trim().to_owned();
    assert!(entry.starts_with("kk=kms:"), "{entry}");

    env.send(&[login("kms-user", "192.0.2.1", "kms-dev")]).await;
    let out = stdout_ok(
        &env.cmd(&["run", "--until-empty", "--wait-seconds", "1"])
            .env("SQS2PG_KEYS", &entry)
            .output()
            .unwrap(),
    );
    assert!(out.contains("loaded              1"), "{out}");
    let token: String = env
        .db()
        .await
        .query_one("SELECT masked_ip FROM user_logins", &[])
        .await
        .unwrap()
        .get(0);
    assert!(token.starts_with("v1:kk:"));
    let mut child = env
        .cmd(&["reveal", "--column", "ip", "--reason", "kms test"])
        .env("SQS2PG_KEYS", &entry)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("{token}\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(stdout_ok(&child.wait_with_output().unwrap()), "192.0.2.1\n");

    // The same blob under another kid: the encryption context no longer matches.
    let relabelled = entry.replacen("kk=", "kx=", 1);
    let out = env
        .cmd(&["run", "--until-empty", "--wait-seconds", "1"])
        .env("SQS2PG_KEYS", &relabelled)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("KMS refused to unwrap key \"kx\""),
        "{}",
        stderr(&out)
    );

    let out = env.run_cmd(&[
        "keygen",
        "--kid",
        "k9",
        "--kms-key-id",
        "alias/does-not-exist",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("GenerateDataKeyWithoutPlaintext"),
        "{}",
        stderr(&out)
    );

    let out = env
        .cmd(&["run", "--until-empty", "--wait-seconds", "1"])
        .env("SQS2PG_KEYS", &entry)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("KMS is unreachable"),
        "{}",
        stderr(&out)
    );
}

/// migrate --roles: the ingest role can load but not read tokens back out of the rejects or
/// the audit; the analyst reads user_logins only; nobody but the owner changes the audit.
#[tokio::test(flavor = "multi_thread")]
async fn least_privilege_roles() {
    let env = TestEnv::new().await;
    stdout_ok(&env.run_cmd(&["migrate", "--roles"]));
    stdout_ok(&env.run_cmd(&["migrate", "--roles"]));
    let suffix = &env.queue_name[3..];
    let admin = env.db().await;
    let (ingest, analyst, revealer) = (
        format!("it_ingest_{suffix}"),
        format!("it_analyst_{suffix}"),
        format!("it_revealer_{suffix}"),
    );
    admin
        .batch_execute(&format!(
            "CREATE ROLE {ingest} LOGIN IN ROLE sqs2pg_ingest;
             CREATE ROLE {analyst} LOGIN IN ROLE sqs2pg_analyst;
             CREATE ROLE {revealer} LOGIN IN ROLE sqs2pg_revealer;"
        ))
        .await
        .unwrap();
    let url_as = |user: &str| {
        env.database_url
            .replacen("postgres@", &format!("{user}@"), 1)
    };

    // Ingest loads rows and rejects.
    env.send(&[login("r1", "10.3.3.3", "d"), "{bad".to_string()])
        .await;
    let mut cfg = env.run_config(env.pipeline_config());
    cfg.db = sqs2pg::config::DbConfig::parse(&url_as(&ingest)).unwrap();
    let s = sqs2pg::pipeline::run(cfg, CancellationToken::new(), Arc::default())
        .await
        .unwrap();
    assert_eq!((s.loaded, s.rejected), (1, 1));

    let denied = |e: tokio_postgres::Error| {
        e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    };
    let ing = connect(&url_as(&ingest)).await;
    assert!(denied(
        ing.query("SELECT * FROM user_logins_rejects", &[])
            .await
            .unwrap_err()
    ));
    assert!(denied(
        ing.query("SELECT * FROM sqs2pg_reveal_audit", &[])
            .await
            .unwrap_err()
    ));

    let an = connect(&url_as(&analyst)).await;
    assert_eq!(
        an.query("SELECT * FROM user_logins", &[])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(denied(
        an.query("SELECT * FROM user_logins_rejects", &[])
            .await
            .unwrap_err()
    ));
    assert!(denied(
        an.query("SELECT * FROM sqs2pg_reveal_audit", &[])
            .await
            .unwrap_err()
    ));
    assert!(denied(
        an.execute("DELETE FROM user_logins", &[])
            .await
            .unwrap_err()
    ));

    // The revealer can reveal (which appends to the audit) but not rewrite the audit.
    let id: String = admin
        .query_one("SELECT message_id FROM user_logins_rejects", &[])
        .await
        .unwrap()
        .get(0);
    let out = env
        .cmd(&["reveal", "--reject", &id, "--reason", "roles test"])
        .env("DATABASE_URL", url_as(&revealer))
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "{bad\n");
    let rv = connect(&url_as(&revealer)).await;
    for sql in [
        "UPDATE sqs2pg_reveal_audit SET reason = 'x'",
        "DELETE FROM sqs2pg_reveal_audit",
        "TRUNCATE sqs2pg_reveal_audit",
    ] {
        for c in [&rv, &an, &ing] {
            assert!(denied(c.execute(sql, &[]).await.unwrap_err()), "{sql}");
        }
    }
    let n: i64 = admin
        .query_one("SELECT count(*) FROM sqs2pg_reveal_audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    drop((ing, an, rv));
    admin
        .batch_execute(&format!("DROP OWNED BY {ingest}, {analyst}, {revealer}; DROP ROLE {ingest}, {analyst}, {revealer};"))
        .await
        .unwrap();
}
