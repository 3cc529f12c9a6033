//! Dates and times: RFC 3339 with any offset, epoch numbers where the file says so, and
//! metadata times. Postgres's own range is checked, so a value it would refuse is a reject
//! named for its column rather than a database error for the batch.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::{json, string, Check};
use crate::mapping::event::Found;
use crate::mapping::number::Decimal;

/// `as = "epoch_s"` or `"epoch_ms"`: a JSON integer counting from 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epoch {
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Millis,
}

/// The earliest year Postgres's date and timestamptz hold (4713 BC).
const MIN_YEAR: i32 = -4712;

fn in_pg_range(t: DateTime<Utc>) -> Result<DateTime<Utc>, Check> {
    if t.year() < MIN_YEAR {
        Err(Check::OutOfRange)
    } else {
        Ok(t)
    }
}

fn rfc3339(s: &str) -> Result<DateTime<Utc>, Check> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Check::InvalidValue)
        .and_then(in_pg_range)
}

/// A timestamptz value.
pub(super) fn timestamptz(found: Found<'_>, epoch: Option<Epoch>) -> Result<DateTime<Utc>, Check> {
    if let Found::Time(t) = found {
        return Ok(t);
    }
    let Some(epoch) = epoch else {
        return rfc3339(&string(found)?);
    };
    let text = json(found)?.get();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(Check::WrongType);
    }
    let d = Decimal::parse(text).map_err(|_| Check::OutOfRange)?;
    if !d.is_integer() {
        return Err(Check::WrongType);
    }
    let n = d.to_i64().ok_or(Check::OutOfRange)?;
    let t = match epoch {
        Epoch::Seconds => DateTime::from_timestamp(n, 0),
        Epoch::Millis => DateTime::from_timestamp_millis(n),
    };
    t.ok_or(Check::OutOfRange).and_then(in_pg_range)
}

/// A date: `YYYY-MM-DD`, or the UTC date of an RFC 3339 time or a metadata time.
pub(super) fn date(found: Found<'_>) -> Result<NaiveDate, Check> {
    if let Found::Time(t) = found {
        return Ok(t.date_naive());
    }
    let s = string(found)?;
    let d = if s.len() == 10 {
        NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| Check::InvalidValue)?
    } else {
        rfc3339(&s)?.date_naive()
    };
    if d.year() < MIN_YEAR {
        return Err(Check::OutOfRange);
    }
    Ok(d)
}
