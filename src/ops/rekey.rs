//! Online rekey: re-encrypt every token of every token column a mapping loads (the login
//! mapping's `masked_ip` and `masked_device_id` by default), and every sealed reject body
//! and subject token, written under an older key, to the keyring's writing key.
//!
//! Runs in batches, each its own short transaction, while `run` keeps loading (`run` only
//! inserts, rekey only updates rows that are not yet under the writing key). A table is
//! walked by ctid, a partitioned one a partition at a time (a ctid names a row only within
//! one), and a row or body is written back only if it still holds what the page read: one
//! deleted or replaced meanwhile (an erasure while rekey runs) is left alone and counted. It
//! is idempotent and resumable: each page's transaction also records how far the walk over
//! its table got in `sqs2pg_rekey_progress`, so a rerun towards the same key continues there,
//! and tokens are deterministic, so a page done twice writes the same values. Values that
//! are not tokens (rows from an older loader) or whose key is not in the keyring are left as
//! they are and counted, so one bad value does not stop the rest; the report ends with what
//! is still under older keys, counted afresh. Between the rotation (new key first in the
//! ring) and the end of rekey, equal values under different kids have different tokens;
//! after it, equality holds across old and new rows again.

use std::sync::Arc;
use std::time::Instant;

use indicatif::ProgressBar;
use thiserror::Error;
use tokio_postgres::Client;

use crate::config::DbConfig;
use crate::db::rekey as queries;
use crate::db::DbError;
use crate::error::Classified;
use crate::mapping::live::Live;
use crate::mapping::{login, Mapping, MappingError};
use crate::mask::{Keyring, Masker};

mod report;
mod targets;
mod walk;

pub use report::{Left, RekeyReport};
pub use targets::Targets;

/// Why rekey stopped.
#[derive(Debug, Error)]
pub enum RekeyError {
    /// The mapping does not compile against the tables.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The database failed; rerun to continue where it stopped.
    #[error("{0}; rerun `sqs2pg rekey` to continue (it resumes safely)")]
    Db(#[from] DbError),
    /// The writing kid is so long that re-encrypted tokens would not fit their column.
    #[error("tokens under key {kid:?} would be up to {needed} characters long, but {column} holds {limit}: widen the column or choose a shorter kid")]
    KidTooLong {
        /// The writing kid.
        kid: String,
        /// Which column.
        column: String,
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
            Self::Mapping(e) => e.is_usage(),
            Self::KidTooLong { .. } => true,
        }
    }
}

impl From<tokio_postgres::Error> for RekeyError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e.into())
    }
}

/// A rekey ready to walk: connected, its targets read from the mapping and the database,
/// the writing kid checked against every token column.
pub struct Rekey {
    client: Client,
    masker: Masker,
    writing_kid: String,
    targets: Targets,
    prefix: String,
}

impl Rekey {
    /// Reads what to walk from `mapping` (the built-in login mapping when `None`), compiled
    /// against the live tables, and refuses, before anything is written, a writing kid whose
    /// tokens would not fit a column.
    pub async fn prepare(
        db: &DbConfig,
        keyring: &Keyring,
        mapping: Option<Arc<Mapping>>,
    ) -> Result<Self, RekeyError> {
        let mapping = match mapping {
            Some(m) => m,
            None => Arc::new(login::mapping()?),
        };
        let client = crate::db::connect(db).await?;
        crate::db::schema::require(&client, &["sqs2pg_rekey_progress"]).await?;
        // The kid's fit is checked below against the tokens the tables hold, which is
        // exact; the compiler's bound would refuse before saying which tokens.
        let live = Live::read(mapping, &client, 0).await?;
        let targets = targets::read(&client, &live.plan).await?;
        let rekey = Self {
            client,
            masker: Masker::new(keyring),
            writing_kid: keyring.writing_kid().to_owned(),
            targets,
            prefix: format!("v1:{}:", keyring.writing_kid()),
        };
        rekey.check_fits().await?;
        Ok(rekey)
    }

    /// What will be walked.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// How many rows and rejects are not under the writing key (values left by an earlier
    /// rekey included).
    pub async fn pending(&self) -> Result<(u64, u64), RekeyError> {
        let mut rows = 0;
        for table in &self.targets.tables {
            rows += queries::pending(&self.client, table, &self.prefix).await?;
        }
        let bodies = queries::pending(&self.client, &self.targets.rejects, &self.prefix).await?;
        Ok((rows, bodies))
    }

    /// Refuses a writing kid whose tokens would not fit a column (a longer kid makes every
    /// token longer by the difference).
    async fn check_fits(&self) -> Result<(), RekeyError> {
        let kid = &self.writing_kid;
        for table in &self.targets.tables {
            for column in &table.columns {
                let Some(limit) = column.limit else { continue };
                let longest = queries::longest_without_kid(
                    &self.client,
                    &table.name,
                    &column.name,
                    &self.prefix,
                );
                let Some(rest) = longest.await? else { continue };
                let needed = usize::try_from(rest).unwrap_or(0) + kid.chars().count();
                if needed > limit {
                    return Err(RekeyError::KidTooLong {
                        kid: kid.clone(),
                        column: format!("{}.{}", table.name, column.name),
                        needed,
                        limit,
                    });
                }
            }
        }
        Ok(())
    }

    /// Re-encrypts everything under older keys, `batch` rows per transaction, table by
    /// table, the rejects last; then counts what is left.
    pub async fn run(self, batch: i64, progress: &ProgressBar) -> Result<RekeyReport, RekeyError> {
        let started = Instant::now();
        let Self {
            client,
            masker,
            writing_kid,
            targets,
            prefix,
        } = self;
        let mut walk = walk::Walk {
            client,
            batch,
            progress,
            state: walk::State {
                masker,
                prefix,
                report: RekeyReport {
                    writing_kid,
                    ..RekeyReport::default()
                },
                tables_named: targets.tables.len() > 1,
            },
        };
        for table in &targets.tables {
            walk.table(table).await?;
            tracing::info!(table = %table.name, "rekey walked the table");
        }
        walk.table(&targets.rejects).await?;
        let (client, prefix) = (&walk.client, walk.state.prefix.as_str());
        let mut report = walk.state.report;
        for table in &targets.tables {
            report.left.rows += queries::pending(client, table, prefix).await?;
            report.under_old_keys += queries::under_old_keys(client, table, prefix).await?;
        }
        let rejects = &targets.rejects;
        report.left.bodies = queries::pending(client, rejects, prefix).await?;
        report.under_old_keys += queries::under_old_keys(client, rejects, prefix).await?;
        report.elapsed = started.elapsed();
        Ok(report)
    }
}
