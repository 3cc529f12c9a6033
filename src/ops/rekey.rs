//! Online rekey: re-encrypt every token (`masked_ip`, `masked_device_id`) and every sealed
//! reject body written under an older key to the keyring's writing key.
//!
//! Runs in batches, each its own short transaction, while `run` keeps loading (`run` only
//! inserts, rekey only updates rows that are not yet under the writing key). A partitioned
//! `user_logins` is walked one partition at a time (a ctid names a row only within one), and
//! a row or body is written back only if it still holds what the page read: one deleted or
//! replaced meanwhile (an erasure while rekey runs) is left alone and counted. It is
//! idempotent and resumable: each page's transaction also records how far the walk got in
//! `sqs2pg_rekey_progress`, so a rerun towards the same key continues there, and tokens are
//! deterministic, so a page done twice writes the same values. Values that are not tokens
//! (rows from an older loader) or whose key is not in the keyring are left as they are and
//! counted, so one bad value does not stop the rest; the report ends with what is still
//! under older keys, counted afresh. Between the rotation (new key first in the ring) and the
//! end of rekey, equal values under different kids have different tokens; after it,
//! equality holds across old and new rows again.

use std::time::Instant;

use indicatif::ProgressBar;
use thiserror::Error;
use tokio_postgres::Client;

use crate::config::DbConfig;
use crate::db::rekey::{self as queries, SealedBody, TokenChange, TokenRow};
use crate::db::DbError;
use crate::error::Classified;
use crate::mask::{Column, Keyring, Masker};

mod report;

pub use report::{Left, RekeyReport};

/// Why rekey stopped.
#[derive(Debug, Error)]
pub enum RekeyError {
    /// The database failed; rerun to continue where it stopped.
    #[error("{0}; rerun `sqs2pg rekey` to continue (it resumes safely)")]
    Db(#[from] DbError),
    /// The writing kid is so long that re-encrypted tokens would not fit their column.
    #[error("tokens under key {kid:?} would be up to {needed} characters long, but {column} holds {limit}: widen the column or choose a shorter kid")]
    KidTooLong {
        /// The writing kid.
        kid: String,
        /// Which column.
        column: &'static str,
        /// The longest token it would write.
        needed: usize,
        /// The column's limit.
        limit: usize,
    },
}

impl Classified for RekeyError {
    /// A missing table or a kid too long for a column are the user's to fix (exit 2, as for
    /// every database that is not ready); an outage is not.
    fn is_usage(&self) -> bool {
        match self {
            Self::Db(e) => e.is_usage(),
            Self::KidTooLong { .. } => true,
        }
    }
}

impl From<tokio_postgres::Error> for RekeyError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Re-encrypts one token to the writing key; true when it changed. One already under it,
/// or that does not open (not a token, or its key is not in the ring), stays as it is.
fn rekey_token(
    masker: &mut Masker,
    column: Column,
    prefix: &str,
    token: &mut Option<String>,
) -> bool {
    match token {
        Some(t) if !t.starts_with(prefix) => match masker.open(column, t) {
            Ok(plain) => {
                *t = masker.seal(column, &plain);
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

/// The rows of a page whose tokens re-encrypt; the others are noted where they are.
fn reencrypt(
    masker: &mut Masker,
    prefix: &str,
    report: &mut RekeyReport,
    rows: Vec<TokenRow>,
    named: Option<&str>,
) -> Vec<TokenChange> {
    let mut changed = Vec::with_capacity(rows.len());
    for read in rows {
        let (mut ip, mut dev) = (read.masked_ip.clone(), read.masked_device_id.clone());
        let a = rekey_token(masker, Column::Ip, prefix, &mut ip);
        let b = rekey_token(masker, Column::DeviceId, prefix, &mut dev);
        report.tokens += u64::from(a) + u64::from(b);
        let left = is_left(prefix, ip.as_deref()) || is_left(prefix, dev.as_deref());
        report
            .left
            .row_ctids
            .note(&position(named, &read.ctid), left);
        // A row left whole is not written: an update would move it, maybe ahead of the
        // cursor, to be met again.
        if a || b {
            changed.push(TokenChange {
                read,
                masked_ip: ip,
                masked_device_id: dev,
            });
        }
    }
    changed
}

/// Still not under the writing key after the walk touched it.
fn is_left(prefix: &str, token: Option<&str>) -> bool {
    token.is_some_and(|t| !t.starts_with(prefix))
}

/// The token prefix of the writing key.
fn writing_prefix(keyring: &Keyring) -> String {
    format!("v1:{}:", keyring.writing_kid())
}

/// How many rows and bodies are not under the writing key (values left by an earlier rekey
/// included).
pub async fn pending(db: &DbConfig, keyring: &Keyring) -> Result<(u64, u64), RekeyError> {
    let client = crate::db::connect(db).await?;
    crate::db::schema::inspect(&client).await?;
    crate::db::schema::require(&client, &["sqs2pg_rekey_progress"]).await?;
    Ok(queries::pending(&client, &writing_prefix(keyring)).await?)
}

/// Refuses, before anything is written, a writing kid whose tokens would not fit a column
/// (a longer kid makes every token longer by the difference).
async fn check_fits(client: &Client, keyring: &Keyring) -> Result<(), RekeyError> {
    let shape = crate::db::schema::inspect(client).await?;
    let kid = keyring.writing_kid();
    let prefix = writing_prefix(keyring);
    let columns = [
        ("masked_ip", shape.limits.masked_ip),
        ("masked_device_id", shape.limits.masked_device_id),
    ];
    for (column, limit) in columns {
        let Some(limit) = limit else { continue };
        let Some(rest) = queries::longest_without_kid(client, column, &prefix).await? else {
            continue;
        };
        let needed = usize::try_from(rest).unwrap_or(0) + kid.chars().count();
        if needed > limit {
            let kid = kid.to_owned();
            return Err(RekeyError::KidTooLong {
                kid,
                column,
                needed,
                limit,
            });
        }
    }
    Ok(())
}

/// Re-encrypts everything under older keys, `batch` rows per transaction, the rows first,
/// then the reject bodies; then counts what is left.
pub async fn run(
    db: &DbConfig,
    keyring: &Keyring,
    batch: i64,
    progress: &ProgressBar,
) -> Result<RekeyReport, RekeyError> {
    let started = Instant::now();
    let client = crate::db::connect(db).await?;
    check_fits(&client, keyring).await?;
    let mut walk = Walk {
        client,
        masker: Masker::new(keyring),
        prefix: writing_prefix(keyring),
        batch,
        progress,
        report: RekeyReport {
            writing_kid: keyring.writing_kid().to_owned(),
            ..RekeyReport::default()
        },
    };
    walk.rows().await?;
    walk.bodies().await?;
    walk.count_left().await?;
    walk.report.elapsed = started.elapsed();
    Ok(walk.report)
}

/// One rekey's walk over the tables, one short transaction per page.
struct Walk<'a> {
    client: Client,
    masker: Masker,
    /// `v1:<writing kid>:`: what needs no work.
    prefix: String,
    batch: i64,
    progress: &'a ProgressBar,
    report: RekeyReport,
}

const ROWS: &str = "user_logins";
const BODIES: &str = "user_logins_rejects";

/// Before every row of a relation.
const FIRST_CTID: &str = "(0,0)";

/// A position of the walk over `user_logins`: the bare ctid when the table is one relation
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

impl Walk<'_> {
    /// Walks every relation holding `user_logins`'s rows (the table, or each partition), in
    /// order, from where an interrupted walk stopped.
    async fn rows(&mut self) -> Result<(), RekeyError> {
        let kid = self.report.writing_kid.clone();
        let resumed = queries::progress(&self.client, ROWS, &kid).await?;
        self.report.resumed_after.clone_from(&resumed);
        let leaves = queries::leaves(&self.client).await?;
        let (from, after) = resume_point(&leaves, resumed.as_deref());
        for (i, leaf) in leaves.iter().enumerate().skip(from) {
            let after = if i == from { after } else { FIRST_CTID };
            let named = (leaves.len() > 1).then_some(leaf.as_str());
            self.rows_of(leaf, named, after).await?;
        }
        queries::clear_progress(&self.client, ROWS).await?;
        Ok(())
    }

    /// Walks one relation from after `after`; `named` is its name when positions must say
    /// which relation they are in.
    async fn rows_of(
        &mut self,
        leaf: &str,
        named: Option<&str>,
        after: &str,
    ) -> Result<(), RekeyError> {
        let kid = self.report.writing_kid.clone();
        let mut cursor = after.to_owned();
        loop {
            let tx = self.client.transaction().await?;
            let rows: Vec<TokenRow> =
                queries::rows_page(&tx, leaf, &self.prefix, &cursor, self.batch).await?;
            let Some(last) = rows.last() else { break };
            cursor = last.ctid.clone();
            let (m, p) = (&mut self.masker, self.prefix.as_str());
            let changed = reencrypt(m, p, &mut self.report, rows, named);
            let n = queries::update_rows(&tx, leaf, &changed).await?;
            queries::save_progress(&tx, ROWS, &kid, &position(named, &cursor)).await?;
            tx.commit().await?;
            self.report.rows += n;
            self.report.changed_meanwhile += (changed.len() as u64).saturating_sub(n);
            self.progress.inc(n);
        }
        Ok(())
    }

    async fn bodies(&mut self) -> Result<(), RekeyError> {
        let kid = self.report.writing_kid.clone();
        let mut cursor = queries::progress(&self.client, BODIES, &kid)
            .await?
            .unwrap_or_default();
        loop {
            let tx = self.client.transaction().await?;
            let bodies: Vec<SealedBody> =
                queries::bodies_page(&tx, &self.prefix, &cursor, self.batch).await?;
            let Some(last) = bodies.last() else { break };
            cursor = last.message_id.clone();
            let mut changed = Vec::with_capacity(bodies.len());
            for b in bodies {
                let mut sealed = Some(b.body_ciphertext.clone());
                let done = rekey_token(&mut self.masker, Column::Body, &self.prefix, &mut sealed);
                self.report.left.body_ids.note(&b.message_id, !done);
                if let (true, Some(sealed)) = (done, sealed) {
                    changed.push((b, sealed));
                }
            }
            let n = queries::update_bodies(&tx, &changed).await?;
            queries::save_progress(&tx, BODIES, &kid, &cursor).await?;
            tx.commit().await?;
            self.report.bodies += n;
            self.report.changed_meanwhile += (changed.len() as u64).saturating_sub(n);
            self.progress.inc(n);
        }
        queries::clear_progress(&self.client, BODIES).await?;
        Ok(())
    }

    /// Counts afresh, over the whole tables, what is not under the writing key: what this
    /// walk left, what an interrupted earlier one skipped, what came in meanwhile.
    async fn count_left(&mut self) -> Result<(), RekeyError> {
        let (rows, bodies) = queries::pending(&self.client, &self.prefix).await?;
        (self.report.left.rows, self.report.left.bodies) = (rows, bodies);
        let (rows, bodies) = queries::under_old_keys(&self.client, &self.prefix).await?;
        self.report.under_old_keys = rows + bodies;
        Ok(())
    }
}
