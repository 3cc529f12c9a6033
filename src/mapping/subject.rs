//! A data subject's value in a message, as a route's `subject` column reads it from the
//! event: what erasure matches quarantined bodies by, and what a reject's subject token is
//! made of (so `forget` finds a quarantined body without opening it).

use super::compile::Load;
use super::event::{lookup, Event, Found, Metadata};
use super::Source;
use crate::decode::envelope::{self, Envelope};

/// The token context of a reject's subject token: a context of its own, so the token
/// equals no column's.
pub const CONTEXT: &str = "subject";

/// The value `load`'s subject column reads from `body` (a JSON string, or a number or
/// boolean as written); `None` when the route names no subject, reads it from metadata, or
/// the body does not hold it.
pub fn value_in(load: &Load, body: &[u8], envelope: Envelope) -> Option<String> {
    let name = load.subject.as_ref()?;
    let column = load.columns.iter().find(|c| &c.name == name)?;
    if !matches!(column.source, Source::Path(_)) {
        return None;
    }
    let opened = envelope::open(body, envelope).ok()?;
    let event = Event::parse(std::str::from_utf8(&opened.event).ok()?).ok()?;
    let meta = Metadata::default();
    let Ok(Some(Found::Json(raw))) = lookup(&event, &meta, &column.source) else {
        return None;
    };
    let text = raw.get();
    match serde_json::from_str::<String>(text) {
        Ok(s) => Some(s),
        Err(_) if !text.starts_with(['{', '[']) && text != "null" => Some(text.to_owned()),
        Err(_) => None,
    }
}

/// The longest subject, in bytes, a reject's subject token is made for. The token goes into
/// an indexed column, and a btree entry must fit a third of a page: a longer subject (no
/// real one is) gets no token, and `forget` finds its body by opening it instead.
pub const MAX_TOKENED_BYTES: usize = 1024;

/// The subject token of a body quarantined under `load`'s route: its subject's token under
/// [`CONTEXT`], by the writing key, when the body holds one of at most
/// [`MAX_TOKENED_BYTES`] (else `None`).
pub fn token(
    load: &Load,
    body: &[u8],
    envelope: Envelope,
    masker: &mut crate::mask::Masker,
) -> Option<String> {
    value_in(load, body, envelope)
        .filter(|s| s.len() <= MAX_TOKENED_BYTES)
        .map(|s| masker.seal_context(CONTEXT, s.as_bytes()))
}

/// Whether `body` holds an event at all (an envelope that opens, JSON that parses).
pub fn parses(body: &[u8], envelope: Envelope) -> bool {
    envelope::open(body, envelope)
        .ok()
        .and_then(|o| {
            std::str::from_utf8(&o.event)
                .ok()
                .map(|t| Event::parse(t).is_ok())
        })
        .unwrap_or(false)
}
