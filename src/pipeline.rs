//! The only module that composes the stages: pollers → transform (decode + mask) → batcher
//! → writers (one transaction per batch) → delete.
//!
//! ```text
//!  SQS ──receive──▶ pollers (N) ──bounded channel──▶ batcher ──bounded channel──▶ writers (M)
//!                                                   decode+mask              BEGIN; ledger; rows;
//!                                                   size/time window         rejects; COMMIT
//!  SQS ◀──────────────────────── DeleteMessageBatch (after COMMIT only) ◀───────────┘
//! ```
//!
//! Shutdown (mini-redis style): cancelling the token stops only the pollers' wait for new
//! messages. Their senders drop, the batcher flushes what it holds, the writers commit and
//! delete it, and [`run`] returns. Anything not committed reappears after its visibility
//! timeout and the ledger keeps it from doubling.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use thiserror::Error;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{DbConfig, RunConfig};
use crate::decode::{self, Limits, Login, RejectReason};
use crate::mask::{Keyring, Masker};
use crate::sink::{Outcome, Record, Reject, Row, Sink, SinkError, WriteReport};
use crate::source::{Received, Source, SourceError};
use crate::telemetry::{Progress, Stats, Summary};

/// Why a run could not start or finish cleanly.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The queue side.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The database side.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Some batches could not be committed; their messages stay on the queue.
    #[error("{0} batch(es) could not be committed after retries; their messages stay on the queue and will be redelivered (see the log for the database errors)")]
    Uncommitted(u64),
    /// A drain run gave up on an unreachable queue.
    #[error("the queue stayed unreachable; last error: {0}")]
    QueueUnreachable(SourceError),
}

/// A received message and what it becomes.
struct Item {
    msg: Received,
    record: Record,
}

/// Decodes and masks one message into its outcome. Never panics: a panic inside becomes a
/// reject with reason `internal_error`.
pub fn transform(msg: &Received, limits: &Limits, masker: &mut Masker) -> (Outcome, usize) {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        decode::decode(msg.body.expose().as_bytes(), limits).and_then(|login| {
            let unknown = login.unknown_keys;
            to_row(login, msg, limits, masker).map(|row| (row, unknown))
        })
    }))
    .unwrap_or(Err(RejectReason::Internal));
    match result {
        Ok((row, unknown)) => (Outcome::Row(row), unknown),
        Err(reason) => (Outcome::Reject(to_reject(msg, &reason, masker)), 0),
    }
}

fn to_row(
    login: Login,
    msg: &Received,
    limits: &Limits,
    masker: &mut Masker,
) -> Result<Row, RejectReason> {
    let fits =
        |len: usize, limit: Option<usize>| limit.is_none_or(|max| masker.token_len(len) <= max);
    if let Some(d) = &login.device_id {
        if !fits(d.expose().len(), limits.masked_device_id) {
            return Err(RejectReason::TooLong("device_id"));
        }
    }
    if login.ip.is_some() && !fits(16, limits.masked_ip) {
        return Err(RejectReason::TooLong("ip"));
    }
    Ok(Row {
        user_id: login.user_id,
        device_type: login.device_type,
        masked_ip: login.ip.map(|ip| masker.mask_ip(*ip.expose())),
        masked_device_id: login.device_id.map(|d| masker.mask_device_id(d.expose())),
        locale: login.locale,
        app_version: login.app_version,
        create_date: msg.sent_at.unwrap_or_else(Utc::now).date_naive(),
    })
}

fn to_reject(msg: &Received, reason: &RejectReason, masker: &mut Masker) -> Reject {
    Reject {
        reason: reason.to_string(),
        body_ciphertext: masker.seal_body(msg.body.expose().as_bytes()),
        receive_count: msg.receive_count,
        sent_at: msg.sent_at,
    }
}

/// Runs the consumer until `shutdown` is cancelled, or, with `until_empty`, until every
/// poller has seen the queue empty. Returns the run's summary.
pub async fn run(
    cfg: RunConfig,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let source = Source::connect(&cfg.sqs).await?;
    let p = cfg.pipeline.clone();
    let keyring = Arc::new(cfg.keyring);
    let mut sinks = Vec::with_capacity(p.writers);
    let mut limits = Limits::default();
    for _ in 0..p.writers.max(1) {
        let (sink, l) = Sink::connect(&cfg.db).await?;
        limits = l;
        sinks.push(sink);
    }
    tracing::info!(
        queue = source.queue_url(),
        pollers = p.pollers,
        writers = p.writers,
        batch_size = p.batch_size,
        writing_kid = keyring.writing_kid(),
        app_version_column = ?limits.app_version,
        "consumer started"
    );

    let tracker = TaskTracker::new();
    let (msg_tx, msg_rx) = mpsc::channel::<Vec<Received>>(p.pollers * 2);
    let (batch_tx, batch_rx) = mpsc::channel::<Vec<Item>>(p.writers * 2);
    let poll_error: Arc<Mutex<Option<SourceError>>> = Arc::default();

    for _ in 0..p.pollers {
        tracker.spawn(poll(
            source.clone(),
            msg_tx.clone(),
            shutdown.clone(),
            p.wait_seconds,
            p.until_empty,
            stats.clone(),
            poll_error.clone(),
        ));
    }
    drop(msg_tx);

    tracker.spawn(batcher(
        msg_rx,
        batch_tx,
        p.batch_size,
        p.batch_wait,
        limits,
        Masker::new(&keyring),
        stats.clone(),
    ));

    let batch_rx = Arc::new(Mutex::new(batch_rx));
    for sink in sinks {
        tracker.spawn(writer(
            sink,
            batch_rx.clone(),
            source.clone(),
            cfg.db.clone(),
            keyring.clone(),
            stats.clone(),
        ));
    }
    tracker.close();

    let progress = Progress::start(stats.clone(), p.progress, source.clone(), p.until_empty);
    tracker.wait().await;
    progress.finish().await;

    let summary = stats.summary(started.elapsed());
    let failed = stats.batches_failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(PipelineError::Uncommitted(failed));
    }
    if let Some(e) = poll_error.lock().await.take() {
        return Err(PipelineError::QueueUnreachable(e));
    }
    Ok(summary)
}

/// Exponential backoff with full jitter, capped.
struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    fn new(first: Duration, cap: Duration) -> Self {
        Self { next: first, cap }
    }

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.cap);
        d.mul_f64(rand::random_range(0.5..=1.0))
    }
}

/// Consecutive receive failures after which a drain run gives up.
const DRAIN_RECEIVE_ATTEMPTS: u32 = 8;

async fn poll(
    source: Source,
    tx: mpsc::Sender<Vec<Received>>,
    shutdown: CancellationToken,
    wait_seconds: i32,
    until_empty: bool,
    stats: Arc<Stats>,
    poll_error: Arc<Mutex<Option<SourceError>>>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut failures = 0;
    loop {
        // Only this wait is cancelled; whatever was received is handed on and finishes.
        let received = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = source.receive(wait_seconds) => r,
        };
        match received {
            Ok(msgs) if msgs.is_empty() => {
                failures = 0;
                if until_empty {
                    break;
                }
            }
            Ok(msgs) => {
                failures = 0;
                backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
                stats
                    .received
                    .fetch_add(msgs.len() as u64, Ordering::Relaxed);
                if tx.send(msgs).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "receive failed; backing off");
                if until_empty && failures >= DRAIN_RECEIVE_ATTEMPTS {
                    *poll_error.lock().await = Some(e);
                    break;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff.next()) => {}
                }
            }
        }
    }
}

async fn batcher(
    mut rx: mpsc::Receiver<Vec<Received>>,
    tx: mpsc::Sender<Vec<Item>>,
    batch_size: usize,
    batch_wait: Duration,
    limits: Limits,
    mut masker: Masker,
    stats: Arc<Stats>,
) {
    let mut items: Vec<Item> = Vec::with_capacity(batch_size);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            Some(d) => tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(d) => {
                    deadline = None;
                    if tx.send(std::mem::take(&mut items)).await.is_err() { return; }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(msgs) = next else { break };
        for msg in msgs {
            let (outcome, unknown) = transform(&msg, &limits, &mut masker);
            stats
                .unknown_keys
                .fetch_add(unknown as u64, Ordering::Relaxed);
            let record = Record {
                message_id: msg.message_id.clone(),
                outcome,
            };
            items.push(Item { msg, record });
        }
        deadline.get_or_insert_with(|| tokio::time::Instant::now() + batch_wait);
        if items.len() >= batch_size {
            deadline = None;
            if tx.send(std::mem::take(&mut items)).await.is_err() {
                return;
            }
        }
    }
    if !items.is_empty() {
        let _ = tx.send(items).await;
    }
}

/// How many times a batch is retried on transient database errors before it is left to be
/// redelivered.
const WRITE_ATTEMPTS: u32 = 10;

async fn writer(
    sink: Sink,
    rx: Arc<Mutex<mpsc::Receiver<Vec<Item>>>>,
    source: Source,
    db: DbConfig,
    keyring: Arc<Keyring>,
    stats: Arc<Stats>,
) {
    let mut sink = Some(sink);
    let mut masker = Masker::new(&keyring);
    loop {
        let batch = { rx.lock().await.recv().await };
        let Some(mut items) = batch else { break };
        stats
            .in_flight
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        let n = items.len() as u64;
        match write_isolating(&mut sink, &db, &mut items, &mut masker).await {
            Ok(report) => {
                stats.record_write(&report);
                let handles: Vec<(&str, &str)> = items
                    .iter()
                    .map(|i| (i.msg.message_id.as_str(), i.msg.receipt_handle.as_str()))
                    .collect();
                let del = source.delete(&handles, 4).await;
                stats.deleted.fetch_add(del.deleted, Ordering::Relaxed);
                stats.delete_failed.fetch_add(del.failed, Ordering::Relaxed);
            }
            Err(e) => {
                stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, messages = n, "batch not committed; its messages will be redelivered");
            }
        }
        stats.in_flight.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Writes a batch; a data error splits it in halves until the culprit is alone, which is
/// then rejected with its SQLSTATE. Each part commits on its own.
async fn write_isolating(
    sink: &mut Option<Sink>,
    db: &DbConfig,
    items: &mut [Item],
    masker: &mut Masker,
) -> Result<WriteReport, SinkError> {
    let mut total = WriteReport::default();
    let mut stack: Vec<(usize, usize)> = vec![(0, items.len())];
    while let Some((lo, hi)) = stack.pop() {
        let records: Vec<Record> = items[lo..hi].iter().map(|i| i.record.clone()).collect();
        match write_retrying(sink, db, &records).await {
            Ok(r) => {
                total.loaded += r.loaded;
                total.duplicates += r.duplicates;
                total.rejected.extend(r.rejected);
            }
            Err(e) if e.is_data() && hi - lo > 1 => {
                let mid = lo + (hi - lo) / 2;
                stack.push((mid, hi));
                stack.push((lo, mid));
            }
            Err(e) if e.is_data() && matches!(items[lo].record.outcome, Outcome::Row(_)) => {
                let code = e.sqlstate().unwrap_or("unknown").to_owned();
                tracing::warn!(message_id = %items[lo].record.message_id, sqlstate = %code, "database refused one row; quarantining it");
                let item = &mut items[lo];
                item.record.outcome =
                    Outcome::Reject(to_reject(&item.msg, &RejectReason::Database(code), masker));
                stack.push((lo, hi));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

async fn write_retrying(
    sink: &mut Option<Sink>,
    db: &DbConfig,
    records: &[Record],
) -> Result<WriteReport, SinkError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match sink {
            Some(s) if !s.is_closed() => s.write(records).await,
            _ => match Sink::connect(db).await {
                Ok((s, _)) => {
                    tracing::info!("reconnected to Postgres");
                    sink.insert(s).write(records).await
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(r) => return Ok(r),
            Err(e) if e.is_transient() && attempt < WRITE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "write failed; retrying");
                if sink.as_ref().is_some_and(Sink::is_closed) {
                    *sink = None;
                }
                tokio::time::sleep(backoff.next()).await;
            }
            Err(e) => return Err(e),
        }
    }
}
