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

use crate::mask::{KeyError, Keyring};

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
pub fn load_keyring(
    keys_file: Option<&Path>,
    env_keys: Option<SecretString>,
) -> Result<Keyring, ConfigError> {
    if let Some(path) = keys_file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::KeysFile {
            path: path.to_owned(),
            source,
        })?;
        let text = SecretString::from(text);
        return Keyring::parse(text.expose_secret()).map_err(|source| ConfigError::Key {
            origin: "--keys-file / SQS2PG_KEYS_FILE",
            source,
        });
    }
    match env_keys {
        Some(text) => Keyring::parse(text.expose_secret()).map_err(|source| ConfigError::Key {
            origin: "SQS2PG_KEYS",
            source,
        }),
        None => Err(ConfigError::NoKey),
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
    fn database_url_redacts_password() {
        let db = DbConfig::parse("postgres://app:s3cret@db:5432/x").unwrap();
        assert_eq!(db.redacted(), "postgres://app:<redacted>@db:5432/x");
        assert!(!format!("{db:?}").contains("s3cret"));
        let db = DbConfig::parse("postgres://postgres@127.0.0.1/postgres").unwrap();
        assert_eq!(db.redacted(), "postgres://postgres@127.0.0.1/postgres");
        let e = DbConfig::parse("postgres://h:notaport/x").unwrap_err();
        assert!(e.to_string().starts_with("--database-url / DATABASE_URL"));
    }

    #[test]
    fn missing_keys_say_how_to_make_one() {
        let e = load_keyring(None, None).unwrap_err();
        assert!(e.to_string().contains("sqs2pg keygen"));
        let e = load_keyring(Some(Path::new("/nonexistent/keys")), None).unwrap_err();
        assert!(e.to_string().contains("--keys-file"));
        let e = load_keyring(None, Some(SecretString::from("k1=AAAA"))).unwrap_err();
        assert!(e.to_string().starts_with("SQS2PG_KEYS: "));
    }
}
