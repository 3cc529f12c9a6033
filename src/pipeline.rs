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

use std::collections::{BTreeMap, HashMap};
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
use crate::mask::Masker;
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
    /// The metrics address cannot be bound.
    #[error("--metrics-addr / SQS2PG_METRICS_ADDR: cannot listen on {0}: {1}")]
    Metrics(std::net::SocketAddr, std::io::Error),
    /// A quarantined body that the keyring cannot open.
    #[error("cannot open the quarantined body of message {0}: {1}. Every key that sealed a reject must be in the keyring")]
    Replay(String, crate::mask::RevealError),
    /// A drain run gave up on an unreachable queue.
    #[error("the queue stayed unreachable; last error: {0}")]
    QueueUnreachable(SourceError),
}

/// A received message and what it becomes.
pub struct Item {
    /// As received.
    pub msg: Received,
    /// What it becomes.
    pub record: Record,
}

/// Decodes and masks one message into its outcome. Never panics: a panic inside becomes a
/// reject with reason `internal_error`.
pub fn transform(msg: &Received, limits: &Limits, masker: &mut Masker) -> (Outcome, usize) {
    let result = contain(|| {
        decode::decode(msg.body.expose().as_bytes(), limits).and_then(|login| {
            let unknown = login.unknown_keys;
            to_row(login, msg, limits, masker).map(|row| (row, unknown))
        })
    });
    match result {
        Ok((row, unknown)) => (Outcome::Row(row), unknown),
        Err(reason) => (Outcome::Reject(to_reject(msg, &reason, masker)), 0),
    }
}

/// Runs `f`; a panic inside becomes `RejectReason::Internal`, so one bad message cannot
/// take the process down.
fn contain<T>(f: impl FnOnce() -> Result<T, RejectReason>) -> Result<T, RejectReason> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(RejectReason::Internal))
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

/// The messages this process holds (received, not yet deleted or given up), keyed by
/// receipt handle, with when their visibility runs out. The heartbeat extends those near
/// the end; on shutdown whatever is left is released.
struct Tracker {
    visibility: Duration,
    held: std::sync::Mutex<HashMap<String, Instant>>,
}

impl Tracker {
    fn new(visibility: Duration) -> Self {
        Self {
            visibility,
            held: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hold(&self, msgs: &[Received]) {
        let until = Instant::now() + self.visibility;
        let mut held = self.lock();
        for m in msgs {
            held.insert(m.receipt_handle.clone(), until);
        }
    }

    fn forget<'a>(&self, handles: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        for h in handles {
            held.remove(h);
        }
    }

    /// Handles whose visibility ends within half the timeout; marks them extended.
    fn due(&self) -> Vec<String> {
        let now = Instant::now();
        let mut held = self.lock();
        let due: Vec<String> = held
            .iter()
            .filter(|(_, until)| until.saturating_duration_since(now) < self.visibility / 2)
            .map(|(h, _)| h.clone())
            .collect();
        for h in &due {
            held.insert(h.clone(), now + self.visibility);
        }
        due
    }

    fn drain(&self) -> Vec<String> {
        self.lock().drain().map(|(h, _)| h).collect()
    }
}

/// Extends the visibility of held messages at half their timeout, until the pipeline ends.
async fn heartbeat(
    source: Source,
    tracker: Arc<Tracker>,
    done: CancellationToken,
    stats: Arc<Stats>,
) {
    let every = (tracker.visibility / 4).max(Duration::from_millis(500));
    let seconds = i32::try_from(tracker.visibility.as_secs()).unwrap_or(i32::MAX);
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let due = tracker.due();
        if due.is_empty() {
            continue;
        }
        let handles: Vec<&str> = due.iter().map(String::as_str).collect();
        match source.change_visibility_lenient(&handles, seconds).await {
            Ok(failed) => {
                let extended = (due.len() - failed) as u64;
                stats
                    .visibility_extended
                    .fetch_add(extended, Ordering::Relaxed);
                tracing::debug!(extended, failed, "visibility extended");
            }
            Err(e) => tracing::warn!(error = %e, count = due.len(), "could not extend visibility"),
        }
    }
}

/// Probes the database and the queue every two seconds for `/readyz`, and reads the backlog
/// for `sqs2pg_queue_backlog`, until the pipeline ends. Only runs when metrics are served.
async fn monitor(source: Source, db: DbConfig, done: CancellationToken, stats: Arc<Stats>) {
    let mut client: Option<tokio_postgres::Client> = None;
    loop {
        let probe = async {
            let db_ok = match &client {
                Some(c) if !c.is_closed() => c.simple_query("SELECT 1").await.is_ok(),
                _ => match crate::sink::connect(&db).await {
                    Ok(c) => {
                        let ok = c.simple_query("SELECT 1").await.is_ok();
                        client = Some(c);
                        ok
                    }
                    Err(_) => false,
                },
            };
            stats.db_ok.store(db_ok, Ordering::Relaxed);
            match source.depth().await {
                Ok(d) => {
                    stats.backlog.store(d.visible, Ordering::Relaxed);
                    stats.sqs_ok.store(true, Ordering::Relaxed);
                }
                Err(_) => stats.sqs_ok.store(false, Ordering::Relaxed),
            }
        };
        tokio::select! {
            _ = done.cancelled() => break,
            r = tokio::time::timeout(Duration::from_secs(5), probe) => if r.is_err() {
                stats.db_ok.store(false, Ordering::Relaxed);
            },
        }
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Runs the consumer until `shutdown` is cancelled, or, with `until_empty`, until every
/// poller has seen the queue empty. Returns the run's summary.
///
/// After `shutdown`, what was received is committed and deleted; whatever is not done
/// within `shutdown_timeout` is released (visibility 0) for another consumer, and the run
/// still returns `Ok`.
pub async fn run(
    cfg: RunConfig,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let p = cfg.pipeline.clone();
    // Up before anything can block, so liveness answers while the database is awaited.
    let server_stop = CancellationToken::new();
    let _server = match p.metrics_addr {
        Some(addr) => Some(
            crate::telemetry::serve(addr, stats.clone(), server_stop.clone())
                .await
                .map_err(|e| PipelineError::Metrics(addr, e))?,
        ),
        None => None,
    };
    let _stop_server = server_stop.drop_guard();
    let source = Source::connect(&cfg.sqs).await?;
    let keyring = Arc::new(cfg.keyring);
    let mut sinks = Vec::with_capacity(p.writers);
    let mut limits = Limits::default();
    for _ in 0..p.writers.max(1) {
        let (sink, l) = connect_sink(&cfg.db, p.until_empty, &shutdown).await?;
        limits = l;
        sinks.push(sink);
    }
    let tracker = Arc::new(Tracker::new(source.visibility_timeout().await?));
    stats.ready.store(true, Ordering::Relaxed);
    tracing::info!(
        queue = source.queue_url(),
        pollers = p.pollers,
        writers = p.writers,
        batch_size = p.batch_size,
        visibility_timeout_s = tracker.visibility.as_secs(),
        writing_kid = keyring.writing_kid(),
        app_version_column = ?limits.app_version,
        "consumer started"
    );

    // Cancelled `shutdown_timeout` after `shutdown`: in-flight work stops and is released.
    let hard_stop = CancellationToken::new();
    let finished = CancellationToken::new();
    {
        let (shutdown, hard_stop, finished, stats) = (
            shutdown.clone(),
            hard_stop.clone(),
            finished.clone(),
            stats.clone(),
        );
        let timeout = p.shutdown_timeout;
        tokio::spawn(async move {
            tokio::select! {
                _ = finished.cancelled() => return,
                _ = shutdown.cancelled() => {}
            }
            stats.ready.store(false, Ordering::Relaxed);
            tokio::select! {
                _ = finished.cancelled() => {}
                _ = tokio::time::sleep(timeout) => {
                    tracing::warn!(timeout_s = timeout.as_secs(), "shutdown deadline reached; releasing what is not committed");
                    hard_stop.cancel();
                }
            }
        });
    }

    let tasks = TaskTracker::new();
    let (msg_tx, msg_rx) = mpsc::channel::<Vec<Received>>(p.pollers * 2);
    let (batch_tx, batch_rx) = mpsc::channel::<Vec<Item>>(p.writers * 2);
    let poll_error: Arc<Mutex<Option<SourceError>>> = Arc::default();

    for _ in 0..p.pollers {
        tasks.spawn(poll(
            Poller {
                source: source.clone(),
                tracker: tracker.clone(),
                shutdown: shutdown.clone(),
                hard_stop: hard_stop.clone(),
                stats: stats.clone(),
                poll_error: poll_error.clone(),
                wait_seconds: p.wait_seconds,
                until_empty: p.until_empty,
            },
            msg_tx.clone(),
        ));
    }
    drop(msg_tx);

    tasks.spawn(batcher(
        msg_rx,
        batch_tx,
        p.batch_size,
        p.batch_wait,
        limits,
        Masker::new(&keyring),
        stats.clone(),
        hard_stop.clone(),
    ));

    let batch_rx = Arc::new(Mutex::new(batch_rx));
    for sink in sinks {
        tasks.spawn(writer(
            Writer {
                source: source.clone(),
                tracker: tracker.clone(),
                committer: Committer {
                    db: cfg.db.clone(),
                    sink: Some(sink),
                    masker: Masker::new(&keyring),
                    stats: stats.clone(),
                    hard_stop: hard_stop.clone(),
                    // A daemon waits out a database outage; a drain run reports it.
                    attempts: if p.until_empty {
                        WRITE_ATTEMPTS
                    } else {
                        u32::MAX
                    },
                },
                delete_concurrency: delete_concurrency(p.pollers, p.writers),
            },
            batch_rx.clone(),
        ));
    }
    tasks.close();

    let beat = tokio::spawn(heartbeat(
        source.clone(),
        tracker.clone(),
        finished.clone(),
        stats.clone(),
    ));
    if p.metrics_addr.is_some() {
        tokio::spawn(monitor(
            source.clone(),
            cfg.db.clone(),
            finished.clone(),
            stats.clone(),
        ));
    }
    let progress = Progress::start(stats.clone(), p.progress, source.clone(), p.until_empty);
    tasks.wait().await;
    finished.cancel();
    let _ = beat.await;
    progress.finish().await;

    let left = tracker.drain();
    if !left.is_empty() {
        let handles: Vec<&str> = left.iter().map(String::as_str).collect();
        match source.change_visibility_lenient(&handles, 0).await {
            Ok(failed) => {
                let released = (left.len() - failed) as u64;
                stats.released.fetch_add(released, Ordering::Relaxed);
                tracing::info!(released, "released uncommitted messages to other consumers");
            }
            Err(e) => {
                tracing::warn!(error = %e, count = left.len(), "could not release messages; they reappear after their visibility timeout")
            }
        }
    }
    stats.ready.store(false, Ordering::Relaxed);

    let summary = stats.summary(started.elapsed());
    if p.until_empty {
        let failed = stats.batches_failed.load(Ordering::Relaxed);
        if failed > 0 {
            return Err(PipelineError::Uncommitted(failed));
        }
        if let Some(e) = poll_error.lock().await.take() {
            return Err(PipelineError::QueueUnreachable(e));
        }
    }
    Ok(summary)
}

/// Connects a writer. A database that is not reachable yet is waited for (a daemon until
/// shutdown, a drain run a few times); a missing or incompatible table fails at once.
async fn connect_sink(
    db: &DbConfig,
    until_empty: bool,
    shutdown: &CancellationToken,
) -> Result<(Sink, Limits), SinkError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let mut attempt = 0;
    loop {
        attempt += 1;
        match Sink::connect(db).await {
            Err(e)
                if e.is_transient()
                    && !(until_empty && attempt >= 5)
                    && !shutdown.is_cancelled() =>
            {
                tracing::warn!(error = %e, attempt, "database not reachable yet; retrying");
                tokio::time::sleep(backoff.next()).await;
            }
            other => return other,
        }
    }
}

/// Which quarantined messages to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Only this reason.
    pub reason: Option<String>,
    /// Only this message id.
    pub id: Option<String>,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Rejects looked at.
    pub examined: u64,
    /// Became rows (and left the rejects).
    pub loaded: u64,
    /// Still rejected (reason updated where it changed), by reason.
    pub still_rejected: BTreeMap<String, u64>,
    /// Taken by a concurrent replay.
    pub skipped: u64,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "examined            {}", self.examined)?;
        writeln!(f, "loaded              {}", self.loaded)?;
        write!(
            f,
            "still rejected      {}",
            self.still_rejected.values().sum::<u64>()
        )?;
        for (reason, n) in &self.still_rejected {
            write!(f, "\n  {reason}: {n}")?;
        }
        if self.skipped > 0 {
            write!(f, "\nskipped (taken by another replay) {}", self.skipped)?;
        }
        Ok(())
    }
}

/// Runs quarantined bodies through decode and mask again, against the table as it is now
/// (for example after an operator changed `app_version` to text). Each batch is one
/// transaction that deletes the rejects that now load and inserts their rows, so an
/// interrupted replay leaves every message exactly once, as a row or as a reject.
pub async fn replay(
    db: &DbConfig,
    keyring: &crate::mask::Keyring,
    filter: &ReplayFilter,
    batch: i64,
) -> Result<ReplaySummary, PipelineError> {
    let (mut sink, limits) = Sink::connect(db).await?;
    let reader = crate::sink::connect(db).await?;
    let mut masker = Masker::new(keyring);
    let mut summary = ReplaySummary::default();
    let mut cursor = String::new();
    loop {
        let page = crate::sink::rejects_page(
            &reader,
            &cursor,
            filter.reason.as_deref(),
            filter.id.as_deref(),
            batch,
        )
        .await?;
        let Some(last) = page.last() else { break };
        cursor = last.message_id.clone();
        let mut rows = Vec::new();
        let mut still = Vec::new();
        for r in page {
            summary.examined += 1;
            let body = masker
                .open(crate::mask::Column::Body, &r.body_ciphertext)
                .map_err(|e| PipelineError::Replay(r.message_id.clone(), e))?;
            let msg = Received {
                message_id: r.message_id.clone(),
                receipt_handle: String::new(),
                body: crate::pii::Pii::new(String::from_utf8_lossy(&body).into_owned()),
                sent_at: r.sent_at,
                receive_count: r.receive_count,
            };
            match transform(&msg, &limits, &mut masker).0 {
                Outcome::Row(row) => rows.push((r.message_id, row)),
                Outcome::Reject(rej) => {
                    *summary
                        .still_rejected
                        .entry(rej.reason.clone())
                        .or_default() += 1;
                    still.push((r.message_id, rej.reason));
                }
            }
        }
        let report = sink.replay(&rows, &still).await?;
        summary.loaded += report.loaded;
        summary.skipped += report.skipped;
        tracing::info!(
            loaded = report.loaded,
            still_rejected = still.len(),
            "replayed a batch"
        );
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

/// How long a receive already in flight at shutdown may take to land.
const SHUTDOWN_RECEIVE_GRACE: Duration = Duration::from_secs(2);

/// Consecutive receive failures after which a drain run gives up.
const DRAIN_RECEIVE_ATTEMPTS: u32 = 8;

struct Poller {
    source: Source,
    tracker: Arc<Tracker>,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    stats: Arc<Stats>,
    poll_error: Arc<Mutex<Option<SourceError>>>,
    wait_seconds: i32,
    until_empty: bool,
}

async fn poll(p: Poller, tx: mpsc::Sender<Vec<Received>>) {
    let fresh = || Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut backoff = fresh();
    let mut failures = 0;
    loop {
        let receive = p.source.receive(p.wait_seconds);
        tokio::pin!(receive);
        // Only the wait for new messages is cancelled. A receive cannot be un-sent: its
        // answer may already hold messages that SQS made invisible, so it gets a short
        // grace to land (under load answers take milliseconds; an idle long poll is simply
        // abandoned) and whatever arrives is handed on and finishes.
        let received = tokio::select! {
            biased;
            _ = p.shutdown.cancelled() => {
                match tokio::time::timeout(SHUTDOWN_RECEIVE_GRACE, &mut receive).await {
                    Ok(Ok(msgs)) if !msgs.is_empty() => {
                        p.stats.received.fetch_add(msgs.len() as u64, Ordering::Relaxed);
                        p.tracker.hold(&msgs);
                        let _ = tx.send(msgs).await;
                    }
                    _ => {}
                }
                break;
            }
            r = &mut receive => r,
        };
        match received {
            Ok(msgs) if msgs.is_empty() => {
                failures = 0;
                p.stats.sqs_ok.store(true, Ordering::Relaxed);
                if p.until_empty {
                    break;
                }
            }
            Ok(msgs) => {
                failures = 0;
                backoff = fresh();
                p.stats.sqs_ok.store(true, Ordering::Relaxed);
                p.stats
                    .received
                    .fetch_add(msgs.len() as u64, Ordering::Relaxed);
                p.tracker.hold(&msgs);
                // Blocks while the writers are behind: backpressure pauses receiving. The
                // held messages are kept invisible by the heartbeat meanwhile.
                tokio::select! {
                    r = tx.send(msgs) => if r.is_err() { break },
                    _ = p.hard_stop.cancelled() => break,
                }
            }
            Err(e) => {
                failures += 1;
                p.stats.sqs_ok.store(false, Ordering::Relaxed);
                p.stats.retries.fetch_add(1, Ordering::Relaxed);
                p.stats.sqs_retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, failures, "receive failed; backing off");
                if p.until_empty && failures >= DRAIN_RECEIVE_ATTEMPTS {
                    *p.poll_error.lock().await = Some(e);
                    break;
                }
                tokio::select! {
                    _ = p.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff.next()) => {}
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn batcher(
    mut rx: mpsc::Receiver<Vec<Received>>,
    tx: mpsc::Sender<Vec<Item>>,
    batch_size: usize,
    batch_wait: Duration,
    limits: Limits,
    mut masker: Masker,
    stats: Arc<Stats>,
    hard_stop: CancellationToken,
) {
    let mut items: Vec<Item> = Vec::with_capacity(batch_size);
    let mut deadline: Option<tokio::time::Instant> = None;
    let send = |items: Vec<Item>| {
        let (tx, hard_stop) = (tx.clone(), hard_stop.clone());
        async move {
            tokio::select! {
                r = tx.send(items) => r.is_ok(),
                _ = hard_stop.cancelled() => false,
            }
        }
    };
    loop {
        let next = match deadline {
            Some(d) => tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(d) => {
                    deadline = None;
                    if !send(std::mem::take(&mut items)).await { return; }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(msgs) = next else { break };
        items.extend(to_items(msgs, &limits, &mut masker, &stats));
        deadline.get_or_insert_with(|| tokio::time::Instant::now() + batch_wait);
        if items.len() >= batch_size {
            deadline = None;
            if !send(std::mem::take(&mut items)).await {
                return;
            }
        }
    }
    if !items.is_empty() {
        send(items).await;
    }
}

/// `DeleteMessageBatch` calls a writer has in flight for one committed batch: its share of
/// the pollers, so that the writers together delete about as fast as the pollers receive (a
/// delete call handles the ten messages a receive brings) whatever SQS's latency, and never
/// fewer than four. The writer takes its next batch once these are done: with a fixed 4, 15 ms
/// calls capped a writer at ~2.7k msgs/s; a fixed 16, or deletes overlapping the next commit,
/// put more calls in flight than LocalStack's receives could bear at 32 pollers.
fn delete_concurrency(pollers: usize, writers: usize) -> usize {
    pollers.div_ceil(writers.max(1)).max(4)
}

/// How many times a drain run retries a batch on transient database errors before it
/// leaves it to be redelivered and reports the failure. A daemon retries until shutdown.
const WRITE_ATTEMPTS: u32 = 10;

struct Writer {
    source: Source,
    tracker: Arc<Tracker>,
    committer: Committer,
    /// `DeleteMessageBatch` calls in flight per batch.
    delete_concurrency: usize,
}

/// Commits batches: retries transient errors on fresh connections, isolates rows the
/// database refuses. Shared by the writers and the Lambda handler.
pub struct Committer {
    /// Where to reconnect.
    pub db: DbConfig,
    /// The connection, when there is one.
    pub sink: Option<Sink>,
    /// Seals the bodies of rows the database refuses.
    pub masker: Masker,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Cancelled to abandon retries.
    pub hard_stop: CancellationToken,
    /// Attempts per batch on transient errors.
    pub attempts: u32,
}

/// Why a batch was not committed.
pub enum WriteFailure {
    /// A non-retryable error, or retries ran out.
    Failed(SinkError),
    /// The shutdown deadline passed.
    Stopped,
}

async fn writer(mut w: Writer, rx: Arc<Mutex<mpsc::Receiver<Vec<Item>>>>) {
    loop {
        let batch = tokio::select! {
            b = async { rx.lock().await.recv().await } => b,
            _ = w.committer.hard_stop.cancelled() => None,
        };
        let Some(mut items) = batch else { break };
        let stats = w.committer.stats.clone();
        let n = items.len() as u64;
        stats.in_flight.fetch_add(n, Ordering::Relaxed);
        match w.committer.commit(&mut items).await {
            Ok(_) => {
                // SentTimestamp → commit, per message, for the latency histogram.
                let now = chrono::Utc::now();
                // One registry look-up per batch, not per message.
                let latency = metrics::histogram!("sqs2pg_latency_seconds");
                for i in &items {
                    if let Some(sent) = i.msg.sent_at {
                        let secs = (now - sent).num_milliseconds().max(0) as f64 / 1000.0;
                        latency.record(secs);
                    }
                }
                let handles: Vec<(&str, &str)> = items
                    .iter()
                    .map(|i| (i.msg.message_id.as_str(), i.msg.receipt_handle.as_str()))
                    .collect();
                let del = w.source.delete(&handles, w.delete_concurrency).await;
                stats.deleted.fetch_add(del.deleted, Ordering::Relaxed);
                stats.delete_failed.fetch_add(del.failed, Ordering::Relaxed);
                // Deleted, or failing to delete: either way nothing is left to protect.
                w.tracker.forget(handles.iter().map(|(_, h)| *h));
            }
            Err(WriteFailure::Failed(e)) => {
                stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                // Left invisible until their timeout runs out: a natural backoff before
                // they are tried again, here or elsewhere.
                w.tracker
                    .forget(items.iter().map(|i| i.msg.receipt_handle.as_str()));
                tracing::error!(error = %e, messages = n, "batch not committed; its messages will be redelivered");
            }
            // Still held: released when the pipeline ends.
            Err(WriteFailure::Stopped) => {}
        }
        stats.in_flight.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Decodes and masks received messages into batch items, counting unknown keys.
pub fn to_items(
    msgs: Vec<Received>,
    limits: &Limits,
    masker: &mut Masker,
    stats: &Stats,
) -> Vec<Item> {
    msgs.into_iter()
        .map(|msg| {
            let (outcome, unknown) = transform(&msg, limits, masker);
            stats
                .unknown_keys
                .fetch_add(unknown as u64, Ordering::Relaxed);
            let record = Record {
                message_id: msg.message_id.clone(),
                outcome,
            };
            Item { msg, record }
        })
        .collect()
}

impl Committer {
    /// Commits a batch and records it in the stats. A data error splits it in halves until
    /// the culprit is alone, which is then rejected with its SQLSTATE; each part commits on
    /// its own.
    pub async fn commit(&mut self, items: &mut [Item]) -> Result<WriteReport, WriteFailure> {
        let started = Instant::now();
        let mut total = WriteReport::default();
        let mut stack: Vec<(usize, usize)> = vec![(0, items.len())];
        while let Some((lo, hi)) = stack.pop() {
            let records: Vec<&Record> = items[lo..hi].iter().map(|i| &i.record).collect();
            match self.write_retrying(&records).await {
                Ok(r) => {
                    total.loaded += r.loaded;
                    total.duplicates += r.duplicates;
                    total.rejected.extend(r.rejected);
                }
                Err(WriteFailure::Failed(e)) if e.is_data() && hi - lo > 1 => {
                    let mid = lo + (hi - lo) / 2;
                    stack.push((mid, hi));
                    stack.push((lo, mid));
                }
                Err(WriteFailure::Failed(e))
                    if e.is_data() && matches!(items[lo].record.outcome, Outcome::Row(_)) =>
                {
                    let code = e.sqlstate().unwrap_or("unknown").to_owned();
                    tracing::warn!(message_id = %items[lo].record.message_id, sqlstate = %code, "database refused one row; quarantining it");
                    let item = &mut items[lo];
                    item.record.outcome = Outcome::Reject(to_reject(
                        &item.msg,
                        &RejectReason::Database(code),
                        &mut self.masker,
                    ));
                    stack.push((lo, hi));
                }
                Err(e) => return Err(e),
            }
        }
        self.stats
            .record_write(&total, items.len(), started.elapsed());
        Ok(total)
    }

    async fn write_retrying(&mut self, records: &[&Record]) -> Result<WriteReport, WriteFailure> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (db, sink) = (&self.db, &mut self.sink);
            let write = async {
                match sink {
                    Some(s) if !s.is_closed() => {
                        s.write_at(records, std::time::SystemTime::now()).await
                    }
                    _ => match Sink::connect(db).await {
                        Ok((s, _)) => {
                            tracing::info!("reconnected to Postgres");
                            sink.insert(s)
                                .write_at(records, std::time::SystemTime::now())
                                .await
                        }
                        Err(e) => Err(e),
                    },
                }
            };
            let result = tokio::select! {
                r = write => r,
                _ = self.hard_stop.cancelled() => return Err(WriteFailure::Stopped),
            };
            match result {
                Ok(r) => {
                    self.stats.db_ok.store(true, Ordering::Relaxed);
                    return Ok(r);
                }
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    self.stats.db_ok.store(false, Ordering::Relaxed);
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, attempt, "write failed; retrying");
                    if self.sink.as_ref().is_none_or(Sink::is_closed) {
                        self.sink = None;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next()) => {}
                        _ = self.hard_stop.cancelled() => return Err(WriteFailure::Stopped),
                    }
                }
                Err(e) => {
                    if e.is_transient() {
                        self.stats.db_ok.store(false, Ordering::Relaxed);
                    }
                    return Err(WriteFailure::Failed(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_keep_pace_with_the_pollers() {
        // The defaults: 8 pollers over 2 writers, 4 calls each.
        assert_eq!(delete_concurrency(8, 2), 4);
        // 32 pollers over 3 writers: 33 delete calls against 32 receives.
        assert_eq!(delete_concurrency(32, 3), 11);
        assert_eq!(delete_concurrency(1, 3), 4);
        assert_eq!(delete_concurrency(16, 0), 16);
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<Duration> = (0..8).map(|_| b.next()).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(100));
        assert!(d.iter().all(|x| *x <= Duration::from_secs(1)));
        assert!(d[7] >= Duration::from_millis(500));
    }

    #[test]
    fn tracker_extends_only_what_is_due() {
        let t = Tracker::new(Duration::from_secs(30));
        t.lock()
            .insert("soon".into(), Instant::now() + Duration::from_secs(5));
        t.lock()
            .insert("later".into(), Instant::now() + Duration::from_secs(29));
        assert_eq!(t.due(), ["soon"]);
        assert!(t.due().is_empty(), "just extended");
        t.forget(["soon"]);
        assert_eq!(t.drain(), ["later"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// decode + mask over arbitrary bodies: never a panic, always one outcome, and a
        /// reject's sealed body opens back to the input.
        #[test]
        fn transform_never_panics(body in proptest::prelude::any::<String>(), json_ish in "[{}\\[\\]\":,a-z0-9_.\\\\ -]{0,200}") {
            let keys = crate::mask::Keyring::parse(&format!("t={}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 64]))).unwrap();
            let mut m = Masker::new(&keys);
            for b in [body, json_ish] {
                let msg = Received {
                    message_id: "m".into(),
                    receipt_handle: "r".into(),
                    body: crate::pii::Pii::new(b.clone()),
                    sent_at: None,
                    receive_count: None,
                };
                match transform(&msg, &Limits::default(), &mut m).0 {
                    Outcome::Row(r) => proptest::prop_assert!(!r.user_id.is_empty()),
                    Outcome::Reject(r) => {
                        proptest::prop_assert_eq!(m.reveal(crate::mask::Column::Body, &r.body_ciphertext).unwrap(), b);
                    }
                }
            }
        }
    }

    #[test]
    fn contained_panics_become_internal_error_rejects() {
        let r: Result<(), RejectReason> = contain(|| panic!("boom"));
        assert_eq!(r, Err(RejectReason::Internal));
        assert_eq!(contain(|| Ok::<_, RejectReason>(7)), Ok(7));
    }
}
