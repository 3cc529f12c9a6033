//! The login mapping against today's login path on generated bodies: beyond the golden
//! corpus, any body built from the six keys, unknown keys and awkward values gives the same
//! row or the same reason under each framing.

use proptest::prelude::*;

use crate::decode::{AppVersionColumn, CreateDateFrom, Envelope, Framing, Limits};

use crate::mapping::compile::Plan;
use crate::mapping::convert::Cell;
use crate::mapping::eval::{eval_message, Outcome};
use crate::mapping::event::Metadata;
use crate::mask::Masker;
use crate::source::Received;
use crate::transform;

/// The login mapping compiled against `migrate`'s table with `limits`' column shapes.
fn plan(limits: &Limits) -> Plan {
    crate::mapping::login_shape::compiled_for(limits, 1)
        .unwrap()
        .plan
}

/// The contract's limits, and narrow, text and unbounded shapes (the token columns as wide
/// as the tokens of an address and of an 11-byte value under the tests' key `t`).
fn shapes(m: &Masker) -> [Limits; 4] {
    let text = |max_chars| AppVersionColumn::Text { max_chars };
    [
        Limits::default(),
        Limits {
            user_id: Some(8),
            device_type: Some(7),
            locale: Some(2),
            masked_ip: Some(m.token_len(16)),
            masked_device_id: Some(m.token_len(11)),
            app_version: AppVersionColumn::Integer { max: 32767 },
        },
        Limits {
            app_version: text(Some(5)),
            ..Limits::default()
        },
        Limits {
            user_id: None,
            device_type: None,
            locale: None,
            masked_ip: None,
            masked_device_id: None,
            app_version: text(None),
        },
    ]
}

/// Today's outcome and the mapping's, each as one comparable text.
fn both(
    plan: &Plan,
    limits: &Limits,
    body: &str,
    framing: Framing,
    m: &mut Masker,
) -> (String, String) {
    let msg = Received::new(
        "m".into(),
        "r".into(),
        body.into(),
        Some("1709596800000"),
        None,
    )
    .framed(framing);
    let today = match transform::reference::hand_written(&msg, limits, m) {
        t @ transform::Transformed {
            outcome: transform::Outcome::Row(_),
            ..
        } => {
            let transform::Outcome::Row(r) = t.outcome else {
                unreachable!()
            };
            let version = match r.app_version {
                Some(crate::decode::AppVersion::Int(n)) => Some(n.to_string()),
                Some(crate::decode::AppVersion::Text(s)) => Some(s),
                None => None,
            };
            format!(
                "{:?}",
                (
                    Some(r.user_id),
                    version,
                    r.device_type,
                    r.masked_ip,
                    r.locale,
                    r.masked_device_id,
                    r.create_date,
                    t.unknown_keys
                )
            )
        }
        t => match t.outcome {
            transform::Outcome::Reject(r) => r.reason.to_string(),
            other => panic!("{other:?}"),
        },
    };
    let meta = Metadata {
        message_id: "m".into(),
        sent_timestamp: msg.sent_at,
        ..Metadata::default()
    };
    let mapped = match eval_message(plan, body, framing, meta, m) {
        Outcome::Row {
            cells,
            unknown_keys,
            ..
        } => {
            let text = |c: &Cell| match c {
                Cell::Null => None,
                Cell::Text(s) => Some(s.clone()),
                Cell::Int2(n) => Some(n.to_string()),
                Cell::Int4(n) => Some(n.to_string()),
                other => panic!("{other:?}"),
            };
            let Cell::Date(day) = cells[6].1 else {
                panic!("a date")
            };
            format!(
                "{:?}",
                (
                    text(&cells[0].1),
                    text(&cells[1].1),
                    text(&cells[2].1),
                    text(&cells[3].1),
                    text(&cells[4].1),
                    text(&cells[5].1),
                    day,
                    unknown_keys
                )
            )
        }
        Outcome::Reject { reason, .. } => reason.to_string(),
        Outcome::Skip { .. } => panic!("no skip route"),
    };
    (today, mapped)
}

const KEYS: [&str; 8] = [
    "user_id",
    "app_version",
    "device_type",
    "ip",
    "locale",
    "device_id",
    "extra",
    "user\\u005fid",
];

const VALUES: [&str; 27] = [
    "null",
    r#""""#,
    r#""u1""#,
    r#""1.2.3""#,
    r#""99999.99.99""#,
    r#""1.2.3.4""#,
    r#""::ffff:10.0.0.1""#,
    r#""fe80::1%eth0""#,
    r#""a\u0000b""#,
    r#""\ud800""#,
    r#""\u00e9\u00e9""#,
    "1",
    "-0",
    "1.5e3",
    "1e400",
    "123456789012345678901234567890",
    "true",
    "[]",
    "{}",
    r#"[1,{"a":null}]"#,
    r#"[[[[[[[[[[1]]]]]]]]]]"#,
    r#""RU""#,
    r#""xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx""#,
    r#""ios""#,
    r#""12345678901""#,
    r#""123456789012""#,
    r#""1.2""#,
];

fn body() -> impl Strategy<Value = String> {
    let entry = (0..KEYS.len(), 0..VALUES.len());
    (proptest::collection::vec(entry, 0..10), any::<bool>()).prop_map(|(entries, all_six)| {
        let mut parts: Vec<String> = Vec::new();
        if all_six {
            for k in &KEYS[..6] {
                parts.push(format!(r#""{k}":"ok""#));
            }
        }
        for (k, v) in entries {
            parts.push(format!(r#""{}":{}"#, KEYS[k], VALUES[v]));
        }
        format!("{{{}}}", parts.join(","))
    })
}

fn framing() -> impl Strategy<Value = Framing> {
    let envelopes = [
        Envelope::None,
        Envelope::Sns,
        Envelope::EventBridge,
        Envelope::Auto,
    ];
    (0..4usize, any::<bool>()).prop_map(move |(e, env)| Framing {
        envelope: envelopes[e],
        create_date_from: if env {
            CreateDateFrom::Envelope
        } else {
            CreateDateFrom::Sqs
        },
    })
}

fn wrap(event: &str, how: u8) -> String {
    let quoted = serde_json::to_string(event).unwrap();
    match how % 5 {
        0 => event.to_owned(),
        1 => format!(
            r#"{{"Type":"Notification","TopicArn":"t","Message":{quoted},"Timestamp":"2021-06-15T23:59:58Z"}}"#
        ),
        2 => format!(r#"{{"Type":"Notification","TopicArn":"t","Message":{quoted}}}"#),
        3 => format!(
            r#"{{"detail-type":"l","source":"s","time":"2021-06-16T00:00:01Z","detail":{event}}}"#
        ),
        _ => format!(r#"{{"detail-type":"l","source":"s","time":7,"detail":{event}}}"#),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn the_login_mapping_agrees_with_todays_login_path(
        event in body(),
        how in any::<u8>(),
        framing in framing(),
        shape in 0..4usize,
        deep in proptest::option::of((0..6usize, 120..135usize)),
    ) {
        let mut m = Masker::fixed_for_tests();
        let limits = shapes(&m)[shape];
        let plan = plan(&limits);
        // Now and then one key holds a value nested around the parser's limit.
        let event = match deep {
            Some((k, n)) => format!(
                "{{\"{}\":{}1{},{}",
                KEYS[k],
                "[".repeat(n),
                "]".repeat(n),
                &event[1..]
            )
            .replace(",}", "}"),
            None => event,
        };
        let body = wrap(&event, how);
        let (today, mapped) = both(&plan, &limits, &body, framing, &mut m);
        prop_assert_eq!(today, mapped, "{}", body);
    }
}
