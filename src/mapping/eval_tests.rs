use super::*;
use crate::decode::{self, AppVersion, Limits};
use crate::mapping::compile::{compile, Catalogs};
use crate::mapping::Mapping;
use chrono::{DateTime, Utc};

/// `migrate`'s `user_logins` and its rejects table.
fn catalogs() -> Catalogs {
    crate::mapping::login_shape::catalogs(&Limits::default())
}

fn login_plan() -> Plan {
    compile(&crate::mapping::login::mapping().unwrap(), &catalogs(), 32).unwrap()
}

fn sent() -> Metadata {
    Metadata {
        message_id: "m-1".into(),
        sent_timestamp: Some("2024-05-01T23:59:59Z".parse::<DateTime<Utc>>().unwrap()),
        ..Default::default()
    }
}

fn reason(o: Outcome<'_>) -> String {
    match o {
        Outcome::Reject { reason, .. } => reason.to_string(),
        other => panic!("not a reject: {other:?}"),
    }
}

#[test]
fn a_login_becomes_todays_row() {
    let plan = login_plan();
    let mut m = Masker::fixed_for_tests();
    let body = r#"{"user_id":"u1","app_version":"1.2.3","device_type":"ios","ip":"::ffff:10.0.0.1","locale":null,"device_id":"d-1","extra":1}"#;
    let Outcome::Row {
        route,
        table,
        cells,
        unknown_keys,
    } = eval(&plan, body, &sent(), &mut m)
    else {
        panic!("a row")
    };
    assert_eq!((route, table), ("login", "public.user_logins"));
    assert_eq!(unknown_keys, 1, "\"extra\"");
    let ip = m.mask_ip("10.0.0.1".parse().unwrap());
    let dev = m.mask_device_id("d-1");
    let day = chrono::NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
    assert_eq!(
        cells,
        [
            ("user_id", Cell::Text("u1".into())),
            ("app_version", Cell::Int4(10203)),
            ("device_type", Cell::Text("ios".into())),
            ("masked_ip", Cell::Text(ip)),
            ("locale", Cell::Null),
            ("masked_device_id", Cell::Text(dev)),
            ("create_date", Cell::Date(day)),
        ]
    );
}

#[test]
fn reasons_follow_the_login_decoders_order() {
    let plan = login_plan();
    let mut m = Masker::fixed_for_tests();
    let cases = [
        ("nope", "not_json"),
        ("[1]", "not_object"),
        ("1e400", "not_json"),
        // A value that does not parse wins over everything, as in the login decoder.
        (
            r#"{"user_id":"u","user_id":"v","locale":1e400}"#,
            "not_json",
        ),
        (
            r#"{"user_id":"\ud800","app_version":null,"device_type":"x","ip":null,"locale":null,"device_id":null}"#,
            "not_json",
        ),
        // A duplicate wins over an absent key, which wins over a wrong type.
        (
            r#"{"user_id":1,"ip":"1.1.1.1","ip":"1.1.1.1"}"#,
            "duplicate_field:ip",
        ),
        // A repeat before other keys is found too.
        (
            r#"{"user_id":"a","user_id":"b","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null}"#,
            "duplicate_field:user_id",
        ),
        (
            r#"{"user_id":1,"device_type":"x","ip":null,"locale":null,"device_id":null}"#,
            "missing_field:app_version",
        ),
        (
            r#"{"user_id":1,"app_version":null,"device_type":"x","ip":null,"locale":null,"device_id":null}"#,
            "wrong_type:user_id",
        ),
        (
            r#"{"user_id":null,"app_version":null,"device_type":"x","ip":null,"locale":null,"device_id":null}"#,
            "null_user_id",
        ),
        (
            r#"{"user_id":"","app_version":null,"device_type":"x","ip":null,"locale":null,"device_id":null}"#,
            "empty_user_id",
        ),
        (
            r#"{"user_id":"u","app_version":"1.2.3.4","device_type":"x","ip":null,"locale":null,"device_id":null}"#,
            "bad_app_version",
        ),
        (
            r#"{"user_id":"u","app_version":null,"device_type":"x","ip":"999.1.1.1","locale":null,"device_id":null}"#,
            "invalid_ip",
        ),
        (
            r#"{"user_id":"u","app_version":null,"device_type":"x","ip":7,"locale":null,"device_id":null}"#,
            "wrong_type:ip",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(reason(eval(&plan, body, &sent(), &mut m)), want, "{body}");
    }
}

#[test]
fn routes_are_tried_in_order() {
    let text = r#"
[[route]]
name = "beat"
when = { path = "/type", equals = "beat" }
skip = true
[[route]]
name = "login"
when = { path = "/user_id", exists = true }
table = "user_logins"
[route.columns]
user_id = { path = "/user_id" }
"#;
    let plan = compile(&Mapping::parse("t.toml", text).unwrap(), &catalogs(), 32).unwrap();
    let mut m = Masker::fixed_for_tests();
    let meta = Metadata::default();
    assert_eq!(
        eval(&plan, r#"{"type":"beat"}"#, &meta, &mut m),
        Outcome::Skip { route: "beat" }
    );
    assert!(matches!(
        eval(&plan, r#"{"user_id":"u"}"#, &meta, &mut m),
        Outcome::Row { route: "login", .. }
    ));
    assert_eq!(
        reason(eval(&plan, r#"{"other":1}"#, &meta, &mut m)),
        "no_route"
    );
    assert_eq!(
        reason(eval(&plan, r#"{"type":1,"type":2}"#, &meta, &mut m)),
        "duplicate_field:when"
    );
}

/// Every synthetic login today's decoder loads, the login mapping loads into the same
/// values and tokens.
#[test]
fn the_login_mapping_loads_what_todays_decoder_loads() {
    let plan = login_plan();
    let mut m = Masker::fixed_for_tests();
    let bodies = crate::synth::generate(crate::synth::SynthOptions {
        count: 2000,
        duplicate_rate: 0.0,
        malformed_rate: 0.05,
        seed: 28,
    });
    let mut loaded = 0;
    for body in &bodies {
        let Ok(login) = decode::decode(body.as_bytes(), &Limits::default()) else {
            continue;
        };
        let Outcome::Row { cells, .. } = eval(&plan, body, &sent(), &mut m) else {
            panic!("today's decoder loads {body}, the mapping does not")
        };
        let text = |s: Option<String>| s.map_or(Cell::Null, Cell::Text);
        let version = match login.app_version {
            Some(AppVersion::Int(n)) => Cell::Int4(n as i32),
            other => panic!("{other:?}"),
        };
        let want = [
            Cell::Text(login.user_id),
            version,
            text(login.device_type),
            text(login.ip.map(|ip| m.mask_ip(*ip.expose()))),
            text(login.locale),
            text(login.device_id.map(|d| m.mask_device_id(d.expose()))),
        ];
        let got: Vec<Cell> = cells.into_iter().take(6).map(|(_, c)| c).collect();
        assert_eq!(got, want, "{body}");
        loaded += 1;
    }
    assert!(loaded > 1800, "{loaded}");
}

#[test]
fn envelopes_open_and_their_fields_are_metadata() {
    let text = r#"
[[route]]
name = "login"
when = { meta = "envelope:detail-type", equals = "Login" }
table = "user_logins"
[route.columns]
user_id = { path = "/user_id" }
device_type = { meta = "envelope:source" }
create_date = { meta = "envelope:time" }
[[route]]
name = "sns"
when = { meta = "envelope:TopicArn", exists = true }
table = "user_logins"
[route.columns]
user_id = { path = "/user_id" }
locale = { meta = "envelope:Subject" }
"#;
    let plan = compile(&Mapping::parse("t.toml", text).unwrap(), &catalogs(), 32).unwrap();
    let mut m = Masker::fixed_for_tests();
    let auto = crate::decode::Envelope::Auto;
    let eb = r#"{"detail-type":"Login","source":"app","time":"2024-05-01T23:30:00-01:00","detail":{"user_id":"u1"}}"#;
    let Outcome::Row { route, cells, .. } = eval_body(&plan, eb, auto, sent(), &mut m) else {
        panic!("a row")
    };
    let day = chrono::NaiveDate::from_ymd_opt(2024, 5, 2).unwrap();
    assert_eq!(route, "login");
    assert_eq!(
        cells,
        [
            ("user_id", Cell::Text("u1".into())),
            ("device_type", Cell::Text("app".into())),
            ("create_date", Cell::Date(day)),
        ]
    );
    let sns = r#"{"Type":"Notification","TopicArn":"arn:t","Subject":"DE","Message":"{\"user_id\":\"u2\"}"}"#;
    let Outcome::Row { route, cells, .. } = eval_body(&plan, sns, auto, sent(), &mut m) else {
        panic!("a row")
    };
    assert_eq!(route, "sns");
    assert_eq!(cells[1], ("locale", Cell::Text("DE".into())));
    let broken = r#"{"Type":"Notification","TopicArn":"arn:t","Message":"not json"}"#;
    assert_eq!(
        reason(eval_body(&plan, broken, auto, sent(), &mut m)),
        "bad_envelope"
    );
    let no_detail = r#"{"detail-type":"Login","source":"app","detail":[]}"#;
    assert_eq!(
        reason(eval_body(&plan, no_detail, auto, sent(), &mut m)),
        "bad_envelope"
    );
    // A bare body has no envelope fields: no route's `when` holds.
    assert_eq!(
        reason(eval_body(&plan, r#"{"user_id":"u"}"#, auto, sent(), &mut m)),
        "no_route"
    );
}

#[path = "eval_login_tests.rs"]
mod login;
