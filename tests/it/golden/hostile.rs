//! Every hostile body of the existing tests, copied literally (the place each comes from
//! is named above it). Random parts of the originals (an SNS `MessageId` made with
//! `Uuid::new_v4`) are fixed here; bodies that are envelopes already are run bare.

use super::cases::{Event, SNS_TIME};

/// src/decode/tests.rs and src/decode/envelope_tests.rs: `GOOD`.
const GOOD: &str = r#"{"user_id":"u1","app_version":"2.3.0","device_type":"android","ip":"1.2.3.4","locale":"RU","device_id":"593-47-5928"}"#;
/// tests/it/envelopes.rs `BAD_EVENT`; src/synth.rs `MALFORMED[0]`; e2e_core's bad message.
const BAD_EVENT: &str = r#"{"foo":"oops_wrong_msg_type","bar":"123"}"#;

fn push(out: &mut Vec<Event>, source: &str, bodies: Vec<String>) {
    for (n, body) in bodies.into_iter().enumerate() {
        let id = format!("hostile/{source}/{n:02}");
        // Wrapping bodies of hundreds of kilobytes again adds time, not coverage.
        out.push(if body.len() > 64 * 1024 {
            Event::bare(id, body)
        } else {
            Event::wrapped(id, body)
        });
    }
}

/// Every hostile body, by the test file it comes from.
pub fn all(out: &mut Vec<Event>) {
    decode_unit(out);
    envelope_unit(out);
    unit(out);
    integration(out);
    reliability(out);
    big_messages(out);
    envelopes_it(out);
}

/// src/decode/tests.rs `every_contract_reject_rule`, `nulls_become_none_…`; the whole
/// bodies (the `with`/`without` ones are the per-field mutations).
fn decode_unit(out: &mut Vec<Event>) {
    let deep = format!("{{\"user_id\":{}1{}}}", "[".repeat(1000), "]".repeat(1000));
    let bodies = vec![
        "not json".into(),
        String::new(),
        "[1,2]".into(),
        "\"a string\"".into(),
        "null".into(),
        BAD_EVENT.into(),
        r#"{"user_id":"a","user_id":"b","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null}"#.into(),
        deep,
        r#"{"user_id":"u","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null,"extra":{"a":[1]},"more":1}"#.into(),
        GOOD.replace(r#""u1""#, &format!("\"{}\"", "€".repeat(128))),
        GOOD.into(),
    ];
    push(out, "decode-tests", bodies);
}

/// src/decode/envelope_tests.rs: its own `sns` and `eventbridge` shapes (time
/// `2026-03-04T05:06:07.089Z`), the broken envelopes, the untimed one.
fn envelope_unit(out: &mut Vec<Event>) {
    const AT: &str = "2026-03-04T05:06:07.089Z";
    let sns = |message: &str| {
        serde_json::json!({
            "Type": "Notification", "MessageId": "9f1c",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:logins",
            "Message": message, "Timestamp": AT, "SignatureVersion": "1",
        })
        .to_string()
    };
    let eventbridge = |detail: &str| {
        format!(
            r#"{{"version":"0","id":"e1","detail-type":"login","source":"app.auth","account":"123456789012","time":"2026-03-04T05:06:07Z","region":"eu-west-1","resources":[],"detail":{detail}}}"#
        )
    };
    let topic = r#""TopicArn":"arn:aws:sns:us-east-1:1:t""#;
    let no_ip = GOOD.replace("\"1.2.3.4\"", "\"not an ip\"");
    let bodies = vec![
        sns(GOOD),
        eventbridge(GOOD),
        sns(BAD_EVENT),
        sns("[1,2]"),
        eventbridge(BAD_EVENT),
        eventbridge(&no_ip),
        sns("not json"),
        sns(""),
        format!(r#"{{"Type":"Notification",{topic},"Message":{GOOD}}}"#),
        format!(r#"{{"Type":"Notification",{topic},"Message":null}}"#),
        format!(r#"{{"Type":"SubscriptionConfirmation",{topic},"Message":"{{}}"}}"#),
        format!(r#"{{"Type":"Notification",{topic},"Message":"{{}}","Message":"{{}}"}}"#),
        eventbridge("\"a string\""),
        eventbridge("[1]"),
        eventbridge("null"),
        r#"{"Type":"Notification","Message":"{}"}"#.into(),
        eventbridge(GOOD).replacen(r#""detail-type":"login","#, "", 1),
        eventbridge(GOOD).replacen(r#""source":"app.auth","#, "", 1),
        sns(GOOD).replace(AT, "yesterday"),
    ];
    for (n, body) in bodies.into_iter().enumerate() {
        out.push(Event::bare(format!("hostile/envelope-tests/{n:02}"), body));
    }
}

/// Single bodies of the other unit tests.
fn unit(out: &mut Vec<Event>) {
    let bodies = vec![
        // src/synth.rs MALFORMED (and src/source/fifo.rs tests).
        "this is not json".into(),
        r#"{"user_id":"","app_version":"1.0","device_type":"ios","ip":"10.0.0.1","locale":"US","device_id":"111-11-1111"}"#.into(),
        r#"{"user_id":"bad-ip-user","app_version":"1.0","device_type":"ios","ip":"999.1.1.1","locale":"US","device_id":"222-22-2222"}"#.into(),
        r#"{"user_id":"bad-version-user","app_version":"1.2.3.4","device_type":"android","ip":"10.0.0.2","locale":null,"device_id":"333-33-3333"}"#.into(),
        r#"{"user_id":"wrong-type-user","app_version":2.1,"device_type":"android","ip":"10.0.0.3","locale":"DE","device_id":"444-44-4444"}"#.into(),
        // src/source/fifo.rs tests.
        r#"{"user_id":"424cdd21-063a-43a7","app_version":"2.3.0","device_type":"android","ip":"1.2.3.4","locale":"RU","device_id":"d"}"#.into(),
        "not json".into(),
        r#"{"user_id":""}"#.into(),
        r#"{"user_id":7}"#.into(),
        r#"{"user_id":"a user with spaces"}"#.into(),
        r#"{"user_id":"a user with spaces","x":1}"#.into(),
        format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129)),
        // src/pipeline/batch.rs tests.
        format!("not json {}", "x".repeat(3000)),
        // The committer's old debug-build panic body (now a failpoint, not decode's concern).
        r#"{"sqs2pg_test_hook":"panic"}"#.into(),
        // src/cli/reveal.rs and src/mask/mod.rs tests.
        "{\"ip\":\"1.2.3.4\"}\u{1b}]0;pwned\u{7}\r\n\tx".into(),
        "{\"ip\":\"1.2.3.4\"}".into(),
    ];
    push(out, "unit-tests", bodies);
}

/// Single bodies of the integration tests.
fn integration(out: &mut Vec<Event>) {
    let login_with_raw = |user_id: &str, ip_json: &str, device_json: &str| {
        format!(
            r#"{{"user_id":"{user_id}","app_version":"1.2.3","device_type":"ios","ip":{ip_json},"locale":"US","device_id":{device_json}}}"#
        )
    };
    let long_device = format!("long-device-{}", "q".repeat(300));
    let bodies = vec![
        // tests/it/e2e.rs `one_body_per_reject_rule` and `every_reject_rule_end_to_end`.
        "{not json".into(),
        "[1,2,3]".into(),
        r#"{"user_id":"nulls","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null,"extra":1}"#.into(),
        r#"{"app_version":"1.0","device_id":"d","device_type":"ios","ip":"10.0.0.1","locale":"US","user_id":"'); DROP TABLE user_logins; --"}"#.into(),
        // tests/it/e2e.rs `error_texts_never_hold_an_ip_or_device_id_in_the_clear`.
        login_with_raw("bad-ip", r#""203.0.113.300""#, r#""dev-badip-7781""#),
        login_with_raw("ip-number", "3405803969", r#""dev-ipnum-5512""#),
        login_with_raw("device-number", r#""203.0.113.41""#, "987654321987"),
        login_with_raw("device-list", r#""203.0.113.42""#, r#"["dev-list-5531"]"#),
        login_with_raw("too-long", r#""203.0.113.43""#, &format!("{long_device:?}")),
        login_with_raw("surrogate", r#""203.0.113.44""#, r#""dev-sur-\ud800-9931""#),
        "not json 203.0.113.46 dev-notjson-6620".into(),
        r#"{"user_id":"cut","ip":"203.0.113.47","device_id":"dev-cut-3370"#.into(),
        // tests/it/pii_logs.rs `bodies`.
        r#"{"user_id":"pii-3","app_version":"bad","device_type":"ios","ip":"198.51.100.99","locale":"US","device_id":"device-zz-0091"}"#.into(),
        "not json 198.51.100.99 device-zz-0091".into(),
        // tests/it/ops.rs, tests/it/prometheus.rs, tests/it/grafana.rs, tests/it/pii.rs.
        "{broken".into(),
        r#"{"user_id":"x"}"#.into(),
        "{\"user_id\":\"\"".into(),
        r#"{"user_id":"only"}"#.into(),
        r#"{"user_id":"rejected-under-k1","ip":"10.9.0.0"}"#.into(),
        "not json at all".into(),
        // tests/it/reveal.rs, tests/it/quarantine.rs, tests/it/reliability.rs, output.rs.
        "not json \u{1b}]0;owned\u{7}\r\nsecond line".into(),
        "not json, user d".into(),
        "still not json".into(),
        "not json 0".into(),
        // tests/it/fifo.rs `no_user`.
        r#"{"foo":"oops_wrong_msg_type"}"#.into(),
    ];
    push(out, "it-tests", bodies);
}

/// tests/it/reliability.rs `hostile_cases` (its `TEST_PANIC_BODY` case is left out: that
/// debug-build hook makes `internal_error` only in debug builds, so no golden holds it).
fn reliability(out: &mut Vec<Event>) {
    let ok = |user: &str, extra: &str| {
        format!(
            r#"{{"user_id":{user},"app_version":"1.0","device_type":"ios","ip":"10.0.0.1","locale":"US","device_id":"d"{extra}}}"#
        )
    };
    let big_pad = "x".repeat(250 * 1024);
    let bodies = vec![
        ok("\"big-unknown\"", &format!(r#","pad":"{big_pad}""#)),
        ok(&format!("\"{}\"", "u".repeat(200 * 1024)), ""),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!(r#"{{"user_id":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000)),
        ok("\"nested-unknown\"", &format!(r#","deep":{}1{}"#, "[".repeat(5000), "]".repeat(5000))),
        ok("42", ""),
        ok("{\"a\":1}", ""),
        ok("\"'; DROP TABLE user_logins; --\"", ""),
        ok("\"ctl\\u0001\\u001f\\t\"", ""),
        ok("\"nul\\u0000\"", ""),
        r#"{"user_id":"v","app_version":"99999999999999999999999.1","device_type":null,"ip":null,"locale":null,"device_id":null}"#.into(),
        r#"{"user_id":"v2","app_version":1e400,"device_type":null,"ip":null,"locale":null,"device_id":null}"#.into(),
        r#"{"user_id":"z","app_version":null,"device_type":null,"ip":"fe80::1%eth0","locale":null,"device_id":null}"#.into(),
        r#"{"user_id":"d1","user_id":"d2","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null}"#.into(),
        "\u{feff}{}".into(),
        "{\"user_id\":\"\\ud800\"}".into(),
    ];
    push(out, "reliability", bodies);
}

/// tests/it/big_messages.rs: a valid login padded to 1 MiB, 1 MiB that is not JSON, 256 KiB
/// that is not JSON.
fn big_messages(out: &mut Vec<Event>) {
    const ONE_MIB: usize = 1024 * 1024;
    let mut padded: serde_json::Value = serde_json::json!({
        "user_id": "big-0", "app_version": "1.2.3", "device_type": "ios",
        "ip": "198.51.100.7", "locale": "US", "device_id": "dev-big",
    });
    padded["padding"] = "".into();
    let bare = padded.to_string().len();
    padded["padding"] = "p".repeat(ONE_MIB - bare).into();
    let head = "not json 0 ";
    let bodies = vec![
        padded.to_string(),
        format!("{{\"user_id\": {}", "9".repeat(ONE_MIB - 12)),
        format!("{head}{}", "x".repeat(256 * 1024 - head.len())),
    ];
    push(out, "big-messages", bodies);
}

/// tests/it/envelopes.rs and tests/it/helpers/envelopes.rs: its `sns_notification` and
/// `eventbridge_event` shapes around its bodies (the random `MessageId` and `id` fixed).
fn envelopes_it(out: &mut Vec<Event>) {
    let sns = |m: &str| super::cases::sns(m, Some(SNS_TIME));
    let eb = |d: &str| {
        format!(
            r#"{{"version":"0","id":"00000000-0000-4000-8000-000000000000","detail-type":"user.login","source":"app.auth","account":"000000000000","time":"2021-06-15T00:00:01Z","region":"us-east-1","resources":[],"detail":{d}}}"#
        )
    };
    let login = |u: &str, ip: &str, d: &str| {
        serde_json::json!({"user_id": u, "app_version": "1.2.3", "device_type": "ios", "ip": ip, "locale": "US", "device_id": d}).to_string()
    };
    let bodies = vec![
        sns(&login("sns-ok", "10.7.0.1", "d1")),
        eb(&login("eb-ok", "10.7.0.2", "d2")),
        sns("not json"),
        eb("\"not an object\""),
        sns(BAD_EVENT),
        eb(&login("eb-bad-ip", "10.7.0.999", "d3")),
        sns("{not json"),
        eb(BAD_EVENT),
    ];
    for (n, body) in bodies.into_iter().enumerate() {
        out.push(Event::bare(format!("hostile/envelopes-it/{n:02}"), body));
    }
}
