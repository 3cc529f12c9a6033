//! Tables as operators lay them out: `user_logins` pre-created `PARTITION BY RANGE
//! (create_date)` with monthly partitions and no default one, and the tables in a schema
//! other than `public`, reached through the URL's `search_path`.

use chrono::{Datelike, Months, NaiveDate, Utc};

use crate::helpers::{
    failed_ids, lambda_handler, login, sqs_event, stdout_ok, summary_numbers, TestEnv,
};

/// The spec's columns, partitioned by month.
const PARTITIONED: &str = "CREATE TABLE user_logins(user_id varchar(128), device_type varchar(32),
    masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32),
    app_version integer, create_date date) PARTITION BY RANGE (create_date)";

/// Monthly partitions from last month to next month (so a run across midnight still lands).
fn monthly_partitions() -> String {
    let this = Utc::now()
        .date_naive()
        .with_day(1)
        .expect("first of the month");
    (-1..=1)
        .map(|k: i32| {
            let from = if k < 0 {
                this - Months::new(1)
            } else {
                this + Months::new(k as u32)
            };
            let to = from + Months::new(1);
            format!(
                "CREATE TABLE user_logins_{} PARTITION OF user_logins FOR VALUES FROM ('{from}') TO ('{to}');",
                from.format("%Y_%m")
            )
        })
        .collect()
}

/// A database whose `user_logins` an operator laid out with `ddl` before `migrate`.
pub(crate) async fn migrated_with(ddl: &str) -> TestEnv {
    let env = TestEnv::unmigrated().await;
    env.db().await.batch_execute(ddl).await.unwrap();
    stdout_ok(&env.run_cmd(&["migrate"]));
    env
}

/// Messages of today land in this month's partition; `migrate` leaves the table as it is.
/// One dated outside every partition (SQS's SentTimestamp of 2024-11-24, through the commit
/// path `run` and the Lambda handler share) is isolated and rejected `database_error:23514`,
/// the rest of its batch loads.
#[tokio::test(flavor = "multi_thread")]
async fn partitioned_table_loads_and_isolates_a_row_outside_the_partitions() {
    let env = migrated_with(&format!("{PARTITIONED}; {}", monthly_partitions())).await;
    let bodies: Vec<String> = (0..30)
        .map(|i| login(&format!("part-{i}"), "10.7.0.1", "dev"))
        .collect();
    env.send(&bodies).await;
    let s = env.drain().await;
    assert_eq!((s.loaded, s.rejected, s.deleted), (30, 0, 30));
    let partition = format!("user_logins_{}", Utc::now().format("%Y_%m"));
    let placed: Vec<String> = env
        .column("SELECT DISTINCT tableoid::regclass::text FROM user_logins")
        .await;
    assert_eq!(placed, [partition]);

    let handler = lambda_handler(&env).await;
    let now_ms = Utc::now().timestamp_millis().to_string();
    let records: Vec<(String, String)> = (0..10)
        .map(|i| {
            (
                format!("lam-{i}"),
                login(&format!("lam-{i}"), "10.7.0.2", "dev"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = records
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut event = sqs_event(&refs);
    for (i, r) in event.records.iter_mut().enumerate() {
        if i != 4 {
            r.attributes.insert("SentTimestamp".into(), now_ms.clone());
        }
    }
    let resp = handler.handle(event).await;
    assert_eq!(failed_ids(&resp), Vec::<String>::new(), "{resp:?}");
    let reasons: Vec<String> = env
        .column("SELECT message_id || ' ' || reason FROM user_logins_rejects")
        .await;
    assert_eq!(reasons, ["lam-4 database_error:23514"]);
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins WHERE user_id LIKE 'lam-%'")
            .await,
        9
    );
    let outside = NaiveDate::from_ymd_opt(2024, 11, 24).unwrap();
    let n: i64 = env
        .scalar_with(
            "SELECT count(*) FROM user_logins WHERE create_date = $1",
            &[&outside],
        )
        .await;
    assert_eq!(n, 0);
}

/// A beta login whose `app_version` an integer column cannot take (`bad_app_version`).
fn beta_login(user_id: &str) -> String {
    serde_json::json!({
        "user_id": user_id, "app_version": "2.0-beta.7", "device_type": "ios",
        "ip": "10.7.1.1", "locale": "US", "device_id": "dev",
    })
    .to_string()
}

/// Ten `bad_app_version` rejects, `rp-0` … `rp-9`, through the Lambda handler: all sent
/// today except `rp-1`, sent on 2024-11-24, a day no partition holds.
async fn quarantine_betas_one_outside_the_partitions(env: &TestEnv) {
    let handler = lambda_handler(env).await;
    let records: Vec<(String, String)> = (0..10)
        .map(|i| (format!("rp-{i}"), beta_login(&format!("rp-{i}"))))
        .collect();
    let refs: Vec<(&str, &str)> = records
        .iter()
        .map(|(id, body)| (id.as_str(), body.as_str()))
        .collect();
    let mut event = sqs_event(&refs);
    let now_ms = Utc::now().timestamp_millis().to_string();
    for r in event
        .records
        .iter_mut()
        .filter(|r| r.message_id.as_deref() != Some("rp-1"))
    {
        r.attributes.insert("SentTimestamp".into(), now_ms.clone());
    }
    let resp = handler.handle(event).await;
    assert_eq!(failed_ids(&resp), Vec::<String>::new(), "{resp:?}");
    let reasons: Vec<String> = env
        .column("SELECT DISTINCT reason FROM user_logins_rejects")
        .await;
    assert_eq!(reasons, ["bad_app_version"]);
}

/// After `app_version` became text, `rejects replay` in pages of 4 meets, in its first page,
/// a row dated outside every partition: that one stays a reject, now `database_error:23514`,
/// and every other row of that page and of the pages after it loads; exit 0.
#[tokio::test(flavor = "multi_thread")]
async fn replay_keeps_a_row_the_partitions_refuse_as_a_reject_and_loads_the_rest() {
    let env = migrated_with(&format!("{PARTITIONED}; {}", monthly_partitions())).await;
    quarantine_betas_one_outside_the_partitions(&env).await;
    env.db()
        .await
        .batch_execute("ALTER TABLE user_logins ALTER COLUMN app_version TYPE varchar(32)")
        .await
        .unwrap();

    let out = stdout_ok(&env.run_cmd(&["rejects", "replay", "--batch-size", "4"]));
    let summary = summary_numbers(&out);
    assert_eq!(
        (
            summary["examined"],
            summary["loaded"],
            summary["still rejected"]
        ),
        (10, 9, 1),
        "{out}"
    );
    assert_eq!(
        summary_numbers(&out)["still rejected/database_error:23514"],
        1,
        "{out}"
    );
    let left: Vec<String> = env
        .column("SELECT message_id || ' ' || reason FROM user_logins_rejects")
        .await;
    assert_eq!(left, ["rp-1 database_error:23514"]);
    let mut loaded: Vec<String> = env.column("SELECT user_id FROM user_logins").await;
    loaded.sort();
    let expected: Vec<String> = (0..10)
        .filter(|i| *i != 1)
        .map(|i| format!("rp-{i}"))
        .collect();
    assert_eq!(loaded, expected, "each other reject loaded exactly once");
}

/// The tables in schema `analytics`, found through `?options=-csearch_path%3Danalytics` in
/// the URL: `migrate` creates them there, a drain loads there, `public` stays empty.
#[tokio::test(flavor = "multi_thread")]
async fn tables_in_another_schema_through_search_path() {
    let env = TestEnv::unmigrated().await;
    env.db()
        .await
        .batch_execute("CREATE SCHEMA analytics")
        .await
        .unwrap();
    let url = format!("{}?options=-csearch_path%3Danalytics", env.database_url);
    let migrated = env
        .cmd(&["migrate"])
        .env("DATABASE_URL", &url)
        .output()
        .expect("migrate");
    stdout_ok(&migrated);
    let bodies: Vec<String> = (0..25)
        .map(|i| login(&format!("schema-{i}"), "10.7.1.1", "dev"))
        .collect();
    env.send(&bodies).await;
    let out = env
        .cmd(&["run", "--until-empty", "--wait-seconds", "1"])
        .env("DATABASE_URL", &url)
        .output()
        .expect("run");
    stdout_ok(&out);
    assert_eq!(
        env.count("SELECT count(*) FROM analytics.user_logins")
            .await,
        25
    );
    assert_eq!(
        env.count("SELECT count(*) FROM analytics.sqs2pg_ledger")
            .await,
        25
    );
    let in_public: i64 = env
        .count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE ANY (ARRAY['user_logins%', 'sqs2pg_%'])")
        .await;
    assert_eq!(in_public, 0);
    env.assert_queue_empty().await;
}
