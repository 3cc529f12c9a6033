//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (alive: 200) and
//! `/readyz` (200 when consuming with database and queue reachable, else 503 saying why).
//!
//! The port is reachable from other pods, so the server is bounded: slow or idle clients are
//! closed, connections are capped, request heads are size-limited, and a failing `accept`
//! (out of file descriptors) backs off and warns once a minute, not once an iteration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::stats::Stats;
use crate::backoff::Backoff;

/// Longest wait for a request's head, in seconds: from the connection's start, and again
/// from each response (hyper restarts it while a kept-alive connection waits for its next
/// request), so it is also the idle keep-alive timeout. A client trickling its headers, or
/// connected and silent, is closed when it runs out; a scraper sends its request at once.
pub const HEADER_READ_TIMEOUT_SECS: u64 = 5;

/// Longest life of one connection, in seconds, whatever it does: bounds a client that
/// keeps asking but never reads the answers (a write that never completes holds no timer).
pub const CONNECTION_LIFETIME_SECS: u64 = 60;

/// Connections served at once; one more is accepted and closed at once. Each holds a task
/// and a read buffer of at most [`MAX_REQUEST_BYTES`], so together a few MiB at most, far
/// below the pod's memory limit, however many clients try.
pub const MAX_CONNECTIONS: usize = 256;

/// Largest request head, in bytes (hyper's read buffer; 8 KiB is its minimum). A longer
/// one is answered 431 and the connection closed: a probe or scrape sends a few hundred.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
const _: () = assert!(MAX_REQUEST_BYTES >= 8 * 1024, "hyper's minimum read buffer");

/// First pause after a failed `accept`, in milliseconds; it doubles on each further
/// failure up to [`ACCEPT_BACKOFF_MAX_MS`]. A failed accept (EMFILE) leaves the connection
/// pending, so retrying at once would spin a core.
pub const ACCEPT_BACKOFF_FIRST_MS: u64 = 10;

/// Longest pause between `accept` retries, in milliseconds.
pub const ACCEPT_BACKOFF_MAX_MS: u64 = 1000;

/// At most one warning about failed accepts per this many seconds, counting the failures
/// it stood for: a storm of them must not flood the log.
pub const ACCEPT_WARN_INTERVAL_SECS: u64 = 60;

/// Binds `addr` now (so a bad address fails before anything starts) and serves until
/// `stop`.
pub async fn serve(
    addr: std::net::SocketAddr,
    stats: Arc<Stats>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // Install the recorder now, so histograms recorded before the first scrape count.
    let _ = super::metrics::prometheus();
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    Ok(tokio::spawn(accept_loop(listener, stats, stop)))
}

/// Accepts until `stop`: each connection within [`MAX_CONNECTIONS`] is served on a task of
/// its own, any other closed at once.
async fn accept_loop(listener: TcpListener, stats: Arc<Stats>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut errors = AcceptErrors::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => {
                errors.recovered();
                // Over the cap the stream is dropped here, which closes it.
                if let Ok(slot) = slots.clone().try_acquire_owned() {
                    tokio::spawn(serve_connection(stream, stats.clone(), slot));
                }
            }
            Err(e) => {
                let pause = errors.failed(&e);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Serves one connection's requests within the limits above; `_slot` is its place under
/// [`MAX_CONNECTIONS`], given back when it ends.
async fn serve_connection(stream: TcpStream, stats: Arc<Stats>, _slot: OwnedSemaphorePermit) {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let resp = route(req.uri().path(), &stats);
        async move { Ok::<_, std::convert::Infallible>(resp) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        // Without a timer hyper has no clock, and its header-read timeout never fires.
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(HEADER_READ_TIMEOUT_SECS))
        .max_buf_size(MAX_REQUEST_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    // Whatever ends it (the client, a limit, an I/O error), the connection is simply closed.
    let lifetime = Duration::from_secs(CONNECTION_LIFETIME_SECS);
    let _ = tokio::time::timeout(lifetime, connection).await;
}

/// Failed accepts: the pause before the next try, and the rate-limited warning.
struct AcceptErrors {
    backoff: Backoff,
    /// Failures since the last warning.
    unreported: u64,
    last_warning: Option<Instant>,
}

impl AcceptErrors {
    fn new() -> Self {
        Self {
            backoff: Self::fresh_backoff(),
            unreported: 0,
            last_warning: None,
        }
    }

    fn fresh_backoff() -> Backoff {
        Backoff::new(
            Duration::from_millis(ACCEPT_BACKOFF_FIRST_MS),
            Duration::from_millis(ACCEPT_BACKOFF_MAX_MS),
        )
    }

    /// Notes a failure; warns if none was said for [`ACCEPT_WARN_INTERVAL_SECS`]; returns
    /// the pause before the next accept.
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.unreported += 1;
        let interval = Duration::from_secs(ACCEPT_WARN_INTERVAL_SECS);
        if self.last_warning.is_none_or(|t| t.elapsed() >= interval) {
            tracing::warn!(
                error = %e,
                failures = self.unreported,
                "metrics listener cannot accept connections (out of file descriptors?); backing off, next warning in a minute at the earliest"
            );
            self.unreported = 0;
            self.last_warning = Some(Instant::now());
        }
        self.backoff.next_pause()
    }

    /// An accept succeeded: the next failure starts a fresh backoff.
    fn recovered(&mut self) {
        self.backoff = Self::fresh_backoff();
    }
}

fn route(path: &str, stats: &Stats) -> hyper::Response<Full<hyper::body::Bytes>> {
    let readiness = stats.readiness();
    let (status, content_type, body) = match path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4",
            super::metrics::render(stats),
        ),
        "/healthz" => (200, "text/plain", "ok\n".to_string()),
        "/readyz" if readiness.is_ready() => (200, "text/plain", "ready\n".to_string()),
        "/readyz" => (
            503,
            "text/plain",
            format!("not ready: {}\n", readiness.why_not().join(", ")),
        ),
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
