//! Validated configuration, built from flags and environment before any work starts.
//!
//! [`crate::cli`] parses flags and variables (flag, then environment, then default); this
//! module turns them into typed settings and refuses bad ones with a [`ConfigError`] that
//! names the flag or variable and says what to do. Secrets (the keyring, a database URL that
//! may carry a password) are held in `secrecy` types and never printed.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use crate::mask::{self, KeyError, KeyMaterial, Keyring};

/// A setting that cannot be used. The binary exits 2 on these.
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
    #[error("no masking key configured: make one with `sqs2pg keygen --kid k1 > keys && chmod 600 keys`, then pass --keys-file keys (or SQS2PG_KEYS_FILE), or put the line in SQS2PG_KEYS")]
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
    /// A KMS-wrapped key could not be unwrapped.
    #[error("{0}")]
    Kms(#[from] crate::kms::KmsError),
    /// The keyring text is bad.
    #[error("{origin}: {source}")]
    Key {
        /// Where the keyring came from.
        origin: &'static str,
        /// What is wrong with it.
        source: KeyError,
    },
}

/// Where the messages come from.
#[derive(Clone, Debug)]
pub struct SqsConfig {
    /// Used as is when set.
    pub queue_url: Option<String>,
    /// Resolved to a URL with `GetQueueUrl` when no URL is set.
    pub queue_name: String,
}

/// Where the rows go.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// May hold a password.
    pub url: SecretString,
    /// Parsed form of `url`.
    pub pg: tokio_postgres::Config,
}

impl DbConfig {
    /// Parses and checks a connection string (URL or key=value form).
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let pg = tokio_postgres::Config::from_str(url).map_err(|e| ConfigError::Invalid {
            name: "--database-url / DATABASE_URL",
            problem: format!(
                "not a valid Postgres connection string ({e}); expected e.g. postgres://user@host:5432/db"
            ),
        })?;
        Ok(Self {
            url: SecretString::from(url.to_owned()),
            pg,
        })
    }

    /// The URL with any password replaced, for display.
    pub fn redacted(&self) -> String {
        let url = self.url.expose_secret();
        match (self.pg.get_password(), url.find("://"), url.rfind('@')) {
            (Some(_), Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &url[scheme + 3..at];
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{}{user}:<redacted>{}", &url[..scheme + 3], &url[at..])
            }
            (Some(_), _, _) => "<redacted: holds a password>".into(),
            (None, _, _) => url.to_owned(),
        }
    }
}

/// How the consumer runs.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Concurrent long-polling receivers.
    pub pollers: usize,
    /// Concurrent database writers, each on its own connection.
    pub writers: usize,
    /// Most messages in one transaction.
    pub batch_size: usize,
    /// Longest a partial batch waits for more messages.
    pub batch_wait: Duration,
    /// Long-poll wait per receive (0–20 s).
    pub wait_seconds: i32,
    /// Stop once every poller has seen the queue empty for one long poll.
    pub until_empty: bool,
    /// Show a progress bar (else periodic log lines).
    pub progress: bool,
    /// After a shutdown request, how long in-flight work may take to commit before it is
    /// released to other consumers (visibility 0).
    pub shutdown_timeout: Duration,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            pollers: 8,
            writers: 2,
            batch_size: 500,
            batch_wait: Duration::from_millis(200),
            wait_seconds: 20,
            until_empty: false,
            progress: false,
            shutdown_timeout: Duration::from_secs(30),
            metrics_addr: None,
        }
    }
}

/// Everything `run` needs.
#[derive(Debug)]
pub struct RunConfig {
    /// Queue.
    pub sqs: SqsConfig,
    /// Database.
    pub db: DbConfig,
    /// Masking keys.
    pub keyring: Keyring,
    /// Concurrency and batching.
    pub pipeline: PipelineConfig,
}

/// Reads the keyring: from the keys file when one is given, else from `SQS2PG_KEYS`.
/// A keys file readable by group or others is refused. KMS-wrapped entries are unwrapped
/// with KMS (one `Decrypt` each).
pub async fn load_keyring(
    keys_file: Option<&Path>,
    env_keys: Option<SecretString>,
) -> Result<Keyring, ConfigError> {
    let (text, origin) = match (keys_file, env_keys) {
        (Some(path), _) => (read_keys_file(path)?, "--keys-file / SQS2PG_KEYS_FILE"),
        (None, Some(text)) => (text, "SQS2PG_KEYS"),
        (None, None) => return Err(ConfigError::NoKey),
    };
    let key_err = |source| ConfigError::Key { origin, source };
    let entries = mask::parse_entries(text.expose_secret()).map_err(key_err)?;
    if entries
        .iter()
        .any(|e| matches!(e.material, KeyMaterial::KmsWrapped(_)))
    {
        let sdk = aws_sdk_config().await;
        return Ok(crate::kms::resolve(entries, &sdk).await?);
    }
    let plain = entries
        .into_iter()
        .filter_map(|e| match e.material {
            KeyMaterial::Plain(bytes) => Some((e.kid, bytes)),
            KeyMaterial::KmsWrapped(_) => None,
        })
        .collect();
    Keyring::from_plain(plain).map_err(key_err)
}

fn read_keys_file(path: &Path) -> Result<SecretString, ConfigError> {
    let io_err = |source| ConfigError::KeysFile {
        path: path.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(io_err)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::KeysFileMode {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(SecretString::from(
        std::fs::read_to_string(path).map_err(io_err)?,
    ))
}

/// The AWS SDK configuration from the standard chain (environment, profile, IMDS/IRSA),
/// with timeouts that fit long polling.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        // Long polls take up to 20 s; leave room for the answer.
        .operation_attempt_timeout(Duration::from_secs(40))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

/// The TOML configuration file (`--config` / `SQS2PG_CONFIG`): every non-secret setting.
/// Keys are never read from it; a database URL may be, but belongs in the environment when
/// it holds a password.
#[derive(Debug, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--queue-url`.
    pub queue_url: Option<String>,
    /// `--queue-name`.
    pub queue_name: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--keys-file`.
    pub keys_file: Option<String>,
    /// `--log-format`.
    pub log_format: Option<String>,
    /// `--metrics-addr`.
    pub metrics_addr: Option<String>,
    /// `run` settings.
    #[serde(default)]
    pub run: FileRunConfig,
}

/// The `[run]` table of the configuration file.
#[derive(Debug, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileRunConfig {
    /// `--pollers`.
    pub pollers: Option<u64>,
    /// `--writers`.
    pub writers: Option<u64>,
    /// `--batch-size`.
    pub batch_size: Option<u64>,
    /// `--batch-wait-ms`.
    pub batch_wait_ms: Option<u64>,
    /// `--wait-seconds`.
    pub wait_seconds: Option<u64>,
    /// `--shutdown-timeout`.
    pub shutdown_timeout_secs: Option<u64>,
}

impl FileConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let invalid = |problem: String| ConfigError::Invalid {
            name: "--config / SQS2PG_CONFIG",
            problem,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            let mut problem = format!(
                "{} is not a valid sqs2pg configuration: {}",
                path.display(),
                e.message()
            );
            if text.lines().any(|l| l.trim_start().starts_with("keys"))
                && e.message().contains("unknown field")
            {
                problem.push_str(
                    " (keys never go in the config file: use --keys-file or SQS2PG_KEYS)",
                );
            }
            invalid(problem)
        })
    }

    /// The settings as `(environment variable, value)`, for the layer between the
    /// environment and the defaults.
    pub fn as_env(&self) -> Vec<(&'static str, String)> {
        let r = &self.run;
        let num = |v: Option<u64>| v.map(|n| n.to_string());
        [
            ("SQS2PG_QUEUE_URL", self.queue_url.clone()),
            ("SQS2PG_QUEUE_NAME", self.queue_name.clone()),
            ("DATABASE_URL", self.database_url.clone()),
            ("SQS2PG_KEYS_FILE", self.keys_file.clone()),
            ("SQS2PG_LOG_FORMAT", self.log_format.clone()),
            ("SQS2PG_METRICS_ADDR", self.metrics_addr.clone()),
            ("SQS2PG_POLLERS", num(r.pollers)),
            ("SQS2PG_WRITERS", num(r.writers)),
            ("SQS2PG_BATCH_SIZE", num(r.batch_size)),
            ("SQS2PG_BATCH_WAIT_MS", num(r.batch_wait_ms)),
            ("SQS2PG_WAIT_SECONDS", num(r.wait_seconds)),
            ("SQS2PG_SHUTDOWN_TIMEOUT", num(r.shutdown_timeout_secs)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// `SQS2PG_KEYS` from the environment, if set and not blank.
pub fn env_keys() -> Option<SecretString> {
    std::env::var("SQS2PG_KEYS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(SecretString::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_maps_to_the_environment_layer() {
        let dir = std::env::temp_dir().join(format!("sqs2pg-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "queue_name = \"q\"\nmetrics_addr = \"127.0.0.1:9\"\n[run]\npollers = 3\n",
        )
        .unwrap();
        let c = FileConfig::load(&path).unwrap();
        assert_eq!(
            c.as_env(),
            [
                ("SQS2PG_QUEUE_NAME", "q".to_string()),
                ("SQS2PG_METRICS_ADDR", "127.0.0.1:9".to_string()),
                ("SQS2PG_POLLERS", "3".to_string())
            ]
        );
        std::fs::write(&path, "keys = \"k1=AAAA\"\n").unwrap();
        let e = FileConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("--config") && e.contains("never go in the config file"),
            "{e}"
        );
        assert!(!e.contains("AAAA"), "{e}");
        std::fs::write(&path, "[run]\npolers = 3\n").unwrap();
        assert!(FileConfig::load(&path)
            .unwrap_err()
            .to_string()
            .contains("polers"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn database_url_redacts_password() {
        let db = DbConfig::parse("postgres://app:s3cret@db:5432/x").unwrap();
        assert_eq!(db.redacted(), "postgres://app:<redacted>@db:5432/x");
        assert!(!format!("{db:?}").contains("s3cret"));
        let db = DbConfig::parse("postgres://postgres@127.0.0.1/postgres").unwrap();
        assert_eq!(db.redacted(), "postgres://postgres@127.0.0.1/postgres");
        let e = DbConfig::parse("postgres://h:notaport/x").unwrap_err();
        assert!(e.to_string().starts_with("--database-url / DATABASE_URL"));
    }

    #[tokio::test]
    async fn missing_keys_say_how_to_make_one() {
        let e = load_keyring(None, None).await.unwrap_err();
        assert!(e.to_string().contains("sqs2pg keygen"));
        let e = load_keyring(Some(Path::new("/nonexistent/keys")), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--keys-file"));
        let e = load_keyring(None, Some(SecretString::from("k1=AAAA")))
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("SQS2PG_KEYS: "));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn group_readable_keys_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sqs2pg-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, Keyring::generate_entry("k1").unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load_keyring(Some(&path), None).await.unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ring = load_keyring(Some(&path), None).await.unwrap();
        assert_eq!(ring.writing_kid(), "k1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
