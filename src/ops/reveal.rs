//! Unmasking for key holders, and the forward look-up: every call writes its audit row
//! before any value is opened or made, so nothing is shown that the audit does not record.

use crate::config::{ConfigError, DbConfig};
use crate::db::audit::{self, AuditEntry};
use crate::mask::{Column, Keyring, Masker, RevealError};

use super::OpsError;

/// Opens each token (`None` column: each column is tried), one result per input line; a
/// blank line stays blank. Counts first, so the audit row says how many values are opened
/// and `max` can refuse before anything is opened.
pub async fn reveal_tokens(
    db: &DbConfig,
    keyring: &Keyring,
    column: Option<Column>,
    reason: &str,
    max: usize,
    lines: &[String],
) -> Result<Vec<Result<String, RevealError>>, OpsError> {
    let count = lines.iter().filter(|l| !l.trim().is_empty()).count();
    if count > max {
        return Err(ConfigError::Invalid {
            name: "--max",
            problem: format!("{count} tokens on stdin, more than --max {max}: raise --max on purpose to unmask more at once"),
        }
        .into());
    }
    let client = crate::db::connect(db).await?;
    let entry = AuditEntry {
        action: "reveal",
        column: column.map_or("any", Column::as_str),
        reason,
        values: i32::try_from(count).unwrap_or(i32::MAX),
    };
    audit::record(&client, &entry).await?;
    let mut masker = Masker::new(keyring);
    Ok(lines
        .iter()
        .map(|line| {
            let token = line.trim();
            if token.is_empty() {
                return Ok(String::new());
            }
            match column {
                Some(c) => masker.reveal(c, token),
                None => masker.reveal_any(token).map(|(_, v)| v),
            }
        })
        .collect())
}

/// A quarantined message's body, and the reason it was rejected.
pub async fn reveal_reject(
    db: &DbConfig,
    keyring: &Keyring,
    message_id: &str,
    reason: &str,
) -> Result<(String, String), OpsError> {
    let client = crate::db::connect(db).await?;
    let reject = crate::db::rejects::find(&client, message_id)
        .await?
        .ok_or_else(|| OpsError::NoSuchReject(message_id.to_owned()))?;
    let entry = AuditEntry {
        action: "reveal_reject",
        column: "body",
        reason,
        values: 1,
    };
    audit::record(&client, &entry).await?;
    let body = Masker::new(keyring)
        .reveal(Column::Body, &reject.body_ciphertext)
        .map_err(|e| OpsError::Unopenable(message_id.to_owned(), e))?;
    Ok((body, reject.reason))
}

/// The token of one raw value, to find its rows. An ip is checked first.
pub async fn mask_value(
    db: &DbConfig,
    keyring: &Keyring,
    column: Column,
    reason: &str,
    value: &str,
) -> Result<String, OpsError> {
    let mut masker = Masker::new(keyring);
    let token = match column {
        Column::Ip => {
            let ip = crate::decode::parse_ip(value).map_err(|_| ConfigError::Invalid {
                name: "VALUE",
                problem: "not an IPv4 or IPv6 address".into(),
            })?;
            masker.mask_ip(ip)
        }
        _ => masker.mask_device_id(value),
    };
    let client = crate::db::connect(db).await?;
    let entry = AuditEntry {
        action: "mask",
        column: column.as_str(),
        reason,
        values: 1,
    };
    audit::record(&client, &entry).await?;
    Ok(token)
}
