//! The TOML configuration file (`--config` / `SQS2PG_CONFIG`): every non-secret setting, as
//! the layer between the environment and the defaults. Keys are never read from it; a
//! database URL may be, but belongs in the environment when it holds a password.
//!
//! Its values become the defaults of the matching flags before clap parses (see
//! [`crate::cli`]), so flags and variables still win and the process environment is never
//! touched. Each value keeps where it stands in the file, so an error about it can say
//! `file:line:col`, as compilers do. Which keys there are, and their types, comes from
//! [`super::settings`].

use std::path::{Path, PathBuf};

pub use super::settings::{FileConfig, FileRunConfig};

use super::settings::{FileEntry, DEPRECATED_FILE_KEYS};
use super::ConfigError;

/// Where a configuration file is and what it says, to turn a value's byte span into
/// `file:line:col`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Origin {
    path: PathBuf,
    text: String,
}

/// One value the file sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetting {
    /// Its key, also the clap id of its flag.
    pub key: &'static str,
    /// The value as the flag would take it.
    pub value: String,
    /// Where it stands: `path:line:col`.
    pub at: String,
}

/// `path:line:col` (both from 1, the column in characters) of byte `offset` in `text`.
fn position(path: &Path, text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{}:{line}:{col}", path.display())
}

impl FileConfig {
    /// Reads and checks a configuration file; an error names it and, for what the TOML
    /// parser refused (syntax, a wrong type, an unknown key), the line and column.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        let mut config: Self = toml::from_str(&text).map_err(|e| {
            let at = match e.span() {
                Some(span) => position(path, &text, span.start),
                None => path.display().to_string(),
            };
            // The message may end with a newline; the error stays one line.
            let mut problem = format!("{at}: {}", e.message().trim_end());
            if e.message().contains("unknown field `keys`") {
                problem.push_str(
                    " (keys never go in the config file: use --keys-file or SQS2PG_KEYS)",
                );
            }
            invalid(problem)
        })?;
        config.origin = Origin {
            path: path.to_owned(),
            text,
        };
        config.take_deprecated()?;
        Ok(config)
    }

    /// Moves each deprecated key's value ([`super::settings::DEPRECATED_FILE_KEYS`]) to its
    /// new key, with a warning naming that key; both set is refused, naming both.
    fn take_deprecated(&mut self) -> Result<(), ConfigError> {
        for &(table, old_key, new_key) in DEPRECATED_FILE_KEYS {
            let (old, new) = match (table, old_key) {
                ("run", "shutdown_timeout_secs") => (
                    &mut self.run.shutdown_timeout_secs,
                    &mut self.run.shutdown_timeout,
                ),
                _ => unreachable!("[{table}] {old_key} is listed deprecated but has no field"),
            };
            let Some(value) = old.take() else { continue };
            let at = position(&self.origin.path, &self.origin.text, value.span().start);
            let table = if table.is_empty() {
                String::new()
            } else {
                format!("[{table}] ")
            };
            if new.is_some() {
                return Err(invalid(format!(
                    "{at}: {table}{old_key} is the deprecated spelling of {new_key}, which the \
                     file also sets: keep {new_key} only"
                )));
            }
            self.warnings.push(format!(
                "{at}: {table}{old_key} is deprecated, read as {new_key}: rename it {new_key}"
            ));
            *new = Some(value);
        }
        Ok(())
    }

    /// One line for each deprecated key the file uses, naming the key to use instead.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.origin.path
    }

    /// The global settings it sets, in the order of the settings table.
    pub fn global_settings(&self) -> Vec<FileSetting> {
        self.settings(self.entries())
    }

    /// The `[run]` settings it sets, in the order of the settings table.
    pub fn run_settings(&self) -> Vec<FileSetting> {
        self.settings(self.run.entries())
    }

    fn settings(&self, entries: Vec<FileEntry>) -> Vec<FileSetting> {
        entries
            .into_iter()
            .filter_map(|(setting, v)| {
                let (value, span) = v?;
                let at = position(&self.origin.path, &self.origin.text, span.start);
                Some(FileSetting {
                    key: setting.key,
                    value,
                    at,
                })
            })
            .collect()
    }
}

fn invalid(problem: String) -> ConfigError {
    ConfigError::Invalid {
        name: "--config / SQS2PG_CONFIG",
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file `name` holding `text` in a directory of this test process's own.
    fn config_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sqs2pg-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The error loading `text` gives, after the `--config` prefix; `file` stands for the
    /// path.
    fn load_error(name: &str, text: &str) -> String {
        let path = config_file(name, text);
        let e = FileConfig::load(&path).unwrap_err().to_string();
        let rest = e.strip_prefix("--config / SQS2PG_CONFIG: ").unwrap_or(&e);
        rest.replace(&path.display().to_string(), "file")
    }

    #[test]
    fn config_file_settings_name_their_flags_and_positions() {
        let path = config_file(
            "ok.toml",
            "queue_name = \"q\"\nenvelope = \"sns\"\nmetrics_addr = \"127.0.0.1:9\"\n[run]\n  pollers = 3\n",
        );
        let c = FileConfig::load(&path).unwrap();
        let at = |pos: &str| format!("{}:{pos}", path.display());
        let setting = |key, value: &str, pos| FileSetting {
            key,
            value: value.to_string(),
            at: at(pos),
        };
        assert_eq!(
            c.global_settings(),
            [
                setting("queue_name", "q", "1:14"),
                setting("envelope", "sns", "2:12"),
                setting("metrics_addr", "127.0.0.1:9", "3:16"),
            ]
        );
        assert_eq!(c.run_settings(), [setting("pollers", "3", "5:13")]);
    }

    /// Each deprecated key is read as its new key, with one warning line naming both; the
    /// two together are refused, naming both.
    #[test]
    fn deprecated_keys_are_read_as_their_new_key_with_a_warning() {
        use crate::config::settings::{Kind, Setting};
        for &(table, old, new) in DEPRECATED_FILE_KEYS {
            let kind = Setting::named(new).expect("the new key is a setting").kind;
            let value = if kind == Kind::Integer { "7" } else { "\"7\"" };
            let header = if table.is_empty() {
                String::new()
            } else {
                format!("[{table}]\n")
            };
            let path = config_file(
                &format!("{old}.toml"),
                &format!("{header}{old} = {value}\n"),
            );
            let c = FileConfig::load(&path).unwrap();
            let settings = if table.is_empty() {
                c.global_settings()
            } else {
                c.run_settings()
            };
            let read: Vec<(&str, &str)> = settings.iter().map(|s| (s.key, &*s.value)).collect();
            assert_eq!(read, [(new, "7")], "{old}");
            let [warning] = c.warnings() else {
                panic!("{old}: one warning: {:?}", c.warnings())
            };
            assert!(
                warning.contains(old) && warning.contains(&format!("rename it {new}")),
                "{warning}"
            );
            assert!(!warning.contains('\n'), "one line: {warning}");
            let both = load_error(
                &format!("{old}-both.toml"),
                &format!("{header}{old} = {value}\n{new} = {value}\n"),
            );
            assert!(both.contains(old) && both.contains(new), "{both}");
        }
        let path = config_file("current.toml", "[run]\nshutdown_timeout = 5\n");
        assert!(FileConfig::load(&path).unwrap().warnings().is_empty());
    }

    #[test]
    fn config_file_errors_give_file_line_and_column() {
        let e = load_error("keys.toml", "keys = \"k1=AAAA\"\n");
        assert!(
            e.starts_with("file:1:1: ") && e.contains("never go in the config file"),
            "{e}"
        );
        assert!(!e.contains("AAAA"), "{e}");
        let e = load_error("unknown.toml", "queue_name = \"q\"\n[run]\npolers = 3\n");
        assert!(e.starts_with("file:3:1: ") && e.contains("polers"), "{e}");
        let e = load_error("type.toml", "[run]\npollers = \"three\"\n");
        assert!(
            e.starts_with("file:2:11: ") && e.contains("expected u64"),
            "{e}"
        );
        let e = load_error("syntax.toml", "queue_name = \"q\nenvelope = \"sns\"\n");
        assert!(e.starts_with("file:1:"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}
