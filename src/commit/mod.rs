//! Committing a batch. What a failure means is decided once, by [`DbError::next_step`]: a
//! connection that is gone, timed out or cannot write is replaced (and the table's shape
//! read again); contention and operator errors are waited out with the messages still held;
//! a data error splits the batch in halves until the culprit row is alone, which is then
//! quarantined with its SQLSTATE (and a reject the database refuses too is left on the
//! queue). Composed by the pipeline's writers and by the Lambda handler alike; what it
//! reports about its health goes out on a [`WriteSignal`].

mod health;
mod item;

pub use health::{WriteHealth, WriteSignal};
pub use item::{to_items, Item};

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::DbConfig;
use crate::db::{DbError, NextStep, Sink, TableShape, WriteReport};
use crate::mask::Masker;
use crate::telemetry::Stats;
use crate::transform::{Outcome, Recipe, Record};

/// The live table's shape, shared by the batcher (its limits) and every committer (their
/// prepared statements): whoever notices a change publishes it, the others follow from their
/// next batch.
pub type SharedShape = Arc<watch::Sender<TableShape>>;

/// How often a committer reads the table's shape again even when nothing failed: an
/// `ALTER TABLE` that widens a column produces no error to notice it by.
const SHAPE_RECHECK: Duration = Duration::from_secs(60);

/// Why a batch was not committed.
#[derive(Debug)]
pub enum CommitFailure {
    /// A non-retryable error, or retries ran out.
    Failed(DbError),
    /// The shutdown deadline passed.
    Stopped,
    /// The commit panicked (caught where it ran).
    Panicked,
}

/// A reject the database refuses too (an operator's CHECK on `user_logins_rejects`) has no
/// place to go: it is marked to be left on the queue, where the redrive policy moves it to
/// the dead-letter queue, so that the rest of its batch can commit.
fn leave_refused_reject(item: &mut Item, e: &DbError) {
    let code = e.sqlstate().unwrap_or("unknown").to_owned();
    tracing::error!(message_id = %item.record.message_id, sqlstate = %code, error = %e, "database refused a message's reject too; leaving the message on the queue (it reaches the dead-letter queue by the redrive policy)");
    item.refused = Some(code);
}

/// Commits batches on one connection, reconnecting as needed.
pub struct Committer {
    /// Where to reconnect.
    db: DbConfig,
    shape: SharedShape,
    /// The connection, when there is one.
    writer: Option<Sink>,
    /// Seals the bodies of rows the database refuses.
    masker: Masker,
    stats: Arc<Stats>,
    health: WriteSignal,
    /// Cancelled to abandon retries (the shutdown deadline).
    stop: CancellationToken,
    /// When to abandon retries whatever `stop` says (a Lambda invocation's deadline).
    deadline: Option<tokio::time::Instant>,
    /// Attempts per batch on retryable errors.
    attempts: u32,
    /// When the shape was last read.
    inspected: Instant,
    /// The server process of a connection given up on a timeout, terminated from the next.
    orphan: Option<i32>,
}

/// What a committer works with.
pub struct Parts {
    /// Where to reconnect.
    pub db: DbConfig,
    pub shape: SharedShape,
    /// An open connection.
    pub sink: Sink,
    pub masker: Masker,
    pub stats: Arc<Stats>,
    /// Where it reports retrying and giving up.
    pub health: WriteSignal,
}

impl Committer {
    /// A committer that retries until it succeeds; see [`Committer::attempts`] and
    /// [`Committer::stopped_by`].
    pub fn new(parts: Parts) -> Self {
        Self {
            db: parts.db,
            shape: parts.shape,
            writer: Some(parts.sink),
            masker: parts.masker,
            stats: parts.stats,
            health: parts.health,
            stop: CancellationToken::new(),
            deadline: None,
            attempts: u32::MAX,
            inspected: Instant::now(),
            orphan: None,
        }
    }

    /// Gives a batch up after `attempts` on retryable errors (a drain run, the Lambda).
    pub fn attempts(self, attempts: u32) -> Self {
        Self { attempts, ..self }
    }

    /// Abandons retries once `stop` is cancelled (the shutdown deadline).
    pub fn stopped_by(self, stop: CancellationToken) -> Self {
        Self { stop, ..self }
    }

    /// What records are made for under the tables as last read.
    pub fn recipe(&self) -> Recipe {
        self.shape.borrow().recipe()
    }

    /// Forgets the connection: whatever it was doing (a commit that panicked) is not to be
    /// trusted.
    pub fn drop_connection(&mut self) {
        self.writer = None;
    }

    /// Commits a batch and records it in the stats, abandoning retries at `deadline` (a
    /// Lambda invocation's) if one is given. Each bisected part commits on its own; an item
    /// whose reject the database refuses is left out, marked [`Item::refused`], and counted
    /// as given up.
    pub async fn commit(
        &mut self,
        items: &mut [Item],
        deadline: Option<tokio::time::Instant>,
    ) -> Result<WriteReport, CommitFailure> {
        self.deadline = deadline;
        for item in items.iter() {
            crate::failpoint::panic_if_marked(crate::failpoint::COMMIT, item.msg.body.expose());
        }
        let started = Instant::now();
        let mut total = WriteReport::default();
        let mut stack: Vec<(usize, usize)> = vec![(0, items.len())];
        while let Some((lo, hi)) = stack.pop() {
            match self.write_retrying(&mut items[lo..hi]).await {
                Ok(r) => total.absorb(r),
                Err(CommitFailure::Failed(e)) if e.is_data() && hi - lo > 1 => {
                    let mid = lo + (hi - lo) / 2;
                    stack.push((mid, hi));
                    stack.push((lo, mid));
                }
                Err(CommitFailure::Failed(e)) if e.is_data() => {
                    if matches!(
                        items[lo].record.outcome,
                        Outcome::Row(_) | Outcome::Mapped(_)
                    ) {
                        self.quarantine_refused(&mut items[lo], &e);
                        stack.push((lo, hi));
                    } else {
                        leave_refused_reject(&mut items[lo], &e);
                    }
                }
                Err(e) => {
                    if matches!(e, CommitFailure::Failed(_)) {
                        // Given up, so no longer being retried: the pollers must not wait on it.
                        self.health.gave_up(1);
                    }
                    return Err(e);
                }
            }
        }
        let refused = items.iter().filter(|i| i.refused.is_some()).count();
        self.health.gave_up(refused as u64);
        self.stats.record_commit(
            total.loaded,
            total.duplicates,
            &total.rejected,
            items.len(),
            started.elapsed(),
        );
        self.stats.record_routes(&total.routes);
        Ok(total)
    }

    /// Turns a row the database refused into a reject carrying the SQLSTATE.
    fn quarantine_refused(&mut self, item: &mut Item, e: &DbError) {
        let code = e.sqlstate().unwrap_or("unknown").to_owned();
        tracing::warn!(message_id = %item.record.message_id, sqlstate = %code, error = %e, "database refused one row; quarantining it");
        item.refused(code, &mut self.masker);
    }

    async fn write_retrying(&mut self, items: &mut [Item]) -> Result<WriteReport, CommitFailure> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stopped = self.stopped();
            let written = tokio::select! {
                r = self.write_once(items) => Some(r),
                _ = stopped => None,
            };
            let e = match written {
                Some(Ok(r)) => {
                    self.health.retrying(false);
                    return Ok(r);
                }
                Some(Err(e)) => e,
                None => {
                    self.abandon_connection();
                    return Err(CommitFailure::Stopped);
                }
            };
            // A refused value that a changed column explains is retried on the new shape.
            if e.suggests_changed_table() && self.refresh_shape().await {
                self.writer = None;
                continue;
            }
            let step = e.next_step();
            // A setting gone wrong mid-run (a rotated password, a dropped table) is held and
            // retried like an operator error: giving the batch up would cycle the queue
            // through receive counts, and the first commit after the fix resumes everything.
            let retry = step != NextStep::RejectRow;
            if retry {
                self.health.retrying(true);
            }
            if !retry || attempt >= self.attempts {
                return Err(CommitFailure::Failed(e));
            }
            self.stats.add_db_retry();
            self.on_retryable(&e, step, attempt);
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_pause()) => {}
                _ = self.stopped() => return Err(CommitFailure::Stopped),
            }
        }
    }

    /// Resolves once retries are to be abandoned: `stop` cancelled or the deadline passed.
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (stop, deadline) = (self.stop.clone(), self.deadline);
        async move {
            match deadline {
                Some(at) => tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep_until(at) => {}
                },
                None => stop.cancelled().await,
            }
        }
    }

    /// Drops a connection left in the middle of a write (a connect, a transaction): what it
    /// was doing is not to be finished, and its server session, which may hold the batch's
    /// ledger keys, is terminated from the next connection.
    fn abandon_connection(&mut self) {
        if let Some(w) = self.writer.take() {
            self.orphan = Some(w.backend_pid());
        }
    }

    /// Logs a failure the batch will be retried after, and drops a connection that cannot
    /// be trusted any more.
    fn on_retryable(&mut self, e: &DbError, step: NextStep, attempt: u32) {
        let sqlstate = e.sqlstate().unwrap_or("none");
        if step == NextStep::Reconnect {
            tracing::warn!(error = %e, sqlstate, attempt, "write failed; retrying on a fresh connection (the messages stay held)");
            if let Some(w) = self.writer.take() {
                if matches!(e, DbError::Timeout(..)) {
                    self.orphan = Some(w.backend_pid());
                }
            }
        } else {
            if step == NextStep::Fix {
                self.writer = None;
            }
            // Retrying cannot hurt and rejecting would lose data: someone must act.
            let until = match self.attempts {
                u32::MAX => "until it is fixed".to_owned(),
                n => format!("up to {n} attempts, then left on the queue"),
            };
            tracing::error!(error = %e, sqlstate, attempt, "the database refuses the write; the batch is held and retried {until} (readiness is 503 meanwhile)");
        }
        if self.writer.as_ref().is_some_and(Sink::is_closed) {
            self.writer = None;
        }
    }

    /// One write on the open connection, or on a new one when it is gone or was prepared for
    /// an older shape; records made for older limits are made again first.
    async fn write_once(&mut self, items: &mut [Item]) -> Result<WriteReport, DbError> {
        // A reject for a column's limits (too long, an app_version the column cannot take)
        // is final only under the live limits, so a batch holding one reads the shape first,
        // whenever it was last read: an `ALTER TABLE` a moment ago must not quarantine what
        // the new column takes. One catalog query, only for such batches.
        if self.inspected.elapsed() > SHAPE_RECHECK || items.iter().any(Item::rejected_for_limits) {
            self.refresh_shape().await;
        }
        let shape = self.shape.borrow().clone();
        if self
            .writer
            .as_ref()
            .is_some_and(|w| w.is_closed() || *w.shape() != shape)
        {
            self.writer = None;
        }
        let writer = match self.writer.take() {
            Some(w) => w,
            None => self.reconnect().await?,
        };
        let writer = self.writer.insert(writer);
        let recipe = writer.shape().recipe();
        for item in items.iter_mut().filter(|i| i.made_for != recipe) {
            item.remake(&recipe, &mut self.masker);
        }
        let records: Vec<&Record> = items.iter().map(|i| &i.record).collect();
        let bound = self.db.write_timeout;
        match tokio::time::timeout(bound, writer.write_at(&records, SystemTime::now())).await {
            Ok(r) => r,
            Err(_) => Err(DbError::Timeout(
                bound,
                "one batch's transaction: a dead path, a lock, or a COMMIT waiting on a synchronous standby",
            )),
        }
    }

    /// A fresh connection: the orphaned backend of a timed-out one is terminated (its locks
    /// would stall this retry), the shape read again, the statements prepared for it.
    async fn reconnect(&mut self) -> Result<Sink, DbError> {
        let client = crate::db::connect(&self.db).await?;
        if let Some(pid) = self.orphan.take() {
            let ended = client
                .query_typed_one(
                    "SELECT pg_terminate_backend($1)",
                    &[(&pid, tokio_postgres::types::Type::INT4)],
                )
                .await
                .map(|r| r.get::<_, bool>(0));
            tracing::warn!(backend_pid = pid, terminated = ?ended.as_ref().ok(), "ended the server side of the abandoned connection");
        }
        let known = self.shape.borrow().clone();
        let shape = crate::db::schema::read_again(&client, &known).await?;
        self.publish(shape.clone());
        let w = Sink::prepare(client, &shape, &self.db).await?;
        tracing::info!("connected to Postgres (backend {})", w.backend_pid());
        Ok(w)
    }

    /// Reads the shape again (on the writer's connection when it has one); true when it
    /// changed.
    async fn refresh_shape(&mut self) -> bool {
        self.inspected = Instant::now();
        let known = self.shape.borrow().clone();
        let read = match &self.writer {
            Some(w) if !w.is_closed() => crate::db::schema::read_again(w.client(), &known).await,
            _ => match crate::db::connect(&self.db).await {
                Ok(client) => crate::db::schema::read_again(&client, &known).await,
                Err(e) => Err(e),
            },
        };
        match read {
            Ok(shape) => self.publish(shape),
            Err(e) => {
                tracing::debug!(error = %e, "could not read the tables' shape again");
                false
            }
        }
    }

    /// Makes `shape` the live one; true when it differs from what was known.
    fn publish(&mut self, shape: TableShape) -> bool {
        self.inspected = Instant::now();
        let changed = self.shape.send_if_modified(|known| {
            if *known == shape {
                return false;
            }
            match shape.mapping() {
                Some(_) => tracing::warn!("a mapped table changed while running; the mapping is compiled again for it from now on"),
                None => tracing::warn!(before = ?known.limits, after = ?shape.limits, "user_logins changed while running; writing for its new shape from now on"),
            }
            *known = shape.clone();
            true
        });
        changed || self.writer.as_ref().is_some_and(|w| *w.shape() != shape)
    }
}
