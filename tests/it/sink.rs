//! The sink on real Postgres: the binary `COPY` fast path, its fall-back to the checked
//! path on redeliveries, concurrent writers, the ledger's generations, and every column type
//! `user_logins` may have been altered to.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::db_faults::lock_waiters;
use crate::helpers::{
    login, stdout_ok, wait_until, SinkRecord, TestEnv, TestSink, LEDGER_GENERATION_DAYS,
};

/// The record of a valid login whose user_id is its message id.
fn rec(sink: &mut TestSink, id: &str) -> SinkRecord {
    sink.record(id, &login(id, "10.1.0.1", "d"))
}

/// A batch holding ids already committed (a redelivery) next to new ones and a repeat: the
/// `COPY` fast path meets the ledger's key, the batch goes again on the checked path, and
/// only the new ids land, once.
#[tokio::test(flavor = "multi_thread")]
async fn redelivered_ids_in_a_batch_fall_back_to_the_checked_path() {
    let env = TestEnv::new().await;
    let mut sink = env.sink().await;
    let first = [rec(&mut sink, "a"), rec(&mut sink, "b")];
    let r = sink.write(&first).await;
    assert_eq!((r.loaded, r.duplicates), (2, 0));
    assert!(!r.fell_back, "new ids commit on the COPY fast path");

    let bad = sink.record("r", "{");
    let second = [
        rec(&mut sink, "b"),
        rec(&mut sink, "c"),
        rec(&mut sink, "c"),
        rec(&mut sink, "a"),
        bad.clone(),
        rec(&mut sink, "d"),
    ];
    let r = sink.write(&second).await;
    assert_eq!((r.loaded, r.duplicates), (2, 3), "{r:?}");
    assert!(r.fell_back, "COPY met the ledger's key and gave way: {r:?}");
    assert_eq!(r.rejected.len(), 1);
    let r = sink.write(&[bad]).await;
    assert_eq!((r.loaded, r.duplicates, r.rejected.len()), (0, 1, 0));

    let users: Vec<String> = env
        .column("SELECT user_id FROM user_logins ORDER BY user_id")
        .await;
    assert_eq!(users, ["a", "b", "c", "d"]);
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM sqs2pg_ledger").await, 5);
}

/// Writers on their own connections, handed the same ids in opposite orders at once (as
/// pollers racing on a visibility timeout would): every id lands exactly once and no batch
/// fails, deadlocks included.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_with_overlapping_batches_load_each_id_once() {
    let env = TestEnv::new().await;
    let mut maker = env.sink().await;
    let all: Vec<SinkRecord> = (0..2000)
        .map(|i| {
            let id = format!("m{i:05}");
            maker.record(&id, &login(&id, "10.2.0.1", "d"))
        })
        .collect();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let mut s = env.sink().await;
        let mut mine: Vec<SinkRecord> = all.clone();
        if w % 2 == 1 {
            mine.reverse();
        }
        tasks.push(tokio::spawn(async move {
            let mut loaded = 0;
            for batch in mine.chunks(250) {
                loaded += s.write(batch).await.loaded;
            }
            loaded
        }));
    }
    let mut loaded = 0;
    for t in tasks {
        loaded += t.await.unwrap();
    }
    assert_eq!(loaded, 2000);
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 2000);
    assert_eq!(
        env.count("SELECT count(DISTINCT user_id) FROM user_logins")
            .await,
        2000
    );
}

/// `user_logins` altered by an operator: each app_version type, and a domain the binary
/// `COPY` cannot encode (rows then go through the `unnest` insert), all load the same
/// values.
#[tokio::test(flavor = "multi_thread")]
async fn every_app_version_column_type_loads() {
    let cases = [
        ("smallint", "32099"),
        ("integer", "20300"),
        ("bigint", "20300"),
        ("numeric(10)", "20300"),
        ("text", "2.3.0"),
        ("char(8)", "2.3.0"),
        ("version_text", "2.3.0"),
    ];
    for (ty, want) in cases {
        let env = TestEnv::unmigrated().await;
        env.db()
            .await
            .batch_execute(&format!(
            "CREATE DOMAIN version_text AS varchar(20) CHECK (VALUE <> '');
             CREATE TABLE user_logins(user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
               masked_device_id varchar(256), locale varchar(32), app_version {ty}, create_date date)"
        ))
            .await
            .unwrap();
        stdout_ok(&env.run_cmd(&["migrate"]));
        let mut sink = env.sink().await;
        let version = if ty == "smallint" { "3.20.99" } else { "2.3.0" };
        let mut body: serde_json::Value =
            serde_json::from_str(&login("u", "10.3.0.1", "d")).unwrap();
        body["app_version"] = version.into();
        let mut null_version = body.clone();
        null_version["app_version"] = serde_json::Value::Null;
        let recs = [
            sink.record("one", &body.to_string()),
            sink.record("two", &null_version.to_string()),
        ];
        let r = sink.write(&recs).await;
        assert_eq!((r.loaded, r.rejected.len()), (2, 0), "{ty}: {r:?}");
        let got: HashSet<Option<String>> = env
            .column("SELECT app_version::text FROM user_logins")
            .await
            .into_iter()
            .collect();
        assert_eq!(got, HashSet::from([Some(want.to_owned()), None]), "{ty}");
    }
}

/// The ledger keeps two 15-day generations: a redelivery in the next generation is still a
/// duplicate; ids two generations old are pruned by one TRUNCATE.
#[tokio::test(flavor = "multi_thread")]
async fn ledger_generations_dedup_and_prune() {
    let env = TestEnv::new().await;
    let mut sink = env.sink().await;
    let rec = |s: &mut TestSink, id: &str, user: &str| s.record(id, &login(user, "10.7.0.1", "d"));
    let day = Duration::from_secs(86_400);
    // An hour into a generation (away from the switch, where ids go into both tables), years
    // ago: the rotation function starts no generation ahead of the database's clock.
    let t0: SystemTime = UNIX_EPOCH + 15 * day * 1300 + Duration::from_secs(3600);
    let batch = [rec(&mut sink, "a", "ua"), rec(&mut sink, "b", "ub")];
    let both = [&batch[0], &batch[1]];
    assert_eq!(sink.write_at(&both, t0).await.loaded, 2);
    // Same generation: duplicates.
    assert_eq!(sink.write_at(&both, t0 + day).await.duplicates, 2);
    // Next generation: found in the previous table, still duplicates.
    let (a, c) = (rec(&mut sink, "a", "ua"), rec(&mut sink, "c", "uc"));
    let r = sink.write_at(&[&a, &c], t0 + 16 * day).await;
    assert_eq!((r.loaded, r.duplicates), (1, 1));
    // "a" is now recorded in both generations (its redelivery renews it), "b" only in the old.
    assert_eq!(env.count("SELECT count(*) FROM sqs2pg_ledger").await, 4);
    // Two generations later the first table is reused and truncated: b is gone; a and c,
    // seen in the last generation, stay.
    let d = rec(&mut sink, "d", "ud");
    let r = sink.write_at(&[&d], t0 + 31 * day).await;
    assert_eq!(r.loaded, 1);
    let mut ids: Vec<String> = env.column("SELECT message_id FROM sqs2pg_ledger").await;
    ids.sort();
    assert_eq!(ids, ["a", "c", "d"]);
    // A second writer that still believes in the old generation does not truncate again.
    let mut other = env.sink().await;
    let c = rec(&mut other, "c", "uc");
    let r = other.write_at(&[&c], t0 + 31 * day).await;
    assert_eq!(r.duplicates, 1);
    assert_eq!(env.count("SELECT count(*) FROM sqs2pg_ledger").await, 4);
}

/// Two writers whose clocks put them on either side of a generation switch (minutes apart)
/// commit the same redelivered message id at the same moment: one row, one duplicate. Both
/// are held by a lock on `user_logins` (the second, with the rule, behind the first's ledger
/// key) until both have reached the ledger.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivery_straddling_a_generation_switch_is_one_row() {
    let env = TestEnv::new().await;
    let (mut before, mut after) = (env.sink().await, env.sink().await);
    // A switch years ago: the rotation function starts no generation ahead of the clock.
    let switch: SystemTime = UNIX_EPOCH + Duration::from_secs(15 * 86_400 * 1301);
    let skew = Duration::from_secs(5 * 60);
    // Each has written in its own generation already, so neither waits on the other's
    // rotation of the ledger state: only the ledger itself can keep them apart.
    let warm_a = before.record("warm-a", &login("wa", "10.7.0.8", "d"));
    before.write_at(&[&warm_a], switch - skew).await;
    let warm_b = after.record("warm-b", &login("wb", "10.7.0.8", "d"));
    after.write_at(&[&warm_b], switch + skew).await;
    let body = login("straddler", "10.7.0.9", "d");
    let (a, b) = (
        before.record("same-id", &body),
        after.record("same-id", &body),
    );
    let mut locker = env.db().await;
    let lock = locker.lock_user_logins().await;
    let first = tokio::spawn(async move { before.write_at(&[&a], switch - skew).await });
    let second = tokio::spawn(async move { after.write_at(&[&b], switch + skew).await });
    // Only this database's waits count: another test's would let the lock go before both
    // writers claimed the id, and one committing before the other starts proves nothing.
    wait_until(
        "both writers blocked in this database",
        Duration::from_secs(30),
        || async { lock_waiters(&env).await >= 2 },
    )
    .await;
    lock.rollback().await.unwrap();
    let (r1, r2) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(r1.loaded + r2.loaded, 1, "{r1:?} {r2:?}");
    assert_eq!(r1.duplicates + r2.duplicates, 1);
    let rows = "SELECT count(*) FROM user_logins WHERE user_id = 'straddler'";
    assert_eq!(env.count(rows).await, 1);
}

/// A long reader of the ledger (a `pg_dump`) holds the table a generation switch would empty:
/// the switch gives way after its lock timeout and the batch commits while the reader still
/// reads, instead of queueing every writer behind the `TRUNCATE`. Once the reader is done, a
/// writer starts the generation.
#[tokio::test(flavor = "multi_thread")]
async fn a_generation_switch_gives_way_to_a_long_reader_of_the_ledger() {
    let env = TestEnv::new().await;
    let mut sink = env.sink().await;
    let day = Duration::from_secs(86_400);
    // An hour into a generation years ago (the database's clock is past it).
    let t0: SystemTime = UNIX_EPOCH + 15 * day * 1300 + Duration::from_secs(3600);
    let a = rec(&mut sink, "a");
    assert_eq!(sink.write_at(&[&a], t0).await.loaded, 1);
    let started: i64 = env
        .scalar("SELECT generation FROM sqs2pg_ledger_state")
        .await;
    // The next generation reuses, and would empty, the other table.
    let reused = format!("sqs2pg_ledger_{}", (started + 1).rem_euclid(2));
    let mut reader = env.db().await;
    let dump = reader.transaction().await.unwrap();
    dump.batch_execute(&format!("SELECT count(*) FROM {reused}"))
        .await
        .unwrap();

    let b = rec(&mut sink, "b");
    let next = t0 + 16 * day;
    let written = tokio::time::timeout(Duration::from_secs(120), sink.write_at(&[&b], next))
        .await
        .expect("the batch waited for the reader");
    assert_eq!(written.loaded, 1);
    let during: i64 = env
        .scalar("SELECT generation FROM sqs2pg_ledger_state")
        .await;
    assert_eq!(during, started, "the switch gave way");
    dump.commit().await.unwrap();

    let mut after = env.sink().await;
    let c = rec(&mut after, "c");
    assert_eq!(after.write_at(&[&c], next).await.loaded, 1);
    let now: i64 = env
        .scalar("SELECT generation FROM sqs2pg_ledger_state")
        .await;
    assert_eq!(now, started + 1);
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 3);
}

/// The ledger's generation length is stated where an operator reads it (the view's COMMENT
/// in the database, the README's "Tables") as the code has it.
#[tokio::test(flavor = "multi_thread")]
async fn the_ledgers_generation_length_is_stated_as_the_code_has_it() {
    let days = LEDGER_GENERATION_DAYS;
    let env = TestEnv::new().await;
    let comment: String = env
        .scalar("SELECT obj_description('sqs2pg_ledger'::regclass, 'pg_class')")
        .await;
    let stated = format!("two {days}-day generations");
    assert!(comment.contains(&stated), "{comment:?} lacks {stated:?}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let stated = format!("each one {days}-day generation");
    assert!(readme.contains(&stated), "the README lacks {stated:?}");
}
