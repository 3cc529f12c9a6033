//! `sqs2pg rejects list|replay`: the quarantine by reason, and its replay.

use std::collections::BTreeMap;

use serde::Serialize;

use super::args::{GlobalArgs, OutputFormat};
use super::output::print_json;
use crate::db::rejects::ReasonGroup;
use crate::error::Failure;
use crate::ops::admin;
use crate::ops::replay::{self, RejectFilter};

pub(super) async fn list(g: &GlobalArgs, reason: Option<&str>, ids: i64) -> Result<(), Failure> {
    let mapping = g.load_mapping()?;
    let groups = admin::rejects_by_reason(&g.db()?, reason, ids, mapping.as_deref()).await?;
    match g.output {
        OutputFormat::Text => print_groups(groups),
        OutputFormat::Json => print_json(&RejectsJson::from(groups))?,
    }
    Ok(())
}

fn print_groups(groups: Vec<ReasonGroup>) {
    if groups.is_empty() {
        println!("no rejects");
    }
    for group in groups {
        println!("{}\t{}", group.reason, group.count);
        for id in group.message_ids {
            println!("  {id}");
        }
    }
}

/// `rejects list --output json`: keyed by reason like the run summary's
/// `rejected_by_reason`, so the two compare directly. Message ids only, never bodies.
#[derive(Debug, Serialize)]
struct RejectsJson {
    /// Rejects listed (of `--reason` only, when given).
    total: i64,
    by_reason: BTreeMap<String, ReasonJson>,
}

#[derive(Debug, Serialize)]
struct ReasonJson {
    count: i64,
    /// The oldest, at most `--ids` of them.
    message_ids: Vec<String>,
}

impl From<Vec<ReasonGroup>> for RejectsJson {
    fn from(groups: Vec<ReasonGroup>) -> Self {
        let total = groups.iter().map(|g| g.count).sum();
        let by_reason = groups
            .into_iter()
            .map(|g| {
                let ids = ReasonJson {
                    count: g.count,
                    message_ids: g.message_ids,
                };
                (g.reason, ids)
            })
            .collect();
        Self { total, by_reason }
    }
}

pub(super) async fn replay(
    g: &GlobalArgs,
    reason: &Option<String>,
    id: &Option<String>,
    batch_size: i64,
) -> Result<(), Failure> {
    let keyring = g.keys().load().await?;
    let filter = RejectFilter {
        reason: reason.clone(),
        id: id.clone(),
        without_subject_token: false,
    };
    let mapping = g.load_mapping()?;
    let summary = replay::replay(
        &g.db()?,
        &keyring,
        &filter,
        batch_size,
        g.framing(),
        mapping,
    )
    .await?;
    println!("{summary}");
    Ok(())
}
