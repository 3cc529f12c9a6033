//! Whole-body edges: unknown keys, non-objects, empty and blank bodies, nesting, huge
//! numbers, NUL, bytes that are not UTF-8, and the clocks a row can be dated by.

use super::cases::{Body, Event};
use super::mutations::{q, Obj};

fn nest(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// Bodies that are not one well-formed login object, or are one with extras around it.
pub fn shapes(out: &mut Vec<Event>) {
    let good = Obj::good().json();
    let mut unknown_100 = Obj::good();
    for i in 0..100 {
        unknown_100 = unknown_100.push(&q(&format!("extra_{i}")), &i.to_string());
    }
    let all_null = [
        "user_id",
        "app_version",
        "device_type",
        "ip",
        "locale",
        "device_id",
    ]
    .iter()
    .fold(Obj::good(), |o, k| o.set(k, "null"))
    .set("user_id", r#""nulls""#);
    let mut reversed = good.clone();
    reversed = {
        let inner = &reversed[1..reversed.len() - 1];
        let mut parts: Vec<&str> = inner.split(',').collect();
        parts.reverse();
        format!("{{{}}}", parts.join(","))
    };
    let cases: Vec<(&str, String)> = vec![
        ("good", good.clone()),
        ("keys-reversed", reversed),
        (
            "pretty",
            serde_json::to_string_pretty(
                &serde_json::from_str::<serde_json::Value>(&good).unwrap(),
            )
            .unwrap(),
        ),
        ("all-null-but-user", all_null.json()),
        ("unknown-1", Obj::good().push(r#""extra""#, "1").json()),
        (
            "unknown-nested",
            Obj::good()
                .push(r#""extra""#, r#"{"a":[1,{"b":null}]}"#)
                .json(),
        ),
        ("unknown-empty-key", Obj::good().push(r#""""#, "1").json()),
        (
            "unknown-duplicate",
            Obj::good().push(r#""x""#, "1").push(r#""x""#, "2").json(),
        ),
        ("unknown-100", unknown_100.json()),
        (
            "unknown-huge-number",
            Obj::good().push(r#""n""#, "1e400").json(),
        ),
        (
            "unknown-bignum",
            Obj::good()
                .push(r#""n""#, "123456789012345678901234567890")
                .json(),
        ),
        (
            "unknown-lone-surrogate",
            Obj::good().push(r#""s""#, r#""\ud800""#).json(),
        ),
        (
            "unknown-nul",
            Obj::good().push(r#""s""#, r#""\u0000""#).json(),
        ),
        (
            "unknown-deep-127",
            Obj::good().push(r#""deep""#, &nest(127)).json(),
        ),
        (
            "unknown-deep-128",
            Obj::good().push(r#""deep""#, &nest(128)).json(),
        ),
        (
            "unknown-deep-5000",
            Obj::good().push(r#""deep""#, &nest(5000)).json(),
        ),
        (
            "user_id-deep-126",
            Obj::good().set("user_id", &nest(126)).json(),
        ),
        (
            "user_id-deep-127",
            Obj::good().set("user_id", &nest(127)).json(),
        ),
        (
            "user_id-deep-128",
            Obj::good().set("user_id", &nest(128)).json(),
        ),
        ("top-array-deep-127", nest(127)),
        ("top-array-deep-1000", nest(1000)),
        ("null", "null".into()),
        ("true", "true".into()),
        ("number", "1".into()),
        ("negative", "-1".into()),
        ("huge-number", "1e400".into()),
        ("string", r#""a string""#.into()),
        ("string-of-good", q(&good)),
        ("array-empty", "[]".into()),
        ("array-of-good", format!("[{good}]")),
        ("object-empty", "{}".into()),
        ("empty", String::new()),
        ("space", " ".into()),
        ("whitespace", "\n\t\r ".into()),
        ("leading-whitespace", format!(" \n{good}")),
        ("trailing-whitespace", format!("{good}\n\t ")),
        ("trailing-garbage", format!("{good} x")),
        ("two-objects", format!("{good}{good}")),
        ("trailing-comma", format!("{},}}", &good[..good.len() - 1])),
        ("comment", format!("/* c */{good}")),
        ("single-quotes", good.replace('"', "'")),
        ("nan-value", Obj::good().push(r#""n""#, "NaN").json()),
        ("bom", format!("\u{feff}{good}")),
        ("nul-after", format!("{good}\u{0}")),
        ("nul-before", format!("\u{0}{good}")),
        (
            "raw-nul-in-string",
            Obj::good().set("locale", "\"R\u{0}U\"").json(),
        ),
        (
            "raw-newline-in-string",
            Obj::good().set("locale", "\"R\nU\"").json(),
        ),
        ("truncated", good[..good.len() - 1].to_owned()),
        ("truncated-mid-string", good[..20].to_owned()),
        ("unbalanced-close", format!("{good}}}")),
        ("keys-unquoted", good.replace("\"user_id\"", "user_id")),
    ];
    for (label, body) in cases {
        out.push(Event::wrapped(format!("body/{label}"), body));
    }
}

/// Bytes that are not UTF-8: only the decoder can be handed them.
pub fn bytes(out: &mut Vec<Event>) {
    let good = Obj::good().json().into_bytes();
    let splice = |needle: &[u8], with: &[u8]| -> Vec<u8> {
        let at = good
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("needle");
        [&good[..at], with, &good[at + needle.len()..]].concat()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ff-in-user_id", splice(b"\"u1\"", b"\"u\xff1\"")),
        (
            "overlong-in-device_type",
            splice(b"\"android\"", b"\"and\xc0\xafroid\""),
        ),
        (
            "truncated-multibyte-in-locale",
            splice(b"\"RU\"", b"\"R\xe2\x82\""),
        ),
        (
            "latin1-in-device_id",
            splice(b"\"593-47-5928\"", b"\"caf\xe9\""),
        ),
        ("ff-in-ip", splice(b"\"1.2.3.4\"", b"\"1.2.3.4\xff\"")),
        (
            "ff-in-unknown-value",
            [&good[..good.len() - 1], b",\"x\":\"\xff\"}"].concat(),
        ),
        (
            "ff-in-unknown-key",
            [&good[..good.len() - 1], b",\"\xff\":1}"].concat(),
        ),
        ("ff-in-key", splice(b"\"locale\"", b"\"loc\xffale\"")),
        (
            "lone-continuation-first",
            [b"\x80".as_slice(), &good].concat(),
        ),
        ("utf16le-bom", [b"\xff\xfe".as_slice(), &good].concat()),
        ("ff-only", b"\xff".to_vec()),
    ];
    for (label, body) in cases {
        out.push(Event::wrapped(format!("bytes/{label}"), Body::Bytes(body)));
    }
}

/// The clocks a row is dated by: `SentTimestamp` at day boundaries, at the ends of time,
/// unparsable (the row is then dated by the envelope, or by the clock: `"today"`).
pub fn clocks(out: &mut Vec<Event>) {
    let good = Obj::good().json();
    for (label, sent) in [
        ("day-end", Some("1709596799999")),
        ("epoch", Some("0")),
        ("before-epoch", Some("-1")),
        ("year-9999", Some("253402300799999")),
        ("out-of-range", Some("99999999999999999")),
        ("fraction", Some("1709596800000.5")),
        ("not-a-number", Some("yesterday")),
        ("absent", None),
    ] {
        out.push(Event::wrapped(format!("sent/{label}"), good.clone()).sent(sent));
        let bad = Obj::good().without("ip").json();
        out.push(Event::wrapped(format!("sent/{label}/reject"), bad).sent(sent));
    }
}
