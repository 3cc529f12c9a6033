//! `strict = true`: a column's value read as the login decoder reads its six keys. The
//! value must be JSON a strict reader takes: numbers within a double's range, strings
//! without a lone surrogate escape, and nested less than 128 levels counting the objects
//! and arrays its path goes through. Otherwise the whole event is refused, as a body the
//! decoder cannot parse is: `not_json`, or `too_deep`.
//!
//! A mapping with a strict column reads events as the login does everywhere else too
//! ([`super::event::Event::parse_lax`]): what no column reads only has to be well-formed,
//! at any depth. A mapping without one keeps the whole-event checks of
//! [`super::event::Event::parse`].

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::compile::Plan;
use super::event::{nesting, BodyError, Event, MAX_DEPTH};

/// Whether any column of `plan` is strict.
pub fn any(plan: &Plan) -> bool {
    plan.routes
        .iter()
        .filter_map(|r| r.load.as_ref())
        .any(|l| l.columns.iter().any(|c| c.strict))
}

/// Checks a strict column's value, found `depth` containers deep in the event.
pub fn check(value: &RawValue, depth: usize) -> Result<(), BodyError> {
    if depth + nesting(value.get()) >= MAX_DEPTH {
        return Err(BodyError::TooDeep);
    }
    // Read as a `serde_json::Value` reads it, without building one; what that read does
    // not settle (a failure, or the key serde_json reads a raw value by) is read as one.
    let mut de = serde_json::Deserializer::from_str(value.get());
    if Valid.deserialize(&mut de).and_then(|()| de.end()).is_ok() {
        return Ok(());
    }
    serde_json::from_str::<serde_json::Value>(value.get())
        .map(drop)
        .map_err(|_| BodyError::NotJson)
}

/// What the keys begin with by which serde_json's `Value` reads a raw value or a number
/// instead of an object.
const PRIVATE_KEY: &str = "$serde_json::private::";

/// Any JSON value, read by the parser calls a `serde_json::Value` is read by.
#[derive(Clone, Copy)]
struct Valid;

impl<'de> DeserializeSeed<'de> for Valid {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Valid {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(ValidKey)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// A key, read as a string; serde_json's own keys are left to `serde_json::Value`.
struct ValidKey;

impl<'de> DeserializeSeed<'de> for ValidKey {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for ValidKey {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
        if v.starts_with(PRIVATE_KEY) {
            return Err(E::custom("read as serde_json reads a raw value"));
        }
        Ok(())
    }
}

/// Checks every appearance of the top-level keys `keys` in `event`, in the event's order
/// (a repeated key's values too), as the login decoder parses its six keys: the first that
/// fails is the reason.
pub fn check_keys(event: &Event<'_>, keys: &[&str]) -> Result<(), BodyError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_str(event.root().get());
    // The event was checked whole when parsed: an error here is not expected.
    de.deserialize_map(Keys(keys)).unwrap_or(Ok(()))
}

struct Keys<'k>(&'k [&'k str]);

struct IsKey<'k>(&'k [&'k str]);

impl<'de> DeserializeSeed<'de> for IsKey<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for IsKey<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(self.0.contains(&v))
    }
}

impl<'de> Visitor<'de> for Keys<'_> {
    type Value = Result<(), BodyError>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut outcome = Ok(());
        while let Some(is) = map.next_key_seed(IsKey(self.0))? {
            if is && outcome.is_ok() {
                outcome = check(map.next_value::<&RawValue>()?, 1);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn strict_values_are_what_the_login_decoder_parses() {
        assert_eq!(check(&raw(r#""u1""#), 1), Ok(()));
        assert_eq!(check(&raw("1e400"), 1), Err(BodyError::NotJson));
        assert_eq!(check(&raw(r#"[-1e400]"#), 1), Err(BodyError::NotJson));
        assert_eq!(check(&raw(r#""a\ud800""#), 1), Err(BodyError::NotJson));
        let deep = |n: usize| raw(&format!("{}1{}", "[".repeat(n), "]".repeat(n)));
        assert_eq!(check(&deep(126), 1), Ok(()));
        assert_eq!(check(&deep(127), 1), Err(BodyError::TooDeep));
    }

    proptest::proptest! {
        /// Whatever the text, a value is taken exactly when a `serde_json::Value` reads it.
        #[test]
        fn values_are_taken_as_serde_json_reads_them(
            text in r#"[\[\]{}:,"a1e\\u0-9 .nulltrf$]{0,24}"#,
            key in proptest::sample::select(vec!["a", "$serde_json::private::RawValue", "\\ud800"]),
        ) {
            for text in [text.clone(), format!(r#"{{"{key}":{text}}}"#), format!("[{text}]")] {
                let Ok(raw) = serde_json::from_str::<&RawValue>(&text) else { continue };
                let want = serde_json::from_str::<serde_json::Value>(&text).is_ok();
                proptest::prop_assert_eq!(check(raw, 1).is_ok(), want, "{}", text);
            }
        }
    }
}
