//! What rekey prints: counts and where the values it left are, never a value.

use std::fmt;
use std::time::Duration;

/// How many ranges of left values a report lists before it only counts the rest.
const RANGES_SHOWN: usize = 10;

/// Runs of values left as they were, consecutive in the walk's order (which meets only
/// values not yet under the writing key), by first and last position: where to look,
/// without showing a value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ranges {
    ranges: Vec<(String, String)>,
    /// The last value seen was left, so the next left one extends the last range.
    open: bool,
}

impl Ranges {
    /// Notes the value at `at`, in walk order: left as it was, or not.
    pub fn note(&mut self, at: &str, left: bool) {
        match (left, self.open, self.ranges.last_mut()) {
            (true, true, Some(last)) => last.1 = at.to_owned(),
            (true, _, _) => self.ranges.push((at.to_owned(), at.to_owned())),
            (false, _, _) => {}
        }
        self.open = left;
    }

    /// Whether none were noted.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

impl fmt::Display for Ranges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .ranges
            .iter()
            .take(RANGES_SHOWN)
            .map(|(a, b)| {
                if a == b {
                    a.clone()
                } else {
                    format!("{a}..{b}")
                }
            })
            .collect();
        write!(f, "{}", shown.join(", "))?;
        match self.ranges.len().saturating_sub(RANGES_SHOWN) {
            0 => Ok(()),
            more => write!(f, " and {more} more ranges"),
        }
    }
}

/// Values rekey left as they were: not tokens (rows from an older loader, say), or tokens
/// whose key is not in the keyring.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Left {
    /// `user_logins` rows with such a value, counted over the whole table at the end.
    pub rows: u64,
    /// Reject bodies that are such a value, counted likewise.
    pub bodies: u64,
    /// Where the walk met the rows, by ctid.
    pub row_ctids: Ranges,
    /// Where the walk met the bodies, by message id.
    pub body_ids: Ranges,
}

/// What rekey did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// The key everything is now under.
    pub writing_kid: String,
    /// Where an interrupted walk over `user_logins` was resumed after, if one was: a ctid,
    /// preceded by the partition's name when the table is partitioned.
    pub resumed_after: Option<String>,
    /// `user_logins` rows updated.
    pub rows: u64,
    /// Tokens re-encrypted (a row may have two).
    pub tokens: u64,
    /// Reject bodies re-sealed.
    pub bodies: u64,
    /// Rows and bodies read for re-encryption that had changed (or gone) by the write, left
    /// as the other writer made them: counted afresh in `under_old_keys` if still old.
    pub changed_meanwhile: u64,
    /// Values left as they were.
    pub left: Left,
    /// Rows and bodies still holding a token under another key, counted afresh at the end:
    /// 0 once rekey is done.
    pub under_old_keys: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl fmt::Display for RekeyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "writing key           {}", self.writing_kid)?;
        if let Some(at) = &self.resumed_after {
            writeln!(f, "resumed after ctid    {at}")?;
        }
        writeln!(f, "rows updated          {}", self.rows)?;
        writeln!(f, "tokens re-encrypted   {}", self.tokens)?;
        writeln!(f, "bodies re-sealed      {}", self.bodies)?;
        writeln!(f, "changed meanwhile     {}", self.changed_meanwhile)?;
        writeln!(f, "still under old keys  {}", self.under_old_keys)?;
        writeln!(
            f,
            "elapsed               {:.2}s",
            self.elapsed.as_secs_f64()
        )?;
        let left = &self.left;
        write!(f, "{} left as they were", left.rows + left.bodies)?;
        if left.rows + left.bodies == 0 {
            return Ok(());
        }
        write!(f, " (not tokens, or under a key not in the keyring):")?;
        write!(f, " {} rows", left.rows)?;
        if !left.row_ctids.is_empty() {
            write!(f, " at user_logins ctid {}", left.row_ctids)?;
        }
        write!(f, "; {} reject bodies", left.bodies)?;
        if !left.body_ids.is_empty() {
            write!(f, " with message id {}", left.body_ids)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_left_values_make_one_range() {
        let mut r = Ranges::default();
        for (at, left) in [
            ("a", true),
            ("b", true),
            ("c", false),
            ("d", true),
            ("e", false),
        ] {
            r.note(at, left);
        }
        assert_eq!(r.to_string(), "a..b, d");
    }
}
