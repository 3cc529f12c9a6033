//! One event through a compiled [`Plan`]: the route that takes it, then its row, or the
//! reason it is rejected. Pure: the event's text, its metadata and a masker in, an
//! [`Outcome`] out.
//!
//! When a body has several faults, the reason is the login decoder's choice: a key repeated
//! on any column's path first, then the first `required` value that is absent, then the
//! first value that does not convert, in the file's column order. A column's reasons name it
//! as [`spell`] says (its `reason`, the login's one-word reasons).
//!
//! A row also counts the event's top-level keys that no column names ([`unknown_keys`]).

use std::fmt;

use super::compile::{ColumnPlan, Plan, RoutePlan};
use super::convert::{cell, spell, Cell, Check, Converter};
use super::dating::Dating;
use super::event::{BodyError, Found, Metadata};
use super::field::{Meta, Source};
use super::strict;
use super::tree::{lookup, Tree};
use crate::decode::envelope::{self, Envelope};
use crate::decode::{CreateDateFrom, Framing};
use crate::mask::Masker;

/// Why an event is not loaded. `Display` is the reject reason stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The body holds no event (`not_json`, `too_deep`, `not_object`).
    Body(BodyError),
    /// An SNS or EventBridge envelope that is not a whole one.
    BadEnvelope,
    /// No route's `when` holds.
    NoRoute,
    /// A key repeated on the path of a route's `when`.
    DuplicateInWhen,
    /// A column's value failed a check.
    Column {
        /// What failed.
        check: Check,
        /// The column's name in reasons: its `reason`, else the column.
        column: String,
        /// The file gave the name as `reason` (the login's one-word reasons apply).
        named: bool,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Body(b) => write!(f, "{b}"),
            Self::BadEnvelope => f.write_str("bad_envelope"),
            Self::NoRoute => f.write_str("no_route"),
            Self::DuplicateInWhen => f.write_str("duplicate_field:when"),
            Self::Column {
                check,
                column,
                named,
            } => f.write_str(&spell(*check, column, *named)),
        }
    }
}

/// What becomes of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<'p> {
    /// A row of the route's table: each mapped column and its cell, in file order.
    Row {
        /// The route's name.
        route: &'p str,
        /// The resolved table.
        table: &'p str,
        /// The cells.
        cells: Vec<(&'p str, Cell)>,
        /// How many of the event's top-level keys no column names (counted, not refused).
        unknown_keys: usize,
    },
    /// A skip route took it: ledgered and deleted, no row.
    Skip {
        /// The route's name.
        route: &'p str,
    },
    /// Quarantined.
    Reject {
        /// The route that took it; `None` before one did.
        route: Option<&'p str>,
        /// Why.
        reason: Reason,
    },
}

/// Routes and converts one event; `message_time` is the message's `SentTimestamp`.
pub fn eval<'p>(plan: &'p Plan, event: &str, meta: &Metadata, masker: &mut Masker) -> Outcome<'p> {
    eval_dated(plan, event, meta, &Dating::default(), masker)
}

fn eval_dated<'p>(
    plan: &'p Plan,
    event: &str,
    meta: &Metadata,
    dating: &Dating,
    masker: &mut Masker,
) -> Outcome<'p> {
    let reject = |route, reason| Outcome::Reject { route, reason };
    let event = match Tree::read(&plan.index, event, plan.index.strict()) {
        Ok(e) => e,
        Err(b) => return reject(None, Reason::Body(b)),
    };
    let route = match choose(plan, &event, meta) {
        Ok(Some(r)) => r,
        Ok(None) => return reject(None, Reason::NoRoute),
        Err(reason) => return reject(None, reason),
    };
    let Some(load) = &route.load else {
        return Outcome::Skip { route: &route.name };
    };
    match row(&load.columns, &event, meta, dating, masker) {
        Ok(cells) => Outcome::Row {
            route: &route.name,
            table: &load.table,
            cells,
            unknown_keys: event.unknown_keys(&load.columns),
        },
        Err(reason) => reject(Some(&route.name), reason),
    }
}

/// [`eval`] on an SQS body: the event found in its envelope as `envelope` says, the
/// envelope's top-level fields becoming `envelope:NAME` metadata; `message_time` is the
/// message's `SentTimestamp` (`--create-date-from sqs`).
pub fn eval_body<'p>(
    plan: &'p Plan,
    body: &str,
    envelope: Envelope,
    meta: Metadata,
    masker: &mut Masker,
) -> Outcome<'p> {
    let framing = Framing {
        envelope,
        create_date_from: CreateDateFrom::Sqs,
    };
    eval_message(plan, body, framing, meta, masker)
}

/// [`eval_body`] read as `framing` says: with `--create-date-from envelope`,
/// `message_time` is the envelope's own time ([`Dating`]).
pub fn eval_message<'p>(
    plan: &'p Plan,
    body: &str,
    framing: Framing,
    mut meta: Metadata,
    masker: &mut Masker,
) -> Outcome<'p> {
    let bad = || Outcome::Reject {
        route: None,
        reason: Reason::BadEnvelope,
    };
    let names = plan.index.envelope_fields();
    let Ok(opened) = envelope::open_reading(body.as_bytes(), framing.envelope, names) else {
        return bad();
    };
    if opened.kind.is_some() {
        // Only the fields the plan reads are copied, found in the pass that opened the
        // envelope: it holds the whole event too (`detail`), which copying would cost.
        let kept = names.iter().zip(&opened.fields);
        let kept = kept.filter_map(|(name, v)| Some((name.clone(), (*v)?.to_owned())));
        meta.envelope = Some(kept.collect());
    }
    let dating = Dating::new(framing.create_date_from, &opened);
    let sns = opened.kind == Some(envelope::Kind::Sns);
    let outcome = match event_text(body, &opened.event) {
        Some(event) => eval_dated(plan, event, &meta, &dating, masker),
        None => return bad(),
    };
    match outcome {
        // An SNS Message that is not JSON is a broken envelope, as for logins.
        Outcome::Reject {
            reason: Reason::Body(BodyError::NotJson),
            ..
        } if sns => bad(),
        other => other,
    }
}

/// The opened event as text: a part of the body is found in it rather than checked again
/// byte by byte.
fn event_text<'a>(body: &'a str, event: &'a [u8]) -> Option<&'a str> {
    let start = (event.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    let end = start.checked_add(event.len())?;
    match body.get(start..end) {
        Some(text) if text.as_ptr() == event.as_ptr() => Some(text),
        _ => std::str::from_utf8(event).ok(),
    }
}

fn choose<'p>(
    plan: &'p Plan,
    event: &Tree<'_, '_>,
    meta: &Metadata,
) -> Result<Option<&'p RoutePlan>, Reason> {
    for r in &plan.routes {
        let holds = match &r.when {
            None => true,
            Some(w) => {
                let found = lookup(event, meta, &w.source);
                w.test(found.map_err(|_| Reason::DuplicateInWhen)?)
            }
        };
        if holds {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn row<'p>(
    columns: &'p [ColumnPlan],
    event: &Tree<'_, '_>,
    meta: &Metadata,
    dating: &Dating,
    masker: &mut Masker,
) -> Result<Vec<(&'p str, Cell)>, Reason> {
    let fail = |check, c: &ColumnPlan| Reason::Column {
        check,
        column: c.reason.clone().unwrap_or_else(|| c.name.clone()),
        named: c.reason.is_some(),
    };
    let mut found = Vec::with_capacity(columns.len());
    for c in columns {
        found.push(lookup(event, meta, &c.source));
    }
    // A strict value that does not parse fails the whole event, as a body the login decoder
    // cannot parse does, whatever else is wrong with it.
    // Top-level keys in the event's order, each time they appear; deeper paths after.
    let top: Vec<&str> = columns
        .iter()
        .filter_map(|c| match &c.source {
            Source::Path(p) if c.strict && p.tokens().len() == 1 => Some(p.tokens()[0].as_str()),
            _ => None,
        })
        .collect();
    event.check_keys(&top).map_err(Reason::Body)?;
    for (c, f) in columns.iter().zip(&found) {
        if let (true, Ok(Some(Found::Json(v))), Source::Path(p)) = (c.strict, f, &c.source) {
            if p.tokens().len() > 1 {
                strict::check(v, p.tokens().len()).map_err(Reason::Body)?;
            }
        }
    }
    if let Some(c) = repeated(columns, &found, event) {
        return Err(fail(Check::DuplicateField, c));
    }
    let found: Vec<_> = found.into_iter().map(|f| f.unwrap_or(None)).collect();
    if let Some((c, _)) = columns
        .iter()
        .zip(&found)
        .find(|(c, f)| c.required && f.is_none())
    {
        return Err(fail(Check::MissingField, c));
    }
    // A token too long for its column is found last: the token is the last thing made.
    let mut too_long = None;
    let mut cells = Vec::with_capacity(columns.len());
    for (c, f) in columns.iter().zip(found) {
        let f = if c.source == Source::Meta(Meta::MessageTime) {
            Some(Found::Time(
                dating.time(meta).map_err(|_| Reason::BadEnvelope)?,
            ))
        } else {
            f
        };
        match column(c, f, masker) {
            Ok(v) => cells.push((c.name.as_str(), v)),
            Err(Check::TooLong) if matches!(c.converter, Converter::Token { .. }) => {
                too_long.get_or_insert(c);
            }
            Err(check) => return Err(fail(check, c)),
        }
    }
    match too_long {
        Some(c) => Err(fail(Check::TooLong, c)),
        None => Ok(cells),
    }
}

/// The column a repeated key is reported for: the first in file order, or, when every
/// column with a repeat is `strict` and reads a top-level key, the one whose key repeats
/// first in the event, as the login decoder reports it.
fn repeated<'p, T, E>(
    columns: &'p [ColumnPlan],
    found: &[Result<T, E>],
    event: &Tree<'_, '_>,
) -> Option<&'p ColumnPlan> {
    let twice: Vec<&ColumnPlan> = columns
        .iter()
        .zip(found)
        .filter_map(|(c, f)| f.is_err().then_some(c))
        .collect();
    fn key(c: &ColumnPlan) -> Option<&str> {
        match &c.source {
            Source::Path(p) if c.strict && p.tokens().len() == 1 => Some(p.tokens()[0].as_str()),
            _ => None,
        }
    }
    let keys: Option<Vec<&str>> = twice.iter().map(|c| key(c)).collect();
    match keys {
        Some(keys) if keys.len() > 1 => {
            let first = event.first_repeat(&keys)?;
            twice.into_iter().find(|c| key(c) == Some(first))
        }
        _ => twice.first().copied(),
    }
}

/// One column's cell: with `non_empty`, null (or absent) and `""` are refused, after the
/// converter's own checks as the login checks `user_id`.
fn column(c: &ColumnPlan, found: Option<Found<'_>>, masker: &mut Masker) -> Result<Cell, Check> {
    let is_null = |f: &Option<Found<'_>>| match f {
        None => true,
        Some(Found::Json(raw)) => raw.get() == "null",
        Some(_) => false,
    };
    if c.non_empty && is_null(&found) {
        return Err(Check::Null);
    }
    let empty = matches!(found, Some(Found::Json(raw)) if raw.get() == "\"\"")
        || matches!(found, Some(Found::Text("")));
    let cell = cell(&c.converter, c.required, c.not_null, found, masker)?;
    if c.non_empty && empty {
        return Err(Check::Empty);
    }
    Ok(cell)
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
