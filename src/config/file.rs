//! The TOML configuration file (`--config` / `SQS2PG_CONFIG`): every non-secret setting, as
//! the layer between the environment and the defaults. Keys are never read from it; a
//! database URL may be, but belongs in the environment when it holds a password.
//!
//! Its values become the defaults of the matching flags before clap parses (see
//! [`crate::cli`]), so flags and variables still win and the process environment is never
//! touched.

use std::path::Path;

use super::ConfigError;

/// The file's top level: the global settings.
#[derive(Debug, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub queue_url: Option<String>,
    pub queue_name: Option<String>,
    pub envelope: Option<String>,
    pub create_date_from: Option<String>,
    pub database_url: Option<String>,
    pub db_ca_file: Option<String>,
    pub db_write_timeout_secs: Option<u64>,
    pub db_statements: Option<String>,
    pub keys_file: Option<String>,
    pub log_format: Option<String>,
    pub metrics_addr: Option<String>,
    /// The `[run]` table.
    #[serde(default)]
    pub run: FileRunConfig,
}

/// The `[run]` table: the settings of `sqs2pg run`.
#[derive(Debug, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileRunConfig {
    pub pollers: Option<u64>,
    pub writers: Option<u64>,
    pub batch_size: Option<u64>,
    pub batch_wait_ms: Option<u64>,
    pub max_inflight_bytes: Option<u64>,
    pub wait_seconds: Option<u64>,
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

    /// The global settings it sets, as `(clap argument id, value)`; the ids are the field
    /// names of [`crate::cli::args::GlobalArgs`].
    pub fn global_settings(&self) -> Vec<(&'static str, String)> {
        [
            ("queue_url", self.queue_url.clone()),
            ("queue_name", self.queue_name.clone()),
            ("envelope", self.envelope.clone()),
            ("create_date_from", self.create_date_from.clone()),
            ("database_url", self.database_url.clone()),
            ("db_ca_file", self.db_ca_file.clone()),
            (
                "db_write_timeout_secs",
                self.db_write_timeout_secs.map(|s| s.to_string()),
            ),
            ("db_statements", self.db_statements.clone()),
            ("keys_file", self.keys_file.clone()),
            ("log_format", self.log_format.clone()),
            ("metrics_addr", self.metrics_addr.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// The `[run]` settings it sets, as `(clap argument id, value)` of
    /// [`crate::cli::args::RunArgs`].
    pub fn run_settings(&self) -> Vec<(&'static str, String)> {
        let r = &self.run;
        [
            ("pollers", r.pollers),
            ("writers", r.writers),
            ("batch_size", r.batch_size),
            ("batch_wait_ms", r.batch_wait_ms),
            ("max_inflight_bytes", r.max_inflight_bytes),
            ("wait_seconds", r.wait_seconds),
            ("shutdown_timeout_secs", r.shutdown_timeout_secs),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v.to_string())))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_settings_name_their_flags() {
        let dir = std::env::temp_dir().join(format!("sqs2pg-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "queue_name = \"q\"\nenvelope = \"sns\"\nmetrics_addr = \"127.0.0.1:9\"\n[run]\npollers = 3\n",
        )
        .unwrap();
        let c = FileConfig::load(&path).unwrap();
        assert_eq!(
            c.global_settings(),
            [
                ("queue_name", "q".to_string()),
                ("envelope", "sns".to_string()),
                ("metrics_addr", "127.0.0.1:9".to_string()),
            ]
        );
        assert_eq!(c.run_settings(), [("pollers", "3".to_string())]);
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
}
