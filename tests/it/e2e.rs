//! End to end on real LocalStack SQS and real Postgres: what goes in, what lands, what
//! leaves the queue. The core that also runs on moto and every PostgreSQL major is in
//! [`crate::e2e_core`].

use std::collections::BTreeMap;

use crate::helpers::{login, stdout_ok, TestEnv};

/// Equal values give equal tokens across messages; different values differ; every
/// spelling of one address gives one token.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_identify_duplicates() {
    let env = TestEnv::new().await;
    env.send(&[
        login("a", "1.2.3.4", "dev-1"),
        login("b", "1.2.3.4", "dev-1"),
        login("c", "::ffff:1.2.3.4", "dev-2"),
        login("d", "5.6.7.8", "dev-3"),
        login("e", "2001:DB8::1", "dev-3"),
        login("f", "2001:db8:0:0::1", "dev-4"),
    ])
    .await;
    let s = env.drain().await;
    assert_eq!((s.loaded, s.rejected, s.deleted), (6, 0, 6));
    // user_id -> (ip token, device token)
    let tok: BTreeMap<String, (String, String)> = env
        .rows("SELECT user_id, masked_ip, masked_device_id FROM user_logins")
        .await
        .iter()
        .map(|r| {
            (
                r.get("user_id"),
                (r.get("masked_ip"), r.get("masked_device_id")),
            )
        })
        .collect();
    assert_eq!(tok["a"], tok["b"]);
    assert_eq!(tok["a"].0, tok["c"].0);
    assert_ne!(tok["a"].1, tok["c"].1);
    assert_ne!(tok["a"].0, tok["d"].0);
    assert_eq!(tok["d"].1, tok["e"].1);
    assert_eq!(tok["e"].0, tok["f"].0);
    assert_ne!(tok["d"].0, tok["e"].0);
    assert_eq!(
        env.count("SELECT count(DISTINCT masked_ip) FROM user_logins")
            .await,
        3
    );
    env.assert_queue_empty().await;
}

/// A valid body with one field set to `v`, or without it (`None`).
fn body_with(k: &str, v: Option<serde_json::Value>) -> String {
    let mut b = serde_json::json!({"user_id": "u", "app_version": "1.0", "device_type": "ios", "ip": "10.0.0.1", "locale": "US", "device_id": "d"});
    match v {
        Some(v) => b[k] = v,
        None => {
            b.as_object_mut().unwrap().remove(k);
        }
    }
    b.to_string()
}

/// One body per reject rule of the contract's table, with the reason it must get.
fn one_body_per_reject_rule() -> Vec<(String, &'static str)> {
    use serde_json::{json, Value};
    let with = |k: &str, v: Value| body_with(k, Some(v));
    vec![
        ("{not json".into(), "not_json"),
        ("[1,2,3]".into(), "not_object"),
        (body_with("ip", None), "missing_field:ip"),
        (body_with("locale", None), "missing_field:locale"),
        (with("locale", json!(5)), "wrong_type:locale"),
        (with("device_id", json!({"a": 1})), "wrong_type:device_id"),
        (with("user_id", Value::Null), "null_user_id"),
        (with("user_id", json!("")), "empty_user_id"),
        (with("user_id", json!("x".repeat(129))), "too_long:user_id"),
        (
            with("device_type", json!("x".repeat(33))),
            "too_long:device_type",
        ),
        (
            with("device_id", json!("x".repeat(200))),
            "too_long:device_id",
        ),
        (with("ip", json!("256.1.1.1")), "invalid_ip"),
        (with("ip", json!("fe80::1%eth0")), "invalid_ip"),
        (with("app_version", json!("1.100")), "bad_app_version"),
        (with("app_version", json!("1.2.3.4")), "bad_app_version"),
    ]
}

/// Each rule of the contract's table, through the whole pipeline.
#[tokio::test(flavor = "multi_thread")]
async fn every_reject_rule_end_to_end() {
    let env = TestEnv::new().await;
    let cases = one_body_per_reject_rule();
    let valid = [
        // Null fields other than user_id load as NULL; unknown keys are ignored.
        body_with("ip", Some(serde_json::Value::Null)),
        r#"{"user_id":"nulls","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null,"extra":1}"#.to_string(),
        body_with("ip", Some(serde_json::json!("224.0.0.1"))),
        body_with("user_id", Some(serde_json::json!("'); DROP TABLE user_logins; --"))),
    ];
    let mut bodies: Vec<String> = cases.iter().map(|(b, _)| b.clone()).collect();
    bodies.extend(valid.iter().cloned());
    env.send(&bodies).await;

    let s = env.drain().await;
    assert_eq!(s.loaded, valid.len() as u64);
    assert_eq!(s.rejected, cases.len() as u64);
    assert_eq!(s.unknown_keys, 1);

    // Each reject reveals to its body and carries its rule's reason.
    let got = env.revealed_rejects().await;
    let mut want: Vec<(String, String)> = cases
        .iter()
        .map(|(b, r)| (b.clone(), r.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);

    let nulls = &env
        .rows("SELECT app_version, device_type, masked_ip, locale, masked_device_id FROM user_logins WHERE user_id = 'nulls'")
        .await[..];
    let [row] = nulls else {
        panic!("one 'nulls' row, got {}", nulls.len())
    };
    assert!(row.get::<_, Option<i32>>("app_version").is_none());
    for col in ["device_type", "masked_ip", "locale", "masked_device_id"] {
        assert!(row.get::<_, Option<String>>(col).is_none(), "{col}");
    }
    let n: i64 = env
        .scalar_with(
            "SELECT count(*) FROM user_logins WHERE user_id = $1",
            &[&"'); DROP TABLE user_logins; --"],
        )
        .await;
    assert_eq!(n, 1);
    env.assert_queue_empty().await;
}

/// An operator changed app_version to text: versions are stored verbatim, and migrate
/// leaves the table as it is.
#[tokio::test(flavor = "multi_thread")]
async fn text_app_version_column_is_used_as_is() {
    let env = TestEnv::unmigrated().await;
    env.db()
        .await
        .batch_execute(
        "CREATE TABLE user_logins(user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
           masked_device_id varchar(256), locale varchar(32), app_version varchar(20), create_date date)",
    )
    .await
    .unwrap();
    let out = stdout_ok(&env.run_cmd(&["migrate"]));
    assert!(
        out.contains("user_logins_rejects") && !out.contains("user_logins,"),
        "{out}"
    );
    let out = stdout_ok(&env.run_cmd(&["migrate"]));
    assert!(out.contains("nothing to do"), "{out}");
    let ty: String = env
        .scalar("SELECT data_type FROM information_schema.columns WHERE table_name='user_logins' AND column_name='app_version'")
        .await;
    assert_eq!(ty, "character varying");

    let with_version = |user: &str, v: &str| {
        let mut b: serde_json::Value = serde_json::from_str(&login(user, "10.0.0.1", "d")).unwrap();
        b["app_version"] = v.into();
        b.to_string()
    };
    env.send(&[
        with_version("beta", "1.2-beta"),
        login("plain", "10.0.0.2", "d"),
        with_version("long", "1.2.3-very-long-build-tag"),
    ])
    .await;
    let s = env.drain().await;
    assert_eq!((s.loaded, s.rejected), (2, 1));
    let versions: BTreeMap<String, String> = env
        .rows("SELECT user_id, app_version FROM user_logins")
        .await
        .iter()
        .map(|r| (r.get("user_id"), r.get("app_version")))
        .collect();
    assert_eq!(versions["beta"], "1.2-beta");
    assert_eq!(versions["plain"], "1.2.3");
    let reason: String = env.scalar("SELECT reason FROM user_logins_rejects").await;
    assert_eq!(reason, "too_long:app_version");
}

/// A body for [`error_texts_never_hold_an_ip_or_device_id_in_the_clear`]: a login with `ip`
/// and `device_id` as raw JSON (any type, any spelling).
fn login_with_raw(user_id: &str, ip_json: &str, device_json: &str) -> String {
    format!(
        r#"{{"user_id":"{user_id}","app_version":"1.2.3","device_type":"ios","ip":{ip_json},"locale":"US","device_id":{device_json}}}"#
    )
}

/// Every error path a value can reach (a bad address, a value of the wrong type, one too
/// long for its column, a body that is not JSON or breaks off, a lone surrogate, a row the
/// database refuses with a message quoting the failing row, at debug level): the ips and
/// device ids sent appear in no log line, no summary and no reject's reason.
#[tokio::test(flavor = "multi_thread")]
async fn error_texts_never_hold_an_ip_or_device_id_in_the_clear() {
    let env = TestEnv::new().await;
    let check = "ALTER TABLE user_logins ADD CONSTRAINT no_refused CHECK (user_id <> 'refused')";
    env.db()
        .await
        .batch_execute(check)
        .await
        .expect("add a CHECK");
    let long_device = format!("long-device-{}", "q".repeat(300));
    let bodies = [
        login_with_raw("bad-ip", r#""203.0.113.300""#, r#""dev-badip-7781""#),
        login_with_raw("ip-number", "3405803969", r#""dev-ipnum-5512""#),
        login_with_raw("device-number", r#""203.0.113.41""#, "987654321987"),
        login_with_raw("device-list", r#""203.0.113.42""#, r#"["dev-list-5531"]"#),
        login_with_raw("too-long", r#""203.0.113.43""#, &format!("{long_device:?}")),
        login_with_raw("surrogate", r#""203.0.113.44""#, r#""dev-sur-\ud800-9931""#),
        login("refused", "203.0.113.45", "dev-refused-4410"),
        "not json 203.0.113.46 dev-notjson-6620".to_owned(),
        r#"{"user_id":"cut","ip":"203.0.113.47","device_id":"dev-cut-3370"#.to_owned(),
    ];
    let secrets = [
        "203.0.113.300",
        "dev-badip-7781",
        "3405803969",
        "dev-ipnum-5512",
        "203.0.113.41",
        "987654321987",
        "203.0.113.42",
        "dev-list-5531",
        "203.0.113.43",
        &long_device[..40],
        "203.0.113.44",
        "dev-sur-",
        "203.0.113.45",
        "dev-refused-4410",
        "203.0.113.46",
        "dev-notjson-6620",
        "203.0.113.47",
        "dev-cut-3370",
    ];
    env.send(&bodies).await;

    let out = env
        .cmd(&["run", "--until-empty", "--wait-seconds", "1"])
        .env("RUST_LOG", "debug")
        .output()
        .expect("run");

    let summary = stdout_ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    let reasons: Vec<String> = env
        .column("SELECT reason FROM user_logins_rejects ORDER BY reason")
        .await;
    let expected = [
        "database_error:23514",
        "invalid_ip",
        "not_json",
        "not_json",
        "not_json",
        "too_long:device_id",
        "wrong_type:device_id",
        "wrong_type:device_id",
        "wrong_type:ip",
    ];
    assert_eq!(reasons, expected, "each error path taken:\n{log}");
    for secret in secrets {
        for (what, text) in [
            ("log", &*log),
            ("summary", &summary),
            ("reasons", &reasons.join("\n")),
        ] {
            assert!(
                !text.contains(secret),
                "{secret} in the {what} in the clear:\n{text}"
            );
        }
    }
}
