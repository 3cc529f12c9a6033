//! Committing a batch: transient database errors are retried on a fresh connection after a
//! pause; a data error splits the batch in halves until the culprit row is alone, which is
//! then quarantined with its SQLSTATE. Shared by the writers and the Lambda handler.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::batch::Item;
use crate::backoff::Backoff;
use crate::config::DbConfig;
use crate::db::{BatchWriter, DbError, TableShape, WriteReport};
use crate::decode::RejectReason;
use crate::mask::Masker;
use crate::telemetry::Stats;
use crate::transform::{quarantine, Outcome, Record};

/// Why a batch was not committed.
#[derive(Debug)]
pub enum CommitFailure {
    /// A non-retryable error, or retries ran out.
    Failed(DbError),
    /// The shutdown deadline passed.
    Stopped,
}

/// Commits batches on one connection, reconnecting as needed.
pub struct Committer {
    /// Where to reconnect.
    pub db: DbConfig,
    /// What a reconnected writer prepares for.
    pub shape: TableShape,
    /// The connection, when there is one.
    pub writer: Option<BatchWriter>,
    /// Seals the bodies of rows the database refuses.
    pub masker: Masker,
    pub stats: Arc<Stats>,
    /// Cancelled to abandon retries (the shutdown deadline).
    pub stop: CancellationToken,
    /// Attempts per batch on transient errors.
    pub attempts: u32,
}

impl Committer {
    /// Commits a batch and records it in the stats. Each bisected part commits on its own.
    pub async fn commit(&mut self, items: &mut [Item]) -> Result<WriteReport, CommitFailure> {
        let started = Instant::now();
        let mut total = WriteReport::default();
        let mut stack: Vec<(usize, usize)> = vec![(0, items.len())];
        while let Some((lo, hi)) = stack.pop() {
            let records: Vec<&Record> = items[lo..hi].iter().map(|i| &i.record).collect();
            match self.write_retrying(&records).await {
                Ok(r) => total.absorb(r),
                Err(CommitFailure::Failed(e)) if e.is_data() && hi - lo > 1 => {
                    let mid = lo + (hi - lo) / 2;
                    stack.push((mid, hi));
                    stack.push((lo, mid));
                }
                Err(CommitFailure::Failed(e))
                    if e.is_data() && matches!(items[lo].record.outcome, Outcome::Row(_)) =>
                {
                    self.quarantine_refused(&mut items[lo], &e);
                    stack.push((lo, hi));
                }
                Err(e) => return Err(e),
            }
        }
        self.stats.record_commit(
            total.loaded,
            total.duplicates,
            &total.rejected,
            items.len(),
            started.elapsed(),
        );
        Ok(total)
    }

    /// Turns a row the database refused into a reject carrying the SQLSTATE.
    fn quarantine_refused(&mut self, item: &mut Item, e: &DbError) {
        let code = e.sqlstate().unwrap_or("unknown").to_owned();
        tracing::warn!(message_id = %item.record.message_id, sqlstate = %code, "database refused one row; quarantining it");
        let reject = quarantine(&item.msg, RejectReason::Database(code), &mut self.masker);
        item.record.outcome = Outcome::Reject(reject);
    }

    async fn write_retrying(&mut self, records: &[&Record]) -> Result<WriteReport, CommitFailure> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stop = self.stop.clone();
            let result = tokio::select! {
                r = self.write_once(records) => r,
                _ = stop.cancelled() => return Err(CommitFailure::Stopped),
            };
            match result {
                Ok(r) => {
                    self.stats.set_db_ok(true);
                    return Ok(r);
                }
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    self.stats.set_db_ok(false);
                    self.stats.add_db_retry();
                    tracing::warn!(error = %e, attempt, "write failed; retrying");
                    if self.writer.as_ref().is_none_or(BatchWriter::is_closed) {
                        self.writer = None;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_pause()) => {}
                        _ = self.stop.cancelled() => return Err(CommitFailure::Stopped),
                    }
                }
                Err(e) => {
                    if e.is_transient() {
                        self.stats.set_db_ok(false);
                    }
                    return Err(CommitFailure::Failed(e));
                }
            }
        }
    }

    /// One write on the open connection, or on a new one when it is gone.
    async fn write_once(&mut self, records: &[&Record]) -> Result<WriteReport, DbError> {
        let writer = match &mut self.writer {
            Some(w) if !w.is_closed() => w,
            slot => {
                let w = BatchWriter::connect(&self.db, &self.shape).await?;
                tracing::info!("reconnected to Postgres");
                slot.insert(w)
            }
        };
        writer.write_at(records, SystemTime::now()).await
    }
}
