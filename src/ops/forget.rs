//! The right to erasure: `forget --subject VALUE`. For every route that names a `subject`,
//! the rows whose subject column holds the value (for a token column, any of its tokens
//! under every key of the keyring), and every quarantined body of that subject, are
//! deleted in one transaction with an audit row (the subject's SHA-256, the counts per
//! table, the reason). Idempotent: a second run finds nothing.
//!
//! A quarantined body is the subject's when its reject carries the subject's token (set when
//! the body was quarantined under a route that names a subject), else, opened, when its
//! event parses far enough to read a subject route's subject path and that holds the value,
//! or, for a body that does not parse, when it holds the value as a JSON string
//! (`"VALUE"`). Bodies the keyring cannot open are counted, not guessed at.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::DbConfig;
use crate::db::forget::{ForgetAudit, Target};
use crate::db::rejects::{page_of, RejectFilter};
use crate::decode::envelope::Envelope;
use crate::mapping::compile::{ColumnPlan, Plan};
use crate::mapping::convert::Converter;
use crate::mapping::live::Live;
use crate::mapping::{login, subject, Mapping};
use crate::mask::{Column, Keyring, Masker};
use crate::pii::Pii;

use super::OpsError;

/// Rejects read per page while looking for the subject's.
const PAGE: i64 = 500;

/// What an erasure deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForgetReport {
    /// Rows per table, the rejects table included (its quarantined bodies).
    pub tables: BTreeMap<String, u64>,
    /// Quarantined bodies the keyring could not open, so not checked.
    pub unreadable: u64,
    /// Nothing was deleted.
    pub dry_run: bool,
}

/// The request: who, why, and whether to delete.
#[derive(Debug)]
pub struct Request<'a> {
    /// The subject's value as the events carry it.
    pub subject: &'a Pii<String>,
    /// Why (recorded in the audit).
    pub reason: &'a str,
    /// Count only.
    pub dry_run: bool,
    /// How quarantined bodies are read (`--envelope`).
    pub envelope: Envelope,
}

/// Erases one subject across `mapping` (the built-in login mapping when `None`).
pub async fn forget(
    db: &DbConfig,
    keyring: &Keyring,
    mapping: Option<Arc<Mapping>>,
    req: &Request<'_>,
) -> Result<ForgetReport, OpsError> {
    let mapping = match mapping {
        Some(m) => m,
        None => Arc::new(login::mapping()?),
    };
    let mut client = crate::db::connect(db).await?;
    let live = Live::read(mapping, &client, keyring.writing_kid().len()).await?;
    let mut masker = Masker::new(keyring);
    let subject = req.subject.expose();
    let targets = targets(&live.plan, subject, &mut masker);
    let table = live.plan.rejects_table.clone();
    // Rejects that carry a subject token are found by it; only the others are opened.
    let tokens = masker.seal_under_every_key(subject::CONTEXT, subject.as_bytes());
    let mut reject_ids = crate::db::forget::rejects_by_token(&client, &table, &tokens).await?;
    let mut unreadable = 0;
    let mut cursor = String::new();
    let unmarked = RejectFilter {
        without_subject_token: true,
        ..RejectFilter::default()
    };
    loop {
        let page = page_of(&client, &table, &cursor, &unmarked, PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = last.message_id.clone();
        for r in page {
            match masker.open(Column::Body, &r.body_ciphertext) {
                Ok(body) if names(&live.plan, &body, subject, req.envelope) => {
                    reject_ids.push(r.message_id)
                }
                Ok(_) => {}
                Err(_) => unreadable += 1,
            }
        }
    }
    let audit = (!req.dry_run).then(|| ForgetAudit {
        reason: req.reason,
        fingerprint: crate::db::audit::fingerprint(subject),
    });
    let tables =
        crate::db::forget::forget(&mut client, &targets, &table, &reject_ids, audit).await?;
    Ok(ForgetReport {
        tables,
        unreadable,
        dry_run: req.dry_run,
    })
}

/// Every subject column and what it holds for `subject`, each table and column once (two
/// routes may load one table).
fn targets(plan: &Plan, subject: &str, masker: &mut Masker) -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::new();
    for load in plan.routes.iter().filter_map(|r| r.load.as_ref()) {
        let Some(column) = load
            .columns
            .iter()
            .find(|c| Some(&c.name) == load.subject.as_ref())
        else {
            continue;
        };
        let values = stored(column, subject, masker);
        match targets
            .iter_mut()
            .find(|t| t.table == load.table && t.column == column.name)
        {
            Some(t) => {
                let new: Vec<String> = values
                    .into_iter()
                    .filter(|v| !t.values.contains(v))
                    .collect();
                t.values.extend(new);
            }
            None => targets.push(Target {
                table: load.table.clone(),
                column: column.name.clone(),
                values,
            }),
        }
    }
    targets
}

/// What `column` holds for `subject`: the value, or its tokens under every key.
fn stored(column: &ColumnPlan, subject: &str, masker: &mut Masker) -> Vec<String> {
    match &column.converter {
        Converter::Token {
            context, ip: true, ..
        } => match subject.parse() {
            Ok(ip) => masker.seal_under_every_key(context, &crate::mask::ip_plaintext(ip)),
            Err(_) => Vec::new(),
        },
        Converter::Token { context, .. } => {
            masker.seal_under_every_key(context, subject.as_bytes())
        }
        _ => vec![subject.to_owned()],
    }
}

/// Whether a quarantined body is `subject`'s: a subject route reads the value from its
/// event, or it holds no event but the value as a JSON string.
fn names(plan: &Plan, body: &[u8], subject: &str, envelope: Envelope) -> bool {
    if !subject::parses(body, envelope) {
        let quoted = serde_json::to_string(subject).unwrap_or_default();
        return String::from_utf8_lossy(body).contains(&quoted);
    }
    plan.routes
        .iter()
        .filter_map(|r| r.load.as_ref())
        .any(|load| subject::value_in(load, body, envelope).as_deref() == Some(subject))
}
