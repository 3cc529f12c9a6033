//! `sqs2pg config`: the configuration a run would use, after every layer and every check,
//! as TOML-like text. Secrets are never printed: the database URL loses its password, keys
//! show as their ids only (nothing is unwrapped).
//!
//! It also layers the configuration file under the flags ([`layer_file`]).

use clap::Command;

use super::args::{GlobalArgs, RunArgs};
use crate::config::file::{self, FileConfig, FileSetting};
use crate::config::ConfigError;
use crate::error::Failure;

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
                toml_value(s.key, &s.value),
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

pub(super) fn print(g: &GlobalArgs, r: &RunArgs) -> Result<(), Failure> {
    print!("{}", render(g, r));
    Ok(())
}

fn render(g: &GlobalArgs, r: &RunArgs) -> String {
    let db = g
        .db()
        .map(|d| d.redacted())
        .unwrap_or_else(|e| format!("<invalid: {e}>"));
    let (key_source, kids) = g.keys().describe();
    let p = r.pipeline(g.metrics_addr);
    let opt = |v: Option<String>| v.map_or("# unset".to_string(), |v| format!("{v:?}"));
    format!(
        "# effective sqs2pg configuration (flags > environment > config file > defaults)\n\
         # config file: {}\n\
         queue_url = {}\n\
         queue_name = {:?}\n\
         envelope = \"{}\"\n\
         create_date_from = \"{}\"\n\
         database_url = {:?}\n\
         db_ca_file = {}\n\
         db_write_timeout_secs = {}\n\
         db_statements = {:?}\n\
         keys = {:?}  # source: {key_source}; key ids only, writing key first\n\
         log_format = {:?}\n\
         metrics_addr = {}\n\
         \n[run]\n\
         pollers = {}\nwriters = {}\nbatch_size = {}\nbatch_wait_ms = {}\nmax_inflight_bytes = {}\nwait_seconds = {}\nshutdown_timeout_secs = {}\n",
        g.config.as_ref().map_or("none".into(), |p| p.display().to_string()),
        opt(g.queue_url.clone()),
        g.queue_name,
        g.envelope,
        g.create_date_from,
        db,
        opt(g.db_ca_file.as_ref().map(|p| p.display().to_string())),
        g.db_write_timeout_secs,
        format!("{:?}", g.db_statements).to_lowercase(),
        kids,
        format!("{:?}", g.log_format).to_lowercase(),
        opt(p.metrics_addr.map(|a| a.to_string())),
        p.pollers,
        p.writers,
        p.batch_size,
        p.batch_wait.as_millis(),
        p.max_inflight_bytes,
        p.wait_seconds,
        p.shutdown_timeout.as_secs(),
    )
}

/// The flag's text `raw` as the file holds it: an integer, else a string.
fn toml_value(key: &str, raw: &str) -> String {
    match raw.parse::<u64>() {
        Ok(n) if file::is_integer(key) => n.to_string(),
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
