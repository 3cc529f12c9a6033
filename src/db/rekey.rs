//! Rekey's queries: what is still under an older key, a page of it, the update that puts
//! the re-encrypted values back, the longest token a new kid would make, and the walk's
//! progress kept in `sqs2pg_rekey_progress`. The walk itself is [`crate::ops::rekey`].

use tokio_postgres::{Client, GenericClient};

use super::DbError;

/// Rows and reject bodies whose tokens do not start with `prefix` (`v1:<writing kid>:`).
pub async fn pending(client: &Client, prefix: &str) -> Result<(u64, u64), DbError> {
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins
              WHERE NOT starts_with(masked_ip, $1) OR NOT starts_with(masked_device_id, $1)",
            &[&prefix],
        )
        .await?
        .get(0);
    let bodies: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins_rejects WHERE NOT starts_with(body_ciphertext, $1)",
            &[&prefix],
        )
        .await?
        .get(0);
    Ok((rows as u64, bodies as u64))
}

/// Rows and reject bodies holding a token (`v1:`…) under another key than `prefix`'s: what
/// a finished rekey leaves only when the keyring lacks a key (values that are not tokens at
/// all are not counted here).
pub async fn under_old_keys(client: &Client, prefix: &str) -> Result<(u64, u64), DbError> {
    let old = |c: &str| format!("(starts_with({c}, 'v1:') AND NOT starts_with({c}, $1))");
    let rows: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM user_logins WHERE {} OR {}",
                old("masked_ip"),
                old("masked_device_id")
            ),
            &[&prefix],
        )
        .await?
        .get(0);
    let bodies: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM user_logins_rejects WHERE {}",
                old("body_ciphertext")
            ),
            &[&prefix],
        )
        .await?
        .get(0);
    Ok((rows as u64, bodies as u64))
}

/// The longest token of `column` (`masked_ip` or `masked_device_id`) not under `prefix`,
/// less its kid: re-encrypted under a kid of n characters it becomes this plus n long (the
/// ciphertext of a value is the same length under every key).
pub async fn longest_without_kid(
    client: &Client,
    column: &'static str,
    prefix: &str,
) -> Result<Option<i32>, DbError> {
    Ok(client
        .query_one(
            &format!(
                "SELECT max(length({column}) - length(split_part({column}, ':', 2)))
                   FROM user_logins WHERE starts_with({column}, 'v1:') AND NOT starts_with({column}, $1)"
            ),
            &[&prefix],
        )
        .await?
        .get(0))
}

/// Where an interrupted walk over `table` towards `kid` stopped, if one did.
pub async fn progress(
    client: &impl GenericClient,
    table: &str,
    kid: &str,
) -> Result<Option<String>, DbError> {
    Ok(client
        .query_opt(
            "SELECT cursor FROM sqs2pg_rekey_progress WHERE table_name = $1 AND writing_kid = $2",
            &[&table, &kid],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Records, in the page's transaction, that the walk over `table` towards `kid` is done up
/// to `cursor`.
pub async fn save_progress(
    tx: &impl GenericClient,
    table: &str,
    kid: &str,
    cursor: &str,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO sqs2pg_rekey_progress(table_name, writing_kid, cursor) VALUES ($1, $2, $3)
         ON CONFLICT (table_name) DO UPDATE
           SET writing_kid = excluded.writing_kid, cursor = excluded.cursor, updated_at = now()",
        &[&table, &kid, &cursor],
    )
    .await?;
    Ok(())
}

/// Forgets the walk over `table`: it reached the end.
pub async fn clear_progress(client: &impl GenericClient, table: &str) -> Result<(), DbError> {
    client
        .execute(
            "DELETE FROM sqs2pg_rekey_progress WHERE table_name = $1",
            &[&table],
        )
        .await?;
    Ok(())
}

/// A `user_logins` row's tokens, found by its physical address: the table has no key.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// `ctid` as text, the cursor of the walk.
    pub ctid: String,
    /// Token or NULL.
    pub masked_ip: Option<String>,
    /// Token or NULL.
    pub masked_device_id: Option<String>,
}

/// Up to `limit` rows after `after_ctid` with a token not under `prefix`.
///
/// Updated rows move to new ctids, possibly ahead of the cursor, and are then skipped because
/// they carry the new prefix.
pub async fn rows_page(
    tx: &impl GenericClient,
    prefix: &str,
    after_ctid: &str,
    limit: i64,
) -> Result<Vec<TokenRow>, DbError> {
    let rows = tx
        .query(
            "SELECT ctid::text AS tid_text, masked_ip, masked_device_id FROM user_logins
              WHERE ctid > $2::text::tid
                AND (NOT starts_with(masked_ip, $1) OR NOT starts_with(masked_device_id, $1))
              ORDER BY ctid LIMIT $3", // the column, not the text alias: text sorts (10,1) before (2,1)
            &[&prefix, &after_ctid, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TokenRow {
            ctid: r.get("tid_text"),
            masked_ip: r.get("masked_ip"),
            masked_device_id: r.get("masked_device_id"),
        })
        .collect())
}

/// Writes rows' new tokens back by ctid; returns the rows updated.
pub async fn update_rows(tx: &impl GenericClient, rows: &[TokenRow]) -> Result<u64, DbError> {
    let ctids: Vec<&str> = rows.iter().map(|r| r.ctid.as_str()).collect();
    let ips: Vec<Option<&str>> = rows.iter().map(|r| r.masked_ip.as_deref()).collect();
    let devs: Vec<Option<&str>> = rows.iter().map(|r| r.masked_device_id.as_deref()).collect();
    Ok(tx
        .execute(
            "UPDATE user_logins u SET masked_ip = m.ip, masked_device_id = m.dev
               FROM unnest($1::text[], $2::text[], $3::text[]) AS m(t, ip, dev)
              WHERE u.ctid = m.t::tid",
            &[&ctids, &ips, &devs],
        )
        .await?)
}

/// A reject's sealed body.
#[derive(Debug, Clone)]
pub struct SealedBody {
    /// The reject's message id, the cursor of the walk.
    pub message_id: String,
    /// `body_ciphertext`.
    pub body_ciphertext: String,
}

/// Up to `limit` reject bodies after message id `after` not sealed under `prefix`.
pub async fn bodies_page(
    tx: &impl GenericClient,
    prefix: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<SealedBody>, DbError> {
    let rows = tx
        .query(
            "SELECT message_id, body_ciphertext FROM user_logins_rejects
              WHERE message_id > $2 AND NOT starts_with(body_ciphertext, $1)
              ORDER BY message_id LIMIT $3",
            &[&prefix, &after, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SealedBody {
            message_id: r.get("message_id"),
            body_ciphertext: r.get("body_ciphertext"),
        })
        .collect())
}

/// Writes re-sealed bodies back; returns the rejects updated.
pub async fn update_bodies(tx: &impl GenericClient, bodies: &[SealedBody]) -> Result<u64, DbError> {
    let ids: Vec<&str> = bodies.iter().map(|b| b.message_id.as_str()).collect();
    let sealed: Vec<&str> = bodies.iter().map(|b| b.body_ciphertext.as_str()).collect();
    Ok(tx
        .execute(
            "UPDATE user_logins_rejects r SET body_ciphertext = m.body
               FROM unnest($1::text[], $2::text[]) AS m(id, body)
              WHERE r.message_id = m.id",
            &[&ids, &sealed],
        )
        .await?)
}
