//! `sqs2pg forget --subject VALUE|- --reason TEXT [--dry-run]`.

use std::io::BufRead;

use anyhow::Context as _;

use super::args::GlobalArgs;
use super::output::{print_json, OutputFormat};
use crate::error::Failure;
use crate::ops::forget::{self, Request};
use crate::pii::Pii;

pub(super) async fn forget(
    g: &GlobalArgs,
    subject: &str,
    reason: &str,
    dry_run: bool,
) -> Result<(), Failure> {
    let subject = Pii::new(match subject {
        "-" => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the subject from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
        given => given.to_owned(),
    });
    if subject.expose().is_empty() {
        return Err(Failure::usage(
            "--subject: empty; give the subject's value, or `-` and the value on stdin",
        ));
    }
    let keyring = g.keys().load().await?;
    let mapping = g.load_mapping()?;
    let req = Request {
        subject: &subject,
        reason,
        dry_run,
        envelope: g.framing().envelope,
    };
    let report = forget::forget(&g.db()?, &keyring, mapping, &req).await?;
    match g.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => {
            let verb = if dry_run { "would delete" } else { "deleted" };
            for (table, n) in &report.tables {
                println!("{verb} {n} from {table}");
            }
            if report.unreadable > 0 {
                println!(
                    "{} quarantined bodies the keyring cannot open were not checked (add the keys that sealed them)",
                    report.unreadable
                );
            }
        }
    }
    Ok(())
}
