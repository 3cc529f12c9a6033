//! The local services the suite needs: where they are, and one line instead of dozens of
//! failures when they are not up.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Once;
use std::time::Duration;

use super::*;

/// The settings the AWS SDK reads from the environment, which `scripts/services env` exports
/// (`make test` does it): checked, never set here, since `set_var` in a threaded test binary
/// races every thread that reads the environment. Never real AWS: the endpoint must be a
/// local one. Then checks, once per process, that the services answer (see [`preflight`]).
pub(crate) fn init_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let missing: Vec<&str> = [
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ]
        .into_iter()
        .filter(|k| std::env::var_os(k).is_none())
        .collect();
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        let local = ["http://127.0.0.1:", "http://localhost:"]
            .iter()
            .any(|p| endpoint.starts_with(p));
        if !missing.is_empty() || !local {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "integration tests need the local services' settings ({}): run \
                 eval \"$(scripts/services env)\" (or `make test`)",
                if missing.is_empty() {
                    format!("AWS_ENDPOINT_URL={endpoint} is not a local endpoint")
                } else {
                    format!("{} not set", missing.join(", "))
                }
            );
            std::process::exit(2);
        }
        preflight();
    });
}

/// Ends the whole test process (exit 2) with one line on stderr when Postgres or LocalStack
/// does not accept a TCP connection within a second, instead of every test failing on its
/// own after its own timeouts.
pub(crate) fn preflight() {
    let pg = host_port(&admin_url(), 5432);
    let sqs = host_port(
        &std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into()),
        4566,
    );
    for (what, target) in [("PostgreSQL", pg), ("LocalStack", sqs)] {
        // A URL we cannot take apart (a Unix socket, say) is left to the tests themselves.
        let Some(target) = target else { continue };
        if let Err(e) = tcp_probe(&target) {
            // Straight to fd 2: libtest captures `eprintln!` in a test and would drop it
            // on exit.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "integration tests need PostgreSQL and LocalStack ({what} at {target}: {e}): \
                 run `scripts/services up` (or `make test`), then eval \"$(scripts/services env)\""
            );
            std::process::exit(2);
        }
    }
}

pub(crate) fn tcp_probe(target: &str) -> std::io::Result<()> {
    let addrs: Vec<SocketAddr> = target.to_socket_addrs()?.collect();
    let mut last = std::io::Error::other("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `host:port` of a `scheme://[user[:pw]@]host[:port][/...]` URL, `default_port` when it
/// names none; `None` when it names no host.
pub(crate) fn host_port(url: &str, default_port: u16) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return None;
    }
    let has_port = match hostport.rfind(']') {
        Some(close) => hostport[close..].contains(':'),
        None => hostport.contains(':'),
    };
    Some(if has_port {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    })
}

/// The SQS server a test's queue lives on: the suite runs its core on two independent
/// implementations, which differ in account ids, queue URL shapes and error codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sqs {
    /// LocalStack, at `AWS_ENDPOINT_URL` (see [`init_env`]).
    #[default]
    LocalStack,
    /// moto's server, at `SQS2PG_MOTO_URL` (`scripts/services up` starts it on port 5000).
    Moto,
}

impl Sqs {
    /// The endpoint to give the SDK explicitly; `None` leaves it to `AWS_ENDPOINT_URL`.
    pub(crate) fn endpoint(self) -> Option<String> {
        match self {
            Sqs::LocalStack => None,
            Sqs::Moto => {
                let url = std::env::var("SQS2PG_MOTO_URL")
                    .unwrap_or_else(|_| "http://127.0.0.1:5000".into());
                if let Some(target) = host_port(&url, 5000) {
                    if let Err(e) = tcp_probe(&target) {
                        panic!("moto's server does not answer at {target} ({e}): run `scripts/services up` (or `make test`), then eval \"$(scripts/services env)\"");
                    }
                }
                Some(url)
            }
        }
    }
}
