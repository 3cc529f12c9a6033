//! PII protection: rotation with online rekey, KMS-wrapped keys, audited reveal and mask,
//! keys-file permissions, least-privilege roles.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio_postgres::Row;

use crate::helpers::{
    aws_sdk_config, connect, login, masker, offer_stdin, pipe_through, stderr, stdout_ok,
    summary_fields, summary_numbers, wait_until, Db, Proc, RunOptions, TestEnv, KEYS,
};

/// Two fixed keys: k1 (0x01 bytes) and k2 (0x02 bytes).
const K1: &str =
    "k1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==";
const K2: &str =
    "k2=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg==";

/// `(user_id, ip, device_id)` of `n` logins.
fn users(prefix: &str, n: usize) -> Vec<(String, String, String)> {
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

fn login_bodies(users: &[(String, String, String)]) -> Vec<String> {
    users.iter().map(|(u, ip, d)| login(u, ip, d)).collect()
}

/// The binary's rekey with `keys`, in batches of `batch`.
fn rekey_cmd(env: &TestEnv, keys: &str, batch: Option<&str>) -> std::process::Command {
    let mut args = vec!["rekey"];
    if let Some(b) = batch {
        args.extend(["--batch-size", b]);
    }
    let mut c = env.cmd(&args);
    c.env("SQS2PG_KEYS", keys);
    c
}

/// Rows under k1; the keyring becomes k2,k1; `run` keeps loading while `rekey` runs, is
/// killed halfway (held on a row lock, then SIGKILL) and is rerun. Afterwards every token
/// is under k2, equal values have equal tokens across old and new rows, and every original
/// comes back.
#[tokio::test(flavor = "multi_thread")]
async fn rotation_with_online_rekey_killed_halfway() {
    let env = TestEnv::new().await;
    let old = load_old_rows_under_k1(&env).await;
    let rotated = format!("{K2}\n{K1}");
    // New messages arrive while the rotation happens.
    let new = users("new", 300);
    let new_bodies = login_bodies(&new);
    let mut daemon = env.spawn_daemon(RunOptions::default().keys(&rotated));
    env.send(&new_bodies[..150]).await;

    rekey_killed_while_stalled(&env, &rotated).await;
    env.send(&new_bodies[150..]).await;
    let out = stdout_ok(&rekey_cmd(&env, &rotated, Some("50")).output().unwrap());
    assert_eq!(summary_fields(&out)["writing key"], "k2", "{out}");
    assert_eq!(summary_numbers(&out)["bodies re-sealed"], 1, "{out}");

    // Let the daemon finish the new messages, then stop it.
    wait_until("daemon deleted 300", Duration::from_secs(15), || async {
        daemon.deleted() >= 300
    })
    .await;
    let s = daemon.stop_and_join().await;
    assert_eq!(s.loaded, 300);
    // A second rekey finds nothing left (new rows were written under k2 already).
    let out = stdout_ok(&rekey_cmd(&env, &rotated, None).output().unwrap());
    assert_eq!(summary_numbers(&out)["rows updated"], 0, "{out}");

    assert_all_under_k2(&env).await;
    assert_one_token_per_value_and_originals_reveal(&env, &rotated, &old, &new).await;
}

/// 600 rows and one reject written under k1; returns the rows' users.
async fn load_old_rows_under_k1(env: &TestEnv) -> Vec<(String, String, String)> {
    let old = users("old", 600);
    let mut sent = login_bodies(&old);
    sent.push(r#"{"user_id":"rejected-under-k1","ip":"10.9.0.0"}"#.into());
    env.send(&sent).await;
    let s = env.drain_with(RunOptions::default().keys(K1)).await;
    assert_eq!((s.loaded, s.rejected), (600, 1));
    old
}

/// A first rekey to `rotated`, stalled on a lock on the last old row (in ctid order, the
/// order rekey walks) after some batches, then SIGKILLed: some but not all old rows are
/// under k2.
async fn rekey_killed_while_stalled(env: &TestEnv, rotated: &str) {
    let mut locker = env.db().await;
    let lock_tx = locker.transaction().await.unwrap();
    lock_tx
        .execute("SELECT 1 FROM user_logins WHERE user_id LIKE 'old-%' ORDER BY ctid DESC LIMIT 1 FOR UPDATE", &[])
        .await
        .unwrap();
    let rekey = Proc::spawn(
        rekey_cmd(env, rotated, Some("50"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let k2_rows = || {
        env.count("SELECT count(*) FROM user_logins WHERE user_id LIKE 'old-%' AND masked_ip LIKE 'v1:k2:%'")
    };
    let progressed = wait_until("rekey's first batches", Duration::from_secs(15), || async {
        match k2_rows().await {
            0 => Err(0),
            n => Ok(n),
        }
    })
    .await;
    // The fault window: give the rekey time to reach the lock before the kill.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = rekey.sigkill_with_output();
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
}

/// 900 rows, and no token or sealed body left under another key than k2.
async fn assert_all_under_k2(env: &TestEnv) {
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 900);
    let leftover = env
        .count(
            "SELECT (SELECT count(*) FROM user_logins WHERE masked_ip NOT LIKE 'v1:k2:%' OR masked_device_id NOT LIKE 'v1:k2:%')
                  + (SELECT count(*) FROM user_logins_rejects WHERE body_ciphertext NOT LIKE 'v1:k2:%')",
        )
        .await;
    assert_eq!(leftover, 0);
}

/// Equal values have equal tokens across old and new rows; every original reveals.
async fn assert_one_token_per_value_and_originals_reveal(
    env: &TestEnv,
    rotated: &str,
    old: &[(String, String, String)],
    new: &[(String, String, String)],
) {
    let want: HashMap<String, (String, String)> = old
        .iter()
        .chain(new.iter())
        .map(|(u, ip, d)| (u.clone(), (ip.clone(), d.clone())))
        .collect();
    let mut m = masker(rotated);
    let mut ip_tokens: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let rows = env
        .rows("SELECT user_id, masked_ip, masked_device_id FROM user_logins")
        .await;
    assert_eq!(rows.len(), 900);
    for r in &rows {
        let ip_token: String = r.get("masked_ip");
        let (ip, dev) = &want[&r.get::<_, String>("user_id")];
        assert_eq!(&m.reveal_ip(&ip_token), ip);
        assert_eq!(&m.reveal_device_id(r.get("masked_device_id")), dev);
        ip_tokens.entry(ip.clone()).or_default().insert(ip_token);
    }
    assert_eq!(ip_tokens.len(), 37);
    assert!(
        ip_tokens.values().all(|t| t.len() == 1),
        "one token per ip across old and new rows"
    );
    let body: String = env
        .scalar("SELECT body_ciphertext FROM user_logins_rejects")
        .await;
    assert!(m.reveal_body(&body).contains("rejected-under-k1"));
}

/// A `sqs2pg_reveal_audit` row, read by column name.
#[derive(Debug, PartialEq)]
struct AuditRow {
    action: String,
    column_name: String,
    reason: String,
    values_count: i32,
    db_user: String,
    has_os_user: bool,
    has_host: bool,
}

impl AuditRow {
    fn from_row(r: &Row) -> Self {
        Self {
            action: r.get("action"),
            column_name: r.get("column_name"),
            reason: r.get("reason"),
            values_count: r.get("values_count"),
            db_user: r.get("db_user"),
            has_os_user: r.get("has_os_user"),
            has_host: r.get("has_host"),
        }
    }
}

/// The audit, oldest first.
async fn audit_rows(env: &TestEnv) -> Vec<AuditRow> {
    env.rows(
        "SELECT action, column_name, reason, values_count, db_user, \
         os_user IS NOT NULL AS has_os_user, host IS NOT NULL AS has_host \
         FROM sqs2pg_reveal_audit ORDER BY id",
    )
    .await
    .iter()
    .map(AuditRow::from_row)
    .collect()
}

/// reveal needs --reason (exit 2), writes an audit row before any output, and --max stops
/// bulk unmasking; reveal --reject and mask are audited too.
#[tokio::test(flavor = "multi_thread")]
async fn reveal_and_mask_are_audited() {
    let env = TestEnv::new().await;
    env.send(&[
        login("a", "172.16.5.4", "dev-a"),
        login("b", "172.16.5.5", "dev-b"),
        login("c", "172.16.5.6", "dev-c"),
        "not json at all".into(),
    ])
    .await;
    env.drain().await;
    let tokens: Vec<String> = env
        .column("SELECT masked_ip FROM user_logins ORDER BY user_id")
        .await;
    let input = tokens.join("\n") + "\n";
    // A refused reveal exits before reading stdin.
    let reveal = |args: &[&str]| offer_stdin(&mut env.cmd(args), &input);

    refused_reveals_are_not_audited(&env, &reveal).await;
    bulk_reveal_is_audited(&env, &reveal).await;
    mask_finds_the_row_and_does_not_echo(&env).await;

    let id: String = env
        .scalar("SELECT message_id FROM user_logins_rejects")
        .await;
    let out = stdout_ok(&env.run_cmd(&["reveal", "--reject", &id, "--reason", "TICKET-3"]));
    assert_eq!(out, "not json at all\n");
    let actions: Vec<(String, String, i32)> = audit_rows(&env)
        .await
        .into_iter()
        .map(|r| (r.action, r.reason, r.values_count))
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

/// Without --reason, or over --max: exit 2, no output, no audit row.
async fn refused_reveals_are_not_audited(env: &TestEnv, reveal: &impl Fn(&[&str]) -> Output) {
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
        audit_rows(env).await.is_empty(),
        "a refused reveal is not audited as done"
    );
}

/// Three tokens revealed in order, audited as one row naming who, where and why.
async fn bulk_reveal_is_audited(env: &TestEnv, reveal: &impl Fn(&[&str]) -> Output) {
    let out = stdout_ok(&reveal(&[
        "reveal",
        "--column",
        "ip",
        "--reason",
        "TICKET-1 fraud review",
    ]));
    assert_eq!(out, "172.16.5.4\n172.16.5.5\n172.16.5.6\n");
    let rows = audit_rows(env).await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (
            r.action.as_str(),
            r.column_name.as_str(),
            r.reason.as_str(),
            r.values_count
        ),
        ("reveal", "ip", "TICKET-1 fraud review", 3)
    );
    assert_eq!(r.db_user, "postgres");
    assert!(r.has_os_user && r.has_host);
}

/// Forward lookup (`mask`, the value on stdin) of another spelling finds the row; a bad
/// value is not echoed.
async fn mask_finds_the_row_and_does_not_echo(env: &TestEnv) {
    let mask = |value: &str| {
        pipe_through(
            &mut env.cmd(&["mask", "--column", "ip", "--reason", "TICKET-2"]),
            &format!("{value}\n"),
        )
    };
    let token = stdout_ok(&mask("::ffff:172.16.5.5"));
    let user: String = env
        .scalar_with(
            "SELECT user_id FROM user_logins WHERE masked_ip = $1",
            &[&token.trim()],
        )
        .await;
    assert_eq!(user, "b");
    let out = mask("not-an-ip-secret");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !stderr(&out).contains("not-an-ip-secret"),
        "the value is not echoed"
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

/// A new KMS key on LocalStack; its id.
async fn create_kms_key() -> String {
    let kms = aws_sdk_kms::Client::new(&aws_sdk_config().await);
    kms.create_key()
        .description("sqs2pg it")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

/// KMS (LocalStack): keygen wraps a data key, run unwraps it at start-up; a relabelled blob
/// or a missing KMS key is refused (exit 2), an unreachable KMS is an outage (exit 1).
#[tokio::test(flavor = "multi_thread")]
async fn kms_wrapped_keys() {
    let env = TestEnv::new().await;
    let key_id = create_kms_key().await;
    let entry = stdout_ok(&env.run_cmd(&["keygen", "--kid", "kk", "--kms-key-id", &key_id]));
    let entry = entry.trim().to_owned();
    assert!(entry.starts_with("kk=kms:"), "{entry}");
    let run_with_keys = |keys: &str| {
        env.cmd(&["run", "--until-empty", "--wait-seconds", "1"])
            .env("SQS2PG_KEYS", keys)
            .output()
            .unwrap()
    };

    env.send(&[login("kms-user", "192.0.2.1", "kms-dev")]).await;
    let out = stdout_ok(&run_with_keys(&entry));
    assert_eq!(summary_numbers(&out)["loaded"], 1, "{out}");
    let token: String = env.scalar("SELECT masked_ip FROM user_logins").await;
    assert!(token.starts_with("v1:kk:"));
    let mut reveal = env.cmd(&["reveal", "--column", "ip", "--reason", "kms test"]);
    reveal.env("SQS2PG_KEYS", &entry);
    assert_eq!(
        stdout_ok(&pipe_through(&mut reveal, &format!("{token}\n"))),
        "192.0.2.1\n"
    );

    // The same blob under another kid: the encryption context no longer matches.
    let out = run_with_keys(&entry.replacen("kk=", "kx=", 1));
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

/// Login roles of this test in the three `migrate --roles` groups, and their connections.
struct Roles {
    names: [String; 3],
    ingest_url: String,
    revealer_url: String,
    ingest: Db,
    analyst: Db,
    revealer: Db,
}

/// `migrate --roles` (twice: it is idempotent), then one login role per group.
async fn create_login_roles(env: &TestEnv) -> Roles {
    stdout_ok(&env.run_cmd(&["migrate", "--roles"]));
    stdout_ok(&env.run_cmd(&["migrate", "--roles"]));
    let suffix = &env.queue_name[3..];
    let names = [
        format!("it_ingest_{suffix}"),
        format!("it_analyst_{suffix}"),
        format!("it_revealer_{suffix}"),
    ];
    let [ingest, analyst, revealer] = &names;
    env.db()
        .await
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
    Roles {
        ingest_url: url_as(ingest),
        revealer_url: url_as(revealer),
        ingest: connect(&url_as(ingest)).await,
        analyst: connect(&url_as(analyst)).await,
        revealer: connect(&url_as(revealer)).await,
        names: names.clone(),
    }
}

/// Whether the database refused for lack of privilege (not for any other reason).
fn denied(e: tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
}

/// migrate --roles: the ingest role can load but not read tokens back out of the rejects or
/// the audit; the analyst reads user_logins only; nobody but the owner changes the audit.
#[tokio::test(flavor = "multi_thread")]
async fn least_privilege_roles() {
    let env = TestEnv::new().await;
    let roles = create_login_roles(&env).await;

    // Ingest loads rows and rejects.
    env.send(&[login("r1", "10.3.3.3", "d"), "{bad".to_string()])
        .await;
    let s = env
        .drain_with(RunOptions::default().database_url(&roles.ingest_url))
        .await;
    assert_eq!((s.loaded, s.rejected), (1, 1));

    let (ing, an, rv) = (&roles.ingest, &roles.analyst, &roles.revealer);
    for sql in [
        "SELECT * FROM user_logins_rejects",
        "SELECT * FROM sqs2pg_reveal_audit",
    ] {
        assert!(
            denied(ing.query(sql, &[]).await.unwrap_err()),
            "ingest: {sql}"
        );
    }
    assert_eq!(an.rows("SELECT * FROM user_logins").await.len(), 1);
    for sql in [
        "SELECT * FROM user_logins_rejects",
        "SELECT * FROM sqs2pg_reveal_audit",
    ] {
        assert!(
            denied(an.query(sql, &[]).await.unwrap_err()),
            "analyst: {sql}"
        );
    }
    assert!(denied(
        an.execute("DELETE FROM user_logins", &[])
            .await
            .unwrap_err()
    ));

    // The revealer can reveal (which appends to the audit) but not rewrite the audit.
    let id: String = env
        .scalar("SELECT message_id FROM user_logins_rejects")
        .await;
    let out = env
        .cmd(&["reveal", "--reject", &id, "--reason", "roles test"])
        .env("DATABASE_URL", &roles.revealer_url)
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&out), "{bad\n");
    for sql in [
        "UPDATE sqs2pg_reveal_audit SET reason = 'x'",
        "DELETE FROM sqs2pg_reveal_audit",
        "TRUNCATE sqs2pg_reveal_audit",
    ] {
        for c in [rv, an, ing] {
            assert!(denied(c.execute(sql, &[]).await.unwrap_err()), "{sql}");
        }
    }
    assert_eq!(
        env.count("SELECT count(*) FROM sqs2pg_reveal_audit").await,
        1
    );
    drop_login_roles(&env, roles).await;
}

async fn drop_login_roles(env: &TestEnv, roles: Roles) {
    let Roles {
        names,
        ingest,
        analyst,
        revealer,
        ..
    } = roles;
    drop((ingest, analyst, revealer));
    let [ingest, analyst, revealer] = &names;
    env.db()
        .await
        .batch_execute(&format!("DROP OWNED BY {ingest}, {analyst}, {revealer}; DROP ROLE {ingest}, {analyst}, {revealer};"))
        .await
        .unwrap();
}
