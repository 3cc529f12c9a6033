//! An HTTP server on 127.0.0.1 that answers every request with one refusal: 403 Forbidden,
//! as the instance metadata service (IMDS) answers a token request from a pod whose hop
//! limit it is beyond, or an AWS service's own answer to a call IAM does not allow.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The server; it stops when dropped.
pub struct Forbidden {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Forbidden {
    /// Starts answering 403 with no more to say, as IMDS does.
    pub async fn start() -> Self {
        Self::answering(403, "text/plain", "Forbidden").await
    }

    /// What KMS's JSON protocol answers a `Decrypt` the caller's IAM policy does not allow.
    pub async fn kms_access_denied() -> Self {
        Self::answering(
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"AccessDeniedException","message":"User: arn:aws:iam::000000000000:user/test is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:000000000000:key/1234abcd because no identity-based policy allows the kms:Decrypt action"}"#,
        )
        .await
    }

    /// Starts answering `status` with `body` of `content_type`.
    async fn answering(status: u16, content_type: &'static str, body: &'static str) -> Self {
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
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", content_type)
                                    .body(Full::new(Bytes::from_static(body.as_bytes())))
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
