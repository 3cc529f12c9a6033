//! One event read along a plan's [`Index`]: each object or array some pointer goes through
//! is read once, keeping the values of the keys and indices the plan's pointers name and
//! skipping the rest, so that every `when` and column then finds its value without reading
//! the event again.
//!
//! What it finds is what [`Event::get`] and [`super::keys`] find, read by the same parser
//! calls: a key read twice in an object on the way is a [`Duplicate`], and an object whose
//! keys cannot all be read (a key with a lone surrogate escape, which the parse of the
//! whole event lets through) has nothing in it, as for [`Event::get`]. Its tests hold it to
//! that.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::compile::ColumnPlan;
use super::event::{nesting, BodyError, Duplicate, Event, Found, Metadata, MAX_DEPTH};
use super::field::{Pointer, Source};
use super::index::Index;
use super::strict;

type Slot<'a> = Result<Option<&'a RawValue>, Duplicate>;

/// An event read along an index. `Debug` redacts, as for [`Event`].
pub struct Tree<'a, 'p> {
    index: &'p Index,
    text: &'a str,
    /// The event itself, when a pointer names it.
    root: Option<&'a RawValue>,
    /// Per node of the index, the value its pointer prefix finds; `Ok(None)` under a node
    /// that finds nothing.
    slots: Vec<Slot<'a>>,
    /// The event's top-level keys the index names, each time they appear, with their values.
    top: Vec<(usize, &'a RawValue)>,
    /// How many of the event's top-level keys it does not name.
    others: usize,
    /// The event's own keys could not all be read: nothing is found in it.
    unread: bool,
}

impl fmt::Debug for Tree<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tree(<redacted>)")
    }
}

impl<'a, 'p> Tree<'a, 'p> {
    /// Reads `text`, refused as [`Event::parse`] refuses it, or with `lax` as
    /// [`Event::parse_lax`] does.
    pub fn read(index: &'p Index, text: &'a str, lax: bool) -> Result<Self, BodyError> {
        let mut tree = Self {
            index,
            text,
            root: None,
            slots: vec![Ok(None); index.nodes().len()],
            top: Vec::new(),
            others: 0,
            unread: false,
        };
        if tree.read_root().is_err() {
            // The checks say why it is no event; one that passes them has a key the walk
            // cannot read.
            let event = if lax {
                Event::parse_lax(text)?
            } else {
                Event::parse(text)?
            };
            tree.slots.fill(Ok(None));
            tree.top.clear();
            tree.others = 0;
            tree.unread = true;
            tree.root = Some(event.root());
            return Ok(tree);
        }
        // Read whole, it is a JSON object: only the depth is left to check.
        if !lax && nesting(text) > MAX_DEPTH {
            return Err(BodyError::TooDeep);
        }
        if index.nodes()[0].end {
            tree.root = serde_json::from_str(text).ok();
        }
        // A child's number is above its parent's: each parent is read before its children.
        for n in 1..index.nodes().len() {
            if let (false, Ok(Some(v))) = (index.nodes()[n].children.is_empty(), tree.slots[n]) {
                tree.read_value(n, v);
            }
        }
        Ok(tree)
    }

    fn read_root(&mut self) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(self.text);
        de.deserialize_map(Level {
            index: self.index,
            node: 0,
            slots: &mut self.slots,
            top: Some((&mut self.top, &mut self.others)),
        })?;
        de.end()
    }

    fn read_value(&mut self, node: usize, value: &'a RawValue) {
        let text = value.get();
        let mut de = serde_json::Deserializer::from_str(text);
        let level = Level {
            index: self.index,
            node,
            slots: &mut self.slots,
            top: None,
        };
        let read = match text.as_bytes().first() {
            Some(b'{') => de.deserialize_map(level),
            Some(b'[') => de.deserialize_seq(level),
            _ => Ok(()),
        };
        if read.is_err() {
            for &c in &self.index.nodes()[node].children {
                self.slots[c] = Ok(None);
            }
        }
    }

    /// The value `pointer` names, as [`Event::get`] finds it.
    pub fn get(&self, pointer: &Pointer) -> Result<Option<&'a RawValue>, Duplicate> {
        let mut at = self.root;
        let mut node = 0;
        for token in pointer.tokens() {
            let Some(c) = self.index.child(node, token) else {
                return self.unindexed(pointer);
            };
            at = match self.slots[c] {
                Ok(Some(v)) => Some(v),
                other => return other,
            };
            node = c;
        }
        match at {
            Some(v) => Ok(Some(v)),
            None => self.unindexed(pointer),
        }
    }

    /// A pointer the index does not hold (a plan changed after it was compiled) is followed
    /// through the text.
    fn unindexed(&self, pointer: &Pointer) -> Result<Option<&'a RawValue>, Duplicate> {
        Event::parse_lax(self.text).map_or(Ok(None), |e| e.get(pointer))
    }

    /// How many of the event's top-level keys no path of `columns` begins with, as
    /// [`super::keys::unknown_keys`] counts them.
    pub fn unknown_keys(&self, columns: &[ColumnPlan]) -> usize {
        let mut firsts = Vec::with_capacity(columns.len());
        for c in columns {
            if let Source::Path(p) = &c.source {
                match p.tokens().first() {
                    Some(first) => firsts.push(first.as_str()),
                    None => return 0,
                }
            }
        }
        if self.unread {
            return 0;
        }
        let named = |n: usize| firsts.contains(&self.index.nodes()[n].token.as_str());
        self.others + self.top.iter().filter(|(n, _)| !named(*n)).count()
    }

    /// Of `names`, the top-level key whose second appearance comes first, as
    /// [`super::keys::first_repeat`] finds it.
    pub fn first_repeat<'n>(&self, names: &[&'n str]) -> Option<&'n str> {
        if self.unread {
            return None;
        }
        let mut seen = vec![false; names.len()];
        for (n, _) in &self.top {
            let token = self.index.nodes()[*n].token.as_str();
            if let Some(i) = names.iter().position(|name| *name == token) {
                if std::mem::replace(&mut seen[i], true) {
                    return Some(names[i]);
                }
            }
        }
        None
    }

    /// Checks every appearance of the top-level keys `keys`, in the event's order, as
    /// [`strict::check_keys`] does.
    pub fn check_keys(&self, keys: &[&str]) -> Result<(), BodyError> {
        if self.unread {
            return Ok(());
        }
        for (n, v) in &self.top {
            if keys.contains(&self.index.nodes()[*n].token.as_str()) {
                strict::check(v, 1)?;
            }
        }
        Ok(())
    }
}

/// The value `source` names in this event and message, as [`super::event::lookup`] finds it.
pub fn lookup<'a>(
    tree: &Tree<'a, '_>,
    meta: &'a Metadata,
    source: &Source,
) -> Result<Option<Found<'a>>, Duplicate> {
    match source {
        Source::Path(p) => Ok(tree.get(p)?.map(Found::Json)),
        Source::Meta(m) => Ok(meta.get(m)),
    }
}

/// One object or array under a node: its children's values into their slots.
struct Level<'t, 'a> {
    index: &'t Index,
    node: usize,
    slots: &'t mut [Slot<'a>],
    /// At the top level, where each appearance and the other keys are counted.
    top: Option<(&'t mut Vec<(usize, &'a RawValue)>, &'t mut usize)>,
}

impl<'de> Visitor<'de> for Level<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or an array")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let key = ChildKey {
            index: self.index,
            node: self.node,
        };
        while let Some(child) = map.next_key_seed(key)? {
            let Some(c) = child else {
                map.next_value::<IgnoredAny>()?;
                if let Some((_, others)) = &mut self.top {
                    **others += 1;
                }
                continue;
            };
            let v: &'de RawValue = map.next_value()?;
            self.slots[c] = match self.slots[c] {
                Ok(None) => Ok(Some(v)),
                _ => Err(Duplicate),
            };
            if let Some((top, _)) = &mut self.top {
                top.push((c, v));
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let nodes = self.index.nodes();
        let children = &nodes[self.node].children;
        let last = children.iter().filter_map(|&c| nodes[c].index).max();
        let mut i = 0;
        while last.is_some_and(|last| i <= last) {
            match children.iter().find(|&&c| nodes[c].index == Some(i)) {
                Some(&c) => match seq.next_element::<&RawValue>()? {
                    Some(v) => self.slots[c] = Ok(Some(v)),
                    None => return Ok(()),
                },
                None if seq.next_element::<IgnoredAny>()?.is_none() => return Ok(()),
                None => {}
            }
            i += 1;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// A key as the child of a node it names, if any, without copying it.
#[derive(Clone, Copy)]
struct ChildKey<'t> {
    index: &'t Index,
    node: usize,
}

impl<'de> DeserializeSeed<'de> for ChildKey<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for ChildKey<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.index.child(self.node, v))
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
