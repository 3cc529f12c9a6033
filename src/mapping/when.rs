//! Route predicates: `{ path|meta = …, equals = V }`, `{ …, in = [V, …] }`,
//! `{ …, exists = true|false }`, evaluated purely against one event and its metadata.
//!
//! Equality is typed and exact: a string equals only a JSON string (or a metadata string),
//! a boolean only a JSON boolean, a number only a JSON number (or the receive count), by
//! value: `1`, `1.0` and `1e0` are one number, compared as exact decimals, never as
//! doubles. A number in the TOML file that is a float is read as the shortest decimal
//! that gives the same double (`0.1` is 0.1), so write one that has at most 15 significant
//! digits. `null`, objects and arrays equal nothing; `sent_timestamp` equals nothing (test
//! it with `exists`). `exists` is about presence: a key holding `null` exists.

use std::borrow::Cow;
use std::fmt;

use super::event::{lookup, Duplicate, Event, Found, Metadata};
use super::field::Source;
use super::number::Decimal;

/// A value a predicate compares with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    /// A string.
    Str(String),
    /// A number, exactly.
    Num(Decimal),
    /// A boolean.
    Bool(bool),
}

impl Literal {
    /// From the TOML file's value; `None` for other TOML types (dates, arrays, tables) or a
    /// float that is not finite.
    pub fn from_toml(v: &toml::Value) -> Option<Self> {
        Some(match v {
            toml::Value::String(s) => Self::Str(s.clone()),
            toml::Value::Integer(i) => Self::Num(Decimal::parse(&i.to_string()).ok()?),
            toml::Value::Float(f) if f.is_finite() => {
                Self::Num(Decimal::parse(&format!("{f:?}")).ok()?)
            }
            toml::Value::Boolean(b) => Self::Bool(*b),
            _ => return None,
        })
    }

    fn matches(&self, found: &Found<'_>) -> bool {
        match (self, found) {
            (Self::Str(s), Found::Text(t)) => s == t,
            (Self::Num(n), Found::Int(i)) => Decimal::parse(&i.to_string()).is_ok_and(|d| d == *n),
            (_, Found::Json(raw)) => {
                let text = raw.get();
                match (self, text.as_bytes().first()) {
                    (Self::Str(s), Some(b'"')) => {
                        serde_json::from_str::<Cow<'_, str>>(text).is_ok_and(|t| t == *s)
                    }
                    (Self::Bool(b), Some(b't' | b'f')) => text == if *b { "true" } else { "false" },
                    (Self::Num(n), Some(b'-' | b'0'..=b'9')) => {
                        Decimal::parse(text).is_ok_and(|d| d == *n)
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

/// What a predicate checks of its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Test {
    /// Equal to this.
    Equals(Literal),
    /// Equal to one of these.
    In(Vec<Literal>),
    /// Present (`true`) or absent (`false`).
    Exists(bool),
}

/// A route's predicate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct When {
    /// What it looks at.
    pub source: Source,
    /// What it checks.
    pub test: Test,
}

impl When {
    /// Whether the predicate holds; a key repeated on its path decides nothing.
    pub fn holds(&self, event: &Event<'_>, meta: &Metadata) -> Result<bool, Duplicate> {
        Ok(self.test(lookup(event, meta, &self.source)?))
    }

    /// Whether the predicate holds of what its source found.
    pub fn test(&self, found: Option<Found<'_>>) -> bool {
        match (&self.test, found) {
            (Test::Exists(want), f) => f.is_some() == *want,
            (_, None) => false,
            (Test::Equals(l), Some(f)) => l.matches(&f),
            (Test::In(ls), Some(f)) => ls.iter().any(|l| l.matches(&f)),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Num(n) => f.write_str(&n.to_plain()),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.source)?;
        match &self.test {
            Test::Equals(l) => write!(f, "equals {l}"),
            Test::In(ls) => {
                let items: Vec<String> = ls.iter().map(ToString::to_string).collect();
                write!(f, "in [{}]", items.join(", "))
            }
            Test::Exists(true) => f.write_str("exists"),
            Test::Exists(false) => f.write_str("is absent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::field::{Meta, Pointer};
    use proptest::prelude::*;

    fn path(p: &str, test: Test) -> When {
        When {
            source: Source::Path(Pointer::parse(p).unwrap()),
            test,
        }
    }
    fn num(s: &str) -> Literal {
        Literal::Num(Decimal::parse(s).unwrap())
    }
    fn holds(w: &When, body: &str) -> bool {
        w.holds(&Event::parse(body).unwrap(), &Metadata::default())
            .unwrap()
    }

    #[test]
    fn equals_is_typed_and_exact() {
        let s = path("/t", Test::Equals(Literal::Str("1".into())));
        assert!(holds(&s, r#"{"t":"1"}"#) && holds(&s, r#"{"t":"\u0031"}"#));
        assert!(!holds(&s, r#"{"t":1}"#) && !holds(&s, r#"{}"#));
        let n = path("/t", Test::Equals(num("1")));
        assert!(holds(&n, r#"{"t":1}"#) && holds(&n, r#"{"t":1.0}"#) && holds(&n, r#"{"t":1e0}"#));
        assert!(!holds(&n, r#"{"t":"1"}"#) && !holds(&n, r#"{"t":true}"#));
        let tenth = path("/t", Test::Equals(num("0.1")));
        assert!(!holds(
            &tenth,
            r#"{"t":0.1000000000000000055511151231257827}"#
        ));
        let b = path("/t", Test::Equals(Literal::Bool(false)));
        assert!(holds(&b, r#"{"t":false}"#) && !holds(&b, r#"{"t":null}"#));
    }

    #[test]
    fn in_and_exists() {
        let w = path("/k", Test::In(vec![Literal::Str("a".into()), num("2")]));
        assert!(holds(&w, r#"{"k":"a"}"#) && holds(&w, r#"{"k":2.00}"#));
        assert!(!holds(&w, r#"{"k":"b"}"#));
        let e = path("/k", Test::Exists(true));
        assert!(holds(&e, r#"{"k":null}"#) && !holds(&e, r#"{"j":1}"#));
        let ne = path("/k", Test::Exists(false));
        assert!(holds(&ne, r#"{"j":1}"#));
    }

    #[test]
    fn metadata_predicates() {
        let mut meta = Metadata {
            receive_count: Some(3),
            ..Default::default()
        };
        meta.attributes.insert("kind".into(), "order".into());
        let env: Box<serde_json::value::RawValue> =
            serde_json::from_str(r#""OrderPlaced""#).unwrap();
        meta.envelope = Some([("detail-type".to_string(), env)].into());
        let event = Event::parse("{}").unwrap();
        let m = |m: &str, test| When {
            source: Source::Meta(Meta::parse(m).unwrap()),
            test,
        };
        let yes = [
            m("attribute:kind", Test::Equals(Literal::Str("order".into()))),
            m("receive_count", Test::Equals(num("3.0"))),
            m(
                "envelope:detail-type",
                Test::Equals(Literal::Str("OrderPlaced".into())),
            ),
            m("group_id", Test::Exists(false)),
        ];
        for w in yes {
            assert!(w.holds(&event, &meta).unwrap(), "{w:?}");
        }
        assert!(!m("envelope:source", Test::Exists(true))
            .holds(&event, &meta)
            .unwrap());
    }

    #[test]
    fn a_duplicate_on_the_path_decides_nothing() {
        let w = path("/k", Test::Exists(true));
        let e = Event::parse(r#"{"k":1,"k":2}"#).unwrap();
        assert_eq!(w.holds(&e, &Metadata::default()), Err(Duplicate));
    }

    #[test]
    fn toml_literals() {
        let v: toml::Table =
            toml::from_str("a = 19.99\nb = 7\nc = 'x'\nd = true\ne = [1]").unwrap();
        assert_eq!(Literal::from_toml(&v["a"]), Some(num("19.99")));
        assert_eq!(Literal::from_toml(&v["b"]), Some(num("7")));
        assert_eq!(Literal::from_toml(&v["c"]), Some(Literal::Str("x".into())));
        assert_eq!(Literal::from_toml(&v["d"]), Some(Literal::Bool(true)));
        assert_eq!(Literal::from_toml(&v["e"]), None);
    }

    proptest! {
        /// An integer equals itself however the event spells it.
        #[test]
        fn integers_equal_their_spellings(i in any::<i32>(), zeros in 0usize..4) {
            let w = path("/n", Test::Equals(num(&i.to_string())));
            let frac = if zeros == 0 { String::new() } else { format!(".{}", "0".repeat(zeros)) };
            let body = format!("{{\"n\":{i}{frac}}}");
            prop_assert!(holds(&w, &body));
        }
    }
}
