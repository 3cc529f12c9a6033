//! An HTTP proxy in front of an SQS server that answers chosen calls itself, with the 500
//! SQS gives for an internal error or the 403 it gives a call IAM does not allow, or holds them a while before forwarding (a slow API),
//! and forwards every other one unchanged. The TCP
//! [`super::Proxy`] breaks a whole path; this breaks one operation while the rest of the
//! queue keeps working, as an SQS hiccup on one API does.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::helpers::{forward, Upstream};

/// The header the SDK's JSON protocol names the operation in (`AmazonSQS.<Operation>`).
const TARGET_HEADER: &str = "x-amz-target";

/// What the proxy should do itself: operation name → calls left to fail, or how long to
/// hold each call.
#[derive(Default)]
struct Faults {
    fail_next: Mutex<HashMap<String, u32>>,
    delay: Mutex<HashMap<String, Duration>>,
    held: Mutex<HashMap<String, u32>>,
    injected: AtomicU64,
    /// Operations refused as IAM refuses them, every call.
    denied: Mutex<HashSet<String>>,
    /// Every request that reached the proxy, by operation (failed ones included).
    seen: Mutex<HashMap<String, u64>>,
}

impl Faults {
    fn delay_of(&self, operation: &str) -> Option<Duration> {
        self.delay.lock().unwrap().get(operation).copied()
    }

    /// Holds a call of `operation` for `by`, counted in [`SqsFaults::held`] meanwhile (also
    /// when the caller hangs up first and the wait is dropped).
    async fn hold(&self, operation: &str, by: Duration) {
        struct Count<'a>(&'a Faults, &'a str);
        impl Drop for Count<'_> {
            fn drop(&mut self) {
                if let Some(n) = self.0.held.lock().unwrap().get_mut(self.1) {
                    *n -= 1;
                }
            }
        }
        *self
            .held
            .lock()
            .unwrap()
            .entry(operation.to_owned())
            .or_default() += 1;
        let _count = Count(self, operation);
        tokio::time::sleep(by).await;
    }

    /// Takes one of the failures planned for `operation`, if any is left.
    fn take(&self, operation: &str) -> bool {
        let mut plan = self.fail_next.lock().unwrap();
        match plan.get_mut(operation) {
            Some(left) if *left > 0 => {
                *left -= 1;
                self.injected.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }
}

/// The proxy, on 127.0.0.1; it stops when dropped.
pub struct SqsFaults {
    addr: SocketAddr,
    faults: Arc<Faults>,
    task: tokio::task::JoinHandle<()>,
}

impl SqsFaults {
    /// Starts forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let faults = Arc::new(Faults::default());
        let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let f = faults.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (f, client, upstream) = (f.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        answer(req, f.clone(), client.clone(), upstream.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, faults, task }
    }

    /// The endpoint URL to give the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `n` calls of `operation` (`ChangeMessageVisibilityBatch`) get a 500
    /// `InternalFailure` without reaching the server.
    pub fn fail_next(&self, operation: &str, n: u32) {
        *self
            .faults
            .fail_next
            .lock()
            .unwrap()
            .entry(operation.to_owned())
            .or_default() += n;
    }

    /// Every call of `operation` gets the 403 `AccessDenied` SQS answers when the caller's
    /// IAM policy does not allow it, without reaching the server.
    pub fn deny(&self, operation: &str) {
        self.faults
            .denied
            .lock()
            .unwrap()
            .insert(operation.to_owned());
    }

    /// The failures planned for `operation` and not yet given are called off.
    pub fn stop_failing(&self, operation: &str) {
        self.faults.fail_next.lock().unwrap().remove(operation);
    }

    /// Every call of `operation` is held `by` before it is forwarded (`None`: none is).
    pub fn delay(&self, operation: &str, by: Option<Duration>) {
        let mut delay = self.faults.delay.lock().unwrap();
        match by {
            Some(by) => delay.insert(operation.to_owned(), by),
            None => delay.remove(operation),
        };
    }

    /// Calls of `operation` being held by [`SqsFaults::delay`] now.
    pub fn held(&self, operation: &str) -> u32 {
        let held = self.faults.held.lock().unwrap();
        held.get(operation).copied().unwrap_or(0)
    }

    /// Calls answered with a failure so far.
    pub fn injected(&self) -> u64 {
        self.faults.injected.load(Ordering::Relaxed)
    }

    /// Requests of `operation` (`DeleteMessageBatch`) that reached the proxy so far, each
    /// attempt counted: an independent count of what the consumer sent.
    pub fn requests(&self, operation: &str) -> u64 {
        let seen = self.faults.seen.lock().unwrap();
        seen.get(operation).copied().unwrap_or(0)
    }

    /// Requests of every operation that reached the proxy so far.
    pub fn all_requests(&self) -> u64 {
        self.faults.seen.lock().unwrap().values().sum()
    }

    /// Planned failures of `operation` not yet given.
    pub fn pending(&self, operation: &str) -> u32 {
        self.faults
            .fail_next
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for SqsFaults {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A planned failure, or the server's own answer.
async fn answer(
    req: Request<Incoming>,
    faults: Arc<Faults>,
    client: Upstream,
    upstream: Arc<str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let operation = req
        .headers()
        .get(TARGET_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("AmazonSQS."))
        .unwrap_or("")
        .to_owned();
    *faults
        .seen
        .lock()
        .unwrap()
        .entry(operation.clone())
        .or_default() += 1;
    if faults.denied.lock().unwrap().contains(&operation) {
        return Ok(access_denied(&operation));
    }
    if faults.take(&operation) {
        return Ok(internal_failure());
    }
    if let Some(by) = faults.delay_of(&operation) {
        faults.hold(&operation, by).await;
    }
    Ok(forward(req, &client, &upstream).await.unwrap_or_else(|e| {
        Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Full::new(Bytes::from(format!("proxy: {e}"))))
            .unwrap()
    }))
}

/// What SQS's JSON protocol answers for an internal error.
fn internal_failure() -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-query-error", "InternalFailure;Receiver")
        .body(Full::new(Bytes::from_static(
            br#"{"__type":"com.amazonaws.sqs#InternalFailure","message":"injected by the test's fault proxy"}"#,
        )))
        .unwrap()
}

/// What SQS's JSON protocol answers for a call the caller's IAM policy does not allow (the
/// query-compatible code in the header is the one the SDK reports).
fn access_denied(operation: &str) -> Response<Full<Bytes>> {
    let action = operation.to_lowercase();
    let body = format!(
        r#"{{"__type":"com.amazon.coral.service#AccessDeniedException","message":"User: arn:aws:iam::000000000000:user/test is not authorized to perform: sqs:{action} on resource: arn:aws:sqs:us-east-1:000000000000:login-queue because no identity-based policy allows the sqs:{action} action"}}"#
    );
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-query-error", "AccessDenied;Sender")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
