//! Validated configuration: what every command reads, built once before any work starts.
//!
//! [`crate::cli::args`] parses flags, environment and the configuration file
//! ([`file`](mod@file)) with clap (flag, then environment, then file, then
//! [`settings::defaults`]); this module turns them into typed settings and refuses bad ones
//! with a [`ConfigError`] that names the flag or variable and says what to do. Each setting is defined once, in [`settings`]. Secrets (the
//! keyring, a database URL that may carry a password) are held in `secrecy` types and never
//! printed.

pub mod file;
pub mod keys;
mod libpq;
mod pgpass;
mod pipeline;
mod redact;
pub mod settings;
mod tls;

pub use libpq::SslMode;
pub use pipeline::PipelineConfig;
pub use settings::defaults::*;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use crate::mask::Keyring;

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

impl crate::error::Classified for ConfigError {
    /// The user must change a setting (exit 2); only an unreachable KMS is an outage.
    fn is_usage(&self) -> bool {
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

impl settings::GlobalArgs {
    /// `--mapping`'s file, read and checked; `None` without one (the built-in login load).
    pub fn load_mapping(
        &self,
    ) -> Result<Option<std::sync::Arc<crate::mapping::Mapping>>, crate::mapping::MappingError> {
        self.mapping
            .as_deref()
            .map(|path| crate::mapping::Mapping::load(path).map(std::sync::Arc::new))
            .transpose()
    }

    /// The queue to read or fill.
    pub fn sqs(&self) -> SqsConfig {
        SqsConfig {
            queue_url: self.queue_url.clone(),
            queue_name: self.queue_name.clone(),
            framing: self.framing(),
            endpoint_url: None,
        }
    }

    /// How bodies are read: by `run` (through [`settings::GlobalArgs::sqs`]), `rejects replay`
    /// and the Lambda handler alike.
    pub fn framing(&self) -> crate::decode::Framing {
        crate::decode::Framing {
            envelope: self.envelope,
            create_date_from: self.create_date_from,
        }
    }

    /// The database, checked, with its TLS roots loaded.
    pub fn db(&self) -> Result<DbConfig, ConfigError> {
        Ok(
            DbConfig::new(&self.database_url, self.db_ca_file.as_deref())?
                .with_write_timeout(Duration::from_secs(self.db_write_timeout_secs))
                .with_statements(self.db_statements),
        )
    }
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
    /// As given; may hold a password.
    pub url: SecretString,
    /// Parsed form of `url`, with the password from `PGPASSWORD` or the password file when
    /// `url` has none.
    pub pg: tokio_postgres::Config,
    /// `url` without the parameters [`libpq`] handles, for display.
    driver_url: SecretString,
    /// `sslmode` as given.
    pub sslmode: SslMode,
    /// `sslrootcert` as given, for display.
    sslrootcert: Option<String>,
    /// The TLS configuration; `None` when `sslmode=disable`.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `--db-write-timeout-secs`: the longest one batch's transaction may take.
    pub write_timeout: Duration,
    /// `--db-statements`.
    pub statements: DbStatements,
}

impl DbConfig {
    /// Parses and checks a connection string (URL or key=value form, libpq's `sslmode` and
    /// `sslrootcert` included) with this process's libpq variables (`PGSSLROOTCERT`,
    /// `PGPASSWORD`, `PGPASSFILE`), and loads the roots its TLS will check.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::with_env(url, ca_file, &libpq::Env::from_process())
    }

    /// [`DbConfig::new`] with the libpq variables given. The roots are, first found:
    /// `sslrootcert` in `url`, `ca_file` (`--db-ca-file`), `PGSSLROOTCERT`, the system's;
    /// `system` for either libpq setting means the system's, as in libpq 16. The password
    /// is, first found: `url`'s, `PGPASSWORD`, the password file's first matching line.
    fn with_env(url: &str, ca_file: Option<&Path>, env: &libpq::Env) -> Result<Self, ConfigError> {
        let split = libpq::split(url)?;
        let mut pg = tokio_postgres::Config::from_str(&split.driver).map_err(|e| {
            let why = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
            ConfigError::Invalid {
                name: "--database-url / DATABASE_URL",
                problem: format!(
                    "not a valid Postgres connection string ({why}); expected e.g. postgres://user@host:5432/db"
                ),
            }
        })?;
        pg.ssl_mode(match split.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = match split.sslmode {
            SslMode::Disable => None,
            // `require` and `prefer` check the name too, as they always have here (libpq
            // checks nothing under `require` without a root file, and only the chain with
            // one): adding `sslrootcert` never weakens a check; `verify-ca` is the way out.
            mode => {
                let roots = roots(split.sslrootcert.as_deref(), ca_file, env);
                Some(tls::client_config(roots, mode != SslMode::VerifyCa)?)
            }
        };
        if pg.get_password().is_none() {
            if let Some(password) = password(&pg, env) {
                pg.password(password.expose_secret());
            }
        }
        let write_timeout = Duration::from_secs(DEFAULT_DB_WRITE_TIMEOUT_SECS);
        bound_network_waits(&mut pg, write_timeout);
        Ok(Self {
            url: SecretString::from(url.to_owned()),
            pg,
            driver_url: SecretString::from(split.driver),
            sslmode: split.sslmode,
            sslrootcert: split.sslrootcert,
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
        let mut libpq = Vec::new();
        if self.sslmode != SslMode::Prefer {
            libpq.push(("sslmode", self.sslmode.as_str().to_owned()));
        }
        if let Some(root) = &self.sslrootcert {
            libpq.push(("sslrootcert", root.clone()));
        }
        redact::redact_with(self.driver_url.expose_secret(), libpq)
    }
}

/// Whether a connection string holds a password (libpq parameters and all).
pub fn has_password(url: &str) -> bool {
    libpq::split(url)
        .ok()
        .and_then(|split| tokio_postgres::Config::from_str(&split.driver).ok())
        .is_some_and(|pg| pg.get_password().is_some())
}

/// The roots, by the precedence [`DbConfig::with_env`] documents.
fn roots<'a>(
    sslrootcert: Option<&'a str>,
    ca_file: Option<&'a Path>,
    env: &'a libpq::Env,
) -> tls::Roots<'a> {
    let libpq_root = |path: &'a Path, name| match path.to_str() {
        Some("system") => tls::Roots::System,
        _ => tls::Roots::File(path, name),
    };
    if let Some(root) = sslrootcert {
        libpq_root(
            Path::new(root),
            "sslrootcert in --database-url / DATABASE_URL",
        )
    } else if let Some(file) = ca_file {
        tls::Roots::File(file, "--db-ca-file / SQS2PG_DB_CA_FILE")
    } else if let Some(root) = &env.sslrootcert {
        libpq_root(root, "PGSSLROOTCERT")
    } else {
        tls::Roots::System
    }
}

/// `PGPASSWORD`, else the password file's line for the first host, port, database and user.
fn password(pg: &tokio_postgres::Config, env: &libpq::Env) -> Option<SecretString> {
    if let Some(password) = &env.password {
        return Some(password.clone());
    }
    let host = match (pg.get_hosts().first(), pg.get_hostaddrs().first()) {
        (Some(tokio_postgres::config::Host::Tcp(h)), _) => h.clone(),
        (None, Some(addr)) => addr.to_string(),
        // A Unix socket, or no host (the driver's default socket): libpq's `localhost`.
        _ => "localhost".to_owned(),
    };
    let user = match pg.get_user() {
        Some(user) => user.to_owned(),
        None => whoami::username().ok()?,
    };
    let target = pgpass::Target {
        host: &host,
        port: pg.get_ports().first().copied().unwrap_or(5432),
        dbname: pg.get_dbname().unwrap_or(&user),
        user: &user,
    };
    pgpass::lookup(env.passfile.as_deref()?, &target)
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

/// Everything `run` needs.
#[derive(Debug)]
pub struct RunConfig {
    pub sqs: SqsConfig,
    pub db: DbConfig,
    pub keyring: Keyring,
    pub pipeline: PipelineConfig,
    /// `--mapping`, checked; `None` runs the built-in login load.
    pub mapping: Option<std::sync::Arc<crate::mapping::Mapping>>,
}

#[cfg(test)]
mod tests;
