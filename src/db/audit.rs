//! The reveal audit: every unmasking (`reveal`, `reveal --reject`) and forward lookup
//! (`mask`) writes one row to `sqs2pg_reveal_audit` *before* anything is printed. The row
//! says who (database user, OS user, host), why (the required `--reason`), what (action,
//! column) and how much (how many values); never the values themselves.

use tokio_postgres::Client;

use super::DbError;

/// What is about to be opened or looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry<'a> {
    /// `reveal`, `reveal_reject` or `mask`.
    pub action: &'static str,
    /// The column (`ip`, `device_id`, `body`, or `any`).
    pub column: &'a str,
    /// The operator's stated reason.
    pub reason: &'a str,
    /// How many values.
    pub values: i32,
}

/// Writes the audit row. Callers print nothing unless this succeeds.
pub async fn record(client: &Client, entry: &AuditEntry<'_>) -> Result<(), DbError> {
    let os_user = whoami::username().unwrap_or_else(|_| "unknown".into());
    let host = whoami::hostname().unwrap_or_else(|_| "unknown".into());
    // No RETURNING: the revealer role may append to the audit but not read it.
    client
        .execute(
            "INSERT INTO sqs2pg_reveal_audit(os_user, host, action, column_name, reason, values_count)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&os_user, &host, &entry.action, &entry.column, &entry.reason, &entry.values],
        )
        .await
        .map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                DbError::NotMigrated("sqs2pg_reveal_audit")
            }
            _ => e.into(),
        })?;
    Ok(())
}
