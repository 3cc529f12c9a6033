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

use serde_json::value::RawValue;

use super::compile::Plan;
use super::event::{nesting, BodyError, MAX_DEPTH};

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
    serde_json::from_str::<serde_json::Value>(value.get())
        .map(drop)
        .map_err(|_| BodyError::NotJson)
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
}
