//! Logs, run counters, the progress display and the end-of-run summary.
//!
//! Logs go to stderr through `tracing` (`--log-format text|json`, filtered by `RUST_LOG`);
//! stdout is kept for command output such as the summary. Nothing here ever sees a raw
//! PII value: counters count, reasons are machine-readable codes, ids are SQS message ids.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use indicatif::{ProgressBar, ProgressStyle};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::sink::WriteReport;
use crate::source::Source;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// Crates whose debug and trace output would print HTTP or protocol payloads, that is,
/// message bodies. They are capped at `info` whatever `RUST_LOG` says.
const PAYLOAD_LOGGERS: [&str; 8] = [
    "aws_smithy_runtime",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_sdk_sqs",
    "hyper",
    "hyper_util",
    "h2",
    "tokio_postgres",
];

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level, except
/// for [`PAYLOAD_LOGGERS`].
pub fn init_tracing(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for target in PAYLOAD_LOGGERS {
        if let Ok(d) = format!("{target}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Counters of one run, shared by every task.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received from SQS (redeliveries included).
    pub received: AtomicU64,
    /// Rows committed.
    pub loaded: AtomicU64,
    /// Rejects committed.
    pub rejected: AtomicU64,
    /// Rejects committed, by reason.
    pub rejected_by_reason: Mutex<BTreeMap<String, u64>>,
    /// Messages whose id was already in the ledger.
    pub duplicates: AtomicU64,
    /// Messages deleted from the queue.
    pub deleted: AtomicU64,
    /// Delete entries that failed after a retry.
    pub delete_failed: AtomicU64,
    /// Batches given up on (left for redelivery).
    pub batches_failed: AtomicU64,
    /// Extra keys seen in otherwise valid messages.
    pub unknown_keys: AtomicU64,
    /// Messages inside the writers right now.
    pub in_flight: AtomicU64,
    /// Visibility extensions made by the heartbeat.
    pub visibility_extended: AtomicU64,
    /// Messages released (visibility 0) at shutdown.
    pub released: AtomicU64,
    /// Retried SQS or Postgres calls (both stages).
    pub retries: AtomicU64,
    /// Seconds since the epoch of the last commit.
    pub last_commit_unix: AtomicU64,
    /// Consuming and not shutting down.
    pub ready: std::sync::atomic::AtomicBool,
    /// The last database call succeeded.
    pub db_ok: std::sync::atomic::AtomicBool,
    /// The last SQS receive succeeded.
    pub sqs_ok: std::sync::atomic::AtomicBool,
    /// `ApproximateNumberOfMessages`, polled every few seconds while metrics are served.
    pub backlog: AtomicU64,
    /// Retried SQS calls.
    pub sqs_retries: AtomicU64,
}

impl Stats {
    /// Adds a committed batch of `size` messages that took `took` to write.
    pub fn record_write(&self, r: &WriteReport, size: usize, took: Duration) {
        metrics::histogram!("sqs2pg_batch_size").record(size as f64);
        metrics::histogram!("sqs2pg_commit_seconds").record(took.as_secs_f64());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_commit_unix.store(now, Ordering::Relaxed);
        self.loaded.fetch_add(r.loaded, Ordering::Relaxed);
        self.duplicates.fetch_add(r.duplicates, Ordering::Relaxed);
        self.rejected
            .fetch_add(r.rejected.len() as u64, Ordering::Relaxed);
        if !r.rejected.is_empty() {
            let mut by = self
                .rejected_by_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for reason in &r.rejected {
                *by.entry(reason.clone()).or_default() += 1;
            }
        }
    }

    /// A snapshot as a summary.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            received: get(&self.received),
            loaded: get(&self.loaded),
            rejected: get(&self.rejected),
            rejected_by_reason: self
                .rejected_by_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            duplicates: get(&self.duplicates),
            deleted: get(&self.deleted),
            delete_failed: get(&self.delete_failed),
            unknown_keys: get(&self.unknown_keys),
            visibility_extended: get(&self.visibility_extended),
            released: get(&self.released),
            elapsed,
        }
    }
}

/// The end-of-run report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Messages received (redeliveries included).
    pub received: u64,
    /// Rows committed.
    pub loaded: u64,
    /// Rejects committed.
    pub rejected: u64,
    /// Rejects by reason.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Redeliveries skipped by the ledger.
    pub duplicates: u64,
    /// Messages deleted.
    pub deleted: u64,
    /// Deletes that failed (those messages come back and become duplicates).
    pub delete_failed: u64,
    /// Extra keys ignored.
    pub unknown_keys: u64,
    /// Visibility extensions.
    pub visibility_extended: u64,
    /// Messages released to other consumers at shutdown.
    pub released: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Summary {
    /// Messages handled per second of wall time.
    pub fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "received            {}", self.received)?;
        writeln!(f, "loaded              {}", self.loaded)?;
        writeln!(f, "rejected            {}", self.rejected)?;
        for (reason, n) in &self.rejected_by_reason {
            writeln!(f, "  {reason}: {n}")?;
        }
        writeln!(f, "duplicates skipped  {}", self.duplicates)?;
        writeln!(f, "deleted             {}", self.deleted)?;
        if self.delete_failed > 0 {
            writeln!(f, "delete failures     {}", self.delete_failed)?;
        }
        if self.unknown_keys > 0 {
            writeln!(f, "unknown keys        {}", self.unknown_keys)?;
        }
        if self.visibility_extended > 0 {
            writeln!(f, "visibility extended {}", self.visibility_extended)?;
        }
        if self.released > 0 {
            writeln!(f, "released            {}", self.released)?;
        }
        writeln!(f, "elapsed             {:.2}s", self.elapsed.as_secs_f64())?;
        write!(f, "rate                {:.0} messages/s", self.rate())
    }
}

/// True when `/readyz` should answer 200: consuming, not shutting down, database and queue
/// reachable.
pub fn is_ready(stats: &Stats) -> bool {
    stats.ready.load(Ordering::Relaxed)
        && stats.db_ok.load(Ordering::Relaxed)
        && stats.sqs_ok.load(Ordering::Relaxed)
}

/// The process-wide Prometheus recorder (the `metrics` facade allows one).
fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("sqs2pg_commit_seconds".into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("sqs2pg_latency_seconds".into()),
                        &[
                            0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
                            1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("sqs2pg_batch_size".into()),
                        &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0],
                    )
                })
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// The Prometheus text for `stats`: counters and gauges are set from the run's counters at
/// scrape time (so `/metrics` always equals the summary), histograms are recorded as batches
/// commit.
pub fn render_metrics(stats: &Stats) -> String {
    let Some(handle) = prometheus() else {
        return String::new();
    };
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    metrics::counter!("sqs2pg_received_total").absolute(get(&stats.received));
    metrics::counter!("sqs2pg_loaded_total").absolute(get(&stats.loaded));
    metrics::counter!("sqs2pg_duplicates_total").absolute(get(&stats.duplicates));
    metrics::counter!("sqs2pg_deleted_total").absolute(get(&stats.deleted));
    metrics::counter!("sqs2pg_delete_failures_total").absolute(get(&stats.delete_failed));
    metrics::counter!("sqs2pg_unknown_keys_total").absolute(get(&stats.unknown_keys));
    metrics::counter!("sqs2pg_visibility_extended_total").absolute(get(&stats.visibility_extended));
    metrics::counter!("sqs2pg_released_total").absolute(get(&stats.released));
    metrics::counter!("sqs2pg_batches_failed_total").absolute(get(&stats.batches_failed));
    let sqs_retries = get(&stats.sqs_retries);
    metrics::counter!("sqs2pg_retries_total", "stage" => "sqs").absolute(sqs_retries);
    metrics::counter!("sqs2pg_retries_total", "stage" => "postgres")
        .absolute(get(&stats.retries).saturating_sub(sqs_retries));
    for (reason, n) in stats
        .rejected_by_reason
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        metrics::counter!("sqs2pg_rejected_total", "reason" => reason.clone()).absolute(*n);
    }
    metrics::gauge!("sqs2pg_in_flight").set(get(&stats.in_flight) as f64);
    metrics::gauge!("sqs2pg_queue_backlog").set(get(&stats.backlog) as f64);
    metrics::gauge!("sqs2pg_last_commit_timestamp_seconds")
        .set(get(&stats.last_commit_unix) as f64);
    metrics::gauge!("sqs2pg_ready").set(if is_ready(stats) { 1.0 } else { 0.0 });
    handle.run_upkeep();
    handle.render()
}

/// Serves `/metrics` (Prometheus text), `/healthz` (alive: 200) and `/readyz` (200 when
/// consuming with database and queue reachable, else 503) on `addr` until `stop`.
pub async fn serve(
    addr: std::net::SocketAddr,
    stats: Arc<Stats>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // Install the recorder now, so histograms recorded before the first scrape count.
    let _ = prometheus();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = stop.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener accept failed");
                        continue;
                    }
                },
            };
            let stats = stats.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let resp = route(req.uri().path(), &stats);
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    }))
}

fn route(path: &str, stats: &Stats) -> hyper::Response<Full<hyper::body::Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (200, "text/plain; version=0.0.4", render_metrics(stats)),
        "/healthz" => (200, "text/plain", "ok\n".to_string()),
        "/readyz" if is_ready(stats) => (200, "text/plain", "ready\n".to_string()),
        "/readyz" => {
            let why = [
                (!stats.ready.load(Ordering::Relaxed))
                    .then_some("not consuming (starting or shutting down)"),
                (!stats.db_ok.load(Ordering::Relaxed)).then_some("database unreachable"),
                (!stats.sqs_ok.load(Ordering::Relaxed)).then_some("queue unreachable"),
            ];
            let why: Vec<&str> = why.into_iter().flatten().collect();
            (
                503,
                "text/plain",
                format!("not ready: {}\n", why.join(", ")),
            )
        }
        _ => (
            404,
            "text/plain",
            "not found: try /metrics, /healthz, /readyz\n".to_string(),
        ),
    };
    let mut resp = hyper::Response::new(Full::new(hyper::body::Bytes::from(body)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// A bar of `total` steps on a terminal; hidden elsewhere.
pub fn bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style);
    }
    pb
}

/// A progress bar on a terminal, or a log line every ten seconds elsewhere.
pub struct Progress {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts reporting. `bar` asks for a bar; it is shown only when stderr is a terminal.
    pub fn start(stats: Arc<Stats>, bar: bool, source: Source, drain: bool) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            if bar && std::io::stderr().is_terminal() {
                run_bar(stats, token, source, drain).await
            } else {
                run_lines(stats, token).await
            }
        });
        Self { stop, task }
    }

    /// Stops reporting and clears the bar.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn run_bar(stats: Arc<Stats>, stop: CancellationToken, source: Source, drain: bool) {
    // A drain run knows roughly how much there is; a daemon only counts.
    let total = if drain {
        source.depth().await.ok().map(|d| d.visible + d.in_flight)
    } else {
        None
    };
    let pb = match total {
        Some(t) if t > 0 => ProgressBar::new(t),
        _ => ProgressBar::new_spinner(),
    };
    let template = if pb.length().is_some() {
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}) {msg}"
    } else {
        "{spinner} [{elapsed_precise}] {pos} messages ({per_sec}) {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let done = stats.deleted.load(Ordering::Relaxed);
        if pb.length().is_some_and(|l| done > l) {
            pb.set_length(done);
        }
        pb.set_position(done);
        pb.set_message(format!(
            "loaded {} rejected {} duplicates {}",
            stats.loaded.load(Ordering::Relaxed),
            stats.rejected.load(Ordering::Relaxed),
            stats.duplicates.load(Ordering::Relaxed)
        ));
    }
    pb.finish_and_clear();
}

async fn run_lines(stats: Arc<Stats>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        tracing::info!(
            received = stats.received.load(Ordering::Relaxed),
            loaded = stats.loaded.load(Ordering::Relaxed),
            rejected = stats.rejected.load(Ordering::Relaxed),
            duplicates = stats.duplicates.load(Ordering::Relaxed),
            deleted = stats.deleted.load(Ordering::Relaxed),
            "progress"
        );
    }
}
