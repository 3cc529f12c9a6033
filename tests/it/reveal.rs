//! What `reveal` and `mask` leave behind and show: an audit that says whose data was opened
//! (the SHA-256 of each token, or of the message id for a quarantined body), values taken
//! from stdin only, and output that cannot drive the terminal.

use sha2::{Digest, Sha256};

use crate::helpers::{login, offer_stdin, pipe_through, stderr, stdout_ok, TestEnv};

/// Hex SHA-256, computed here independently of the product.
fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Three users' logins, drained; returns their ip tokens in user order a, b, c.
async fn three_users(env: &TestEnv) -> Vec<String> {
    env.send(&[
        login("a", "172.16.7.1", "dev-a"),
        login("b", "172.16.7.2", "dev-b"),
        login("c", "172.16.7.3", "dev-c"),
    ])
    .await;
    env.drain().await;
    env.column("SELECT masked_ip FROM user_logins ORDER BY user_id")
        .await
}

/// The (action, reason) of every audit row whose fingerprints hold `fingerprint`.
async fn audits_of(env: &TestEnv, fingerprint: &str) -> Vec<(String, String)> {
    env.db()
        .await
        .rows_with(
            "SELECT action, reason FROM sqs2pg_reveal_audit WHERE $1 = ANY(fingerprints) ORDER BY id",
            &[&fingerprint],
        )
        .await
        .iter()
        .map(|r| (r.get("action"), r.get("reason")))
        .collect()
}

/// "Was this user's data revealed, when, by whom, why": one query joining the audit to the
/// user's tokens, with the hash Postgres computes itself.
async fn reveals_of_user(env: &TestEnv, user_id: &str) -> Vec<(String, String)> {
    env.db()
        .await
        .rows_with(
            "SELECT DISTINCT a.id, a.reason, a.db_user FROM sqs2pg_reveal_audit a
               JOIN user_logins u
                 ON encode(sha256(convert_to(u.masked_ip, 'UTF8')), 'hex') = ANY(a.fingerprints)
              WHERE u.user_id = $1 ORDER BY a.id",
            &[&user_id],
        )
        .await
        .iter()
        .map(|r| (r.get("reason"), r.get("db_user")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_fingerprints_say_whose_tokens_were_revealed() {
    let env = TestEnv::new().await;
    let tokens = three_users(&env).await;
    let input = format!("{}\n\n{}\n", tokens[0], tokens[1]);
    let out = pipe_through(
        &mut env.cmd(&["reveal", "--column", "ip", "--reason", "TICKET-7"]),
        &input,
    );
    assert_eq!(stdout_ok(&out), "172.16.7.1\n\n172.16.7.2\n");

    for token in &tokens[..2] {
        assert_eq!(
            audits_of(&env, &sha256_hex(token)).await,
            [("reveal".to_string(), "TICKET-7".to_string())]
        );
    }
    assert!(audits_of(&env, &sha256_hex(&tokens[2])).await.is_empty());
    assert_eq!(
        reveals_of_user(&env, "b").await,
        [("TICKET-7".to_string(), "postgres".to_string())]
    );
    assert!(
        reveals_of_user(&env, "c").await.is_empty(),
        "c's token was not on stdin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_fingerprints_name_the_reject_opened_and_the_tokens_masked() {
    let env = TestEnv::new().await;
    let tokens = three_users(&env).await;
    env.send(&["not json, user d"]).await;
    env.drain().await;
    let id: String = env
        .scalar("SELECT message_id FROM user_logins_rejects")
        .await;
    stdout_ok(&env.run_cmd(&["reveal", "--reject", &id, "--reason", "TICKET-8"]));
    assert_eq!(
        audits_of(&env, &sha256_hex(&id)).await,
        [("reveal_reject".to_string(), "TICKET-8".to_string())]
    );

    let out = pipe_through(
        &mut env.cmd(&["mask", "--column", "ip", "--reason", "TICKET-9"]),
        "172.16.7.3\n",
    );
    assert_eq!(stdout_ok(&out).trim(), tokens[2]);
    assert_eq!(
        audits_of(&env, &sha256_hex(&tokens[2])).await,
        [("mask".to_string(), "TICKET-9".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mask_reads_values_on_stdin_one_a_line() {
    let env = TestEnv::new().await;
    let tokens = three_users(&env).await;
    // Another spelling of b's address, a blank line, c's.
    let out = pipe_through(
        &mut env.cmd(&["mask", "--column", "ip", "--reason", "INC-1"]),
        "::ffff:172.16.7.2\n\n172.16.7.3\n",
    );
    assert_eq!(stdout_ok(&out), format!("{}\n\n{}\n", tokens[1], tokens[2]));
    assert_eq!(
        env.count(
            "SELECT count(*) FROM sqs2pg_reveal_audit WHERE action = 'mask' AND values_count = 2"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mask_refuses_a_value_in_argv_or_a_bad_ip_without_echoing_it() {
    let env = TestEnv::new().await;
    let out = offer_stdin(
        &mut env.cmd(&[
            "mask",
            "--column",
            "ip",
            "--reason",
            "INC-2",
            "203.0.113.77",
        ]),
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("stdin"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("203.0.113.77"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    let out = pipe_through(
        &mut env.cmd(&["mask", "--column", "ip", "--reason", "INC-2"]),
        "203.0.113.8\nnot-an-ip-secret\n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 2 "), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not-an-ip-secret"));
    assert!(out.stdout.is_empty(), "nothing masked when a line is bad");
    assert_eq!(
        env.count("SELECT count(*) FROM sqs2pg_reveal_audit").await,
        0,
        "a refused mask is not audited as done"
    );
}

/// An audit table from before fingerprints (the column dropped, one old row) is upgraded by
/// `sqs2pg migrate`, keeping the old row with no fingerprints.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_adds_fingerprints_to_an_older_audit() {
    let env = TestEnv::new().await;
    let tokens = three_users(&env).await;
    env.db()
        .await
        .batch_execute(
            "ALTER TABLE sqs2pg_reveal_audit DROP COLUMN fingerprints;
             INSERT INTO sqs2pg_reveal_audit(action, column_name, reason, values_count)
             VALUES ('reveal', 'ip', 'OLD-1', 3)",
        )
        .await
        .expect("make an old audit");
    stdout_ok(&env.run_cmd(&["migrate"]));
    let out = pipe_through(
        &mut env.cmd(&["reveal", "--column", "ip", "--reason", "NEW-1"]),
        &format!("{}\n", tokens[0]),
    );
    assert_eq!(stdout_ok(&out), "172.16.7.1\n");
    assert_eq!(
        env.count("SELECT count(*) FROM sqs2pg_reveal_audit WHERE reason = 'OLD-1' AND fingerprints = '{}'")
            .await,
        1
    );
    assert_eq!(audits_of(&env, &sha256_hex(&tokens[0])).await.len(), 1);
}

/// A quarantined body with an escape sequence, a bell and a line break: printed escaped, on
/// one line, unless `--raw`.
#[tokio::test(flavor = "multi_thread")]
async fn reveal_escapes_control_characters_unless_raw() {
    let env = TestEnv::new().await;
    let body = "not json \u{1b}]0;owned\u{7}\r\nsecond line";
    let mut sink = env.sink().await;
    let record = sink.record("m-ctl", body);
    sink.write(&[record]).await;

    let reveal = |raw: &[&str]| {
        let mut args = vec!["reveal", "--reject", "m-ctl", "--reason", "INC-3"];
        args.extend_from_slice(raw);
        stdout_ok(&env.run_cmd(&args))
    };
    assert_eq!(
        reveal(&[]),
        "not json \\u{1b}]0;owned\\u{7}\\r\\nsecond line\n"
    );
    assert_eq!(reveal(&["--raw"]), format!("{body}\n"));

    let sealed: String = env
        .scalar("SELECT body_ciphertext FROM user_logins_rejects")
        .await;
    let out = pipe_through(
        &mut env.cmd(&["reveal", "--column", "body", "--reason", "INC-3"]),
        &format!("{sealed}\n"),
    );
    assert_eq!(stdout_ok(&out).lines().count(), 1, "one line per token");
    assert!(!stdout_ok(&out).contains('\u{1b}'));
}

/// `reveal` writes its audit row before any output, so with the database unreachable it
/// opens nothing: it fails, says why, and prints not one value.
#[tokio::test(flavor = "multi_thread")]
async fn reveal_with_the_database_unreachable_prints_nothing() {
    let env = TestEnv::new().await;
    let tokens = three_users(&env).await;
    let mut cmd = env.cmd(&["reveal", "--column", "ip", "--reason", "INC-1 no database"]);
    cmd.env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres");
    let out = pipe_through(&mut cmd, &format!("{}\n", tokens[0]));
    assert!(!out.status.success(), "reveal without its audit must fail");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "nothing revealed without the audit row"
    );
    assert!(
        stderr(&out).contains("127.0.0.1:1"),
        "the error names the database it could not reach: {}",
        stderr(&out)
    );
}
