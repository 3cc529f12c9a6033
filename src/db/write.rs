//! One batch, one transaction: the message ids into the [`ledger`](super::ledger), then only
//! for the ids that were new their row in `user_logins` or their entry in
//! `user_logins_rejects`. The caller deletes from the queue only after
//! [`Sink::write`] returns `Ok`.
//!
//! Redeliveries are rare, so a batch first takes the fast path: the ids and the rows go in by
//! binary `COPY`, the ledger's primary key doing the duplicate check. Only when that `COPY`
//! hits an id already there (SQLSTATE 23505) is the batch rolled back and written again on
//! the checked path, which skips the ids the ledger already holds.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use tokio_postgres::Client;

use super::encode::{RejectWriter, RowWriter};
use super::ledger::{ledger_generation, Generation, Ledger, LedgerWrite};
use super::mapped::MappedWriter;
use super::{DbError, TableShape};
use crate::config::{DbConfig, DbStatements};
use crate::decode::RejectReason;
use crate::transform::{MappedRow, Outcome, Record, Reject, Row};

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
    /// Under a mapping, what each route did (routes that saw nothing are absent).
    pub routes: BTreeMap<String, RouteTally>,
}

/// What one mapped route did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteTally {
    /// Rows written (inserted, or updated by key).
    pub rows: u64,
    /// Events a skip route took: ledgered, no row.
    pub skipped: u64,
    /// Rows a key already held (a producer's re-send), counted apart from redeliveries.
    pub by_key: u64,
    /// Rejects of events this route took.
    pub rejected: u64,
}

impl RouteTally {
    /// Adds `other`'s counts.
    pub fn absorb(&mut self, other: &RouteTally) {
        self.rows += other.rows;
        self.skipped += other.skipped;
        self.by_key += other.by_key;
        self.rejected += other.rejected;
    }
}

impl WriteReport {
    /// Adds another part's report (a bisected batch commits in parts).
    pub fn absorb(&mut self, other: WriteReport) {
        self.loaded += other.loaded;
        self.duplicates += other.duplicates;
        self.rejected.extend(other.rejected);
        self.fell_back |= other.fell_back;
        for (route, tally) in &other.routes {
            self.routes.entry(route.clone()).or_default().absorb(tally);
        }
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
    /// The login load's writer; `None` under a mapping.
    rows: Option<RowWriter>,
    /// Under a mapping, its routes' writers.
    mapped: Option<MappedWriter>,
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
            rows: match shape.mapping() {
                Some(_) => None,
                None => Some(RowWriter::prepare(&client, shape, mode).await?),
            },
            mapped: match shape.mapping() {
                Some(live) => Some(MappedWriter::prepare(&client, &live.plan, mode).await?),
                None => None,
            },
            rejects: {
                let (table, routed) = shape.rejects();
                RejectWriter::prepare(&client, mode, table, routed).await?
            },
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

    /// The connection and the row writers, for the replay's transactions
    /// ([`super::rejects::replay`]).
    pub(super) fn replay_parts(
        &mut self,
    ) -> (&mut Client, Option<&RowWriter>, Option<&MappedWriter>) {
        (&mut self.client, self.rows.as_ref(), self.mapped.as_ref())
    }

    /// The rejects table it writes: `user_logins_rejects`, or the mapping's.
    pub fn rejects_table(&self) -> &str {
        match self.shape.mapping() {
            Some(live) => &live.plan.rejects_table,
            None => super::rejects::REJECTS_TABLE,
        }
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
        let parts = partition(recs, &fresh);
        let mut report = parts.report;
        let mapped = async {
            match &self.mapped {
                Some(w) if !parts.mapped.is_empty() => w.insert(&tx, &parts.mapped).await,
                _ => Ok(Vec::new()),
            }
        };
        let rows = async {
            match &self.rows {
                Some(w) => w.insert(&tx, &parts.rows).await,
                None => Ok(0),
            }
        };
        let (loaded, mapped, rejected) =
            futures::join!(rows, mapped, self.rejects.insert(&tx, &parts.rejects));
        report.loaded = loaded?;
        let mapped = mapped?;
        rejected?;
        tx.commit().await?;
        for (route, counts) in mapped {
            let name = self.route_name(route).unwrap_or_default();
            let tally = report.routes.entry(name).or_default();
            tally.rows += counts.rows;
            tally.by_key += counts.by_key;
            report.loaded += counts.rows;
        }
        Ok(Some(report))
    }

    /// The name of the mapped route at `index`.
    pub fn route_name(&self, index: usize) -> Option<String> {
        self.shape
            .mapping()
            .and_then(|l| l.plan.routes.get(index))
            .map(|r| r.name.clone())
    }
}

/// A batch's fresh records by where they go.
struct Parts<'a> {
    rows: Vec<&'a Row>,
    mapped: Vec<&'a MappedRow>,
    rejects: Vec<(&'a str, &'a Reject)>,
    /// Duplicates, rejects' reasons, skips and rejects by route so far.
    report: WriteReport,
}

/// The rows and rejects of the records whose ids are `fresh`; the others count as
/// duplicates.
fn partition<'a>(recs: &[&'a Record], fresh: &HashSet<&str>) -> Parts<'a> {
    let mut p = Parts {
        rows: Vec::with_capacity(fresh.len()),
        mapped: Vec::new(),
        rejects: Vec::new(),
        report: WriteReport::default(),
    };
    for rec in recs {
        if !fresh.contains(rec.message_id.as_str()) {
            p.report.duplicates += 1;
            continue;
        }
        match &rec.outcome {
            Outcome::Row(r) => p.rows.push(r),
            Outcome::Mapped(r) => p.mapped.push(r),
            Outcome::Skip { route } => {
                p.report.routes.entry(route.clone()).or_default().skipped += 1;
            }
            Outcome::Reject(r) => {
                p.report.rejected.push(r.reason.clone());
                if let Some(route) = &r.route {
                    p.report.routes.entry(route.clone()).or_default().rejected += 1;
                }
                p.rejects.push((rec.message_id.as_str(), r));
            }
        }
    }
    p
}
