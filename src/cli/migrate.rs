//! `sqs2pg migrate`: create what is missing, say what was created.

use serde::Serialize;

use super::args::{GlobalArgs, OutputFormat};
use super::output::print_json;
use crate::db::schema::MigrateReport;
use crate::error::Failure;
use crate::ops::admin;

/// The roles `--roles` creates or keeps.
const ROLES: [&str; 3] = ["sqs2pg_ingest", "sqs2pg_analyst", "sqs2pg_revealer"];

pub(super) async fn migrate(g: &GlobalArgs, roles: bool) -> Result<(), Failure> {
    let mapping = g.load_mapping()?;
    let report = admin::migrate(&g.db()?, roles, mapping.as_deref()).await?;
    match g.output {
        OutputFormat::Text => print_text(&report, roles),
        OutputFormat::Json => print_json(&MigrateJson {
            created: report.created.clone(),
            already_there: report.already_there(),
            roles: if roles { ROLES.to_vec() } else { Vec::new() },
        })?,
    }
    Ok(())
}

fn print_text(report: &MigrateReport, roles: bool) {
    if report.created.is_empty() && report.created_rejects_table.is_none() {
        println!("nothing to do: all tables exist");
    } else if !report.created.is_empty() {
        println!("created: {}", report.created.join(", "));
    }
    if let Some(t) = &report.created_rejects_table {
        println!("created the mapping's rejects table: {t}");
    }
    if roles {
        println!("roles: {} (grant them to login users)", ROLES.join(", "));
    }
}

/// `migrate --output json`: every table the tool uses is in exactly one of the two lists.
#[derive(Debug, Serialize)]
struct MigrateJson {
    created: Vec<&'static str>,
    already_there: Vec<&'static str>,
    /// The roles made sure of (with `--roles`; empty without).
    roles: Vec<&'static str>,
}
