//! `make bench`: one table of ratios, every figure measured in the same run, on the same
//! machine, on the same rows. Needs the local services (`scripts/services up`).
//!
//! ```text
//! bench [--smoke] [--out DIR] [--only S,S]          everything (or the sections named:
//!                                                   transform,sink,mapped,e2e,drain,
//!                                                   lambda,scaling,rss,big,stub,
//!                                                   forget);
//!                                                   writes DIR/results.md, scaling.csv;
//!                                                   with SQS2PG_BENCH_BASELINE_BIN=PATH, e2e
//!                                                   also drains with that earlier build
//! bench ceiling --queue-url U --pollers N           child: SDK receive + delete only
//! ```
//!
//! Consumers run as child processes so each one's CPU time and peak RSS come from
//! `wait4(2)` for that process alone.

#[path = "bench/baseline.rs"]
mod baseline;
#[path = "bench/big.rs"]
mod big;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqs2pg::config::{DbConfig, SqsConfig};
use sqs2pg::db::Sink;
use sqs2pg::decode::Limits;
use sqs2pg::mask::{Keyring, Masker};
use sqs2pg::pii::Pii;
use sqs2pg::source::{Received, Source};
use sqs2pg::synth::{generate, SynthOptions};
use sqs2pg::transform::reference::hand_written;
use sqs2pg::transform::{Recipe, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "bench/drain.rs"]
mod drain;
#[path = "bench/forget.rs"]
mod forget;
#[path = "bench/lambda.rs"]
mod lambda;
#[path = "bench/mapped.rs"]
mod mapped;

// The allocator sqs2pg ships with, so that the SDK-only floor and the transform figures are
// measured on the same footing as the daemon.
#[global_allocator]
static ALLOC: sqs2pg::alloc::Split = sqs2pg::alloc::Split;

const KEYS: &str =
    "b1=KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKg==";

/// Sizes of one run.
#[derive(Clone, Copy)]
struct Sizes {
    transform: usize,
    sink_rows: usize,
    /// Alternating rounds of the sink measurements; the best of each is reported.
    sink_rounds: usize,
    /// Alternating rounds of the ceiling client and sqs2pg; the best of each is reported.
    e2e_rounds: usize,
    /// Stub messages per poller in the stub scaling series (about 3 s at linear speed).
    stub_per_poller: u64,
    ledger_prefill: u64,
    backlog: usize,
    scaling_backlog: usize,
    scaling_pollers: &'static [usize],
    rss_backlog: usize,
    /// 256 KiB rejects and 1 MiB padded rows of the byte-budget section.
    big_rejects: usize,
    big_rows: usize,
    steady_secs: u64,
    stub_messages: u64,
    /// The backlog of the drain section (sqs2pg and the Python consumer each drain one).
    drain_backlog: usize,
    /// How long the idle daemons of the drain section run.
    idle_secs: u64,
    /// Timed invocations per function and event size in the Lambda section.
    lambda_invocations: usize,
    /// EventBridge order records per loader in the mapped sink section.
    mapped_rows: usize,
    /// Rows of the table the forget section erases one subject from (10 per subject).
    forget_rows: usize,
}

const FULL: Sizes = Sizes {
    transform: 200_000,
    sink_rows: 200_000,
    ledger_prefill: 10_000_000,
    sink_rounds: 3,
    e2e_rounds: 3,
    stub_per_poller: 2_000,
    backlog: 30_000,
    scaling_backlog: 4_000,
    scaling_pollers: &[1, 4, 16, 32],
    rss_backlog: 200_000,
    big_rejects: 2_000,
    big_rows: 300,
    steady_secs: 20,
    stub_messages: 300_000,
    drain_backlog: 10_000,
    idle_secs: 61,
    lambda_invocations: 400,
    mapped_rows: 200_000,
    forget_rows: 10_000_000,
};

const SMOKE: Sizes = Sizes {
    transform: 5_000,
    sink_rows: 3_000,
    ledger_prefill: 10_000,
    sink_rounds: 1,
    e2e_rounds: 1,
    stub_per_poller: 200,
    backlog: 600,
    scaling_backlog: 200,
    scaling_pollers: &[1, 4],
    rss_backlog: 1_000,
    big_rejects: 20,
    big_rows: 5,
    steady_secs: 2,
    stub_messages: 5_000,
    drain_backlog: 300,
    idle_secs: 3,
    lambda_invocations: 5,
    mapped_rows: 300,
    forget_rows: 100_000,
};

fn main() -> Result<()> {
    ALLOC.tune();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("ceiling") => {
            let url = flag(&args, "--queue-url").context("--queue-url")?;
            let pollers: usize = flag(&args, "--pollers")
                .unwrap_or_else(|| "8".into())
                .parse()?;
            let n = rt.block_on(ceiling(url, pollers))?;
            println!("{n}");
            Ok(())
        }
        _ => {
            let smoke = args.iter().any(|a| a == "--smoke");
            let out = PathBuf::from(flag(&args, "--out").unwrap_or_else(|| "target/bench".into()));
            std::fs::create_dir_all(&out)?;
            let only = flag(&args, "--only");
            rt.block_on(run_all(
                if smoke { SMOKE } else { FULL },
                smoke,
                only.as_deref(),
                &out,
            ))
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// One line of the result table.
struct Line {
    what: String,
    value: String,
    reference: String,
    ratio: String,
    target: String,
}

fn line(what: &str, value: String, reference: String, ratio: String, target: &str) -> Line {
    Line {
        what: what.into(),
        value,
        reference,
        ratio,
        target: target.into(),
    }
}

/// The harness's sections, in run order; `--only a,b` runs a subset.
const SECTIONS: [&str; 11] = [
    "transform",
    "sink",
    "mapped",
    "e2e",
    "drain",
    "lambda",
    "scaling",
    "rss",
    "big",
    "stub",
    // Last: its 10M-row fill leaves checkpoints and autovacuum work behind that would slow
    // whatever ran after it.
    "forget",
];

async fn run_all(sizes: Sizes, smoke: bool, only: Option<&str>, out: &Path) -> Result<()> {
    let wanted: Vec<&str> = match only {
        Some(list) => list.split(',').map(str::trim).collect(),
        None => SECTIONS.to_vec(),
    };
    if let Some(bad) = wanted.iter().find(|s| !SECTIONS.contains(s)) {
        anyhow::bail!(
            "--only: unknown section {bad:?}; the sections are {}",
            SECTIONS.join(",")
        );
    }
    let run = |s: &str| wanted.contains(&s);
    let env = Env::new(smoke).await?;
    let mut lines = Vec::new();
    if run("transform") {
        eprintln!(
            "== transform: the login load (vs the hand-written one), a mapped EventBridge order"
        );
        let (login, login_rate) = bench_transform(sizes.transform);
        lines.push(login);
        lines.push(mapped::bench_transform_mapped(&env, sizes.transform, login_rate).await?);
    }
    if run("sink") {
        eprintln!("== sink vs raw COPY");
        lines.extend(bench_sink(&env, sizes).await?);
        lines.push(bench_statements(&env, sizes).await?);
    }
    if run("mapped") {
        eprintln!("== mapped sink: the order route vs raw COPY; keyed vs plain");
        lines.extend(mapped::bench_sink_mapped(&env, sizes).await?);
    }
    if run("e2e") {
        eprintln!("== end to end vs SQS ceiling vs Python");
        lines.extend(bench_end_to_end(&env, sizes).await?);
        if let Some(bin) = std::env::var_os(baseline::BASELINE_VAR) {
            eprintln!("== end to end vs the previous binary");
            lines.push(baseline::bench_baseline(&env, sizes, Path::new(&bin)).await?);
        }
    }
    if run("drain") {
        eprintln!("== drain of a backlog vs Python; SQS requests under load and idle");
        lines.extend(drain::bench_drain(&env, sizes).await?);
    }
    if run("lambda") {
        eprintln!("== the Lambda function vs a Python Powertools function, under the Runtime API");
        lines.extend(lambda::bench_lambda(&env, sizes).await?);
    }
    if run("scaling") {
        eprintln!("== scaling with injected latency");
        let (scaling_lines, csv) = bench_scaling(&env, sizes).await?;
        lines.extend(scaling_lines);
        std::fs::write(out.join("scaling.csv"), &csv)?;
    }
    if run("rss") {
        eprintln!("== peak RSS and steady-state latency");
        lines.extend(bench_rss_and_latency(&env, sizes).await?);
    }
    if run("big") {
        eprintln!("== peak RSS with large bodies (the byte budget)");
        lines.extend(big::bench_big_rss(&env, sizes).await?);
    }
    if run("stub") {
        eprintln!("== consumer ceiling with a constant-time SQS stub");
        lines.push(bench_stub(&env, sizes).await?);
    }
    if run("forget") {
        eprintln!(
            "== forget: one subject out of a big indexed table vs the same without the index"
        );
        lines.push(forget::bench_forget(&env, sizes.forget_rows).await?);
    }

    let mut table = String::from(
        "| measurement | sqs2pg | reference | ratio | target |\n|---|---|---|---|---|\n",
    );
    for l in &lines {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            l.what, l.value, l.reference, l.ratio, l.target
        ));
    }
    let header = format!(
        "sqs2pg bench{} on {} ({} cores), {}\n\n",
        if smoke { " (smoke sizes)" } else { "" },
        hostname(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!("{header}{table}");
    std::fs::write(out.join("results.md"), format!("{header}{table}"))?;
    if run("scaling") {
        if let Err(e) = env.plot(out) {
            eprintln!("plot skipped: {e:#}");
        }
    }
    env.cleanup().await;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or("this machine".into(), |h| h.trim().to_string())
}

// ---------------------------------------------------------------- environment

struct Env {
    admin_url: String,
    db_name: String,
    sqs: Source,
    bin: PathBuf,
    python: Option<PathBuf>,
    root: PathBuf,
}

impl Env {
    async fn new(smoke: bool) -> Result<Self> {
        let admin_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
            bail!("AWS_ENDPOINT_URL is not set: run `eval \"$(scripts/services env)\"` (the bench never touches real AWS)");
        }
        let db_name = format!("sqs2pg_bench_{}", std::process::id());
        let sqs = Source::connect(&SqsConfig {
            queue_url: Some("unused".into()),
            queue_name: "unused".into(),
            framing: Default::default(),
            endpoint_url: None,
        })
        .await?;
        let exe = std::env::current_exe()?;
        // target/<profile>/examples/bench → target/<profile>/sqs2pg
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("sqs2pg"))
            .filter(|p| p.exists())
            .context("the sqs2pg binary beside the examples directory (cargo build first)")?;
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = python_venv(&root, smoke)?;
        Ok(Self {
            admin_url,
            db_name,
            sqs,
            bin,
            python,
            root,
        })
    }

    async fn fresh_db(&self, name: &str) -> Result<String> {
        let admin = pg(&self.admin_url).await?;
        let db = format!("{}_{name}", self.db_name);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await?;
        let url = db_for(&self.admin_url, &db);
        let mut c = pg(&url).await?;
        sqs2pg::db::schema::migrate(&mut c, false).await?;
        Ok(url)
    }

    async fn queue(&self, name: &str) -> Result<Source> {
        let q = format!("bench-{}-{name}", std::process::id());
        let url = self
            .sqs
            .client()
            .create_queue()
            .queue_name(&q)
            .send()
            .await?
            .queue_url
            .context("queue url")?;
        Ok(Source::connect(&SqsConfig {
            queue_url: Some(url),
            queue_name: q,
            framing: Default::default(),
            endpoint_url: None,
        })
        .await?)
    }

    async fn drop_queue(&self, q: &Source) {
        let _ = q
            .client()
            .delete_queue()
            .queue_url(q.queue_url())
            .send()
            .await;
    }

    fn plot(&self, out: &Path) -> Result<()> {
        let Some(py) = &self.python else {
            bail!("no Python venv")
        };
        let status = Command::new(py)
            .arg(self.root.join("bench/plot.py"))
            .arg(out.join("scaling.csv"))
            .arg(out.join("scaling.png"))
            .status()?;
        if !status.success() {
            bail!("plot.py failed");
        }
        Ok(())
    }

    async fn cleanup(&self) {
        if let Ok(admin) = pg(&self.admin_url).await {
            let rows = admin
                .query(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1",
                    &[&format!("{}%", self.db_name)],
                )
                .await
                .unwrap_or_default();
            for r in rows {
                let name: String = r.get(0);
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
    }
}

/// The bench's Python venv (boto3, psycopg2, matplotlib), made once.
fn python_venv(root: &Path, smoke: bool) -> Result<Option<PathBuf>> {
    let venv = root.join("target/bench-venv");
    let py = venv.join("bin/python");
    let req = root.join("bench/requirements.txt");
    let stamp = venv.join(".installed");
    let wanted = std::fs::read_to_string(&req)?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!(
            "building the bench's Python venv (boto3, psycopg2-binary{})",
            if smoke { "" } else { ", matplotlib" }
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "-r"])
                .arg(&req)
                .status()?
                .success();
        if !ok {
            bail!("could not build the Python venv from bench/requirements.txt");
        }
        std::fs::write(&stamp, wanted)?;
    }
    Ok(Some(py))
}

async fn pg(url: &str) -> Result<tokio_postgres::Client> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(c)
}

fn db_for(base: &str, db: &str) -> String {
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let head = base.split('?').next().unwrap_or(base);
    match head[scheme_end..].find('/') {
        Some(i) => format!("{}/{db}", &head[..scheme_end + i]),
        None => format!("{head}/{db}"),
    }
}

fn keyring() -> Keyring {
    Keyring::parse(KEYS).expect("bench key")
}

fn bodies(n: usize, seed: u64) -> Vec<String> {
    generate(SynthOptions {
        count: n,
        duplicate_rate: 0.0,
        malformed_rate: 0.01,
        seed,
    })
}

fn received(bodies: &[String]) -> Vec<Received> {
    bodies
        .iter()
        .enumerate()
        .map(|(i, b)| Received {
            message_id: format!("{:08x}-bench-{i}", std::process::id()),
            receipt_handle: String::new(),
            body: Pii::new(b.clone()),
            sent_at: Some(chrono::Utc::now()),
            receive_count: Some(1),
            framing: Default::default(),
            extra: Default::default(),
        })
        .collect()
}

// ---------------------------------------------------------------- 1. transform

/// The shortest of four passes of `pass` (the first warms up) on this thread.
fn fastest(mut pass: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..4 {
        let started = Instant::now();
        pass();
        best = best.min(started.elapsed());
    }
    best
}

/// The login load's transform (the built-in login mapping, as `run` makes login records)
/// beside the hand-written login transform it replaced, on the same bodies and thread; its
/// line and its rate (msgs/s), which the mapped rows compare with.
fn bench_transform(n: usize) -> (Line, f64) {
    let msgs = received(&bodies(n, 1));
    let keys = keyring();
    let mut masker = Masker::new(&keys);
    let recipe = login_recipe(&keys);
    let limits = Limits::default();
    let ours = fastest(|| {
        for m in &msgs {
            std::hint::black_box(sqs2pg::transform::transform(m, &recipe, &mut masker));
        }
    });
    let hand = fastest(|| {
        for m in &msgs {
            std::hint::black_box(hand_written(m, &limits, &mut masker));
        }
    });
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let l = line(
        "transform of the login load (the built-in login mapping: decode + validate + mask), one core",
        format!(
            "{:.0} msgs/s, {:.0} ns/msg",
            rate(ours),
            ours.as_nanos() as f64 / n as f64
        ),
        format!("hand-written login transform {:.0} msgs/s", rate(hand)),
        format!("{:.2}×", rate(ours) / rate(hand)),
        "≥ 400k msgs/s",
    );
    (l, rate(ours))
}

// ---------------------------------------------------------------- 2. sink

async fn records(n: usize) -> Vec<Record> {
    let msgs = received(&bodies(n, 2));
    let keys = keyring();
    let mut masker = Masker::new(&keys);
    let recipe = login_recipe(&keys);
    msgs.iter()
        .map(|m| Record {
            message_id: m.message_id.clone(),
            outcome: sqs2pg::transform::transform(m, &recipe, &mut masker).outcome,
        })
        .collect()
}

/// What `run` makes login records by on the contract's `user_logins`: the built-in login
/// mapping compiled for it.
fn login_recipe(keys: &Keyring) -> Recipe {
    let live =
        sqs2pg::mapping::login_shape::shared_for(&Limits::default(), keys.writing_kid().len());
    Recipe::Login(live.expect("the login mapping compiles for the contract's table"))
}

/// Rows per second of `writers` concurrent tasks, each taking the next 1000 records from a
/// shared queue and handing them to its own `load`er.
async fn concurrent_rate<L, F>(
    recs: &[Record],
    writers: usize,
    mut connect: impl FnMut() -> F,
) -> Result<f64>
where
    F: std::future::Future<Output = Result<L>>,
    L: Loader + Send + 'static,
{
    let chunks: Vec<Vec<Record>> = recs.chunks(1000).map(<[Record]>::to_vec).collect();
    let queue = Arc::new(tokio::sync::Mutex::new(chunks.into_iter()));
    let mut loaders = Vec::new();
    for _ in 0..writers {
        loaders.push(connect().await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut loader in loaders {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().await.next();
                let Some(batch) = next else { break };
                loader.load(&batch).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(recs.len() as f64 / started.elapsed().as_secs_f64())
}

/// Something that writes one batch of records.
trait Loader {
    fn load(&mut self, batch: &[Record]) -> impl std::future::Future<Output = Result<()>> + Send;
}

impl Loader for Sink {
    async fn load(&mut self, batch: &[Record]) -> Result<()> {
        let refs: Vec<&Record> = batch.iter().collect();
        self.write(&refs).await?;
        Ok(())
    }
}

/// One binary COPY per batch of the same rows, their message ids as the primary key, into an
/// identical table: the floor any idempotent loader pays.
struct RawCopy(tokio_postgres::Client);

impl Loader for RawCopy {
    async fn load(&mut self, batch: &[Record]) -> Result<()> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::Type;
        let sink = self
            .0
            .copy_in("COPY raw_copy FROM STDIN (FORMAT binary)")
            .await?;
        let writer = BinaryCopyInWriter::new(
            sink,
            &[
                Type::TEXT,
                Type::VARCHAR,
                Type::VARCHAR,
                Type::VARCHAR,
                Type::VARCHAR,
                Type::VARCHAR,
                Type::INT4,
                Type::DATE,
            ],
        );
        futures::pin_mut!(writer);
        for r in batch {
            let sqs2pg::transform::Outcome::Row(row) = &r.outcome else {
                continue;
            };
            let version: Option<i32> = match &row.app_version {
                Some(sqs2pg::decode::AppVersion::Int(v)) => i32::try_from(*v).ok(),
                _ => None,
            };
            writer
                .as_mut()
                .write(&[
                    &r.message_id,
                    &row.user_id,
                    &row.device_type,
                    &row.masked_ip,
                    &row.masked_device_id,
                    &row.locale,
                    &version,
                    &row.create_date,
                ])
                .await?;
        }
        writer.finish().await?;
        Ok(())
    }
}

async fn sink_rate(url: &str, recs: &[Record], writers: usize) -> Result<f64> {
    let db = DbConfig::new(url, None)?;
    let shape = sqs2pg::db::schema::inspect(
        &sqs2pg::db::connect(&db).await?,
        keyring().writing_kid().len(),
    )
    .await?;
    concurrent_rate(recs, writers, || async {
        Ok(Sink::connect(&db, &shape).await?)
    })
    .await
}

async fn raw_copy_rate(url: &str, recs: &[Record], streams: usize) -> Result<f64> {
    pg(url)
        .await?
        .batch_execute(
            "CREATE TABLE raw_copy(message_id text PRIMARY KEY, user_id varchar(128), device_type varchar(32),
               masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date)",
        )
        .await?;
    concurrent_rate(recs, streams, || async { Ok(RawCopy(pg(url).await?)) }).await
}

async fn bench_sink(env: &Env, sizes: Sizes) -> Result<Vec<Line>> {
    let recs = records(sizes.sink_rows).await;
    // The same sink after a long history: the current ledger generation pre-filled.
    let full_url = env.fresh_db("sinkfull").await?;
    let c = pg(&full_url).await?;
    let generation = sqs2pg::db::ledger::ledger_generation(std::time::SystemTime::now()).number;
    c.batch_execute(&format!(
        "UPDATE sqs2pg_ledger_state SET generation = {generation};
         INSERT INTO sqs2pg_ledger_{} (message_id) SELECT 'old-' || g FROM generate_series(1, {}) g;
         ANALYZE sqs2pg_ledger_0; ANALYZE sqs2pg_ledger_1;",
        generation.rem_euclid(2),
        sizes.ledger_prefill
    ))
    .await?;
    // Rounds alternate the four loaders so that a noisy neighbour slows all of them alike;
    // each figure is its best round (noise only ever slows a run down).
    let (mut copy, mut copy2, mut one, mut two, mut full) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for round in 0..sizes.sink_rounds {
        copy =
            copy.max(raw_copy_rate(&env.fresh_db(&format!("copy{round}")).await?, &recs, 1).await?);
        copy2 = copy2
            .max(raw_copy_rate(&env.fresh_db(&format!("copy2_{round}")).await?, &recs, 2).await?);
        one = one.max(sink_rate(&env.fresh_db(&format!("sink1_{round}")).await?, &recs, 1).await?);
        two = two.max(sink_rate(&env.fresh_db(&format!("sink2_{round}")).await?, &recs, 2).await?);
        // New ids each round, so every round writes into the 10M-id generation afresh.
        let mut fresh = recs.clone();
        for r in &mut fresh {
            r.message_id.push_str(&format!("-r{round}"));
        }
        full = full.max(sink_rate(&full_url, &fresh, 1).await?);
    }
    Ok(vec![
        line(
            "sink, 1 writer: rows/s vs one raw binary COPY stream with a PK",
            format!("{one:.0} rows/s"),
            format!("COPY {copy:.0} rows/s"),
            format!("{:.2}×", one / copy),
            "≥ 0.75×",
        ),
        line(
            "sink, 2 writers (the default) vs two raw COPY streams",
            format!("{two:.0} rows/s"),
            format!("COPY ×2 {copy2:.0} rows/s"),
            format!("{:.2}×", two / copy2),
            "≥ 0.75×",
        ),
        line(
            &format!(
                "sink, 1 writer, ledger holding {} ids vs empty",
                human(sizes.ledger_prefill)
            ),
            format!("{full:.0} rows/s"),
            format!("empty {one:.0} rows/s"),
            format!("{:.2}×", full / one),
            "flat (≈ 1×)",
        ),
    ])
}

/// The sink with `--db-statements unnamed` (the default: safe behind a transaction pooler)
/// against `prepared`, one writer each, best of the rounds.
async fn bench_statements(env: &Env, sizes: Sizes) -> Result<Line> {
    use sqs2pg::config::DbStatements;
    let recs = records(sizes.sink_rows).await;
    let (mut unnamed, mut prepared) = (0f64, 0f64);
    for round in 0..sizes.sink_rounds {
        for (mode, best) in [
            (DbStatements::Unnamed, &mut unnamed),
            (DbStatements::Prepared, &mut prepared),
        ] {
            let url = env
                .fresh_db(&format!("stmt{round}_{mode:?}").to_lowercase())
                .await?;
            let db = DbConfig::new(&url, None)?.with_statements(mode);
            let shape = sqs2pg::db::schema::inspect(
                &sqs2pg::db::connect(&db).await?,
                keyring().writing_kid().len(),
            )
            .await?;
            let rate =
                concurrent_rate(&recs, 1, || async { Ok(Sink::connect(&db, &shape).await?) })
                    .await?;
            *best = best.max(rate);
        }
    }
    Ok(line(
        "sink, 1 writer, --db-statements unnamed (default) vs prepared",
        format!("{unnamed:.0} rows/s"),
        format!("prepared {prepared:.0} rows/s"),
        format!("{:.2}×", unnamed / prepared),
        "≥ 0.9×",
    ))
}

fn human(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

// ---------------------------------------------------------------- child processes

/// Wall time, CPU seconds (user + system) and peak RSS of one child process.
struct Usage {
    wall: Duration,
    cpu: f64,
    max_rss_kb: i64,
    stdout: String,
}

impl Usage {
    /// The better of two runs of one consumer: least CPU, shortest wall, lowest peak.
    fn best(self, other: Usage) -> Usage {
        Usage {
            wall: self.wall.min(other.wall),
            cpu: self.cpu.min(other.cpu),
            max_rss_kb: self.max_rss_kb.min(other.max_rss_kb),
            stdout: self.stdout,
        }
    }
}

fn run_measured(mut cmd: Command) -> Result<Usage> {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    // Peak RSS from /proc's VmHWM, polled: wait4's ru_maxrss would count the harness's own
    // memory, which a vfork-spawned child shares until it execs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0i64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if let Some(kb) = text
                        .lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse::<i64>().ok())
                    {
                        peak = peak.max(kb);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout)?;
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for this child only.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet reaped; the pointers are valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak_kb = poller.join().unwrap_or(0);
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("child {:?} failed (status {status})", cmd.get_program());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Usage {
        wall,
        cpu: secs(ru.ru_utime) + secs(ru.ru_stime),
        max_rss_kb: peak_kb,
        stdout,
    })
}

fn sqs2pg_cmd(env: &Env, queue: &Source, db_url: &str, pollers: usize) -> Command {
    run_cmd_of(&env.bin, queue, db_url, pollers)
}

/// `bin run --until-empty` on `queue` into `db_url` with `pollers` pollers.
fn run_cmd_of(bin: &Path, queue: &Source, db_url: &str, pollers: usize) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "run",
        "--until-empty",
        "--wait-seconds",
        "1",
        "--progress",
        "never",
        "--pollers",
        &pollers.to_string(),
    ])
    .env("SQS2PG_QUEUE_URL", queue.queue_url())
    .env("DATABASE_URL", db_url)
    .env("SQS2PG_KEYS", KEYS)
    .env("RUST_LOG", "warn");
    c
}

fn ceiling_cmd(queue: &Source, pollers: usize) -> Result<Command> {
    let mut c = Command::new(std::env::current_exe()?);
    c.args([
        "ceiling",
        "--queue-url",
        queue.queue_url(),
        "--pollers",
        &pollers.to_string(),
    ]);
    Ok(c)
}

/// Receive + delete only, `pollers` at a time, until each sees the queue empty.
async fn ceiling(url: String, pollers: usize) -> Result<u64> {
    let src = Source::connect(&SqsConfig {
        queue_url: Some(url),
        queue_name: "unused".into(),
        framing: Default::default(),
        endpoint_url: None,
    })
    .await?;
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..pollers {
        let (src, count) = (src.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let msgs = src.receive(1).await?;
                if msgs.is_empty() {
                    break;
                }
                // The SDK's own call, one per receive: the ceiling is SQS's, with no limit
                // of sqs2pg's in the way.
                let entries = msgs.iter().enumerate().filter_map(|(i, m)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .build()
                        .ok()
                });
                let out = src
                    .client()
                    .delete_message_batch()
                    .queue_url(src.queue_url())
                    .set_entries(Some(entries.collect()))
                    .send()
                    .await
                    .context("DeleteMessageBatch")?;
                count.fetch_add(out.successful.len() as u64, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(count.load(Ordering::Relaxed))
}

async fn fill(queue: &Source, bodies: &[String]) -> Result<()> {
    queue.send(bodies, 32).await?;
    Ok(())
}

// ---------------------------------------------------------------- 3 + 4. end to end

async fn bench_end_to_end(env: &Env, sizes: Sizes) -> Result<Vec<Line>> {
    let bodies = bodies(sizes.backlog, 3);
    let n = bodies.len() as f64;

    // Rounds alternate the two so a noisy neighbour hits both alike; each keeps its best
    // round (least CPU, shortest wall: noise only ever adds).
    let mut ceil: Option<Usage> = None;
    let mut ours: Option<Usage> = None;
    for round in 0..sizes.e2e_rounds {
        let q = env.queue(&format!("ceiling{round}")).await?;
        fill(&q, &bodies).await?;
        let c = run_measured(ceiling_cmd(&q, 8)?)?;
        env.drop_queue(&q).await;
        let handled: f64 = c.stdout.trim().parse().unwrap_or(0.0);
        if handled != n {
            bail!("the ceiling client deleted {handled} of {n} messages");
        }
        ceil = Some(match ceil {
            Some(best) => best.best(c),
            None => c,
        });

        let q = env.queue(&format!("e2e{round}")).await?;
        fill(&q, &bodies).await?;
        let url = env.fresh_db(&format!("e2e{round}")).await?;
        let o = run_measured(sqs2pg_cmd(env, &q, &url, 8))?;
        env.drop_queue(&q).await;
        // Each consumer must have handled the whole backlog, or its figure means nothing.
        if !o
            .stdout
            .contains(&format!("deleted             {}", bodies.len()))
        {
            bail!("sqs2pg did not delete the whole backlog:\n{}", o.stdout);
        }
        ours = Some(match ours {
            Some(best) => best.best(o),
            None => o,
        });
    }
    let (Some(ceil), Some(ours)) = (ceil, ours) else {
        bail!("no end-to-end round ran");
    };

    let q = env.queue("python").await?;
    fill(&q, &bodies).await?;
    let py_url = env.fresh_db("python").await?;
    let py = match &env.python {
        Some(python) => {
            let mut c = Command::new(python);
            c.arg(env.root.join("bench/python_consumer.py"))
                .args(["--queue-url", q.queue_url(), "--database-url", &py_url])
                .env(
                    "AWS_DEFAULT_REGION",
                    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
                );
            Some(run_measured(c)?)
        }
        None => None,
    };
    env.drop_queue(&q).await;

    let rate = |u: &Usage| n / u.wall.as_secs_f64();
    let us = |u: &Usage| u.cpu / n * 1e6;
    let mut lines = vec![
        line(
            "end to end vs SQS ceiling (LocalStack, receive + delete only, 8 pollers each)",
            format!("{:.0} msgs/s", rate(&ours)),
            format!("ceiling {:.0} msgs/s", rate(&ceil)),
            format!("{:.2}×", rate(&ours) / rate(&ceil)),
            "≥ 0.9×",
        ),
        line(
            "CPU per message vs the SDK client alone",
            format!("{:.0} µs", us(&ours)),
            format!("SDK floor {:.0} µs", us(&ceil)),
            format!("{:.2}×", us(&ours) / us(&ceil)),
            "≤ 1.25×",
        ),
    ];
    if let Some(py) = py {
        lines.push(line(
            "wall time vs Python consumer (boto3 + psycopg2, insert per message)",
            format!("{:.1} s", ours.wall.as_secs_f64()),
            format!("Python {:.1} s", py.wall.as_secs_f64()),
            format!(
                "{:.2}× faster",
                py.wall.as_secs_f64() / ours.wall.as_secs_f64()
            ),
            "—",
        ));
        lines.push(line(
            "CPU per message vs Python consumer",
            format!("{:.0} µs", us(&ours)),
            format!("Python {:.0} µs", us(&py)),
            format!("{:.1}× lower", us(&py) / us(&ours)),
            "≥ 4× lower",
        ));
    }
    Ok(lines)
}

// ---------------------------------------------------------------- 5. scaling

/// A TCP proxy that delays every client→server read by `delay` (one request ≈ one read).
async fn delay_proxy(target: SocketAddr, delay: Duration) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tokio::time::sleep(delay).await;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    Ok(addr)
}

async fn bench_scaling(env: &Env, sizes: Sizes) -> Result<(Vec<Line>, String)> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")?;
    let target: SocketAddr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .context("AWS_ENDPOINT_URL host:port")?;
    let slow = delay_proxy(target, Duration::from_millis(15)).await?;
    let bodies = bodies(sizes.scaling_backlog, 5);
    let n = bodies.len() as f64;
    let mut csv = String::from("latency_ms,pollers,consumer,msgs_per_s\n");
    let mut results: BTreeMap<(u64, usize, &str), f64> = BTreeMap::new();
    for (latency, endpoint_url) in [(0u64, endpoint.clone()), (15, format!("http://{slow}"))] {
        for &pollers in sizes.scaling_pollers {
            for consumer in ["sqs2pg", "ceiling"] {
                let q = env
                    .queue(&format!("scale-{latency}-{pollers}-{consumer}"))
                    .await?;
                fill(&q, &bodies).await?;
                let mut cmd = if consumer == "sqs2pg" {
                    let url = env.fresh_db("scale").await?;
                    sqs2pg_cmd(env, &q, &url, pollers)
                } else {
                    ceiling_cmd(&q, pollers)?
                };
                cmd.env("AWS_ENDPOINT_URL", &endpoint_url);
                let u = run_measured(cmd)?;
                env.drop_queue(&q).await;
                // The final empty long poll (1 s) is not work: leave it out of the rate.
                let rate = n / (u.wall.as_secs_f64() - 1.0).max(0.05);
                results.insert((latency, pollers, consumer), rate);
                csv.push_str(&format!("{latency},{pollers},{consumer},{rate:.0}\n"));
                eprintln!(
                    "  latency {latency} ms, {pollers} pollers, {consumer}: {rate:.0} msgs/s"
                );
            }
        }
    }
    // The same pollers and the same 15 ms in front of the constant-time stub: how sqs2pg
    // itself scales once the emulator's ceiling is out of the way.
    let mut stub_rates = Vec::new();
    for &pollers in sizes.scaling_pollers {
        let total = pollers as u64 * sizes.stub_per_poller;
        let stub = sqs_stub(total).await?;
        let slow_stub = delay_proxy(stub, Duration::from_millis(15)).await?;
        let url = env.fresh_db("scalestub").await?;
        let u = run_measured(stub_cmd(env, slow_stub, &url, pollers))?;
        let rate = total as f64 / u.wall.as_secs_f64();
        csv.push_str(&format!("15,{pollers},sqs2pg-stub,{rate:.0}\n"));
        eprintln!("  latency 15 ms, {pollers} pollers, sqs2pg on the stub: {rate:.0} msgs/s");
        stub_rates.push((pollers, rate));
    }
    let mut lines = Vec::new();
    if let Some(&(first, base)) = stub_rates.first() {
        lines.push(line(
            "pollers → msgs/s, +15 ms per request to the constant-time stub",
            stub_rates
                .iter()
                .map(|(p, r)| format!("{p}: {r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            "linear from 1 poller".into(),
            format!(
                "vs linear {}",
                stub_rates
                    .iter()
                    .map(|&(p, r)| format!("{:.2}", r / (base * p as f64 / first as f64)))
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            "≥ 0.9× linear",
        ));
    }
    for latency in [0u64, 15] {
        let first = sizes.scaling_pollers[0];
        let base = results[&(latency, first, "sqs2pg")];
        let cells: Vec<String> = sizes
            .scaling_pollers
            .iter()
            .map(|&p| format!("{p}: {:.0}", results[&(latency, p, "sqs2pg")]))
            .collect();
        let ceil: Vec<String> = sizes
            .scaling_pollers
            .iter()
            .map(|&p| format!("{p}: {:.0}", results[&(latency, p, "ceiling")]))
            .collect();
        let ratios: Vec<String> = sizes
            .scaling_pollers
            .iter()
            .map(|&p| {
                format!(
                    "{:.2}",
                    results[&(latency, p, "sqs2pg")] / results[&(latency, p, "ceiling")]
                )
            })
            .collect();
        let linear: Vec<String> = sizes
            .scaling_pollers
            .iter()
            .map(|&p| {
                format!(
                    "{:.2}",
                    results[&(latency, p, "sqs2pg")] / (base * p as f64 / first as f64)
                )
            })
            .collect();
        lines.push(line(
            &format!("pollers → msgs/s, +{latency} ms per SQS request"),
            cells.join(", "),
            format!("ceiling {}", ceil.join(", ")),
            format!(
                "vs ceiling {}; vs linear {}",
                ratios.join("/"),
                linear.join("/")
            ),
            "≥ 0.9× ceiling at every poller count",
        ));
    }
    Ok((lines, csv))
}

// ---------------------------------------------------------------- 6. RSS and latency

async fn bench_rss_and_latency(env: &Env, sizes: Sizes) -> Result<Vec<Line>> {
    let q = env.queue("rss").await?;
    fill(&q, &bodies(sizes.rss_backlog, 6)).await?;
    let url = env.fresh_db("rss").await?;
    let u = run_measured(sqs2pg_cmd(env, &q, &url, 8))?;
    env.drop_queue(&q).await;
    let rss = line(
        &format!(
            "peak RSS draining a {} backlog",
            human(sizes.rss_backlog as u64)
        ),
        format!("{:.1} MB", u.max_rss_kb as f64 / 1024.0),
        "—".into(),
        "—".into(),
        "≤ 64 MB",
    );

    // Steady 500 msgs/s into a running daemon; latency from SentTimestamp to commit, read
    // from the daemon's own histogram.
    let q = env.queue("latency").await?;
    let url = env.fresh_db("latency").await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut daemon = Command::new(&env.bin)
        .args([
            "run",
            "--wait-seconds",
            "20",
            "--batch-wait-ms",
            "50",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("SQS2PG_QUEUE_URL", q.queue_url())
        .env("DATABASE_URL", &url)
        .env("SQS2PG_KEYS", KEYS)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = bodies(500 * sizes.steady_secs as usize, 7);
    let started = Instant::now();
    for (i, chunk) in all.chunks(50).enumerate() {
        let due = started + Duration::from_millis(100 * i as u64);
        tokio::time::sleep_until(due.into()).await;
        q.send(chunk, 5).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = http_get(port, "/metrics").await?;
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    env.drop_queue(&q).await;
    let (p50, p99, count) =
        percentiles(&metrics, "sqs2pg_latency_seconds").context("latency histogram")?;
    Ok(vec![
        rss,
        line(
            "latency SentTimestamp → commit at a steady 500 msgs/s",
            format!(
                "p50 {:.0} ms, p99 {:.0} ms ({count} msgs)",
                p50 * 1000.0,
                p99 * 1000.0
            ),
            "—".into(),
            "—".into(),
            "p99 ≤ 1 s",
        ),
    ])
}

async fn http_get(port: u16, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// p50 and p99 from a Prometheus histogram, interpolated within buckets.
fn percentiles(text: &str, name: &str) -> Option<(f64, f64, u64)> {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let q = |p: f64| {
        let want = total * p;
        let mut prev = (0.0, 0.0);
        for &(le, c) in &buckets {
            if c >= want {
                if le.is_infinite() {
                    return prev.0;
                }
                let frac = if c > prev.1 {
                    (want - prev.1) / (c - prev.1)
                } else {
                    0.0
                };
                return prev.0 + frac * (le - prev.0);
            }
            prev = (le, c);
        }
        prev.0
    };
    Some((q(0.5), q(0.99), total as u64))
}

// ---------------------------------------------------------------- stub ceiling

/// A constant-time SQS stand-in (AWS JSON 1.0): every ReceiveMessage gets 10 ready
/// messages until `total` are served; deletes always succeed. Bench only: it proves nothing
/// about correctness, it only removes the emulator from the measurement.
async fn sqs_stub(total: u64) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let pool: Arc<Vec<String>> = Arc::new(
        bodies(1000, 9)
            .into_iter()
            .filter(|b| b.starts_with('{'))
            .collect(),
    );
    let served = Arc::new(AtomicU64::new(0));
    let sent_ms = chrono::Utc::now().timestamp_millis().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (pool, served, sent_ms) = (pool.clone(), served.clone(), sent_ms.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (pool, served, sent_ms) =
                            (pool.clone(), served.clone(), sent_ms.clone());
                        async move {
                            let target = req
                                .headers()
                                .get("x-amz-target")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .trim_start_matches("AmazonSQS.")
                                .to_string();
                            let body = http_body_util::BodyExt::collect(req.into_body())
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let input: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let out = match target.as_str() {
                                "ReceiveMessage" => {
                                    let start = served.fetch_add(10, Ordering::Relaxed);
                                    let n = total.saturating_sub(start).min(10);
                                    let msgs: Vec<serde_json::Value> = (start..start + n)
                                    .map(|i| {
                                        serde_json::json!({
                                            "MessageId": format!("stub-{i}"),
                                            "ReceiptHandle": format!("rh-{i}"),
                                            "MD5OfBody": "",
                                            "Body": pool[(i as usize) % pool.len()],
                                            "Attributes": {"SentTimestamp": sent_ms, "ApproximateReceiveCount": "1"}
                                        })
                                    })
                                    .collect();
                                    serde_json::json!({ "Messages": msgs })
                                }
                                "DeleteMessageBatch" | "ChangeMessageVisibilityBatch" => {
                                    let ok: Vec<serde_json::Value> = input["Entries"]
                                        .as_array()
                                        .into_iter()
                                        .flatten()
                                        .map(|e| serde_json::json!({"Id": e["Id"]}))
                                        .collect();
                                    serde_json::json!({ "Successful": ok, "Failed": [] })
                                }
                                "GetQueueAttributes" => {
                                    let left = total.saturating_sub(served.load(Ordering::Relaxed));
                                    serde_json::json!({"Attributes": {"VisibilityTimeout": "30", "ApproximateNumberOfMessages": left.to_string(), "ApproximateNumberOfMessagesNotVisible": "0"}})
                                }
                                "GetQueueUrl" => {
                                    serde_json::json!({"QueueUrl": "http://stub/000000000000/stub"})
                                }
                                _ => serde_json::json!({}),
                            };
                            let mut resp = hyper::Response::new(http_body_util::Full::new(
                                hyper::body::Bytes::from(out.to_string()),
                            ));
                            resp.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static(
                                    "application/x-amz-json-1.0",
                                ),
                            );
                            Ok::<_, Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// sqs2pg draining the stub at `addr` until it runs dry.
fn stub_cmd(env: &Env, addr: SocketAddr, db_url: &str, pollers: usize) -> Command {
    let mut c = Command::new(&env.bin);
    c.args([
        "run",
        "--until-empty",
        "--wait-seconds",
        "0",
        "--progress",
        "never",
        "--pollers",
        &pollers.to_string(),
        "--writers",
        "3",
        "--batch-size",
        "1000",
    ])
    .env("SQS2PG_QUEUE_URL", "http://stub/000000000000/stub")
    .env("AWS_ENDPOINT_URL", format!("http://{addr}"))
    .env("DATABASE_URL", db_url)
    .env("SQS2PG_KEYS", KEYS)
    .env("RUST_LOG", "warn");
    c
}

async fn bench_stub(env: &Env, sizes: Sizes) -> Result<Line> {
    let addr = sqs_stub(sizes.stub_messages).await?;
    let url = env.fresh_db("stub").await?;
    let u = run_measured(stub_cmd(env, addr, &url, 16))?;
    let rate = sizes.stub_messages as f64 / u.wall.as_secs_f64();
    let _ = std::io::stdout().flush();
    Ok(line(
        "consumer ceiling: constant-time SQS stub → real Postgres (16 pollers, 3 writers)",
        format!(
            "{rate:.0} msgs/s, {:.0} µs CPU/msg",
            u.cpu / sizes.stub_messages as f64 * 1e6
        ),
        "—".into(),
        "—".into(),
        "≥ 15k msgs/s",
    ))
}
