//! Erasure's statements: one subject's rows, table by table, and its quarantined bodies,
//! counted or deleted in one transaction with the audit row that says it happened.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::mapped::quote;
use super::DbError;

/// The rows of one table whose column holds one of `values` (the subject as stored: the
/// value itself, or its tokens under every key).
#[derive(Debug, Clone)]
pub struct Target {
    /// Resolved and quoted `schema.table`.
    pub table: String,
    /// The subject column.
    pub column: String,
    /// What the column holds for the subject.
    pub values: Vec<String>,
}

/// What the audit row of an erasure records: never the subject, only its fingerprint.
#[derive(Debug, Clone)]
pub struct ForgetAudit<'a> {
    /// The operator's reason.
    pub reason: &'a str,
    /// SHA-256 of the subject.
    pub fingerprint: String,
}

/// The rejects of `rejects_table` whose subject token is one of `tokens`.
pub async fn rejects_by_token(
    client: &Client,
    rejects_table: &str,
    tokens: &[String],
) -> Result<Vec<String>, DbError> {
    let sql = format!("SELECT message_id FROM {rejects_table} WHERE subject_token = ANY($1)");
    Ok(client
        .query(&sql, &[&tokens])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Counts (`audit` `None`: a dry run) or deletes, in one transaction, each target's rows and
/// the rejects `reject_ids` of `rejects_table`; returns the count per table (the rejects
/// table last). A deletion writes its audit row in the same transaction.
pub async fn forget(
    client: &mut Client,
    targets: &[Target],
    rejects_table: &str,
    reject_ids: &[String],
    audit: Option<ForgetAudit<'_>>,
) -> Result<BTreeMap<String, u64>, DbError> {
    let tx = client.transaction().await?;
    let mut counts = BTreeMap::new();
    for t in targets {
        let verb = if audit.is_some() {
            "DELETE"
        } else {
            "SELECT count(*)"
        };
        let sql = format!(
            "{verb} FROM {} WHERE {}::text = ANY($1)",
            t.table,
            quote(&t.column)
        );
        let n = match &audit {
            Some(_) => tx.execute(&sql, &[&t.values]).await?,
            None => tx.query_one(&sql, &[&t.values]).await?.get::<_, i64>(0) as u64,
        };
        *counts.entry(t.table.clone()).or_insert(0) += n;
    }
    let n = match &audit {
        Some(_) => {
            let sql = format!("DELETE FROM {rejects_table} WHERE message_id = ANY($1)");
            tx.execute(&sql, &[&reject_ids]).await?
        }
        None => reject_ids.len() as u64,
    };
    counts.insert(rejects_table.to_owned(), n);
    if let Some(a) = audit {
        let counted = serde_json::to_value(&counts).unwrap_or_default();
        let total: u64 = counts.values().sum();
        tx.execute(
            "INSERT INTO sqs2pg_reveal_audit
               (os_user, host, action, column_name, reason, values_count, fingerprints, counts)
             VALUES ($1, $2, 'forget', 'subject', $3, $4, ARRAY[$5::text], $6::text::jsonb)",
            &[
                &whoami::username().unwrap_or_else(|_| "unknown".into()),
                &whoami::hostname().unwrap_or_else(|_| "unknown".into()),
                &a.reason,
                &(i32::try_from(total).unwrap_or(i32::MAX)),
                &a.fingerprint,
                &counted.to_string(),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(counts)
}
