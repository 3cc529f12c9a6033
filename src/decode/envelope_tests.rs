use super::*;
use crate::decode::{decode, decode_message, Limits, Login};
use proptest::prelude::*;

const GOOD: &str = r#"{"user_id":"u1","app_version":"2.3.0","device_type":"android","ip":"1.2.3.4","locale":"RU","device_id":"593-47-5928"}"#;
const AT: &str = "2026-03-04T05:06:07.089Z";

/// An SNS notification as a queue subscribed without raw delivery receives it.
fn sns(message: &str) -> String {
    serde_json::json!({
        "Type": "Notification",
        "MessageId": "9f1c",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:logins",
        "Message": message,
        "Timestamp": AT,
        "SignatureVersion": "1",
    })
    .to_string()
}

/// An EventBridge event as a queue target receives it (`detail` is spliced in verbatim).
fn eventbridge(detail: &str) -> String {
    format!(
        r#"{{"version":"0","id":"e1","detail-type":"login","source":"app.auth","account":"123456789012","time":"2026-03-04T05:06:07Z","region":"eu-west-1","resources":[],"detail":{detail}}}"#
    )
}

fn framing(envelope: Envelope) -> Framing {
    Framing {
        envelope,
        create_date_from: CreateDateFrom::Sqs,
    }
}

fn decoded(body: &str, envelope: Envelope) -> Result<Login, String> {
    decode_message(body.as_bytes(), framing(envelope), &Limits::default())
        .map(|(l, _)| l)
        .map_err(|r| r.to_string())
}

fn reason(body: &str, envelope: Envelope) -> String {
    decoded(body, envelope).expect_err("rejected")
}

#[test]
fn auto_opens_both_envelopes_and_takes_other_bodies_as_the_event() {
    let bare = decode(GOOD.as_bytes(), &Limits::default()).unwrap();
    for body in [GOOD.to_string(), sns(GOOD), eventbridge(GOOD)] {
        assert_eq!(decoded(&body, Envelope::Auto).unwrap(), bare, "{body}");
    }
    assert_eq!(decoded(&sns(GOOD), Envelope::Sns).unwrap(), bare);
    assert_eq!(
        decoded(&eventbridge(GOOD), Envelope::EventBridge).unwrap(),
        bare
    );
    // `none` reads the envelope itself as the event.
    assert_eq!(reason(&sns(GOOD), Envelope::None), "missing_field:user_id");
    assert_eq!(
        reason(&eventbridge(GOOD), Envelope::None),
        "missing_field:user_id"
    );
}

#[test]
fn an_envelope_around_a_bad_event_gives_the_events_reason() {
    let bad = r#"{"foo":"oops_wrong_msg_type","bar":"123"}"#;
    for e in [Envelope::Auto, Envelope::Sns] {
        assert_eq!(reason(&sns(bad), e), "missing_field:user_id");
        assert_eq!(reason(&sns("[1,2]"), e), "not_object");
    }
    for e in [Envelope::Auto, Envelope::EventBridge] {
        assert_eq!(reason(&eventbridge(bad), e), "missing_field:user_id");
        let no_ip = GOOD.replace("\"1.2.3.4\"", "\"not an ip\"");
        assert_eq!(reason(&eventbridge(&no_ip), e), "invalid_ip");
    }
}

#[test]
fn broken_envelopes_are_bad_envelope() {
    let topic = r#""TopicArn":"arn:aws:sns:us-east-1:1:t""#;
    for body in [
        sns("not json"),
        sns(""),
        format!(r#"{{"Type":"Notification",{topic},"Message":{GOOD}}}"#),
        format!(r#"{{"Type":"Notification",{topic},"Message":null}}"#),
        format!(r#"{{"Type":"SubscriptionConfirmation",{topic},"Message":"{{}}"}}"#),
        format!(r#"{{"Type":"Notification",{topic},"Message":"{{}}","Message":"{{}}"}}"#),
        eventbridge("\"a string\""),
        eventbridge("[1]"),
        eventbridge("null"),
    ] {
        assert_eq!(reason(&body, Envelope::Auto), "bad_envelope", "{body}");
    }
    // An explicit envelope that is not there.
    assert_eq!(reason(GOOD, Envelope::Sns), "bad_envelope");
    assert_eq!(reason(GOOD, Envelope::EventBridge), "bad_envelope");
    assert_eq!(reason("not json", Envelope::Sns), "bad_envelope");
    assert_eq!(reason(&eventbridge(GOOD), Envelope::Sns), "bad_envelope");
    assert_eq!(
        reason(r#"{"Type":"Notification","Message":"{}"}"#, Envelope::Sns),
        "bad_envelope"
    );
    // An explicit EventBridge envelope needs both of its naming keys.
    for (without, key) in [
        ("detail-type", r#""detail-type":"login","#),
        ("source", r#""source":"app.auth","#),
    ] {
        let body = eventbridge(GOOD).replacen(key, "", 1);
        assert!(!body.contains(&format!("\"{without}\"")), "{body}");
        assert_eq!(
            reason(&body, Envelope::EventBridge),
            "bad_envelope",
            "without {without}"
        );
    }
    // Without all three keys, auto takes the body as the event.
    assert_eq!(
        reason(r#"{"Type":"Notification","Message":"{}"}"#, Envelope::Auto),
        "missing_field:user_id"
    );
}

#[test]
fn create_date_from_envelope_takes_the_envelopes_time() {
    let at = |body: &str, envelope| {
        let f = Framing {
            envelope,
            create_date_from: CreateDateFrom::Envelope,
        };
        decode_message(body.as_bytes(), f, &Limits::default())
            .map(|(_, t)| t.map(|t| t.to_rfc3339()))
            .map_err(|r| r.to_string())
    };
    assert_eq!(
        at(&sns(GOOD), Envelope::Auto),
        Ok(Some("2026-03-04T05:06:07.089+00:00".into()))
    );
    assert_eq!(
        at(&eventbridge(GOOD), Envelope::Auto),
        Ok(Some("2026-03-04T05:06:07+00:00".into()))
    );
    assert_eq!(at(GOOD, Envelope::Auto), Ok(None));
    let untimed = sns(GOOD).replace(AT, "yesterday");
    assert_eq!(at(&untimed, Envelope::Auto), Err("bad_envelope".into()));
    // The default leaves the date to SentTimestamp, whatever the envelope says.
    assert_eq!(
        decode_message(
            untimed.as_bytes(),
            framing(Envelope::Auto),
            &Limits::default()
        )
        .map(|(_, t)| t),
        Ok(None)
    );
}

#[test]
fn settings_parse_and_name_their_values() {
    for e in [
        Envelope::None,
        Envelope::Sns,
        Envelope::EventBridge,
        Envelope::Auto,
    ] {
        assert_eq!(e.to_string().parse::<Envelope>(), Ok(e));
    }
    for c in [CreateDateFrom::Sqs, CreateDateFrom::Envelope] {
        assert_eq!(c.to_string().parse::<CreateDateFrom>(), Ok(c));
    }
    let e = "SNS".parse::<Envelope>().unwrap_err();
    assert!(e.contains("none, sns, eventbridge or auto"), "{e}");
}

/// A login-shaped JSON object: the six keys (any may be missing or of a wrong type) and others.
fn object() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("user_id".to_string()),
        Just("ip".to_string()),
        Just("app_version".to_string()),
        Just("device_type".to_string()),
        Just("locale".to_string()),
        Just("device_id".to_string()),
        Just("Message".to_string()),
        Just("detail".to_string()),
        "[a-zA-Z_-]{0,8}"
    ];
    let value = prop_oneof![
        Just("null".to_string()),
        "\"[^\"\\\\\\x00-\\x1f]{0,20}\"",
        Just("\"1.2.3.4\"".to_string()),
        Just("\"2.3\"".to_string()),
        "-?[1-9][0-9]{0,4}",
        Just("{}".to_string()),
        Just("[[]]".to_string())
    ];
    proptest::collection::vec((key, value), 0..9).prop_map(|fields| {
        let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", inner.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn never_panics_on_any_body(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        for e in [Envelope::None, Envelope::Sns, Envelope::EventBridge, Envelope::Auto] {
            for c in [CreateDateFrom::Sqs, CreateDateFrom::Envelope] {
                let f = Framing { envelope: e, create_date_from: c };
                let _ = decode_message(&body, f, &Limits::default());
            }
        }
    }

    #[test]
    fn never_panics_on_envelope_shaped_bodies(inner in object(), text in "[^\\\\]{0,40}") {
        for body in [sns(&inner), sns(&text), eventbridge(&inner), inner.clone()] {
            for e in [Envelope::Sns, Envelope::EventBridge, Envelope::Auto] {
                let _ = decoded(&body, e);
            }
        }
    }

    /// Wrapping an event and opening it again gives what the bare event gives: the same
    /// login, or the same reason.
    #[test]
    fn wrapping_then_opening_round_trips(event in object()) {
        let bare = decode(event.as_bytes(), &Limits::default()).map_err(|r| r.to_string());
        for e in [Envelope::Auto, Envelope::Sns] {
            prop_assert_eq!(&decoded(&sns(&event), e), &bare);
        }
        for e in [Envelope::Auto, Envelope::EventBridge] {
            prop_assert_eq!(&decoded(&eventbridge(&event), e), &bare);
        }
    }
}

/// The fields asked for are what a map of the body's top-level fields holds: the last of a
/// repeated one, none for an absent one, nothing for a bare body.
#[test]
fn fields_asked_for_are_read_in_the_same_pass() {
    use std::collections::BTreeMap;
    let body = r#"{"id":"a","detail-type":"T","source":"s","detail":{"k":1},"id":"b","time":"t"}"#;
    let wanted = ["id", "time", "x", "detail-type"].map(String::from);
    let opened = open_reading(body.as_bytes(), Envelope::EventBridge, &wanted).unwrap();
    let map: BTreeMap<String, &RawValue> = serde_json::from_str(body).unwrap();
    let expected: Vec<Option<&str>> = wanted.iter().map(|w| map.get(w).map(|v| v.get())).collect();
    let got: Vec<Option<&str>> = opened.fields.iter().map(|v| v.map(RawValue::get)).collect();
    assert_eq!(got, expected);
    assert_eq!(got[0], Some(r#""b""#));
    let bare = open_reading(br#"{"id":"a"}"#, Envelope::Auto, &wanted).unwrap();
    assert!(bare.kind.is_none() && bare.fields.is_empty());
    let twice = r#"{"detail-type":"T","source":"s","detail":{},"time":"1","time":"2"}"#;
    assert!(open_reading(twice.as_bytes(), Envelope::EventBridge, &wanted).is_err());
}
