//! How the writers' statements reach the server ([`DbStatements`]): prepared once per
//! connection and reused, or unnamed and sent with each use so that no named statement
//! outlives its transaction.
//!
//! A transaction-pooling proxy (PgBouncer in `pool_mode = transaction` before 1.21 or without
//! `max_prepared_statements`, other poolers like it) hands each transaction to whichever server
//! connection is free: a statement prepared in an earlier transaction is not there
//! ("prepared statement … does not exist", 26000). Unnamed statements go out as one
//! Parse/Bind/Execute exchange inside the transaction; `COPY`, which tokio-postgres can only run
//! from a named statement, is prepared inside the transaction and closed before its `COMMIT`.

use bytes::Bytes;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, CopyInSink, Error, Row, Statement, Transaction};

use crate::config::DbStatements;

/// One statement of a writer, in either form.
pub(super) enum Stmt {
    /// Prepared on the writer's connection; valid as long as that server session lasts.
    Prepared(Statement),
    /// Sent with each use, with its parameter types.
    Unnamed { sql: String, types: Vec<Type> },
}

impl Stmt {
    /// `sql` with parameters of `types`, prepared on `client` if `mode` says so.
    pub(super) async fn new(
        client: &Client,
        mode: DbStatements,
        sql: String,
        types: &[Type],
    ) -> Result<Self, Error> {
        Ok(match mode {
            DbStatements::Prepared => Stmt::Prepared(client.prepare_typed(&sql, types).await?),
            DbStatements::Unnamed => Stmt::Unnamed {
                sql,
                types: types.to_vec(),
            },
        })
    }

    /// Its rows.
    pub(super) async fn query(
        &self,
        tx: &Transaction<'_>,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        match self {
            Stmt::Prepared(s) => tx.query(s, params).await,
            Stmt::Unnamed { sql, types } => tx.query_typed(sql, &typed(params, types)).await,
        }
    }

    /// The rows it changed.
    pub(super) async fn execute(
        &self,
        tx: &Transaction<'_>,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        match self {
            Stmt::Prepared(s) => tx.execute(s, params).await,
            Stmt::Unnamed { sql, types } => {
                use futures::TryStreamExt;
                let rows = tx.query_typed_raw(sql, typed(params, types)).await?;
                futures::pin_mut!(rows);
                while rows.try_next().await?.is_some() {}
                Ok(rows.rows_affected().unwrap_or(0))
            }
        }
    }

    /// Starts a `COPY … FROM STDIN`. Unnamed, the statement is prepared in `tx` and closed
    /// when the copy ends (tokio-postgres queues the close behind it), still inside `tx`.
    pub(super) async fn copy_in(&self, tx: &Transaction<'_>) -> Result<CopyInSink<Bytes>, Error> {
        match self {
            Stmt::Prepared(s) => tx.copy_in(s).await,
            Stmt::Unnamed { sql, .. } => tx.copy_in(sql.as_str()).await,
        }
    }
}

/// Each parameter with its declared type, as `query_typed` takes them.
fn typed<'a>(
    params: &[&'a (dyn ToSql + Sync)],
    types: &[Type],
) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}
