//! Rekey's queries over any table's token columns: what is still under an older key, the
//! relations a table's rows are in, a page of one, the update that puts re-encrypted values
//! back where they are unchanged, the longest token a new kid would make, and the walk's
//! progress kept in `sqs2pg_rekey_progress`. The walk itself is [`crate::ops::rekey`].

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient};

use super::mapped::quote;
use super::DbError;
use crate::mask::Context;

/// A table's token columns, as rekey walks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTable {
    /// The table as Postgres prints it (`regclass`: bare when on the `search_path`): how SQL
    /// names it, how reports name it, and the key of its walk's progress.
    pub name: String,
    /// Its token columns.
    pub columns: Vec<TokenColumn>,
    /// How the walk moves through it.
    pub cursor: Cursor,
}

/// A column of tokens and what they were made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenColumn {
    /// Its name, unquoted.
    pub name: String,
    /// The context its tokens were sealed under (their associated data).
    pub context: Context,
    /// Its length limit in characters, which re-encrypted tokens must fit.
    pub limit: Option<usize>,
}

/// What orders a walk and names a row within a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The physical address: any table, without a key, one relation (partition) at a time.
    Ctid,
    /// A rejects table's primary key, which reports can name a body by.
    MessageId,
}

impl Cursor {
    /// The key as text, selected as `k`.
    fn select(self) -> &'static str {
        match self {
            Self::Ctid => "ctid::text AS k",
            Self::MessageId => "message_id AS k",
        }
    }

    /// Orders by the key itself (text sorts the ctid `(10,1)` before `(2,1)`).
    fn column(self) -> &'static str {
        match self {
            Self::Ctid => "ctid",
            Self::MessageId => "message_id",
        }
    }

    /// The key compared with a text parameter or array element `p`.
    fn cast(self, p: &str) -> String {
        match self {
            Self::Ctid => format!("{p}::text::tid"),
            Self::MessageId => p.to_owned(),
        }
    }

    /// `ONLY` keeps a ctid walk within one relation of a partitioned table.
    fn only(self) -> &'static str {
        match self {
            Self::Ctid => "ONLY ",
            Self::MessageId => "",
        }
    }
}

/// `(NOT starts_with(a, $1) OR NOT starts_with(b, $1))`: a value not under the writing key
/// (NULL is under every key).
fn any_not_under(columns: &[TokenColumn]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("NOT starts_with({}, $1)", quote(&c.name)))
        .collect();
    format!("({})", parts.join(" OR "))
}

/// A token (`v1:`…) under another key than `$1`'s.
fn any_under_old_key(columns: &[TokenColumn]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let c = quote(&c.name);
            format!("(starts_with({c}, 'v1:') AND NOT starts_with({c}, $1))")
        })
        .collect();
    format!("({})", parts.join(" OR "))
}

async fn count_where(
    client: &Client,
    table: &str,
    condition: &str,
    prefix: &str,
) -> Result<u64, DbError> {
    let sql = format!("SELECT count(*) FROM {table} WHERE {condition}");
    let n: i64 = client.query_one(&sql, &[&prefix]).await?.get(0);
    Ok(n as u64)
}

/// `table`'s rows with a value not under `prefix` (`v1:<writing kid>:`).
pub async fn pending(client: &Client, table: &TokenTable, prefix: &str) -> Result<u64, DbError> {
    count_where(client, &table.name, &any_not_under(&table.columns), prefix).await
}

/// `table`'s rows holding a token under another key than `prefix`'s: what a finished rekey
/// leaves only when the keyring lacks a key (values that are not tokens at all are not
/// counted here).
pub async fn under_old_keys(
    client: &Client,
    table: &TokenTable,
    prefix: &str,
) -> Result<u64, DbError> {
    count_where(
        client,
        &table.name,
        &any_under_old_key(&table.columns),
        prefix,
    )
    .await
}

/// The longest token of `column` of `table` not under `prefix`, less its kid: re-encrypted
/// under a kid of n characters it becomes this plus n long (the ciphertext of a value is
/// the same length under every key).
pub async fn longest_without_kid(
    client: &Client,
    table: &str,
    column: &str,
    prefix: &str,
) -> Result<Option<i32>, DbError> {
    let c = quote(column);
    let sql = format!(
        "SELECT max(length({c}) - length(split_part({c}, ':', 2)))
           FROM {table} WHERE starts_with({c}, 'v1:') AND NOT starts_with({c}, $1)"
    );
    Ok(client.query_one(&sql, &[&prefix]).await?.get(0))
}

/// How Postgres prints the table `sql_name` names (`schema.table`, quoted as needed).
pub async fn regclass(client: &Client, sql_name: &str) -> Result<String, DbError> {
    Ok(client
        .query_one("SELECT $1::text::regclass::text", &[&sql_name])
        .await?
        .get(0))
}

/// Whether `table` has a column `column`.
pub async fn has_column(client: &Client, table: &str, column: &str) -> Result<bool, DbError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = $1::text::regclass
                              AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
            &[&table, &column],
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

/// The relations that hold `table`'s rows, each by its name as SQL spells it: the table
/// itself, or, when it is partitioned (or has inheritance children), every table in its tree
/// that has storage. A ctid is unique only within one of them, so rekey walks each on its
/// own.
pub async fn leaves(client: &Client, table: &str) -> Result<Vec<String>, DbError> {
    let rows = client
        .query(
            "WITH RECURSIVE tree(oid) AS (
               SELECT $1::text::regclass::oid
               UNION ALL
               SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)
             SELECT c.oid::regclass::text FROM tree t JOIN pg_class c ON c.oid = t.oid
              WHERE c.relkind = 'r'
              ORDER BY 1",
            &[&table],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A row's tokens as read, found by its cursor key (the table may have no key of its own).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// The cursor's key as text: a ctid, or a reject's message id.
    pub key: String,
    /// Token or NULL, one per column of its [`TokenTable`], in order.
    pub tokens: Vec<Option<String>>,
}

/// A row's tokens as read and as they are to be written.
#[derive(Debug, Clone)]
pub struct TokenChange {
    /// The row as the page read it.
    pub read: TokenRow,
    /// Its tokens re-encrypted (or as read), in column order.
    pub tokens: Vec<Option<String>>,
}

/// Up to `limit` rows of `relation` (`table` itself, or one of its [`leaves`] for a ctid
/// walk) after `after` with a token not under `prefix`.
///
/// Updated rows move to new ctids, possibly ahead of the cursor, and are then skipped because
/// they carry the new prefix.
pub async fn page(
    tx: &impl GenericClient,
    table: &TokenTable,
    relation: &str,
    prefix: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<TokenRow>, DbError> {
    let cursor = table.cursor;
    let columns: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
    let sql = format!(
        "SELECT {}, {} FROM {}{relation}
          WHERE {} > {} AND {}
          ORDER BY {} LIMIT $3",
        cursor.select(),
        columns.join(", "),
        cursor.only(),
        cursor.column(),
        cursor.cast("$2"),
        any_not_under(&table.columns),
        cursor.column(),
    );
    let rows = tx.query(&sql, &[&prefix, &after, &limit]).await?;
    Ok(rows
        .iter()
        .map(|r| TokenRow {
            key: r.get(0),
            tokens: (1..=columns.len()).map(|i| r.get(i)).collect(),
        })
        .collect())
}

/// Writes rows' new tokens back by their key within `relation`, each only if the row there
/// still holds the tokens read: a row deleted meanwhile, and one inserted at its ctid after
/// a vacuum, are left alone (an equal token is the same value, so rewriting it is right
/// either way). Returns the rows updated.
pub async fn update(
    tx: &impl GenericClient,
    table: &TokenTable,
    relation: &str,
    rows: &[TokenChange],
) -> Result<u64, DbError> {
    let keys: Vec<&str> = rows.iter().map(|r| r.read.key.as_str()).collect();
    let mut arrays: Vec<Vec<Option<&str>>> = Vec::new();
    let (mut sets, mut unchanged, mut names) = (Vec::new(), Vec::new(), vec!["k".to_owned()]);
    for (i, c) in table.columns.iter().enumerate() {
        arrays.push(rows.iter().map(|r| r.read.tokens[i].as_deref()).collect());
        arrays.push(rows.iter().map(|r| r.tokens[i].as_deref()).collect());
        let q = quote(&c.name);
        sets.push(format!("{q} = m.n{i}"));
        unchanged.push(format!("u.{q} IS NOT DISTINCT FROM m.o{i}"));
        names.extend([format!("o{i}"), format!("n{i}")]);
    }
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&keys];
    params.extend(arrays.iter().map(|a| a as &(dyn ToSql + Sync)));
    let unnest: Vec<String> = (1..=params.len())
        .map(|p| format!("${p}::text[]"))
        .collect();
    let cursor = table.cursor;
    let sql = format!(
        "UPDATE {}{relation} u SET {}
           FROM unnest({}) AS m({})
          WHERE u.{} = {} AND {}",
        cursor.only(),
        sets.join(", "),
        unnest.join(", "),
        names.join(", "),
        cursor.column(),
        cursor.cast("m.k"),
        unchanged.join(" AND "),
    );
    Ok(tx.execute(&sql, &params).await?)
}
