//! Systematic mutations of one valid event: each of the six keys missing, null, of every
//! wrong JSON type, empty, at and past its length limit, duplicated, respelled; then the
//! app_version forms, the ip forms, and whole-body edges (unknown keys, non-objects, empty
//! and blank bodies, nesting, huge numbers, NUL, bytes that are not UTF-8).

use super::cases::{Event, Lim, SHAPES};

/// The event every mutation starts from (the decode unit tests' `GOOD`).
const GOOD: [(&str, &str); 6] = [
    ("user_id", r#""u1""#),
    ("app_version", r#""2.3.0""#),
    ("device_type", r#""android""#),
    ("ip", r#""1.2.3.4""#),
    ("locale", r#""RU""#),
    ("device_id", r#""593-47-5928""#),
];

/// `GOOD` as raw `(key, value)` JSON texts, spliced verbatim, so a mutation can put in what
/// no serialiser would write.
#[derive(Clone)]
pub struct Obj(Vec<(String, String)>);

impl Obj {
    pub fn good() -> Self {
        Self(
            GOOD.iter()
                .map(|(k, v)| (format!("\"{k}\""), (*v).to_owned()))
                .collect(),
        )
    }

    pub fn set(mut self, key: &str, raw: &str) -> Self {
        let k = format!("\"{key}\"");
        match self.0.iter_mut().find(|(kk, _)| *kk == k) {
            Some(slot) => slot.1 = raw.to_owned(),
            None => self.0.push((k, raw.to_owned())),
        }
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.0.retain(|(k, _)| *k != format!("\"{key}\""));
        self
    }

    /// Adds a raw key (quoted as given) and value after the others.
    pub fn push(mut self, raw_key: &str, raw: &str) -> Self {
        self.0.push((raw_key.to_owned(), raw.to_owned()));
        self
    }

    pub fn json(&self) -> String {
        let fields: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// A JSON string of `s`.
pub fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Values of a wrong JSON type, or not JSON values at all, for any of the six keys.
const WRONG: [(&str, &str); 14] = [
    ("int", "12"),
    ("negative", "-3"),
    ("float", "1.5"),
    ("exponent", "1e3"),
    ("huge-number", "1e400"),
    ("bignum", "123456789012345678901234567890"),
    ("true", "true"),
    ("false", "false"),
    ("object", "{}"),
    ("object-nonempty", r#"{"a":1}"#),
    ("array", "[]"),
    ("array-of-string", r#"["x"]"#),
    ("bare-word", "undefined"),
    ("single-quoted", "'x'"),
];

/// Strings any of the six keys may hold.
const STRINGS: [(&str, &str); 9] = [
    ("empty", r#""""#),
    ("space", r#"" ""#),
    ("nul", r#""a\u0000b""#),
    ("raw-control", "\"a\u{1}b\""),
    ("raw-tab", "\"a\tb\""),
    ("escaped-a", r#""\u0041""#),
    ("lone-surrogate", r#""\ud800""#),
    ("surrogate-pair", r#""\ud83d\ude00""#),
    ("ctl-escapes", r#""ctl\u0001\u001f\t""#),
];

/// Every field's generic mutations.
pub fn per_field(out: &mut Vec<Event>) {
    for (key, good) in GOOD {
        let id = |label: &str| format!("mutation/{key}/{label}");
        let mut push = |label: &str, obj: Obj| out.push(Event::wrapped(id(label), obj.json()));
        push("missing", Obj::good().without(key));
        push("null", Obj::good().set(key, "null"));
        for (label, raw) in WRONG.iter().chain(&STRINGS) {
            push(label, Obj::good().set(key, raw));
        }
        push("duplicate-same", Obj::good().push(&q(key), good));
        push("duplicate-null", Obj::good().push(&q(key), "null"));
        push("duplicate-wrong-type", Obj::good().push(&q(key), "7"));
        push(
            "null-then-value",
            Obj::good().set(key, "null").push(&q(key), good),
        );
        push(
            "key-upper-case",
            Obj::good().without(key).push(&q(&key.to_uppercase()), good),
        );
        push(
            "key-trailing-space",
            Obj::good().without(key).push(&q(&format!("{key} ")), good),
        );
        let escaped = format!("\"\\u{:04x}{}\"", key.as_bytes()[0], &key[1..]);
        push("key-escaped", Obj::good().without(key).push(&escaped, good));
    }
}

/// Lengths at and past each text column's limit, in one-byte and multi-byte characters.
pub fn lengths(out: &mut Vec<Event>, device_id_max: usize) {
    let long = |key: &str, label: String, value: String| {
        Event::wrapped(
            format!("mutation/{key}/{label}"),
            Obj::good().set(key, &q(&value)).json(),
        )
        .with_limits(&SHAPES)
    };
    for (key, max) in [("user_id", 128), ("device_type", 32), ("locale", 32)] {
        for n in [max - 1, max, max + 1] {
            out.push(long(key, format!("ascii-{n}"), "x".repeat(n)));
            out.push(long(key, format!("euro-{n}"), "€".repeat(n)));
        }
    }
    for (label, n) in [("exact", 7), ("over", 8), ("limit-2", 2)] {
        for key in ["user_id", "device_type", "locale"] {
            out.push(long(key, format!("tight-{label}"), "y".repeat(n)));
        }
    }
    // device_id is limited by its token's length, in bytes: `device_id_max` bytes fit the
    // contract's masked_device_id varchar(256).
    let m = device_id_max;
    for (label, value) in [
        (format!("bytes-{}", m - 1), "d".repeat(m - 1)),
        (format!("bytes-{m}"), "d".repeat(m)),
        (format!("bytes-{}", m + 1), "d".repeat(m + 1)),
        (format!("euro-{}", m / 3), "€".repeat(m / 3)),
        (format!("euro-{}", m / 3 + 1), "€".repeat(m / 3 + 1)),
        ("chars-300".into(), "q".repeat(300)),
        ("bytes-11".into(), "12345678901".into()),
        ("bytes-12".into(), "123456789012".into()),
        ("nul-inside".into(), "dev\u{0}ice".into()),
    ] {
        out.push(long("device_id", label, value));
    }
}

/// app_version forms: dotted, integer, at the column maxima, huge, negative, non-numeric.
const APP_VERSIONS: [&str; 46] = [
    "2.3.0",
    "0.96",
    "0.60",
    "3.7",
    "5",
    "1.2.3",
    "0.0.0",
    "10.99.99",
    "214748.36.47",
    "214748.36.48",
    "3.27.67",
    "3.27.68",
    "4.0",
    "99999999999999999999",
    "999999999999.1.2",
    "1000000000000",
    "99999999999999999999999.1",
    "1.100",
    "1.2.100",
    "1.2.3.4",
    "",
    "1.",
    ".1",
    "1..2",
    "v1.2",
    "+1.2",
    "-1.2",
    "-1",
    " 1.2",
    "1.2 ",
    "1.2-beta",
    "１.２",
    "1e3",
    "0x10",
    "01.02.03",
    "007",
    "0",
    "1.2.3-very-long-build-tag",
    "12345678901234567890",
    "123456789012345678901",
    "٣.٤",
    "1.2\u{0}",
    "bad",
    "2.3.0\n",
    "1,2",
    "∞",
];

/// Every form of `app_version`, against integer and text columns.
pub fn app_versions(out: &mut Vec<Event>) {
    for (n, form) in APP_VERSIONS.iter().enumerate() {
        let body = Obj::good().set("app_version", &q(form)).json();
        out.push(
            Event::wrapped(format!("mutation/app_version/form-{n:02}"), body).with_limits(&SHAPES),
        );
    }
    for (label, raw) in [
        ("number-int", "2"),
        ("number-dotted", "2.3"),
        ("number-negative", "-1"),
    ] {
        let body = Obj::good().set("app_version", raw).json();
        out.push(
            Event::wrapped(format!("mutation/app_version/{label}"), body).with_limits(&SHAPES),
        );
    }
}

/// ip forms: v4, v6, mapped, zoned, bracketed, with ports, leading zeros, invalid.
const IPS: [&str; 50] = [
    "1.2.3.4",
    "0.0.0.0",
    "255.255.255.255",
    "10.0.0.1",
    "224.0.0.1",
    "127.0.0.1",
    "169.254.0.1",
    "::",
    "::1",
    "::ffff:1.2.3.4",
    "::FFFF:0102:0304",
    "::ffff:7f00:1",
    "0:0:0:0:0:ffff:7f00:1",
    "::127.0.0.1",
    "64:ff9b::1.2.3.4",
    "2001:DB8::1",
    "2001:db8:0:0:0:0:0:1",
    "2001:0db8::0001",
    "2001:db8::",
    "fe80::1",
    "fe80::1%eth0",
    "fe80::1%1",
    "::1%lo",
    "[::1]",
    "1.2.3.4:80",
    "[::1]:80",
    "01.2.3.4",
    "001.002.003.004",
    "1.2.3.04",
    "0x7f.0.0.1",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "999.1.1.1",
    "203.0.113.300",
    " 1.2.3.4",
    "1.2.3.4 ",
    "",
    "localhost",
    "1.2.3.4/24",
    "::ffff:999.1.1.1",
    "1::2::3",
    "12345::",
    "2001:db8::g",
    "١.٢.٣.٤",
    "１.２.３.４",
    "1.2.3.4\u{0}",
    "::ffff:1.2.3.4%eth0",
    "2130706433",
    "ffff::ffff:ffff:ffff:ffff:ffff:ffff",
];

/// Every form of `ip`: v4, v6, mapped, zoned, invalid, leading zeros.
pub fn ips(out: &mut Vec<Event>) {
    for (n, form) in IPS.iter().enumerate() {
        let body = Obj::good().set("ip", &q(form)).json();
        out.push(
            Event::wrapped(format!("mutation/ip/form-{n:02}"), body).with_limits(&[
                Lim::Default,
                Lim::Tight,
                Lim::IpShort,
            ]),
        );
    }
    let body = Obj::good().set("ip", "3405803969").json();
    out.push(Event::wrapped("mutation/ip/number", body));
}
