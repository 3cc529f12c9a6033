//! One `[route.columns]` entry of a mapping file, read and checked: `{ path | meta, token,
//! required, as, non_empty, reason, strict }` (the grammar is in [`super::file`]).

use serde::Deserialize;
use toml::Spanned;

use super::field::{Meta, Pointer, Source};
use super::file::{is_label, Place};
use super::spec::{As, Column};
use super::MappingError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ColumnDoc {
    path: Option<Spanned<String>>,
    meta: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    required: Option<bool>,
    #[serde(rename = "as")]
    as_: Option<Spanned<String>>,
    non_empty: Option<bool>,
    reason: Option<Spanned<String>>,
    strict: Option<bool>,
}

pub(super) fn column(
    place: &Place<'_>,
    route: &str,
    key: Spanned<String>,
    doc: Spanned<ColumnDoc>,
) -> Result<Column, MappingError> {
    let at = place.at(key.span().start);
    let name = key.into_inner();
    let fail = |offset: usize, problem: String| {
        place.error(
            offset,
            format!("route {route:?}, column {name:?}: {problem}"),
        )
    };
    let start = doc.span().start;
    let d = doc.into_inner();
    let source =
        source(d.path.as_ref(), d.meta.as_ref()).map_err(|(o, p)| fail(o.unwrap_or(start), p))?;
    let as_ = match &d.as_ {
        Some(a) => Some(As::parse(a.get_ref()).ok_or_else(|| {
            fail(
                a.span().start,
                format!(
                    "as {:?}: use ip, epoch_s, epoch_ms or semver_int",
                    a.get_ref()
                ),
            )
        })?),
        None => None,
    };
    let token = match &d.token {
        Some(t) if !is_label(t.get_ref()) || t.get_ref() == "body" => {
            return Err(fail(t.span().start, format!("token context {:?} must be 1-63 of [a-z0-9_], starting with a letter, and not \"body\"", t.get_ref())))
        }
        Some(t) => Some(t.get_ref().clone()),
        None => None,
    };
    let reason = match &d.reason {
        Some(r) if !is_label(r.get_ref()) => {
            return Err(fail(r.span().start, format!("reason {:?} must be 1-63 of [a-z0-9_], starting with a letter (it names the column in reject reasons)", r.get_ref())))
        }
        Some(r) => Some(r.get_ref().clone()),
        None => None,
    };
    Ok(Column {
        name,
        at,
        source,
        token,
        required: d.required.unwrap_or(false),
        as_,
        non_empty: d.non_empty.unwrap_or(false),
        reason,
        strict: d.strict.unwrap_or(false),
    })
}

/// Exactly one of `path` and `meta`, checked; an error carries the offset to blame.
pub(super) fn source(
    path: Option<&Spanned<String>>,
    meta: Option<&Spanned<String>>,
) -> Result<Source, (Option<usize>, String)> {
    match (path, meta) {
        (Some(p), None) => Pointer::parse(p.get_ref())
            .map(Source::Path)
            .map_err(|e| (Some(p.span().start), e)),
        (None, Some(m)) => Meta::parse(m.get_ref())
            .map(Source::Meta)
            .map_err(|e| (Some(m.span().start), e)),
        (Some(_), Some(m)) => Err((
            Some(m.span().start),
            "give `path` or `meta`, not both".into(),
        )),
        (None, None) => Err((None, "give `path` (a JSON Pointer) or `meta`".into())),
    }
}
