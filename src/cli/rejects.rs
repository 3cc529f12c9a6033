//! `sqs2pg rejects list|replay`: the quarantine by reason, and its replay.

use super::args::GlobalArgs;
use crate::error::Failure;
use crate::ops::admin;
use crate::ops::replay::{self, RejectFilter};

pub(super) async fn list(g: &GlobalArgs, reason: Option<&str>, ids: i64) -> Result<(), Failure> {
    let groups = admin::rejects_by_reason(&g.db()?, reason, ids).await?;
    if groups.is_empty() {
        println!("no rejects");
    }
    for group in groups {
        println!("{}\t{}", group.reason, group.count);
        for id in group.message_ids {
            println!("  {id}");
        }
    }
    Ok(())
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
    };
    let summary = replay::replay(&g.db()?, &keyring, &filter, batch_size, g.framing()).await?;
    println!("{summary}");
    Ok(())
}
