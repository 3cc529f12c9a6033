use super::*;
use proptest::prelude::*;

fn ok(body: &str) -> Login {
    decode(body.as_bytes(), &Limits::default()).expect("valid")
}
fn err(body: &str) -> String {
    decode(body.as_bytes(), &Limits::default())
        .expect_err("invalid")
        .to_string()
}
const GOOD: &str = r#"{"user_id":"u1","app_version":"2.3.0","device_type":"android","ip":"1.2.3.4","locale":"RU","device_id":"593-47-5928"}"#;

fn with(field: &str, json_value: &str) -> String {
    let mut v: serde_json::Map<String, Value> = serde_json::from_str(GOOD).unwrap();
    v.insert(field.into(), serde_json::from_str(json_value).unwrap());
    serde_json::to_string(&v).unwrap()
}
fn without(field: &str) -> String {
    let mut v: serde_json::Map<String, Value> = serde_json::from_str(GOOD).unwrap();
    v.remove(field);
    serde_json::to_string(&v).unwrap()
}

#[test]
fn valid_message_decodes() {
    let l = ok(GOOD);
    assert_eq!(l.user_id, "u1");
    assert_eq!(l.app_version, Some(AppVersion::Int(20300)));
    assert_eq!(l.device_type.as_deref(), Some("android"));
    assert_eq!(
        l.ip.unwrap().into_inner(),
        "1.2.3.4".parse::<IpAddr>().unwrap()
    );
    assert_eq!(l.locale.as_deref(), Some("RU"));
    assert_eq!(l.device_id.unwrap().into_inner(), "593-47-5928");
    assert_eq!(l.unknown_keys, 0);
}

#[test]
fn app_version_table() {
    let max = i64::from(i32::MAX);
    for (s, want) in [
        ("2.3.0", Some(20300)),
        ("0.96", Some(9600)),
        ("0.60", Some(6000)),
        ("3.7", Some(30700)),
        ("5", Some(50000)),
        ("1.2.3", Some(10203)),
        ("0.0.0", Some(0)),
        ("10.99.99", Some(109999)),
        ("214748.36.47", Some(2147483647)),
        ("214748.36.48", None),
        ("99999999999999999999", None),
        ("1.100", None),
        ("1.2.100", None),
        ("1.2.3.4", None),
        ("", None),
        ("1.", None),
        (".1", None),
        ("1..2", None),
        ("v1.2", None),
        ("+1.2", None),
        ("-1.2", None),
        (" 1.2", None),
        ("1.2-beta", None),
        ("１.２", None),
    ] {
        assert_eq!(encode_app_version(s, max), want, "{s:?}");
    }
    // A bigint column takes majors of up to 12 digits, not more.
    assert_eq!(
        encode_app_version("999999999999.1.2", i64::MAX),
        Some(9_999_999_999_990_102)
    );
    assert_eq!(encode_app_version("1000000000000", i64::MAX), None);
    assert_eq!(encode_app_version("4.0", 32767), None);
    assert_eq!(encode_app_version("3.27.67", 32767), Some(32767));
}

#[test]
fn every_contract_reject_rule() {
    assert_eq!(err("not json"), "not_json");
    assert_eq!(err(""), "not_json");
    assert_eq!(err("[1,2]"), "not_object");
    assert_eq!(err("\"a string\""), "not_object");
    assert_eq!(err("null"), "not_object");
    assert_eq!(
        err(r#"{"foo":"oops_wrong_msg_type","bar":"123"}"#),
        "missing_field:user_id"
    );
    for f in FIELDS {
        assert_eq!(err(&without(f)), format!("missing_field:{f}"));
        assert_eq!(err(&with(f, "12")), format!("wrong_type:{f}"));
        assert_eq!(err(&with(f, "{}")), format!("wrong_type:{f}"));
        assert_eq!(err(&with(f, "[]")), format!("wrong_type:{f}"));
        assert_eq!(err(&with(f, "true")), format!("wrong_type:{f}"));
    }
    assert_eq!(err(&with("user_id", "null")), "null_user_id");
    assert_eq!(err(&with("user_id", "\"\"")), "empty_user_id");
    assert_eq!(
        err(&with("user_id", &format!("\"{}\"", "x".repeat(129)))),
        "too_long:user_id"
    );
    assert_eq!(
        err(&with("device_type", &format!("\"{}\"", "x".repeat(33)))),
        "too_long:device_type"
    );
    assert_eq!(
        err(&with("locale", &format!("\"{}\"", "x".repeat(33)))),
        "too_long:locale"
    );
    assert_eq!(
        err(&with("locale", "\"a\\u0000b\"")),
        "nul_character:locale"
    );
    for bad in [
        "\"1.2.3\"",
        "\"300.1.1.1\"",
        "\"fe80::1%eth0\"",
        "\" 1.2.3.4\"",
        "\"\"",
        "\"localhost\"",
    ] {
        assert_eq!(err(&with("ip", bad)), "invalid_ip", "{bad}");
    }
    assert_eq!(err(&with("app_version", "\"1.2.3.4\"")), "bad_app_version");
    assert_eq!(err(&with("app_version", "2.3")), "wrong_type:app_version");
    assert_eq!(
        err(
            r#"{"user_id":"a","user_id":"b","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null}"#
        ),
        "duplicate_field:user_id"
    );
    let deep = format!("{{\"user_id\":{}1{}}}", "[".repeat(1000), "]".repeat(1000));
    assert_eq!(err(&deep), "too_deep");
}

#[test]
fn nulls_become_none_and_lengths_count_characters() {
    let l = ok(
        r#"{"user_id":"u","app_version":null,"device_type":null,"ip":null,"locale":null,"device_id":null,"extra":{"a":[1]},"more":1}"#,
    );
    assert_eq!(
        (l.app_version, l.device_type, l.ip, l.locale, l.device_id),
        (None, None, None, None, None)
    );
    assert_eq!(l.unknown_keys, 2);
    // 128 three-byte characters fit varchar(128).
    let l = ok(&with("user_id", &format!("\"{}\"", "€".repeat(128))));
    assert_eq!(l.user_id.chars().count(), 128);
}

#[test]
fn ips_of_every_range_are_valid_and_canonical() {
    for (s, want) in [
        ("10.0.0.1", "10.0.0.1"),
        ("224.0.0.1", "224.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::FFFF:0102:0304", "1.2.3.4"),
        ("2001:DB8::1", "2001:db8::1"),
        ("::1", "::1"),
    ] {
        assert_eq!(parse_ip(s).unwrap().to_string(), want);
    }
}

#[test]
fn text_app_version_is_verbatim() {
    let limits = Limits {
        app_version: AppVersionColumn::Text { max_chars: Some(8) },
        ..Limits::default()
    };
    let l = decode(with("app_version", "\"1.2-beta\"").as_bytes(), &limits).unwrap();
    assert_eq!(l.app_version, Some(AppVersion::Text("1.2-beta".into())));
    let e = decode(with("app_version", "\"1.2.3-beta\"").as_bytes(), &limits).unwrap_err();
    assert_eq!(e.to_string(), "too_long:app_version");
}

/// The shape of a stored reason: `snake_case`, or `snake_case:` and one of the six keys.
fn is_reason_text(s: &str) -> bool {
    let snake = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    match s.split_once(':') {
        None => snake(s),
        Some((kind, key)) => snake(kind) && FIELDS.contains(&key),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&body, &Limits::default());
    }

    #[test]
    fn never_panics_on_json_shaped_input(
        fields in proptest::collection::vec((prop_oneof![
            Just("user_id".to_string()), Just("ip".to_string()), Just("app_version".to_string()),
            Just("device_type".to_string()), Just("locale".to_string()), Just("device_id".to_string()),
            "[a-z_]{0,8}"], prop_oneof![
            Just("null".to_string()), "\"[^\"\\\\]{0,40}\"", "-?[0-9]{1,30}(\\.[0-9]{1,5})?",
            Just("{}".to_string()), Just("[[]]".to_string()), Just("true".to_string())]), 0..9)
    ) {
        let body = format!("{{{}}}", fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(","));
        match decode(body.as_bytes(), &Limits::default()) {
            Ok(l) => prop_assert!(!l.user_id.is_empty()),
            Err(r) => prop_assert!(is_reason_text(&r.to_string()), "reason {}", r),
        }
    }

    #[test]
    fn valid_versions_round_trip(major in 0i64..21474, minor in 0i64..100, patch in 0i64..100) {
        let s = format!("{major}.{minor}.{patch}");
        prop_assert_eq!(encode_app_version(&s, i64::from(i32::MAX)), Some(major * 10000 + minor * 100 + patch));
    }
}
