//! Validated configuration: what every command reads, built once before any work starts.
//!
//! [`crate::cli::args`] parses flags, environment and the configuration file ([`file`]) with
//! clap (flag, then environment, then file, then the defaults below); this module turns them
//! into typed settings and refuses bad ones with a [`ConfigError`] that names the flag or
//! variable and says what to do. Each setting is documented once, on its flag. Secrets (the
//! keyring, a database URL that may carry a password) are held in `secrecy` types and never
//! printed.

pub mod file;
pub mod keys;
mod redact;
mod tls;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use crate::mask::Keyring;

/// `--queue-name`'s default.
pub const DEFAULT_QUEUE_NAME: &str = "login-queue";
/// `--database-url`'s default: the local cluster `scripts/services up` starts.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// `run --pollers`' default.
pub const DEFAULT_POLLERS: u16 = 8;
/// `run --writers`' default.
pub const DEFAULT_WRITERS: u16 = 2;
/// `run --batch-size`'s default.
pub const DEFAULT_BATCH_SIZE: u32 = 500;
/// `run --batch-wait-ms`' default.
pub const DEFAULT_BATCH_WAIT_MS: u64 = 200;
/// `run --max-inflight-bytes`' default: 64 MiB of bodies held from receive to delete.
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 64 * 1024 * 1024;
/// `run --max-inflight-bytes`' smallest accepted value (64 KiB).
pub const MIN_MAX_INFLIGHT_BYTES: u64 = 64 * 1024;
/// `run --max-inflight-bytes`' largest accepted value (64 GiB).
pub const MAX_MAX_INFLIGHT_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// `run --wait-seconds`' default: SQS's longest long poll.
pub const DEFAULT_WAIT_SECONDS: i32 = 20;
/// `--db-write-timeout-secs`' default.
pub const DEFAULT_DB_WRITE_TIMEOUT_SECS: u64 = 30;
/// `--db-statements`' default: correct behind a transaction-pooling proxy as well as on a
/// direct connection; `make bench` reports what it costs against `prepared` (the sink row
/// "--db-statements unnamed (default) vs prepared").
pub const DEFAULT_DB_STATEMENTS: DbStatements = DbStatements::Unnamed;
/// libpq's `connect_timeout` when the connection string has none, in seconds.
pub const DEFAULT_DB_CONNECT_TIMEOUT_SECS: u64 = 10;
/// TCP keepalive idle time when the connection string sets no `keepalives_idle`; with
/// [`DEFAULT_DB_KEEPALIVES_INTERVAL_SECS`] and [`DEFAULT_DB_KEEPALIVES_RETRIES`], a silent
/// peer is detected in about 25 s instead of the kernel's two hours.
pub const DEFAULT_DB_KEEPALIVES_IDLE_SECS: u64 = 10;
/// TCP keepalive probe interval when the connection string sets none.
pub const DEFAULT_DB_KEEPALIVES_INTERVAL_SECS: u64 = 5;
/// TCP keepalive probes when the connection string sets none.
pub const DEFAULT_DB_KEEPALIVES_RETRIES: u32 = 3;
/// `run --shutdown-timeout`'s default, in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;

/// A setting that cannot be used. The binary exits 2 on these, but for an unreachable KMS.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A flag or variable with a bad value.
    #[error("{name}: {problem}")]
    Invalid {
        /// The flag and its variable, e.g. `--database-url / DATABASE_URL`.
        name: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
    /// No keyring configured.
    #[error("no masking key configured: make one with `sqs2pg keygen --kid k1 --out keys`, then pass --keys-file keys (or SQS2PG_KEYS_FILE), or put the line in SQS2PG_KEYS")]
    NoKey,
    /// The keys file could not be read.
    #[error("--keys-file / SQS2PG_KEYS_FILE: cannot read {path}: {source}")]
    KeysFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The keys file is readable by others.
    #[error("--keys-file / SQS2PG_KEYS_FILE: {path} is readable by group or others (mode {mode:o}); it holds secret keys: run `chmod 600 {path}`")]
    KeysFileMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The keys file belongs to another user, who could rewrite it or open it up.
    #[error("--keys-file / SQS2PG_KEYS_FILE: {path} belongs to uid {owner}, not to this process's user (uid {euid}) or root; whoever owns it can change the keys: run `chown {euid} {path}` (or copy it as this user with `umask 077`)")]
    KeysFileOwner {
        /// The file.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The process's effective uid.
        euid: u32,
    },
    /// A KMS-wrapped key could not be unwrapped.
    #[error(transparent)]
    Kms(#[from] crate::mask::kms::KmsError),
    /// The keyring text is bad.
    #[error("{origin}: {source}")]
    Key {
        /// Where the keyring came from.
        origin: &'static str,
        /// What is wrong with it.
        source: crate::mask::KeyError,
    },
}

impl ConfigError {
    /// The user must change a setting (exit 2); only an unreachable KMS is an outage.
    pub fn is_usage(&self) -> bool {
        !matches!(self, Self::Kms(k) if !k.is_refusal())
    }
}

/// Where the messages come from.
#[derive(Clone, Debug)]
pub struct SqsConfig {
    /// Used as is when set.
    pub queue_url: Option<String>,
    /// Resolved to a URL with `GetQueueUrl` when no URL is set.
    pub queue_name: String,
    /// How the queue's bodies are read (`--envelope`, `--create-date-from`).
    pub framing: crate::decode::Framing,
    /// The SQS endpoint, for a library caller that talks to two servers in one process (the
    /// suite runs LocalStack and moto side by side); `None`, as the CLI always has it, leaves
    /// it to the SDK's chain (`AWS_ENDPOINT_URL`, else AWS).
    pub endpoint_url: Option<String>,
}

/// How the writers send their statements (`--db-statements`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DbStatements {
    /// Prepared once per connection and reused: one round trip fewer per `COPY`, but only
    /// on a connection whose server session lasts (direct, or a session-pooling proxy).
    Prepared,
    /// Unnamed, sent with each use: no named statement outlives its transaction, as a
    /// transaction-pooling proxy (PgBouncer `pool_mode = transaction`) needs.
    Unnamed,
}

/// Where the rows go.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// May hold a password.
    pub url: SecretString,
    /// Parsed form of `url`.
    pub pg: tokio_postgres::Config,
    /// The roots server certificates are checked against; `None` when `sslmode=disable`.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `--db-write-timeout-secs`: the longest one batch's transaction may take.
    pub write_timeout: Duration,
    /// `--db-statements`.
    pub statements: DbStatements,
}

impl DbConfig {
    /// Parses and checks a connection string (URL or key=value form) and loads the roots
    /// its TLS will check: the PEM bundle `ca_file` (`SQS2PG_DB_CA_FILE`), else the system's.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut pg = tokio_postgres::Config::from_str(url).map_err(|e| ConfigError::Invalid {
            name: "--database-url / DATABASE_URL",
            problem: format!(
                "not a valid Postgres connection string ({e}); expected e.g. postgres://user@host:5432/db"
            ),
        })?;
        let tls = match pg.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => None,
            _ => Some(tls::client_config(ca_file)?),
        };
        let write_timeout = Duration::from_secs(DEFAULT_DB_WRITE_TIMEOUT_SECS);
        bound_network_waits(&mut pg, write_timeout);
        Ok(Self {
            url: SecretString::from(url.to_owned()),
            pg,
            tls,
            write_timeout,
            statements: DEFAULT_DB_STATEMENTS,
        })
    }

    /// With `--db-statements`.
    pub fn with_statements(mut self, statements: DbStatements) -> Self {
        self.statements = statements;
        self
    }

    /// With `--db-write-timeout-secs`; the TCP user timeout follows it unless the connection
    /// string sets one.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        if self.pg.get_tcp_user_timeout() == Some(&self.write_timeout) {
            self.pg.tcp_user_timeout(timeout);
        }
        self.write_timeout = timeout;
        self
    }

    /// The TLS client configuration, unless TLS is off.
    pub fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// The connection string for display: rebuilt from the driver's parse, password
    /// `<redacted>`.
    pub fn redacted(&self) -> String {
        redact::redact(self.url.expose_secret())
    }
}

/// The network waits libpq leaves unbounded by default, bounded unless the connection
/// string sets them: connecting, a peer that stopped answering (keepalives), and data that
/// stays unacknowledged (`tcp_user_timeout`, as long as a write may take). Without them a
/// half-open connection (a NAT or load balancer that dropped its state, a host that vanished
/// in a failover) hangs a writer for the kernel's two hours.
fn bound_network_waits(pg: &mut tokio_postgres::Config, write_timeout: Duration) {
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(DEFAULT_DB_CONNECT_TIMEOUT_SECS));
    }
    // The driver's own default: two hours, i.e. not set by the user.
    if pg.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        pg.keepalives_idle(Duration::from_secs(DEFAULT_DB_KEEPALIVES_IDLE_SECS));
    }
    if pg.get_keepalives_interval().is_none() {
        pg.keepalives_interval(Duration::from_secs(DEFAULT_DB_KEEPALIVES_INTERVAL_SECS));
    }
    if pg.get_keepalives_retries().is_none() {
        pg.keepalives_retries(DEFAULT_DB_KEEPALIVES_RETRIES);
    }
    if pg.get_tcp_user_timeout().is_none() {
        pg.tcp_user_timeout(write_timeout);
    }
}

/// How `run` consumes; each field is the validated form of the `run` flag of the same name
/// (see `sqs2pg run --help`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    pub pollers: usize,
    pub writers: usize,
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Body bytes held from receive to delete before receiving pauses; a batch also
    /// closes at an eighth of it.
    pub max_inflight_bytes: usize,
    pub wait_seconds: i32,
    pub until_empty: bool,
    /// A progress bar (else periodic log lines); only shown on a terminal.
    pub progress: bool,
    pub shutdown_timeout: Duration,
    /// `--metrics-addr`: serve `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            pollers: DEFAULT_POLLERS.into(),
            writers: DEFAULT_WRITERS.into(),
            batch_size: DEFAULT_BATCH_SIZE as usize,
            batch_wait: Duration::from_millis(DEFAULT_BATCH_WAIT_MS),
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES as usize,
            wait_seconds: DEFAULT_WAIT_SECONDS,
            until_empty: false,
            progress: false,
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
            metrics_addr: None,
        }
    }
}

/// Everything `run` needs.
#[derive(Debug)]
pub struct RunConfig {
    pub sqs: SqsConfig,
    pub db: DbConfig,
    pub keyring: Keyring,
    pub pipeline: PipelineConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_redacts_password() {
        let db = DbConfig::new("postgres://app:s3cret@db:5432/x", None).unwrap();
        assert_eq!(db.redacted(), "postgres://app:<redacted>@db:5432/x");
        assert!(!format!("{db:?}").contains("s3cret"));
        let db = DbConfig::new("postgres://postgres@127.0.0.1/postgres", None).unwrap();
        assert_eq!(db.redacted(), "postgres://postgres@127.0.0.1:5432/postgres");
        let e = DbConfig::new("postgres://h:notaport/x", None).unwrap_err();
        assert!(e.to_string().starts_with("--database-url / DATABASE_URL"));
    }

    #[test]
    fn network_waits_are_bounded_unless_the_url_says_otherwise() {
        let db = DbConfig::new("postgres://u@h/x", None).unwrap();
        assert_eq!(db.pg.get_connect_timeout(), Some(&Duration::from_secs(10)));
        assert_eq!(db.pg.get_keepalives_idle(), Duration::from_secs(10));
        assert_eq!(db.pg.get_tcp_user_timeout(), Some(&Duration::from_secs(30)));
        let db = db.with_write_timeout(Duration::from_secs(12));
        assert_eq!(db.pg.get_tcp_user_timeout(), Some(&Duration::from_secs(12)));
        let db = DbConfig::new(
            "postgres://u@h/x?connect_timeout=3&keepalives_idle=60&tcp_user_timeout=7",
            None,
        )
        .unwrap()
        .with_write_timeout(Duration::from_secs(12));
        assert_eq!(db.pg.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(db.pg.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(db.pg.get_tcp_user_timeout(), Some(&Duration::from_secs(7)));
        let e = DbConfig::new("postgres://h:notaport/x", None).unwrap_err();
        assert!(e.to_string().starts_with("--database-url / DATABASE_URL"));
    }
}
