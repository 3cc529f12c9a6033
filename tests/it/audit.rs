//! The reveal audit cannot lie: whoever inserts a row, the database says who (`db_user`, the
//! session's login) and when (`at`), and a revealer may not even name those columns. Tested
//! as a real login in `sqs2pg_revealer`, as `reveal` runs in production.

use sqs2pg::db::audit::{self, AuditEntry};
use tokio_postgres::error::SqlState;

use crate::helpers::{
    connect, login, pipe_through, role_login, stderr, stdout_ok, Db, RoleLogin, TestEnv,
};

/// `migrate --roles`, then a login role granted `sqs2pg_revealer`.
async fn revealer_login(env: &TestEnv) -> RoleLogin {
    role_login(env, "sqs2pg_revealer").await
}

/// An audit row that names someone else and a date long past, as a forger would write it.
const FORGED_INSERT: &str = "INSERT INTO sqs2pg_reveal_audit
    (db_user, at, action, column_name, reason, values_count)
    VALUES ('a_colleague', '2001-02-03T04:05:06Z', 'reveal', 'ip', 'FORGED', 1)";

/// The same row without who and when, as `reveal` writes it.
const HONEST_INSERT: &str = "INSERT INTO sqs2pg_reveal_audit
    (action, column_name, reason, values_count) VALUES ('reveal', 'ip', 'HONEST', 1)";

/// Who and when of the last audit row with `reason`, and whether its time is the database's
/// time now (within a minute), read as the owner.
async fn who_and_whether_now(env: &TestEnv, reason: &str) -> (String, bool) {
    let row = env
        .db()
        .await
        .rows_with(
            "SELECT db_user, at > clock_timestamp() - interval '1 minute' AS at_is_now
               FROM sqs2pg_reveal_audit WHERE reason = $1 ORDER BY id DESC LIMIT 1",
            &[&reason],
        )
        .await
        .pop()
        .unwrap_or_else(|| panic!("no audit row with reason {reason}"));
    (row.get("db_user"), row.get("at_is_now"))
}

/// Whether `sql` run by `client` is refused for lack of privilege (42501), not otherwise.
async fn refused(client: &Db, sql: &str) -> bool {
    match client.batch_execute(sql).await {
        Ok(()) => false,
        Err(e) => e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE),
    }
}

/// A revealer login may not name `id`, `at` or `db_user`; what it may insert is recorded
/// under its own name at the database's time, even after a `SET ROLE`.
#[tokio::test(flavor = "multi_thread")]
async fn a_revealer_cannot_name_who_or_when_in_the_audit() {
    let env = TestEnv::new().await;
    let login = revealer_login(&env).await;
    let as_revealer = connect(&login.url).await;
    for column in ["id", "at", "db_user"] {
        assert!(
            !env.scalar_with::<bool>(
                "SELECT has_column_privilege('sqs2pg_revealer', 'sqs2pg_reveal_audit', $1, 'INSERT')",
                &[&column],
            )
            .await,
            "{column}"
        );
    }
    assert!(refused(&as_revealer, FORGED_INSERT).await);
    as_revealer.batch_execute(HONEST_INSERT).await.unwrap();
    assert_eq!(
        who_and_whether_now(&env, "HONEST").await,
        (login.name.clone(), true)
    );
    // A role switched to inside the session does not stand in for the login.
    as_revealer
        .batch_execute(&format!(
            "SET ROLE sqs2pg_revealer; {}",
            HONEST_INSERT.replace("HONEST", "AS-ROLE")
        ))
        .await
        .unwrap();
    assert_eq!(
        who_and_whether_now(&env, "AS-ROLE").await,
        (login.name.clone(), true)
    );
    assert_eq!(
        env.count("SELECT count(*) FROM sqs2pg_reveal_audit").await,
        2
    );
    drop(as_revealer);
    login.drop_in(&env).await;
}

/// A database from before (no trigger, and the revealer granted INSERT on every column, as an
/// older `migrate --roles` did): a forged row lies. `migrate` alone makes the next forged row
/// tell the truth; `migrate --roles` then takes the broad grant back.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_makes_an_older_audit_truthful() {
    let env = TestEnv::new().await;
    let login = revealer_login(&env).await;
    env.db()
        .await
        .batch_execute(
            "DROP TRIGGER IF EXISTS sqs2pg_reveal_audit_stamp ON sqs2pg_reveal_audit;
             DROP FUNCTION IF EXISTS sqs2pg_reveal_audit_stamp();
             GRANT INSERT ON sqs2pg_reveal_audit TO sqs2pg_revealer;",
        )
        .await
        .unwrap();
    let as_revealer = connect(&login.url).await;
    as_revealer.batch_execute(FORGED_INSERT).await.unwrap();
    let lie = ("a_colleague".to_string(), false);
    assert_eq!(
        who_and_whether_now(&env, "FORGED").await,
        lie,
        "the old audit lies"
    );

    stdout_ok(&env.run_cmd(&["migrate"]));
    as_revealer.batch_execute(FORGED_INSERT).await.unwrap();
    let truth = (login.name.clone(), true);
    assert_eq!(who_and_whether_now(&env, "FORGED").await, truth);

    stdout_ok(&env.run_cmd(&["migrate", "--roles"]));
    stdout_ok(&env.run_cmd(&["migrate", "--roles"]));
    assert!(refused(&as_revealer, FORGED_INSERT).await);
    as_revealer.batch_execute(HONEST_INSERT).await.unwrap();
    assert_eq!(who_and_whether_now(&env, "HONEST").await, truth);
    drop(as_revealer);
    login.drop_in(&env).await;
}

/// `reveal` run with a revealer login's URL reveals, and its audit row names that login.
#[tokio::test(flavor = "multi_thread")]
async fn a_reveal_by_a_revealer_login_is_audited_under_that_login() {
    let env = TestEnv::new().await;
    env.send(&[login("a", "172.16.9.1", "dev-a")]).await;
    env.drain().await;
    let token: String = env.scalar("SELECT masked_ip FROM user_logins").await;
    let revealer = revealer_login(&env).await;
    let mut reveal = env.cmd(&["reveal", "--column", "ip", "--reason", "TICKET-11"]);
    reveal.env("DATABASE_URL", &revealer.url);
    let out = pipe_through(&mut reveal, &format!("{token}\n"));
    assert_eq!(stdout_ok(&out), "172.16.9.1\n");
    assert_eq!(
        who_and_whether_now(&env, "TICKET-11").await,
        (revealer.name.clone(), true)
    );
    revealer.drop_in(&env).await;
}

/// The audit row goes to the table the catalog names, schema and all: a temporary table of
/// the same name, which the session would otherwise find first, does not take it.
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_row_is_written_to_the_real_table_not_a_temporary_stand_in() {
    let env = TestEnv::new().await;
    let login = revealer_login(&env).await;
    let as_revealer = connect(&login.url).await;
    as_revealer
        .batch_execute(
            "CREATE TEMP TABLE sqs2pg_reveal_audit(
               os_user text, host text, action text, column_name text, reason text,
               values_count int, fingerprints text[])",
        )
        .await
        .unwrap();
    let entry = AuditEntry {
        action: "reveal",
        column: "ip",
        reason: "TICKET-12",
        values: 1,
        fingerprints: vec![audit::fingerprint("token")],
    };
    audit::record(&as_revealer, &entry).await.unwrap();
    assert_eq!(
        who_and_whether_now(&env, "TICKET-12").await,
        (login.name.clone(), true)
    );
    let stand_in: i64 = as_revealer
        .scalar("SELECT count(*) FROM pg_temp.sqs2pg_reveal_audit")
        .await;
    assert_eq!(stand_in, 0);
    drop(as_revealer);
    login.drop_in(&env).await;
}

/// Tables in schema `analytics`, reached through the URL's `search_path`: `mask` audits into
/// that schema's table, the one the catalog names.
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_is_written_in_the_schema_the_search_path_names() {
    let env = TestEnv::unmigrated().await;
    env.db()
        .await
        .batch_execute("CREATE SCHEMA analytics")
        .await
        .unwrap();
    let url = format!("{}?options=-csearch_path%3Danalytics", env.database_url);
    stdout_ok(
        &env.cmd(&["migrate"])
            .env("DATABASE_URL", &url)
            .output()
            .unwrap(),
    );
    let mut mask = env.cmd(&["mask", "--column", "ip", "--reason", "TICKET-13"]);
    mask.env("DATABASE_URL", &url);
    stdout_ok(&pipe_through(&mut mask, "10.7.1.1\n"));
    assert_eq!(
        env.count("SELECT count(*) FROM analytics.sqs2pg_reveal_audit WHERE reason = 'TICKET-13'")
            .await,
        1
    );
}

/// Without the audit table, `reveal` opens nothing and says to migrate.
#[tokio::test(flavor = "multi_thread")]
async fn a_reveal_without_the_audit_table_says_to_migrate_and_prints_nothing() {
    let env = TestEnv::new().await;
    env.send(&[login("a", "172.16.9.2", "dev-a")]).await;
    env.drain().await;
    let token: String = env.scalar("SELECT masked_ip FROM user_logins").await;
    env.db()
        .await
        .batch_execute("DROP TABLE sqs2pg_reveal_audit")
        .await
        .unwrap();
    let mut reveal = env.cmd(&["reveal", "--column", "ip", "--reason", "TICKET-14"]);
    let out = pipe_through(&mut reveal, &format!("{token}\n"));
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing revealed without the audit");
    let e = stderr(&out);
    assert!(
        e.contains("table sqs2pg_reveal_audit does not exist: run `sqs2pg migrate`"),
        "{e}"
    );
}
