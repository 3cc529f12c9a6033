//! Rekey on tables it cannot wholly re-encrypt: values from an older loader and tokens whose
//! key is gone are left and counted, a kid too long for a column is refused before anything
//! is written, and an interrupted walk resumes where the database says it stopped.

use std::process::Output;

use crate::helpers::{login, stderr, stdout_ok, summary_numbers, RunOptions, TestEnv};

/// Two fixed keys: k1 (0x01 bytes) and k2 (0x02 bytes).
pub(crate) const K1: &str =
    "k1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==";
pub(crate) const K2: &str =
    "k2=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg==";

/// The binary's `rekey` with the keyring `keys`.
fn rekey(env: &TestEnv, keys: &str) -> Output {
    env.cmd(&["rekey"])
        .env("SQS2PG_KEYS", keys)
        .output()
        .expect("spawn sqs2pg")
}

/// `n` logins loaded by `run` under k1.
async fn load_under_k1(env: &TestEnv, n: usize) {
    let bodies: Vec<String> = (0..n)
        .map(|i| {
            login(
                &format!("old-{i}"),
                &format!("10.6.0.{i}"),
                &format!("dev-{i}"),
            )
        })
        .collect();
    env.send(&bodies).await;
    let s = env.drain_with(RunOptions::default().keys(K1)).await;
    assert_eq!(s.loaded, n as u64);
}

/// `n` rows as an older loader wrote them: addresses and device ids in plain text.
async fn insert_legacy_rows(env: &TestEnv, from: i32, n: i32) {
    env.db()
        .await
        .execute(
            "INSERT INTO user_logins(user_id, masked_ip, masked_device_id)
             SELECT 'legacy-' || i, '192.0.2.' || i, 'legacy-device-' || i
               FROM generate_series($1::int, $1::int + $2::int - 1) AS i",
            &[&from, &n],
        )
        .await
        .unwrap();
}

/// Every legacy row's values, in order.
async fn legacy_values(env: &TestEnv) -> Vec<(String, String)> {
    env.rows("SELECT masked_ip, masked_device_id FROM user_logins WHERE user_id LIKE 'legacy-%' ORDER BY user_id")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

pub(crate) const UNDER_K1: &str = "SELECT count(*) FROM user_logins
    WHERE masked_ip LIKE 'v1:k1:%' OR masked_device_id LIKE 'v1:k1:%'";

/// 10 plain-text rows around 20 rows under k1: rekey to k2 re-encrypts the 20, leaves the
/// 10 as they were (locating them by ctid, never printing a value) and finishes with none
/// under old keys.
#[tokio::test(flavor = "multi_thread")]
async fn rekey_over_legacy_plain_text_rows_finishes_with_10_left_as_they_were() {
    let env = TestEnv::new().await;
    insert_legacy_rows(&env, 1, 5).await;
    load_under_k1(&env, 20).await;
    insert_legacy_rows(&env, 6, 5).await;
    let before = legacy_values(&env).await;

    let out = rekey(&env, &format!("{K2}\n{K1}"));
    let text = stdout_ok(&out);
    assert!(text.contains("10 left as they were"), "{text}");
    assert!(
        text.contains("user_logins ctid (0,1)..(0,5), (0,26)..(0,30)"),
        "{text}"
    );
    let n = summary_numbers(&text);
    assert_eq!(
        (n["rows updated"], n["still under old keys"]),
        (20, 0),
        "{text}"
    );
    for raw in ["192.0.2.", "legacy-device"] {
        assert!(!text.contains(raw) && !stderr(&out).contains(raw), "{raw}");
    }
    assert_eq!(legacy_values(&env).await, before);
    assert_eq!(env.count(UNDER_K1).await, 0);
    let progress = "SELECT count(*) FROM sqs2pg_rekey_progress";
    assert_eq!(
        env.count(progress).await,
        0,
        "progress is cleared when done"
    );
}

/// Tokens whose key is not in the keyring are left and counted as still under old keys;
/// rekey with the key back in the ring then finishes with 0.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_whose_key_is_missing_are_left_and_still_counted() {
    let env = TestEnv::new().await;
    load_under_k1(&env, 5).await;
    let out = stdout_ok(&rekey(&env, K2));
    assert!(out.contains("5 left as they were"), "{out}");
    assert_eq!(summary_numbers(&out)["still under old keys"], 5, "{out}");
    assert_eq!(env.count(UNDER_K1).await, 5);

    let out = stdout_ok(&rekey(&env, &format!("{K2}\n{K1}")));
    assert!(out.contains("0 left as they were"), "{out}");
    let n = summary_numbers(&out);
    assert_eq!(
        (n["rows updated"], n["still under old keys"]),
        (5, 0),
        "{out}"
    );
}

/// A writing kid that makes tokens longer than `masked_ip` holds is refused (exit 2) before
/// any row changes, instead of failing halfway with 22001.
#[tokio::test(flavor = "multi_thread")]
async fn a_kid_too_long_for_the_column_is_refused_up_front() {
    let env = TestEnv::new().await;
    load_under_k1(&env, 3).await;
    let longest: i32 = env
        .scalar("SELECT max(length(masked_ip)) FROM user_logins")
        .await;
    env.db()
        .await
        .batch_execute(&format!(
            "ALTER TABLE user_logins ALTER masked_ip TYPE varchar({})",
            longest + 5
        ))
        .await
        .unwrap();
    let long_kid = K2.replacen("k2=", "k2-with-a-long-name=", 1);
    let out = rekey(&env, &format!("{long_kid}\n{K1}"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("masked_ip holds {}", longest + 5)),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.count(UNDER_K1).await, 3, "nothing was re-encrypted");
}

/// A walk towards k2 recorded as having reached the 5th row resumes after it: the rows
/// behind the cursor are not revisited and the final count says so; the progress is then
/// cleared, and the next rekey finishes them.
#[tokio::test(flavor = "multi_thread")]
async fn rekey_resumes_from_the_progress_kept_in_the_database() {
    let env = TestEnv::new().await;
    load_under_k1(&env, 10).await;
    let fifth: String = env
        .scalar(
            // The alias keeps ORDER BY on the tid: text sorts (0,10) before (0,2).
            "SELECT ctid::text AS at FROM user_logins ORDER BY ctid OFFSET 4 LIMIT 1",
        )
        .await;
    env.db()
        .await
        .execute(
            "INSERT INTO sqs2pg_rekey_progress(table_name, writing_kid, cursor)
             VALUES ('user_logins', 'k2', $1)",
            &[&fifth],
        )
        .await
        .unwrap();
    let rotated = format!("{K2}\n{K1}");
    let out = stdout_ok(&rekey(&env, &rotated));
    assert!(
        out.contains(&format!("resumed after ctid    {fifth}")),
        "{out}"
    );
    let n = summary_numbers(&out);
    assert_eq!(
        (n["rows updated"], n["still under old keys"]),
        (5, 5),
        "{out}"
    );

    let out = stdout_ok(&rekey(&env, &rotated));
    assert!(!out.contains("resumed"), "{out}");
    let n = summary_numbers(&out);
    assert_eq!(
        (n["rows updated"], n["still under old keys"]),
        (5, 0),
        "{out}"
    );
}
