//! Unmasking for key holders, and the forward look-up: every call writes its audit row
//! before any value is opened or printed, so nothing is shown that the audit does not record,
//! and the row holds the fingerprint of every token concerned, so it says whose data it was.

use crate::config::{ConfigError, DbConfig};
use crate::db::audit::{self, fingerprint, AuditEntry};
use crate::mapping::Mapping;
use crate::mask::{Column, Context, Keyring, Masker, RevealError};
use crate::pii::Pii;

use super::OpsError;

/// The contexts a token is tried under when none is named: `ip`, `device_id`, `body`, then
/// each token context of `mapping` that is not one of those, in file order.
pub fn tried_contexts(mapping: Option<&Mapping>) -> Vec<Context> {
    let mut contexts: Vec<Context> = Column::ALL.map(Context::Column).into();
    for name in mapping.map(Mapping::token_contexts).unwrap_or_default() {
        let context = Context::named(name);
        if !contexts.contains(&context) {
            contexts.push(context);
        }
    }
    contexts
}

/// Opens each token (`None` column: each of [`tried_contexts`] of `mapping`), one result
/// per input line; a blank line stays blank. Counts first, so the audit row says how many
/// values are opened and `max` can refuse before anything is opened.
pub async fn reveal_tokens(
    db: &DbConfig,
    keyring: &Keyring,
    column: Option<&Context>,
    mapping: Option<&Mapping>,
    reason: &str,
    max: usize,
    lines: &[String],
) -> Result<Vec<Result<String, RevealError>>, OpsError> {
    let tokens: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.len() > max {
        return Err(ConfigError::Invalid {
            name: "--max",
            problem: format!("{} tokens on stdin, more than --max {max}: raise --max on purpose to unmask more at once", tokens.len()),
        }
        .into());
    }
    let client = crate::db::connect(db).await?;
    let entry = AuditEntry {
        action: "reveal",
        column: column.map_or("any", Context::as_str),
        reason,
        values: count(tokens.len()),
        fingerprints: tokens.iter().map(|t| fingerprint(t)).collect(),
    };
    audit::record(&client, &entry).await?;
    let mut masker = Masker::new(keyring);
    let tried = match column {
        Some(c) => vec![c.clone()],
        None => tried_contexts(mapping),
    };
    Ok(lines
        .iter()
        .map(|line| {
            let token = line.trim();
            if token.is_empty() {
                return Ok(String::new());
            }
            masker.reveal_first(&tried, token).map(|(_, v)| v)
        })
        .collect())
}

/// A quarantined message's body, and the reason it was rejected. The audit fingerprints the
/// message id: unlike the sealed body, it stays the same across `rekey`.
pub async fn reveal_reject(
    db: &DbConfig,
    keyring: &Keyring,
    message_id: &str,
    reason: &str,
    mapping: Option<&crate::mapping::Mapping>,
) -> Result<(String, String), OpsError> {
    let client = crate::db::connect(db).await?;
    let table = crate::db::rejects::table_of(&client, mapping).await?;
    let reject = crate::db::rejects::find(&client, &table, message_id)
        .await?
        .ok_or_else(|| OpsError::NoSuchReject(message_id.to_owned()))?;
    let entry = AuditEntry {
        action: "reveal_reject",
        column: "body",
        reason,
        values: 1,
        fingerprints: vec![fingerprint(message_id)],
    };
    audit::record(&client, &entry).await?;
    let body = Masker::new(keyring)
        .reveal(Column::Body, &reject.body_ciphertext)
        .map_err(|e| OpsError::Unopenable(message_id.to_owned(), e))?;
    Ok((body, reject.reason))
}

/// The token of each raw value (one per line; a blank line stays blank), to find its rows:
/// an address under `ip` (any spelling of it), the text itself under any other context.
/// Every value is checked before anything is audited or made: a bad ip refuses the whole
/// input, naming its line, never its text.
pub async fn mask_values(
    db: &DbConfig,
    keyring: &Keyring,
    context: &Context,
    reason: &str,
    values: &[Pii<String>],
) -> Result<Vec<String>, OpsError> {
    let mut masker = Masker::new(keyring);
    let mut bad = Vec::new();
    let tokens: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(n, v)| match (context, v.expose().as_str()) {
            (_, "") => String::new(),
            (Context::Column(Column::Ip), raw) => match crate::decode::parse_ip(raw.trim()) {
                Ok(ip) => masker.mask_ip(ip),
                Err(_) => {
                    bad.push((n + 1).to_string());
                    String::new()
                }
            },
            (_, raw) => masker.seal_context(context.as_str(), raw.as_bytes()),
        })
        .collect();
    if !bad.is_empty() {
        return Err(ConfigError::Invalid {
            name: "stdin",
            problem: format!(
                "line {} is not an IPv4 or IPv6 address; nothing was masked",
                bad.join(", ")
            ),
        }
        .into());
    }
    let made: Vec<&String> = tokens.iter().filter(|t| !t.is_empty()).collect();
    let client = crate::db::connect(db).await?;
    let entry = AuditEntry {
        action: "mask",
        column: context.as_str(),
        reason,
        values: count(made.len()),
        fingerprints: made.iter().map(|t| fingerprint(t)).collect(),
    };
    audit::record(&client, &entry).await?;
    Ok(tokens)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_column_the_login_columns_then_the_mappings_contexts_are_tried() {
        let names = |m: Option<&Mapping>| -> Vec<String> {
            tried_contexts(m).iter().map(|c| c.to_string()).collect()
        };
        assert_eq!(names(None), ["ip", "device_id", "body"]);
        let login = crate::mapping::login::mapping().unwrap();
        assert_eq!(names(Some(&login)), ["ip", "device_id", "body"]);
        let file = "[[route]]\nname = \"o\"\ntable = \"t\"\n[route.columns]\n\
                    e = { path = \"/e\", token = \"email\" }\n\
                    i = { path = \"/i\", as = \"ip\", token = \"ip\" }\n\
                    p = { path = \"/p\", token = \"phone\" }\n";
        let m = Mapping::parse("m.toml", file).unwrap();
        assert_eq!(
            names(Some(&m)),
            ["ip", "device_id", "body", "email", "phone"]
        );
        assert_eq!(tried_contexts(Some(&m))[0], Context::Column(Column::Ip));
    }
}
