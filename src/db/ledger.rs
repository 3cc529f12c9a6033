//! The ledger of committed message ids, written in the same transaction as the rows: an id
//! already there produces nothing, however often SQS delivers it.
//!
//! Two tables, each one generation of [`LEDGER_GENERATION_DAYS`] days: new ids go into the
//! current one and are looked up in the previous one. When a new generation starts, the first
//! writer to notice truncates the table it reuses, which only holds ids older than SQS's
//! longest retention (by a day's margin): pruning costs one `TRUNCATE` per generation, and a
//! batch costs the same after a year as on the first day.
//!
//! Near a generation switch two writers (or one with a skewed clock) may disagree on the
//! generation: one inserts an id into table A and looks it up in B, the other does the
//! opposite, and neither sees the other's uncommitted insert. So within
//! [`LEDGER_SKEW_TOLERANCE`] of a switch a writer inserts the ids into both tables, and the
//! primary keys make the second writer wait for the first and find its id.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

use super::statement::Stmt;
use super::DbError;
use crate::config::DbStatements;

/// Days per ledger generation: SQS keeps a message at most 14 days after it was sent, so an
/// id is remembered at least a day longer than it can be delivered again, which covers clock
/// skew between replicas.
pub const LEDGER_GENERATION_DAYS: u64 = 15;

/// How far apart replicas' clocks (or a batch's start and its commit) may be around a
/// generation switch without admitting a duplicate.
pub const LEDGER_SKEW_TOLERANCE: Duration = Duration::from_secs(15 * 60);

/// Added to generation numbers since generations became 15 days long (they were 14): every
/// new number is above every old one, so an old replica never rotates again, and a state
/// still holding an old number marks the switch, at which nothing is truncated.
const GENERATION_OFFSET: i64 = 100_000;

const GENERATION_SECS: u64 = LEDGER_GENERATION_DAYS * 86_400;

/// How long a generation switch waits for its `TRUNCATE`'s lock before giving way. A long
/// reader of the ledger (a `pg_dump`) holds a lock the `TRUNCATE` must wait for, and every
/// writer's insert would queue behind that wait: the switch gives way instead, and batches
/// go on without it (the table it would empty only holds ids past retention).
pub const ROTATE_LOCK_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a connection waits, after its switch gave way to a lock, before trying again.
const ROTATE_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Where a moment falls in the ledger's generations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation {
    /// Whole generations since the Unix epoch, plus the offset.
    pub number: i64,
    /// Within [`LEDGER_SKEW_TOLERANCE`] of a switch: write the ids into both tables.
    pub near_switch: bool,
}

/// The ledger generation of a moment.
pub fn ledger_generation(now: SystemTime) -> Generation {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let into = secs % GENERATION_SECS;
    let tolerance = LEDGER_SKEW_TOLERANCE.as_secs();
    Generation {
        number: (secs / GENERATION_SECS) as i64 + GENERATION_OFFSET,
        near_switch: into < tolerance || GENERATION_SECS - into <= tolerance,
    }
}

/// Up to this many ids or rows, a batch goes in by one array statement (`unnest`) instead of
/// a binary `COPY`: one round trip where a `COPY` takes two (three unnamed, where it is
/// prepared in the transaction), and at a Lambda event's size (10 by default) `COPY` has no
/// per-row saving to make up for them. Larger batches keep `COPY`.
pub const ARRAY_INSERT_MAX: usize = 128;

/// How a batch's ids go into the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerWrite {
    /// A plain insert (binary `COPY`, or an array insert up to [`ARRAY_INSERT_MAX`] ids):
    /// fast, and fails on the first id already there.
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

/// The ledger statements of one connection, and the generation it last saw started.
pub struct Ledger {
    copy: Tables<Stmt>,
    /// The array form of `copy`, for small batches.
    put: Tables<Stmt>,
    insert: Tables<Stmt>,
    lookup: Tables<Stmt>,
    started: i64,
    /// After a switch gave way to a lock: not before then again.
    retry_at: Option<Instant>,
}

impl Ledger {
    /// Makes the statements on `client`, in the form `mode` says.
    pub async fn prepare(client: &Client, mode: DbStatements) -> Result<Self, DbError> {
        let prepare_for = |sql: fn(&str) -> String, types: &'static [Type]| async move {
            Ok::<_, DbError>(Tables {
                even: Stmt::new(client, mode, sql("sqs2pg_ledger_0"), types).await?,
                odd: Stmt::new(client, mode, sql("sqs2pg_ledger_1"), types).await?,
            })
        };
        let ids = &[Type::TEXT_ARRAY];
        Ok(Self {
            copy: prepare_for(
                |t| format!("COPY {t}(message_id) FROM STDIN (FORMAT binary)"),
                &[],
            )
            .await?,
            put: prepare_for(
                |t| format!("INSERT INTO {t}(message_id) SELECT unnest($1::text[])"),
                ids,
            )
            .await?,
            insert: prepare_for(
                |t| {
                    format!(
                        "INSERT INTO {t}(message_id) SELECT unnest($1::text[])
                         ON CONFLICT DO NOTHING RETURNING message_id"
                    )
                },
                ids,
            )
            .await?,
            lookup: prepare_for(
                |t| format!("SELECT message_id FROM {t} WHERE message_id = ANY($1::text[])"),
                ids,
            )
            .await?,
            started: -1,
            retry_at: None,
        })
    }

    /// Starts `generation` unless this connection saw it started: in a transaction of its
    /// own, before the batch's, under [`ROTATE_LOCK_TIMEOUT`]. A switch that times out on its
    /// lock is logged and tried again [`ROTATE_RETRY_AFTER`] later; meanwhile batches go on
    /// (the ids left in the table it would have emptied are past retention, so they only
    /// take room).
    pub async fn start(&mut self, client: &mut Client, generation: i64) -> Result<(), DbError> {
        let waiting = self.retry_at.is_some_and(|at| Instant::now() < at);
        if generation <= self.started || waiting {
            return Ok(());
        }
        let tx = client.transaction().await?;
        let ms = ROTATE_LOCK_TIMEOUT.as_millis();
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {ms}"))
            .await?;
        match rotate(&tx, generation).await {
            Ok(()) => {
                tx.commit().await?;
                (self.started, self.retry_at) = (generation, None);
            }
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                tx.rollback().await?;
                let retry_s = ROTATE_RETRY_AFTER.as_secs();
                tracing::warn!(generation, lock_timeout_ms = ms, retry_s, "ledger generation switch gave way to a lock held by another session (a long reader of the ledger?); batches go on, the switch is tried again later");
                self.retry_at = Some(Instant::now() + ROTATE_RETRY_AFTER);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Records `ids` (distinct, sorted) in the current generation and returns those that
    /// were new to both generations. `None` only when [`LedgerWrite::Copy`] met an id already
    /// there: the transaction is then rolled back and the caller goes again with
    /// [`LedgerWrite::Checked`].
    pub async fn claim<'a>(
        &self,
        tx: &Transaction<'_>,
        ids: &[&'a str],
        generation: Generation,
        mode: LedgerWrite,
    ) -> Result<Option<HashSet<&'a str>>, DbError> {
        let g = generation.number;
        // The other table: the previous generation's, and near a switch the next one's.
        let other = g + 1;
        if generation.near_switch {
            return self.claim_in_both(tx, ids, mode).await;
        }
        let fresh = match mode {
            LedgerWrite::Copy => {
                // Ids seen in the previous generation go into the current one too, as on the
                // checked path, so a redelivery renews its entry. The lookup goes out behind
                // the insert without waiting for its answer (the two tables are independent,
                // and an insert that fails fails the lookup with it): one round trip.
                let params: [&(dyn ToSql + Sync); 1] = [&ids];
                let lookup = self.lookup.of(other).query(tx, &params);
                let (put, old) = futures::join!(self.put_ids(tx, g, ids), lookup);
                match put {
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Ok(None),
                    done => done?,
                }
                let old = column_set(old?);
                ids.iter()
                    .copied()
                    .filter(|id| !old.contains(*id))
                    .collect()
            }
            LedgerWrite::Checked => {
                let mut new = column_set(self.insert.of(g).query(tx, &[&ids]).await?);
                if !new.is_empty() {
                    let candidates: Vec<&str> = new.iter().map(String::as_str).collect();
                    for id in column_set(self.lookup.of(other).query(tx, &[&candidates]).await?) {
                        new.remove(&id);
                    }
                }
                ids.iter().copied().filter(|id| new.contains(*id)).collect()
            }
        };
        Ok(Some(fresh))
    }

    /// [`Ledger::claim`] near a switch: the ids go into both tables, the even one first
    /// whatever the writer's generation, so two writers on either side of the switch meet on
    /// the same primary key without deadlocking; an id is fresh only if new to both.
    async fn claim_in_both<'a>(
        &self,
        tx: &Transaction<'_>,
        ids: &[&'a str],
        mode: LedgerWrite,
    ) -> Result<Option<HashSet<&'a str>>, DbError> {
        match mode {
            LedgerWrite::Copy => {
                for generation in [0, 1] {
                    match self.put_ids(tx, generation, ids).await {
                        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Ok(None),
                        done => done?,
                    }
                }
                Ok(Some(ids.iter().copied().collect()))
            }
            LedgerWrite::Checked => {
                let even = column_set(self.insert.of(0).query(tx, &[&ids]).await?);
                let odd = column_set(self.insert.of(1).query(tx, &[&ids]).await?);
                Ok(Some(
                    ids.iter()
                        .copied()
                        .filter(|id| even.contains(*id) && odd.contains(*id))
                        .collect(),
                ))
            }
        }
    }

    /// The fast path's insert of `ids` into `generation`'s table: fails on the first id
    /// already there (SQLSTATE 23505).
    async fn put_ids(
        &self,
        tx: &Transaction<'_>,
        generation: i64,
        ids: &[&str],
    ) -> Result<(), tokio_postgres::Error> {
        if ids.len() > ARRAY_INSERT_MAX {
            return copy_ids(tx, self.copy.of(generation), ids).await;
        }
        if !ids.is_empty() {
            self.put.of(generation).execute(tx, &[&ids]).await?;
        }
        Ok(())
    }
}

/// Starts `generation` if no writer has yet: truncates the table it reuses, unless the
/// previous number is from before [`GENERATION_OFFSET`] (a fresh ledger, or the switch to
/// 15-day generations, when either table may hold ids still in retention).
///
/// Done by [`rotate_function`] with its owner's rights, so the role that loads rows needs
/// neither `UPDATE` on the state nor `TRUNCATE` on the ledger, either of which would let a
/// leaked ingest credential switch de-duplication off.
async fn rotate(tx: &Transaction<'_>, generation: i64) -> Result<(), tokio_postgres::Error> {
    let truncated: bool = tx
        .query_typed_one(
            "SELECT sqs2pg_ledger_rotate($1)",
            &[(&generation, Type::INT8)],
        )
        .await?
        .get(0);
    if truncated {
        let reused = format!("sqs2pg_ledger_{}", generation.rem_euclid(2));
        tracing::info!(generation, table = %reused, "ledger generation started; ids older than two generations pruned");
    }
    Ok(())
}

/// The function behind [`rotate`], as `migrate` creates it: `SECURITY DEFINER`, so it runs
/// as the migrating role; its `search_path` is pinned by `migrate` (to the schema the tables
/// are in, then `pg_temp` last) so a caller cannot slip in tables of its own. True when it
/// truncated the reused table.
///
/// It does not trust the generation it is asked for: an ingest login may call it with any
/// number. The furthest it starts is the database clock's generation seen
/// [`LEDGER_SKEW_TOLERANCE`] ahead (what a writer whose clock runs that far ahead asks for),
/// so the state never moves past the clock, and the table it empties holds only ids at least
/// a generation old less that tolerance, past SQS's retention. The state only moves forward,
/// so an older number changes nothing.
pub(super) fn rotate_function() -> String {
    let tolerance_s = LEDGER_SKEW_TOLERANCE.as_secs();
    format!(
        "CREATE OR REPLACE FUNCTION sqs2pg_ledger_rotate(target bigint) RETURNS boolean
           LANGUAGE plpgsql SECURITY DEFINER AS $fn$
         DECLARE
           previous bigint;
           latest constant bigint := floor(extract(epoch FROM now() + interval '{tolerance_s} seconds')
                                           / {GENERATION_SECS})::bigint + {GENERATION_OFFSET};
           goal constant bigint := least(target, latest);
         BEGIN
           UPDATE sqs2pg_ledger_state s SET generation = goal
             FROM (SELECT generation FROM sqs2pg_ledger_state WHERE id = 1 FOR UPDATE) before
            WHERE s.id = 1 AND s.generation < goal RETURNING before.generation INTO previous;
           IF previous IS NULL OR previous < {GENERATION_OFFSET} THEN
             RETURN false;
           END IF;
           EXECUTE format('TRUNCATE %I', 'sqs2pg_ledger_' || ((goal % 2) + 2) % 2);
           RETURN true;
         END
         $fn$;"
    )
}

/// The first column of `rows`, as a set.
fn column_set(rows: Vec<tokio_postgres::Row>) -> HashSet<String> {
    rows.into_iter().map(|r| r.get(0)).collect()
}

/// Binary `COPY` of message ids into a ledger table.
async fn copy_ids(
    tx: &Transaction<'_>,
    stmt: &Stmt,
    ids: &[&str],
) -> Result<(), tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let writer = BinaryCopyInWriter::new(stmt.copy_in(tx).await?, &[Type::TEXT]);
    pin_mut!(writer);
    for id in ids {
        writer.as_mut().write(&[id]).await?;
    }
    writer.finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_go_into_both_tables_only_near_a_switch() {
        let switch = UNIX_EPOCH + Duration::from_secs(GENERATION_SECS * 2001);
        let at = |t: SystemTime| ledger_generation(t);
        let minutes = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(at(switch).number, at(switch - minutes(1)).number + 1);
        assert!(at(switch).near_switch);
        assert!(at(switch + minutes(14)).near_switch);
        assert!(at(switch - minutes(15)).near_switch);
        assert!(!at(switch + minutes(16)).near_switch);
        assert!(!at(switch - minutes(16)).near_switch);
        assert!(at(switch).number > GENERATION_OFFSET);
    }
}
