//! `sqs2pg check`: everything `run` needs, checked before it is started, one [`Check`] a
//! line. Every check runs even after another failed, unless it needs what failed (no table
//! checks without a connection, no queue attributes without the queue). Nothing a check
//! reports holds a secret: keys show as their ids, the connection string redacted, AWS
//! credentials as the provider that gave them.
//!
//! The checks are in three groups, run at the same time: the keyring (here), the database
//! ([`db`]) and AWS ([`aws`]).

mod aws;
mod db;
mod mapping;

use serde::Serialize;

use crate::config::keys::KeySource;
use crate::config::{ConfigError, DbConfig, SqsConfig};
use crate::error::Classified;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// `run` would work, but something is worth changing.
    Warn,
    /// `run` would fail.
    Fail,
}

/// One check's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked (`keyring`, `tables`, `redrive policy`…): stable, for scripts.
    pub name: &'static str,
    /// Ok, warn or fail.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, for a warning or a failure.
    pub fix: Option<String>,
    /// A failure that is an outage (nothing answered) rather than a setting to change:
    /// decides the exit code, 1 rather than 2.
    #[serde(skip)]
    pub outage: bool,
}

impl Check {
    /// A check that passed.
    pub(crate) fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
            outage: false,
        }
    }

    /// A check that passed with something worth changing.
    pub(crate) fn warn(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status: Status::Warn,
            fix: Some(fix.into()),
            ..Self::ok(name, detail)
        }
    }

    /// A setting that stops `run` (exit 2).
    pub(crate) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status: Status::Fail,
            fix: Some(fix.into()),
            ..Self::ok(name, detail)
        }
    }

    /// Something that did not answer (exit 1 unless a setting failed too).
    pub(crate) fn outage(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            outage: true,
            ..Self::fail(name, detail, fix)
        }
    }

    /// A failure from an error that knows whether it is a setting: its text is the detail
    /// (errors here already say what to do), `fix` the step to take.
    pub(crate) fn from_error(name: &'static str, e: &impl Classified, fix: &str) -> Self {
        let detail = crate::error::causes(e);
        if e.is_usage() {
            Self::fail(name, detail, fix)
        } else {
            Self::outage(name, detail, fix)
        }
    }
}

/// Every check, in the order printed.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// No check failed (warnings allowed).
    pub fn ok(&self) -> bool {
        self.failed().next().is_none()
    }

    /// The checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// 0 when nothing failed; 2 when a setting failed (it needs someone to act, whatever
    /// else is down); 1 when only outages did.
    pub fn exit_code(&self) -> u8 {
        match self.failed().map(|c| c.outage).min() {
            None => 0,
            Some(false) => 2,
            Some(true) => 1,
        }
    }
}

/// What `check` looks at: the same settings `run` reads.
#[derive(Debug)]
pub struct Inputs {
    /// Where the keyring comes from.
    pub keys: KeySource,
    /// The database, or why its settings cannot be used.
    pub db: Result<DbConfig, ConfigError>,
    /// The queue.
    pub sqs: SqsConfig,
    /// `--mapping`, compiled against the database when given.
    pub mapping: Option<std::path::PathBuf>,
}

/// Runs every check: the keyring, the database and AWS at the same time.
pub async fn run(inputs: Inputs) -> Report {
    let (keyring, database, aws) = tokio::join!(
        keyring(&inputs.keys),
        db::checks(&inputs.db),
        aws::checks(&inputs.sqs),
    );
    let mut checks = vec![keyring];
    checks.extend(database);
    if let Some(path) = &inputs.mapping {
        checks.push(mapping::check(path, &inputs.db).await);
    }
    checks.extend(aws);
    Report { checks }
}

/// The keyring loads as `run` would load it (KMS entries unwrapped), from a file only this
/// user (or root) owns and reads.
async fn keyring(keys: &KeySource) -> Check {
    const NAME: &str = "keyring";
    match keys.load().await {
        Ok(ring) => {
            let origin = match keys {
                KeySource::File(path) => format!("{}{}", path.display(), file_mode(path)),
                _ => "SQS2PG_KEYS".to_owned(),
            };
            let detail = format!(
                "{origin}: key ids {}; new tokens under {}",
                ring.kids().join(", "),
                ring.writing_kid()
            );
            Check::ok(NAME, detail)
        }
        Err(e) => Check::from_error(NAME, &e, &key_fix(&e)),
    }
}

/// ` (mode 600, owner uid N)` of a keys file that loaded (the load checked both).
fn file_mode(path: &std::path::Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(path) {
            return format!(" (mode {:o}, owner uid {})", m.mode() & 0o777, m.uid());
        }
    }
    let _ = path;
    String::new()
}

/// The step for a keyring that does not load.
fn key_fix(e: &ConfigError) -> String {
    match e {
        ConfigError::NoKey => "make one with `sqs2pg keygen --kid k1 --out keys` and pass --keys-file keys (or SQS2PG_KEYS_FILE)".into(),
        ConfigError::KeysFileMode { path, .. } => format!("chmod 600 {}", path.display()),
        ConfigError::KeysFileOwner { path, euid, .. } => format!("chown {euid} {}", path.display()),
        ConfigError::KeysFile { .. } => "check the path in --keys-file / SQS2PG_KEYS_FILE".into(),
        ConfigError::Kms(_) => "check the KMS key, the network to KMS and the kms:Decrypt grant".into(),
        _ => "fix the entry named, or make a new key with `sqs2pg keygen`".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(status: Status, outage: bool) -> Check {
        Check {
            status,
            outage,
            ..Check::ok("x", "")
        }
    }

    #[test]
    fn a_setting_outweighs_an_outage_and_warnings_pass() {
        let report = |checks| Report { checks };
        let ok = with(Status::Ok, false);
        let warn = with(Status::Warn, false);
        let setting = with(Status::Fail, false);
        let outage = with(Status::Fail, true);
        assert_eq!(report(vec![ok.clone(), warn.clone()]).exit_code(), 0);
        assert_eq!(report(vec![ok.clone(), outage.clone()]).exit_code(), 1);
        assert_eq!(report(vec![outage.clone(), setting.clone()]).exit_code(), 2);
        assert_eq!(report(vec![setting, warn]).exit_code(), 2);
        assert!(!report(vec![ok, outage]).ok());
    }
}
