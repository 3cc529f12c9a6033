//! What rekey prints: counts and where the values it left are, never a value.

use std::fmt;
use std::time::Duration;

use crate::db::rekey::{Cursor, TokenTable};

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
    /// Rows with such a value, counted over every table at the end.
    pub rows: u64,
    /// Reject bodies (or their subject tokens) that are such a value, counted likewise.
    pub bodies: u64,
    /// Where the walk met the rows, by ctid (in its table when there are several).
    pub row_ctids: Ranges,
    /// Where the walk met the rejects, by message id.
    pub body_ids: Ranges,
}

/// What rekey did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// The key everything is now under.
    pub writing_kid: String,
    /// Where interrupted walks were resumed after: a ctid, preceded by the partition's name
    /// when the table is partitioned, and by the table's when there are several.
    pub resumed_after: Vec<String>,
    /// Rows updated, every table's.
    pub rows: u64,
    /// Rows updated, by table, in the order walked.
    pub tables: Vec<(String, u64)>,
    /// Tokens re-encrypted (a row may have several).
    pub tokens: u64,
    /// Rejects re-sealed (the body, and the subject token where there is one).
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

impl RekeyReport {
    /// Notes a row the walk met at `at`: `left` when a value stays under an older key,
    /// with `tokens` re-encrypted.
    pub(super) fn note(&mut self, cursor: Cursor, at: &str, left: bool, tokens: u64) {
        self.tokens += tokens;
        match cursor {
            Cursor::Ctid => self.left.row_ctids.note(at, left),
            Cursor::MessageId => self.left.body_ids.note(at, left),
        }
    }

    /// Counts a page of `table` written: `updated` of the `changed` rows it sent.
    pub(super) fn updated(&mut self, table: &TokenTable, updated: u64, changed: u64) {
        self.changed_meanwhile += changed.saturating_sub(updated);
        if table.cursor == Cursor::MessageId {
            self.bodies += updated;
            return;
        }
        self.rows += updated;
        match self.tables.iter_mut().find(|(t, _)| *t == table.name) {
            Some((_, n)) => *n += updated,
            None => self.tables.push((table.name.clone(), updated)),
        }
    }
}

impl fmt::Display for RekeyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "writing key           {}", self.writing_kid)?;
        for at in &self.resumed_after {
            writeln!(f, "resumed after ctid    {at}")?;
        }
        writeln!(f, "rows updated          {}", self.rows)?;
        for (table, n) in &self.tables {
            writeln!(f, "  {table}: {n}")?;
        }
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
        match (left.row_ctids.is_empty(), &self.tables[..]) {
            (true, _) => {}
            // With several tables each position names its table.
            (false, [(table, _)]) => write!(f, " at {table} ctid {}", left.row_ctids)?,
            (false, _) => write!(f, " at {}", left.row_ctids)?,
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
