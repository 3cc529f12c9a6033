use super::*;
use proptest::prelude::*;

fn raw(s: &str) -> Box<RawValue> {
    serde_json::from_str(s).unwrap()
}

fn run(conv: &Converter, json: &str) -> Result<Cell, Check> {
    let r = raw(json);
    cell(
        conv,
        false,
        false,
        Some(Found::Json(&r)),
        &mut Masker::fixed_for_tests(),
    )
}

fn text(max: usize) -> Converter {
    Converter::Text {
        max_chars: Some(max),
    }
}

#[test]
fn absent_null_required_and_not_null() {
    let m = &mut Masker::fixed_for_tests();
    let c = text(5);
    assert_eq!(cell(&c, false, false, None, m), Ok(Cell::Null));
    assert_eq!(cell(&c, true, false, None, m), Err(Check::MissingField));
    let null = raw("null");
    assert_eq!(
        cell(&c, true, false, Some(Found::Json(&null)), m),
        Ok(Cell::Null)
    );
    assert_eq!(
        cell(&c, false, true, Some(Found::Json(&null)), m),
        Err(Check::NullValue)
    );
    assert_eq!(cell(&c, false, true, None, m), Err(Check::NullValue));
}

#[test]
fn text_counts_characters_and_refuses_nul() {
    assert_eq!(run(&text(3), r#""ééé""#), Ok(Cell::Text("ééé".into())));
    assert_eq!(run(&text(3), r#""éééé""#), Err(Check::TooLong));
    assert_eq!(run(&text(9), r#""a\u0000""#), Err(Check::NulCharacter));
    assert_eq!(run(&text(9), "1"), Err(Check::WrongType));
    assert_eq!(run(&text(9), "true"), Err(Check::WrongType));
    let m = &mut Masker::fixed_for_tests();
    assert_eq!(
        text(9).apply(Found::Text("m-1"), m),
        Ok(Cell::Text("m-1".into()))
    );
}

#[test]
fn integers_in_range_only() {
    let i2 = Converter::Int(IntWidth::I16);
    assert_eq!(run(&i2, "32767"), Ok(Cell::Int2(32767)));
    assert_eq!(run(&i2, "32768"), Err(Check::OutOfRange));
    assert_eq!(run(&i2, "-1.0"), Ok(Cell::Int2(-1)));
    assert_eq!(run(&i2, "1.5"), Err(Check::WrongType));
    assert_eq!(run(&i2, r#""1""#), Err(Check::WrongType));
    let i8 = Converter::Int(IntWidth::I64);
    assert_eq!(run(&i8, "-9223372036854775808"), Ok(Cell::Int8(i64::MIN)));
    assert_eq!(run(&i8, "9223372036854775808"), Err(Check::OutOfRange));
    assert_eq!(run(&i8, "1e400"), Err(Check::OutOfRange));
    let m = &mut Masker::fixed_for_tests();
    assert_eq!(
        Converter::Int(IntWidth::I32).apply(Found::Int(3), m),
        Ok(Cell::Int4(3))
    );
}

#[test]
fn semver_int_is_the_login_app_version() {
    let c = Converter::SemverInt(IntWidth::I32);
    assert_eq!(run(&c, r#""1.2.3""#), Ok(Cell::Int4(10203)));
    assert_eq!(run(&c, r#""7""#), Ok(Cell::Int4(70000)));
    assert_eq!(run(&c, r#""1.100""#), Err(Check::BadVersion));
    assert_eq!(run(&c, "1"), Err(Check::WrongType));
    assert_eq!(
        run(&Converter::SemverInt(IntWidth::I16), r#""4.0""#),
        Err(Check::BadVersion)
    );
}

#[test]
fn numeric_is_exact() {
    let c = Converter::Numeric(Some((5, 2)));
    let d = |s: &str| Ok(Cell::Numeric(Decimal::parse(s).unwrap()));
    assert_eq!(run(&c, "19.99"), d("19.99"));
    assert_eq!(run(&c, r#""19.99""#), d("19.99"));
    assert_eq!(run(&c, "19.999"), Err(Check::OutOfRange));
    assert_eq!(run(&c, "1000"), Err(Check::OutOfRange));
    assert_eq!(run(&c, r#""19,99""#), Err(Check::InvalidValue));
    assert_eq!(run(&c, r#"" 1""#), Err(Check::InvalidValue));
    assert_eq!(run(&c, "true"), Err(Check::WrongType));
    let free = Converter::Numeric(None);
    let long = "0.1000000000000000055511151231257827";
    assert_eq!(run(&free, long), d(long));
    assert_eq!(run(&free, "1e200000"), Err(Check::OutOfRange));
}

#[test]
fn booleans_uuids_dates_and_times() {
    assert_eq!(run(&Converter::Bool, "false"), Ok(Cell::Bool(false)));
    assert_eq!(run(&Converter::Bool, r#""true""#), Err(Check::WrongType));
    let u = "6f1c1f4e-8a2b-4c7d-9e3f-0a1b2c3d4e5f";
    assert_eq!(
        run(&Converter::Uuid, &format!("{u:?}")),
        Ok(Cell::Uuid(u.parse().unwrap()))
    );
    assert_eq!(run(&Converter::Uuid, r#""nope""#), Err(Check::InvalidValue));
    let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    assert_eq!(
        run(&Converter::Date, r#""2024-02-29""#),
        Ok(Cell::Date(day))
    );
    assert_eq!(
        run(&Converter::Date, r#""2024-02-29T23:30:00-01:00""#),
        Ok(Cell::Date(day.succ_opt().unwrap()))
    );
    assert_eq!(
        run(&Converter::Date, r#""2023-02-29""#),
        Err(Check::InvalidValue)
    );
    let t = "2024-05-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
    let tz = Converter::Timestamptz(None);
    assert_eq!(
        run(&tz, r#""2024-05-01T14:00:00+02:00""#),
        Ok(Cell::Timestamptz(t))
    );
    assert_eq!(run(&tz, r#""2024-05-01 12:00""#), Err(Check::InvalidValue));
    assert_eq!(run(&tz, "1714564800"), Err(Check::WrongType));
    assert_eq!(
        run(&Converter::Timestamptz(Some(Epoch::Seconds)), "1714564800"),
        Ok(Cell::Timestamptz(t))
    );
    assert_eq!(
        run(
            &Converter::Timestamptz(Some(Epoch::Millis)),
            "1714564800000"
        ),
        Ok(Cell::Timestamptz(t))
    );
    assert_eq!(
        run(
            &Converter::Timestamptz(Some(Epoch::Seconds)),
            "1714564800.5"
        ),
        Err(Check::WrongType)
    );
    assert_eq!(
        run(
            &Converter::Timestamptz(Some(Epoch::Seconds)),
            "99999999999999999"
        ),
        Err(Check::OutOfRange)
    );
    let m = &mut Masker::fixed_for_tests();
    assert_eq!(
        Converter::Date.apply(Found::Time(t), m),
        Ok(Cell::Date(t.date_naive()))
    );
}

#[test]
fn addresses_json_and_arrays() {
    assert_eq!(
        run(&Converter::Inet, r#""::ffff:1.2.3.4""#),
        Ok(Cell::Inet("1.2.3.4".parse().unwrap()))
    );
    assert_eq!(run(&Converter::Inet, r#""1.2.3""#), Err(Check::InvalidIp));
    assert_eq!(
        run(
            &Converter::IpText {
                max_chars: Some(15)
            },
            r#""::ffff:1.2.3.4""#
        ),
        Ok(Cell::Text("1.2.3.4".into()))
    );
    let j = Converter::Json { binary: true };
    assert_eq!(
        run(&j, r#"{"a": [1.50, "x"]}"#),
        Ok(Cell::Json(r#"{"a": [1.50, "x"]}"#.into()))
    );
    assert_eq!(run(&j, r#"["\u0000"]"#), Err(Check::NulCharacter));
    assert_eq!(
        run(&j, r#"["\\u0000"]"#),
        Ok(Cell::Json(r#"["\\u0000"]"#.into()))
    );
    assert!(run(&Converter::Json { binary: false }, r#"["\u0000"]"#).is_ok());
    let a = Converter::TextArray { max_chars: Some(2) };
    assert_eq!(
        run(&a, r#"["a","bc"]"#),
        Ok(Cell::TextArray(vec!["a".into(), "bc".into()]))
    );
    assert_eq!(run(&a, r#"["abc"]"#), Err(Check::TooLong));
    assert_eq!(run(&a, r#"["a",null]"#), Err(Check::WrongType));
    assert_eq!(run(&a, r#"["a",1]"#), Err(Check::WrongType));
    assert_eq!(run(&a, r#""a""#), Err(Check::WrongType));
}

#[test]
fn tokens_are_the_login_tokens_and_fit_their_column() {
    let mut m = Masker::fixed_for_tests();
    let ip = Converter::Token {
        context: "ip".into(),
        ip: true,
        max_chars: Some(256),
    };
    let want = m.mask_ip("10.0.0.1".parse().unwrap());
    assert_eq!(run(&ip, r#""::ffff:10.0.0.1""#), Ok(Cell::Text(want)));
    let dev = Converter::Token {
        context: "device_id".into(),
        ip: false,
        max_chars: Some(256),
    };
    assert_eq!(
        run(&dev, r#""d-1""#),
        Ok(Cell::Text(m.mask_device_id("d-1")))
    );
    let narrow = Converter::Token {
        context: "device_id".into(),
        ip: false,
        max_chars: Some(m.token_len(3)),
    };
    assert!(run(&narrow, r#""abc""#).is_ok());
    assert_eq!(run(&narrow, r#""abcd""#), Err(Check::TooLong));
    assert_eq!(run(&dev, "12"), Err(Check::WrongType));
}

proptest! {
    /// Any integer text loads into int8 as itself; a decimal string into numeric as itself.
    #[test]
    fn integers_and_decimals_load_as_written(n in any::<i64>(), frac in "[0-9]{0,6}") {
        prop_assert_eq!(run(&Converter::Int(IntWidth::I64), &n.to_string()), Ok(Cell::Int8(n)));
        let text = if frac.is_empty() { n.to_string() } else { format!("{n}.{frac}") };
        let want = Decimal::parse(&text).unwrap();
        prop_assert_eq!(run(&Converter::Numeric(None), &format!("{text:?}")), Ok(Cell::Numeric(want.clone())));
        prop_assert_eq!(run(&Converter::Numeric(None), &text), Ok(Cell::Numeric(want)));
    }

    /// Every converter takes any JSON value without panicking.
    #[test]
    fn converters_never_panic(body in r#"[\[\]{}",:0-9a-z.\-\\ ]{0,24}"#) {
        let Ok(r) = serde_json::from_str::<Box<RawValue>>(&body) else { return Ok(()) };
        let m = &mut Masker::fixed_for_tests();
        for c in [text(3), Converter::Int(IntWidth::I16), Converter::SemverInt(IntWidth::I32),
                  Converter::Numeric(Some((4, 1))), Converter::Bool, Converter::Uuid, Converter::Date,
                  Converter::Timestamptz(Some(Epoch::Millis)), Converter::Inet,
                  Converter::Json { binary: true }, Converter::TextArray { max_chars: None }] {
            let _ = cell(&c, true, true, Some(Found::Json(&r)), m);
        }
    }

    /// Text either loads unchanged or is refused for a reason its content explains.
    #[test]
    fn text_loads_unchanged_or_says_why(s in "\\PC{0,12}", max in 0usize..8) {
        let json = serde_json::to_string(&s).unwrap();
        match run(&text(max), &json) {
            Ok(c) => prop_assert_eq!(c, Cell::Text(s)),
            Err(Check::TooLong) => prop_assert!(s.chars().count() > max),
            Err(Check::NulCharacter) => prop_assert!(s.contains('\0')),
            Err(other) => prop_assert!(false, "{other}"),
        }
    }

    /// Epoch times load as the instant they count; RFC 3339 in any offset as the same
    /// instant; the date of a time is its UTC date.
    #[test]
    fn times_load_as_their_instant(secs in -62_135_596_800i64..253_402_300_799, off_min in -1439i32..1439) {
        let t = DateTime::from_timestamp(secs, 0).unwrap();
        prop_assert_eq!(run(&Converter::Timestamptz(Some(Epoch::Seconds)), &secs.to_string()), Ok(Cell::Timestamptz(t)));
        prop_assert_eq!(run(&Converter::Timestamptz(Some(Epoch::Millis)), &(secs * 1000).to_string()), Ok(Cell::Timestamptz(t)));
        let zone = chrono::FixedOffset::east_opt(off_min * 60).unwrap();
        let text = t.with_timezone(&zone).to_rfc3339();
        prop_assert_eq!(run(&Converter::Timestamptz(None), &format!("{text:?}")), Ok(Cell::Timestamptz(t)));
        prop_assert_eq!(run(&Converter::Date, &format!("{text:?}")), Ok(Cell::Date(t.date_naive())));
    }

    /// Any uuid in any case loads as itself; any address loads canonical, its token opens
    /// back to it under the context `ip`.
    #[test]
    fn uuids_addresses_and_tokens(bytes in any::<[u8; 16]>(), upper in any::<bool>()) {
        let u = uuid::Uuid::from_bytes(bytes);
        let text = if upper { u.to_string().to_uppercase() } else { u.to_string() };
        prop_assert_eq!(run(&Converter::Uuid, &format!("{text:?}")), Ok(Cell::Uuid(u)));
        let ip = IpAddr::from(bytes);
        let canonical = ip.to_canonical();
        prop_assert_eq!(run(&Converter::Inet, &format!("{:?}", ip.to_string())), Ok(Cell::Inet(canonical)));
        let tok = Converter::Token { context: "ip".into(), ip: true, max_chars: None };
        let Ok(Cell::Text(t)) = run(&tok, &format!("{:?}", ip.to_string())) else {
            return Err(TestCaseError::fail("no token"));
        };
        let opened = Masker::fixed_for_tests().reveal(crate::mask::Column::Ip, &t).unwrap();
        prop_assert_eq!(opened, canonical.to_string());
    }

    /// A JSON array of strings loads element for element.
    #[test]
    fn string_arrays_load_element_for_element(items in proptest::collection::vec("[^\\x00]{0,5}", 0..5)) {
        let json = serde_json::to_string(&items).unwrap();
        prop_assert_eq!(run(&Converter::TextArray { max_chars: Some(5) }, &json), Ok(Cell::TextArray(items)));
    }
}
