//! The login load end to end against an earlier build of sqs2pg (issue 28 point 10: "the
//! login path's end-to-end CPU per message within 10 % of the previous binary"). Set
//! `SQS2PG_BENCH_BASELINE_BIN` to that build's `sqs2pg` (say, a release build of the commit
//! before a change); the `e2e` section then drains the same backlog with each binary,
//! rounds alternating so a noisy neighbour hits both alike, and reports the CPU per message
//! of each one's best round.

use super::*;

/// The variable naming the earlier binary.
pub const BASELINE_VAR: &str = "SQS2PG_BENCH_BASELINE_BIN";

/// One drain of `bodies` by `bin`, checked to have deleted all of them.
async fn drain(env: &Env, bin: &Path, name: &str, bodies: &[String]) -> Result<Usage> {
    let q = env.queue(name).await?;
    fill(&q, bodies).await?;
    let url = env.fresh_db(name).await?;
    let u = run_measured(run_cmd_of(bin, &q, &url, 8))?;
    env.drop_queue(&q).await;
    if !u
        .stdout
        .contains(&format!("deleted             {}", bodies.len()))
    {
        bail!(
            "{} did not delete the whole backlog:\n{}",
            bin.display(),
            u.stdout
        );
    }
    Ok(u)
}

/// CPU per message of this build's drain against `baseline`'s, alternating rounds.
pub async fn bench_baseline(env: &Env, sizes: Sizes, baseline: &Path) -> Result<Line> {
    let bodies = bodies(sizes.backlog, 3);
    let n = bodies.len() as f64;
    let (mut ours, mut theirs): (Option<Usage>, Option<Usage>) = (None, None);
    for round in 0..sizes.e2e_rounds {
        let t = drain(env, baseline, &format!("baseline{round}"), &bodies).await?;
        theirs = Some(match theirs {
            Some(best) => best.best(t),
            None => t,
        });
        let o = drain(env, &env.bin, &format!("current{round}"), &bodies).await?;
        ours = Some(match ours {
            Some(best) => best.best(o),
            None => o,
        });
    }
    let (Some(ours), Some(theirs)) = (ours, theirs) else {
        bail!("no baseline round ran");
    };
    let us = |u: &Usage| u.cpu / n * 1e6;
    Ok(line(
        "login load end to end: CPU per message vs the previous binary (same backlog, 8 pollers)",
        format!("{:.1} µs", us(&ours)),
        format!("previous {:.1} µs", us(&theirs)),
        format!("{:.2}×", us(&ours) / us(&theirs)),
        "≤ 1.10×",
    ))
}
