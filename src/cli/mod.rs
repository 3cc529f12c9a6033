//! The command line: [`args`] holds the clap types; [`parse`] layers the configuration file
//! under them; [`execute`] only dispatches to one function per command, each in its own file,
//! which builds the validated configuration and calls the pipeline or an [`crate::ops`] use
//! case, then prints.
//!
//! Exit codes (see `main.rs`): 0 success, 2 usage or configuration error (the message names
//! the flag or variable), 1 anything else.

pub mod args;
mod check;
mod config;
mod docs;
mod forget;
mod keygen;
mod mapping;
mod migrate;
mod output;
mod rejects;
mod rekey;
mod reveal;
mod run;
pub mod run_args;
mod send;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};

use crate::config::file::FileConfig;
use crate::config::ConfigError;
use crate::error::Failure;
use crate::telemetry::LogFormat;

pub use args::{Cli, Command, MappingCommand, RejectsCommand};

/// Parses the process's flags and environment, with the configuration file (`--config` /
/// `SQS2PG_CONFIG`) as the layer between the environment and the defaults. A bad flag
/// exits 2 here, with clap's message naming it.
pub fn parse() -> Result<Cli, ConfigError> {
    parse_from(std::env::args_os().collect())
}

/// What `sqs2pg` alone prints: where to start, not clap's bare usage line.
const START: &str = "\
sqs2pg streams login events from an SQS queue into Postgres, masking ip and device_id.

  make demo      local Postgres + LocalStack, 100 synthetic events, drained, masked, revealed
  make test      every test, against the same local services

  sqs2pg keygen --kid k1 --out keys
  sqs2pg migrate
  sqs2pg run --keys-file keys --until-empty

`sqs2pg --help` lists the commands; `sqs2pg COMMAND --help` shows a command's flags, their
defaults and an example.
";

/// [`parse`] for given arguments (the first is the program name). With no command at all it
/// prints [`START`] and exits 2.
pub fn parse_from(args: Vec<OsString>) -> Result<Cli, ConfigError> {
    if args.len() <= 1 {
        eprint!("{START}");
        std::process::exit(2);
    }
    let mut command = Cli::command();
    let file = match config_path(&args) {
        Some(path) => Some(FileConfig::load(&path)?),
        None => None,
    };
    if let Some(file) = &file {
        command = config::layer_file(command, file)?;
    }
    let matches = command
        .try_get_matches_from_mut(args.iter())
        .unwrap_or_else(|e| refuse(e, &args, file.as_ref()));
    let mut cli =
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| refuse(e, &args, file.as_ref()));
    cli.effective = config::Effective::record(&command, &matches, file.as_ref());
    cli.warnings = file.map(|f| f.warnings().to_vec()).unwrap_or_default();
    if matches.value_source("database_url") == Some(clap::parser::ValueSource::CommandLine) {
        refuse_password_in_flag(&cli.global.database_url)?;
    }
    Ok(cli)
}

/// Exits on what clap refused: with clap's text (help and version always), or, when JSON logs
/// were asked for, with one JSON line shaped like every other fatal error's
/// ([`Failure::json_line`]): clap's message on one line, exit code 2, and the flag at fault
/// when clap names one.
fn refuse(e: clap::Error, args: &[OsString], file: Option<&FileConfig>) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let help = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if help || !e.use_stderr() || log_format_asked(args, file) != LogFormat::Json {
        e.exit()
    }
    // `--pollers <POLLERS>`: the flag alone; none for a positional argument (`<SHELL>`).
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        Some(ContextValue::Strings(s)) => s.first().map(String::as_str),
        _ => None,
    }
    .and_then(|s| s.split_whitespace().next())
    .filter(|s| s.starts_with('-'))
    .map(str::to_owned);
    let failure = Failure::usage(one_line(&e)).with_flag(flag);
    eprintln!("{}", failure.json_line());
    std::process::exit(e.exit_code())
}

/// clap's message on one line, without its `error:` prefix, usage line and pointer to
/// `--help`.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:")
        })
        .collect();
    let joined = lines.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}

/// The log format asked for before the settings exist: `--log-format`, else
/// `SQS2PG_LOG_FORMAT`, else the config file's `log_format` when it loaded; text otherwise.
pub fn log_format_asked(args: &[OsString], file: Option<&FileConfig>) -> LogFormat {
    // to_string_lossy: a non-UTF-8 argument must not panic here.
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let flag = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--log-format=") {
            Some(v) => Some(v.to_owned()),
            None if a == "--log-format" => args.get(i + 1).cloned(),
            None => None,
        });
    let from_file = || Some(file?.log_format.as_ref()?.get_ref().clone());
    match flag
        .or_else(|| std::env::var("SQS2PG_LOG_FORMAT").ok())
        .or_else(from_file)
        .as_deref()
    {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Secrets never come from flags: they would show in `ps` and the shell's history.
fn refuse_password_in_flag(database_url: &str) -> Result<(), ConfigError> {
    if crate::config::has_password(database_url) {
        return Err(ConfigError::Invalid {
            name: "--database-url",
            problem: "holds a password, which would show in `ps` and the shell's history: give this connection string through DATABASE_URL instead".into(),
        });
    }
    Ok(())
}

/// `--config PATH`, `--config=PATH`, else `SQS2PG_CONFIG`: read before clap parses, because
/// the file changes what the other flags default to.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let flag = args.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        match a.strip_prefix("--config=") {
            Some(v) => Some(PathBuf::from(v)),
            None if a == "--config" => args.get(i + 1).map(PathBuf::from),
            None => None,
        }
    });
    flag.or_else(|| std::env::var_os("SQS2PG_CONFIG").map(PathBuf::from))
}

/// Runs one parsed command.
pub async fn execute(cli: Cli) -> Result<(), Failure> {
    for warning in &cli.warnings {
        tracing::warn!("{warning}");
    }
    let g = &cli.global;
    match &cli.command {
        Command::Migrate { roles } => migrate::migrate(g, *roles).await,
        Command::Check => check::check(g).await,
        Command::Run(args) => run::run(g, args).await,
        Command::Send(args) => send::send(g, args).await,
        Command::Keygen {
            kid,
            kms_key_id,
            out,
        } => keygen::keygen(kid, kms_key_id.as_deref(), out.as_deref()).await,
        Command::Reveal {
            column,
            reason,
            max,
            reject,
            raw,
        } => match reject {
            Some(id) => reveal::reveal_reject(g, id, reason, *raw).await,
            None => reveal::reveal(g, column.as_ref(), reason, *max, *raw).await,
        },
        Command::Mask {
            column,
            reason,
            value,
        } => reveal::mask(g, column, reason, value).await,
        Command::Rekey { batch_size } => rekey::rekey(g, *batch_size).await,
        Command::Forget {
            subject,
            reason,
            dry_run,
        } => forget::forget(g, subject, reason, *dry_run).await,
        Command::Mapping(MappingCommand::Print) => mapping::print(),
        Command::Mapping(MappingCommand::Check { sample }) => {
            mapping::check(g, sample.as_deref()).await
        }
        Command::Config(_) => config::print(g, &cli.effective),
        Command::Completions { shell } => docs::completions(*shell),
        Command::Man { dir } => docs::man(dir.as_deref()),
        Command::Rejects(RejectsCommand::List { reason, ids }) => {
            rejects::list(g, reason.as_deref(), *ids).await
        }
        Command::Rejects(RejectsCommand::Replay {
            reason,
            id,
            batch_size,
        }) => rejects::replay(g, reason, id, *batch_size).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each command's `--help` shows its own flags first, and the settings every command
    /// shares after them under their own heading.
    #[test]
    fn global_options_have_their_own_heading() {
        fn check(cmd: &mut clap::Command, path: &str) {
            // clap's own `help` subcommand takes no options.
            for sub in cmd.get_subcommands_mut().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                let help = sub.render_help().to_string();
                let (own, global) = help
                    .split_once("Global options:")
                    .unwrap_or_else(|| panic!("`{path} --help` has no Global options:\n{help}"));
                assert!(
                    !own.contains("--database-url") && !own.contains("--keys-file"),
                    "`{path} --help` lists a global option among its own:\n{own}"
                );
                assert!(
                    global.contains("--database-url") && global.contains("--output"),
                    "{path}"
                );
                check(sub, &path);
            }
        }
        let mut cli = Cli::command();
        cli.build();
        check(&mut cli, "sqs2pg");
    }

    /// Every command's `--help` ends with at least one example, no line of them wider than
    /// clap wraps at (100 columns off a terminal): a wrapped command reads as two.
    #[test]
    fn every_command_has_an_example() {
        fn narrow(help: &str, path: &str) {
            for line in help.lines() {
                let width = line.chars().count();
                assert!(width <= 98, "`{path} --help`: {width} columns: {line}");
            }
        }
        narrow(args::EXAMPLES, "sqs2pg");
        fn check(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.has_subcommands() {
                    check(sub, &path);
                    continue;
                }
                let after = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                assert!(
                    after.starts_with("Examples:\n  ")
                        && (after.contains(&format!("{path} "))
                            || after.contains(&format!("{path}\n"))),
                    "`{path} --help` has no example"
                );
                narrow(&after, &path);
            }
        }
        check(&Cli::command(), "sqs2pg");
    }
}
