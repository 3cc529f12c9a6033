//! `sqs2pg run --mapping FILE`: events routed into their own tables, exactly once, through
//! the same ledger, rejects and bisection as the login load. Bodies are EventBridge events
//! (`--envelope eventbridge`) on LocalStack; moto-made events are in `foreign_events`.

use std::path::PathBuf;

use crate::helpers::*;

/// Two routed tables: orders (a business key, an exact amount, a jsonb subtree, an email
/// token, the envelope's time) and signups (no key; `id` and `loaded_at` left to their
/// defaults).
const DDL: &str = "
CREATE SCHEMA shop;
CREATE TABLE shop.orders(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id text NOT NULL UNIQUE,
  amount numeric(10,2) CHECK (amount >= 0),
  customer_email varchar(120),
  items jsonb,
  placed_at timestamptz,
  tenant text,
  loaded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE shop.signups(
  id bigserial PRIMARY KEY,
  user_name text NOT NULL,
  plan text,
  tags text[],
  sent_at timestamptz);
";

const MAPPING: &str = r#"[[route]]
name = "order"
table = "shop.orders"
when = { meta = "envelope:detail-type", equals = "OrderPlaced" }
key = ["order_id"]
on_conflict = "ignore"
subject = "customer_email"

[route.columns]
order_id       = { path = "/order/id", required = true }
amount         = { path = "/order/amount" }
customer_email = { path = "/customer/email", token = "email" }
items          = { path = "/order/items" }
placed_at      = { meta = "envelope:time" }
tenant         = { meta = "attribute:tenant" }

[[route]]
name = "signup"
table = "shop.signups"
when = { meta = "envelope:detail-type", equals = "SignedUp" }

[route.columns]
user_name = { path = "/name", required = true }
plan      = { path = "/plan" }
tags      = { path = "/tags" }
sent_at   = { meta = "sent_timestamp" }

[[route]]
name = "heartbeat"
when = { meta = "envelope:detail-type", equals = "Heartbeat" }
skip = true
"#;

/// An EventBridge event of `detail_type` around `detail`.
fn order(id: &str, amount: &str, email: &str) -> String {
    shop_event(
        "OrderPlaced",
        &format!(
            r#"{{"order":{{"id":"{id}","amount":{amount},"items":[{{"sku":"A-1","qty":2}}]}},"customer":{{"email":"{email}"}}}}"#
        ),
    )
}

/// A test database holding [`DDL`], and `mapping` in a file of the test's own.
async fn setup(mapping: &str) -> (TestEnv, PathBuf) {
    let env = TestEnv::new().await;
    env.db().await.batch_execute(DDL).await.expect("DDL");
    let path = std::env::temp_dir().join(format!("{}-mapping.toml", env.queue_name));
    std::fs::write(&path, mapping).expect("write the mapping");
    (env, path)
}

fn run_mapped(env: &TestEnv, path: &std::path::Path) -> std::process::Output {
    run_mapped_cmd(env, path).output().expect("run sqs2pg")
}

fn run_mapped_cmd(env: &TestEnv, path: &std::path::Path) -> std::process::Command {
    env.cmd(&[
        "run",
        "--until-empty",
        "--wait-seconds",
        "1",
        "--envelope",
        "eventbridge",
        "--mapping",
        path.to_str().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mapped_run_loads_each_route_into_its_table_skips_and_quarantines_the_rest() {
    let (env, path) = setup(MAPPING).await;
    env.send(&[
        order("o-1", "19.99", "ann@example.com"),
        order("o-2", r#""5""#, "bob@example.com"),
        // A producer's re-send: a new message id, the same order.
        order("o-1", "19.99", "ann@example.com"),
        shop_event(
            "SignedUp",
            r#"{"name":"carol","plan":"pro","tags":["a","b"]}"#,
        ),
        shop_event("Heartbeat", r#"{"beat":1}"#),
        shop_event("Refunded", r#"{"order":{"id":"o-1"}}"#),
        order("o-3", r#""abc""#, "dan@example.com"),
    ])
    .await;
    // An order with a message attribute, which the mapping reads (`attribute:tenant`).
    send_with_attribute(
        &env,
        &order("o-4", "7", "eve@example.com"),
        "tenant",
        "acme",
    )
    .await;
    let out = stdout_ok(&run_mapped(&env, &path));
    let summary = summary_numbers(&out);
    assert_eq!(summary["loaded"], 4, "{out}");
    assert_eq!(summary["rejected"], 2, "{out}");
    for (field, n) in [
        ("loaded by route/order", 3),
        ("loaded by route/signup", 1),
        ("skipped by route/heartbeat", 1),
        ("skipped by key/order", 1),
        ("rejected by route/order", 1),
    ] {
        assert_eq!(summary.get(field), Some(&n), "{field} in {out}");
    }
    env.assert_queue_empty().await;
    let out = stdout_ok(&env.run_cmd(&["check", "--mapping", path.to_str().unwrap()]));
    assert!(
        out.lines().any(|l| l.starts_with("✓ mapping")
            && l.ends_with("order → shop.orders, signup → shop.signups, heartbeat (skip)")),
        "{out}"
    );

    let orders: Vec<String> = env
        .column(
            "SELECT order_id || ' ' || amount::text || ' ' || items::text || ' ' || placed_at::text
                    || ' ' || coalesce(tenant, '-')
               FROM shop.orders ORDER BY order_id",
        )
        .await;
    assert_eq!(
        orders,
        [
            r#"o-1 19.99 [{"qty": 2, "sku": "A-1"}] 2026-12-01 10:00:00+00 -"#,
            r#"o-2 5.00 [{"qty": 2, "sku": "A-1"}] 2026-12-01 10:00:00+00 -"#,
            r#"o-4 7.00 [{"qty": 2, "sku": "A-1"}] 2026-12-01 10:00:00+00 acme"#,
        ]
    );
    // The email is stored as its token under the context "email", never as itself.
    let emails: Vec<String> = env
        .column("SELECT customer_email FROM shop.orders WHERE order_id < 'o-3' ORDER BY order_id")
        .await;
    let mut m = masker(KEYS);
    assert_eq!(
        emails,
        [
            m.token("email", "ann@example.com"),
            m.token("email", "bob@example.com")
        ]
    );
    let signups: Vec<String> = env
        .column("SELECT user_name || ' ' || plan || ' ' || tags::text || ' ' || (sent_at IS NOT NULL)::text || ' ' || id::text FROM shop.signups")
        .await;
    assert_eq!(signups, ["carol pro {a,b} true 1"]);

    let rejects: Vec<String> = env
        .column(
            "SELECT coalesce(route, '-') || ' ' || reason FROM user_logins_rejects ORDER BY reason",
        )
        .await;
    assert_eq!(rejects, ["order invalid_value:amount", "- no_route"]);
    // Every message, loaded, skipped, re-sent or rejected, is in the ledger once.
    assert_eq!(env.count("SELECT count(*) FROM sqs2pg_ledger").await, 8);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_the_table_refuses_is_quarantined_under_its_route_and_the_rest_commit() {
    let (env, path) = setup(MAPPING).await;
    env.send(&[
        order("o-1", "1.50", "ann@example.com"),
        // The table's CHECK refuses a negative amount: a database error for this row only.
        order("o-2", "-1", "bob@example.com"),
        order("o-3", "2", "carol@example.com"),
    ])
    .await;
    let mut run = run_mapped_cmd(&env, &path);
    let out = stdout_ok(&run.args(["--output", "json"]).output().expect("run"));
    let summary: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(summary["loaded"], 2, "{out}");
    assert_eq!(
        summary["routes"]["order"],
        serde_json::json!({"loaded": 2, "skipped": 0, "skipped_by_key": 0, "rejected": 1}),
        "{out}"
    );
    let ids: Vec<String> = env
        .column("SELECT order_id FROM shop.orders ORDER BY order_id")
        .await;
    assert_eq!(ids, ["o-1", "o-3"]);
    let rejects: Vec<String> = env
        .column("SELECT route || ' ' || reason FROM user_logins_rejects")
        .await;
    assert_eq!(rejects, ["order database_error:23514"]);
    let subject_token: String = env
        .scalar("SELECT subject_token FROM user_logins_rejects")
        .await;
    assert_eq!(
        subject_token,
        masker(KEYS).token("subject", "bob@example.com"),
        "a refused row's reject is found by its subject like any other"
    );
    env.assert_queue_empty().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mapping_that_does_not_fit_stops_the_run_before_the_first_message() {
    let broken = MAPPING.replace("plan      = {", "plan_name = {");
    let (env, path) = setup(&broken).await;
    env.send(&[order("o-1", "1", "ann@example.com")]).await;
    let out = run_mapped(&env, &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(r#"route "signup", column "plan_name""#),
        "{stderr}"
    );
    // `check` says the same before anything runs.
    let out = env.run_cmd(&["check", "--mapping", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains(" mapping "))
        .unwrap_or_default();
    assert!(line.starts_with("✗"), "{stdout}");
    assert!(
        line.contains(r#"route "signup", column "plan_name""#),
        "{stdout}"
    );
    // Nothing was received: the message waits, visible, for a run that fits.
    assert_eq!(env.depth().await.visible, 1);
    assert_eq!(env.count("SELECT count(*) FROM sqs2pg_ledger").await, 0);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejects_table_without_the_route_column_is_refused_naming_migrate() {
    let (env, path) = setup(MAPPING).await;
    env.db()
        .await
        .batch_execute("ALTER TABLE user_logins_rejects DROP COLUMN route")
        .await
        .expect("drop route");
    let out = run_mapped(&env, &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(r#"no column "route""#), "{stderr}");
    assert!(stderr.contains("sqs2pg migrate"), "{stderr}");
    // migrate adds it back, and the run then goes.
    stdout_ok(&env.run_cmd(&["migrate"]));
    stdout_ok(&run_mapped(&env, &path));
    let _ = std::fs::remove_file(&path);
}

/// Sends `body` with one string message attribute, through the SDK (the product's `send`
/// sends none).
async fn send_with_attribute(env: &TestEnv, body: &str, name: &str, value: &str) {
    use aws_sdk_sqs::types::MessageAttributeValue;
    let client = aws_sdk_sqs::Client::new(&aws_sdk_config().await);
    let attribute = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("attribute");
    client
        .send_message()
        .queue_url(&env.queue_url)
        .message_body(body)
        .message_attributes(name, attribute)
        .send()
        .await
        .expect("send with an attribute");
}

/// The Lambda function, the real binary under the Runtime API, with `SQS2PG_MAPPING`: the
/// same routes, the attribute from the event's `messageAttributes`, a redelivered event
/// adding nothing, and a mapping that does not fit failing the cold start.
#[tokio::test(flavor = "multi_thread")]
async fn the_lambda_function_loads_a_mapping_under_the_runtime_api() {
    let (env, path) = setup(MAPPING).await;
    let mut rt = LambdaRuntime::start().await;
    let mapping = path.to_str().unwrap();
    rt.start_function_with(
        &env.database_url,
        &[
            ("SQS2PG_MAPPING", mapping),
            ("SQS2PG_ENVELOPE", "eventbridge"),
        ],
    );
    let bodies = [
        order("o-1", "19.99", "ann@example.com"),
        shop_event("Heartbeat", "{}"),
        shop_event("Refunded", "{}"),
    ];
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut event = event_of(&ids, &bodies);
    event["Records"][0]["messageAttributes"] = serde_json::json!({
        "tenant": {"stringValue": "acme", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    });
    for _ in 0..2 {
        let answer = rt.invoke(&event).await;
        assert_eq!(
            failed_item_ids(&answer),
            Vec::<String>::new(),
            "{answer}\n{}",
            rt.function_log()
        );
    }
    let orders: Vec<String> = env
        .column("SELECT order_id || ' ' || amount::text || ' ' || tenant FROM shop.orders")
        .await;
    assert_eq!(orders, ["o-1 19.99 acme"]);
    let rejects: Vec<String> = env
        .column("SELECT coalesce(route, '-') || ' ' || reason FROM user_logins_rejects")
        .await;
    assert_eq!(rejects, ["- no_route"]);
    assert_eq!(env.count("SELECT count(*) FROM sqs2pg_ledger").await, 3);

    let broken = MAPPING.replace("plan      = {", "plan_name = {");
    std::fs::write(&path, broken).expect("break the mapping");
    let mut cold = LambdaRuntime::start().await;
    cold.start_function_with(
        &env.database_url,
        &[
            ("SQS2PG_MAPPING", mapping),
            ("SQS2PG_ENVELOPE", "eventbridge"),
        ],
    );
    wait_until(
        "the cold start fails naming the route and column",
        std::time::Duration::from_secs(30),
        || async {
            cold.function_output()
                .contains(r#"route \"signup\", column \"plan_name\""#)
                || cold
                    .function_output()
                    .contains(r#"route "signup", column "plan_name""#)
        },
    )
    .await;
    let _ = std::fs::remove_file(&path);
}

/// `on_conflict = "update"`: a later event of a key overwrites its row; `"ignore"` (the
/// other tests) keeps the first.
#[tokio::test(flavor = "multi_thread")]
async fn an_update_route_keeps_the_latest_row_of_each_key() {
    let (env, path) =
        setup(&MAPPING.replace(r#"on_conflict = "ignore""#, r#"on_conflict = "update""#)).await;
    env.send(&[order("o-1", "1", "ann@example.com")]).await;
    stdout_ok(&run_mapped(&env, &path));
    env.send(&[
        order("o-1", "2", "ann@example.com"),
        order("o-2", "5", "bob@example.com"),
    ])
    .await;
    stdout_ok(&run_mapped(&env, &path));
    let rows: Vec<String> = env
        .column("SELECT order_id || ' ' || amount::text FROM shop.orders ORDER BY order_id")
        .await;
    assert_eq!(rows, ["o-1 2.00", "o-2 5.00"]);
    let _ = std::fs::remove_file(&path);
}

/// Under `RUST_LOG=trace` a mapped run's output holds no value of an event: not the email
/// its token column stores, not one from a body it quarantines.
#[tokio::test(flavor = "multi_thread")]
async fn a_mapped_run_at_trace_logs_no_value_of_an_event() {
    let (env, path) = setup(MAPPING).await;
    env.send(&[
        order("o-1", "1", "trace-ann@example.com"),
        order("o-2", r#""abc""#, "trace-bob@example.com"),
        order("o-3", "-5", "trace-carol@example.com"),
    ])
    .await;
    let out = run_mapped_cmd(&env, &path)
        .env("RUST_LOG", "trace")
        .output()
        .expect("run");
    stdout_ok(&out);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        all.contains("TRACE") || all.contains("DEBUG"),
        "trace is on"
    );
    for value in ["trace-ann", "trace-bob", "trace-carol", "A-1"] {
        assert!(!all.contains(value), "{value} in the output:\n{all}");
    }
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        2
    );
    let _ = std::fs::remove_file(&path);
}

/// `rejects replay --mapping`: after the table is widened and the mapping gains a route,
/// what now loads leaves the rejects for its table, what a skip route now takes leaves them
/// for nothing, and what still fails stays, under its route.
#[tokio::test(flavor = "multi_thread")]
async fn rejects_replay_under_a_mapping_loads_what_now_fits() {
    let (env, path) = setup(MAPPING).await;
    env.send(&[
        // Too large for numeric(10,2).
        order("o-1", "123456789.5", "ann@example.com"),
        order("o-2", r#""abc""#, "bob@example.com"),
        shop_event("Refunded", r#"{"order":{"id":"o-1"}}"#),
    ])
    .await;
    stdout_ok(&run_mapped(&env, &path));
    let rejects = || async {
        env.column::<String>(
            "SELECT coalesce(route, '-') || ' ' || reason FROM user_logins_rejects ORDER BY 1",
        )
        .await
    };
    assert_eq!(
        rejects().await,
        [
            "- no_route",
            "order invalid_value:amount",
            "order out_of_range:amount"
        ]
    );
    env.db()
        .await
        .batch_execute("ALTER TABLE shop.orders ALTER amount TYPE numeric(14,2)")
        .await
        .expect("widen amount");
    let refunds = "\n[[route]]\nname = \"refund\"\nwhen = { meta = \"envelope:detail-type\", equals = \"Refunded\" }\nskip = true\n";
    std::fs::write(&path, format!("{MAPPING}{refunds}")).expect("add a route");
    let out = stdout_ok(&env.run_cmd(&[
        "rejects",
        "replay",
        "--envelope",
        "eventbridge",
        "--mapping",
        path.to_str().unwrap(),
    ]));
    assert!(out.contains("examined            3"), "{out}");
    assert!(out.contains("loaded              1"), "{out}");
    assert_eq!(rejects().await, ["order invalid_value:amount"]);
    let amounts: Vec<String> = env
        .column("SELECT order_id || ' ' || amount::text FROM shop.orders")
        .await;
    assert_eq!(amounts, ["o-1 123456789.50"]);
    let _ = std::fs::remove_file(&path);
}

/// `meta = "group_id"` on a FIFO queue: receives ask for `MessageGroupId` because the
/// mapping reads it, and each row holds its message's group (the user id `send` groups by).
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_messages_group_id_is_metadata_a_mapping_can_load() {
    let mut env = TestEnv::new().await;
    env.use_fifo_queue(true).await;
    env.db()
        .await
        .batch_execute("CREATE TABLE seen(user_id text NOT NULL, grp text NOT NULL)")
        .await
        .expect("DDL");
    let path = std::env::temp_dir().join(format!("{}-groups.toml", env.queue_name));
    let mapping = "[[route]]\nname = \"seen\"\ntable = \"seen\"\n\n[route.columns]\nuser_id = { path = \"/user_id\", required = true }\ngrp = { meta = \"group_id\", required = true }\n";
    std::fs::write(&path, mapping).expect("write the mapping");
    env.send(&[
        login("u-1", "10.0.0.1", "d-1"),
        login("u-2", "10.0.0.2", "d-2"),
    ])
    .await;
    let out = env.run_cmd(&[
        "run",
        "--until-empty",
        "--wait-seconds",
        "1",
        "--mapping",
        path.to_str().unwrap(),
    ]);
    stdout_ok(&out);
    let rows: Vec<String> = env
        .column("SELECT user_id || ' ' || grp FROM seen ORDER BY 1")
        .await;
    assert_eq!(rows, ["u-1 u-1", "u-2 u-2"]);
    let _ = std::fs::remove_file(&path);
}

/// The contract: `mapping print` prints the built-in login load as a mapping file, and run
/// with that file sqs2pg gives the same rows, rejects and reasons as without it (the
/// rejects' `route` names the route then, or is NULL for a body no route could read).
#[tokio::test(flavor = "multi_thread")]
async fn the_printed_login_mapping_loads_what_the_built_in_load_does() {
    let bodies = synthetic(400, 0.05, 0.05, 28);
    let built_in = TestEnv::new().await;
    let mapped = TestEnv::new().await;
    built_in.send(&bodies).await;
    mapped.send(&bodies).await;
    let run = ["run", "--until-empty", "--wait-seconds", "1"];
    stdout_ok(&built_in.run_cmd(&run));
    let printed = stdout_ok(&mapped.run_cmd(&["mapping", "print"]));
    let path = std::env::temp_dir().join(format!("{}-login.toml", mapped.queue_name));
    std::fs::write(&path, printed).expect("write the printed mapping");
    let mut with_file = run.to_vec();
    with_file.extend(["--mapping", path.to_str().unwrap()]);
    stdout_ok(&mapped.run_cmd(&with_file));
    let rows = "SELECT concat_ws('|', user_id, device_type, masked_ip, masked_device_id, locale,
                       app_version, create_date) FROM user_logins ORDER BY 1";
    let rejects = "SELECT reason FROM user_logins_rejects ORDER BY 1";
    let (a, b): (Vec<String>, Vec<String>) =
        (built_in.column(rows).await, mapped.column(rows).await);
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 300, "{}", a.len());
    assert_eq!(a, b, "the same rows, tokens included");
    let (a, b): (Vec<String>, Vec<String>) =
        (built_in.column(rejects).await, mapped.column(rejects).await);
    assert!(!a.is_empty());
    assert_eq!(a, b, "the same rejects and reasons");
    let routes: Vec<String> = mapped
        .column("SELECT DISTINCT coalesce(route, '-') FROM user_logins_rejects ORDER BY 1")
        .await;
    assert_eq!(routes, ["-", "login"]);
    let _ = std::fs::remove_file(&path);
}

/// A mapping's own `rejects_table`: `migrate --mapping` creates it like
/// `user_logins_rejects` (route and subject token included), the mapping's rejects go
/// there, not to `user_logins_rejects`, and `rejects list` and `reveal --reject` read it.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_makes_a_mappings_own_rejects_table_and_rejects_go_there() {
    let own = format!("rejects_table = \"shop.quarantine\"\n\n{MAPPING}");
    let (env, path) = setup(&own).await;
    let out = stdout_ok(&env.run_cmd(&["migrate", "--mapping", path.to_str().unwrap()]));
    assert!(
        out.contains("created the mapping's rejects table: shop.quarantine"),
        "{out}"
    );
    env.send(&[order("o-1", r#""abc""#, "ann@example.com")])
        .await;
    stdout_ok(&run_mapped(&env, &path));
    let own: Vec<String> = env
        .column("SELECT route || ' ' || reason || ' ' || (subject_token IS NOT NULL)::text FROM shop.quarantine")
        .await;
    assert_eq!(own, ["order invalid_value:amount true"]);
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        0
    );
    let again = stdout_ok(&env.run_cmd(&["migrate", "--mapping", path.to_str().unwrap()]));
    assert!(again.contains("nothing to do"), "{again}");
    let _ = std::fs::remove_file(&path);
}
