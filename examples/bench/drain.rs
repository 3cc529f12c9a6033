//! The drain section: what a user who drains a backlog waits for and pays for. `run
//! --until-empty` with its defaults against the Python consumer on the same backlog, each
//! timed from process start to exit; the time from the last commit to the exit; SQS requests
//! per 1,000 messages under load, and per hour on an idle queue.

use std::time::SystemTime;

use super::*;

/// SQS's published price for a standard queue, dollars per request after the free tier
/// (https://aws.amazon.com/sqs/pricing/: $0.40 per million; each 64 KiB of a payload is
/// billed as one request).
const DOLLARS_PER_REQUEST: f64 = 0.40 / 1e6;

fn drain_cmd(env: &Env, queue: &Source, db_url: &str) -> Command {
    let mut c = Command::new(&env.bin);
    c.args(["run", "--until-empty", "--progress", "never"])
        .env("SQS2PG_QUEUE_URL", queue.queue_url())
        .env("DATABASE_URL", db_url)
        .env("SQS2PG_KEYS", KEYS)
        .env("RUST_LOG", "warn");
    c
}

/// The summary's `sqs requests` line, by kind (`kind → count`, `total` included).
fn requests(stdout: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Some(rest) = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sqs requests "))
        .map(str::trim)
    else {
        return out;
    };
    let (total, kinds) = rest.split_once(' ').unwrap_or((rest, ""));
    out.insert("total".into(), total.parse().unwrap_or(0));
    for part in kinds.trim_matches(|c| c == '(' || c == ')').split(", ") {
        if let Some((k, v)) = part.rsplit_once(' ') {
            out.insert(k.into(), v.parse().unwrap_or(0));
        }
    }
    out
}

/// Unix seconds of the drain's last commit: the latest ledger row's `committed_at` (the
/// start of the transaction that wrote it).
async fn last_commit(url: &str) -> Result<f64> {
    let c = pg(url).await?;
    let row = c
        .query_one(
            "SELECT extract(epoch FROM max(committed_at))::float8 FROM
               (SELECT committed_at FROM sqs2pg_ledger_0
                UNION ALL SELECT committed_at FROM sqs2pg_ledger_1) t",
            &[],
        )
        .await?;
    row.get::<_, Option<f64>>(0)
        .context("no commit in the ledger")
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One drain of `bodies` by sqs2pg: its usage, last commit → exit, and its request counts.
async fn ours(
    env: &Env,
    bodies: &[String],
    round: usize,
) -> Result<(Usage, f64, BTreeMap<String, u64>)> {
    let q = env.queue(&format!("drain{round}")).await?;
    fill(&q, bodies).await?;
    let url = env.fresh_db(&format!("drain{round}")).await?;
    let started = SystemTime::now();
    let u = run_measured(drain_cmd(env, &q, &url))?;
    let exited = unix(started) + u.wall.as_secs_f64();
    env.drop_queue(&q).await;
    if !u
        .stdout
        .contains(&format!("deleted             {}", bodies.len()))
    {
        bail!("sqs2pg did not delete the whole backlog:\n{}", u.stdout);
    }
    let tail = exited - last_commit(&url).await?;
    let reqs = requests(&u.stdout);
    Ok((u, tail, reqs))
}

async fn python(env: &Env, bodies: &[String], round: usize) -> Result<Option<Usage>> {
    let Some(python) = &env.python else {
        return Ok(None);
    };
    let q = env.queue(&format!("drainpy{round}")).await?;
    fill(&q, bodies).await?;
    let url = env.fresh_db(&format!("drainpy{round}")).await?;
    let mut c = Command::new(python);
    c.arg(env.root.join("bench/python_consumer.py"))
        .args(["--queue-url", q.queue_url(), "--database-url", &url])
        .env(
            "AWS_DEFAULT_REGION",
            std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        );
    let u = run_measured(c)?;
    env.drop_queue(&q).await;
    Ok(Some(u))
}

pub(super) async fn bench_drain(env: &Env, sizes: Sizes) -> Result<Vec<Line>> {
    let bodies = bodies(sizes.drain_backlog, 11);
    let n = bodies.len() as f64;
    let mut best: Option<Usage> = None;
    let mut best_py: Option<Usage> = None;
    let mut tails = Vec::new();
    let mut reqs = Vec::new();
    // Rounds alternate the two, each keeps its best (noise only ever adds).
    for round in 0..sizes.e2e_rounds {
        let (u, tail, r) = ours(env, &bodies, round).await?;
        tails.push(tail);
        reqs.push(r);
        best = Some(match best {
            Some(b) => b.best(u),
            None => u,
        });
        if let Some(p) = python(env, &bodies, round).await? {
            best_py = Some(match best_py {
                Some(b) => b.best(p),
                None => p,
            });
        }
    }
    let Some(ours) = best else {
        bail!("no drain round ran");
    };
    let us = |u: &Usage| u.cpu / n * 1e6;
    let mut lines = Vec::new();
    let what = format!(
        "drain {} backlog: `run --until-empty` (defaults) vs Python consumer, wall incl. start + exit",
        human(n as u64)
    );
    if let Some(py) = &best_py {
        let (a, b) = (ours.wall.as_secs_f64(), py.wall.as_secs_f64());
        lines.push(line(
            &what,
            format!("{a:.1} s"),
            format!("Python {b:.1} s"),
            format!("{:.2}× faster", b / a),
            "≥ 2× faster",
        ));
        lines.push(line(
            "drain: CPU per message vs Python consumer",
            format!("{:.0} µs", us(&ours)),
            format!("Python {:.0} µs", us(py)),
            format!("{:.1}× lower", us(py) / us(&ours)),
            "≥ 5× lower",
        ));
    } else {
        lines.push(line(
            &what,
            format!("{:.1} s", ours.wall.as_secs_f64()),
            "no Python venv".into(),
            "—".into(),
            "≥ 2× faster",
        ));
    }
    let spread: Vec<String> = tails.iter().map(|t| format!("{t:.2}")).collect();
    lines.push(line(
        "drain: last commit → process exit",
        format!(
            "{:.2} s (rounds: {} s)",
            tails.iter().cloned().fold(f64::MAX, f64::min),
            spread.join(", ")
        ),
        "—".into(),
        "—".into(),
        "≤ 2 s",
    ));
    lines.push(requests_line(&reqs, n));
    lines.push(idle_line(env, sizes).await?);
    Ok(lines)
}

/// Requests per 1,000 messages, the mean over the rounds, and what a million cost.
fn requests_line(rounds: &[BTreeMap<String, u64>], n: f64) -> Line {
    let mean = |k: &str| {
        rounds
            .iter()
            .map(|r| r.get(k).copied().unwrap_or(0) as f64)
            .sum::<f64>()
            / rounds.len().max(1) as f64
            / n
            * 1000.0
    };
    let kinds = [
        "receive",
        "empty_receive",
        "delete",
        "change_visibility",
        "get_attributes",
    ];
    let parts: Vec<String> = kinds
        .iter()
        .map(|k| format!("{k} {:.1}", mean(k)))
        .collect();
    let total = mean("total");
    line(
        "SQS requests per 1,000 messages (the drains above, 8 pollers)",
        format!("{total:.1}: {}", parts.join(", ")),
        "—".into(),
        format!(
            "{:.3}/msg = ${:.3} per million messages",
            total / 1000.0,
            total / 1000.0 * 1e6 * DOLLARS_PER_REQUEST
        ),
        "≤ 220 (0.22/msg)",
    )
}

/// A daemon with the defaults (8 pollers, 20 s long polls) on an empty queue, and one with
/// `--metrics-addr` too (its probe reads the queue's depth every 2 s), side by side.
async fn idle_line(env: &Env, sizes: Sizes) -> Result<Line> {
    let mut runs = Vec::new();
    for (name, metrics) in [("idle", false), ("idlem", true)] {
        let q = env.queue(name).await?;
        let url = env.fresh_db(name).await?;
        let mut c = Command::new(&env.bin);
        c.args(["run", "--progress", "never"])
            .env("SQS2PG_QUEUE_URL", q.queue_url())
            .env("DATABASE_URL", &url)
            .env("SQS2PG_KEYS", KEYS)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped());
        if metrics {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            c.args(["--metrics-addr", &format!("127.0.0.1:{port}")]);
        }
        runs.push((q, c.spawn()?));
    }
    let window = Duration::from_secs(sizes.idle_secs);
    tokio::time::sleep(window).await;
    let mut per_hour = Vec::new();
    for (q, child) in runs {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let out = child.wait_with_output()?;
        env.drop_queue(&q).await;
        let r = requests(&String::from_utf8_lossy(&out.stdout));
        let hourly =
            |k: &str| r.get(k).copied().unwrap_or(0) as f64 * 3600.0 / window.as_secs_f64();
        per_hour.push((
            hourly("total"),
            hourly("empty_receive"),
            hourly("get_attributes"),
        ));
    }
    let (plain, with_metrics) = (per_hour[0], per_hour[1]);
    let month = |h: f64| h * 730.0 * DOLLARS_PER_REQUEST;
    Ok(line(
        &format!("SQS requests per hour idle, defaults (8 pollers × 20 s long polls; {} s window)", sizes.idle_secs),
        format!(
            "{:.0}/h ({:.0} empty receives); with --metrics-addr {:.0}/h ({:.0} GetQueueAttributes)",
            plain.0, plain.1, with_metrics.0, with_metrics.2
        ),
        "—".into(),
        format!("${:.2}/month; ${:.2}/month with --metrics-addr", month(plain.0), month(with_metrics.0)),
        "—",
    ))
}
