//! One rekey's walk over its tables, one short transaction per page, each page also saving
//! how far the walk got.

use indicatif::ProgressBar;
use tokio_postgres::Client;

use super::{RekeyError, RekeyReport};
use crate::db::rekey::{self as queries, Cursor, TokenChange, TokenRow, TokenTable};
use crate::mask::{Context, Masker};

/// Before every row of a relation, in a ctid walk.
const FIRST_CTID: &str = "(0,0)";

/// Before every message id, in a walk over a rejects table.
const FIRST_ID: &str = "";

pub(super) struct Walk<'a> {
    pub client: Client,
    pub batch: i64,
    pub progress: &'a ProgressBar,
    pub state: State,
}

/// What a walk re-encrypts with and what it has found, apart from the connection that
/// carries each page's transaction.
pub(super) struct State {
    pub masker: Masker,
    /// `v1:<writing kid>:`: what needs no work.
    pub prefix: String,
    pub report: RekeyReport,
    /// Reports name a row's table when there is more than one.
    pub tables_named: bool,
}

/// A position of a ctid walk over a table: the bare ctid when the table is one relation
/// (the form older versions saved), else `<relation> <ctid>` (a ctid is unique only within
/// one partition).
fn position(named: Option<&str>, ctid: &str) -> String {
    match named {
        Some(leaf) => format!("{leaf} {ctid}"),
        None => ctid.to_owned(),
    }
}

/// Where a walk over `leaves` resumes from a saved [`position`]: the index of the relation
/// and the ctid after which to go on. A position naming no relation there now (a partition
/// dropped, the table partitioned since) starts the walk over, which is only slower.
fn resume_point<'a>(leaves: &[String], saved: Option<&'a str>) -> (usize, &'a str) {
    let Some(saved) = saved else {
        return (0, FIRST_CTID);
    };
    let found = match saved.rsplit_once(' ') {
        Some((leaf, ctid)) => leaves.iter().position(|l| l == leaf).map(|i| (i, ctid)),
        None if leaves.len() == 1 => Some((0, saved)),
        None => None,
    };
    found.unwrap_or((0, FIRST_CTID))
}

/// Re-encrypts one token to the writing key; true when it changed. One already under it,
/// or that does not open (not a token, its key not in the ring, another context), stays as
/// it is.
fn rekey_token(
    masker: &mut Masker,
    context: &Context,
    prefix: &str,
    token: &mut Option<String>,
) -> bool {
    match token {
        Some(t) if !t.starts_with(prefix) => match masker.open_context(context, t) {
            Ok(plain) => {
                *t = masker.seal_context(context.as_str(), &plain);
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

impl Walk<'_> {
    /// Walks `table` from where an interrupted walk towards the same key stopped, then
    /// forgets that walk.
    pub async fn table(&mut self, table: &TokenTable) -> Result<(), RekeyError> {
        let kid = self.state.report.writing_kid.clone();
        let resumed = queries::progress(&self.client, &table.name, &kid).await?;
        self.progress.set_message(table.name.clone());
        match table.cursor {
            Cursor::Ctid => {
                if let Some(at) = &resumed {
                    let at = self.state.at(table, at);
                    self.state.report.resumed_after.push(at);
                }
                let leaves = queries::leaves(&self.client, &table.name).await?;
                let (from, after) = resume_point(&leaves, resumed.as_deref());
                for (i, leaf) in leaves.iter().enumerate().skip(from) {
                    let after = if i == from { after } else { FIRST_CTID };
                    let named = (leaves.len() > 1).then_some(leaf.as_str());
                    self.relation(table, leaf, named, after).await?;
                }
            }
            Cursor::MessageId => {
                let after = resumed.as_deref().unwrap_or(FIRST_ID);
                self.relation(table, &table.name, None, after).await?;
            }
        }
        queries::clear_progress(&self.client, &table.name).await?;
        Ok(())
    }

    /// Walks one relation of `table` from after `after`; `named` is its name when ctid
    /// positions must say which relation they are in.
    async fn relation(
        &mut self,
        table: &TokenTable,
        relation: &str,
        named: Option<&str>,
        after: &str,
    ) -> Result<(), RekeyError> {
        let kid = self.state.report.writing_kid.clone();
        let mut cursor = after.to_owned();
        loop {
            let tx = self.client.transaction().await?;
            let prefix = &self.state.prefix;
            let rows = queries::page(&tx, table, relation, prefix, &cursor, self.batch).await?;
            let Some(last) = rows.last() else { break };
            cursor = match table.cursor {
                Cursor::Ctid => position(named, &last.key),
                Cursor::MessageId => last.key.clone(),
            };
            let changed = self.state.reencrypt(table, rows, named);
            let n = queries::update(&tx, table, relation, &changed).await?;
            queries::save_progress(&tx, &table.name, &kid, &cursor).await?;
            tx.commit().await?;
            self.state.report.updated(table, n, changed.len() as u64);
            self.progress.inc(n);
        }
        Ok(())
    }
}

impl State {
    /// A position as reports show it: in its table when the walk has several.
    fn at(&self, table: &TokenTable, position: &str) -> String {
        match self.tables_named {
            true => format!("{} {position}", table.name),
            false => position.to_owned(),
        }
    }

    /// The rows of a page whose tokens re-encrypt; the others are noted where they are.
    fn reencrypt(
        &mut self,
        table: &TokenTable,
        rows: Vec<TokenRow>,
        named: Option<&str>,
    ) -> Vec<TokenChange> {
        let mut changed = Vec::with_capacity(rows.len());
        for read in rows {
            let mut tokens = read.tokens.clone();
            let mut done = 0;
            for (column, token) in table.columns.iter().zip(&mut tokens) {
                done += u64::from(rekey_token(
                    &mut self.masker,
                    &column.context,
                    &self.prefix,
                    token,
                ));
            }
            let left = tokens
                .iter()
                .any(|t| t.as_deref().is_some_and(|t| !t.starts_with(&self.prefix)));
            let at = match table.cursor {
                Cursor::Ctid => self.at(table, &position(named, &read.key)),
                Cursor::MessageId => read.key.clone(),
            };
            self.report.note(table.cursor, &at, left, done);
            // A row left whole is not written: an update would move it, maybe ahead of the
            // cursor, to be met again.
            if done > 0 {
                changed.push(TokenChange { read, tokens });
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_position_resumes_in_its_relation_or_starts_over() {
        let leaves = vec!["p0".to_owned(), "p1".to_owned()];
        assert_eq!(resume_point(&leaves, Some("p1 (3,4)")), (1, "(3,4)"));
        assert_eq!(resume_point(&leaves, Some("gone (3,4)")), (0, FIRST_CTID));
        assert_eq!(resume_point(&leaves, Some("(3,4)")), (0, FIRST_CTID));
        assert_eq!(resume_point(&leaves[..1], Some("(3,4)")), (0, "(3,4)"));
        assert_eq!(resume_point(&leaves, None), (0, FIRST_CTID));
    }
}
