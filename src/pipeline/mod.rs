//! The streaming use case, the one place where source, transform and database meet.
//!
//! ```text
//!  SQS ──receive──▶ pollers (N) ──bounded channel──▶ batcher ──bounded channel──▶ writers (M)
//!                  poll.rs                          batch.rs:               writer.rs, through
//!                  lease.rs holds + extends         transform, size/time    crate::commit: BEGIN;
//!                                                   window                  ledger; rows; rejects;
//!                                                                           COMMIT
//!  SQS ◀──────────────────────── DeleteMessageBatch (after COMMIT only) ◀───────────┘
//!        pollers ◀── WriteSignal (retrying, given up) ── writers
//! ```
//!
//! [`Pipeline::build`] does everything that can fail before the first message (bind the
//! metrics address, resolve the queue, read its visibility timeout, connect the writers,
//! read the table's shape once); [`Pipeline::run_until_stopped`] only wires the tasks and
//! waits. Shutdown is described in [`shutdown`]. Anything not committed reappears after its
//! visibility timeout, and the ledger keeps it from doubling.

pub mod batch;
pub mod budget;
pub mod drain;
pub mod health;
pub mod lease;
pub mod poll;
pub mod shutdown;
mod wait;
pub mod writer;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use thiserror::Error;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::commit::{Committer, Parts, SharedShape, WriteSignal};
use crate::config::{DbConfig, PipelineConfig, RunConfig};
use crate::db::{DbError, Sink};
use crate::error::Classified;
use crate::mask::{Keyring, Masker};
use crate::source::{Received, Source, SourceError};
use crate::telemetry::{Progress, Stats, Summary};

use self::batch::{Batch, TransformAndBatch};
use self::budget::{Budget, Charge};
use self::lease::Tracker;
use self::poll::Poller;
use self::shutdown::Shutdown;
use self::writer::Writer;

/// Why a run could not start or finish cleanly.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The queue side.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The database side.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The mapping file does not fit the live tables.
    #[error(transparent)]
    Mapping(#[from] crate::mapping::MappingError),
    /// Some batches could not be committed; their messages stay on the queue.
    #[error("{0} batch(es) could not be committed after retries; their messages stay on the queue and will be redelivered (see the log for the database errors)")]
    Uncommitted(u64),
    /// The metrics address cannot be bound.
    #[error("--metrics-addr / SQS2PG_METRICS_ADDR: cannot listen on {0}: {1}")]
    Metrics(std::net::SocketAddr, std::io::Error),
    /// A task panicked: a bug. What it held was released.
    #[error("the {0} task panicked (a bug: please report it with the log); its messages were released to the queue")]
    Panicked(&'static str),
    /// A drain run gave up on an unreachable queue.
    #[error("the queue stayed unreachable; last error: {0}")]
    QueueUnreachable(SourceError),
}

impl Classified for PipelineError {
    fn is_usage(&self) -> bool {
        match self {
            Self::Source(e) => e.is_usage(),
            Self::Db(e) => e.is_usage(),
            Self::Mapping(e) => e.is_usage(),
            _ => false,
        }
    }
}

/// How many times a drain run retries a batch on transient database errors before it
/// leaves it to be redelivered and reports the failure. A daemon retries until shutdown.
const DRAIN_WRITE_ATTEMPTS: u32 = 10;

/// Connection attempts of a drain run before it reports the database unreachable; a
/// daemon waits until shutdown.
const DRAIN_CONNECT_ATTEMPTS: u32 = 5;

/// A batch closes at this share of `--max-inflight-bytes`, so that several batches (the
/// writers' and those waiting for them) fit in the budget at once.
const BATCH_BYTES_SHARE: usize = 8;

/// A consumer ready to run: every connection open, every setting checked.
pub struct Pipeline {
    cfg: PipelineConfig,
    source: Source,
    db: DbConfig,
    keyring: Arc<Keyring>,
    shape: SharedShape,
    /// One sink per writer, handed to the writers when the run starts.
    writers: Vec<Sink>,
    tracker: Arc<Tracker>,
    budget: Arc<Budget>,
    stats: Arc<Stats>,
    /// The writers' health, which the pollers steer by.
    health: WriteSignal,
    /// Stops the metrics server when the pipeline is dropped, run or not.
    _metrics: Option<DropGuard>,
    started: Instant,
}

/// [`Pipeline::build`] then [`Pipeline::run_until_stopped`] in one call, for callers that
/// need no step between them (the tests; `sqs2pg run` calls the two itself).
pub async fn run(
    cfg: RunConfig,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) -> Result<Summary, PipelineError> {
    Pipeline::build(cfg, stats, &shutdown)
        .await?
        .run_until_stopped(shutdown)
        .await
}

impl Pipeline {
    /// Everything that can fail before the first message. The metrics server comes up first,
    /// so liveness answers while SQS and the database are awaited (a daemon waits out an
    /// outage of either until `shutdown`; a drain run tries the database a few times, SQS once).
    pub async fn build(
        cfg: RunConfig,
        stats: Arc<Stats>,
        shutdown: &CancellationToken,
    ) -> Result<Self, PipelineError> {
        let started = Instant::now();
        let p = cfg.pipeline;
        let metrics = match p.metrics_addr {
            Some(addr) => {
                let stop = CancellationToken::new();
                crate::telemetry::http::serve(addr, stats.clone(), stop.clone())
                    .await
                    .map_err(|e| PipelineError::Metrics(addr, e))?;
                Some(stop.drop_guard())
            }
            None => None,
        };
        // A daemon waits out an SQS outage (readiness says so meanwhile); a drain run, which
        // a scheduler reruns, reports it at once.
        let sqs_attempts = if p.until_empty { 1 } else { u32::MAX };
        let (source, limits) =
            wait::for_sqs(&cfg.sqs, &stats, p.pollers, sqs_attempts, shutdown).await?;
        let source = match &cfg.mapping {
            Some(m) => source.asking(crate::transform::wants(m)),
            None => source,
        };
        let attempts = if p.until_empty {
            DRAIN_CONNECT_ATTEMPTS
        } else {
            u32::MAX
        };
        let first = wait::for_db(&cfg.db, attempts, shutdown).await?;
        let shape = match &cfg.mapping {
            None => crate::db::schema::inspect(&first, cfg.keyring.writing_kid().len()).await?,
            Some(m) => {
                let kid_len = cfg.keyring.writing_kid().len();
                crate::db::schema::inspect_mapped(&first, m.clone(), kid_len).await?
            }
        };
        let mut writers = vec![Sink::prepare(first, &shape, &cfg.db).await?];
        for _ in 1..p.writers.max(1) {
            let client = wait::for_db(&cfg.db, attempts, shutdown).await?;
            writers.push(Sink::prepare(client, &shape, &cfg.db).await?);
        }
        let tracker = Arc::new(Tracker::new(limits.visibility));
        let budget = Budget::new(
            p.max_inflight_bytes,
            limits.max_message_bytes,
            stats.clone(),
        );
        Ok(Self {
            budget,
            cfg: p,
            source,
            db: cfg.db,
            keyring: Arc::new(cfg.keyring),
            shape: Arc::new(tokio::sync::watch::Sender::new(shape)),
            writers,
            tracker,
            health: WriteSignal::new(stats.clone()),
            stats,
            _metrics: metrics,
            started,
        })
    }

    /// Runs until `shutdown` is cancelled, or, with `until_empty`, until the queue is empty
    /// as [`drain`] defines it. After `shutdown`, what was received is committed and deleted;
    /// whatever is not done within `shutdown_timeout` is released (visibility 0) for another
    /// consumer, and the run still returns `Ok`.
    pub async fn run_until_stopped(
        mut self,
        shutdown: CancellationToken,
    ) -> Result<Summary, PipelineError> {
        self.log_start();
        let stats = self.stats.clone();
        stats.set_consuming(true);
        let shutdown = Shutdown::new(shutdown, self.cfg.shutdown_timeout, move || {
            stats.set_consuming(false)
        });
        let poll_error: Arc<OnceLock<SourceError>> = Arc::default();
        let tasks = TaskTracker::new();
        let received = self.spawn_pollers(&tasks, &shutdown, &poll_error);
        let batches = self.spawn_batcher(&tasks, &shutdown, received);
        self.spawn_writers(&tasks, &shutdown, batches);
        tasks.close();
        let background = self.spawn_background(&shutdown);
        let progress = self.start_progress().await;
        tasks.wait().await;
        shutdown.finished.cancel();
        background.wait().await;
        progress.finish().await;
        lease::release(&self.source, &self.tracker, &self.stats).await;
        self.stats.set_consuming(false);
        self.outcome(poll_error, &shutdown).await
    }

    /// The tasks that run until every stage has returned: the heartbeat, and the health
    /// probes when metrics are served. Supervised like the stages: a panic ends the run.
    fn spawn_background(&self, shutdown: &Shutdown) -> TaskTracker {
        let background = TaskTracker::new();
        let beat = lease::heartbeat(
            self.source.clone(),
            self.tracker.clone(),
            shutdown.finished.clone(),
            self.stats.clone(),
        );
        background.spawn(shutdown.guarded("heartbeat", beat));
        if self.cfg.metrics_addr.is_some() {
            let probes = health::monitor(
                self.source.clone(),
                self.db.clone(),
                shutdown.finished.clone(),
                self.stats.clone(),
            );
            background.spawn(shutdown.guarded("health", probes));
        }
        background.close();
        background
    }

    fn log_start(&self) {
        let p = &self.cfg;
        tracing::info!(
            queue = self.source.queue_url(),
            pollers = p.pollers,
            writers = p.writers,
            batch_size = p.batch_size,
            max_inflight_bytes = p.max_inflight_bytes,
            visibility_timeout_s = self.tracker.visibility().as_secs(),
            writing_kid = self.keyring.writing_kid(),
            mapping = self.shape.borrow().mapping().map(|l| l.plan.routes.len()),
            app_version_column = ?self.shape.borrow().limits.app_version,
            "consumer started"
        );
    }

    fn spawn_pollers(
        &self,
        tasks: &TaskTracker,
        shutdown: &Shutdown,
        poll_error: &Arc<OnceLock<SourceError>>,
    ) -> mpsc::Receiver<Vec<(Received, Charge)>> {
        let (tx, rx) = mpsc::channel(self.cfg.pollers * 2);
        let drain = self.cfg.until_empty.then(|| {
            let watch = drain::DrainWatch::new(self.cfg.pollers, self.tracker.visibility());
            Arc::new(drain::Drain::new(watch))
        });
        for index in 0..self.cfg.pollers {
            let poller = Poller {
                source: self.source.clone(),
                tracker: self.tracker.clone(),
                shutdown: shutdown.clone(),
                stats: self.stats.clone(),
                budget: self.budget.clone(),
                writes: self.health.subscribe(),
                poll_error: poll_error.clone(),
                wait_seconds: self.cfg.wait_seconds,
                drain: drain.clone().map(|d| (d, index)),
            };
            tasks.spawn(shutdown.guarded("poller", poller.run(tx.clone())));
        }
        rx
    }

    fn spawn_batcher(
        &self,
        tasks: &TaskTracker,
        shutdown: &Shutdown,
        received: mpsc::Receiver<Vec<(Received, Charge)>>,
    ) -> mpsc::Receiver<Batch> {
        let (tx, rx) = mpsc::channel(self.cfg.writers * 2);
        let batcher = TransformAndBatch {
            batch_size: self.cfg.batch_size,
            batch_bytes: self.cfg.max_inflight_bytes / BATCH_BYTES_SHARE,
            batch_wait: self.cfg.batch_wait,
            shape: self.shape.clone(),
            masker: Masker::new(&self.keyring),
            stats: self.stats.clone(),
            deadline: shutdown.deadline.clone(),
        };
        tasks.spawn(shutdown.guarded("batcher", batcher.run(received, tx)));
        rx
    }

    fn spawn_writers(
        &mut self,
        tasks: &TaskTracker,
        shutdown: &Shutdown,
        batches: mpsc::Receiver<Batch>,
    ) {
        let batches = Arc::new(Mutex::new(batches));
        // A daemon waits out a database outage; a drain run reports it.
        let attempts = if self.cfg.until_empty {
            DRAIN_WRITE_ATTEMPTS
        } else {
            u32::MAX
        };
        for sink in std::mem::take(&mut self.writers) {
            let committer = Committer::new(Parts {
                db: self.db.clone(),
                shape: self.shape.clone(),
                sink,
                masker: Masker::new(&self.keyring),
                stats: self.stats.clone(),
                health: self.health.clone(),
            })
            .attempts(attempts)
            .stopped_by(shutdown.deadline.clone());
            let w = Writer {
                source: self.source.clone(),
                tracker: self.tracker.clone(),
                committer,
                stats: self.stats.clone(),
                deadline: shutdown.deadline.clone(),
            };
            tasks.spawn(shutdown.guarded("writer", w.run(batches.clone())));
        }
    }

    /// A drain run's bar knows roughly how much there is; a daemon only counts.
    async fn start_progress(&self) -> Progress {
        let total = if self.cfg.progress && self.cfg.until_empty {
            self.source
                .depth()
                .await
                .ok()
                .map(|d| d.visible + d.in_flight)
        } else {
            None
        };
        Progress::start(self.stats.clone(), self.cfg.progress, total)
    }

    /// The summary, or for a drain run the reason it could not finish.
    async fn outcome(
        &self,
        poll_error: Arc<OnceLock<SourceError>>,
        shutdown: &Shutdown,
    ) -> Result<Summary, PipelineError> {
        if let Some(task) = shutdown.panicked() {
            return Err(PipelineError::Panicked(task));
        }
        let summary = self.stats.summary(self.started.elapsed());
        if self.cfg.until_empty {
            let failed = self.health.now().given_up;
            if failed > 0 {
                return Err(PipelineError::Uncommitted(failed));
            }
            // Every poller has returned, so this is the last reference.
            if let Some(e) = Arc::into_inner(poll_error).and_then(OnceLock::into_inner) {
                return Err(PipelineError::QueueUnreachable(e));
            }
        }
        Ok(summary)
    }
}
