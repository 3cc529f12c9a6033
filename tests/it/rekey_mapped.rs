//! `rekey --mapping` walks every token column of every route, not the login's two: three
//! mapped tables under two contexts (`email`, `ip`), and the rejects' sealed bodies and
//! subject tokens, rotated twice (k1 → k2, then k2 → k3 with k1 dropped), after which a
//! keyring of k3 alone reveals every token and `forget` still finds the quarantined body by
//! its subject token.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::helpers::*;
use crate::rekey::{K1, K2};

/// A third fixed key: 0x03 bytes.
const K3: &str =
    "k3=AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw==";

const DDL: &str = "
CREATE TABLE accounts(email text NOT NULL, signup_ip text);
CREATE TABLE orders(order_id text NOT NULL, customer_email text, amount numeric(10,2));
CREATE TABLE visits(visit_id text NOT NULL, client_ip varchar(80));
";

const MAPPING: &str = r#"[[route]]
name = "account"
table = "accounts"
when = { path = "/kind", equals = "account" }

[route.columns]
email     = { path = "/email", token = "email", required = true }
signup_ip = { path = "/ip", as = "ip", token = "ip" }

[[route]]
name = "order"
table = "orders"
when = { path = "/kind", equals = "order" }
subject = "customer_email"

[route.columns]
order_id       = { path = "/id", required = true }
customer_email = { path = "/email", token = "email" }
amount         = { path = "/amount" }

[[route]]
name = "visit"
table = "visits"
when = { path = "/kind", equals = "visit" }

[route.columns]
visit_id  = { path = "/id", required = true }
client_ip = { path = "/ip", as = "ip", token = "ip" }
"#;

const ANN: &str = "ann.rotates@example.com";
const BOB: &str = "bob.rotates@example.com";

/// Every token column, its context, and the values loaded into it.
const COLUMNS: [(&str, &str, &str, &[&str]); 4] = [
    ("accounts", "email", "email", &[ANN, BOB]),
    ("accounts", "signup_ip", "ip", &["10.1.0.1", "2001:db8::1"]),
    ("orders", "customer_email", "email", &[ANN, BOB]),
    ("visits", "client_ip", "ip", &["10.1.0.1", "192.0.2.7"]),
];

/// Ann's and Bob's accounts, orders and visits loaded under k1, and one order of Ann's
/// quarantined (its amount is not a number) with her subject token.
async fn loaded_under_k1() -> (TestEnv, PathBuf) {
    let env = TestEnv::new().await;
    env.db().await.batch_execute(DDL).await.expect("DDL");
    let path = std::env::temp_dir().join(format!("{}-rekey.toml", env.queue_name));
    std::fs::write(&path, MAPPING).expect("write the mapping");
    env.send(&[
        format!(r#"{{"kind":"account","email":"{ANN}","ip":"10.1.0.1"}}"#),
        format!(r#"{{"kind":"account","email":"{BOB}","ip":"2001:DB8::1"}}"#),
        format!(r#"{{"kind":"order","id":"o-1","email":"{ANN}","amount":12.5}}"#),
        format!(r#"{{"kind":"order","id":"o-2","email":"{BOB}","amount":3}}"#),
        format!(r#"{{"kind":"order","id":"o-3","email":"{ANN}","amount":"twelve"}}"#),
        r#"{"kind":"visit","id":"v-1","ip":"10.1.0.1"}"#.to_owned(),
        r#"{"kind":"visit","id":"v-2","ip":"192.0.2.7"}"#.to_owned(),
    ])
    .await;
    let mapping = path.to_str().expect("utf-8 path");
    let run = [
        "run",
        "--until-empty",
        "--wait-seconds",
        "1",
        "--mapping",
        mapping,
    ];
    stdout_ok(&with_keys(&env, K1, &run));
    (env, path)
}

/// The binary with `args` and the keyring `keys`.
fn with_keys(env: &TestEnv, keys: &str, args: &[&str]) -> Output {
    env.cmd(args)
        .env("SQS2PG_KEYS", keys)
        .output()
        .expect("spawn sqs2pg")
}

fn rekey(env: &TestEnv, keys: &str, path: &Path) -> String {
    let mapping = path.to_str().expect("utf-8 path");
    stdout_ok(&with_keys(env, keys, &["rekey", "--mapping", mapping]))
}

/// How many values of every token column, the rejects' bodies and subject tokens included,
/// are not under `kid`.
async fn not_under(env: &TestEnv, kid: &str) -> i64 {
    let mut n = 0;
    let prefix = format!("v1:{kid}:%");
    let columns = COLUMNS.iter().map(|(t, c, _, _)| (*t, *c)).chain([
        ("user_logins_rejects", "body_ciphertext"),
        ("user_logins_rejects", "subject_token"),
    ]);
    for (table, column) in columns {
        let sql = format!("SELECT count(*) FROM {table} WHERE {column} NOT LIKE '{prefix}'");
        n += env.count(&sql).await;
    }
    n
}

/// What `reveal --column CONTEXT` gives for every token of `table.column`, sorted.
async fn revealed(
    env: &TestEnv,
    keys: &str,
    table: &str,
    column: &str,
    context: &str,
) -> Vec<String> {
    let tokens: Vec<String> = env.column(&format!("SELECT {column} FROM {table}")).await;
    let mut cmd = env.cmd(&["reveal", "--column", context, "--reason", "rotation check"]);
    let out = pipe_through(cmd.env("SQS2PG_KEYS", keys), &(tokens.join("\n") + "\n"));
    let mut values: Vec<String> = stdout_ok(&out).lines().map(str::to_owned).collect();
    values.sort();
    values
}

#[tokio::test(flavor = "multi_thread")]
async fn two_rotations_over_three_mapped_tables_leave_every_token_revealable_by_the_new_key() {
    let (env, path) = loaded_under_k1().await;
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects WHERE subject_token IS NOT NULL")
            .await,
        1,
        "Ann's quarantined order carries her subject token"
    );
    assert_eq!(not_under(&env, "k1").await, 0);

    let first = rekey(&env, &format!("{K2}\n{K1}"), &path);
    let n = summary_numbers(&first);
    assert_eq!(
        (
            n["rows updated"],
            n["bodies re-sealed"],
            n["still under old keys"]
        ),
        (6, 1, 0),
        "{first}"
    );
    for (table, rows) in [("accounts", 2), ("orders", 2), ("visits", 2)] {
        assert_eq!(n[&format!("rows updated/{table}")], rows, "{first}");
    }
    assert_eq!(not_under(&env, "k2").await, 0, "{first}");

    // k1 leaves the keyring: nothing may still need it.
    let second = rekey(&env, &format!("{K3}\n{K2}"), &path);
    let n = summary_numbers(&second);
    assert_eq!(
        (
            n["rows updated"],
            n["bodies re-sealed"],
            n["still under old keys"]
        ),
        (6, 1, 0),
        "{second}"
    );
    assert_eq!(not_under(&env, "k3").await, 0, "{second}");

    for (table, column, context, values) in COLUMNS {
        let mut expected: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        expected.sort();
        assert_eq!(
            revealed(&env, K3, table, column, context).await,
            expected,
            "{table}.{column} under {context}"
        );
    }
    let subject_token: String = env
        .scalar("SELECT subject_token FROM user_logins_rejects")
        .await;
    assert_eq!(subject_token, masker(K3).token("subject", ANN));

    // forget opens only the bodies without a subject token: finding Ann's quarantined
    // order proves her token was rekeyed along with the body.
    let mapping = path.to_str().expect("utf-8 path");
    let forget = [
        "forget",
        "--mapping",
        mapping,
        "--subject",
        ANN,
        "--reason",
        "GDPR-9",
        "--dry-run",
    ];
    let dry = stdout_ok(&with_keys(&env, K3, &forget));
    assert!(
        dry.contains("would delete 1 from public.user_logins_rejects"),
        "{dry}"
    );
    assert!(dry.contains("would delete 1 from public.orders"), "{dry}");
    let _ = std::fs::remove_file(&path);
}
