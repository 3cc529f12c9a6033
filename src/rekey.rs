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

use crate::mask::{Column, Keyring, Masker, RevealError};
use crate::sink::SinkError;

/// Why rekey stopped.
#[derive(Debug, Error)]
pub enum RekeyError {
    /// The database failed; rerun to continue where it stopped.
    #[error("{0}; rerun `sqs2pg rekey` to continue (it resumes safely)")]
    Db(#[from] SinkError),
    /// A token that the keyring cannot open (its key is missing, or it is corrupt).
    #[error("a {column} token cannot be re-encrypted: {source}. Every older key must stay in the keyring until rekey finishes")]
    Token {
        /// Which column.
        column: Column,
        /// Why it does not open.
        source: RevealError,
    },
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

/// Re-encrypts one token to the writing key, or leaves it when it already is.
fn rekey_token(
    masker: &mut Masker,
    column: Column,
    prefix: &str,
    token: Option<String>,
) -> Result<(Option<String>, bool), RekeyError> {
    match token {
        Some(t) if !t.starts_with(prefix) => {
            let plain = masker
                .open(column, &t)
                .map_err(|source| RekeyError::Token { column, source })?;
            Ok((Some(masker.seal(column, &plain)), true))
        }
        other => Ok((other, false)),
    }
}

/// How many rows and bodies are still under an older key.
pub async fn pending(client: &Client, keyring: &Keyring) -> Result<(u64, u64), RekeyError> {
    let prefix = format!("v1:{}:", keyring.writing_kid());
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins
              WHERE NOT starts_with(masked_ip, $1) OR NOT starts_with(masked_device_id, $1)",
            &[&prefix],
        )
        .await?
        .get(0);
    let bodies: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins_rejects WHERE NOT starts_with(body_ciphertext, $1)",
            &[&prefix],
        )
        .await?
        .get(0);
    Ok((rows as u64, bodies as u64))
}

/// Re-encrypts everything under older keys, `batch` rows per transaction.
pub async fn run(
    client: &mut Client,
    keyring: &Keyring,
    batch: i64,
    progress: &ProgressBar,
) -> Result<RekeyReport, RekeyError> {
    let started = Instant::now();
    let mut masker = Masker::new(keyring);
    let prefix = format!("v1:{}:", keyring.writing_kid());
    let mut report = RekeyReport {
        writing_kid: keyring.writing_kid().to_owned(),
        ..RekeyReport::default()
    };

    // user_logins has no key: walk it by ctid. Updated rows move to new ctids, possibly
    // ahead of the cursor, and are then skipped because they carry the new prefix.
    let mut cursor = "(0,0)".to_string();
    loop {
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "SELECT ctid::text AS tid_text, masked_ip, masked_device_id FROM user_logins
                  WHERE ctid > $2::text::tid
                    AND (NOT starts_with(masked_ip, $1) OR NOT starts_with(masked_device_id, $1))
                  ORDER BY ctid LIMIT $3", // the column, not the text alias: text sorts (10,1) before (2,1)
                &[&prefix, &cursor, &batch],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        cursor = last.get(0);
        let (mut ctids, mut ips, mut devs) = (Vec::new(), Vec::new(), Vec::new());
        for r in &rows {
            let (ip, a) = rekey_token(&mut masker, Column::Ip, &prefix, r.get(1))?;
            let (dev, b) = rekey_token(&mut masker, Column::DeviceId, &prefix, r.get(2))?;
            report.tokens += u64::from(a) + u64::from(b);
            ctids.push(r.get::<_, String>(0));
            ips.push(ip);
            devs.push(dev);
        }
        let n = tx
            .execute(
                "UPDATE user_logins u SET masked_ip = m.ip, masked_device_id = m.dev
                   FROM unnest($1::text[], $2::text[], $3::text[]) AS m(t, ip, dev)
                  WHERE u.ctid = m.t::tid",
                &[&ctids, &ips, &devs],
            )
            .await?;
        tx.commit().await?;
        report.rows += n;
        progress.inc(n);
    }

    let mut cursor = String::new();
    loop {
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "SELECT message_id, body_ciphertext FROM user_logins_rejects
                  WHERE message_id > $2 AND NOT starts_with(body_ciphertext, $1)
                  ORDER BY message_id LIMIT $3",
                &[&prefix, &cursor, &batch],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        cursor = last.get(0);
        let (mut ids, mut bodies) = (Vec::new(), Vec::new());
        for r in &rows {
            let (body, _) = rekey_token(&mut masker, Column::Body, &prefix, r.get(1))?;
            ids.push(r.get::<_, String>(0));
            bodies.push(body);
        }
        let n = tx
            .execute(
                "UPDATE user_logins_rejects r SET body_ciphertext = m.body
                   FROM unnest($1::text[], $2::text[]) AS m(id, body)
                  WHERE r.message_id = m.id",
                &[&ids, &bodies],
            )
            .await?;
        tx.commit().await?;
        report.bodies += n;
        progress.inc(n);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
