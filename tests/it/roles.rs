//! The ingest role after `migrate --roles`: it loads rows and starts ledger generations, but
//! cannot switch de-duplication off by emptying the ledger, rewinding its state or moving it
//! ahead of the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqs2pg::db::ledger::{ledger_generation, LEDGER_SKEW_TOLERANCE};
use tokio_postgres::error::SqlState;

use crate::helpers::{connect, login, role_login, stderr, stdout_ok, Db, RoleLogin, TestEnv};

/// `migrate --roles`, then a login role granted `sqs2pg_ingest`.
async fn ingest_login(env: &TestEnv) -> RoleLogin {
    role_login(env, "sqs2pg_ingest").await
}

/// `has_table_privilege(role, table, privilege)` on the test database.
async fn holds(env: &TestEnv, role: &str, table: &str, privilege: &str) -> bool {
    env.scalar_with(
        "SELECT has_table_privilege($1, $2, $3)",
        &[&role, &table, &privilege],
    )
    .await
}

/// `has_function_privilege(role, the rotation function, 'EXECUTE')` on the test database.
async fn may_rotate(env: &TestEnv, role: &str) -> bool {
    env.scalar_with(
        "SELECT has_function_privilege($1, 'sqs2pg_ledger_rotate(bigint)', 'EXECUTE')",
        &[&role],
    )
    .await
}

/// Whether `sql` run by `client` is refused for lack of privilege (42501), not otherwise.
async fn refused(client: &Db, sql: &str) -> bool {
    match client.batch_execute(sql).await {
        Ok(()) => false,
        Err(e) => e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE),
    }
}

/// Grants an older `migrate --roles` gave: the next `migrate --roles` takes them back.
const OLD_GRANTS: &str = "GRANT TRUNCATE ON sqs2pg_ledger_0, sqs2pg_ledger_1 TO sqs2pg_ingest;
                          GRANT UPDATE ON sqs2pg_ledger_state TO sqs2pg_ingest;";

/// After `migrate --roles` (over a database an older version granted more), the ingest role
/// holds no TRUNCATE on the ledger and no UPDATE on its state, and trying either as a login
/// role in it is refused; only it may call the rotation function.
#[tokio::test(flavor = "multi_thread")]
async fn ingest_cannot_truncate_the_ledger_or_rewrite_its_state() {
    let env = TestEnv::new().await;
    stdout_ok(&env.run_cmd(&["migrate", "--roles"]));
    env.db().await.batch_execute(OLD_GRANTS).await.unwrap();
    let login = ingest_login(&env).await;
    let role = "sqs2pg_ingest";
    for table in ["sqs2pg_ledger_0", "sqs2pg_ledger_1"] {
        assert!(holds(&env, role, table, "INSERT").await, "{table}");
        for privilege in ["TRUNCATE", "DELETE", "UPDATE"] {
            assert!(
                !holds(&env, role, table, privilege).await,
                "{table} {privilege}"
            );
        }
    }
    for privilege in ["SELECT", "UPDATE", "DELETE", "TRUNCATE", "INSERT"] {
        let table = "sqs2pg_ledger_state";
        assert!(!holds(&env, role, table, privilege).await, "{privilege}");
    }
    assert!(may_rotate(&env, "sqs2pg_ingest").await);
    assert!(!may_rotate(&env, "sqs2pg_analyst").await);
    assert!(!may_rotate(&env, "public").await);

    let as_ingest = connect(&login.url).await;
    for sql in [
        "TRUNCATE sqs2pg_ledger_0",
        "TRUNCATE sqs2pg_ledger_1",
        "UPDATE sqs2pg_ledger_state SET generation = 0",
        "DELETE FROM sqs2pg_ledger_0",
    ] {
        assert!(refused(&as_ingest, sql).await, "{sql}");
    }
    drop(as_ingest);
    login.drop_in(&env).await;
}

/// A writer connected as an ingest login role loads through two generation switches with
/// the same outcome as the owner's: a redelivery in the next generation is a duplicate, and
/// the table reused two generations later is emptied (by the function, as its owner).
#[tokio::test(flavor = "multi_thread")]
async fn ingest_login_loads_through_a_generation_switch() {
    let env = TestEnv::new().await;
    let login_role = ingest_login(&env).await;
    let mut sink = env.sink_as(&login_role.url).await;
    let day = Duration::from_secs(86_400);
    // Years ago: the rotation function starts no generation ahead of the database's clock.
    let t0: SystemTime = UNIX_EPOCH + 15 * day * 1300 + Duration::from_secs(3600);
    let body = |user: &str| login(user, "10.8.0.1", "d");
    let (a, b) = (sink.record("a", &body("ua")), sink.record("b", &body("ub")));
    assert_eq!(sink.write_at(&[&a, &b], t0).await.loaded, 2);
    let (a, c) = (sink.record("a", &body("ua")), sink.record("c", &body("uc")));
    let r = sink.write_at(&[&a, &c], t0 + 16 * day).await;
    assert_eq!((r.loaded, r.duplicates), (1, 1), "{r:?}");
    let d = sink.record("d", &body("ud"));
    let r = sink.write_at(&[&d], t0 + 31 * day).await;
    assert_eq!((r.loaded, r.rejected.len()), (1, 0), "{r:?}");
    let mut ids: Vec<String> = env.column("SELECT message_id FROM sqs2pg_ledger").await;
    ids.sort();
    assert_eq!(ids, ["a", "c", "d"], "b, two generations old, is pruned");
    let generation: i64 = env
        .scalar("SELECT generation FROM sqs2pg_ledger_state")
        .await;
    assert!(generation > 100_000, "{generation}");
    drop(sink);
    login_role.drop_in(&env).await;
}

/// A database migrated by a version without the rotation function: `run` refuses to start
/// (exit 2) and says to migrate; after `migrate` it loads.
#[tokio::test(flavor = "multi_thread")]
async fn run_on_a_database_without_the_rotation_function_says_to_migrate() {
    let env = TestEnv::new().await;
    env.db()
        .await
        .batch_execute("DROP FUNCTION sqs2pg_ledger_rotate(bigint)")
        .await
        .unwrap();
    env.send(&[login("u1", "10.8.0.2", "d")]).await;
    let run = ["run", "--until-empty", "--wait-seconds", "1"];
    let out = env.run_cmd(&run);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("function sqs2pg_ledger_rotate(bigint) does not exist: run `sqs2pg migrate`"),
        "{}",
        stderr(&out)
    );
    stdout_ok(&env.run_cmd(&["migrate"]));
    stdout_ok(&env.run_cmd(&run));
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 1);
}

/// The rotation function runs as its owner with a pinned `search_path`: a caller's temporary
/// `sqs2pg_ledger_state` (which would otherwise be found first) does not stand in for the
/// real one, so the real state is what the function moves on.
#[tokio::test(flavor = "multi_thread")]
async fn the_rotation_function_ignores_a_callers_temporary_tables() {
    let env = TestEnv::new().await;
    let login_role = ingest_login(&env).await;
    let as_ingest = connect(&login_role.url).await;
    as_ingest
        .batch_execute(
            "CREATE TEMP TABLE sqs2pg_ledger_state(id int PRIMARY KEY, generation bigint);
             INSERT INTO sqs2pg_ledger_state VALUES (1, 7)",
        )
        .await
        .unwrap();
    let rotated: bool = as_ingest
        .scalar("SELECT sqs2pg_ledger_rotate(100500)")
        .await;
    assert!(!rotated, "the first generation truncates nothing");
    let real: i64 = env
        .scalar("SELECT generation FROM sqs2pg_ledger_state")
        .await;
    assert_eq!(real, 100_500);
    let temp: i64 = as_ingest
        .scalar("SELECT generation FROM pg_temp.sqs2pg_ledger_state")
        .await;
    assert_eq!(temp, 7, "the caller's temporary table is untouched");
    drop(as_ingest);
    login_role.drop_in(&env).await;
}

/// The ledger's generation state, as the owner reads it.
async fn ledger_state(env: &TestEnv) -> i64 {
    env.scalar("SELECT generation FROM sqs2pg_ledger_state")
        .await
}

/// An ingest login that calls the rotation function itself, with the next generations and
/// with the largest number there is, neither empties a ledger table still in retention nor
/// moves the state past the database's clock: the ids committed now stay, a redelivery of
/// them is still a duplicate, and the state is at most the clock's generation a skew
/// tolerance ahead.
#[tokio::test(flavor = "multi_thread")]
async fn an_ingest_login_cannot_rotate_the_ledger_ahead_of_the_clock() {
    let env = TestEnv::new().await;
    let login_role = ingest_login(&env).await;
    let mut sink = env.sink_as(&login_role.url).await;
    let batch = [
        sink.record("kept-1", &login("u1", "10.8.1.1", "d")),
        sink.record("kept-2", &login("u2", "10.8.1.2", "d")),
    ];
    assert_eq!(sink.write(&batch).await.loaded, 2);
    let now = ledger_state(&env).await;
    let as_ingest = connect(&login_role.url).await;
    for target in [now + 1, now + 2, now + 3, i64::MAX] {
        let _: bool = as_ingest
            .scalar_with("SELECT sqs2pg_ledger_rotate($1)", &[&target])
            .await;
    }
    let latest = ledger_generation(SystemTime::now() + LEDGER_SKEW_TOLERANCE).number;
    let state = ledger_state(&env).await;
    assert!(
        state <= latest,
        "state {state} is past the clock's {latest}"
    );
    let mut ids: Vec<String> = env.column("SELECT message_id FROM sqs2pg_ledger").await;
    ids.sort();
    assert_eq!(
        ids,
        ["kept-1", "kept-2"],
        "no table in retention was emptied"
    );
    let again = sink.write(&batch).await;
    assert_eq!((again.loaded, again.duplicates), (0, 2), "{again:?}");
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 2);
    drop((as_ingest, sink));
    login_role.drop_in(&env).await;
}
