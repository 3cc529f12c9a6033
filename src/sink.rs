//! The Postgres side: migrations, the live table's shape, and batched idempotent writes.
//!
//! A batch is one transaction: first the message ids go into the ledger (`sqs2pg_ledger`),
//! and only the ids that were new get their row in `user_logins` or their entry in
//! `user_logins_rejects`. A message id already in the ledger therefore produces nothing,
//! however often SQS delivers it. The caller deletes from the queue only after
//! [`Sink::write`] returns `Ok`.
//!
//! Redeliveries are rare, so a batch first takes the fast path: the ids and the rows go in by
//! binary `COPY`, the ledger's primary key doing the duplicate check. Only when that `COPY`
//! hits an id already there (SQLSTATE 23505) is the batch rolled back and written again on
//! the checked path, `INSERT … ON CONFLICT DO NOTHING RETURNING` into the ledger and `unnest`
//! array inserts, which skips the ids it already holds.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use futures::pin_mut;
use thiserror::Error;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement, Transaction};

use crate::config::DbConfig;
use crate::decode::{AppVersion, AppVersionColumn, Limits};

/// A database failure, classified so the caller knows whether to retry.
#[derive(Debug, Error)]
pub enum SinkError {
    /// The tables are not there.
    #[error("table {0} does not exist: run `sqs2pg migrate` first")]
    NotMigrated(&'static str),
    /// The table exists but cannot take our rows.
    #[error("user_logins cannot be used: {0}")]
    Incompatible(String),
    /// The TLS settings for the database cannot be used.
    #[error("{0}")]
    Tls(String),
    /// Connecting failed.
    #[error("cannot connect to Postgres at {target}: {source}; is it running? (local: scripts/services up)")]
    Connect {
        /// Host and database, no password.
        target: String,
        /// Driver error.
        source: tokio_postgres::Error,
    },
    /// A statement failed.
    #[error("Postgres error{}: {source}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Db {
        /// SQLSTATE, when the server sent one.
        code: Option<String>,
        /// Driver error.
        source: tokio_postgres::Error,
    },
}

impl From<tokio_postgres::Error> for SinkError {
    fn from(source: tokio_postgres::Error) -> Self {
        let code = source.code().map(|c| c.code().to_owned());
        Self::Db { code, source }
    }
}

impl SinkError {
    /// A failure caused by the data of some row (SQLSTATE class 22 or 23): retrying the same
    /// batch cannot help, isolating the row can.
    pub fn is_data(&self) -> bool {
        matches!(self, Self::Db { code: Some(c), .. } if c.starts_with("22") || c.starts_with("23"))
    }

    /// Worth retrying after a pause: connection loss, serialization, deadlock, resources,
    /// shutdown. Everything that is not a data or schema error.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            // No SQLSTATE: the connection or the protocol failed, not the data.
            Self::Db { code: None, .. } => true,
            Self::Db { code: Some(c), .. } => ["08", "40", "53", "57", "58"]
                .iter()
                .any(|p| c.starts_with(p)),
            _ => false,
        }
    }

    /// The SQLSTATE, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Db { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// Serialises concurrent `migrate` runs from several replicas.
const MIGRATE_LOCK: i64 = 0x7371_7332_7067; // "sqs2pg"

const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS user_logins(
  user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
  masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date);
CREATE TABLE IF NOT EXISTS user_logins_rejects(
  message_id text PRIMARY KEY,
  reason text NOT NULL,
  body_ciphertext text NOT NULL,
  receive_count int,
  sent_at timestamptz,
  rejected_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS sqs2pg_ledger_0(
  message_id text PRIMARY KEY,
  committed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS sqs2pg_ledger_1(
  message_id text PRIMARY KEY,
  committed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS sqs2pg_ledger_state(
  id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  generation bigint NOT NULL);
INSERT INTO sqs2pg_ledger_state(id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE OR REPLACE VIEW sqs2pg_ledger AS
  SELECT message_id, committed_at FROM sqs2pg_ledger_0
  UNION ALL SELECT message_id, committed_at FROM sqs2pg_ledger_1;
COMMENT ON VIEW sqs2pg_ledger IS
  'sqs2pg: SQS message ids whose row or reject is committed (two 14-day generations); makes redelivery a no-op';
CREATE TABLE IF NOT EXISTS sqs2pg_reveal_audit(
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  db_user text NOT NULL DEFAULT current_user,
  os_user text,
  host text,
  action text NOT NULL,
  column_name text NOT NULL,
  reason text NOT NULL CHECK (reason <> ''),
  values_count int NOT NULL);
COMMENT ON TABLE sqs2pg_reveal_audit IS
  'sqs2pg: who unmasked what and why; append-only for everyone but its owner';
REVOKE UPDATE, DELETE, TRUNCATE ON sqs2pg_reveal_audit FROM PUBLIC;
";

/// Least-privilege roles (NOLOGIN groups; grant them to login users):
/// `sqs2pg_ingest` loads rows and rejects, `sqs2pg_analyst` reads `user_logins` only,
/// `sqs2pg_revealer` reads tokens and rejects and may append to the audit. Nobody but the
/// owner may change or delete audit rows.
const ROLES: &str = "
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sqs2pg_ingest') THEN CREATE ROLE sqs2pg_ingest NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sqs2pg_analyst') THEN CREATE ROLE sqs2pg_analyst NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sqs2pg_revealer') THEN CREATE ROLE sqs2pg_revealer NOLOGIN; END IF;
END
$$;
REVOKE ALL ON user_logins, user_logins_rejects, sqs2pg_ledger, sqs2pg_ledger_0, sqs2pg_ledger_1,
  sqs2pg_ledger_state, sqs2pg_reveal_audit
  FROM sqs2pg_ingest, sqs2pg_analyst, sqs2pg_revealer;
GRANT INSERT ON user_logins, user_logins_rejects TO sqs2pg_ingest;
-- ON CONFLICT (message_id) needs to read the key column, and only that one.
GRANT SELECT (message_id) ON user_logins_rejects TO sqs2pg_ingest;
GRANT SELECT, INSERT, TRUNCATE ON sqs2pg_ledger_0, sqs2pg_ledger_1 TO sqs2pg_ingest;
GRANT SELECT, UPDATE ON sqs2pg_ledger_state TO sqs2pg_ingest;
GRANT SELECT ON user_logins TO sqs2pg_analyst;
GRANT SELECT ON user_logins, user_logins_rejects TO sqs2pg_revealer;
GRANT INSERT ON sqs2pg_reveal_audit TO sqs2pg_revealer;
GRANT USAGE ON SEQUENCE sqs2pg_reveal_audit_id_seq TO sqs2pg_revealer;
";

/// Opens a connection and drives it on a background task.
///
/// TLS follows `sslmode` in the connection string as libpq does: `disable` never, `prefer`
/// (the default) when the server offers it, `require` always. The server certificate is
/// verified against the system's roots, or against the PEM bundle in
/// `SQS2PG_DB_CA_FILE` (for example RDS's `global-bundle.pem`).
pub async fn connect(db: &DbConfig) -> Result<Client, SinkError> {
    let connect_err = |source| SinkError::Connect {
        target: describe(&db.pg),
        source,
    };
    let client = if db.pg.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        let (client, conn) = db.pg.connect(NoTls).await.map_err(connect_err)?;
        spawn_connection(conn);
        client
    } else {
        let (client, conn) = db.pg.connect(tls()?).await.map_err(connect_err)?;
        spawn_connection(conn);
        client
    };
    Ok(client)
}

fn spawn_connection<F>(conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
}

/// The rustls connector: system roots, or the CA bundle named by `SQS2PG_DB_CA_FILE`.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, SinkError> {
    static CONFIG: std::sync::OnceLock<Result<rustls::ClientConfig, String>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        match std::env::var_os("SQS2PG_DB_CA_FILE") {
            Some(path) => {
                let pem = std::fs::read(&path)
                    .map_err(|e| format!("SQS2PG_DB_CA_FILE: cannot read {}: {e}", std::path::Path::new(&path).display()))?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| format!("SQS2PG_DB_CA_FILE: not a PEM certificate bundle: {e}"))?;
                    roots.add(cert).map_err(|e| format!("SQS2PG_DB_CA_FILE: unusable certificate: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("SQS2PG_DB_CA_FILE holds no certificate: give the PEM bundle of your database's CA".into());
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    });
    match config {
        Ok(c) => Ok(tokio_postgres_rustls::MakeRustlsConnect::new(c.clone())),
        Err(e) => Err(SinkError::Tls(e.clone())),
    }
}

fn describe(pg: &tokio_postgres::Config) -> String {
    let host = pg
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        pg.get_dbname().unwrap_or("(default db)")
    )
}

/// What `migrate` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Tables that were created now.
    pub created: Vec<&'static str>,
}

/// Every table the tool uses.
pub const TABLES: [&str; 6] = [
    "user_logins",
    "user_logins_rejects",
    "sqs2pg_ledger_0",
    "sqs2pg_ledger_1",
    "sqs2pg_ledger_state",
    "sqs2pg_reveal_audit",
];

/// Those of `tables` that do not exist (as the search path resolves them), in order.
async fn missing_tables(
    client: &impl tokio_postgres::GenericClient,
    tables: &[&'static str],
) -> Result<Vec<&'static str>, SinkError> {
    let missing: Vec<String> = client
        .query(
            "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL",
            &[&tables],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(tables
        .iter()
        .copied()
        .filter(|t| missing.iter().any(|m| m == t))
        .collect())
}

/// Creates what is missing; never alters an existing table. With `roles`, also creates the
/// least-privilege roles and sets their grants (idempotent).
pub async fn migrate(client: &mut Client, roles: bool) -> Result<MigrateReport, SinkError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await?;
    let created = missing_tables(&tx, &TABLES).await?;
    tx.batch_execute(MIGRATION).await?;
    if roles {
        tx.batch_execute(ROLES).await?;
    }
    tx.commit().await?;
    Ok(MigrateReport { created })
}

/// Reads the live `user_logins` columns into [`Limits`]; fails with
/// [`SinkError::NotMigrated`] when a table is missing.
pub async fn inspect(client: &Client) -> Result<Limits, SinkError> {
    Ok(inspect_columns(client).await?.0)
}

/// [`inspect`], also returning the catalog rows it read: name, type name, type category,
/// typmod and type oid of each `user_logins` column.
async fn inspect_columns(client: &Client) -> Result<(Limits, Vec<tokio_postgres::Row>), SinkError> {
    // The audit table is only needed by reveal and mask, which report it themselves.
    if let Some(t) = missing_tables(client, &TABLES[..5]).await?.first() {
        return Err(SinkError::NotMigrated(t));
    }
    let rows = client
        .query(
            "SELECT a.attname::text, t.typname::text, t.typcategory::text, a.atttypmod, a.atttypid
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
              WHERE a.attrelid = to_regclass('user_logins') AND a.attnum > 0 AND NOT a.attisdropped",
            &[],
        )
        .await?;
    let col = |name: &str| rows.iter().find(|r| r.get::<_, String>(0) == name);
    let mut limits = Limits::default();
    let text_limit = |name: &'static str| -> Result<Option<usize>, SinkError> {
        let r = col(name)
            .ok_or_else(|| SinkError::Incompatible(format!("column {name} is missing")))?;
        let (typname, category, typmod): (String, String, i32) = (r.get(1), r.get(2), r.get(3));
        if category != "S" {
            return Err(SinkError::Incompatible(format!(
                "column {name} is {typname}; it must be a text type"
            )));
        }
        // varchar(n) and char(n) store n + 4 in atttypmod; -1 means unlimited.
        Ok((typmod >= 4).then(|| (typmod - 4) as usize))
    };
    limits.user_id = text_limit("user_id")?;
    limits.device_type = text_limit("device_type")?;
    limits.locale = text_limit("locale")?;
    limits.masked_ip = text_limit("masked_ip")?;
    limits.masked_device_id = text_limit("masked_device_id")?;
    let r = col("app_version")
        .ok_or_else(|| SinkError::Incompatible("column app_version is missing".into()))?;
    let (typname, category, typmod): (String, String, i32) = (r.get(1), r.get(2), r.get(3));
    limits.app_version = match (category.as_str(), typname.as_str()) {
        ("S", _) => AppVersionColumn::Text {
            max_chars: (typmod >= 4).then(|| (typmod - 4) as usize),
        },
        ("N", "int2") => AppVersionColumn::Integer {
            max: i64::from(i16::MAX),
        },
        ("N", "int4" | "int8" | "numeric") => AppVersionColumn::Integer {
            max: i64::from(i32::MAX),
        },
        _ => {
            return Err(SinkError::Incompatible(format!(
                "column app_version is {typname}; it must be an integer or a text type"
            )))
        }
    };
    match col("create_date") {
        Some(r) if r.get::<_, String>(1) == "date" => {}
        Some(r) => {
            return Err(SinkError::Incompatible(format!(
                "column create_date is {}; it must be date",
                r.get::<_, String>(1)
            )))
        }
        None => {
            return Err(SinkError::Incompatible(
                "column create_date is missing".into(),
            ))
        }
    }
    Ok((limits, rows))
}

/// One `user_logins` row, already masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Never empty.
    pub user_id: String,
    /// As sent.
    pub device_type: Option<String>,
    /// Token.
    pub masked_ip: Option<String>,
    /// Token.
    pub masked_device_id: Option<String>,
    /// As sent.
    pub locale: Option<String>,
    /// Encoded or verbatim, per the column's type.
    pub app_version: Option<AppVersion>,
    /// UTC date of `SentTimestamp`.
    pub create_date: NaiveDate,
}

/// One `user_logins_rejects` entry; the body is already sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Machine-readable reason.
    pub reason: String,
    /// Sealed body (`reveal` opens it).
    pub body_ciphertext: String,
    /// `ApproximateReceiveCount`.
    pub receive_count: Option<i32>,
    /// `SentTimestamp`.
    pub sent_at: Option<DateTime<Utc>>,
}

/// What a message becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A row.
    Row(Row),
    /// A quarantined message.
    Reject(Reject),
}

/// A message id and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// SQS message id.
    pub message_id: String,
    /// What to write.
    pub outcome: Outcome,
}

/// What one committed batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows inserted.
    pub loaded: u64,
    /// Rejects inserted, by reason.
    pub rejected: Vec<String>,
    /// Message ids already in the ledger (redeliveries): nothing written.
    pub duplicates: u64,
}

/// A writer on its own connection, with statements prepared for the live table.
pub struct Sink {
    client: Client,
    /// Per ledger table: insert-new-ids, look-up-ids, and copy-ids.
    ledger_insert: [Statement; 2],
    ledger_lookup: [Statement; 2],
    ledger_copy: [Statement; 2],
    /// The ledger generation this writer last saw.
    generation: i64,
    rows: RowWriter,
    rejects: Statement,
}

/// Writes rows into `user_logins`.
struct RowWriter {
    /// The `unnest` insert, whose app_version parameter is text or integer as the live
    /// column is.
    unnest: Statement,
    text_version: bool,
    /// `COPY` into `user_logins`, when every column it fills has a binary form we write.
    copy: Option<RowsCopy>,
}

/// A prepared binary `COPY` into `user_logins` and the live column types it encodes for.
struct RowsCopy {
    stmt: Statement,
    types: Vec<Type>,
}

/// The columns a row fills, in `COPY` order.
const ROW_COLUMNS: [&str; 7] = [
    "user_id",
    "device_type",
    "masked_ip",
    "masked_device_id",
    "locale",
    "app_version",
    "create_date",
];

impl Sink {
    /// Connects, checks the tables and prepares the statements.
    pub async fn connect(db: &DbConfig) -> Result<(Self, Limits), SinkError> {
        let client = connect(db).await?;
        let (limits, columns) = inspect_columns(&client).await?;
        let text_version = matches!(limits.app_version, AppVersionColumn::Text { .. });
        let version_type = if text_version { "text[]" } else { "int8[]" };
        let mut ledger_insert = Vec::with_capacity(2);
        let mut ledger_lookup = Vec::with_capacity(2);
        let mut ledger_copy = Vec::with_capacity(2);
        for t in ["sqs2pg_ledger_0", "sqs2pg_ledger_1"] {
            ledger_copy.push(
                client
                    .prepare(&format!("COPY {t}(message_id) FROM STDIN (FORMAT binary)"))
                    .await?,
            );
            ledger_insert.push(
                client
                    .prepare(&format!(
                        "INSERT INTO {t}(message_id) SELECT unnest($1::text[])
                         ON CONFLICT DO NOTHING RETURNING message_id"
                    ))
                    .await?,
            );
            ledger_lookup.push(
                client
                    .prepare(&format!(
                        "SELECT message_id FROM {t} WHERE message_id = ANY($1::text[])"
                    ))
                    .await?,
            );
        }
        let two = |v: Vec<Statement>| -> [Statement; 2] {
            let mut it = v.into_iter();
            match (it.next(), it.next()) {
                (Some(a), Some(b)) => [a, b],
                _ => unreachable!("two statements were prepared"),
            }
        };
        let rows = client
            .prepare(&format!(
                "INSERT INTO user_logins(user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::{version_type}, $7::date[])"
            ))
            .await?;
        let rows_copy = rows_copy(&client, &columns).await?;
        if rows_copy.is_none() {
            tracing::info!("user_logins has a column type binary COPY cannot encode; rows go in by array insert");
        }
        let rejects = client
            .prepare(
                "INSERT INTO user_logins_rejects(message_id, reason, body_ciphertext, receive_count, sent_at)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::timestamptz[])
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .await?;
        Ok((
            Self {
                client,
                ledger_insert: two(ledger_insert),
                ledger_lookup: two(ledger_lookup),
                ledger_copy: two(ledger_copy),
                generation: -1,
                rows: RowWriter {
                    unnest: rows,
                    text_version,
                    copy: rows_copy,
                },
                rejects,
            },
            limits,
        ))
    }

    /// True once the connection is gone; the caller reconnects.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Writes a batch in one transaction. Records whose message id is already in the ledger
    /// (or repeated within the batch) are skipped and counted as duplicates.
    pub async fn write(&mut self, batch: &[Record]) -> Result<WriteReport, SinkError> {
        let refs: Vec<&Record> = batch.iter().collect();
        self.write_at(&refs, std::time::SystemTime::now()).await
    }

    /// [`Sink::write`] with the clock given, so generation changes can be tested.
    ///
    /// The ledger is two tables, each one generation of [`LEDGER_GENERATION_DAYS`] days:
    /// new ids go into the current one, and are looked up in the previous one. When a new
    /// generation starts, the first writer to notice truncates the table it reuses, which only
    /// holds ids older than SQS's longest retention: pruning costs one `TRUNCATE` per
    /// generation, and a batch costs the same after a year as on the first day.
    pub async fn write_at(
        &mut self,
        batch: &[&Record],
        now: std::time::SystemTime,
    ) -> Result<WriteReport, SinkError> {
        let generation = ledger_generation(now);
        // A message id repeated inside the batch is written once.
        let mut seen = HashSet::with_capacity(batch.len());
        let unique: Vec<&Record> = batch
            .iter()
            .copied()
            .filter(|r| seen.insert(r.message_id.as_str()))
            .collect();
        // Sorted, so that concurrent writers take the ledger's index locks in one order and
        // cannot deadlock on each other's ids.
        let mut ids: Vec<&str> = unique.iter().map(|r| r.message_id.as_str()).collect();
        ids.sort_unstable();
        let mut mode = LedgerWrite::Copy;
        // At most twice: the checked path never gives up.
        let mut report = loop {
            match self.write_tx(&unique, &ids, generation, mode).await? {
                Some(report) => break report,
                None => mode = LedgerWrite::Checked,
            }
        };
        report.duplicates += (batch.len() - unique.len()) as u64;
        self.generation = generation;
        Ok(report)
    }

    /// One attempt at a batch of distinct ids. `None` only when [`LedgerWrite::Copy`] met an
    /// id already in the ledger: the transaction is rolled back and the caller goes again with
    /// [`LedgerWrite::Checked`].
    async fn write_tx(
        &mut self,
        recs: &[&Record],
        ids: &[&str],
        generation: i64,
        mode: LedgerWrite,
    ) -> Result<Option<WriteReport>, SinkError> {
        let tx = self.client.transaction().await?;
        if generation != self.generation {
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
        }
        let (current, previous) = (
            (generation.rem_euclid(2)) as usize,
            ((generation + 1).rem_euclid(2)) as usize,
        );
        let fresh: HashSet<&str> = match mode {
            LedgerWrite::Copy => {
                // Ids seen in the previous generation go into the current one too, as on the
                // checked path, so a redelivery renews its entry.
                match copy_ids(&tx, &self.ledger_copy[current], ids).await {
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                    done => done?,
                }
                let old = column_set(tx.query(&self.ledger_lookup[previous], &[&ids]).await?);
                ids.iter()
                    .copied()
                    .filter(|id| !old.contains(*id))
                    .collect()
            }
            LedgerWrite::Checked => {
                let mut new = column_set(tx.query(&self.ledger_insert[current], &[&ids]).await?);
                if !new.is_empty() {
                    let candidates: Vec<&str> = new.iter().map(String::as_str).collect();
                    let old = tx
                        .query(&self.ledger_lookup[previous], &[&candidates])
                        .await?;
                    for id in column_set(old) {
                        new.remove(&id);
                    }
                }
                ids.iter().copied().filter(|id| new.contains(*id)).collect()
            }
        };
        let mut report = WriteReport::default();
        let mut rows = Vec::with_capacity(fresh.len());
        let mut rejects = RejectColumns::default();
        for rec in recs {
            if !fresh.contains(rec.message_id.as_str()) {
                report.duplicates += 1;
                continue;
            }
            match &rec.outcome {
                Outcome::Row(r) => rows.push(r),
                Outcome::Reject(r) => {
                    report.rejected.push(r.reason.clone());
                    rejects.push(&rec.message_id, r);
                }
            }
        }
        report.loaded = self.rows.insert(&tx, &rows).await?;
        if !rejects.message_id.is_empty() {
            tx.execute(
                &self.rejects,
                &[
                    &rejects.message_id,
                    &rejects.reason,
                    &rejects.body,
                    &rejects.receive_count,
                    &rejects.sent_at,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(report))
    }
}

impl RowWriter {
    /// Inserts rows into `user_logins`: one binary `COPY` where the live column types allow
    /// it, else one `unnest` insert.
    async fn insert(&self, tx: &Transaction<'_>, rows: &[&Row]) -> Result<u64, SinkError> {
        if rows.is_empty() {
            return Ok(0);
        }
        if let Some(copy) = &self.copy {
            return Ok(copy_rows(tx, copy, rows).await?);
        }
        let mut cols = RowColumns::default();
        for r in rows {
            cols.push(r);
        }
        let version: &(dyn ToSql + Sync) = if self.text_version {
            &cols.version_text
        } else {
            &cols.version_int
        };
        Ok(tx
            .execute(
                &self.unnest,
                &[
                    &cols.user_id,
                    &cols.device_type,
                    &cols.masked_ip,
                    &cols.masked_device_id,
                    &cols.locale,
                    version,
                    &cols.create_date,
                ],
            )
            .await?)
    }
}

/// How a batch's ids go into the ledger.
#[derive(Clone, Copy, Debug)]
enum LedgerWrite {
    /// Binary `COPY`: fails on the first id already there.
    Copy,
    /// `INSERT … ON CONFLICT DO NOTHING RETURNING`: skips the ids already there.
    Checked,
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

/// Binary `COPY` of rows into `user_logins`; returns the rows written.
async fn copy_rows(
    tx: &Transaction<'_>,
    copy: &RowsCopy,
    rows: &[&Row],
) -> Result<u64, tokio_postgres::Error> {
    let writer = BinaryCopyInWriter::new(tx.copy_in(&copy.stmt).await?, &copy.types);
    pin_mut!(writer);
    for r in rows {
        let version = VersionCell(r.app_version.as_ref());
        writer
            .as_mut()
            .write(&[
                &r.user_id,
                &r.device_type,
                &r.masked_ip,
                &r.masked_device_id,
                &r.locale,
                &version,
                &r.create_date,
            ])
            .await?;
    }
    writer.finish().await
}

/// Prepares the binary `COPY` into `user_logins` when every column it fills has a built-in
/// type we can encode (text types, an integer or text app_version, a date); `None` sends
/// rows through the `unnest` insert instead. `columns` are [`inspect_columns`]'s rows.
async fn rows_copy(
    client: &Client,
    columns: &[tokio_postgres::Row],
) -> Result<Option<RowsCopy>, SinkError> {
    let mut types = Vec::with_capacity(ROW_COLUMNS.len());
    for name in ROW_COLUMNS {
        let ty = columns
            .iter()
            .find(|r| r.get::<_, String>(0) == name)
            .and_then(|r| Type::from_oid(r.get(4)));
        let Some(ty) = ty else { return Ok(None) };
        let encodable = match name {
            "app_version" => <VersionCell as ToSql>::accepts(&ty),
            "create_date" => ty == Type::DATE,
            _ => <&str as ToSql>::accepts(&ty),
        };
        if !encodable {
            return Ok(None);
        }
        types.push(ty);
    }
    let stmt = client
        .prepare(&format!(
            "COPY user_logins({}) FROM STDIN (FORMAT binary)",
            ROW_COLUMNS.join(", ")
        ))
        .await?;
    Ok(Some(RowsCopy { stmt, types }))
}

/// `app_version` encoded for the live column's type. The decoder already bounded an integer
/// by that type's range (see [`AppVersionColumn`]), so the narrowing cannot fail in practice.
#[derive(Debug)]
struct VersionCell<'a>(Option<&'a AppVersion>);

impl ToSql for VersionCell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            None => Ok(tokio_postgres::types::IsNull::Yes),
            Some(AppVersion::Int(v)) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT8 => v.to_sql(ty, out),
                _ => Err(format!("an encoded app_version cannot go into a {ty} column").into()),
            },
            Some(AppVersion::Text(s)) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8) || <&str as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

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

impl Sink {
    /// Moves replayed rejects: in one transaction, deletes each `rows` entry from the rejects
    /// and inserts its row (only for the ids this transaction actually deleted, so two
    /// concurrent replays cannot both load one message), and updates the reason of `still`.
    pub async fn replay(
        &mut self,
        rows: &[(String, Row)],
        still: &[(String, String)],
    ) -> Result<ReplayReport, SinkError> {
        let tx = self.client.transaction().await?;
        let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
        let mut taken: HashSet<String> = tx
            .query(
                "DELETE FROM user_logins_rejects WHERE message_id = ANY($1) RETURNING message_id",
                &[&ids],
            )
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        let mut taken_rows = Vec::with_capacity(rows.len());
        let mut report = ReplayReport::default();
        for (id, row) in rows {
            if taken.remove(id) {
                taken_rows.push(row);
            } else {
                report.skipped += 1;
            }
        }
        report.loaded = self.rows.insert(&tx, &taken_rows).await?;
        if !still.is_empty() {
            let (ids, reasons): (Vec<&str>, Vec<&str>) =
                still.iter().map(|(i, r)| (i.as_str(), r.as_str())).unzip();
            tx.execute(
                "UPDATE user_logins_rejects r SET reason = m.reason
                   FROM unnest($1::text[], $2::text[]) AS m(id, reason)
                  WHERE r.message_id = m.id AND r.reason <> m.reason",
                &[&ids, &reasons],
            )
            .await?;
            report.still_rejected = still.len() as u64;
        }
        tx.commit().await?;
        Ok(report)
    }
}

/// One quarantined message as stored.
#[derive(Debug, Clone)]
pub struct StoredReject {
    /// SQS message id.
    pub message_id: String,
    /// Current reason.
    pub reason: String,
    /// Sealed body.
    pub body_ciphertext: String,
    /// `ApproximateReceiveCount` when rejected.
    pub receive_count: Option<i32>,
    /// `SentTimestamp`.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Rejects after `after` (by message id), optionally only one reason or one id.
pub async fn rejects_page(
    client: &Client,
    after: &str,
    reason: Option<&str>,
    id: Option<&str>,
    limit: i64,
) -> Result<Vec<StoredReject>, SinkError> {
    let rows = client
        .query(
            "SELECT message_id, reason, body_ciphertext, receive_count, sent_at FROM user_logins_rejects
              WHERE message_id > $1 AND ($2::text IS NULL OR reason = $2) AND ($3::text IS NULL OR message_id = $3)
              ORDER BY message_id LIMIT $4",
            &[&after, &reason, &id, &limit],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredReject {
            message_id: r.get(0),
            reason: r.get(1),
            body_ciphertext: r.get(2),
            receive_count: r.get(3),
            sent_at: r.get(4),
        })
        .collect())
}

/// Counts of rejects by reason, with up to `ids_per_reason` message ids each (never bodies).
pub async fn rejects_summary(
    client: &Client,
    reason: Option<&str>,
    ids_per_reason: i64,
) -> Result<Vec<(String, i64, Vec<String>)>, SinkError> {
    let rows = client
        .query(
            "SELECT reason, count(*), (array_agg(message_id ORDER BY rejected_at, message_id))[1:$2::int8::int4]
               FROM user_logins_rejects WHERE $1::text IS NULL OR reason = $1
              GROUP BY reason ORDER BY count(*) DESC, reason",
            &[&reason, &ids_per_reason],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Column arrays for one `unnest` insert into `user_logins`.
#[derive(Default)]
struct RowColumns<'a> {
    user_id: Vec<&'a str>,
    device_type: Vec<Option<&'a str>>,
    masked_ip: Vec<Option<&'a str>>,
    masked_device_id: Vec<Option<&'a str>>,
    locale: Vec<Option<&'a str>>,
    version_int: Vec<Option<i64>>,
    version_text: Vec<Option<&'a str>>,
    create_date: Vec<NaiveDate>,
}

impl<'a> RowColumns<'a> {
    fn push(&mut self, r: &'a Row) {
        self.user_id.push(&r.user_id);
        self.device_type.push(r.device_type.as_deref());
        self.masked_ip.push(r.masked_ip.as_deref());
        self.masked_device_id.push(r.masked_device_id.as_deref());
        self.locale.push(r.locale.as_deref());
        let (int, text) = match &r.app_version {
            None => (None, None),
            Some(AppVersion::Int(v)) => (Some(*v), None),
            Some(AppVersion::Text(s)) => (None, Some(s.as_str())),
        };
        self.version_int.push(int);
        self.version_text.push(text);
        self.create_date.push(r.create_date);
    }
}

/// Column arrays for one `unnest` insert into `user_logins_rejects`.
#[derive(Default)]
struct RejectColumns<'a> {
    message_id: Vec<&'a str>,
    reason: Vec<&'a str>,
    body: Vec<&'a str>,
    receive_count: Vec<Option<i32>>,
    sent_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> RejectColumns<'a> {
    fn push(&mut self, message_id: &'a str, r: &'a Reject) {
        self.message_id.push(message_id);
        self.reason.push(&r.reason);
        self.body.push(&r.body_ciphertext);
        self.receive_count.push(r.receive_count);
        self.sent_at.push(r.sent_at);
    }
}
