//! Rekey on a partitioned `user_logins` and while rows are erased and loaded under it. A
//! ctid names a row only within one partition, and a slot freed by a delete and a vacuum is
//! reused by the next insert: each re-encrypted token must go back to the row it was read
//! from, and to nothing else.

use std::process::{Child, Stdio};

use sqs2pg::db::rekey::{page, update, Cursor, TokenChange, TokenColumn, TokenTable};
use sqs2pg::mask::{Column, Keyring, Masker};

use crate::helpers::{stdout_ok, summary_numbers, TestEnv};
use crate::partitions::migrated_with;
use crate::rekey::{K1, K2, UNDER_K1};

/// The spec's columns, for the partitioned layouts.
const COLUMNS: &str = "user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
    masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date";

/// Hashed by user over four partitions.
fn hash_partitioned() -> String {
    let parts: String = (0..4)
        .map(|r| {
            format!(
                "CREATE TABLE user_logins_h{r} PARTITION OF user_logins
                   FOR VALUES WITH (MODULUS 4, REMAINDER {r});"
            )
        })
        .collect();
    format!("CREATE TABLE user_logins({COLUMNS}) PARTITION BY HASH (user_id); {parts}")
}

/// By date: older than 30 days, the last 30 days, today on.
fn range_partitioned() -> String {
    format!(
        "CREATE TABLE user_logins({COLUMNS}) PARTITION BY RANGE (create_date);
         CREATE TABLE user_logins_old PARTITION OF user_logins
           FOR VALUES FROM (MINVALUE) TO (current_date - 30);
         CREATE TABLE user_logins_recent PARTITION OF user_logins
           FOR VALUES FROM (current_date - 30) TO (current_date);
         CREATE TABLE user_logins_today PARTITION OF user_logins
           FOR VALUES FROM (current_date) TO (MAXVALUE);"
    )
}

/// The address and device id user `i` sent.
fn sent(i: u32) -> (String, String) {
    (
        format!("10.9.{}.{}", i / 250, i % 250 + 1),
        format!("device-{i}"),
    )
}

fn masker(keys: &str) -> Masker {
    Masker::new(&Keyring::parse(keys).expect("test keyring"))
}

/// Inserts users `users` as a loader under `keys`' writing key would, user `i` dated
/// `(i % 3) * 20` days ago (so across every range partition).
async fn insert_users(env: &TestEnv, keys: &str, users: std::ops::Range<u32>) {
    let mut m = masker(keys);
    let (mut ids, mut ips, mut devs, mut ages) = (vec![], vec![], vec![], vec![]);
    for i in users {
        let (ip, dev) = sent(i);
        ids.push(format!("u-{i}"));
        ips.push(m.mask_ip(ip.parse().expect("test address")));
        devs.push(m.mask_device_id(&dev));
        ages.push((i % 3 * 20) as i32);
    }
    env.db()
        .await
        .execute(
            "INSERT INTO user_logins(user_id, masked_ip, masked_device_id, create_date)
             SELECT u, ip, dev, current_date - age
               FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS t(u, ip, dev, age)",
            &[&ids, &ips, &devs, &ages],
        )
        .await
        .unwrap();
}

/// Every row's tokens open, under the new key alone, to what its user sent; returns how
/// many rows there are.
async fn assert_every_row_reveals_its_users_values(env: &TestEnv) -> usize {
    let mut m = masker(K2);
    let rows = env
        .rows("SELECT user_id, masked_ip, masked_device_id FROM user_logins")
        .await;
    for row in &rows {
        let user: String = row.get("user_id");
        let i: u32 = user["u-".len()..].parse().expect("u-<n>");
        let (ip, dev) = sent(i);
        let token: String = row.get("masked_ip");
        assert_eq!(m.reveal(Column::Ip, &token).ok(), Some(ip), "{user}'s ip");
        let token: String = row.get("masked_device_id");
        let revealed = m.reveal(Column::DeviceId, &token).ok();
        assert_eq!(revealed, Some(dev), "{user}'s device id");
    }
    rows.len()
}

/// `rekey --batch-size 7` from k1 to k2; its summary numbers.
fn rekey_to_k2(env: &TestEnv) -> std::collections::BTreeMap<String, u64> {
    let out = env
        .cmd(&["rekey", "--batch-size", "7"])
        .env("SQS2PG_KEYS", format!("{K2}\n{K1}"))
        .output()
        .expect("spawn sqs2pg");
    summary_numbers(&stdout_ok(&out))
}

/// Hash and range partitions each hold a row at `(0,1)`, `(0,2)`…: after rekey every row
/// still reveals what its own user sent (none took another partition's token), and nothing
/// is left under k1.
#[tokio::test(flavor = "multi_thread")]
async fn rekey_on_hash_and_range_partitions_keeps_each_users_tokens() {
    for ddl in [hash_partitioned(), range_partitioned()] {
        let env = migrated_with(&ddl).await;
        insert_users(&env, K1, 0..60).await;
        let partitions: i64 = env
            .scalar("SELECT count(DISTINCT tableoid) FROM user_logins")
            .await;
        assert!(partitions >= 3, "rows in {partitions} partitions");
        let n = rekey_to_k2(&env);
        assert_eq!(
            (n["rows updated"], n["still under old keys"]),
            (60, 0),
            "{n:?}"
        );
        assert_eq!(env.count(UNDER_K1).await, 0);
        assert_eq!(assert_every_row_reveals_its_users_values(&env).await, 60);
    }
}

/// A rekey towards k2 in the background.
fn spawn_rekey(env: &TestEnv) -> Child {
    env.cmd(&["rekey", "--batch-size", "5"])
        .env("SQS2PG_KEYS", format!("{K2}\n{K1}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sqs2pg rekey")
}

/// While rekey walks 2,000 rows under k1, users are erased (deleted, then vacuumed, so their
/// slots are reused) and new users load under k2, as `run` with the rotated keyring loads
/// them: afterwards every row reveals what its own user sent and nothing is under k1.
#[tokio::test(flavor = "multi_thread")]
async fn rekey_racing_erasures_and_loads_never_gives_a_row_another_users_token() {
    let env = migrated_with(&hash_partitioned()).await;
    insert_users(&env, K1, 0..2000).await;
    let mut rekey = spawn_rekey(&env);
    let db = env.db().await;
    let (mut erased, mut next) = (0u64, 2000u32);
    while rekey.try_wait().expect("rekey status").is_none() {
        erased += db
            .execute(
                "DELETE FROM user_logins WHERE user_id IN
                   (SELECT user_id FROM user_logins ORDER BY random() LIMIT 20)",
                &[],
            )
            .await
            .unwrap();
        db.batch_execute("VACUUM user_logins").await.unwrap();
        insert_users(&env, K2, next..next + 20).await;
        next += 20;
    }
    let out = rekey.wait_with_output().expect("rekey output");
    let n = summary_numbers(&stdout_ok(&out));
    assert!(next > 2000, "no erasure raced the rekey");
    assert_eq!(env.count(UNDER_K1).await, 0, "{n:?}");
    let rows = assert_every_row_reveals_its_users_values(&env).await;
    assert_eq!(rows as u64, u64::from(next) - erased, "{n:?}");
}

/// `user_logins`'s token columns as rekey walks them.
fn login_tokens() -> TokenTable {
    let column = |name: &str, c: Column| TokenColumn {
        name: name.into(),
        context: c.into(),
        limit: None,
    };
    TokenTable {
        name: "user_logins".into(),
        columns: vec![
            column("masked_ip", Column::Ip),
            column("masked_device_id", Column::DeviceId),
        ],
        cursor: Cursor::Ctid,
    }
}

/// The race of the test above in slow motion, on the queries rekey runs: a page is read, its
/// rows are erased, vacuumed, and their slots taken by other users' rows under k2, then the
/// page's re-encrypted tokens are written back. Nothing is written (the rows there no longer
/// hold what was read), and the new users keep their own tokens.
#[tokio::test(flavor = "multi_thread")]
async fn a_row_replaced_at_its_ctid_between_read_and_write_keeps_its_own_tokens() {
    let env = TestEnv::new().await;
    insert_users(&env, K1, 0..5).await;
    let db = env.db().await;
    let table = login_tokens();
    let page = page(&*db, &table, "user_logins", "v1:k2:", "(0,0)", 100)
        .await
        .unwrap();
    let mut m = masker(&format!("{K2}\n{K1}"));
    let changes: Vec<TokenChange> = page
        .into_iter()
        .map(|read| {
            let columns = [Column::Ip, Column::DeviceId];
            let tokens = columns
                .iter()
                .zip(&read.tokens)
                .map(|(c, t)| {
                    t.as_ref().map(|t| {
                        let plain = m.open(*c, t).expect("a k1 token");
                        m.seal(*c, &plain)
                    })
                })
                .collect();
            TokenChange { read, tokens }
        })
        .collect();
    for sql in ["DELETE FROM user_logins", "VACUUM user_logins"] {
        db.batch_execute(sql).await.unwrap();
    }
    insert_users(&env, K2, 100..105).await;
    let reused: Vec<String> = env.column("SELECT ctid::text FROM user_logins").await;
    assert!(
        changes.iter().all(|c| reused.contains(&c.read.key)),
        "the new rows took the old slots: {reused:?}"
    );
    let written = update(&*db, &table, "user_logins", &changes).await.unwrap();
    assert_eq!(written, 0);
    assert_eq!(assert_every_row_reveals_its_users_values(&env).await, 5);
}
