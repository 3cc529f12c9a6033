//! `sqs2pg forget --subject`: one person's rows in two mapped tables (one subject column
//! plain, one a token) and their quarantined bodies (one that parsed, one that is not JSON
//! but names them) deleted in one audited transaction; everyone else's rows and tokens
//! untouched, even where they share a token; a second run deletes nothing.

use std::io::Write;
use std::process::Stdio;

use crate::helpers::*;

const DDL: &str = "
CREATE TABLE accounts(email text NOT NULL, name text);
CREATE TABLE orders(order_id text NOT NULL, customer_email text, client_ip text, amount numeric(10,2));
";

const MAPPING: &str = r#"[[route]]
name = "account"
table = "accounts"
when = { meta = "envelope:detail-type", equals = "AccountOpened" }
subject = "email"

[route.columns]
email = { path = "/email", required = true }
name  = { path = "/name" }

# A second route into the same table, with the same subject.
[[route]]
name = "account_update"
table = "accounts"
when = { meta = "envelope:detail-type", equals = "AccountUpdated" }
subject = "email"

[route.columns]
email = { path = "/email", required = true }
name  = { path = "/name" }

[[route]]
name = "order"
table = "orders"
when = { meta = "envelope:detail-type", equals = "OrderPlaced" }
subject = "customer_email"

[route.columns]
order_id       = { path = "/order/id", required = true }
customer_email = { path = "/customer/email", token = "email" }
client_ip      = { path = "/ip", as = "ip", token = "ip" }
amount         = { path = "/order/amount" }
"#;

const ANN: &str = "ann.forget@example.com";
const BOB: &str = "bob.stays@example.com";

fn order(id: &str, email: &str, amount: &str) -> String {
    shop_event(
        "OrderPlaced",
        &format!(
            r#"{{"order":{{"id":"{id}","amount":{amount}}},"customer":{{"email":"{email}"}},"ip":"10.9.9.9"}}"#
        ),
    )
}

/// Ann and Bob loaded through the mapping: an account each, two orders of Ann's and one of
/// Bob's (all from one ip), a quarantined order of Ann's and a broken body naming her, and
/// one of Bob's quarantined.
async fn loaded() -> (TestEnv, std::path::PathBuf) {
    let env = TestEnv::new().await;
    env.db().await.batch_execute(DDL).await.expect("DDL");
    let path = std::env::temp_dir().join(format!("{}-forget.toml", env.queue_name));
    std::fs::write(&path, MAPPING).expect("write the mapping");
    env.send(&[
        shop_event(
            "AccountOpened",
            &format!(r#"{{"email":"{ANN}","name":"Ann"}}"#),
        ),
        shop_event(
            "AccountOpened",
            &format!(r#"{{"email":"{BOB}","name":"Bob"}}"#),
        ),
        order("a-1", ANN, "1"),
        order("a-2", ANN, "2"),
        order("b-1", BOB, "3"),
        order("a-3", ANN, r#""not a number""#),
        order("b-2", BOB, r#""not a number""#),
        format!(r#"{{"detail":{{"customer":{{"email":"{ANN}"}}}} broken"#),
    ])
    .await;
    stdout_ok(&env.run_cmd(&[
        "run",
        "--until-empty",
        "--wait-seconds",
        "1",
        "--envelope",
        "eventbridge",
        "--mapping",
        path.to_str().unwrap(),
    ]));
    (env, path)
}

fn forget(env: &TestEnv, path: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "forget",
        "--envelope",
        "eventbridge",
        "--mapping",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.run_cmd(&args)
}

async fn counts(env: &TestEnv) -> [i64; 3] {
    [
        env.count("SELECT count(*) FROM accounts").await,
        env.count("SELECT count(*) FROM orders").await,
        env.count("SELECT count(*) FROM user_logins_rejects").await,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_erases_one_subject_everywhere_and_nobody_else() {
    let (env, path) = loaded().await;
    assert_eq!(counts(&env).await, [2, 3, 3]);
    // The two quarantined orders carry their subject's token, found without opening them;
    // the broken body carries none and is opened.
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects WHERE subject_token IS NOT NULL")
            .await,
        2
    );
    let bobs_before: Vec<String> = env
        .column(
            "SELECT order_id || customer_email || client_ip FROM orders WHERE order_id LIKE 'b-%'",
        )
        .await;

    let dry = stdout_ok(&forget(
        &env,
        &path,
        &["--subject", ANN, "--reason", "GDPR-1", "--dry-run"],
    ));
    assert!(dry.contains("would delete 2 from public.orders"), "{dry}");
    // Two routes load accounts: its rows are counted once.
    assert!(dry.contains("would delete 1 from public.accounts"), "{dry}");
    assert_eq!(counts(&env).await, [2, 3, 3], "a dry run deletes nothing");

    let out = forget(&env, &path, &["--subject", ANN, "--reason", "GDPR-1"]);
    let printed = stdout_ok(&out);
    for line in [
        "deleted 1 from public.accounts",
        "deleted 2 from public.orders",
        "deleted 2 from public.user_logins_rejects",
    ] {
        assert!(printed.contains(line), "{line} in {printed}");
    }
    assert_eq!(counts(&env).await, [1, 1, 1]);
    let bobs_after: Vec<String> = env
        .column(
            "SELECT order_id || customer_email || client_ip FROM orders WHERE order_id LIKE 'b-%'",
        )
        .await;
    assert_eq!(
        bobs_after, bobs_before,
        "Bob's row and tokens, ip shared with Ann's, untouched"
    );
    let left: Vec<String> = env.column("SELECT email FROM accounts").await;
    assert_eq!(left, [BOB]);

    let audit: Vec<String> = env
        .column("SELECT action || ' ' || reason || ' ' || fingerprints[1] || ' ' || counts::text FROM sqs2pg_reveal_audit")
        .await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let fingerprint = sqs2pg::db::audit::fingerprint(ANN);
    assert!(
        audit[0].starts_with(&format!("forget GDPR-1 {fingerprint} ")),
        "{audit:?}"
    );
    assert!(audit[0].contains(r#""public.orders": 2"#), "{audit:?}");

    // Idempotent: nothing left to delete.
    let again = stdout_ok(&forget(
        &env,
        &path,
        &["--subject", ANN, "--reason", "GDPR-1"],
    ));
    assert!(
        again.lines().all(|l| l.starts_with("deleted 0 ")),
        "{again}"
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_reads_the_subject_from_stdin_needs_a_reason_and_logs_no_value() {
    let (env, path) = loaded().await;
    let no_reason = forget(&env, &path, &["--subject", ANN]);
    assert_eq!(no_reason.status.code(), Some(2));
    assert!(
        stderr(&no_reason).contains("--reason"),
        "{}",
        stderr(&no_reason)
    );

    let mut child = env
        .cmd(&[
            "forget",
            "--envelope",
            "eventbridge",
            "--mapping",
            path.to_str().unwrap(),
            "--subject",
            "-",
            "--reason",
            "GDPR-2",
            "--output",
            "json",
        ])
        .env("RUST_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn forget");
    writeln!(child.stdin.take().expect("stdin"), "{ANN}").expect("write the subject");
    let out = child.wait_with_output().expect("forget");
    let json: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).expect("JSON");
    assert_eq!(json["tables"]["public.orders"], 2, "{json}");
    assert_eq!(json["dry_run"], false);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        !all.contains("ann.forget"),
        "the subject in the output:\n{all}"
    );
    assert_eq!(counts(&env).await, [1, 1, 1]);
    let _ = std::fs::remove_file(&path);
}
