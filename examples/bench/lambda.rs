//! The Lambda section: `sqs2pg-lambda` against the function a user would write instead
//! (examples/bench/python_lambda: Powertools' `BatchProcessor`, psycopg 3 row by row,
//! AES-SIV tokens from `cryptography`), each under the real Lambda Runtime API (cargo-lambda's
//! emulator, `cargo lambda watch --only-lambda-apis`) and invoked through its Invoke API, one
//! invocation at a time, at 10 records per event (AWS's default batch size for SQS) and 100.
//!
//! Per function and size: CPU per record (the function process's CPU time over the timed
//! invocations, from `/proc/PID/task/*/schedstat`, so the emulator and this client are not
//! counted), invocations per second at one concurrency, the median invocation's wall, cold
//! start (process start to the first answer) and peak RSS. Both functions get the same events
//! on databases of their own; their rows, tokens included, must come out identical.

use std::process::{Child, Stdio};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};

use super::*;

/// Records per event: AWS's default batch size for an SQS event source mapping, and a larger one.
const RECORDS: [usize; 2] = [10, 100];

/// Invocations before the timed ones: connections made, caches filled, code paged in.
const WARMUP: usize = 20;

/// The function name `cargo lambda watch` serves on the bare `/.rt` path.
const FUNCTION: &str = "_";

#[derive(Clone, Copy, PartialEq)]
enum Function {
    Sqs2pg,
    Python,
}

/// What one run of a function measured.
#[derive(Clone, Debug)]
struct Run {
    cpu_per_record_us: f64,
    per_sec: f64,
    p50_ms: f64,
    cold_ms: f64,
    peak_rss_kb: u64,
}

impl Run {
    /// The better of two runs, figure by figure (noise only ever adds).
    fn best(self, o: Run) -> Run {
        Run {
            cpu_per_record_us: self.cpu_per_record_us.min(o.cpu_per_record_us),
            per_sec: self.per_sec.max(o.per_sec),
            p50_ms: self.p50_ms.min(o.p50_ms),
            cold_ms: self.cold_ms.min(o.cold_ms),
            peak_rss_kb: self.peak_rss_kb.min(o.peak_rss_kb),
        }
    }
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// cargo-lambda's Runtime API emulator on a free loopback port.
struct Emulator {
    port: u16,
    _proc: Killed,
}

impl Emulator {
    async fn start(dir: &Path) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let tool = std::env::var_os("SQS2PG_CARGO_LAMBDA").context(
            "SQS2PG_CARGO_LAMBDA is not set: run `eval \"$(scripts/tools env)\"` (cargo-lambda's emulator)",
        )?;
        let log = std::fs::File::create(dir.join(format!("watch-{port}.log")))?;
        let child = Command::new(tool)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string(), "--timeout", "120"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start cargo lambda watch")?;
        let emulator = Self {
            port,
            _proc: Killed(child),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("cargo lambda watch did not listen on {port} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(emulator)
    }
}

/// One SQS event of `bodies`, message ids unique to `(n, i)`, as the event source mapping
/// delivers it.
fn event(bodies: &[String], n: usize) -> Bytes {
    let sent_ms = chrono::Utc::now().timestamp_millis() - 1000;
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            serde_json::json!({
                "messageId": format!("{:08x}-lambda-{n}-{i}", std::process::id()),
                "receiptHandle": format!("handle-{n}-{i}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent_ms.to_string(),
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": (sent_ms + 5).to_string()
                },
                "messageAttributes": {},
                "md5OfBody": "not-checked",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:login-queue",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    Bytes::from(serde_json::json!({ "Records": records }).to_string())
}

/// Sends one event through the emulator's Invoke API; fails unless every record committed.
async fn invoke(
    client: &Client<HttpConnector, Full<Bytes>>,
    port: u16,
    event: Bytes,
) -> Result<()> {
    let req = hyper::Request::post(format!(
        "http://127.0.0.1:{port}/2015-03-31/functions/{FUNCTION}/invocations"
    ))
    .header("content-type", "application/json")
    .body(Full::new(event))?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{status}: {}", String::from_utf8_lossy(&body)))?;
    match answer["batchItemFailures"].as_array() {
        Some(failed) if failed.is_empty() => Ok(()),
        _ => bail!("the function did not commit the whole event: {answer}"),
    }
}

/// The function process's CPU time so far, in nanoseconds: every thread's, from the
/// scheduler's own accounting (nanoseconds; `/proc/PID/stat` counts 10 ms ticks).
fn cpu_ns(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .context("schedstat")?;
    }
    Ok(total)
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The function's process, attached to the emulator on `port` as Lambda would start it.
fn spawn(env: &Env, f: Function, port: u16, db_url: &str, dir: &Path) -> Result<Killed> {
    let mut cmd = match f {
        // SQS2PG_BENCH_LAMBDA_BIN: another build of the function (an earlier commit's, say).
        Function::Sqs2pg => Command::new(
            std::env::var_os("SQS2PG_BENCH_LAMBDA_BIN")
                .map_or_else(|| env.bin.with_file_name("sqs2pg-lambda"), PathBuf::from),
        ),
        Function::Python => {
            let dir = env.root.join("examples/bench/python_lambda");
            let mut c = Command::new(python_lambda_venv(&env.root)?);
            c.arg("runtime.py").current_dir(dir);
            c
        }
    };
    let log = std::fs::File::create(dir.join(format!("function-{port}.log")))?;
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api(f, port))
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("POWERTOOLS_SERVICE_NAME", "bench")
        .env("DATABASE_URL", db_url)
        .env("SQS2PG_KEYS", KEYS)
        // Not warn: the emulator's deadline is a placeholder in 1970, which the function warns
        // about once per invocation, a log line Lambda's real deadlines never cause.
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(log);
    Ok(Killed(cmd.spawn().context("start the function")?))
}

/// `AWS_LAMBDA_RUNTIME_API` as each runtime client reads it: the Rust one parses a URL, the
/// Python one (runtime.py) takes it as Lambda sets it (`host:port`).
fn runtime_api(f: Function, port: u16) -> String {
    match f {
        Function::Sqs2pg => format!("http://127.0.0.1:{port}/.rt"),
        Function::Python => format!("127.0.0.1:{port}/.rt"),
    }
}

/// One run: a fresh emulator and database, the function started cold, the first event
/// timed from process start, [`WARMUP`] more, then `events` timed one after the other.
async fn run_once(
    env: &Env,
    f: Function,
    events: &[Bytes],
    records: usize,
    db: &str,
) -> Result<Run> {
    let dir = std::env::temp_dir().join(format!("sqs2pg-bench-lambda-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let emulator = Emulator::start(&dir).await?;
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let cold = Instant::now();
    let mut function = spawn(env, f, emulator.port, db, &dir)?;
    let pid = function.0.id();
    invoke(&client, emulator.port, events[0].clone()).await?;
    let cold_ms = cold.elapsed().as_secs_f64() * 1e3;
    let (warm, timed) = events[1..].split_at(WARMUP.min(events.len() - 1));
    for e in warm {
        invoke(&client, emulator.port, e.clone()).await?;
    }
    let cpu_before = cpu_ns(pid)?;
    let started = Instant::now();
    let mut walls = Vec::with_capacity(timed.len());
    for e in timed {
        let t = Instant::now();
        invoke(&client, emulator.port, e.clone()).await?;
        walls.push(t.elapsed());
    }
    let wall = started.elapsed();
    let cpu = cpu_ns(pid)? - cpu_before;
    let peak_rss_kb = peak_rss_kb(pid);
    if let Ok(Some(status)) = function.0.try_wait() {
        bail!("the function exited during the run ({status})");
    }
    walls.sort();
    let n = timed.len().max(1);
    Ok(Run {
        cpu_per_record_us: cpu as f64 / 1e3 / (n * records) as f64,
        per_sec: n as f64 / wall.as_secs_f64(),
        p50_ms: walls.get(n / 2).map_or(0.0, |w| w.as_secs_f64() * 1e3),
        cold_ms,
        peak_rss_kb,
    })
}

/// The rows of `user_logins`, each as one line of text, sorted.
async fn rows_of(url: &str) -> Result<Vec<String>> {
    let c = pg(url).await?;
    let rows = c
        .query(
            "SELECT concat_ws('|', user_id, device_type, masked_ip, masked_device_id, locale,
                    app_version, create_date) AS r FROM user_logins ORDER BY r",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Both functions at `records` per event, rounds alternating, each figure its best round;
/// the rows the two made compared (the last round's).
async fn compare(env: &Env, sizes: Sizes, records: usize) -> Result<(Run, Run, usize, usize)> {
    let n = WARMUP + 1 + sizes.lambda_invocations;
    let all = generate(SynthOptions {
        count: n * records,
        duplicate_rate: 0.0,
        // Malformed bodies would be quarantined by one and failed by the other.
        malformed_rate: 0.0,
        seed: 31,
    });
    let events: Vec<Bytes> = all
        .chunks(records)
        .enumerate()
        .map(|(i, b)| event(b, i))
        .collect();
    let (mut ours, mut theirs): (Option<Run>, Option<Run>) = (None, None);
    let (mut same, mut total) = (0, 0);
    for round in 0..sizes.e2e_rounds {
        let url = env.fresh_db(&format!("lambda{records}r{round}")).await?;
        let run = run_once(env, Function::Sqs2pg, &events, records, &url).await?;
        ours = Some(match ours {
            Some(b) => b.best(run),
            None => run,
        });
        let py_url = env.fresh_db(&format!("lambdapy{records}r{round}")).await?;
        let run = run_once(env, Function::Python, &events, records, &py_url).await?;
        theirs = Some(match theirs {
            Some(b) => b.best(run),
            None => run,
        });
        let (a, b) = (rows_of(&url).await?, rows_of(&py_url).await?);
        total = a.len().max(b.len());
        same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    }
    match (ours, theirs) {
        (Some(o), Some(t)) => Ok((o, t, same, total)),
        _ => bail!("no Lambda round ran"),
    }
}

pub(super) async fn bench_lambda(env: &Env, sizes: Sizes) -> Result<Vec<Line>> {
    let mut lines = Vec::new();
    for records in RECORDS {
        let (o, t, same, total) = compare(env, sizes, records).await?;
        if same != total || total != (WARMUP + 1 + sizes.lambda_invocations) * records {
            bail!("the two functions' rows differ: {same} of {total} identical");
        }
        let what = |m: &str| format!("Lambda, {records} records per event: {m}");
        let ratio = |a: f64, b: f64| format!("{:.1}×", a / b);
        lines.push(line(
            &what("CPU per record (function process)"),
            format!("{:.1} µs", o.cpu_per_record_us),
            format!("{:.1} µs (Python Powertools)", t.cpu_per_record_us),
            ratio(t.cpu_per_record_us, o.cpu_per_record_us),
            if records == 10 { "≥ 3×" } else { "" },
        ));
        lines.push(line(
            &what("invocations per second, one at a time (Invoke API)"),
            format!("{:.0}/s, p50 {:.2} ms", o.per_sec, o.p50_ms),
            format!("{:.0}/s, p50 {:.2} ms", t.per_sec, t.p50_ms),
            ratio(o.per_sec, t.per_sec),
            if records == 10 {
                "≥ 1× (no more wall)"
            } else {
                ""
            },
        ));
        lines.push(line(
            &what("cold start (process start to first answer)"),
            format!("{:.0} ms", o.cold_ms),
            format!("{:.0} ms", t.cold_ms),
            ratio(t.cold_ms, o.cold_ms),
            "",
        ));
        lines.push(line(
            &what("peak RSS"),
            format!("{:.1} MB", o.peak_rss_kb as f64 / 1024.0),
            format!("{:.1} MB", t.peak_rss_kb as f64 / 1024.0),
            ratio(t.peak_rss_kb as f64, o.peak_rss_kb as f64),
            "",
        ));
        lines.push(line(
            &what("rows and tokens identical to the Python function's"),
            format!("{same}/{total}"),
            String::new(),
            String::new(),
            "all",
        ));
    }
    Ok(lines)
}

/// The Python function's venv (examples/bench/python_lambda/requirements.txt, every package
/// pinned), made once; returns its interpreter.
fn python_lambda_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/bench-lambda-venv");
    let py = venv.join("bin/python");
    let req = root.join("examples/bench/python_lambda/requirements.txt");
    let stamp = venv.join(".installed");
    let wanted = std::fs::read_to_string(&req)?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(py);
    }
    eprintln!("building the Lambda section's Python venv (Powertools, psycopg 3, cryptography)");
    let ok = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()?
        .success()
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--only-binary", ":all:", "-r"])
            .arg(&req)
            .status()?
            .success();
    if !ok {
        bail!("could not build the Python venv from {}", req.display());
    }
    std::fs::write(&stamp, wanted)?;
    Ok(py)
}
