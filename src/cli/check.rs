//! `sqs2pg check`: every check of [`crate::ops::check`], one line each, then the exit code
//! the worst of them calls for.

use serde::Serialize;

use super::args::{GlobalArgs, OutputFormat};
use super::output::print_json;
use crate::error::Failure;
use crate::ops::check::{self, Check, Inputs, Report, Status};

pub(super) async fn check(g: &GlobalArgs) -> Result<(), Failure> {
    let inputs = Inputs {
        keys: g.keys(),
        db: g.db(),
        sqs: g.sqs(),
        mapping: g.mapping.clone(),
    };
    let report = check::run(inputs).await;
    match g.output {
        OutputFormat::Text => print_text(&report),
        OutputFormat::Json => print_json(&CheckJson {
            checks: &report.checks,
            ok: report.ok(),
        })?,
    }
    let failed: Vec<&str> = report.failed().map(|c| c.name).collect();
    let message = || {
        format!(
            "{} of {} checks failed: {} (the fix is under each)",
            failed.len(),
            report.checks.len(),
            failed.join(", ")
        )
    };
    match report.exit_code() {
        0 => Ok(()),
        2 => Err(Failure::usage(message())),
        _ => Err(Failure::from(anyhow::anyhow!(message()))),
    }
}

/// `check --output json`, as `sqs2pg check --help` documents it.
#[derive(Serialize)]
struct CheckJson<'a> {
    checks: &'a [Check],
    /// No check failed (warnings allowed).
    ok: bool,
}

fn print_text(report: &Report) {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        let mark = match c.status {
            Status::Ok => '✓',
            Status::Warn => '⚠',
            Status::Fail => '✗',
        };
        println!("{mark} {:width$}  {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            println!("  {:width$}  fix: {fix}", "");
        }
    }
    let count = |s| report.checks.iter().filter(|c| c.status == s).count();
    let warnings = match count(Status::Warn) {
        1 => "1 warning".to_owned(),
        n => format!("{n} warnings"),
    };
    println!(
        "{} ok, {warnings}, {} failed",
        count(Status::Ok),
        count(Status::Fail)
    );
}
