//! Prometheus on both ends: `sqs2pg run --metrics-addr` as a scrape target, and the real
//! Prometheus server (Debian's, from `scripts/tools`) on loopback with its own config,
//! rules and storage in a temporary directory.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;

/// GET over plain HTTP/1.0; returns (status, body), or `None` if nothing answered.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The value of the unlabelled sample `name` in Prometheus text.
pub fn sample_value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The metric family names (`# TYPE` lines) of Prometheus text.
pub fn family_names(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| {
            l.strip_prefix("# TYPE ")?
                .split(' ')
                .next()
                .map(str::to_owned)
        })
        .collect()
}

/// The families `sqs2pg::telemetry::metrics::HELP` describes (what sqs2pg means to export).
pub fn described_families() -> std::collections::BTreeSet<String> {
    sqs2pg::telemetry::metrics::HELP
        .iter()
        .map(|(n, _)| n.to_string())
        .collect()
}

/// `sqs2pg run --metrics-addr` on a free port (a daemon), with `DATABASE_URL` set to
/// `database_url`; returns the process and its metrics address once `/healthz` answers.
pub async fn metrics_daemon(env: &TestEnv, database_url: &str) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Proc::spawn(
        env.cmd(&["run", "--wait-seconds", "1", "--metrics-addr", &addr])
            .env("DATABASE_URL", database_url)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_until("sqs2pg serves /healthz", Duration::from_secs(30), || {
        let up = http_get(&addr, "/healthz").is_some_and(|(s, _)| s == 200);
        async move { up }
    })
    .await;
    (child, addr)
}

/// Sends `bodies`, runs a daemon until it deleted them all, and returns its `/metrics` then.
pub async fn scrape_after_drain(env: &TestEnv, bodies: &[String]) -> String {
    env.send(bodies).await;
    let (mut child, addr) = metrics_daemon(env, &env.database_url).await;
    let want = bodies.len() as f64;
    let metrics = wait_until("every message deleted", Duration::from_secs(60), || {
        let m = http_get(&addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        async move {
            if sample_value(&m, "sqs2pg_deleted_total") == Some(want) {
                Ok(m)
            } else {
                Err(m)
            }
        }
    })
    .await;
    child.sigterm();
    child.wait_exit(Duration::from_secs(30)).await;
    metrics
}

/// A Prometheus server on loopback, killed and its directory removed on drop.
pub struct PromServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl PromServer {
    /// Starts Prometheus scraping `targets` every second and evaluating `rules` (the text of
    /// a rules file) every second; waits until its API answers.
    pub async fn start(targets: &[&str], rules: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sqs2pg-it-prom-{port}"));
        std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
        std::fs::write(dir.join("rules.yml"), rules).expect("write rules");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [rules.yml]\n\
             scrape_configs:\n  - job_name: sqs2pg\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
        let addr = format!("127.0.0.1:{port}");
        let proc = Proc::spawn(
            Command::new(prometheus())
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(log),
        );
        let server = Self {
            addr,
            dir,
            proc: Some(proc),
        };
        wait_until("Prometheus is ready", Duration::from_secs(30), || {
            let ready = http_get(&server.addr, "/-/ready").is_some_and(|(s, _)| s == 200);
            async move { ready }
        })
        .await;
        server
    }

    /// What Prometheus logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// GET `/api/v1/PATH` and its JSON answer (whatever the status: errors are JSON too).
    pub fn api(&self, path: &str) -> serde_json::Value {
        let (_, body) = http_get(&self.addr, &format!("/api/v1/{path}"))
            .unwrap_or_else(|| panic!("Prometheus does not answer /api/v1/{path}\n{}", self.log()));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/api/v1/{path}: not JSON ({e}): {body}"))
    }

    /// An instant query of `promql`.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        self.api(&format!("query?query={}", url_encode(promql)))
    }

    /// The state (`pending`, `firing`) of the alert `name`, if it is active.
    pub fn alert_state(&self, name: &str) -> Option<String> {
        let alerts = self.api("alerts");
        alerts["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .and_then(|a| a["state"].as_str().map(str::to_owned))
    }
}

impl Drop for PromServer {
    fn drop(&mut self) {
        self.proc.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes everything but unreserved characters (for a query string).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `promtool ARGS` with `input` on stdin; returns (success, stdout + stderr).
pub fn promtool_with_stdin(args: &[&str], input: &str) -> (bool, String) {
    let out = pipe_through(Command::new(promtool()).args(args), input);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
