//! The event and the message around it, as routes and columns read them.
//!
//! The event stays as its JSON text: a [`Pointer`] is followed through the raw text one
//! level at a time, so a value comes back exactly as sent (a number's digits, a subtree for
//! `jsonb`) and a key that appears twice on the way is found out (`duplicate_field`, as the
//! login decoder does for its keys) instead of one copy silently winning.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::field::{Meta, Pointer, Source};

/// Why a body holds no event to map; shown as the login reasons are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON.
    NotJson,
    /// Nested deeper than the parser allows.
    TooDeep,
    /// JSON, but not an object.
    NotObject,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotJson => "not_json",
            Self::TooDeep => "too_deep",
            Self::NotObject => "not_object",
        })
    }
}

/// A key that appears more than once in an object a pointer goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duplicate;

/// One event: a JSON object, checked once, read by pointers. Its `Debug` redacts: an event
/// may hold anything.
#[derive(Clone, Copy)]
pub struct Event<'a> {
    root: &'a RawValue,
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Event(<redacted>)")
    }
}

impl<'a> Event<'a> {
    /// Checks that `text` is one JSON object within the parser's depth limit.
    pub fn parse(text: &'a str) -> Result<Self, BodyError> {
        let root: &RawValue = serde_json::from_str(text).map_err(|_| BodyError::NotJson)?;
        // The raw parse skips nested values without a depth limit: the login decoder's
        // parser refuses more than 128 levels, and so does this.
        if nesting(root.get()) > MAX_DEPTH {
            return Err(BodyError::TooDeep);
        }
        if !root.get().starts_with('{') {
            return Err(BodyError::NotObject);
        }
        Ok(Self { root })
    }

    /// Checks that `text` is one JSON object, as the login decoder reads a body: at any
    /// depth, its values unparsed but for their syntax ([`super::strict`] reads the values
    /// columns take); a top-level number beyond a double's range is not JSON.
    pub fn parse_lax(text: &'a str) -> Result<Self, BodyError> {
        let root: &RawValue = serde_json::from_str(text).map_err(|_| BodyError::NotJson)?;
        let first = root.get().as_bytes().first().copied();
        if first == Some(b'{') {
            return Ok(Self { root });
        }
        let number = matches!(first, Some(b'-' | b'0'..=b'9'));
        if number && serde_json::from_str::<f64>(root.get()).is_err() {
            return Err(BodyError::NotJson);
        }
        Err(BodyError::NotObject)
    }

    /// The whole event.
    pub fn root(&self) -> &'a RawValue {
        self.root
    }

    /// The value `pointer` names, `None` when a step is absent (a missing key, an index past
    /// the end, a step into a string or number).
    pub fn get(&self, pointer: &Pointer) -> Result<Option<&'a RawValue>, Duplicate> {
        let mut at = self.root;
        for token in pointer.tokens() {
            let text = at.get();
            let next = match text.as_bytes().first() {
                Some(b'{') => child(text, FindKey(token))?,
                Some(b'[') => match array_index(token) {
                    Some(i) => child(text, FindIndex(i))?,
                    None => None,
                },
                _ => None,
            };
            match next {
                Some(v) => at = v,
                None => return Ok(None),
            }
        }
        Ok(Some(at))
    }
}

/// serde_json's recursion limit.
pub(super) const MAX_DEPTH: usize = 128;

/// The deepest nesting of arrays and objects in valid JSON text.
pub(super) fn nesting(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// An array index as RFC 6901 writes it: `0` or digits without a leading zero.
pub(super) fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    (digits && (token == "0" || !token.starts_with('0')))
        .then(|| token.parse().ok())
        .flatten()
}

fn child<'a, V>(text: &'a str, visitor: V) -> Result<Option<&'a RawValue>, Duplicate>
where
    V: Visitor<'a, Value = Result<Option<&'a RawValue>, Duplicate>>,
{
    let mut de = serde_json::Deserializer::from_str(text);
    // The text was checked whole by `Event::parse`; a failure here is not expected, and
    // reads as the value being absent.
    de.deserialize_any(visitor).unwrap_or(Ok(None))
}

struct KeyIs<'k>(&'k str);

impl<'de> de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

struct FindKey<'k>(&'k str);

impl<'de> Visitor<'de> for FindKey<'_> {
    type Value = Result<Option<&'de RawValue>, Duplicate>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut found, mut twice) = (None, false);
        // The whole object is read even after a repeat: a visitor that stops early leaves
        // the parser an unfinished map, an error that would read as the value being absent.
        while let Some(is) = map.next_key_seed(KeyIs(self.0))? {
            if !is {
                map.next_value::<IgnoredAny>()?;
            } else {
                twice |= found.replace(map.next_value::<&RawValue>()?).is_some();
            }
        }
        Ok(if twice { Err(Duplicate) } else { Ok(found) })
    }
}

struct FindIndex(usize);

impl<'de> Visitor<'de> for FindIndex {
    type Value = Result<Option<&'de RawValue>, Duplicate>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        for _ in 0..self.0 {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(Ok(None));
            }
        }
        let found = seq.next_element::<&RawValue>()?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Ok(found))
    }
}

/// What SQS and the envelope say about a message besides its event. `Debug` shows the
/// attributes' and envelope fields' names, never their values.
#[derive(Clone, Default)]
pub struct Metadata {
    /// The SQS message id.
    pub message_id: String,
    /// `SentTimestamp`.
    pub sent_timestamp: Option<DateTime<Utc>>,
    /// `ApproximateReceiveCount`.
    pub receive_count: Option<i32>,
    /// A FIFO message's group id.
    pub group_id: Option<String>,
    /// String message attributes by name.
    pub attributes: BTreeMap<String, String>,
    /// The opened envelope's top-level fields as sent; `None` for a bare body.
    pub envelope: Option<BTreeMap<String, Box<RawValue>>>,
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("message_id", &self.message_id)
            .field("sent_timestamp", &self.sent_timestamp)
            .field("receive_count", &self.receive_count)
            .field("group_id", &self.group_id)
            .field("attributes", &self.attributes.keys().collect::<Vec<_>>())
            .field(
                "envelope",
                &self.envelope.as_ref().map(|e| e.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

/// A value found for a [`Source`]. `Debug` redacts the value, which may be personal data.
#[derive(Clone, Copy)]
pub enum Found<'a> {
    /// JSON from the event or the envelope, as sent.
    Json(&'a RawValue),
    /// A metadata string (message id, group id, an attribute).
    Text(&'a str),
    /// A metadata integer (the receive count).
    Int(i64),
    /// A metadata time (`sent_timestamp`).
    Time(DateTime<Utc>),
}

impl fmt::Debug for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json(_) => "Json(<redacted>)",
            Self::Text(_) => "Text(<redacted>)",
            Self::Int(_) => "Int(<redacted>)",
            Self::Time(_) => "Time(<redacted>)",
        })
    }
}

impl Metadata {
    /// The value of `meta`, `None` when the message has none.
    pub fn get(&self, meta: &Meta) -> Option<Found<'_>> {
        match meta {
            Meta::MessageId => Some(Found::Text(&self.message_id)),
            Meta::SentTimestamp => self.sent_timestamp.map(Found::Time),
            // What `--create-date-from envelope` makes of it is the evaluator's
            // (`super::dating`); alone, the message's own time.
            Meta::MessageTime => Some(Found::Time(self.sent_timestamp.unwrap_or_else(Utc::now))),
            Meta::ReceiveCount => self.receive_count.map(|n| Found::Int(n.into())),
            Meta::GroupId => self.group_id.as_deref().map(Found::Text),
            Meta::Attribute(n) => self.attributes.get(n).map(|v| Found::Text(v)),
            Meta::Envelope(n) => self.envelope.as_ref()?.get(n).map(|v| Found::Json(v)),
        }
    }
}

/// The value `source` names in this event and message.
pub fn lookup<'a>(
    event: &Event<'a>,
    meta: &'a Metadata,
    source: &Source,
) -> Result<Option<Found<'a>>, Duplicate> {
    match source {
        Source::Path(p) => Ok(event.get(p)?.map(Found::Json)),
        Source::Meta(m) => Ok(meta.get(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(body: &str, pointer: &str) -> Result<Option<String>, Duplicate> {
        let e = Event::parse(body).unwrap();
        Ok(e.get(&Pointer::parse(pointer).unwrap())?
            .map(|v| v.get().to_owned()))
    }

    #[test]
    fn pointers_find_values_verbatim() {
        let body = r#"{"a":{"b/c":[1, {"~":19.990}], "n": null},"x":"\u00e9"}"#;
        assert_eq!(get(body, "").unwrap().unwrap(), body);
        assert_eq!(get(body, "/a/b~1c/1/~0").unwrap().unwrap(), "19.990");
        assert_eq!(get(body, "/a/b~1c/0").unwrap().unwrap(), "1");
        assert_eq!(get(body, "/x").unwrap().unwrap(), r#""\u00e9""#);
        assert_eq!(get(body, "/a/n").unwrap().unwrap(), "null");
        for absent in [
            "/b",
            "/a/b~1c/2",
            "/a/b~1c/01",
            "/a/b~1c/-",
            "/x/0",
            "/a/n/z",
        ] {
            assert_eq!(get(body, absent).unwrap(), None, "{absent}");
        }
    }

    #[test]
    fn a_repeated_key_on_the_way_is_a_duplicate() {
        let body = r#"{"a":{"b":1,"b":2},"c":1,"c":2}"#;
        assert_eq!(get(body, "/a/b"), Err(Duplicate));
        assert_eq!(get(body, "/c"), Err(Duplicate));
        // A key repeated off the path is not looked at.
        assert_eq!(get(body, "/a").unwrap().unwrap(), r#"{"b":1,"b":2}"#);
    }

    #[test]
    fn debug_never_shows_values() {
        let e = Event::parse(r#"{"ip":"10.1.2.3"}"#).unwrap();
        let v = e.get(&Pointer::parse("/ip").unwrap()).unwrap().unwrap();
        let mut meta = Metadata::default();
        meta.attributes.insert("tenant".into(), "secret-9".into());
        let shown = format!("{e:?} {:?} {meta:?}", Found::Json(v));
        assert!(
            !shown.contains("10.1.2.3") && !shown.contains("secret-9"),
            "{shown}"
        );
        assert!(shown.contains("tenant"), "{shown}");
    }

    #[test]
    fn bodies_that_are_no_event() {
        assert_eq!(Event::parse("nope").unwrap_err(), BodyError::NotJson);
        assert_eq!(Event::parse("[1]").unwrap_err(), BodyError::NotObject);
        assert_eq!(Event::parse("{} x").unwrap_err(), BodyError::NotJson);
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert_eq!(Event::parse(&deep(200)).unwrap_err(), BodyError::TooDeep);
        assert!(Event::parse(&deep(127)).is_ok());
        assert!(Event::parse(r#"{"a":"[[[[{{{\"]]"}"#).is_ok());
        assert!(Event::parse(" {\"a\":1} ").is_ok());
    }

    proptest::proptest! {
        /// Whatever the bytes, parsing and looking up never panic.
        #[test]
        fn lookups_never_panic(body in ".{0,64}", pointer in "(/[a-z0-9~]{0,3}){0,3}") {
            if let (Ok(e), Ok(p)) = (Event::parse(&body), Pointer::parse(&pointer)) {
                let _ = e.get(&p);
            }
        }
    }
}
