//! Rekey's queries: what is still under an older key, the relations `user_logins`'s rows are
//! in, a page of one, the update that puts the re-encrypted values back where they are
//! unchanged, the longest token a new kid would make, and the walk's
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

/// The relations that hold `user_logins`'s rows, each by its name as SQL spells it: the
/// table itself, or, when it is partitioned (or has inheritance children), every table in
/// its tree that has storage. A ctid is unique only within one of them, so rekey walks each
/// on its own.
pub async fn leaves(client: &Client) -> Result<Vec<String>, DbError> {
    let rows = client
        .query(
            "WITH RECURSIVE tree(oid) AS (
               SELECT 'user_logins'::regclass::oid
               UNION ALL
               SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)
             SELECT c.oid::regclass::text FROM tree t JOIN pg_class c ON c.oid = t.oid
              WHERE c.relkind = 'r'
              ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A `user_logins` row's tokens as read, found by its physical address in its relation: the
/// table has no key.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// `ctid` as text, the cursor of the walk within its relation.
    pub ctid: String,
    /// Token or NULL.
    pub masked_ip: Option<String>,
    /// Token or NULL.
    pub masked_device_id: Option<String>,
}

/// A row's tokens as read and as they are to be written.
#[derive(Debug, Clone)]
pub struct TokenChange {
    /// The row as the page read it.
    pub read: TokenRow,
    /// Its `masked_ip` re-encrypted (or as read).
    pub masked_ip: Option<String>,
    /// Its `masked_device_id` re-encrypted (or as read).
    pub masked_device_id: Option<String>,
}

/// Up to `limit` rows of the relation `leaf` (one of [`leaves`]) after `after_ctid` with a
/// token not under `prefix`.
///
/// Updated rows move to new ctids, possibly ahead of the cursor, and are then skipped because
/// they carry the new prefix.
pub async fn rows_page(
    tx: &impl GenericClient,
    leaf: &str,
    prefix: &str,
    after_ctid: &str,
    limit: i64,
) -> Result<Vec<TokenRow>, DbError> {
    let rows = tx
        .query(
            &format!(
                "SELECT ctid::text AS tid_text, masked_ip, masked_device_id FROM ONLY {leaf}
                  WHERE ctid > $2::text::tid
                    AND (NOT starts_with(masked_ip, $1) OR NOT starts_with(masked_device_id, $1))
                  ORDER BY ctid LIMIT $3" // the column, not the text alias: text sorts (10,1) before (2,1)
            ),
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

/// Writes rows' new tokens back by ctid within `leaf`, each only if the row there still holds
/// the tokens read: a row deleted meanwhile, and one inserted at its ctid after a vacuum,
/// are left alone (an equal token is the same value, so rewriting it is right either way).
/// Returns the rows updated.
pub async fn update_rows(
    tx: &impl GenericClient,
    leaf: &str,
    rows: &[TokenChange],
) -> Result<u64, DbError> {
    let ctids: Vec<&str> = rows.iter().map(|r| r.read.ctid.as_str()).collect();
    let column = |f: fn(&TokenChange) -> &Option<String>| -> Vec<Option<&str>> {
        rows.iter().map(|r| f(r).as_deref()).collect()
    };
    let (old_ips, old_devs) = (
        column(|r| &r.read.masked_ip),
        column(|r| &r.read.masked_device_id),
    );
    let (ips, devs) = (column(|r| &r.masked_ip), column(|r| &r.masked_device_id));
    Ok(tx
        .execute(
            &format!(
                "UPDATE ONLY {leaf} u SET masked_ip = m.ip, masked_device_id = m.dev
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                        AS m(t, old_ip, old_dev, ip, dev)
                  WHERE u.ctid = m.t::tid
                    AND u.masked_ip IS NOT DISTINCT FROM m.old_ip
                    AND u.masked_device_id IS NOT DISTINCT FROM m.old_dev"
            ),
            &[&ctids, &old_ips, &old_devs, &ips, &devs],
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

/// Writes re-sealed bodies back, each only if the reject still holds the body read (one
/// replayed, erased or rewritten meanwhile is left alone); returns the rejects updated.
pub async fn update_bodies(
    tx: &impl GenericClient,
    bodies: &[(SealedBody, String)],
) -> Result<u64, DbError> {
    let ids: Vec<&str> = bodies.iter().map(|(b, _)| b.message_id.as_str()).collect();
    let old: Vec<&str> = bodies
        .iter()
        .map(|(b, _)| b.body_ciphertext.as_str())
        .collect();
    let sealed: Vec<&str> = bodies.iter().map(|(_, new)| new.as_str()).collect();
    Ok(tx
        .execute(
            "UPDATE user_logins_rejects r SET body_ciphertext = m.body
               FROM unnest($1::text[], $2::text[], $3::text[]) AS m(id, old, body)
              WHERE r.message_id = m.id AND r.body_ciphertext = m.old",
            &[&ids, &old, &sealed],
        )
        .await?)
}
