//! SNS- and EventBridge-wrapped bodies, end to end: the events inside load as bare ones
//! would, broken envelopes are quarantined whole, and a quarantined envelope replays.

use crate::e2e_core::sample_core;
use crate::helpers::{
    eventbridge_event, failed_ids, lambda_handler, login, sample_file, sns_notification, sqs_event,
    stderr, stdout_ok, summary_numbers, wrapped_file, TestEnv, ENVELOPE_DAY,
};

const BAD_EVENT: &str = r#"{"foo":"oops_wrong_msg_type","bar":"123"}"#;

/// The original exercise with every message wrapped by `wrap`, through `send` and `run`
/// with the default `--envelope auto`: the same 99 rows and 1 reject (for the event's own
/// reason), the reject's body the whole envelope.
async fn wrapped_sample_core(wrap: fn(&str) -> String) {
    let sample = sample_file()
        .expect("fetch-login-sample.json (../shared/data, or SQS2PG_SAMPLE_FILE) is missing");
    let env = TestEnv::new().await;
    let (sent, wrapped) = wrapped_file(&env, &sample, wrap);
    let bad = wrapped
        .iter()
        .find(|w| w.contains("oops_wrong_msg_type"))
        .expect("the sample's bad message");
    let bad: serde_json::Value = serde_json::from_str(bad).unwrap();
    sample_core(&env, &sample, &sent, &bad).await;
    std::fs::remove_file(&sent).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_wrapped_sample_end_to_end() {
    wrapped_sample_core(sns_notification).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eventbridge_wrapped_sample_end_to_end() {
    wrapped_sample_core(eventbridge_event).await;
}

/// A broken envelope is `bad_envelope`, an envelope around a bad event has the event's
/// reason; both are quarantined as the whole SQS body, next to the events that load.
#[tokio::test(flavor = "multi_thread")]
async fn broken_envelopes_and_bad_events_inside_them_are_quarantined_whole() {
    let env = TestEnv::new().await;
    let bodies = [
        sns_notification(&login("sns-ok", "10.7.0.1", "d1")),
        eventbridge_event(&login("eb-ok", "10.7.0.2", "d2")),
        sns_notification("not json"),
        eventbridge_event("\"not an object\""),
        sns_notification(BAD_EVENT),
        eventbridge_event(&login("eb-bad-ip", "10.7.0.999", "d3")),
    ];
    env.send(&bodies).await;
    let summary = env.drain().await;
    assert_eq!((summary.loaded, summary.rejected), (2, 4), "{summary:?}");
    let users: Vec<String> = env
        .column("SELECT user_id FROM user_logins ORDER BY 1")
        .await;
    assert_eq!(users, ["eb-ok", "sns-ok"]);
    let mut want = vec![
        (bodies[2].clone(), "bad_envelope".to_string()),
        (bodies[3].clone(), "bad_envelope".to_string()),
        (bodies[4].clone(), "missing_field:user_id".to_string()),
        (bodies[5].clone(), "invalid_ip".to_string()),
    ];
    want.sort();
    assert_eq!(env.revealed_rejects().await, want);
    env.assert_queue_empty().await;
}

/// Consumed with `--envelope none`, an SNS-wrapped event is rejected (the envelope has no
/// user_id); its quarantined body is the whole notification, so `rejects replay` with the
/// right setting loads it. `--create-date-from envelope` dates the row by the envelope.
#[tokio::test(flavor = "multi_thread")]
async fn a_quarantined_envelope_replays_after_the_setting_is_fixed() {
    let env = TestEnv::new().await;
    env.send(&[sns_notification(&login("late", "10.7.1.1", "d1"))])
        .await;
    let out = stdout_ok(&env.run_cmd(&[
        "run",
        "--until-empty",
        "--wait-seconds",
        "1",
        "--envelope",
        "none",
    ]));
    assert_eq!(
        summary_numbers(&out)["rejected/missing_field:user_id"],
        1,
        "{out}"
    );
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 0);

    let out = stdout_ok(&env.run_cmd(&["rejects", "replay", "--create-date-from", "envelope"]));
    assert_eq!(summary_numbers(&out)["loaded"], 1, "{out}");
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        0
    );
    let day: chrono::NaiveDate = env
        .scalar("SELECT create_date FROM user_logins WHERE user_id = 'late'")
        .await;
    assert_eq!(day.to_string(), ENVELOPE_DAY);
}

/// `create_date` is the SQS SentTimestamp's day unless `--create-date-from envelope`.
#[tokio::test(flavor = "multi_thread")]
async fn create_date_comes_from_the_envelope_only_when_asked() {
    let env = TestEnv::new().await;
    let day_before = chrono::Utc::now().date_naive();
    env.send(&[
        sns_notification(&login("sns-sent", "10.7.2.1", "d1")),
        eventbridge_event(&login("eb-sent", "10.7.2.2", "d2")),
    ])
    .await;
    stdout_ok(&env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]));
    let day_after = chrono::Utc::now().date_naive();
    env.send(&[
        sns_notification(&login("sns-enveloped", "10.7.2.3", "d3")),
        eventbridge_event(&login("eb-enveloped", "10.7.2.4", "d4")),
    ])
    .await;
    let out = env
        .cmd(&["run", "--until-empty", "--wait-seconds", "1"])
        .env("SQS2PG_CREATE_DATE_FROM", "envelope")
        .output()
        .unwrap();
    stdout_ok(&out);
    let env = &env;
    let day = |user: &'static str| async move {
        env.scalar::<chrono::NaiveDate>(&format!(
            "SELECT create_date FROM user_logins WHERE user_id = '{user}'"
        ))
        .await
    };
    for user in ["sns-sent", "eb-sent"] {
        let d = day(user).await;
        assert!(d == day_before || d == day_after, "{user}: {d}");
    }
    for user in ["sns-enveloped", "eb-enveloped"] {
        assert_eq!(day(user).await.to_string(), ENVELOPE_DAY, "{user}");
    }
}

/// A value `--envelope`, `SQS2PG_ENVELOPE` or the config file's `envelope` does not know
/// exits 2 naming the flag.
#[test]
fn an_unknown_envelope_exits_2_naming_it() {
    let bin = env!("CARGO_BIN_EXE_sqs2pg");
    let flag = std::process::Command::new(bin)
        .args(["config", "--envelope", "xml"])
        .env_remove("SQS2PG_ENVELOPE")
        .output()
        .unwrap();
    let var = std::process::Command::new(bin)
        .args(["config"])
        .env("SQS2PG_ENVELOPE", "SNS")
        .output()
        .unwrap();
    let file = std::env::temp_dir().join(format!("sqs2pg-it-envelope-{}.toml", std::process::id()));
    std::fs::write(&file, "envelope = \"json\"\n").unwrap();
    let from_file = std::process::Command::new(bin)
        .args(["config"])
        .env("SQS2PG_CONFIG", &file)
        .env_remove("SQS2PG_ENVELOPE")
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    for out in [flag, var, from_file] {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.contains("--envelope") && e.contains("none, sns, eventbridge or auto"),
            "{e}"
        );
    }
    let out = std::process::Command::new(bin)
        .args(["config", "--envelope", "eventbridge"])
        .output()
        .unwrap();
    assert!(stdout_ok(&out).contains("envelope = \"eventbridge\""));
}

/// The Lambda handler opens envelopes as `run` does.
#[tokio::test(flavor = "multi_thread")]
async fn the_lambda_handler_opens_wrapped_records() {
    let env = TestEnv::new().await;
    let handler = lambda_handler(&env).await;
    let sns_ok = sns_notification(&login("l-sns", "10.7.3.1", "d1"));
    let eb_ok = eventbridge_event(&login("l-eb", "10.7.3.2", "d2"));
    let bare_ok = login("l-bare", "10.7.3.3", "d3");
    let broken = sns_notification("{not json");
    let bad_inside = eventbridge_event(BAD_EVENT);
    let resp = handler
        .handle(sqs_event(&[
            ("l1", &sns_ok),
            ("l2", &eb_ok),
            ("l3", &bare_ok),
            ("l4", &broken),
            ("l5", &bad_inside),
        ]))
        .await;
    assert!(failed_ids(&resp).is_empty(), "{resp:?}");
    let users: Vec<String> = env
        .column("SELECT user_id FROM user_logins ORDER BY 1")
        .await;
    assert_eq!(users, ["l-bare", "l-eb", "l-sns"]);
    let mut want = vec![
        (broken, "bad_envelope".to_string()),
        (bad_inside, "missing_field:user_id".to_string()),
    ];
    want.sort();
    assert_eq!(env.revealed_rejects().await, want);
}
