//! One batch, one transaction: the message ids into the [`ledger`](super::ledger), then only
//! for the ids that were new their row in `user_logins` or their entry in
//! `user_logins_rejects`. The caller deletes from the queue only after
//! [`Sink::write`] returns `Ok`.
//!
//! Redeliveries are rare, so a batch first takes the fast path: the ids and the rows go in by
//! binary `COPY`, the ledger's primary key doing the duplicate check. Only when that `COPY`
//! hits an id already there (SQLSTATE 23505) is the batch rolled back and written again on
//! the checked path, which skips the ids the ledger already holds.

use std::collections::HashSet;
use std::time::SystemTime;

use tokio_postgres::Client;

use super::encode::{RejectWriter, RowWriter};
use super::ledger::{ledger_generation, Generation, Ledger, LedgerWrite};
use super::{DbError, TableShape};
use crate::config::{DbConfig, DbStatements};
use crate::decode::RejectReason;
use crate::transform::{Outcome, Record, Reject, Row};

/// What one committed batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows inserted.
    pub loaded: u64,
    /// The reason of each reject inserted.
    pub rejected: Vec<RejectReason>,
    /// Message ids already in the ledger (redeliveries), or repeated within the batch:
    /// nothing written for them.
    pub duplicates: u64,
    /// The binary `COPY` fast path met an id already in the ledger and the batch went again
    /// on the checked path (what a redelivery costs).
    pub fell_back: bool,
}

impl WriteReport {
    /// Adds another part's report (a bisected batch commits in parts).
    pub fn absorb(&mut self, other: WriteReport) {
        self.loaded += other.loaded;
        self.duplicates += other.duplicates;
        self.rejected.extend(other.rejected);
        self.fell_back |= other.fell_back;
    }
}

/// The sink: one connection with statements prepared for the live table's shape, writing one
/// batch per transaction (ledger ids, rows, rejects).
pub struct Sink {
    client: Client,
    /// The server process behind the connection, so that one abandoned on a timeout can be
    /// terminated from the next: its transaction would otherwise keep the ledger locks the
    /// retry needs until the server notices the client is gone.
    backend_pid: i32,
    /// What the statements were prepared for.
    shape: TableShape,
    ledger: Ledger,
    rows: RowWriter,
    rejects: RejectWriter,
    /// The bound on one transaction, also set server-side so that an orphaned transaction
    /// ends by itself: `SET LOCAL`s sent with each transaction when statements are unnamed
    /// (a transaction pooler may give the next transaction another server session, and a
    /// session-wide `SET` would stay behind on this one for other clients); `None` when
    /// prepared, where the session lasts and was given them once at [`Sink::prepare`].
    limits_sql: Option<String>,
}

impl Sink {
    /// Connects and prepares the statements for `shape` (read once by
    /// [`super::schema::inspect`]).
    pub async fn connect(db: &DbConfig, shape: &TableShape) -> Result<Self, DbError> {
        let client = super::connect(db).await?;
        Self::prepare(client, shape, db).await
    }

    /// Makes the statements on an open connection, in the form `db.statements` says; a
    /// transaction may take `db.write_timeout`.
    pub async fn prepare(
        client: Client,
        shape: &TableShape,
        db: &DbConfig,
    ) -> Result<Self, DbError> {
        // Unnamed, as every query outside the batch's transaction: behind a transaction
        // pooler a named one could be parsed on one server connection and run on another.
        let backend_pid = client
            .query_typed_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        let ms = db.write_timeout.as_millis();
        let mode = db.statements;
        let set = |scope: &str| {
            format!("SET {scope}statement_timeout = {ms}; SET {scope}idle_in_transaction_session_timeout = {ms}")
        };
        let limits_sql = match mode {
            DbStatements::Prepared => {
                client.batch_execute(&set("")).await?;
                None
            }
            DbStatements::Unnamed => Some(set("LOCAL ")),
        };
        Ok(Self {
            backend_pid,
            shape: shape.clone(),
            ledger: Ledger::prepare(&client, mode).await?,
            rows: RowWriter::prepare(&client, shape, mode).await?,
            rejects: RejectWriter::prepare(&client, mode).await?,
            limits_sql,
            client,
        })
    }

    /// The table shape the statements were prepared for.
    pub fn shape(&self) -> &TableShape {
        &self.shape
    }

    /// The connection, for catalog reads between batches.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The server process id of the connection.
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// True once the connection is gone; the caller reconnects.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The connection, for the other transactions that need the prepared row insert
    /// ([`super::rejects::replay`]).
    pub(super) fn parts(&mut self) -> (&mut Client, &RowWriter) {
        (&mut self.client, &self.rows)
    }

    /// Writes a batch in one transaction. Records whose message id is already in the ledger
    /// (or repeated within the batch) are skipped and counted as duplicates.
    pub async fn write(&mut self, batch: &[&Record]) -> Result<WriteReport, DbError> {
        self.write_at(batch, SystemTime::now()).await
    }

    /// [`Sink::write`] with the clock given, so generation changes can be tested.
    pub async fn write_at(
        &mut self,
        batch: &[&Record],
        now: SystemTime,
    ) -> Result<WriteReport, DbError> {
        let generation = ledger_generation(now);
        self.ledger
            .start(&mut self.client, generation.number)
            .await?;
        // A message id repeated inside the batch is written once.
        let mut seen = HashSet::with_capacity(batch.len());
        let unique: Vec<&Record> = batch
            .iter()
            .copied()
            .filter(|r| seen.insert(r.message_id.as_str()))
            .collect();
        // Sorted, so that concurrent writers take the ledger's index locks in one order and
        // cannot deadlock on each other's ids.
        let mut ids: Vec<&str> = unique.iter().map(|r| r.message_id.as_str()).collect();
        ids.sort_unstable();
        let mut mode = LedgerWrite::Copy;
        // At most twice: the checked path never gives up.
        let mut report = loop {
            match self.write_tx(&unique, &ids, generation, mode).await? {
                Some(report) => break report,
                None => mode = LedgerWrite::Checked,
            }
        };
        report.duplicates += (batch.len() - unique.len()) as u64;
        report.fell_back = mode == LedgerWrite::Checked;
        Ok(report)
    }

    /// One attempt at a batch of distinct ids; `None` when the fast path must give way.
    async fn write_tx(
        &mut self,
        recs: &[&Record],
        ids: &[&str],
        generation: Generation,
        mode: LedgerWrite,
    ) -> Result<Option<WriteReport>, DbError> {
        let tx = self.client.transaction().await?;
        // Pipelined: the claim goes out behind the bound without waiting for its answer, and
        // the rejects behind the rows (the server runs them in order; a statement after a
        // failed one fails too, and the first error is the one returned).
        let limits = async {
            match &self.limits_sql {
                Some(sql) => tx.batch_execute(sql).await,
                None => Ok(()),
            }
        };
        let (set, claim) = futures::join!(limits, self.ledger.claim(&tx, ids, generation, mode));
        set?;
        let Some(fresh) = claim? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let (rows, rejects, mut report) = partition(recs, &fresh);
        let (loaded, rejected) = futures::join!(
            self.rows.insert(&tx, &rows),
            self.rejects.insert(&tx, &rejects)
        );
        report.loaded = loaded?;
        rejected?;
        tx.commit().await?;
        Ok(Some(report))
    }
}

/// The rows and rejects of the records whose ids are `fresh`; the others count as
/// duplicates.
fn partition<'a>(
    recs: &[&'a Record],
    fresh: &HashSet<&str>,
) -> (Vec<&'a Row>, Vec<(&'a str, &'a Reject)>, WriteReport) {
    let mut report = WriteReport::default();
    let mut rows = Vec::with_capacity(fresh.len());
    let mut rejects = Vec::new();
    for rec in recs {
        if !fresh.contains(rec.message_id.as_str()) {
            report.duplicates += 1;
            continue;
        }
        match &rec.outcome {
            Outcome::Row(r) => rows.push(r),
            Outcome::Reject(r) => {
                report.rejected.push(r.reason.clone());
                rejects.push((rec.message_id.as_str(), r));
            }
        }
    }
    (rows, rejects, report)
}
