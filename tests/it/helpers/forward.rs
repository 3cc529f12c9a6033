//! Forwarding one HTTP request to an upstream server and its answer back, for the test
//! proxies that stand between a process and a real service (SQS, the Lambda Runtime API).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};

/// The client a proxy forwards with.
pub type Upstream = Client<HttpConnector, Full<Bytes>>;

/// `req`, sent to the same path on `upstream` (`http://host:port`), and its answer.
pub async fn forward(
    req: Request<Incoming>,
    client: &Upstream,
    upstream: &str,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{upstream}{path}").parse()?;
    let body = body.collect().await?.to_bytes();
    let resp = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
