//! The evaluator's rules the built-in login mapping relies on: `message_time`, tokens
//! checked last, and what stays as it was for a file without the login's keys.

use super::*;

#[test]
fn message_time_follows_create_date_from() {
    use crate::decode::{CreateDateFrom, Envelope};
    let plan = login_plan();
    let mut m = Masker::fixed_for_tests();
    let event = r#"{"user_id":"u","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null}"#;
    let eb = |time: &str| format!(r#"{{"detail-type":"l","source":"s",{time}"detail":{event}}}"#);
    let day = |o: Outcome<'_>| match o {
        Outcome::Row { cells, .. } => cells[6].1.clone(),
        other => panic!("{other:?}"),
    };
    let date = |y, mo, d| Cell::Date(chrono::NaiveDate::from_ymd_opt(y, mo, d).unwrap());
    let timed = eb(r#""time":"2021-06-15T23:30:00-01:00","#);
    // SentTimestamp by default; the envelope's time (its UTC day) when asked.
    let run = |body: &str, from, m: &mut Masker| {
        let framing = crate::decode::Framing {
            envelope: Envelope::Auto,
            create_date_from: from,
        };
        eval_message(&plan, body, framing, sent(), m)
    };
    assert_eq!(
        day(run(&timed, CreateDateFrom::Sqs, &mut m)),
        date(2024, 5, 1)
    );
    assert_eq!(
        day(run(&timed, CreateDateFrom::Envelope, &mut m)),
        date(2021, 6, 16)
    );
    // A bare body keeps SentTimestamp; an envelope without a time is broken.
    assert_eq!(
        day(run(event, CreateDateFrom::Envelope, &mut m)),
        date(2024, 5, 1)
    );
    assert_eq!(
        reason(run(&eb(""), CreateDateFrom::Envelope, &mut m)),
        "bad_envelope"
    );
    assert_eq!(
        reason(run(
            &eb(r#""time":"yesterday","#),
            CreateDateFrom::Envelope,
            &mut m
        )),
        "bad_envelope"
    );
    // Without SentTimestamp: the current day.
    let bare = Metadata::default();
    assert_eq!(
        day(eval_body(&plan, event, Envelope::Auto, bare, &mut m)),
        Cell::Date(Utc::now().date_naive())
    );
}

#[test]
fn a_token_too_long_is_the_last_fault_found() {
    let mut c = catalogs();
    let Some(Some(t)) = c.get_mut("user_logins") else {
        panic!("the table")
    };
    // Room for the token of an address and of a one-byte device id only; locale 2.
    t.columns[3].typmod = 4 + crate::mapping::compile::token_len(2, 1) as i32;
    t.columns[4].typmod = 4 + 2;
    let plan = compile(&crate::mapping::login::mapping().unwrap(), &c, 2).unwrap();
    let mut m = Masker::new(
        &crate::mask::Keyring::parse(&crate::mask::Keyring::generate_entry("k1").unwrap()).unwrap(),
    );
    let body = |locale: &str| {
        format!(
            r#"{{"user_id":"u","app_version":null,"device_type":null,"ip":null,"locale":{locale},"device_id":"long-device"}}"#
        )
    };
    assert_eq!(
        reason(eval(&plan, &body(r#""RUS""#), &sent(), &mut m)),
        "too_long:locale"
    );
    assert_eq!(
        reason(eval(&plan, &body(r#""RU""#), &sent(), &mut m)),
        "too_long:device_id"
    );
}

#[test]
fn user_mappings_keep_their_reasons() {
    let text = r#"
[[route]]
name = "login"
table = "user_logins"
[route.columns]
user_id = { path = "/user_id" }
masked_ip = { path = "/ip", as = "ip", token = "ip" }
app_version = { path = "/v", as = "semver_int" }
"#;
    let plan = compile(&Mapping::parse("t.toml", text).unwrap(), &catalogs(), 32).unwrap();
    let mut m = Masker::fixed_for_tests();
    for (body, want) in [
        (r#"{"ip":"x"}"#, "invalid_ip:masked_ip"),
        (r#"{"v":"x"}"#, "bad_version:app_version"),
        (r#"{"user_id":"\ud800"}"#, "wrong_type:user_id"),
        (
            r#"{"user_id":1,"user_id":2,"z":1}"#,
            "duplicate_field:user_id",
        ),
    ] {
        assert_eq!(reason(eval(&plan, body, &sent(), &mut m)), want, "{body}");
    }
    // Without a strict column the whole event is held to the depth limit.
    let deep = format!("{{\"z\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    assert_eq!(reason(eval(&plan, &deep, &sent(), &mut m)), "too_deep");
    let Outcome::Row { unknown_keys, .. } =
        eval(&plan, r#"{"user_id":"u","a":1,"a":2}"#, &sent(), &mut m)
    else {
        panic!("a row")
    };
    assert_eq!(unknown_keys, 2);
}
