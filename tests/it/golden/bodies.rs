//! Whole-body edges: unknown keys, non-objects, empty and blank bodies, nesting, huge
//! numbers, NUL, bytes that are not UTF-8, and the clocks a row can be dated by.

use super::cases::{Body, Event};
use super::mutations::{q, Obj};

fn nest(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// Bodies that are not one well-formed login object, or are one with extras around it.
pub fn shapes(out: &mut Vec<Event>) {
    let cases = [objects(), nesting(), not_one_object()].concat();
    for (label, body) in cases {
        out.push(Event::wrapped(format!("body/{label}"), body));
    }
}

/// Unknown keys added to `GOOD`, as `(label, raw key, raw value)`.
const EXTRAS: [(&str, &str, &str); 9] = [
    ("unknown-1", r#""extra""#, "1"),
    ("unknown-nested", r#""extra""#, r#"{"a":[1,{"b":null}]}"#),
    ("unknown-empty-key", r#""""#, "1"),
    ("unknown-huge-number", r#""n""#, "1e400"),
    ("unknown-bignum", r#""n""#, "123456789012345678901234567890"),
    ("unknown-lone-surrogate", r#""s""#, r#""\ud800""#),
    ("unknown-nul", r#""s""#, r#""\u0000""#),
    ("nan-value", r#""n""#, "NaN"),
    ("unknown-key-of-envelope", r#""Message""#, r#""{}""#),
];

/// Login objects: reordered, pretty, all null, with unknown keys.
fn objects() -> Vec<(&'static str, String)> {
    let good = Obj::good().json();
    let unknown_100 = (0..100).fold(Obj::good(), |o, i| {
        o.push(&q(&format!("extra_{i}")), &i.to_string())
    });
    let fields = ["app_version", "device_type", "ip", "locale", "device_id"];
    let all_null = fields.iter().fold(Obj::good(), |o, k| o.set(k, "null"));
    let mut parts: Vec<&str> = good[1..good.len() - 1].split(',').collect();
    parts.reverse();
    let value: serde_json::Value = serde_json::from_str(&good).expect("GOOD is JSON");
    let mut cases = vec![
        ("good", good.clone()),
        ("keys-reversed", format!("{{{}}}", parts.join(","))),
        (
            "pretty",
            serde_json::to_string_pretty(&value).expect("JSON"),
        ),
        ("all-null-but-user", all_null.json()),
        ("unknown-100", unknown_100.json()),
        (
            "unknown-duplicate",
            Obj::good().push(r#""x""#, "1").push(r#""x""#, "2").json(),
        ),
    ];
    for (label, key, raw) in EXTRAS {
        cases.push((label, Obj::good().push(key, raw).json()));
    }
    cases
}

/// Nesting around serde_json's recursion limit, in an unknown key, in user_id, at the top.
fn nesting() -> Vec<(&'static str, String)> {
    let unknown = |n| Obj::good().push(r#""deep""#, &nest(n)).json();
    let user_id = |n| Obj::good().set("user_id", &nest(n)).json();
    vec![
        ("unknown-deep-127", unknown(127)),
        ("unknown-deep-128", unknown(128)),
        ("unknown-deep-5000", unknown(5000)),
        ("user_id-deep-126", user_id(126)),
        ("user_id-deep-127", user_id(127)),
        ("user_id-deep-128", user_id(128)),
        ("top-array-deep-127", nest(127)),
        ("top-array-deep-1000", nest(1000)),
    ]
}

/// Not one JSON object: other JSON values, nothing, blanks, garbage around `GOOD`, NUL.
fn not_one_object() -> Vec<(&'static str, String)> {
    let good = Obj::good().json();
    let open = &good[..good.len() - 1];
    let locale = |raw: &str| Obj::good().set("locale", raw).json();
    let mut cases: Vec<(&str, String)> = [
        ("null", "null"),
        ("true", "true"),
        ("number", "1"),
        ("negative", "-1"),
        ("huge-number", "1e400"),
        ("string", r#""a string""#),
        ("array-empty", "[]"),
        ("object-empty", "{}"),
        ("empty", ""),
        ("space", " "),
        ("whitespace", "\n\t\r "),
    ]
    .iter()
    .map(|(label, body)| (*label, (*body).to_owned()))
    .collect();
    cases.extend([
        ("string-of-good", q(&good)),
        ("array-of-good", format!("[{good}]")),
        ("leading-whitespace", format!(" \n{good}")),
        ("trailing-whitespace", format!("{good}\n\t ")),
        ("trailing-garbage", format!("{good} x")),
        ("two-objects", format!("{good}{good}")),
        ("trailing-comma", format!("{open},}}")),
        ("comment", format!("/* c */{good}")),
        ("single-quotes", good.replace('"', "'")),
        ("bom", format!("\u{feff}{good}")),
        ("nul-after", format!("{good}\u{0}")),
        ("nul-before", format!("\u{0}{good}")),
        ("raw-nul-in-string", locale("\"R\u{0}U\"")),
        ("raw-newline-in-string", locale("\"R\nU\"")),
        ("truncated", open.to_owned()),
        ("truncated-mid-string", good[..20].to_owned()),
        ("unbalanced-close", format!("{good}}}")),
        ("keys-unquoted", good.replace("\"user_id\"", "user_id")),
    ]);
    cases
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
