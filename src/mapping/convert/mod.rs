//! Converters: one found value → one typed [`Cell`], exact and strict. The column's type
//! (read from the catalog by [`super::compile`]) chose the [`Converter`]; a value that does
//! not fit is a [`Check`] that names what failed, never the value.
//!
//! What each takes:
//! - text types: a JSON string (or a metadata string); NUL refused, length in characters;
//! - `int2`/`int4`/`int8`: a JSON number whose exact value is an integer in range (`1.0`
//!   and `1e2` are integers; `"1"` is a string); `as = "semver_int"`: a version string
//!   (into `numeric` too);
//! - `numeric`: a JSON number or a string in the JSON number grammar, exactly; more
//!   fractional digits than the scale is refused, never rounded;
//! - `boolean`: `true`/`false`; `uuid`: a string Postgres reads as one;
//! - `date`: `YYYY-MM-DD`, an RFC 3339 time or a metadata time (its UTC date);
//! - `timestamptz`: RFC 3339 with any offset, a metadata time, or with `as = "epoch_s"` /
//!   `"epoch_ms"` a JSON integer;
//! - `inet` (or `as = "ip"` into text): an address, canonical like the login's `ip`;
//! - `json`/`jsonb`: any value, the subtree as sent; `text[]`: an array of strings;
//! - a token column: a string (or with `as = "ip"` an address), sealed under its context.
//!
//! JSON `null` is SQL NULL for every type; an absent value too, unless `required` (or
//! `non_empty`, which the evaluator checks around [`cell`]).

mod check;
mod time;

pub use check::{spell, Check};

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::value::RawValue;

use super::event::Found;
use super::number::{Decimal, NumberError};
use crate::mask::Masker;
use crate::pii::Pii;

/// One converted value, typed for a binary `COPY` encoder. Tokens are `Text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// Any text type (and tokens).
    Text(String),
    /// `int2`.
    Int2(i16),
    /// `int4`.
    Int4(i32),
    /// `int8`.
    Int8(i64),
    /// `numeric`, exact.
    Numeric(Decimal),
    /// `boolean`.
    Bool(bool),
    /// `uuid`.
    Uuid(uuid::Uuid),
    /// `date`.
    Date(NaiveDate),
    /// `timestamptz`.
    Timestamptz(DateTime<Utc>),
    /// `inet`.
    Inet(IpAddr),
    /// `json` or `jsonb`: the value's JSON text as sent.
    Json(String),
    /// `text[]` (or `varchar[]`).
    TextArray(Vec<String>),
}

/// The width of an integer column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntWidth {
    /// `int2`.
    I16,
    /// `int4`.
    I32,
    /// `int8`.
    I64,
}

impl IntWidth {
    fn max(self) -> i64 {
        match self {
            Self::I16 => i16::MAX.into(),
            Self::I32 => i32::MAX.into(),
            Self::I64 => i64::MAX,
        }
    }

    fn cell(self, v: i64) -> Result<Cell, Check> {
        let range = || Check::OutOfRange;
        Ok(match self {
            Self::I16 => Cell::Int2(i16::try_from(v).map_err(|_| range())?),
            Self::I32 => Cell::Int4(i32::try_from(v).map_err(|_| range())?),
            Self::I64 => Cell::Int8(v),
        })
    }
}

/// How one column's value is made; chosen once per column by the compiler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Converter {
    /// A string, at most `max_chars` characters.
    Text {
        /// The column's limit.
        max_chars: Option<usize>,
    },
    /// An integer.
    Int(IntWidth),
    /// A version string encoded `major*10000 + minor*100 + patch`.
    SemverInt(IntWidth),
    /// The same encoding into a `numeric(precision, scale)` column, at most `i32::MAX` as
    /// the login's `app_version` has always been.
    SemverNumeric(Option<(i32, i32)>),
    /// An exact decimal within `(precision, scale)`.
    Numeric(Option<(i32, i32)>),
    /// A boolean.
    Bool,
    /// A uuid.
    Uuid,
    /// A date.
    Date,
    /// A time with its zone.
    Timestamptz(Option<time::Epoch>),
    /// An address into `inet`.
    Inet,
    /// An address as canonical text.
    IpText {
        /// The column's limit.
        max_chars: Option<usize>,
    },
    /// `json` or `jsonb` (`jsonb` refuses `\u0000`, as Postgres does).
    Json {
        /// Whether the column is `jsonb`.
        binary: bool,
    },
    /// An array of strings, each at most `max_chars`.
    TextArray {
        /// The element type's limit.
        max_chars: Option<usize>,
    },
    /// The value's token under `context`.
    Token {
        /// Bound into the token's associated data.
        context: String,
        /// The value is an address (`as = "ip"`).
        ip: bool,
        /// The column's limit, which the token must fit.
        max_chars: Option<usize>,
    },
}

pub use time::Epoch;

/// The cell for a column: absent and `null` values first (`required`, NOT NULL), then the
/// converter.
pub fn cell(
    conv: &Converter,
    required: bool,
    not_null: bool,
    found: Option<Found<'_>>,
    masker: &mut Masker,
) -> Result<Cell, Check> {
    let found = match found {
        None if required => return Err(Check::MissingField),
        None => None,
        Some(Found::Json(raw)) if raw.get() == "null" => None,
        Some(f) => Some(f),
    };
    match found {
        None if not_null => Err(Check::NullValue),
        None => Ok(Cell::Null),
        Some(f) => conv.apply(f, masker),
    }
}

impl Converter {
    /// Converts a present, non-null value.
    pub fn apply(&self, found: Found<'_>, masker: &mut Masker) -> Result<Cell, Check> {
        match self {
            Self::Text { max_chars } => text(found, *max_chars).map(Cell::Text),
            Self::Int(w) => w.cell(integer(found)?),
            Self::SemverInt(w) => {
                let v = string(found)?;
                crate::decode::encode_app_version(&v, w.max())
                    .ok_or(Check::BadVersion)
                    .and_then(|n| w.cell(n))
            }
            Self::SemverNumeric(typmod) => {
                let v = string(found)?;
                let n = crate::decode::encode_app_version(&v, i32::MAX.into())
                    .ok_or(Check::BadVersion)?;
                let d = Decimal::parse(&n.to_string()).map_err(|_| Check::BadVersion)?;
                d.fits(*typmod)
                    .then_some(Cell::Numeric(d))
                    .ok_or(Check::OutOfRange)
            }
            Self::Numeric(typmod) => numeric(found, *typmod).map(Cell::Numeric),
            Self::Bool => match json(found)?.get() {
                "true" => Ok(Cell::Bool(true)),
                "false" => Ok(Cell::Bool(false)),
                _ => Err(Check::WrongType),
            },
            Self::Uuid => uuid::Uuid::try_parse(&string(found)?)
                .map(Cell::Uuid)
                .map_err(|_| Check::InvalidValue),
            Self::Date => time::date(found).map(Cell::Date),
            Self::Timestamptz(epoch) => time::timestamptz(found, *epoch).map(Cell::Timestamptz),
            Self::Inet => ip(found).map(Cell::Inet),
            Self::IpText { max_chars } => {
                let s = ip(found)?.to_string();
                check_text(&s, *max_chars)?;
                Ok(Cell::Text(s))
            }
            Self::Json { binary } => {
                let raw = json(found)?.get();
                if *binary && has_nul_escape(raw) {
                    return Err(Check::NulCharacter);
                }
                Ok(Cell::Json(raw.to_owned()))
            }
            Self::TextArray { max_chars } => text_array(found, *max_chars).map(Cell::TextArray),
            Self::Token {
                context,
                ip: is_ip,
                max_chars,
            } => token(found, context, *is_ip, *max_chars, masker).map(Cell::Text),
        }
    }
}

fn json(found: Found<'_>) -> Result<&RawValue, Check> {
    match found {
        Found::Json(raw) => Ok(raw),
        _ => Err(Check::WrongType),
    }
}

/// A JSON string's or a metadata string's value.
fn string(found: Found<'_>) -> Result<String, Check> {
    match found {
        Found::Text(s) => Ok(s.to_owned()),
        Found::Json(raw) if raw.get().starts_with('"') => {
            serde_json::from_str(raw.get()).map_err(|_| Check::WrongType)
        }
        _ => Err(Check::WrongType),
    }
}

fn check_text(s: &str, max_chars: Option<usize>) -> Result<(), Check> {
    if s.contains('\0') {
        return Err(Check::NulCharacter);
    }
    // The byte length bounds the character count from above: count only when it may matter.
    match max_chars {
        Some(max) if s.len() > max && s.chars().count() > max => Err(Check::TooLong),
        _ => Ok(()),
    }
}

fn text(found: Found<'_>, max_chars: Option<usize>) -> Result<String, Check> {
    let s = string(found)?;
    check_text(&s, max_chars)?;
    Ok(s)
}

fn number_text(found: Found<'_>) -> Result<Decimal, Check> {
    let text = json(found)?.get();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(Check::WrongType);
    }
    Decimal::parse(text).map_err(|_| Check::OutOfRange)
}

fn integer(found: Found<'_>) -> Result<i64, Check> {
    if let Found::Int(n) = found {
        return Ok(n);
    }
    let d = number_text(found)?;
    if !d.is_integer() {
        return Err(Check::WrongType);
    }
    d.to_i64().ok_or(Check::OutOfRange)
}

fn numeric(found: Found<'_>, typmod: Option<(i32, i32)>) -> Result<Decimal, Check> {
    let d = match found {
        Found::Int(n) => Decimal::parse(&n.to_string()).map_err(|_| Check::OutOfRange)?,
        Found::Json(raw) if raw.get().starts_with('"') => {
            let s: String = serde_json::from_str(raw.get()).map_err(|_| Check::WrongType)?;
            Decimal::parse(&s).map_err(|e| match e {
                NumberError::Syntax => Check::InvalidValue,
                NumberError::Range => Check::OutOfRange,
            })?
        }
        Found::Text(s) => Decimal::parse(s).map_err(|_| Check::InvalidValue)?,
        f => number_text(f)?,
    };
    if d.fits(typmod) {
        Ok(d)
    } else {
        Err(Check::OutOfRange)
    }
}

fn ip(found: Found<'_>) -> Result<IpAddr, Check> {
    crate::decode::parse_ip(&string(found)?).map_err(|_| Check::InvalidIp)
}

/// Whether JSON text holds the escape `\u0000` (a backslash not itself escaped).
fn has_nul_escape(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes[i + 1..].starts_with(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

fn text_array(found: Found<'_>, max_chars: Option<usize>) -> Result<Vec<String>, Check> {
    let items: Vec<Option<String>> =
        serde_json::from_str(json(found)?.get()).map_err(|_| Check::WrongType)?;
    items
        .into_iter()
        .map(|s| {
            let s = s.ok_or(Check::WrongType)?;
            check_text(&s, max_chars)?;
            Ok(s)
        })
        .collect()
}

fn token(
    found: Found<'_>,
    context: &str,
    is_ip: bool,
    max_chars: Option<usize>,
    masker: &mut Masker,
) -> Result<String, Check> {
    let plain: Pii<Vec<u8>> = if is_ip {
        Pii::new(crate::mask::ip_plaintext(ip(found)?).to_vec())
    } else {
        Pii::new(string(found)?.into_bytes())
    };
    // Tokens are ASCII: bytes are characters.
    if max_chars.is_some_and(|max| masker.token_len(plain.expose().len()) > max) {
        return Err(Check::TooLong);
    }
    Ok(masker.seal_context(context, plain.expose()))
}

#[cfg(test)]
mod tests;
