//! The quarantine, `user_logins_rejects`: pages of it for replay, counts for `rejects list`,
//! one body for `reveal --reject`, and the replay transaction.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::{DbError, Sink};
use crate::decode::RejectReason;
use crate::transform::Outcome;

/// One quarantined message as stored.
#[derive(Debug, Clone)]
pub struct StoredReject {
    /// SQS message id.
    pub message_id: String,
    /// Current reason, as stored.
    pub reason: String,
    /// Sealed body.
    pub body_ciphertext: String,
    /// `ApproximateReceiveCount` when rejected.
    pub receive_count: Option<i32>,
    /// `SentTimestamp`.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Which rejects a page holds.
#[derive(Debug, Clone, Default)]
pub struct RejectFilter {
    /// Only this reason.
    pub reason: Option<String>,
    /// Only this message id.
    pub id: Option<String>,
    /// Only rejects without a subject token (a mapped rejects table's).
    pub without_subject_token: bool,
}

/// The rejects table of the built-in login load.
pub const REJECTS_TABLE: &str = "user_logins_rejects";

/// Up to `limit` rejects of `table` (resolved and quoted) after message id `after`, in
/// message-id order.
pub async fn page_of(
    client: &Client,
    table: &str,
    after: &str,
    filter: &RejectFilter,
    limit: i64,
) -> Result<Vec<StoredReject>, DbError> {
    let rows = client
        .query(
            &format!("SELECT message_id, reason, body_ciphertext, receive_count, sent_at FROM {table}
              WHERE message_id > $1 AND ($2::text IS NULL OR reason = $2) AND ($3::text IS NULL OR message_id = $3){}
              ORDER BY message_id LIMIT $4", if filter.without_subject_token { " AND subject_token IS NULL" } else { "" }),
            &[&after, &filter.reason, &filter.id, &limit],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredReject {
            message_id: r.get("message_id"),
            reason: r.get("reason"),
            body_ciphertext: r.get("body_ciphertext"),
            receive_count: r.get("receive_count"),
            sent_at: r.get("sent_at"),
        })
        .collect())
}

/// Makes `name` (a mapping's `rejects_table`, as SQL spells it unquoted) a rejects table:
/// created like `user_logins_rejects` when there is none, given `route` and `subject_token`
/// when it lacks them. True when it was created.
pub async fn ensure_table(client: &Client, name: &str) -> Result<bool, DbError> {
    let plain = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if name.split('.').count() > 2 || !name.split('.').all(plain) {
        return Err(DbError::Incompatible(format!(
            "rejects_table {name:?}: migrate creates only a plain [schema.]name; create it yourself with the columns of user_logins_rejects plus route and subject_token"
        )));
    }
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await?
        .get(0);
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE TABLE {name} (LIKE user_logins_rejects INCLUDING ALL)"
            ))
            .await?;
        return Ok(true);
    }
    client
        .batch_execute(&format!(
            "ALTER TABLE {name} ADD COLUMN IF NOT EXISTS route text, ADD COLUMN IF NOT EXISTS subject_token text"
        ))
        .await?;
    Ok(false)
}

/// Up to `limit` rejects of `user_logins_rejects` after message id `after`.
pub async fn page(
    client: &Client,
    after: &str,
    filter: &RejectFilter,
    limit: i64,
) -> Result<Vec<StoredReject>, DbError> {
    page_of(client, REJECTS_TABLE, after, filter, limit).await
}

/// One message's reject in `table`, if it has one.
pub async fn find(
    client: &Client,
    table: &str,
    message_id: &str,
) -> Result<Option<StoredReject>, DbError> {
    let filter = RejectFilter {
        id: Some(message_id.to_owned()),
        ..RejectFilter::default()
    };
    Ok(page_of(client, table, "", &filter, 1)
        .await?
        .into_iter()
        .next())
}

/// The rejects table a mapping names (`rejects_table`, as SQL spells it), resolved and
/// quoted; `user_logins_rejects` without a mapping.
pub async fn table_of(
    client: &Client,
    mapping: Option<&crate::mapping::Mapping>,
) -> Result<String, DbError> {
    let Some(name) = mapping.map(|m| m.rejects_table.as_str()) else {
        return Ok(REJECTS_TABLE.to_owned());
    };
    client
        .query_opt(
            "SELECT format('%I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = to_regclass($1)",
            &[&name],
        )
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            DbError::Incompatible(format!(
                "the mapping's rejects table {name} does not exist: `sqs2pg migrate --mapping FILE` creates it"
            ))
        })
}

/// The rejects of one reason: how many, and the first message ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonGroup {
    /// The stored reason.
    pub reason: String,
    /// Rejects with it.
    pub count: i64,
    /// The oldest message ids, at most as many as asked for.
    pub message_ids: Vec<String>,
}

/// Counts of rejects by reason, most first, with up to `ids_per_reason` message ids each
/// (never bodies).
pub async fn summary(
    client: &Client,
    table: &str,
    reason: Option<&str>,
    ids_per_reason: i64,
) -> Result<Vec<ReasonGroup>, DbError> {
    let rows = client
        .query(
            &format!("SELECT reason, count(*) AS count,
                    (array_agg(message_id ORDER BY rejected_at, message_id))[1:$2::int8::int4] AS ids
               FROM {table} WHERE $1::text IS NULL OR reason = $1
              GROUP BY reason ORDER BY count(*) DESC, reason"),
            &[&reason, &ids_per_reason],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ReasonGroup {
            reason: r.get("reason"),
            count: r.get("count"),
            message_ids: r.get("ids"),
        })
        .collect())
}

/// What one replayed batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Rejects that became rows (and left the rejects table).
    pub loaded: u64,
    /// Rejects that still fail, with their reason updated where it changed.
    pub still_rejected: u64,
    /// Rejects another replay took first.
    pub skipped: u64,
}

/// Moves replayed rejects: in one transaction, deletes each `rows` entry from the rejects and
/// writes what it now becomes (a row, or for a mapped skip route nothing), only for the ids
/// this transaction actually deleted, so two concurrent replays cannot both load one
/// message; and updates the reason (and route) of `still`.
pub async fn replay(
    writer: &mut Sink,
    rows: &[(String, Outcome)],
    still: &[(String, RejectReason, Option<String>)],
) -> Result<ReplayReport, DbError> {
    let table = writer.rejects_table().to_owned();
    let (client, row_writer, mapped_writer) = writer.replay_parts();
    let tx = client.transaction().await?;
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    let mut taken: HashSet<String> = tx
        .query(
            &format!("DELETE FROM {table} WHERE message_id = ANY($1) RETURNING message_id"),
            &[&ids],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let (mut logins, mut mapped) = (Vec::new(), Vec::new());
    let mut report = ReplayReport::default();
    for (id, outcome) in rows {
        if !taken.remove(id) {
            report.skipped += 1;
            continue;
        }
        match outcome {
            Outcome::Row(row) => logins.push(row),
            Outcome::Mapped(row) => mapped.push(row),
            // A skip route's message is ledgered already: leaving the rejects is all.
            Outcome::Skip { .. } | Outcome::Reject(_) => {}
        }
    }
    if let Some(w) = row_writer {
        report.loaded += w.insert(&tx, &logins).await?;
    }
    if let Some(w) = mapped_writer.filter(|_| !mapped.is_empty()) {
        report.loaded += w
            .insert(&tx, &mapped)
            .await?
            .iter()
            .map(|(_, c)| c.rows)
            .sum::<u64>();
    }
    if !still.is_empty() {
        let ids: Vec<&str> = still.iter().map(|(i, _, _)| i.as_str()).collect();
        let reasons: Vec<String> = still.iter().map(|(_, r, _)| r.to_string()).collect();
        let routes: Vec<Option<&str>> = still.iter().map(|(_, _, r)| r.as_deref()).collect();
        let sql = if mapped_writer.is_some() {
            format!("UPDATE {table} r SET reason = m.reason, route = m.route
               FROM unnest($1::text[], $2::text[], $3::text[]) AS m(id, reason, route)
              WHERE r.message_id = m.id AND (r.reason, r.route) IS DISTINCT FROM (m.reason, m.route)")
        } else {
            format!(
                "UPDATE {table} r SET reason = m.reason
               FROM unnest($1::text[], $2::text[]) AS m(id, reason)
              WHERE r.message_id = m.id AND r.reason <> m.reason"
            )
        };
        if mapped_writer.is_some() {
            tx.execute(&sql, &[&ids, &reasons, &routes]).await?;
        } else {
            tx.execute(&sql, &[&ids, &reasons]).await?;
        }
        report.still_rejected = still.len() as u64;
    }
    tx.commit().await?;
    Ok(report)
}
