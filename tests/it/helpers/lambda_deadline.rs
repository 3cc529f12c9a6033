//! What cargo-lambda's Runtime API emulator leaves out: a real invocation deadline. It hands
//! every invocation out with `Lambda-Runtime-Deadline-Ms: 600000` (ten minutes after 1970),
//! so a test of the function's timeout puts this HTTP proxy between the function and the
//! emulator. It sets that header to now + the function's timeout on each invocation handed
//! out, as Lambda does, and notes when the function answered.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::forward::{forward, Upstream};

const DEADLINE_HEADER: &str = "lambda-runtime-deadline-ms";
const REQUEST_ID_HEADER: &str = "lambda-runtime-aws-request-id";

/// One invocation as the function saw it: its deadline, and when it answered.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    pub deadline: SystemTime,
    pub answered: Option<SystemTime>,
}

#[derive(Default)]
struct Seen {
    /// Request ids in the order they were handed out.
    order: Vec<String>,
    by_id: HashMap<String, Invocation>,
}

/// The proxy, on 127.0.0.1; it stops when dropped.
pub struct RuntimeDeadlines {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl RuntimeDeadlines {
    /// Forwards to the Runtime API at `upstream` (`127.0.0.1:port`), giving each invocation
    /// `timeout` from the moment the function takes it.
    pub async fn start(upstream: SocketAddr, timeout: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, client) = (s.clone(), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        relay(req, s.clone(), client.clone(), upstream, timeout)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    /// The latest invocation handed out.
    pub fn last(&self) -> Option<Invocation> {
        let seen = self.seen.lock().unwrap();
        seen.order.last().and_then(|id| seen.by_id.get(id)).copied()
    }
}

impl Drop for RuntimeDeadlines {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards one Runtime API call: an invocation handed out gets its deadline, an answer is
/// noted.
async fn relay(
    req: Request<Incoming>,
    seen: Arc<Mutex<Seen>>,
    client: Upstream,
    upstream: SocketAddr,
    timeout: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if let Some(id) = answered_request_id(&path) {
        if let Some(inv) = seen.lock().unwrap().by_id.get_mut(id) {
            inv.answered = Some(SystemTime::now());
        }
    }
    let mut resp = match forward(req, &client, &format!("http://{upstream}")).await {
        Ok(resp) => resp,
        Err(e) => {
            return Ok(Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Full::new(Bytes::from(format!("proxy: {e}"))))
                .unwrap())
        }
    };
    let id = resp.headers().get(REQUEST_ID_HEADER).cloned();
    if let (true, StatusCode::OK, Some(id)) =
        (path.ends_with("/invocation/next"), resp.status(), id)
    {
        let deadline = SystemTime::now() + timeout;
        let ms = deadline
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        resp.headers_mut()
            .insert(DEADLINE_HEADER, ms.to_string().parse().unwrap());
        let id = id.to_str().unwrap().to_owned();
        let mut seen = seen.lock().unwrap();
        seen.order.push(id.clone());
        let answered = None;
        seen.by_id.insert(id, Invocation { deadline, answered });
    }
    Ok(resp)
}

/// The request id of `…/invocation/{id}/response` or `…/invocation/{id}/error`.
fn answered_request_id(path: &str) -> Option<&str> {
    let rest = path.split("/invocation/").nth(1)?;
    let (id, what) = rest.split_once('/')?;
    matches!(what, "response" | "error").then_some(id)
}
