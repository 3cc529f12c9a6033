//! Decode and validate one message body into a [`Login`], or say why it cannot be one.
//!
//! Pure and synchronous: bytes in, a [`Login`] or a [`RejectReason`] out, no I/O. The rules
//! are the contract's "Message → row" table; the column limits come from the live table
//! ([`Limits`]), so an operator who widens a column widens what is accepted. [`envelope`]
//! first finds the event in an SNS or EventBridge envelope; [`decode_message`] does both.

pub mod envelope;

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::pii::Pii;
pub use envelope::{CreateDateFrom, Envelope, Framing};

/// The six fields of a login event, in the order the decoder tracks them.
pub const FIELDS: [&str; 6] = [
    "user_id",
    "app_version",
    "device_type",
    "ip",
    "locale",
    "device_id",
];

/// How `app_version` is stored, read from the live `user_logins` table at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppVersionColumn {
    /// An integer column: `major*10000 + minor*100 + patch`, at most `max`.
    Integer {
        /// The largest value the column holds.
        max: i64,
    },
    /// A text column (an operator altered it): the string verbatim, at most `max_chars`.
    Text {
        /// The column's length limit in characters, if it has one.
        max_chars: Option<usize>,
    },
}

/// Length limits of the text columns, in characters, as the live table declares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `user_id`'s limit.
    pub user_id: Option<usize>,
    /// `device_type`'s limit.
    pub device_type: Option<usize>,
    /// `locale`'s limit.
    pub locale: Option<usize>,
    /// `masked_ip`'s limit (applies to the token).
    pub masked_ip: Option<usize>,
    /// `masked_device_id`'s limit (applies to the token).
    pub masked_device_id: Option<usize>,
    /// How `app_version` is stored.
    pub app_version: AppVersionColumn,
}

impl Default for Limits {
    /// The contract's DDL.
    fn default() -> Self {
        Self {
            user_id: Some(128),
            device_type: Some(32),
            locale: Some(32),
            masked_ip: Some(256),
            masked_device_id: Some(256),
            app_version: AppVersionColumn::Integer {
                max: i64::from(i32::MAX),
            },
        }
    }
}

/// The value that goes into the `app_version` column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppVersion {
    /// Encoded for an integer column.
    Int(i64),
    /// Verbatim for a text column.
    Text(String),
}

/// A valid login event. The PII fields are wrapped so they cannot be logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// Never null or empty.
    pub user_id: String,
    /// `None` for JSON `null`.
    pub app_version: Option<AppVersion>,
    /// `None` for JSON `null`.
    pub device_type: Option<String>,
    /// Parsed and canonical (IPv4-mapped IPv6 folded to IPv4).
    pub ip: Option<Pii<IpAddr>>,
    /// `None` for JSON `null`.
    pub locale: Option<String>,
    /// Raw device id.
    pub device_id: Option<Pii<String>>,
    /// How many keys the object had beyond the six.
    pub unknown_keys: usize,
}

/// Why a message cannot become a row. `Display` gives the short machine-readable reason
/// stored in `user_logins_rejects.reason`; it never contains message content.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The body is not JSON.
    NotJson,
    /// JSON nested deeper than the parser allows.
    TooDeep,
    /// JSON, but not an object.
    NotObject,
    /// One of the six keys is absent.
    MissingField(&'static str),
    /// One of the six keys appears more than once.
    DuplicateField(&'static str),
    /// A value of the wrong JSON type (every field is a string or null).
    WrongType(&'static str),
    /// `user_id` is null.
    NullUserId,
    /// `user_id` is the empty string.
    EmptyUserId,
    /// A string longer than its column (never truncated).
    TooLong(&'static str),
    /// A string holding a NUL character, which Postgres text cannot store.
    NulCharacter(&'static str),
    /// `ip` is not an IPv4 or IPv6 address.
    InvalidIp,
    /// `app_version` does not encode into the integer column.
    BadAppVersion,
    /// A failure of ours while handling the message; kept so nothing is lost.
    Internal,
    /// The database refused the row (SQLSTATE given).
    Database(String),
    /// An SNS or EventBridge envelope that is not a whole one (see [`envelope::open`]).
    BadEnvelope,
    /// A mapping's reason (`no_route`, `missing_field:COL`, …), as the mapping's evaluator
    /// words it.
    Mapped(String),
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson => f.write_str("not_json"),
            Self::TooDeep => f.write_str("too_deep"),
            Self::NotObject => f.write_str("not_object"),
            Self::MissingField(k) => write!(f, "missing_field:{k}"),
            Self::DuplicateField(k) => write!(f, "duplicate_field:{k}"),
            Self::WrongType(k) => write!(f, "wrong_type:{k}"),
            Self::NullUserId => f.write_str("null_user_id"),
            Self::EmptyUserId => f.write_str("empty_user_id"),
            Self::TooLong(k) => write!(f, "too_long:{k}"),
            Self::NulCharacter(k) => write!(f, "nul_character:{k}"),
            Self::InvalidIp => f.write_str("invalid_ip"),
            Self::BadAppVersion => f.write_str("bad_app_version"),
            Self::Internal => f.write_str("internal_error"),
            Self::Database(code) => write!(f, "database_error:{code}"),
            Self::BadEnvelope => f.write_str("bad_envelope"),
            Self::Mapped(reason) => f.write_str(reason),
        }
    }
}

/// Decodes one SQS body as `framing` says: the event inside its envelope, and the time its
/// row is dated by when that is the envelope's (`None`: the message's `SentTimestamp`).
/// Never panics, whatever the bytes.
pub fn decode_message(
    body: &[u8],
    framing: Framing,
    limits: &Limits,
) -> Result<(Login, Option<DateTime<Utc>>), RejectReason> {
    let opened = envelope::open(body, framing.envelope)?;
    let login = decode(&opened.event, limits).map_err(|r| opened.inner_reason(r))?;
    let time = match framing.create_date_from {
        CreateDateFrom::Sqs => None,
        CreateDateFrom::Envelope => opened.time()?,
    };
    Ok((login, time))
}

/// Decodes one bare event. Never panics, whatever the bytes.
pub fn decode(body: &[u8], limits: &Limits) -> Result<Login, RejectReason> {
    let raw: RawLogin = serde_json::from_slice(body).map_err(|e| match e.classify() {
        // Our visitor raises data errors only for a top-level value that is not an object.
        serde_json::error::Category::Data => RejectReason::NotObject,
        _ if e.to_string().starts_with("recursion limit exceeded") => RejectReason::TooDeep,
        _ => RejectReason::NotJson,
    })?;
    if let Some(dup) = raw.duplicate {
        return Err(RejectReason::DuplicateField(dup));
    }
    let mut values = raw.values.into_iter();
    let mut next = |i: usize| -> Result<Value, RejectReason> {
        values
            .next()
            .flatten()
            .ok_or(RejectReason::MissingField(FIELDS[i]))
    };
    let [user_id, app_version, device_type, ip, locale, device_id] =
        [next(0)?, next(1)?, next(2)?, next(3)?, next(4)?, next(5)?];

    let user_id = match string_field(user_id, "user_id", limits.user_id)? {
        None => return Err(RejectReason::NullUserId),
        Some(s) if s.is_empty() => return Err(RejectReason::EmptyUserId),
        Some(s) => s,
    };
    let app_version = match app_version {
        Value::Null => None,
        Value::String(s) => Some(app_version_value(s, limits.app_version)?),
        _ => return Err(RejectReason::WrongType("app_version")),
    };
    let device_type = string_field(device_type, "device_type", limits.device_type)?;
    let ip = match ip {
        Value::Null => None,
        Value::String(s) => Some(Pii::new(parse_ip(&s)?)),
        _ => return Err(RejectReason::WrongType("ip")),
    };
    let locale = string_field(locale, "locale", limits.locale)?;
    // The device id is encrypted, so only its type is checked here; the token's length is
    // checked against `masked_device_id` after masking.
    let device_id = match device_id {
        Value::Null => None,
        Value::String(s) => Some(Pii::new(s)),
        _ => return Err(RejectReason::WrongType("device_id")),
    };
    Ok(Login {
        user_id,
        app_version,
        device_type,
        ip,
        locale,
        device_id,
        unknown_keys: raw.unknown_keys,
    })
}

/// Parses an address in any range; canonical form folds IPv4-mapped IPv6 to IPv4.
/// Zone ids (`fe80::1%eth0`) and surrounding spaces are not addresses.
pub fn parse_ip(s: &str) -> Result<IpAddr, RejectReason> {
    s.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| RejectReason::InvalidIp)
}

/// Encodes a version for an integer column: 1–3 dot-separated decimal numbers,
/// `major*10000 + minor*100 + patch`, minor and patch below 100.
pub fn encode_app_version(s: &str, max: i64) -> Option<i64> {
    let mut parts = [0i64; 3];
    for (n, part) in s.split('.').enumerate() {
        // An empty part passes the digit check and fails the parse.
        if n == 3 || part.len() > 12 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        parts[n] = part.parse().ok()?;
    }
    let [major, minor, patch] = parts;
    if minor >= 100 || patch >= 100 {
        return None;
    }
    let v = major
        .checked_mul(10_000)?
        .checked_add(minor * 100 + patch)?;
    (v <= max).then_some(v)
}

fn app_version_value(s: String, column: AppVersionColumn) -> Result<AppVersion, RejectReason> {
    match column {
        AppVersionColumn::Integer { max } => encode_app_version(&s, max)
            .map(AppVersion::Int)
            .ok_or(RejectReason::BadAppVersion),
        AppVersionColumn::Text { max_chars } => {
            check_text(&s, "app_version", max_chars)?;
            Ok(AppVersion::Text(s))
        }
    }
}

fn string_field(
    v: Value,
    name: &'static str,
    max_chars: Option<usize>,
) -> Result<Option<String>, RejectReason> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            check_text(&s, name, max_chars)?;
            Ok(Some(s))
        }
        _ => Err(RejectReason::WrongType(name)),
    }
}

fn check_text(s: &str, name: &'static str, max_chars: Option<usize>) -> Result<(), RejectReason> {
    if s.contains('\0') {
        return Err(RejectReason::NulCharacter(name));
    }
    // varchar(n) counts characters, not bytes; the byte length bounds the count from above.
    match max_chars {
        Some(max) if s.len() > max && s.chars().count() > max => Err(RejectReason::TooLong(name)),
        _ => Ok(()),
    }
}

/// The top-level object as the decoder sees it: the six values (absent = `None`), the
/// first duplicated key, and a count of other keys. Unknown values are skipped unparsed.
struct RawLogin {
    values: [Option<Value>; 6],
    duplicate: Option<&'static str>,
    unknown_keys: usize,
}

enum Key {
    Known(usize),
    Unknown,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(FIELDS
                    .iter()
                    .position(|f| *f == v)
                    .map_or(Key::Unknown, Key::Known))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for RawLogin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawLogin;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawLogin, A::Error> {
                let mut raw = RawLogin {
                    values: Default::default(),
                    duplicate: None,
                    unknown_keys: 0,
                };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Known(i) => {
                            let v: Value = map.next_value()?;
                            if raw.values[i].is_some() {
                                raw.duplicate.get_or_insert(FIELDS[i]);
                            }
                            raw.values[i] = Some(v);
                        }
                        Key::Unknown => {
                            map.next_value::<IgnoredAny>()?;
                            raw.unknown_keys += 1;
                        }
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(RawVisitor)
    }
}

#[cfg(test)]
mod tests;
