//! `reveal --column CONTEXT` and `mask --column CONTEXT` on a mapping's token context (the
//! contract's "Mappings"): the text's token made and opened through the binary, audited under
//! its context, opening under no other context, and never a raw value in the logs.

use sha2::{Digest, Sha256};

use crate::helpers::{masker, offer_stdin, pipe_through, stderr, stdout_ok, TestEnv, KEYS};

const EMAILS: [&str; 2] = ["zoë.secret@example.com", "bob+secret@example.org"];

/// Hex SHA-256, computed here independently of the product.
fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The (action, column_name, values_count, fingerprints) of every audit row, in order.
async fn audits(env: &TestEnv) -> Vec<(String, String, i32, Vec<String>)> {
    env.rows("SELECT action, column_name, values_count, fingerprints FROM sqs2pg_reveal_audit ORDER BY id")
        .await
        .iter()
        .map(|r| {
            (
                r.get("action"),
                r.get("column_name"),
                r.get("values_count"),
                r.get("fingerprints"),
            )
        })
        .collect()
}

/// The tokens `mask --column email` prints for [`EMAILS`] (a blank line between them).
fn mask_emails(env: &TestEnv, reason: &str) -> Vec<String> {
    let out = pipe_through(
        &mut env.cmd(&["mask", "--column", "email", "--reason", reason]),
        &format!("{}\n\n{}\n", EMAILS[0], EMAILS[1]),
    );
    let lines: Vec<String> = stdout_ok(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "one line per input line: {lines:?}");
    assert_eq!(lines[1], "", "a blank line stays blank");
    vec![lines[0].clone(), lines[2].clone()]
}

#[tokio::test(flavor = "multi_thread")]
async fn mask_and_reveal_round_trip_an_email_context_audited() {
    let env = TestEnv::new().await;
    let tokens = mask_emails(&env, "DSAR-1");
    // The very tokens a mapping's `token = "email"` column holds, not device_id's.
    let mut m = masker(KEYS);
    for (token, email) in tokens.iter().zip(EMAILS) {
        assert_eq!(token, &m.token("email", email));
        assert_ne!(token, &m.token("device_id", email));
    }

    let out = pipe_through(
        &mut env.cmd(&["reveal", "--column", "email", "--reason", "DSAR-2"]),
        &format!("{}\n\n{}\n", tokens[0], tokens[1]),
    );
    assert_eq!(stdout_ok(&out), format!("{}\n\n{}\n", EMAILS[0], EMAILS[1]));

    let prints: Vec<String> = tokens.iter().map(|t| sha256_hex(t)).collect();
    assert_eq!(
        audits(&env).await,
        [
            ("mask".into(), "email".into(), 2, prints.clone()),
            ("reveal".into(), "email".into(), 2, prints),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_token_opens_only_as_email() {
    let env = TestEnv::new().await;
    let tokens = mask_emails(&env, "DSAR-3");

    let out = pipe_through(
        &mut env.cmd(&["reveal", "--column", "ip", "--reason", "DSAR-4"]),
        &format!("{}\n", tokens[0]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\n");
    assert!(
        stderr(&out).contains("sqs2pg reveal: line 1: token does not open for column ip: wrong column, wrong key for its id, or a corrupted token"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(EMAILS[0]), "{}", stderr(&out));

    // Without --column: ip, device_id and body are tried, so only --mapping's contexts
    // open it.
    let out = pipe_through(
        &mut env.cmd(&["reveal", "--reason", "DSAR-5"]),
        &format!("{}\n", tokens[1]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let mapping = std::env::temp_dir().join(format!("sqs2pg-contexts-{}.toml", env.queue_name));
    std::fs::write(
        &mapping,
        "[[route]]\nname = \"order\"\ntable = \"orders\"\n[route.columns]\n\
         customer_email = { path = \"/customer/email\", token = \"email\" }\n",
    )
    .unwrap();
    let out = pipe_through(
        env.cmd(&["reveal", "--reason", "DSAR-6"])
            .env("SQS2PG_MAPPING", &mapping),
        &format!("{}\n{}\n", tokens[1], tokens[0]),
    );
    assert_eq!(stdout_ok(&out), format!("{}\n{}\n", EMAILS[1], EMAILS[0]));
    std::fs::remove_file(&mapping).unwrap();
    let columns: Vec<String> = audits(&env).await.into_iter().map(|a| a.1).collect();
    assert_eq!(columns, ["email", "ip", "any", "any"]);
}

/// A context name the mapping file would refuse is refused (exit 2, naming --column), as is
/// `mask --column body`; `device-id` still names device_id.
#[tokio::test(flavor = "multi_thread")]
async fn context_names_are_checked_as_the_mapping_checks_them() {
    let env = TestEnv::new().await;
    for args in [
        ["reveal", "--column", "E-mail"],
        ["reveal", "--column", "2fa"],
        ["mask", "--column", "e mail"],
        ["mask", "--column", "body"],
    ] {
        let out = offer_stdin(
            &mut env.cmd(&[&args[..], &["--reason", "r"]].concat()),
            "x\n",
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--column"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        env.count("SELECT count(*) FROM sqs2pg_reveal_audit").await,
        0
    );
    let out = pipe_through(
        &mut env.cmd(&["mask", "--column", "device-id", "--reason", "r"]),
        "dev-7\n",
    );
    assert_eq!(
        stdout_ok(&out).trim_end(),
        masker(KEYS).token("device_id", "dev-7")
    );
}

/// At RUST_LOG=trace, `mask` and `reveal` of an email context print the answer on stdout
/// and no raw value on stderr.
#[tokio::test(flavor = "multi_thread")]
async fn no_raw_email_in_stderr_at_trace() {
    let env = TestEnv::new().await;
    let run = |args: &[&str], input: &str| {
        let mut cmd = env.cmd(&[args, &["--reason", "DSAR-7"][..]].concat());
        pipe_through(cmd.env("RUST_LOG", "trace"), input)
    };
    let out = run(&["mask", "--column", "email"], &(EMAILS.join("\n") + "\n"));
    let tokens = stdout_ok(&out);
    for email in EMAILS {
        assert!(!stderr(&out).contains(email), "mask: {}", stderr(&out));
        assert!(!tokens.contains(email));
    }
    let out = run(&["reveal", "--column", "email"], &tokens);
    assert_eq!(stdout_ok(&out), EMAILS.join("\n") + "\n");
    // A token under another context: the error names the line, not the value.
    let out2 = run(&["reveal", "--column", "phone"], &tokens);
    assert_eq!(out2.status.code(), Some(1));
    for email in EMAILS {
        assert!(!stderr(&out).contains(email), "reveal: {}", stderr(&out));
        assert!(!stderr(&out2).contains(email), "reveal: {}", stderr(&out2));
    }
}
