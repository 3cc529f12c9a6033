//! Reading the test databases: a client with row helpers that name their columns.

use std::ops::{Deref, DerefMut};

use tokio_postgres::types::{FromSqlOwned, ToSql};
use tokio_postgres::{Client, NoTls, Row};

use super::*;

/// A client on the `DATABASE_URL` server's admin database, for what a test does to its
/// database from outside (refusing connections, say).
pub async fn admin() -> Db {
    connect(&admin_url()).await
}

/// A Postgres client with one-line queries for tests; derefs to the [`Client`].
pub struct Db(pub(crate) Client);

impl Deref for Db {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

impl DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.0
    }
}

impl Db {
    /// Every row of `sql`, read by column name; panics with the SQL on error.
    pub async fn rows(&self, sql: &str) -> Vec<Row> {
        self.rows_with(sql, &[]).await
    }

    /// [`Db::rows`] with `$n` parameters.
    pub async fn rows_with(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        self.0
            .query(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The one value of a one-row, one-column query.
    pub async fn scalar<T: FromSqlOwned>(&self, sql: &str) -> T {
        self.scalar_with(sql, &[]).await
    }

    /// [`Db::scalar`] with `$n` parameters.
    pub async fn scalar_with<T: FromSqlOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> T {
        self.0
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// A `SELECT count(...)` as a plain number.
    pub async fn count(&self, sql: &str) -> i64 {
        self.scalar(sql).await
    }

    /// The first column of every row, e.g. `SELECT user_id FROM user_logins ORDER BY 1`.
    pub async fn column<T: FromSqlOwned>(&self, sql: &str) -> Vec<T> {
        self.rows(sql).await.iter().map(|r| r.get(0)).collect()
    }

    /// `LOCK TABLE user_logins IN SHARE MODE`, held until the returned transaction is rolled
    /// back or dropped: the writers wait on it, readers do not.
    pub async fn lock_user_logins(&mut self) -> tokio_postgres::Transaction<'_> {
        let tx = self.0.transaction().await.expect("begin");
        tx.batch_execute("LOCK TABLE user_logins IN SHARE MODE")
            .await
            .expect("lock user_logins");
        tx
    }

    /// Every reject as `(revealed body, reason)`, sorted, bodies opened with [`KEYS`].
    pub async fn revealed_rejects(&self) -> Vec<(String, String)> {
        let mut m = masker(KEYS);
        let mut got: Vec<(String, String)> = self
            .rows("SELECT body_ciphertext, reason FROM user_logins_rejects")
            .await
            .iter()
            .map(|r| (m.reveal_body(r.get("body_ciphertext")), r.get("reason")))
            .collect();
        got.sort();
        got
    }

    /// Creates the tables, as `sqs2pg migrate` would (without the roles).
    pub async fn migrate(&mut self) {
        sqs2pg::db::schema::migrate(&mut self.0, false)
            .await
            .expect("migrate");
    }
}

/// Connects or panics with the fix.
pub async fn connect(url: &str) -> Db {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to Postgres ({e}); is it up? `scripts/services up`"));
    tokio::spawn(conn);
    Db(c)
}
