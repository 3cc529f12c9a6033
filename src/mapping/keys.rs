//! The event's top-level keys that no column of a route names: counted, never refused (the
//! login's `unknown_keys` in the summary). A key counts once per time it appears, as the
//! login decoder counts it; a column's path names the key its first step reads, and a path
//! to the whole event names every key.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::compile::ColumnPlan;
use super::event::Event;
use super::field::Source;

/// How many of `event`'s top-level keys no path of `columns` begins with.
pub fn unknown_keys(event: &Event<'_>, columns: &[ColumnPlan]) -> usize {
    let mut firsts = Vec::with_capacity(columns.len());
    for c in columns {
        if let Source::Path(p) = &c.source {
            match p.tokens().first() {
                Some(first) => firsts.push(first.as_str()),
                None => return 0,
            }
        }
    }
    let mut de = serde_json::Deserializer::from_str(event.root().get());
    // The event was checked whole when parsed: an error here is not expected.
    de.deserialize_map(Count(&firsts)).unwrap_or(0)
}

struct Count<'n>(&'n [&'n str]);

struct Named<'n>(&'n [&'n str]);

impl<'de> de::DeserializeSeed<'de> for Named<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Named<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(self.0.contains(&v))
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut unknown = 0;
        while let Some(named) = map.next_key_seed(Named(self.0))? {
            map.next_value::<IgnoredAny>()?;
            unknown += usize::from(!named);
        }
        Ok(unknown)
    }
}

/// Of `names`, the top-level key whose second appearance comes first in `event`: the
/// repeat the login decoder reports when several of its keys repeat.
pub fn first_repeat<'n>(event: &Event<'_>, names: &[&'n str]) -> Option<&'n str> {
    let mut de = serde_json::Deserializer::from_str(event.root().get());
    let index = de.deserialize_map(Repeat(names)).ok().flatten()?;
    names.get(index).copied()
}

struct Repeat<'n>(&'n [&'n str]);

struct Which<'n>(&'n [&'n str]);

impl<'de> de::DeserializeSeed<'de> for Which<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Which<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|n| *n == v))
    }
}

impl<'de> Visitor<'de> for Repeat<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<usize>, A::Error> {
        let mut seen = vec![false; self.0.len()];
        let mut first = None;
        while let Some(which) = map.next_key_seed(Which(self.0))? {
            map.next_value::<IgnoredAny>()?;
            if let Some(i) = which {
                if std::mem::replace(&mut seen[i], true) {
                    first = first.or(Some(i));
                }
            }
        }
        Ok(first)
    }
}
