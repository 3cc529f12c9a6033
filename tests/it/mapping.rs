//! `sqs2pg mapping check` against a real database: a fitting mapping compiles, the built-in
//! login mapping fits a migrated database, and each kind of mistake is refused with exit 2
//! naming the file position, the route and the column.

use std::path::PathBuf;
use std::process::Output;

use crate::helpers::*;

/// A table that a fitting mapping can load, and that each test below breaks in one way.
const DDL: &str = "
CREATE SCHEMA shop;
CREATE DOMAIN shop.email AS varchar(60) NOT NULL;
CREATE TABLE shop.orders(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id text NOT NULL UNIQUE,
  amount numeric(10,2),
  customer_email shop.email,
  client_ip varchar(40),
  placed_at timestamptz,
  local_at timestamp,
  score float8,
  slug text GENERATED ALWAYS AS (lower(order_id)) STORED,
  region text NOT NULL,
  items jsonb,
  created_at timestamptz NOT NULL DEFAULT now());
";

/// Fits [`DDL`]; line numbers below count from its first line.
const ORDERS: &str = r#"[[route]]
name = "order"
table = "shop.orders"
key = ["order_id"]
on_conflict = "ignore"
subject = "customer_email"

[route.columns]
order_id       = { path = "/order/id", required = true }
amount         = { path = "/order/amount" }
customer_email = { path = "/customer/email", token = "email" }
region         = { path = "/region" }
items          = { path = "/order/items" }
"#;

/// A test database holding [`DDL`] and the mapping `text` in a file of this test's own.
async fn setup(text: &str) -> (TestEnv, PathBuf) {
    let env = TestEnv::new().await;
    env.db().await.batch_execute(DDL).await.expect("DDL");
    let path = std::env::temp_dir().join(format!("{}-mapping.toml", env.queue_name));
    std::fs::write(&path, text).expect("write the mapping");
    (env, path)
}

fn check(env: &TestEnv, path: &std::path::Path) -> Output {
    env.run_cmd(&["mapping", "check", "--mapping", &path.display().to_string()])
}

/// Runs `mapping check` on `text` and asserts exit 2 with every piece of `want` (`FILE`
/// stands for the mapping's path) in stderr.
async fn refused(text: &str, want: &[&str]) {
    let (env, path) = setup(text).await;
    let out = check(&env, &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    for w in want {
        let w = w.replace("FILE", &path.display().to_string());
        assert!(stderr.contains(&w), "{w:?} not in stderr: {stderr}");
    }
}

fn with_column(entry: &str) -> String {
    format!("{ORDERS}{entry}\n")
}

#[tokio::test]
async fn a_fitting_mapping_checks_clean_and_says_how_each_column_is_filled() {
    let (env, path) = setup(ORDERS).await;
    let out = check(&env, &path);
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "route order (every event) → shop.orders, key (order_id) on conflict ignore, subject customer_email",
        "  amount numeric(10,2) ← path \"/order/amount\" → exact decimal",
        "  customer_email shop.email ← path \"/customer/email\" → token \"email\" [not null]",
        "ok: 1 route(s) fit the database",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} not in: {stdout}");
    }
}

#[tokio::test]
async fn the_built_in_login_mapping_fits_a_migrated_database() {
    let env = TestEnv::new().await;
    let out = env.run_cmd(&["mapping", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("route login (every event) → public.user_logins, subject user_id"),
        "{stdout}"
    );
    for line in [
        "  user_id character varying(128) ← path \"/user_id\" → text [required, non-empty, strict]",
        "  masked_ip character varying(256) ← path \"/ip\" → token \"ip\" of an address [required, strict], reasons name \"ip\"",
        "  create_date date ← meta message_time → date (UTC)",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} not in: {stdout}");
    }
    let printed = env.run_cmd(&["mapping", "print"]);
    assert_eq!(printed.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&printed.stdout), LOGIN_MAPPING);
}

#[tokio::test]
async fn a_column_that_does_not_exist_is_refused() {
    refused(
        &with_column("amout = { path = \"/x\" }"),
        &["FILE:14:1: route \"order\", column \"amout\": shop.orders has no column"],
    )
    .await;
}

#[tokio::test]
async fn a_not_null_column_without_source_or_default_is_refused() {
    let text = ORDERS.replace("region         = { path = \"/region\" }\n", "");
    refused(&text, &["FILE:3:9: route \"order\", column \"region\": shop.orders.region is NOT NULL without a default"]).await;
}

#[tokio::test]
async fn a_generated_column_mapped_is_refused() {
    refused(
        &with_column("slug = { path = \"/s\" }"),
        &["FILE:14:1: route \"order\", column \"slug\": is a generated column"],
    )
    .await;
}

#[tokio::test]
async fn an_identity_column_mapped_is_refused() {
    refused(
        &with_column("id = { path = \"/n\" }"),
        &["FILE:14:1: route \"order\", column \"id\": is an identity column"],
    )
    .await;
}

#[tokio::test]
async fn a_type_with_no_conversion_is_refused() {
    refused(
        &with_column("score = { path = \"/s\" }"),
        &["FILE:14:1: route \"order\", column \"score\": type double precision has no conversion"],
    )
    .await;
    refused(
        &with_column("local_at = { path = \"/t\" }"),
        &["FILE:14:1: route \"order\", column \"local_at\": timestamp without time zone"],
    )
    .await;
}

#[tokio::test]
async fn a_token_column_too_narrow_for_its_tokens_is_refused() {
    refused(
        &with_column("client_ip = { path = \"/ip\", as = \"ip\", token = \"ip\" }"),
        &["FILE:14:1: route \"order\", column \"client_ip\": character varying(40) is too narrow for its tokens: an address's token needs at least 49 characters"],
    )
    .await;
}

#[tokio::test]
async fn a_key_without_a_unique_index_on_exactly_its_columns_is_refused() {
    let text = ORDERS.replace("key = [\"order_id\"]", "key = [\"order_id\", \"amount\"]");
    refused(&text, &["FILE:4:7: route \"order\": shop.orders has no unique index (nor primary key) on exactly (order_id, amount)"]).await;
}

#[tokio::test]
async fn a_subject_that_is_not_a_mapped_column_is_refused() {
    let text = ORDERS.replace("subject = \"customer_email\"", "subject = \"placed_at\"");
    refused(
        &text,
        &["FILE:6:11: route \"order\": subject \"placed_at\" is not a column of [route.columns]"],
    )
    .await;
}

#[tokio::test]
async fn a_route_that_can_never_be_reached_is_refused() {
    let text = format!("{ORDERS}\n[[route]]\nname = \"late\"\nskip = true\n");
    refused(&text, &["FILE:16:8: route \"late\" can never be reached: route \"order\" before it has no `when`"]).await;
}

#[tokio::test]
async fn a_table_that_does_not_exist_is_refused() {
    let text = ORDERS.replace("shop.orders", "shop.ordrs");
    refused(
        &text,
        &["FILE:3:9: route \"order\": table shop.ordrs does not exist"],
    )
    .await;
}

#[tokio::test]
async fn an_unknown_key_is_refused_with_its_place() {
    let text = ORDERS.replace("table = ", "tabel = ");
    refused(
        &text,
        &["FILE:3:1: route \"order\": unknown key \"tabel\" (expected one of name, table, when"],
    )
    .await;
}

#[tokio::test]
async fn a_sample_prints_each_bodys_route_and_row_or_reason() {
    let text = format!(
        "{}\n[[route]]\nname = \"beat\"\nwhen = {{ path = \"/beat\", exists = true }}\nskip = true\n",
        ORDERS.replacen(
            "subject",
            "when = { path = \"/order/id\", exists = true }\nsubject",
            1
        )
    );
    let (env, path) = setup(&text).await;
    let sample = path.with_extension("jsonl");
    let bodies = [
        r#"{"order":{"id":"A-1","amount":19.99,"items":[1.50]},"customer":{"email":"a@example.com"},"region":"eu"}"#,
        r#"{"order":{"id":"A-2","amount":"19.999"},"customer":{"email":"b@example.com"}}"#,
        r#"{"beat":1}"#,
        r#"{"other":1}"#,
        "not json",
    ];
    std::fs::write(&sample, bodies.join("\n")).expect("write the sample");
    let out = env.run_cmd(&[
        "mapping",
        "check",
        "--mapping",
        &path.display().to_string(),
        "--sample",
        &sample.display().to_string(),
    ]);
    let _ = (std::fs::remove_file(&path), std::fs::remove_file(&sample));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let email = masker(KEYS).token("email", "a@example.com");
    let want = [
        format!("1: route order → shop.orders: order_id=\"A-1\", amount=19.99, customer_email=\"{email}\", region=\"eu\", items=\"[1.50]\""),
        "2: route order: reject out_of_range:amount".to_owned(),
        "3: route beat: skip".to_owned(),
        "4: reject no_route".to_owned(),
        "5: reject not_json".to_owned(),
    ];
    for line in want {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} not in: {stdout}"
        );
    }
}

/// The catalog read resolves domains (their NOT NULL and type modifier), arrays, identity,
/// generated columns and unique indexes, by `search_path` or schema-qualified.
#[tokio::test]
async fn the_catalog_reads_a_tables_columns_and_unique_keys() {
    let (env, path) = setup(ORDERS).await;
    let _ = std::fs::remove_file(&path);
    let db = env.db().await;
    db.batch_execute("CREATE UNIQUE INDEX ON shop.orders (region, amount); CREATE UNIQUE INDEX ON shop.orders (lower(region)); SET search_path = shop, public")
        .await
        .expect("indexes");
    let t = read_catalog(&db, "orders")
        .await
        .expect("found by search_path");
    assert_eq!(t.name, "shop.orders");
    let email = t.column("customer_email").unwrap();
    assert_eq!(
        (email.base_type.as_str(), email.char_limit(), email.not_null),
        ("varchar", Some(60), true)
    );
    let amount = t.column("amount").unwrap();
    assert_eq!(amount.numeric_typmod(), Some((10, 2)));
    assert!(t.column("id").unwrap().identity && t.column("slug").unwrap().generated);
    assert!(t.column("created_at").unwrap().has_default);
    let mut keys = t.unique_keys.clone();
    keys.sort();
    assert_eq!(
        keys,
        [vec!["id"], vec!["order_id"], vec!["region", "amount"]]
    );
    assert!(read_catalog(&db, "shop.nope").await.is_none());
}

#[tokio::test]
async fn a_mapping_file_that_cannot_be_read_or_a_database_not_migrated_is_refused() {
    let env = TestEnv::unmigrated().await;
    let out = env.run_cmd(&["mapping", "check", "--mapping", "/nonexistent/orders.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--mapping / SQS2PG_MAPPING: cannot read /nonexistent/orders.toml"),
        "{stderr}"
    );
    let out = env.run_cmd(&["mapping", "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rejects table user_logins_rejects does not exist: run `sqs2pg migrate`"),
        "{stderr}"
    );
}

/// A subject column no index leads with is warned about (erasure would read the whole
/// table), not refused; an index silences it.
#[tokio::test]
async fn a_subject_column_without_an_index_is_warned_about() {
    let (env, path) = setup(ORDERS).await;
    let warning = "  ⚠ no index leads with the subject column customer_email: `sqs2pg forget` reads all of shop.orders to find one person's rows (CREATE INDEX ON shop.orders (customer_email))";
    let out = check(&env, &path);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l == warning), "{stdout}");
    env.db()
        .await
        .batch_execute("CREATE INDEX ON shop.orders (customer_email)")
        .await
        .expect("index");
    let out = check(&env, &path);
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("⚠ no index"), "{stdout}");
}
