//! `sqs2pg config`: the configuration a run would use, after every layer and every check,
//! as a TOML document `--config` reads back, each value followed by where it came from, or
//! with `--output json` as one object ([`render_json`]).
//! Secrets are never printed: the database URL loses its password (and, having lost it, is
//! printed commented out, so the document never sets `<redacted>` as a password); keys show
//! as their ids only (nothing is unwrapped), in a comment, since keys never go in the file.
//!
//! It also layers the file under the flags ([`layer_file`]), because what `config` prints
//! about each value's origin is only known while parsing ([`Effective::record`]).

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

use super::args::{GlobalArgs, OutputFormat};
use super::output::print_json;
use crate::config::file::{FileConfig, FileSetting};
use crate::config::settings::{Kind, Setting, GLOBAL_SETTINGS, RUN_SETTINGS};
use crate::config::{ConfigError, DbConfig};
use crate::error::Failure;

/// Where a setting's value came from, as `config` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "from {}", path.display()),
            Self::Env(name) | Self::Flag(name) => write!(f, "from {name}"),
        }
    }
}

/// Each file-layer setting with the text its flag parsed (`None` when unset) and its origin,
/// global settings first, then the `[run]` table.
#[derive(Debug, Default)]
pub struct Effective {
    global: Vec<(Setting, Option<String>, Origin)>,
    run: Vec<(Setting, Option<String>, Origin)>,
}

/// Makes each value of the configuration file `file` the default of its flag, after checking
/// it with that flag's own parser: a value clap would refuse later, naming only the flag, is
/// refused here naming the file, line, column and key.
pub(super) fn layer_file(mut command: Command, file: &FileConfig) -> Result<Command, ConfigError> {
    for s in file.global_settings() {
        check(&command, &s)?;
        command = command.mut_arg(s.key, |a| a.default_value(s.value));
    }
    for s in file.run_settings() {
        if let Some(run) = command.find_subcommand("run") {
            check(run, &s)?;
        }
        for sub in ["run", "config"] {
            let value = s.value.clone();
            command = command.mut_subcommand(sub, |c| c.mut_arg(s.key, |a| a.default_value(value)));
        }
    }
    Ok(command)
}

fn check(command: &Command, s: &FileSetting) -> Result<(), ConfigError> {
    let Some(arg) = command.get_arguments().find(|a| a.get_id() == s.key) else {
        return Ok(());
    };
    let long = arg.get_long().unwrap_or(s.key);
    // A command of this one flag, given the value as a flag: clap's own parser and checks.
    let probe = Command::new("sqs2pg")
        .no_binary_name(true)
        .arg(arg.clone().global(false));
    match probe.try_get_matches_from([format!("--{long}={}", s.value)]) {
        Ok(_) => Ok(()),
        Err(e) => Err(ConfigError::Invalid {
            name: "--config / SQS2PG_CONFIG",
            problem: format!(
                "{}: {} = {} is refused: {}",
                s.at,
                s.key,
                toml_value(
                    Setting::named(s.key).map_or(Kind::Text, |k| k.kind),
                    &s.value
                ),
                reason(&e)
            ),
        }),
    }
}

/// clap's message on one line, without its `error:` prefix and its pointer to `--help`.
fn reason(e: &clap::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    let joined = lines.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}

impl Effective {
    /// What clap parsed for each file-layer setting and where it came from. The database
    /// URL's text is not kept (it may hold a password): [`render`] redacts it from `g`.
    pub(super) fn record(
        command: &Command,
        matches: &ArgMatches,
        file: Option<&FileConfig>,
    ) -> Self {
        let path = file.map(|f| f.path().to_owned());
        let from_file: Vec<&str> = file
            .map(|f| f.global_settings().into_iter().chain(f.run_settings()))
            .into_iter()
            .flatten()
            .map(|s| s.key)
            .collect();
        let setting = |command: &Command, matches: &ArgMatches, setting: Setting| {
            let key = setting.key;
            let arg = command.get_arguments().find(|a| a.get_id() == key)?;
            let raw = matches
                .try_get_raw(key)
                .ok()
                .flatten()
                .and_then(|mut v| v.next());
            let raw = raw.map(|v| v.to_string_lossy().into_owned());
            let origin = match matches.value_source(key) {
                Some(ValueSource::CommandLine) => {
                    Origin::Flag(format!("--{}", arg.get_long().unwrap_or(key)))
                }
                Some(ValueSource::EnvVariable) => Origin::Env(
                    arg.get_env()
                        .map_or(key.into(), |e| e.to_string_lossy().into_owned()),
                ),
                _ => match &path {
                    Some(p) if raw.is_some() && from_file.contains(&key) => Origin::File(p.clone()),
                    _ => Origin::Default,
                },
            };
            let raw = if setting.kind == Kind::Url { None } else { raw };
            Some((setting, raw, origin))
        };
        let global = GLOBAL_SETTINGS
            .iter()
            .filter_map(|s| setting(command, matches, *s))
            .collect();
        let run = match matches.subcommand() {
            Some((name, sub)) => command.find_subcommand(name).map_or(vec![], |c| {
                RUN_SETTINGS
                    .iter()
                    .filter_map(|s| setting(c, sub, *s))
                    .collect()
            }),
            None => vec![],
        };
        Self { global, run }
    }
}

pub(super) fn print(g: &GlobalArgs, effective: &Effective) -> Result<(), Failure> {
    match g.output {
        OutputFormat::Text => print!("{}", render(g, effective)),
        OutputFormat::Json => print_json(&render_json(g, effective))?,
    }
    Ok(())
}

/// `config --output json`: what [`render`] prints, as one object. `settings` holds each key
/// as the file does (the `[run]` table as `run`), each as `{"value", "source", "from"}`:
/// the value as the file would hold it (`null` when unset, and for a connection string that
/// does not parse), `source` one of `default`, `file`, `env`, `flag`, and `from` the file,
/// variable or flag it came from (`null` for a default). Secrets as in the text: the
/// connection string redacted, keys by their ids only.
fn render_json(g: &GlobalArgs, effective: &Effective) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let (key_source, kids) = g.keys().describe();
    let entry = |setting: &Setting, raw: Option<&str>, origin: &Origin| {
        let value = match setting.kind {
            Kind::Url => {
                DbConfig::new(&g.database_url, None).map_or(Value::Null, |db| db.redacted().into())
            }
            kind => raw.map_or(Value::Null, |raw| match raw.parse::<u64>() {
                Ok(n) if kind == Kind::Integer => n.into(),
                _ => raw.into(),
            }),
        };
        let (source, from) = match origin {
            Origin::Default => ("default", Value::Null),
            Origin::File(path) => ("file", path.display().to_string().into()),
            Origin::Env(name) => ("env", name.as_str().into()),
            Origin::Flag(name) => ("flag", name.as_str().into()),
        };
        (
            setting.key.to_owned(),
            json!({ "value": value, "source": source, "from": from }),
        )
    };
    let table = |settings: &[(Setting, Option<String>, Origin)]| -> Map<String, Value> {
        settings
            .iter()
            .map(|(s, raw, origin)| entry(s, raw.as_deref(), origin))
            .collect()
    };
    let mut settings = table(&effective.global);
    settings.insert("run".into(), table(&effective.run).into());
    let key_ids: Vec<&str> = kids.split(", ").filter(|k| *k != "-").collect();
    json!({
        "config_file": g.config.as_ref().map(|p| p.display().to_string()),
        "keyring": { "source": key_source, "key_ids": key_ids },
        "settings": settings,
    })
}

fn render(g: &GlobalArgs, effective: &Effective) -> String {
    let (key_source, kids) = g.keys().describe();
    let file = g
        .config
        .as_ref()
        .map_or("none".into(), |p| p.display().to_string());
    let mut out = format!(
        "# effective sqs2pg configuration (flags > environment > config file > defaults),\n\
         # each value followed by where it came from; `sqs2pg --config FILE` reads it back.\n\
         # config file: {file}\n\
         # keyring: {key_source}; key ids {kids} (writing key first; keys never go in this file)\n"
    );
    for (setting, raw, origin) in &effective.global {
        out.push_str(&match setting.kind {
            Kind::Url => database_url_line(*setting, &g.database_url, origin),
            _ => setting_line(*setting, raw.as_deref(), origin),
        });
    }
    out.push_str("\n[run]\n");
    for (setting, raw, origin) in &effective.run {
        out.push_str(&setting_line(*setting, raw.as_deref(), origin));
    }
    out
}

/// `key = value  # origin`, or the key commented out when it has no value.
fn setting_line(setting: Setting, raw: Option<&str>, origin: &Origin) -> String {
    let key = setting.key;
    match raw {
        Some(raw) => format!(
            "{:<40}  # {origin}\n",
            format!("{key} = {}", toml_value(setting.kind, raw))
        ),
        None => format!("# {key} = \"…\"  (unset)\n"),
    }
}

/// The connection string redacted; commented out when redacting took its password (a
/// `<redacted>` password would be sent as is) or when it does not parse.
fn database_url_line(setting: Setting, url: &str, origin: &Origin) -> String {
    let key = setting.key;
    match DbConfig::new(url, None) {
        Ok(db) if db.redacted().contains("<redacted>") => format!(
            "# {key} = {}  # {origin}; its password is never printed and never goes in a config file: give this URL through DATABASE_URL\n",
            toml_string(&db.redacted())
        ),
        Ok(db) => setting_line(setting, Some(&db.redacted()), origin),
        Err(_) => format!(
            "# {key}: not a valid connection string ({origin}); `sqs2pg migrate` says why\n"
        ),
    }
}

/// The flag's text `raw` as the file holds a setting of `kind`: an integer, else a string.
fn toml_value(kind: Kind, raw: &str) -> String {
    match raw.parse::<u64>() {
        Ok(n) if kind == Kind::Integer => n.to_string(),
        _ => toml_string(raw),
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
