//! Replay: quarantined bodies through decode and mask again, against the table as it is
//! now (for example after an operator changed `app_version` to text). Each batch is one
//! transaction that deletes the rejects that now load and inserts their rows, so an
//! interrupted replay leaves every message exactly once, as a row or as a reject. A row the
//! database refuses stays a reject (`database_error:<SQLSTATE>`) and the replay goes on.

use std::collections::BTreeMap;

use crate::config::DbConfig;
pub use crate::db::rejects::RejectFilter;
use crate::db::rejects::{self, ReplayReport, StoredReject};
use crate::db::Sink;
use crate::decode::{Framing, RejectReason};
use crate::mapping::Mapping;
use crate::mask::{Column, Keyring, Masker};
use crate::source::Received;
use crate::transform::{transform, Outcome, Recipe};

/// A reject still: its id, its reason, and the route that took it (mapped runs).
type Still = (String, RejectReason, Option<String>);

use super::OpsError;

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Rejects looked at.
    pub examined: u64,
    /// Became rows (and left the rejects).
    pub loaded: u64,
    /// Still rejected (reason updated where it changed), by reason.
    pub still_rejected: BTreeMap<String, u64>,
    /// Taken by a concurrent replay.
    pub skipped: u64,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "examined            {}", self.examined)?;
        writeln!(f, "loaded              {}", self.loaded)?;
        write!(
            f,
            "still rejected      {}",
            self.still_rejected.values().sum::<u64>()
        )?;
        for (reason, n) in &self.still_rejected {
            write!(f, "\n  {reason}: {n}")?;
        }
        if self.skipped > 0 {
            write!(f, "\nskipped (taken by another replay) {}", self.skipped)?;
        }
        Ok(())
    }
}

/// Replays the rejects `filter` selects, `batch` per transaction, reading each body as
/// `framing` says (the quarantined body is the whole SQS body, envelope and all); under
/// `mapping`, through its routes into their tables, from its rejects table.
pub async fn replay(
    db: &DbConfig,
    keyring: &Keyring,
    filter: &RejectFilter,
    batch: i64,
    framing: Framing,
    mapping: Option<std::sync::Arc<Mapping>>,
) -> Result<ReplaySummary, OpsError> {
    let reader = crate::db::connect(db).await?;
    let shape = match mapping {
        None => crate::db::schema::inspect(&reader, keyring.writing_kid().len()).await?,
        Some(m) => {
            let kid_len = keyring.writing_kid().len();
            crate::db::schema::inspect_mapped(&reader, m, kid_len).await?
        }
    };
    let recipe = shape.recipe();
    let mut writer = Sink::connect(db, &shape).await?;
    let table = writer.rejects_table().to_owned();
    let mut masker = Masker::new(keyring);
    let mut summary = ReplaySummary::default();
    let mut cursor = String::new();
    loop {
        let page = rejects::page_of(&reader, &table, &cursor, filter, batch).await?;
        let Some(last) = page.last() else { break };
        cursor = last.message_id.clone();
        let (rows, still) = retransform(page, &recipe, framing, &mut masker, &mut summary)?;
        let report = match rejects::replay(&mut writer, &rows, &still).await {
            Err(e) if e.is_data() => {
                isolate_refused(&mut writer, rows, still, &mut summary).await?
            }
            other => other?,
        };
        summary.loaded += report.loaded;
        summary.skipped += report.skipped;
        tracing::info!(
            loaded = report.loaded,
            still_rejected = report.still_rejected,
            "replayed a batch"
        );
    }
    Ok(summary)
}

/// A page the database refused as a whole (one row outside every partition, an operator's
/// CHECK): its rows go again in halves until each refused one is alone; those stay rejects,
/// reason `database_error:<SQLSTATE>`, and the others load, so one row cannot hold back the
/// rest of the quarantine.
async fn isolate_refused(
    writer: &mut Sink,
    rows: Vec<(String, Outcome)>,
    mut still: Vec<Still>,
    summary: &mut ReplaySummary,
) -> Result<ReplayReport, OpsError> {
    let mut report = ReplayReport::default();
    let mut parts = vec![rows];
    while let Some(mut part) = parts.pop() {
        match rejects::replay(writer, &part, &[]).await {
            Ok(r) => {
                report.loaded += r.loaded;
                report.skipped += r.skipped;
            }
            Err(e) if e.is_data() && part.len() > 1 => {
                let half = part.split_off(part.len() / 2);
                parts.extend([half, part]);
            }
            Err(e) if e.is_data() => {
                let (id, outcome) = part.remove(0);
                let reason = RejectReason::Database(e.sqlstate().unwrap_or("unknown").to_owned());
                tracing::warn!(message_id = %id, %reason, error = %e, "the database refused a replayed row; it stays a reject");
                *summary
                    .still_rejected
                    .entry(reason.to_string())
                    .or_default() += 1;
                still.push((id, reason, route_of(&outcome, writer)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    report.still_rejected = rejects::replay(writer, &[], &still).await?.still_rejected;
    Ok(report)
}

/// The name of the route a mapped row was made for.
fn route_of(outcome: &Outcome, writer: &Sink) -> Option<String> {
    match outcome {
        Outcome::Mapped(row) => writer.route_name(row.route),
        _ => None,
    }
}

/// A page of rejects as what now loads (rows, or skips) and rejects that still do not.
#[allow(clippy::type_complexity)]
fn retransform(
    page: Vec<StoredReject>,
    recipe: &Recipe,
    framing: Framing,
    masker: &mut Masker,
    summary: &mut ReplaySummary,
) -> Result<(Vec<(String, Outcome)>, Vec<Still>), OpsError> {
    let mut rows = Vec::new();
    let mut still = Vec::new();
    for r in page {
        summary.examined += 1;
        let body = masker
            .open(Column::Body, &r.body_ciphertext)
            .map_err(|e| OpsError::Unopenable(r.message_id.clone(), e))?;
        let msg = Received {
            message_id: r.message_id.clone(),
            receipt_handle: String::new(),
            body: crate::pii::Pii::new(String::from_utf8_lossy(&body).into_owned()),
            sent_at: r.sent_at,
            receive_count: r.receive_count,
            framing,
            extra: Default::default(),
        };
        match transform(&msg, recipe, masker).outcome {
            Outcome::Reject(rej) => {
                *summary
                    .still_rejected
                    .entry(rej.reason.to_string())
                    .or_default() += 1;
                still.push((r.message_id, rej.reason, rej.route));
            }
            loads => rows.push((r.message_id, loads)),
        }
    }
    Ok((rows, still))
}
