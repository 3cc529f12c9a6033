//! Online rekey: re-encrypt every token (`masked_ip`, `masked_device_id`) and every sealed
//! reject body written under an older key to the keyring's writing key.
//!
//! Runs in batches, each its own short transaction, while `run` keeps loading (`run` only
//! inserts, rekey only updates rows that are not yet under the writing key). It is
//! idempotent and resumable: tokens are deterministic, so a batch done twice writes the same
//! values, and a restarted rekey simply finds fewer rows left. Between the rotation (new key
//! first in the ring) and the end of rekey, equal values under different kids have
//! different tokens; after it, equality holds across old and new rows again.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use thiserror::Error;
use tokio_postgres::Client;

use crate::config::DbConfig;
use crate::db::rekey::{self as queries, SealedBody, TokenRow};
use crate::db::DbError;
use crate::mask::{Column, Keyring, Masker, RevealError};

/// Why rekey stopped.
#[derive(Debug, Error)]
pub enum RekeyError {
    /// The database failed; rerun to continue where it stopped.
    #[error("{0}; rerun `sqs2pg rekey` to continue (it resumes safely)")]
    Db(#[from] DbError),
    /// A token that the keyring cannot open (its key is missing, or it is corrupt).
    #[error("a {column} token cannot be re-encrypted: {source}. Every older key must stay in the keyring until rekey finishes")]
    Token {
        /// Which column.
        column: Column,
        /// Why it does not open.
        source: RevealError,
    },
}

impl RekeyError {
    /// A missing table or an unopenable token are the user's to fix (exit 2 for the
    /// former, as for every database that is not ready); an outage is not.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Db(e) if e.is_usage())
    }
}

impl From<tokio_postgres::Error> for RekeyError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e.into())
    }
}

/// What rekey did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// The key everything is now under.
    pub writing_kid: String,
    /// `user_logins` rows updated.
    pub rows: u64,
    /// Tokens re-encrypted (a row may have two).
    pub tokens: u64,
    /// Reject bodies re-sealed.
    pub bodies: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for RekeyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "writing key         {}", self.writing_kid)?;
        writeln!(f, "rows updated        {}", self.rows)?;
        writeln!(f, "tokens re-encrypted {}", self.tokens)?;
        writeln!(f, "bodies re-sealed    {}", self.bodies)?;
        write!(f, "elapsed             {:.2}s", self.elapsed.as_secs_f64())
    }
}

/// Re-encrypts one token to the writing key, or leaves it when it already is; true when it
/// changed.
fn rekey_token(
    masker: &mut Masker,
    column: Column,
    prefix: &str,
    token: &mut Option<String>,
) -> Result<bool, RekeyError> {
    match token {
        Some(t) if !t.starts_with(prefix) => {
            let plain = masker
                .open(column, t)
                .map_err(|source| RekeyError::Token { column, source })?;
            *t = masker.seal(column, &plain);
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The token prefix of the writing key.
fn writing_prefix(keyring: &Keyring) -> String {
    format!("v1:{}:", keyring.writing_kid())
}

/// How many rows and bodies are still under an older key.
pub async fn pending(db: &DbConfig, keyring: &Keyring) -> Result<(u64, u64), RekeyError> {
    let client = crate::db::connect(db).await?;
    crate::db::schema::inspect(&client).await?;
    Ok(queries::pending(&client, &writing_prefix(keyring)).await?)
}

/// Re-encrypts everything under older keys, `batch` rows per transaction, the rows first,
/// then the reject bodies.
pub async fn run(
    db: &DbConfig,
    keyring: &Keyring,
    batch: i64,
    progress: &ProgressBar,
) -> Result<RekeyReport, RekeyError> {
    let started = Instant::now();
    let mut walk = Walk {
        client: crate::db::connect(db).await?,
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

impl Walk<'_> {
    async fn rows(&mut self) -> Result<(), RekeyError> {
        let mut cursor = "(0,0)".to_string();
        loop {
            let tx = self.client.transaction().await?;
            let mut rows: Vec<TokenRow> =
                queries::rows_page(&tx, &self.prefix, &cursor, self.batch).await?;
            let Some(last) = rows.last() else { break };
            cursor = last.ctid.clone();
            for r in &mut rows {
                let (m, p) = (&mut self.masker, self.prefix.as_str());
                let a = rekey_token(m, Column::Ip, p, &mut r.masked_ip)?;
                let b = rekey_token(m, Column::DeviceId, p, &mut r.masked_device_id)?;
                self.report.tokens += u64::from(a) + u64::from(b);
            }
            let n = queries::update_rows(&tx, &rows).await?;
            tx.commit().await?;
            self.report.rows += n;
            self.progress.inc(n);
        }
        Ok(())
    }

    async fn bodies(&mut self) -> Result<(), RekeyError> {
        let mut cursor = String::new();
        loop {
            let tx = self.client.transaction().await?;
            let mut bodies: Vec<SealedBody> =
                queries::bodies_page(&tx, &self.prefix, &cursor, self.batch).await?;
            let Some(last) = bodies.last() else { break };
            cursor = last.message_id.clone();
            for b in &mut bodies {
                let mut sealed = Some(std::mem::take(&mut b.body_ciphertext));
                rekey_token(&mut self.masker, Column::Body, &self.prefix, &mut sealed)?;
                b.body_ciphertext = sealed.unwrap_or_default();
            }
            let n = queries::update_bodies(&tx, &bodies).await?;
            tx.commit().await?;
            self.report.bodies += n;
            self.progress.inc(n);
        }
        Ok(())
    }
}
