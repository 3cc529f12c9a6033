//! The byte budget's section of the harness (`--only big`): peak RSS draining large bodies,
//! 256 KiB rejects and 1 MiB valid-but-padded events, under the default
//! `--max-inflight-bytes`. The goal is a peak within the budget plus 48 MB.

use anyhow::Result;

use super::{human, line, run_measured, sqs2pg_cmd, Env, Line, Sizes};

const KIB: usize = 1024;

/// Invalid bodies (not JSON) of exactly `size` bytes, each distinct.
fn rejects(n: usize, size: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let head = format!("not json {i} ");
            format!("{head}{}", "x".repeat(size - head.len()))
        })
        .collect()
}

/// Valid logins padded with an unknown key (ignored) to exactly `size` bytes.
fn padded(n: usize, size: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let bare = format!(
                r#"{{"user_id":"big-{i}","app_version":"1.2.3","device_type":"ios","ip":"198.51.100.7","locale":"US","device_id":"d{i}","padding":""}}"#
            );
            let pad = "p".repeat(size - bare.len());
            bare.replacen(r#""padding":"""#, &format!(r#""padding":"{pad}""#), 1)
        })
        .collect()
}

/// One drain of `bodies` by the release binary (8 pollers, default budget); its peak RSS.
async fn peak_rss_mb(env: &Env, name: &str, bodies: &[String]) -> Result<f64> {
    let q = env.queue(name).await?;
    // Large bodies: fewer sends at once, or LocalStack stalls.
    q.send(bodies, 4).await?;
    let url = env.fresh_db(name).await?;
    let u = run_measured(sqs2pg_cmd(env, &q, &url, 8))?;
    env.drop_queue(&q).await;
    Ok(u.max_rss_kb as f64 / 1024.0)
}

pub(super) async fn bench_big_rss(env: &Env, sizes: Sizes) -> Result<Vec<Line>> {
    let budget_mb = sqs2pg::config::DEFAULT_MAX_INFLIGHT_BYTES as f64 / 1e6;
    let target = format!("≤ {:.0} MB (budget + 48 MB)", budget_mb + 48.0);
    let mut out = Vec::new();
    for (name, what, bodies) in [
        (
            "big_rejects",
            format!("{} × 256 KiB rejects", human(sizes.big_rejects as u64)),
            rejects(sizes.big_rejects, 256 * KIB),
        ),
        (
            "big_rows",
            format!("{} × 1 MiB valid, padded", human(sizes.big_rows as u64)),
            padded(sizes.big_rows, 1024 * KIB),
        ),
    ] {
        eprintln!("   {what}");
        let mb = peak_rss_mb(env, name, &bodies).await?;
        out.push(line(
            &format!("peak RSS draining {what} (default --max-inflight-bytes, 64 MiB)"),
            format!("{mb:.1} MB"),
            "—".into(),
            "—".into(),
            &target,
        ));
    }
    Ok(out)
}
