//! The database faults production brings, each on a real cluster: settings that point at
//! the wrong place, an operator revoking a grant or altering a column mid-run, a task that
//! panics, a half-open connection, a failover to a promoted standby.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::faults::{multi_host_url, PrivatePg, Proxy};
use crate::helpers::{connect, login, stderr, wait_until, Daemon, Proc, RunOptions, TestEnv};
use crate::reliability::{assert_invariants, assert_invariants_at, fill_queue, workload};

/// `sqs2pg run` (daemon and drain) with `DATABASE_URL` set to `url`: its exit code and its
/// stderr. A refusal taken as an outage would make the daemon wait for ever, so the run
/// gets a minute, far past what an answer takes, before the test fails.
async fn run_against(env: &TestEnv, url: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Proc::spawn(
        env.cmd(args)
            .env("DATABASE_URL", url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let code = child.wait_exit(Duration::from_secs(60)).await;
    (code, stderr(&child.wait_with_output()))
}

/// Both run modes exit 2 without "is it running?" retries, with the server's words.
async fn assert_refused_at_once(env: &TestEnv, url: &str, server_says: &str) {
    for args in [&["run", "--until-empty"][..], &["run"][..]] {
        let (code, err) = run_against(env, url, args).await;
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(server_says), "{args:?}: {err}");
        assert!(!err.contains("is it running"), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_database_or_role_exits_2_with_the_servers_words() {
    let env = TestEnv::new().await;
    let no_db = env.database_url.replace(env.db_name(), "it_no_such_db");
    assert_refused_at_once(&env, &no_db, r#"database "it_no_such_db" does not exist"#).await;
    let no_role = env
        .database_url
        .replacen("postgres@", "it_no_such_role@", 1);
    assert_refused_at_once(&env, &no_role, r#"role "it_no_such_role" does not exist"#).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_or_ca_exits_2_with_the_reason() {
    let env = TestEnv::new().await;
    let pg = tokio::task::spawn_blocking(PrivatePg::start).await.unwrap();
    let admin = crate::helpers::connect(&pg.url).await;
    admin
        .batch_execute(
            "CREATE ROLE it_app LOGIN PASSWORD 'right';
             DO $$ BEGIN EXECUTE format(
               'COPY (VALUES (%L), (%L)) TO %L',
               'host all postgres 127.0.0.1/32 trust',
               'host all all 127.0.0.1/32 scram-sha-256',
               current_setting('data_directory') || '/pg_hba.conf'); END $$;
             SELECT pg_reload_conf();",
        )
        .await
        .expect("password auth for it_app");
    let wrong = format!("postgres://it_app:wrong@127.0.0.1:{}/postgres", pg.port);
    assert_refused_at_once(&env, &wrong, "password authentication failed").await;

    let tls = tokio::task::spawn_blocking(PrivatePg::start_tls)
        .await
        .unwrap();
    // The system's roots do not know the test CA.
    let unknown_ca = format!("{}?sslmode=require", tls.url);
    assert_refused_at_once(&env, &unknown_ca, "certificate").await;
}

/// Sends `bodies` to a daemon whose writes are failing, waits until its batch is being
/// retried, then lets `hold` pass: past the queue's visibility timeout, so a batch that went
/// back to the queue would be received again.
async fn send_and_hold(env: &TestEnv, daemon: &Daemon, bodies: &[String], hold: Duration) {
    env.send(bodies).await;
    wait_until("writes failing", Duration::from_secs(30), || async {
        daemon.writes_failing()
    })
    .await;
    tokio::time::sleep(hold).await;
}

/// An operator revokes INSERT mid-run: the batches are held and retried (not ready, no
/// rejects, nothing redelivered), and everything loads once the grant is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_grant_holds_the_messages_until_it_is_back() {
    let env = TestEnv::with_visibility(4).await;
    let db = env.db().await;
    let role = format!("{}_writer", env.db_name());
    db.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN;
         GRANT INSERT ON user_logins, user_logins_rejects TO {role};
         GRANT SELECT (message_id) ON user_logins_rejects TO {role};
         GRANT SELECT, INSERT ON sqs2pg_ledger_0, sqs2pg_ledger_1 TO {role};
         GRANT EXECUTE ON FUNCTION sqs2pg_ledger_rotate(bigint) TO {role};"
    ))
    .await
    .unwrap();
    let url = env
        .database_url
        .replacen("postgres@", &format!("{role}@"), 1);
    let mut daemon = env.spawn_daemon(RunOptions::default().database_url(&url));
    daemon.wait_ready().await;
    db.batch_execute(&format!("REVOKE INSERT ON user_logins FROM {role}"))
        .await
        .unwrap();
    let w = workload(300, 0.0, 0.0, 31);
    send_and_hold(&env, &daemon, &w.bodies, Duration::from_secs(10)).await;
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        0
    );
    db.batch_execute(&format!("GRANT INSERT ON user_logins TO {role}"))
        .await
        .unwrap();
    env.wait_drained(Duration::from_secs(60)).await;
    let s = daemon.stop_and_join().await;
    assert!(!daemon.writes_failing());
    assert_eq!(
        s.received, 300,
        "each message received once: none went back to the queue"
    );
    assert_eq!(s.loaded, 300);
    assert_invariants(&env, &w).await;
    db.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

/// `app_version` altered to bigint, then to text, while the daemon runs: what is sent after
/// each change loads with its value, nothing is quarantined.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_type_changed_mid_run_takes_the_new_values() {
    let env = TestEnv::new().await;
    let mut daemon = env.spawn_daemon(RunOptions::default());
    let body = |i: usize, version: &str| {
        let mut b: serde_json::Value =
            serde_json::from_str(&login(&format!("u{i}"), "10.8.0.1", "d")).unwrap();
        b["app_version"] = version.into();
        b.to_string()
    };
    let mut sent = 0;
    for (ddl, version, stored) in [
        ("SELECT 1", "1.2.3", "10203"),
        (
            "ALTER TABLE user_logins ALTER app_version TYPE bigint",
            "4.5.6",
            "40506",
        ),
        (
            "ALTER TABLE user_logins ALTER app_version TYPE text",
            "7.8.9-rc1",
            "7.8.9-rc1",
        ),
    ] {
        env.db().await.batch_execute(ddl).await.unwrap();
        let bodies: Vec<String> = (sent..sent + 50).map(|i| body(i, version)).collect();
        env.send(&bodies).await;
        sent += 50;
        wait_until(&format!("{sent} rows"), Duration::from_secs(90), || async {
            daemon.loaded() >= sent as u64
        })
        .await;
        let n = env
            .count(&format!(
                "SELECT count(*) FROM user_logins WHERE app_version::text = '{stored}'"
            ))
            .await;
        assert_eq!(n, 50, "after {ddl:?}");
    }
    daemon.stop_and_join().await;
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        0
    );
}

/// Backends of this test's database waiting on a lock.
pub(crate) async fn lock_waiters(env: &TestEnv) -> i64 {
    env.count(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .await
}

/// The path to Postgres freezes (a NAT that dropped its state: no FIN, no RST, nothing)
/// while the writers are inside their transactions. Each gives its connection up after the
/// write bound, ends the orphaned server session that holds its ledger ids, and retries on
/// a fresh connection: nothing lost, nothing doubled, the queue drains.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_frozen_mid_batch_is_given_up_and_the_batch_retried() {
    let env = TestEnv::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = env
        .database_url
        .replacen("127.0.0.1:5432", &proxy.addr.to_string(), 1);
    let bound = Duration::from_secs(5);
    let opts = RunOptions::default()
        .database_url(&via_proxy)
        .db_write_timeout(bound);
    let mut daemon = env.spawn_daemon(opts);
    daemon.wait_ready().await;
    let mut locker = env.db().await;
    let lock = locker.lock_user_logins().await;
    let w = workload(2000, 0.0, 0.0, 43);
    env.send(&w.bodies).await;
    wait_until(
        "writers inside a transaction",
        Duration::from_secs(30),
        || async { lock_waiters(&env).await >= 1 },
    )
    .await;
    proxy.freeze(true);
    let frozen = Instant::now();
    lock.rollback().await.unwrap();
    wait_until(
        "the frozen write given up",
        Duration::from_secs(60),
        || async { daemon.retries() > 0 },
    )
    .await;
    let detected = frozen.elapsed();
    env.wait_drained(Duration::from_secs(90)).await;
    eprintln!(
        "frozen path: given up after {detected:?} (bound {bound:?}), drained after {:?}",
        frozen.elapsed()
    );
    daemon.stop_and_join().await;
    assert_invariants(&env, &w).await;
}

/// 5,000 messages on a queue that dead-letters after 3 receives, a consumer on the
/// multi-host URL of a primary and its synchronous standby, and the primary made unusable
/// mid-stream by `make_unusable`, then the standby promoted: every message is exactly one
/// row or reject on the new primary, none reached the dead-letter queue, the queue drains.
async fn survives_failover(
    seed: u64,
    make_unusable: impl AsyncFnOnce(PrivatePg, &Daemon) -> PrivatePg,
) {
    let (env, dead_letters) = TestEnv::with_redrive(5, 3).await;
    let (primary, standby) = PrivatePg::start_pair_migrated().await;
    let url = multi_host_url(&primary, &standby, "postgres");
    let w = fill_queue(&env, 5000, seed).await;
    let mut daemon = env.spawn_daemon(RunOptions::default().database_url(&url));
    wait_until(
        "1000 rows on the primary",
        Duration::from_secs(120),
        || async { daemon.loaded() >= 1000 },
    )
    .await;
    let failed_at = Instant::now();
    let _old = make_unusable(primary, &daemon).await;
    standby.promote().await;
    env.wait_drained(Duration::from_secs(120)).await;
    let drained = failed_at.elapsed();
    let s = daemon.stop_and_join().await;
    eprintln!("failover: drained {drained:?} after the primary failed; {} receives for 5000 messages, {} retries", s.received, daemon.retries());
    assert_eq!(s.received, 5000, "no message was received twice");
    assert_eq!(dead_letters.depth().await, 0, "nothing dead-lettered");
    assert_invariants_at(&env, &connect(&standby.url).await, &w).await;
}

/// The primary crashes and the standby is promoted only a minute later (twelve visibility
/// timeouts): the held messages are kept invisible meanwhile, so none is received twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_crash_fails_over_to_the_promoted_standby_exactly_once() {
    survives_failover(41, async |primary, _| {
        let primary = tokio::task::spawn_blocking(move || {
            primary.stop_immediate();
            primary
        })
        .await
        .unwrap();
        // The failover window: no primary at all.
        tokio::time::sleep(Duration::from_secs(60)).await;
        primary
    })
    .await;
}

/// The old primary stays up but turns read-only (what a writer whose DNS still points at a
/// demoted node sees): open connections fail with 25006, and the writers find the new
/// primary through the multi-host URL.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_turned_read_only_sends_the_writers_to_the_promoted_standby() {
    survives_failover(42, async |primary, daemon| {
        let old = connect(&primary.url).await;
        let before = daemon.retries();
        // One statement per call: ALTER SYSTEM refuses to run in a transaction block.
        for sql in [
            "ALTER SYSTEM SET default_transaction_read_only = on",
            "SELECT pg_reload_conf()",
        ] {
            old.batch_execute(sql).await.unwrap();
        }
        wait_until(
            "a write refused as read-only",
            Duration::from_secs(30),
            || async { daemon.retries() > before },
        )
        .await;
        old.batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
        primary
    })
    .await;
}

/// The table disappears mid-run (renamed away, the writers' sessions ended, so a reconnect
/// finds no `user_logins`: a setting to fix, which at start-up would be exit 2). A daemon
/// holds the batch and retries until the table is back, then loads everything once.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_gone_mid_run_holds_the_batch_until_it_is_back() {
    let env = TestEnv::with_visibility(4).await;
    let mut daemon = env.spawn_daemon(RunOptions::default());
    daemon.wait_ready().await;
    let db = env.db().await;
    db.batch_execute(
        "ALTER TABLE user_logins RENAME TO user_logins_away;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid();",
    )
    .await
    .unwrap();
    let w = workload(100, 0.0, 0.0, 44);
    send_and_hold(&env, &daemon, &w.bodies, Duration::from_secs(8)).await;
    let db = env.db().await;
    db.batch_execute("ALTER TABLE user_logins_away RENAME TO user_logins")
        .await
        .unwrap();
    env.wait_drained(Duration::from_secs(60)).await;
    let s = daemon.stop_and_join().await;
    assert_eq!(s.received, 100, "each message received once");
    assert_invariants(&env, &w).await;
}

/// A daemon started while a migration holds user_logins (ACCESS EXCLUSIVE, which blocks
/// even reads of it): it starts, becomes ready, holds what it receives through two
/// visibility timeouts (no second delivery), and loads it once the lock goes.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_started_during_a_migrations_lock_waits_then_loads() {
    let env = TestEnv::with_visibility(3).await;
    let w = workload(100, 0.0, 0.0, 45);
    let mut locker = env.db().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE user_logins IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    env.send(&w.bodies).await;
    let mut daemon = env.spawn_daemon(RunOptions::default());
    daemon.wait_ready().await;
    wait_until("all 100 received", Duration::from_secs(30), || async {
        daemon.received() == 100
    })
    .await;
    // Each held message extended twice: past two of the queue's 3 s timeouts.
    let s = daemon.hold_until_extended_then_drain(&env, tx, 200).await;
    assert_eq!(s.received, 100, "each message received once");
    assert_invariants(&env, &w).await;
}
