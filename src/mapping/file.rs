//! The mapping file: read with its positions kept, checked whole before anything runs.
//!
//! The grammar is the contract's: a top-level `rejects_table`, then `[[route]]` tables with
//! `name`, `table`, `when`, `subject`, `key`, `on_conflict`, `skip` and `[route.columns]`,
//! each column `{ path | meta, token, required, as }`. Unknown keys are refused. Every
//! error says `FILE:LINE:COL`, the route and the key. A column also takes three keys the
//! built-in login mapping needs to say today's login (`entry.rs` reads them):
//! - `non_empty = true`: null, an absent value and `""` reject the event, `null_NAME` and
//!   `empty_NAME` (the login's `null_user_id`, `empty_user_id`);
//! - `reason = "NAME"` (1-63 of `[a-z0-9_]`, starting with a letter): its reasons name NAME
//!   instead of the column (`wrong_type:ip` for `masked_ip`), and an address or a version
//!   that does not read is one word, `invalid_NAME` / `bad_NAME` (`invalid_ip`,
//!   `bad_app_version`); without it, `invalid_ip:COL` / `bad_version:COL`;
//! - `strict = true`: the value is read as the login reads its keys: a number beyond a
//!   double's range or a lone surrogate in it is `not_json`, nesting of 128 counting its
//!   path `too_deep`, whatever else is wrong; and a mapping with a strict column checks
//!   nothing else of an event but its syntax, at any depth ([`super::strict`]).
//!
//! A `meta` may also be `message_time`: the envelope's time under `--create-date-from
//! envelope`, else `SentTimestamp`, else now ([`super::field::Meta::MessageTime`]).
//!
//! What this file decides beyond the contract:
//! - a route name is 1-63 of `[a-z0-9_]`, starting with a letter (it becomes a metric label
//!   value and a reject's `route`), and unique;
//! - a token context is named the same way, and is never `body` (the rejects' bodies are
//!   sealed under that context);
//! - `key` needs `on_conflict`, names mapped columns, and the reverse;
//! - a `skip` route has no `table`, `columns`, `key` or `subject`; any other route has a
//!   `table` and at least one column;
//! - a route after one without `when` can never be reached, and is refused.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use super::entry::{self, source};
pub use super::spec::*;
use super::when::{Literal, Test, When};
use super::MappingError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    rejects_table: Option<Spanned<String>>,
    #[serde(default)]
    route: Vec<Spanned<RouteDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    name: Option<Spanned<String>>,
    table: Option<Spanned<String>>,
    when: Option<Spanned<WhenDoc>>,
    subject: Option<Spanned<String>>,
    key: Option<Spanned<Vec<String>>>,
    on_conflict: Option<Spanned<String>>,
    skip: Option<Spanned<bool>>,
    columns: Option<Spanned<BTreeMap<Spanned<String>, Spanned<entry::ColumnDoc>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenDoc {
    path: Option<Spanned<String>>,
    meta: Option<Spanned<String>>,
    equals: Option<toml::Value>,
    #[serde(rename = "in")]
    in_: Option<Vec<toml::Value>>,
    exists: Option<bool>,
}

/// Turns byte offsets of one file into `FILE:LINE:COL`.
pub(super) struct Place<'a> {
    file: &'a str,
    text: &'a str,
}

impl Place<'_> {
    /// Line and column from 1, the column in characters.
    pub(super) fn at(&self, offset: usize) -> String {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        format!("{}:{line}:{col}", self.file)
    }

    pub(super) fn error(&self, offset: usize, problem: String) -> MappingError {
        MappingError::File {
            at: self.at(offset),
            problem,
        }
    }
}

/// `[a-z][a-z0-9_]{0,62}`: a route name or a token context.
pub fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Mapping {
    /// Reads and checks a mapping file.
    pub fn load(path: &std::path::Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Checks `text`, naming it `file` in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, MappingError> {
        let place = Place { file, text };
        let doc: Doc = toml::from_str(text).map_err(|e| toml_error(&place, &e))?;
        let mut routes: Vec<Route> = Vec::new();
        let mut names = BTreeSet::new();
        for r in doc.route {
            let start = r.span().start;
            let route = route(&place, r.into_inner(), start)?;
            if !names.insert(route.name.clone()) {
                return Err(place_error(&route.at, format!("route {:?}: a route of that name comes before it: route names must be unique", route.name)));
            }
            if let Some(all) = routes.iter().find(|p| p.when.is_none()) {
                return Err(place_error(&route.at, format!("route {:?} can never be reached: route {:?} before it has no `when` and takes every event", route.name, all.name)));
            }
            routes.push(route);
        }
        if routes.is_empty() {
            return Err(place.error(0, "no [[route]]: a mapping needs at least one".into()));
        }
        let (rejects_table, rejects_at) = match doc.rejects_table {
            Some(t) if t.get_ref().trim().is_empty() => {
                return Err(place.error(t.span().start, "rejects_table is empty".into()))
            }
            Some(t) => (t.get_ref().clone(), place.at(t.span().start)),
            None => (DEFAULT_REJECTS_TABLE.to_owned(), file.to_owned()),
        };
        Ok(Self {
            rejects_table,
            rejects_at,
            routes,
        })
    }
}

fn place_error(at: &str, problem: String) -> MappingError {
    MappingError::File {
        at: at.to_owned(),
        problem,
    }
}

/// The TOML parser's error as ours: its position, the route it is in, `key` for `field`.
fn toml_error(place: &Place<'_>, e: &toml::de::Error) -> MappingError {
    let offset = e.span().map_or(0, |s| s.start);
    let mut problem = e.message().trim_end().replace('\n', " ");
    if let Some(rest) = problem.strip_prefix("unknown field `") {
        if let Some((key, expected)) = rest.split_once("`, expected ") {
            problem = format!(
                "unknown key {key:?} (expected {})",
                expected.replace('`', "")
            );
        }
    }
    if let Some(name) = route_at(place.text, offset) {
        problem = format!("route {name:?}: {problem}");
    }
    place.error(offset, problem)
}

/// The name of the route whose `[[route]]` table holds byte `offset`, if the file parses
/// as TOML at all.
fn route_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let index = before
        .lines()
        .filter(|l| l.trim_start().starts_with("[[route]]"))
        .count()
        .checked_sub(1)?;
    let doc: toml::Table = toml::from_str(text).ok()?;
    let name = doc
        .get("route")?
        .as_array()?
        .get(index)?
        .get("name")?
        .as_str()?;
    Some(name.to_owned())
}

fn route(place: &Place<'_>, r: RouteDoc, start: usize) -> Result<Route, MappingError> {
    let name = r
        .name
        .as_ref()
        .ok_or_else(|| place.error(start, "a [[route]] without `name`".into()))?;
    let at = place.at(name.span().start);
    let name = name.get_ref().clone();
    if !is_label(&name) {
        return Err(place_error(&at, format!("route name {name:?} must be 1-63 of [a-z0-9_], starting with a letter (it names the route in metrics and rejects)")));
    }
    let fail =
        |offset: usize, problem: String| place.error(offset, format!("route {name:?}: {problem}"));
    let when = match &r.when {
        Some(w) => Some(when(w.get_ref()).map_err(|p| fail(w.span().start, p))?),
        None => None,
    };
    let skip = r.skip.as_ref().is_some_and(|s| *s.get_ref());
    let target = if skip {
        let extra = [
            ("table", r.table.as_ref().map(|s| s.span())),
            ("columns", r.columns.as_ref().map(|s| s.span())),
            ("key", r.key.as_ref().map(|s| s.span())),
            ("on_conflict", r.on_conflict.as_ref().map(|s| s.span())),
            ("subject", r.subject.as_ref().map(|s| s.span())),
        ];
        if let Some((key, Some(span))) = extra.into_iter().find(|(_, s)| s.is_some()) {
            return Err(fail(
                span.start,
                format!("a skip route loads nothing: remove `{key}`"),
            ));
        }
        Target::Skip
    } else {
        Target::Table(table_route(place, &name, r, start)?)
    };
    Ok(Route {
        name,
        at,
        when,
        target,
    })
}

fn table_route(
    place: &Place<'_>,
    name: &str,
    r: RouteDoc,
    start: usize,
) -> Result<TableRoute, MappingError> {
    let fail =
        |offset: usize, problem: String| place.error(offset, format!("route {name:?}: {problem}"));
    let table = r
        .table
        .ok_or_else(|| fail(start, "no `table` (or `skip = true`)".into()))?;
    let docs = r
        .columns
        .ok_or_else(|| fail(start, "no [route.columns]".into()))?;
    let mut entries: Vec<_> = docs.into_inner().into_iter().collect();
    if entries.is_empty() {
        return Err(fail(start, "[route.columns] is empty".into()));
    }
    entries.sort_by_key(|(k, _)| k.span().start);
    let columns = entries
        .into_iter()
        .map(|(k, v)| entry::column(place, name, k, v))
        .collect::<Result<Vec<_>, _>>()?;
    let mapped = |c: &str| columns.iter().any(|m| m.name == c);
    let subject = match r.subject {
        Some(s) if !mapped(s.get_ref()) => {
            return Err(fail(
                s.span().start,
                format!(
                    "subject {:?} is not a column of [route.columns]",
                    s.get_ref()
                ),
            ))
        }
        Some(s) => Some((s.get_ref().clone(), place.at(s.span().start))),
        None => None,
    };
    let key = key(place, name, r.key, r.on_conflict, &columns)?;
    Ok(TableRoute {
        table: table.get_ref().clone(),
        table_at: place.at(table.span().start),
        subject,
        key,
        columns,
    })
}

/// `key` and `on_conflict`: both or neither; distinct, mapped key columns.
fn key(
    place: &Place<'_>,
    route: &str,
    key: Option<Spanned<Vec<String>>>,
    on_conflict: Option<Spanned<String>>,
    columns: &[Column],
) -> Result<Option<Key>, MappingError> {
    let fail =
        |offset: usize, problem: String| place.error(offset, format!("route {route:?}: {problem}"));
    let (k, o) = match (key, on_conflict) {
        (None, None) => return Ok(None),
        (None, Some(o)) => return Err(fail(o.span().start, "`on_conflict` needs `key`".into())),
        (Some(k), None) => {
            let problem = "`key` needs `on_conflict` (\"ignore\" or \"update\")";
            return Err(fail(k.span().start, problem.into()));
        }
        (Some(k), Some(o)) => (k, o),
    };
    let on_conflict = match o.get_ref().as_str() {
        "ignore" => OnConflict::Ignore,
        "update" => OnConflict::Update,
        other => {
            let problem = format!("on_conflict {other:?}: use \"ignore\" or \"update\"");
            return Err(fail(o.span().start, problem));
        }
    };
    let cols = k.get_ref();
    let unique: BTreeSet<_> = cols.iter().collect();
    if cols.is_empty() || unique.len() != cols.len() {
        let problem = "`key` needs one or more distinct columns";
        return Err(fail(k.span().start, problem.into()));
    }
    if let Some(c) = cols.iter().find(|c| !columns.iter().any(|m| &m.name == *c)) {
        let problem = format!("key column {c:?} is not a column of [route.columns]");
        return Err(fail(k.span().start, problem));
    }
    Ok(Some(Key {
        columns: cols.clone(),
        on_conflict,
        at: place.at(k.span().start),
    }))
}

fn when(d: &WhenDoc) -> Result<When, String> {
    let source = source(d.path.as_ref(), d.meta.as_ref()).map_err(|(_, p)| format!("when: {p}"))?;
    let literal = |v: &toml::Value| {
        Literal::from_toml(v)
            .ok_or_else(|| "when: compare with a string, a number or a boolean".to_string())
    };
    let test = match (&d.equals, &d.in_, d.exists) {
        (Some(v), None, None) => Test::Equals(literal(v)?),
        (None, Some(vs), None) if !vs.is_empty() => {
            Test::In(vs.iter().map(literal).collect::<Result<_, _>>()?)
        }
        (None, None, Some(e)) => Test::Exists(e),
        _ => {
            return Err(
                "when: give exactly one of `equals`, `in` (a non-empty list) or `exists`".into(),
            )
        }
    };
    Ok(When { source, test })
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
