//! The chores around the stream: create the tables, list the quarantine, fill a queue,
//! make a key.

use std::path::Path;

use crate::config::{ConfigError, DbConfig, SqsConfig};
use crate::db::rejects::ReasonGroup;
use crate::db::schema::MigrateReport;
use crate::mask::Keyring;
use crate::source::fifo::MessageGroup;
use crate::source::Source;
use crate::synth::{self, SynthOptions};

use super::OpsError;

/// Creates the tables that are missing (and with `roles` the least-privilege roles).
pub async fn migrate(
    db: &DbConfig,
    roles: bool,
    mapping: Option<&crate::mapping::Mapping>,
) -> Result<MigrateReport, OpsError> {
    let mut client = crate::db::connect(db).await?;
    let mut report = crate::db::schema::migrate(&mut client, roles).await?;
    // A mapping's own rejects table, after the one it is made like.
    if let Some(m) = mapping.filter(|m| m.rejects_table != crate::db::rejects::REJECTS_TABLE) {
        if crate::db::rejects::ensure_table(&client, &m.rejects_table).await? {
            report.created_rejects_table = Some(m.rejects_table.clone());
        }
    }
    Ok(report)
}

/// Rejects by reason, with up to `ids` message ids each, of `user_logins_rejects` or of
/// `mapping`'s rejects table.
pub async fn rejects_by_reason(
    db: &DbConfig,
    reason: Option<&str>,
    ids: i64,
    mapping: Option<&crate::mapping::Mapping>,
) -> Result<Vec<ReasonGroup>, OpsError> {
    let client = crate::db::connect(db).await?;
    if mapping.is_none() {
        crate::db::schema::inspect(&client, crate::mapping::compile::MIN_KID_LEN).await?;
    }
    let table = crate::db::rejects::table_of(&client, mapping).await?;
    Ok(crate::db::rejects::summary(&client, &table, reason, ids).await?)
}

/// What `send` sends.
#[derive(Debug, Clone)]
pub enum Bodies<'a> {
    /// Each element of a JSON array, or each non-blank line of a JSONL file, verbatim.
    File(&'a Path),
    /// Synthetic login events.
    Synthetic(SynthOptions),
}

/// Sends the bodies (grouped by `grouping` on a FIFO queue); returns how many were sent and
/// to which queue.
pub async fn send(
    sqs: &SqsConfig,
    bodies: Bodies<'_>,
    concurrency: usize,
    grouping: MessageGroup,
) -> Result<(u64, String), OpsError> {
    let bodies = match bodies {
        Bodies::File(path) => read_bodies(path)?,
        Bodies::Synthetic(opts) => synth::generate(opts),
    };
    let source = Source::connect(sqs).await?;
    let sent = source.send_grouped(&bodies, concurrency, grouping).await?;
    Ok((sent, source.queue_url().to_owned()))
}

/// Each element of a JSON array, or each non-blank line of a JSONL file, verbatim.
pub fn read_bodies(path: &Path) -> Result<Vec<String>, OpsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OpsError::Input(format!("cannot read {}: {e}", path.display())))?;
    if text.trim_start().starts_with('[') {
        let items: Vec<Box<serde_json::value::RawValue>> = serde_json::from_str(&text)
            .map_err(|e| ConfigError::Invalid {
                name: "--file",
                problem: format!(
                    "{} starts with '[' but is not a JSON array (line {}, column {}); fix it or use one message per line",
                    path.display(),
                    e.line(),
                    e.column()
                ),
            })?;
        Ok(items.into_iter().map(|v| v.get().to_owned()).collect())
    } else {
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// A new keyring entry: 64 random bytes (`kid=BASE64`), or with `kms_key_id` a data key
/// KMS makes and wraps (`kid=kms:BLOB`).
pub async fn keygen(kid: &str, kms_key_id: Option<&str>) -> Result<String, OpsError> {
    match kms_key_id {
        None => Keyring::generate_entry(kid).map_err(|source| {
            ConfigError::Key {
                origin: "--kid",
                source,
            }
            .into()
        }),
        Some(key_id) => {
            let sdk = crate::aws::sdk_config().await;
            Ok(crate::mask::kms::generate_entry(kid, key_id, &sdk).await?)
        }
    }
}
