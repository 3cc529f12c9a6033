//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (alive: 200) and
//! `/readyz` (200 when consuming with database and queue reachable, else 503 saying why).

use std::sync::Arc;

use http_body_util::Full;
use tokio_util::sync::CancellationToken;

use super::stats::Stats;

/// Binds `addr` now (so a bad address fails before anything starts) and serves until
/// `stop`.
pub async fn serve(
    addr: std::net::SocketAddr,
    stats: Arc<Stats>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // Install the recorder now, so histograms recorded before the first scrape count.
    let _ = super::metrics::prometheus();
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
