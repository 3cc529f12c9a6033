//! The ledger of committed message ids, written in the same transaction as the rows: an id
//! already there produces nothing, however often SQS delivers it.
//!
//! Two tables, each one generation of [`LEDGER_GENERATION_DAYS`] days: new ids go into the
//! current one and are looked up in the previous one. When a new generation starts, the first
//! writer to notice truncates the table it reuses, which only holds ids older than SQS's
//! longest retention: pruning costs one `TRUNCATE` per generation, and a batch costs the same
//! after a year as on the first day.

use std::collections::HashSet;

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement, Transaction};

use super::DbError;

/// Days per ledger generation: SQS keeps a message at most 14 days, so an id older than one
/// full generation can never be delivered again.
pub const LEDGER_GENERATION_DAYS: u64 = 14;

/// The ledger generation of a moment (whole generations since the Unix epoch).
pub fn ledger_generation(now: std::time::SystemTime) -> i64 {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / (LEDGER_GENERATION_DAYS * 86_400)) as i64
}

/// How a batch's ids go into the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerWrite {
    /// Binary `COPY`: fast, and fails on the first id already there.
    Copy,
    /// `INSERT … ON CONFLICT DO NOTHING RETURNING`: skips the ids already there.
    Checked,
}

/// One table's statements per generation parity.
struct Tables<T> {
    even: T,
    odd: T,
}

impl<T> Tables<T> {
    fn of(&self, generation: i64) -> &T {
        if generation.rem_euclid(2) == 0 {
            &self.even
        } else {
            &self.odd
        }
    }
}

/// The ledger statements of one connection, and the generation it last wrote.
pub struct Ledger {
    copy: Tables<Statement>,
    insert: Tables<Statement>,
    lookup: Tables<Statement>,
    generation: i64,
}

impl Ledger {
    /// Prepares the statements on `client`.
    pub async fn prepare(client: &Client) -> Result<Self, DbError> {
        let prepare_for = |sql: fn(&str) -> String| async move {
            Ok::<_, DbError>(Tables {
                even: client.prepare(&sql("sqs2pg_ledger_0")).await?,
                odd: client.prepare(&sql("sqs2pg_ledger_1")).await?,
            })
        };
        Ok(Self {
            copy: prepare_for(|t| format!("COPY {t}(message_id) FROM STDIN (FORMAT binary)"))
                .await?,
            insert: prepare_for(|t| {
                format!(
                    "INSERT INTO {t}(message_id) SELECT unnest($1::text[])
                     ON CONFLICT DO NOTHING RETURNING message_id"
                )
            })
            .await?,
            lookup: prepare_for(|t| {
                format!("SELECT message_id FROM {t} WHERE message_id = ANY($1::text[])")
            })
            .await?,
            generation: -1,
        })
    }

    /// Records `ids` (distinct, sorted) in the current generation and returns those that
    /// were new to both generations. `None` only when [`LedgerWrite::Copy`] met an id already
    /// there: the transaction is then rolled back and the caller goes again with
    /// [`LedgerWrite::Checked`].
    pub async fn claim<'a>(
        &self,
        tx: &Transaction<'_>,
        ids: &[&'a str],
        generation: i64,
        mode: LedgerWrite,
    ) -> Result<Option<HashSet<&'a str>>, DbError> {
        if generation != self.generation {
            rotate(tx, generation).await?;
        }
        let previous = self.lookup.of(generation + 1);
        match mode {
            LedgerWrite::Copy => {
                // Ids seen in the previous generation go into the current one too, as on the
                // checked path, so a redelivery renews its entry.
                match copy_ids(tx, self.copy.of(generation), ids).await {
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Ok(None),
                    done => done?,
                }
                let old = column_set(tx.query(previous, &[&ids]).await?);
                Ok(Some(
                    ids.iter()
                        .copied()
                        .filter(|id| !old.contains(*id))
                        .collect(),
                ))
            }
            LedgerWrite::Checked => {
                let mut new = column_set(tx.query(self.insert.of(generation), &[&ids]).await?);
                if !new.is_empty() {
                    let candidates: Vec<&str> = new.iter().map(String::as_str).collect();
                    for id in column_set(tx.query(previous, &[&candidates]).await?) {
                        new.remove(&id);
                    }
                }
                Ok(Some(
                    ids.iter().copied().filter(|id| new.contains(*id)).collect(),
                ))
            }
        }
    }

    /// Notes that `generation` was written (after a commit), so the rotation check is skipped
    /// until the next one.
    pub fn committed(&mut self, generation: i64) {
        self.generation = generation;
    }
}

/// Starts `generation` if no writer has yet: truncates the table it reuses.
async fn rotate(tx: &Transaction<'_>, generation: i64) -> Result<(), DbError> {
    let rotated = tx
        .query_opt(
            "UPDATE sqs2pg_ledger_state SET generation = $1 WHERE generation < $1 RETURNING 1",
            &[&generation],
        )
        .await?;
    if rotated.is_some() {
        let reused = format!("sqs2pg_ledger_{}", generation.rem_euclid(2));
        tx.batch_execute(&format!("TRUNCATE {reused}")).await?;
        tracing::info!(generation, table = %reused, "ledger generation started; ids older than two generations pruned");
    }
    Ok(())
}

/// The first column of `rows`, as a set.
fn column_set(rows: Vec<tokio_postgres::Row>) -> HashSet<String> {
    rows.into_iter().map(|r| r.get(0)).collect()
}

/// Binary `COPY` of message ids into a ledger table.
async fn copy_ids(
    tx: &Transaction<'_>,
    stmt: &Statement,
    ids: &[&str],
) -> Result<(), tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let writer = BinaryCopyInWriter::new(tx.copy_in(stmt).await?, &[Type::TEXT]);
    pin_mut!(writer);
    for id in ids {
        writer.as_mut().write(&[id]).await?;
    }
    writer.finish().await?;
    Ok(())
}
