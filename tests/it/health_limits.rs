//! The metrics/health port under abuse, against the real binary over real TCP: slow and idle
//! clients are closed, connections beyond the cap are closed at once, an oversized request
//! head is refused, memory stays flat, and running out of file descriptors neither floods
//! the log nor takes `/healthz` down for good.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqs2pg::telemetry::http::{HEADER_READ_TIMEOUT_SECS, MAX_CONNECTIONS, MAX_REQUEST_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{free_port, http_get, metrics_daemon, wait_until, Proc, TestEnv};

/// How long a test gives the server to close a connection its limits should close: well
/// past the header-read timeout (hyper's own default, 30 s, would miss it), so only a
/// server without the limit fails.
fn closing_deadline() -> Duration {
    Duration::from_secs(HEADER_READ_TIMEOUT_SECS * 4)
}

/// Clients in a flood: many, but fewer than [`MAX_CONNECTIONS`], so a probe still finds
/// a slot.
const FLOOD_CLIENTS: usize = 220;

/// How much the daemon's resident memory may grow during a flood: generous (a flood of
/// 220 grows it by about 6 MiB), and well below what buffering 220 × 384 KiB would take.
const RSS_GROWTH_BOUND_KIB: u64 = 32 * 1024;

/// The daemon's resident set size (`VmRSS` of /proc/<pid>/status), in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

fn pid(daemon: &Proc) -> u32 {
    daemon.0.as_ref().expect("a running daemon").id()
}

/// Whether `/healthz` at `addr` answers 200 (asked off the runtime's threads).
async fn healthz_ok(addr: &str) -> bool {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || http_get(&addr, "/healthz"))
        .await
        .ok()
        .flatten()
        .is_some_and(|(s, _)| s == 200)
}

/// Reads until the server closes the connection (EOF or a reset); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// A client that sends a request line and 8 KiB of a header at once, then one more byte
/// of it every 500 ms, never finishing the head; returns when the server closes on it.
async fn trickle_headers(addr: String, connected: Arc<AtomicUsize>) {
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}",
        "a".repeat(8192)
    );
    // A write refused this early means it was closed already, as the loop will see.
    let _ = stream.write_all(head.as_bytes()).await;
    connected.fetch_add(1, Ordering::SeqCst);
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            r = stream.read(&mut buf) => if !matches!(r, Ok(1..)) { break },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if stream.write_all(b"a").await.is_err() { break }
            }
        }
    }
}

/// A client that sends 384 KiB of a request head that never ends (below hyper's default
/// buffer limit, far above [`MAX_REQUEST_BYTES`]); returns when the server closes on it.
async fn oversized_head(addr: String, connected: Arc<AtomicUsize>) {
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    connected.fetch_add(1, Ordering::SeqCst);
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}",
        "a".repeat(384 * 1024)
    );
    // Refused part way (the server closes at its limit): as expected.
    let _ = stream.write_all(head.as_bytes()).await;
    read_until_closed(&mut stream).await;
}

/// `clients` copies of `client` against `addr`, each on a task of its own; returns how many
/// have connected and how many have been closed by the server, counters that grow.
fn flood<F, Fut>(addr: &str, clients: usize, client: F) -> (Arc<AtomicUsize>, Arc<AtomicUsize>)
where
    F: Fn(String, Arc<AtomicUsize>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (connected, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for _ in 0..clients {
        let (run, closed) = (client(addr.to_owned(), connected.clone()), closed.clone());
        tokio::spawn(async move {
            run.await;
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
    (connected, closed)
}

/// Waits until `counter` reaches `n` within `limit`.
async fn wait_count(what: &str, counter: &AtomicUsize, n: usize, limit: Duration) {
    wait_until(what, limit, || {
        let seen = counter.load(Ordering::SeqCst);
        async move { (seen == n).then_some(()).ok_or(seen) }
    })
    .await
}

/// Waits until every client of a flood is closed (by the closing deadline), sampling the
/// daemon's RSS meanwhile; returns the highest sample.
async fn peak_rss_until_closed(daemon: &Proc, closed: &AtomicUsize, clients: usize) -> u64 {
    let mut peak = rss_kib(pid(daemon));
    wait_until("every flooding client closed", closing_deadline(), || {
        peak = peak.max(rss_kib(pid(daemon)));
        let seen = closed.load(Ordering::SeqCst);
        async move { (seen == clients).then_some(()).ok_or(seen) }
    })
    .await;
    peak
}

/// 220 clients trickling their headers are all closed within the deadline; meanwhile
/// `/healthz` answers 200 and the daemon's memory stays within a generous bound.
#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_closed_while_healthz_answers_and_memory_stays_flat() {
    let env = TestEnv::new().await;
    let (daemon, addr) = metrics_daemon(&env, &env.database_url).await;
    let before = rss_kib(pid(&daemon));
    let (connected, closed) = flood(&addr, FLOOD_CLIENTS, trickle_headers);
    let all_in = Duration::from_secs(30);
    wait_count(
        "every slow client connected",
        &connected,
        FLOOD_CLIENTS,
        all_in,
    )
    .await;
    assert!(healthz_ok(&addr).await, "/healthz during the flood");
    let peak = peak_rss_until_closed(&daemon, &closed, FLOOD_CLIENTS).await;
    assert!(
        peak.saturating_sub(before) < RSS_GROWTH_BOUND_KIB,
        "RSS grew from {before} KiB to {peak} KiB with {FLOOD_CLIENTS} slow clients"
    );
}

/// 220 clients each sending 384 KiB of a head that never ends are all closed, and the
/// daemon does not buffer what they send: its memory stays within the bound.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_heads_leave_memory_flat() {
    let env = TestEnv::new().await;
    let (daemon, addr) = metrics_daemon(&env, &env.database_url).await;
    let before = rss_kib(pid(&daemon));
    let (_, closed) = flood(&addr, FLOOD_CLIENTS, oversized_head);
    let peak = peak_rss_until_closed(&daemon, &closed, FLOOD_CLIENTS).await;
    assert!(
        peak.saturating_sub(before) < RSS_GROWTH_BOUND_KIB,
        "RSS grew from {before} KiB to {peak} KiB with {FLOOD_CLIENTS} oversized heads"
    );
}

/// A kept-alive connection that asked once and then sits idle is closed by the server.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed() {
    let env = TestEnv::new().await;
    let (_daemon, addr) = metrics_daemon(&env, &env.database_url).await;
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send a request");
    let got = tokio::time::timeout(closing_deadline(), read_until_closed(&mut stream))
        .await
        .expect("the idle connection was not closed by the deadline");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

/// A request head longer than [`MAX_REQUEST_BYTES`] is answered 431 and not served.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_over_the_limit_is_refused() {
    let env = TestEnv::new().await;
    let (_daemon, addr) = metrics_daemon(&env, &env.database_url).await;
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let pad = "a".repeat(MAX_REQUEST_BYTES * 4);
    let head =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: {pad}\r\n\r\n");
    // The server may close before it has read everything: a failed write is expected.
    let _ = stream.write_all(head.as_bytes()).await;
    let got = tokio::time::timeout(closing_deadline(), read_until_closed(&mut stream))
        .await
        .expect("the connection was not closed by the deadline");
    let got = String::from_utf8_lossy(&got);
    assert!(
        !got.contains(" 200 "),
        "an oversized head was served: {got}"
    );
}

/// With [`MAX_CONNECTIONS`] silent clients connected, one more is closed without an
/// answer; once they are gone (closed by the header-read timeout) `/healthz` answers again.
#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_cap_are_closed_at_once() {
    let env = TestEnv::new().await;
    let (_daemon, addr) = metrics_daemon(&env, &env.database_url).await;
    let mut held = Vec::with_capacity(MAX_CONNECTIONS);
    for _ in 0..MAX_CONNECTIONS {
        held.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let mut extra = TcpStream::connect(&addr).await.expect("connect");
    // Written before the server sees it; it is closed unread, so this may fail: fine.
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let got = tokio::time::timeout(closing_deadline(), read_until_closed(&mut extra))
        .await
        .expect("the connection over the cap was not closed by the deadline");
    assert!(
        got.is_empty(),
        "a connection over the cap was served: {}",
        String::from_utf8_lossy(&got)
    );
    drop(held);
    wait_until("/healthz answers again", closing_deadline(), || {
        healthz_ok(&addr)
    })
    .await;
}

/// Open files the daemon of the accept-storm test may hold: enough to start and poll (it
/// holds about 30), too few for the connections the test opens (twice as many), so
/// `accept` fails with EMFILE. Twice, not more: the rest wait in the listen backlog (128),
/// which must not overflow, or the test's own connects would time out.
const STORM_FD_LIMIT: u32 = 64;

/// Lines of the daemon's log about failed accepts (the metrics listener's only warnings).
fn accept_warnings(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("metrics listener"))
        .count()
}

/// The daemon run under `prlimit --nofile=STORM_FD_LIMIT` with its log in `log`; its
/// metrics address once `/healthz` answers.
async fn daemon_short_of_files(env: &TestEnv, log: &std::path::Path) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let run = env.cmd(&["run", "--wait-seconds", "1", "--metrics-addr", &addr]);
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--nofile={STORM_FD_LIMIT}:{STORM_FD_LIMIT}"))
        .arg("--")
        .arg(run.get_program())
        .args(run.get_args());
    for (k, v) in run.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let file = std::fs::File::create(log).expect("daemon log");
    let daemon = Proc::spawn(cmd.stdout(std::process::Stdio::null()).stderr(file));
    wait_until("sqs2pg serves /healthz", Duration::from_secs(30), || {
        let up = http_get(&addr, "/healthz").is_some_and(|(s, _)| s == 200);
        async move { up }
    })
    .await;
    (daemon, addr)
}

fn read_log(log: &std::path::Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Out of file descriptors, a flood of connections makes `accept` fail over and over: the
/// log gets one warning (at most one a minute), not one a failure, and once the flood is
/// closed `/healthz` answers again.
#[tokio::test(flavor = "multi_thread")]
async fn an_accept_error_storm_does_not_flood_the_log() {
    let env = TestEnv::new().await;
    let log = std::env::temp_dir().join(format!("sqs2pg-it-storm-{}.log", env.queue_name));
    let (mut daemon, addr) = daemon_short_of_files(&env, &log).await;
    let mut flood = Vec::new();
    for _ in 0..(STORM_FD_LIMIT * 2) {
        let stream = TcpStream::connect(&addr).await;
        flood.push(stream.unwrap_or_else(|e| panic!("connect: {e}\n{}", read_log(&log))));
    }
    wait_until("accept fails (EMFILE)", Duration::from_secs(30), || {
        let n = accept_warnings(&read_log(&log));
        async move { n > 0 }
    })
    .await;
    // The storm window: accept keeps failing while the flood holds every descriptor.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(flood);
    wait_until("/healthz answers again", closing_deadline(), || {
        healthz_ok(&addr)
    })
    .await;
    assert_eq!(
        daemon.try_exit_code(),
        None,
        "the daemon died:\n{}",
        read_log(&log)
    );
    let text = read_log(&log);
    let warnings = accept_warnings(&text);
    let start: String = text.chars().take(2000).collect();
    assert!(
        warnings <= 2,
        "{warnings} lines about accept: flooded:\n{start}"
    );
    let _ = std::fs::remove_file(&log);
}
