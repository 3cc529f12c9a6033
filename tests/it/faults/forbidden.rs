//! An HTTP server on 127.0.0.1 that answers every request 403 Forbidden, as the instance
//! metadata service (IMDS) answers a token request from a pod whose hop limit it is beyond.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The server; it stops when dropped.
pub struct Forbidden {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Forbidden {
    /// Starts answering.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicU64::new(0));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        seen.fetch_add(1, Ordering::Relaxed);
                        async {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(StatusCode::FORBIDDEN)
                                    .body(Full::new(Bytes::from_static(b"Forbidden")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// Its URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Forbidden {
    fn drop(&mut self) {
        self.task.abort();
    }
}
