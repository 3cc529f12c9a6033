//! One event through a compiled [`Plan`]: the route that takes it, then its row, or the
//! reason it is rejected. Pure: the event's text, its metadata and a masker in, an
//! [`Outcome`] out.
//!
//! When a body has several faults, the reason is the login decoder's choice: a key repeated
//! on any column's path first, then the first `required` value that is absent, then the
//! first value that does not convert, in the file's column order.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::value::RawValue;

use super::compile::{ColumnPlan, Plan, RoutePlan};
use super::convert::{cell, Cell, Check};
use super::event::{lookup, BodyError, Event, Metadata};
use crate::decode::envelope::{self, Envelope};
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
        /// The column.
        column: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Body(b) => write!(f, "{b}"),
            Self::BadEnvelope => f.write_str("bad_envelope"),
            Self::NoRoute => f.write_str("no_route"),
            Self::DuplicateInWhen => f.write_str("duplicate_field:when"),
            Self::Column { check, column } => write!(f, "{check}:{column}"),
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

/// Routes and converts one event.
pub fn eval<'p>(plan: &'p Plan, event: &str, meta: &Metadata, masker: &mut Masker) -> Outcome<'p> {
    let reject = |route, reason| Outcome::Reject { route, reason };
    let event = match Event::parse(event) {
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
    match row(&load.columns, &event, meta, masker) {
        Ok(cells) => Outcome::Row {
            route: &route.name,
            table: &load.table,
            cells,
        },
        Err(reason) => reject(Some(&route.name), reason),
    }
}

/// [`eval`] on an SQS body: the event found in its envelope as `envelope` says, the
/// envelope's top-level fields becoming `envelope:NAME` metadata.
pub fn eval_body<'p>(
    plan: &'p Plan,
    body: &str,
    envelope: Envelope,
    mut meta: Metadata,
    masker: &mut Masker,
) -> Outcome<'p> {
    let bad = || Outcome::Reject {
        route: None,
        reason: Reason::BadEnvelope,
    };
    let Ok(opened) = envelope::open(body.as_bytes(), envelope) else {
        return bad();
    };
    if opened.kind.is_some() {
        match serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(body) {
            Ok(fields) => meta.envelope = Some(fields),
            Err(_) => return bad(),
        }
    }
    let sns = opened.kind == Some(envelope::Kind::Sns);
    let outcome = match std::str::from_utf8(&opened.event) {
        Ok(event) => eval(plan, event, &meta, masker),
        Err(_) => return bad(),
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

fn choose<'p>(
    plan: &'p Plan,
    event: &Event<'_>,
    meta: &Metadata,
) -> Result<Option<&'p RoutePlan>, Reason> {
    for r in &plan.routes {
        let holds = match &r.when {
            None => true,
            Some(w) => w.holds(event, meta).map_err(|_| Reason::DuplicateInWhen)?,
        };
        if holds {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn row<'p>(
    columns: &'p [ColumnPlan],
    event: &Event<'_>,
    meta: &Metadata,
    masker: &mut Masker,
) -> Result<Vec<(&'p str, Cell)>, Reason> {
    let fail = |check, c: &ColumnPlan| Reason::Column {
        check,
        column: c.name.clone(),
    };
    let mut found = Vec::with_capacity(columns.len());
    for c in columns {
        found.push(lookup(event, meta, &c.source).map_err(|_| fail(Check::DuplicateField, c))?);
    }
    if let Some((c, _)) = columns
        .iter()
        .zip(&found)
        .find(|(c, f)| c.required && f.is_none())
    {
        return Err(fail(Check::MissingField, c));
    }
    columns
        .iter()
        .zip(found)
        .map(|(c, f)| {
            cell(&c.converter, c.required, c.not_null, f, masker)
                .map(|v| (c.name.as_str(), v))
                .map_err(|check| fail(check, c))
        })
        .collect()
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
