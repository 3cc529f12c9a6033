//! The Postgres side: migrations, the live table's shape, and batched idempotent writes.
//!
//! A batch is one transaction: first the message ids go into the ledger
//! (`sqs2pg_ledger`, `ON CONFLICT DO NOTHING RETURNING`), and only the ids that were new get
//! their row in `user_logins` or their entry in `user_logins_rejects`, each table filled by
//! one array (`unnest`) insert. A message id already in the ledger therefore produces
//! nothing, however often SQS delivers it. The caller deletes from the queue only after
//! [`Sink::write`] returns `Ok`.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use thiserror::Error;
use tokio_postgres::{Client, NoTls, Statement};

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
    // The audit table is only needed by reveal and mask, which report it themselves.
    if let Some(t) = missing_tables(client, &TABLES[..5]).await?.first() {
        return Err(SinkError::NotMigrated(t));
    }
    let rows = client
        .query(
            "SELECT a.attname::text, t.typname::text, t.typcategory::text, a.atttypmod
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
    Ok(limits)
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
    /// Per ledger table: insert-new-ids, and look-up-ids.
    ledger_insert: [Statement; 2],
    ledger_lookup: [Statement; 2],
    /// The ledger generation this writer last saw.
    generation: i64,
    rows: Statement,
    rejects: Statement,
    text_version: bool,
}

impl Sink {
    /// Connects, checks the tables and prepares the statements.
    pub async fn connect(db: &DbConfig) -> Result<(Self, Limits), SinkError> {
        let client = connect(db).await?;
        let limits = inspect(&client).await?;
        let text_version = matches!(limits.app_version, AppVersionColumn::Text { .. });
        let version_type = if text_version { "text[]" } else { "int8[]" };
        let mut ledger_insert = Vec::with_capacity(2);
        let mut ledger_lookup = Vec::with_capacity(2);
        for t in ["sqs2pg_ledger_0", "sqs2pg_ledger_1"] {
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
                generation: -1,
                rows,
                rejects,
                text_version,
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
    /// new ids go into the current one (`ON CONFLICT DO NOTHING RETURNING`), and the ids that
    /// were new there are looked up in the previous one. When a new generation starts, the
    /// first writer to notice truncates the table it reuses, which only holds ids older than
    /// SQS's longest retention: pruning costs one `TRUNCATE` per generation, and a batch costs
    /// the same after a year as on the first day.
    pub async fn write_at(
        &mut self,
        batch: &[&Record],
        now: std::time::SystemTime,
    ) -> Result<WriteReport, SinkError> {
        let generation = ledger_generation(now);
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
        let ids: Vec<&str> = batch.iter().map(|r| r.message_id.as_str()).collect();
        let mut fresh: HashSet<String> = tx
            .query(&self.ledger_insert[current], &[&ids])
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        if !fresh.is_empty() {
            let candidates: Vec<&str> = fresh.iter().map(String::as_str).collect();
            let seen: Vec<String> = tx
                .query(&self.ledger_lookup[previous], &[&candidates])
                .await?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            for id in seen {
                fresh.remove(&id);
            }
        }
        let mut report = WriteReport::default();
        let mut rows = RowColumns::default();
        let mut rejects = RejectColumns::default();
        for rec in batch {
            // `remove` so a message id repeated inside the batch is written once.
            if !fresh.remove(&rec.message_id) {
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
        if !rows.user_id.is_empty() {
            report.loaded = insert_rows(&self.rows, self.text_version, &tx, &rows).await?;
        }
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
        self.generation = generation;
        Ok(report)
    }
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
        let mut cols = RowColumns::default();
        let mut report = ReplayReport::default();
        for (id, row) in rows {
            if taken.remove(id) {
                cols.push(row);
            } else {
                report.skipped += 1;
            }
        }
        if !cols.user_id.is_empty() {
            report.loaded = insert_rows(&self.rows, self.text_version, &tx, &cols).await?;
        }
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

/// One `unnest` insert of `rows` with the prepared statement, whose app_version parameter
/// is text or integer as the live column is.
async fn insert_rows(
    stmt: &Statement,
    text_version: bool,
    tx: &tokio_postgres::Transaction<'_>,
    rows: &RowColumns<'_>,
) -> Result<u64, SinkError> {
    let version: &(dyn tokio_postgres::types::ToSql + Sync) = if text_version {
        &rows.version_text
    } else {
        &rows.version_int
    };
    Ok(tx
        .execute(
            stmt,
            &[
                &rows.user_id,
                &rows.device_type,
                &rows.masked_ip,
                &rows.masked_device_id,
                &rows.locale,
                version,
                &rows.create_date,
            ],
        )
        .await?)
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
