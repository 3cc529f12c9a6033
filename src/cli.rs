//! Command-line interface: flags and environment (clap derive), then one function per
//! command. Every setting is validated into [`crate::config`] types before any work starts.
//!
//! Exit codes (see `main.rs`): 0 success, 2 usage or configuration error (the message names
//! the flag or variable), 1 anything else.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::audit::{self, AuditEntry};
use crate::config::{self, ConfigError, DbConfig, PipelineConfig, RunConfig, SqsConfig};
use crate::mask::{Column, Keyring, Masker};
use crate::pipeline::{self, PipelineError};
use crate::sink::{self, SinkError};
use crate::source::{Source, SourceError};
use crate::synth::{self, SynthOptions};
use crate::telemetry::{LogFormat, Stats};

const EXAMPLES: &str = "\
Examples:
  eval \"$(scripts/services env)\"          # point at local LocalStack + Postgres
  sqs2pg keygen --kid k1 > keys && chmod 600 keys
  sqs2pg migrate
  sqs2pg send --synthetic 1000 --malformed-rate 0.01
  sqs2pg run --keys-file keys --until-empty
  psql -Atc 'select masked_ip from user_logins limit 3' | sqs2pg reveal --keys-file keys --column ip";

/// Streams login events from SQS into Postgres, masking ip and device_id with AES-256-SIV.
#[derive(Debug, Parser)]
#[command(name = "sqs2pg", version, about, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command; each may also come from its environment variable.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Queue URL; skips the name lookup.
    #[arg(long, env = "SQS2PG_QUEUE_URL", global = true)]
    pub queue_url: Option<String>,
    /// Queue name, resolved with GetQueueUrl when no URL is given.
    #[arg(long, env = "SQS2PG_QUEUE_NAME", default_value = "login-queue", global = true, value_parser = parse_queue_name)]
    pub queue_name: String,
    /// Postgres connection string.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    /// File holding the keyring (`kid=BASE64KEY` lines; first entry writes). Without it,
    /// the keyring is read from SQS2PG_KEYS.
    #[arg(long, env = "SQS2PG_KEYS_FILE", global = true)]
    pub keys_file: Option<PathBuf>,
    /// Serve Prometheus /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9898).
    #[arg(long, env = "SQS2PG_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// TOML file with any non-secret setting (flags > environment > file > defaults).
    #[arg(long, env = "SQS2PG_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Log format (logs go to stderr; RUST_LOG sets the level).
    #[arg(
        long,
        env = "SQS2PG_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the tables that are missing (idempotent; never alters an existing user_logins).
    #[command(
        after_help = "Examples:\n  sqs2pg migrate\n  sqs2pg migrate --roles   # also the sqs2pg_ingest / _analyst / _revealer roles"
    )]
    Migrate {
        /// Also create the least-privilege roles sqs2pg_ingest, sqs2pg_analyst and
        /// sqs2pg_revealer and set their grants (needs CREATEROLE).
        #[arg(long)]
        roles: bool,
    },
    /// Consume the queue into Postgres until SIGINT/SIGTERM, or with --until-empty until
    /// the queue is drained.
    #[command(
        after_help = "Examples:\n  sqs2pg run --keys-file keys --until-empty          # drain and print a summary\n  sqs2pg run --keys-file keys --metrics-addr 0.0.0.0:9898   # daemon with /metrics, /healthz, /readyz\n  SQS2PG_POLLERS=16 SQS2PG_WRITERS=4 sqs2pg run       # more throughput"
    )]
    Run(RunArgs),
    /// Send message bodies to the queue: from a file (JSON array or JSONL, verbatim) or
    /// synthetic login events.
    #[command(
        after_help = "Examples:\n  sqs2pg send --file ../shared/data/fetch-login-sample.json\n  sqs2pg send --file events.jsonl\n  sqs2pg send --synthetic 20000 --malformed-rate 0.01 --duplicate-rate 0.05 --seed 7"
    )]
    Send(SendArgs),
    /// Print a new keyring entry `ID=BASE64` (64 random bytes). Keep it secret.
    ///
    /// With --kms-key-id, KMS makes the key (GenerateDataKeyWithoutPlaintext) and the entry is
    /// `ID=kms:BASE64BLOB`: the key wrapped by that KMS key, unwrapped by sqs2pg at start-up.
    #[command(
        after_help = "Examples:\n  sqs2pg keygen --kid k1 > keys && chmod 600 keys\n  sqs2pg keygen --kid k2 --kms-key-id alias/sqs2pg   # KMS-wrapped: k2=kms:..."
    )]
    Keygen {
        /// Key id written into every token (1-32 of [A-Za-z0-9_-]).
        #[arg(long, default_value = "k1")]
        kid: String,
        /// Wrap the new key with this KMS key (id, ARN or alias/NAME).
        #[arg(long)]
        kms_key_id: Option<String>,
    },
    /// Read tokens on stdin, one a line; write the originals on stdout, one a line.
    ///
    /// Audited: before anything is printed, a row goes to sqs2pg_reveal_audit with the
    /// database user, OS user, host, --reason and how many values.
    #[command(
        after_help = "Examples:\n  psql -Atc \"select masked_ip from user_logins where user_id='u1'\" | sqs2pg reveal --column ip --reason 'TICKET-123 fraud review'\n  sqs2pg reveal --reject 5f0c... --reason 'TICKET-124 why rejected'"
    )]
    Reveal {
        /// The column the tokens come from; without it each column is tried.
        #[arg(long, value_enum, conflicts_with = "reject")]
        column: Option<RevealColumn>,
        /// Why you unmask (recorded in the audit).
        #[arg(long, value_parser = parse_reason)]
        reason: String,
        /// Refuse to unmask more than this many values at once; raise it on purpose.
        #[arg(long, default_value_t = 1000)]
        max: usize,
        /// Open the quarantined body of this message id instead of reading stdin.
        #[arg(long, value_name = "MESSAGE_ID")]
        reject: Option<String>,
    },
    /// Print the token of one value, to find its rows (audited like reveal).
    #[command(
        after_help = "Examples:\n  sqs2pg mask --column ip --reason 'INC-4711' 203.0.113.7\n  psql -c \"select * from user_logins where masked_ip = '$(sqs2pg mask --column ip --reason INC-4711 203.0.113.7)'\""
    )]
    Mask {
        /// The column whose token to make.
        #[arg(long, value_enum)]
        column: MaskColumn,
        /// Why you look it up (recorded in the audit).
        #[arg(long, value_parser = parse_reason)]
        reason: String,
        /// The raw value.
        value: String,
    },
    /// Inspect and replay quarantined messages (user_logins_rejects).
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  sqs2pg rejects list\n  sqs2pg rejects list --reason bad_app_version --ids 100\n  sqs2pg rejects replay --reason bad_app_version\n  sqs2pg reveal --reject MESSAGE_ID --reason 'why was it rejected'"
    )]
    Rejects(RejectsCommand),
    /// Print the effective configuration (flags > environment > config file > defaults),
    /// secrets redacted.
    #[command(
        after_help = "Examples:\n  sqs2pg config\n  sqs2pg --config /etc/sqs2pg/sqs2pg.toml config"
    )]
    Config(RunArgs),
    /// Print shell completions: `sqs2pg completions bash > /etc/bash_completion.d/sqs2pg`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `sqs2pg man > sqs2pg.1`.
    Man,
    /// Re-encrypt every token and rejected body under an older key to the writing key.
    ///
    /// Rotation: put the new key first in the keyring (new tokens are written under it,
    /// older keys stay readable), restart `run`, then run `rekey`. It works in batches while
    /// `run` keeps loading, and is idempotent and safe to interrupt: rerun it to finish.
    /// Between the two steps, equal values under different key ids have DIFFERENT tokens, so
    /// duplicates across old and new rows are not identifiable until rekey has finished.
    #[command(
        after_help = "Examples:\n  SQS2PG_KEYS=\"$(cat k2.key k1.key)\" sqs2pg rekey    # k2 writes, k1 still reads\n  sqs2pg rekey --keys-file keys --batch-size 5000"
    )]
    Rekey {
        /// Rows per transaction.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch_size: i64,
    },
}

/// Columns `reveal` opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RevealColumn {
    /// masked_ip tokens.
    Ip,
    /// masked_device_id tokens.
    #[value(name = "device_id", alias = "device-id")]
    DeviceId,
    /// user_logins_rejects.body_ciphertext.
    Body,
}

impl From<RevealColumn> for Column {
    fn from(c: RevealColumn) -> Self {
        match c {
            RevealColumn::Ip => Column::Ip,
            RevealColumn::DeviceId => Column::DeviceId,
            RevealColumn::Body => Column::Body,
        }
    }
}

/// `sqs2pg rejects ...`
#[derive(Debug, Subcommand)]
pub enum RejectsCommand {
    /// Counts and message ids by reason (never bodies).
    List {
        /// Only this reason (e.g. bad_app_version).
        #[arg(long)]
        reason: Option<String>,
        /// Message ids shown per reason.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(0..=100_000))]
        ids: i64,
    },
    /// Run quarantined bodies through decode, mask and sink again, e.g. after an operator
    /// changed app_version to a text column. Each message that now loads leaves the rejects
    /// in the same transaction that inserts its row; one that still fails stays, with its
    /// new reason. Idempotent and safe to interrupt.
    Replay {
        /// Only this reason.
        #[arg(long, conflicts_with = "id")]
        reason: Option<String>,
        /// Only this message id.
        #[arg(long)]
        id: Option<String>,
        /// Rejects per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch_size: i64,
    },
}

/// Columns `mask` makes tokens for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MaskColumn {
    /// An IPv4 or IPv6 address.
    Ip,
    /// A device id.
    #[value(name = "device_id", alias = "device-id")]
    DeviceId,
}

fn parse_reason(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("give a reason (e.g. a ticket number); it is recorded in the audit".into())
    } else {
        Ok(s.to_owned())
    }
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stop once the queue stays empty for one long-poll round, print a summary, exit 0.
    #[arg(long)]
    pub until_empty: bool,
    /// Concurrent long-polling receivers.
    #[arg(long, env = "SQS2PG_POLLERS", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub pollers: u16,
    /// Concurrent database writers (one connection each).
    #[arg(long, env = "SQS2PG_WRITERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,
    /// Most messages per transaction.
    #[arg(long, env = "SQS2PG_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Longest a partial batch waits for more messages, in milliseconds.
    #[arg(long, env = "SQS2PG_BATCH_WAIT_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_wait_ms: u64,
    /// Long-poll wait per receive, in seconds (0-20).
    #[arg(long, env = "SQS2PG_WAIT_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(i32).range(0..=20))]
    pub wait_seconds: i32,
    /// After SIGINT/SIGTERM, seconds in-flight work may take to commit before it is released
    /// to other consumers (visibility 0); then the process exits 0.
    #[arg(long, env = "SQS2PG_SHUTDOWN_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub shutdown_timeout: u64,
    /// Progress display: a bar on a terminal (auto), always a bar, or log lines only.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// When to draw the progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar for --until-empty runs on a terminal.
    Auto,
    /// A bar whenever stderr is a terminal.
    Always,
    /// Log lines only.
    Never,
}

/// Flags of `send`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["file", "synthetic"])))]
pub struct SendArgs {
    /// A JSON array (each element one message) or a JSONL file (each line one message).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Generate this many realistic login events.
    #[arg(long)]
    pub synthetic: Option<usize>,
    /// With --synthetic: fraction re-sent as separate messages with an earlier body.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate, requires = "synthetic")]
    pub duplicate_rate: f64,
    /// With --synthetic: fraction of malformed bodies.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate, requires = "synthetic")]
    pub malformed_rate: f64,
    /// With --synthetic: random seed, for repeatable data.
    #[arg(long, default_value_t = 42, requires = "synthetic")]
    pub seed: u64,
    /// Concurrent SendMessageBatch calls.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "{s:?} is not a fraction between 0 and 1 (e.g. 0.05)"
        )),
    }
}

fn parse_queue_name(s: &str) -> Result<String, String> {
    let base = s.strip_suffix(".fifo").unwrap_or(s);
    if (1..=80).contains(&s.len())
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not an SQS queue name (1-80 of [A-Za-z0-9_-], optional .fifo)"
        ))
    }
}

impl GlobalArgs {
    fn sqs(&self) -> SqsConfig {
        SqsConfig {
            queue_url: self.queue_url.clone(),
            queue_name: self.queue_name.clone(),
        }
    }

    fn db(&self) -> Result<DbConfig, ConfigError> {
        DbConfig::parse(&self.database_url)
    }

    async fn keyring(&self) -> Result<Keyring, ConfigError> {
        config::load_keyring(self.keys_file.as_deref(), config::env_keys()).await
    }
}

/// Parses flags and environment, with the configuration file (`--config` /
/// `SQS2PG_CONFIG`) as the layer between the environment and the defaults: each file setting
/// becomes its variable unless the variable is already set. Call before any thread starts.
pub fn parse() -> Result<Cli, ConfigError> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let flag = args.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        match a.strip_prefix("--config=") {
            Some(v) => Some(PathBuf::from(v)),
            None if a == "--config" => args.get(i + 1).map(PathBuf::from),
            None => None,
        }
    });
    if let Some(path) = flag.or_else(|| std::env::var_os("SQS2PG_CONFIG").map(PathBuf::from)) {
        for (key, value) in config::FileConfig::load(&path)?.as_env() {
            if std::env::var_os(key).is_none() {
                std::env::set_var(key, value);
            }
        }
    }
    Ok(Cli::parse_from(args))
}

/// The exit code for an error: 2 for usage and configuration, 1 for the rest.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let usage = e.chain().any(|c| {
        c.downcast_ref::<ConfigError>()
            .is_some_and(|c| !matches!(c, ConfigError::Kms(k) if !k.is_refusal()))
            || c.downcast_ref::<SinkError>().is_some_and(sink_usage)
            || c.downcast_ref::<SourceError>().is_some_and(source_usage)
            || match c.downcast_ref::<PipelineError>() {
                Some(PipelineError::Sink(s)) => sink_usage(s),
                Some(PipelineError::Source(s)) => source_usage(s),
                _ => false,
            }
    });
    if usage {
        2
    } else {
        1
    }
}

fn sink_usage(e: &SinkError) -> bool {
    matches!(
        e,
        SinkError::NotMigrated(_) | SinkError::Incompatible(_) | SinkError::Tls(_)
    )
}

fn source_usage(e: &SourceError) -> bool {
    matches!(e, SourceError::NoRegion | SourceError::QueueNotFound { .. })
}

/// Runs one parsed command.
pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Migrate { roles } => migrate(g, *roles).await,
        Command::Run(args) => run(g, args).await,
        Command::Send(args) => send(g, args).await,
        Command::Keygen { kid, kms_key_id } => keygen(kid, kms_key_id.as_deref()).await,
        Command::Reveal {
            column,
            reason,
            max,
            reject,
        } => match reject {
            Some(id) => reveal_reject(g, id, reason).await,
            None => reveal(g, column.map(Column::from), reason, *max).await,
        },
        Command::Mask {
            column,
            reason,
            value,
        } => mask(g, *column, reason, value).await,
        Command::Rekey { batch_size } => rekey(g, *batch_size).await,
        Command::Config(args) => {
            print!("{}", effective_config(g, args));
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "sqs2pg",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut std::io::stdout())?;
            Ok(())
        }
        Command::Rejects(RejectsCommand::List { reason, ids }) => {
            rejects_list(g, reason.as_deref(), *ids).await
        }
        Command::Rejects(RejectsCommand::Replay {
            reason,
            id,
            batch_size,
        }) => {
            let keyring = g.keyring().await?;
            let filter = pipeline::ReplayFilter {
                reason: reason.clone(),
                id: id.clone(),
            };
            let summary = pipeline::replay(&g.db()?, &keyring, &filter, *batch_size).await?;
            println!("{summary}");
            Ok(())
        }
    }
}

async fn keygen(kid: &str, kms_key_id: Option<&str>) -> anyhow::Result<()> {
    let key_err = |source| ConfigError::Key {
        origin: "--kid",
        source,
    };
    let entry = match kms_key_id {
        None => Keyring::generate_entry(kid).map_err(key_err)?,
        Some(key_id) => {
            let sdk = config::aws_sdk_config().await;
            crate::kms::generate_entry(kid, key_id, &sdk)
                .await
                .map_err(ConfigError::Kms)?
        }
    };
    println!("{entry}");
    eprintln!("sqs2pg: new key {kid:?}: keep it secret and apart from the data (e.g. `> keys && chmod 600 keys`); losing it makes its tokens unrecoverable");
    Ok(())
}

async fn migrate(g: &GlobalArgs, roles: bool) -> anyhow::Result<()> {
    let db = g.db()?;
    let mut client = sink::connect(&db).await?;
    let report = sink::migrate(&mut client, roles).await?;
    if report.created.is_empty() {
        println!("nothing to do: all tables exist");
    } else {
        println!("created: {}", report.created.join(", "));
    }
    if roles {
        println!(
            "roles: sqs2pg_ingest, sqs2pg_analyst, sqs2pg_revealer (grant them to login users)"
        );
    }
    Ok(())
}

async fn run(g: &GlobalArgs, args: &RunArgs) -> anyhow::Result<()> {
    let cfg = RunConfig {
        sqs: g.sqs(),
        db: g.db()?,
        keyring: g.keyring().await?,
        pipeline: PipelineConfig {
            pollers: args.pollers.into(),
            writers: args.writers.into(),
            batch_size: args.batch_size as usize,
            batch_wait: std::time::Duration::from_millis(args.batch_wait_ms),
            wait_seconds: args.wait_seconds,
            until_empty: args.until_empty,
            shutdown_timeout: std::time::Duration::from_secs(args.shutdown_timeout),
            metrics_addr: g.metrics_addr,
            progress: match args.progress {
                ProgressMode::Auto => args.until_empty,
                ProgressMode::Always => true,
                ProgressMode::Never => false,
            },
        },
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let stats = Arc::new(Stats::default());
    let summary = pipeline::run(cfg, shutdown, stats).await?;
    println!("{summary}");
    Ok(())
}

/// Cancels `token` on SIGINT or SIGTERM.
async fn watch_signals(token: CancellationToken) {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested: finishing the messages in flight");
    token.cancel();
}

async fn send(g: &GlobalArgs, args: &SendArgs) -> anyhow::Result<()> {
    let bodies = match (&args.file, args.synthetic) {
        (Some(path), _) => read_bodies(path)?,
        (None, Some(count)) => synth::generate(SynthOptions {
            count,
            duplicate_rate: args.duplicate_rate,
            malformed_rate: args.malformed_rate,
            seed: args.seed,
        }),
        (None, None) => bail!("give --file PATH or --synthetic N"),
    };
    let source = Source::connect(&g.sqs()).await?;
    let sent = source.send(&bodies, args.concurrency.into()).await?;
    println!("sent {sent} messages to {}", source.queue_url());
    Ok(())
}

/// Each element of a JSON array, or each non-blank line of a JSONL file, verbatim.
pub fn read_bodies(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--file: cannot read {}", path.display()))?;
    if text.trim_start().starts_with('[') {
        let items: Vec<Box<serde_json::value::RawValue>> = serde_json::from_str(&text)
            .map_err(|e| ConfigError::Invalid {
                name: "--file",
                problem: format!(
                    "{} starts with '[' but is not a JSON array (line {}, column {}); fix it or use one message per line",
                    path.display(),
                    e.line(),
                    e.column()
                ),
            })?;
        Ok(items.into_iter().map(|v| v.get().to_owned()).collect())
    } else {
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// Reads every token first, so the audit row can say how many values are opened and
/// `--max` can refuse before anything is printed.
async fn reveal(
    g: &GlobalArgs,
    column: Option<Column>,
    reason: &str,
    max: usize,
) -> anyhow::Result<()> {
    let keyring = g.keyring().await?;
    let db = g.db()?;
    let lines: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .collect::<Result<_, _>>()
        .context("reading tokens from stdin")?;
    let count = lines.iter().filter(|l| !l.trim().is_empty()).count();
    if count > max {
        return Err(ConfigError::Invalid {
            name: "--max",
            problem: format!("{count} tokens on stdin, more than --max {max}: raise --max on purpose to unmask more at once"),
        }
        .into());
    }
    let client = sink::connect(&db).await?;
    audit::record(
        &client,
        &AuditEntry {
            action: "reveal",
            column: column.map_or("any", Column::as_str),
            reason,
            values: i32::try_from(count).unwrap_or(i32::MAX),
        },
    )
    .await?;

    let mut masker = Masker::new(&keyring);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    for (n, line) in lines.iter().enumerate() {
        let token = line.trim();
        if token.is_empty() {
            writeln!(out)?;
            continue;
        }
        let opened = match column {
            Some(c) => masker.reveal(c, token),
            None => masker.reveal_any(token).map(|(_, v)| v),
        };
        match opened {
            Ok(v) => writeln!(out, "{v}")?,
            Err(e) => {
                // One output line per input line, so the output still lines up with the input.
                writeln!(out)?;
                eprintln!("sqs2pg reveal: line {}: {e}", n + 1);
                failed += 1;
            }
        }
    }
    out.flush()?;
    if failed > 0 {
        bail!("{failed} token(s) could not be opened (see the lines above)");
    }
    Ok(())
}

async fn reveal_reject(g: &GlobalArgs, message_id: &str, reason: &str) -> anyhow::Result<()> {
    let keyring = g.keyring().await?;
    let client = sink::connect(&g.db()?).await?;
    let row = client
        .query_opt(
            "SELECT body_ciphertext, reason FROM user_logins_rejects WHERE message_id = $1",
            &[&message_id],
        )
        .await
        .map_err(SinkError::from)?;
    let Some(row) = row else {
        bail!("no reject with message id {message_id:?}: `sqs2pg rejects list` or `select message_id from user_logins_rejects` shows them");
    };
    audit::record(
        &client,
        &AuditEntry {
            action: "reveal_reject",
            column: "body",
            reason,
            values: 1,
        },
    )
    .await?;
    let body = Masker::new(&keyring).reveal(Column::Body, &row.get::<_, String>(0))?;
    eprintln!(
        "sqs2pg reveal: message {message_id} was rejected: {}",
        row.get::<_, String>(1)
    );
    println!("{body}");
    Ok(())
}

async fn mask(g: &GlobalArgs, column: MaskColumn, reason: &str, value: &str) -> anyhow::Result<()> {
    let keyring = g.keyring().await?;
    let mut masker = Masker::new(&keyring);
    let token = match column {
        MaskColumn::Ip => {
            let ip = crate::decode::parse_ip(value).map_err(|_| ConfigError::Invalid {
                name: "VALUE",
                problem: "not an IPv4 or IPv6 address".into(),
            })?;
            masker.mask_ip(ip)
        }
        MaskColumn::DeviceId => masker.mask_device_id(value),
    };
    let client = sink::connect(&g.db()?).await?;
    let column = match column {
        MaskColumn::Ip => Column::Ip,
        MaskColumn::DeviceId => Column::DeviceId,
    };
    audit::record(
        &client,
        &AuditEntry {
            action: "mask",
            column: column.as_str(),
            reason,
            values: 1,
        },
    )
    .await?;
    println!("{token}");
    Ok(())
}

/// The effective settings as TOML-like text. Secrets are never printed: the database URL
/// loses its password, keys show as their ids only.
fn effective_config(g: &GlobalArgs, r: &RunArgs) -> String {
    let db = g
        .db()
        .map(|d| d.redacted())
        .unwrap_or_else(|e| format!("<invalid: {e}>"));
    let (key_source, kids) = match (&g.keys_file, config::env_keys()) {
        (Some(p), _) => (
            format!("file {}", p.display()),
            std::fs::read_to_string(p).ok(),
        ),
        (None, Some(text)) => (
            "SQS2PG_KEYS".to_string(),
            Some(secrecy::ExposeSecret::expose_secret(&text).to_owned()),
        ),
        (None, None) => (
            "none (run refuses to start; see `sqs2pg keygen --help`)".to_string(),
            None,
        ),
    };
    let kids = kids
        .map(zeroize::Zeroizing::new)
        .and_then(|t| crate::mask::parse_entries(&t).ok())
        .map(|entries| {
            entries
                .iter()
                .map(|e| match e.material {
                    crate::mask::KeyMaterial::Plain(_) => e.kid.clone(),
                    crate::mask::KeyMaterial::KmsWrapped(_) => format!("{} (kms)", e.kid),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "-".into());
    let opt = |v: &Option<String>| {
        v.as_deref()
            .map_or("# unset".to_string(), |v| format!("{v:?}"))
    };
    format!(
        "# effective sqs2pg configuration (flags > environment > config file > defaults)\n\
         # config file: {}\n\
         queue_url = {}\n\
         queue_name = {:?}\n\
         database_url = {:?}\n\
         keys = {:?}  # source: {key_source}; key ids only, writing key first\n\
         log_format = {:?}\n\
         metrics_addr = {}\n\
         \n[run]\n\
         pollers = {}\nwriters = {}\nbatch_size = {}\nbatch_wait_ms = {}\nwait_seconds = {}\nshutdown_timeout_secs = {}\n",
        g.config.as_ref().map_or("none".into(), |p| p.display().to_string()),
        opt(&g.queue_url),
        g.queue_name,
        db,
        kids,
        format!("{:?}", g.log_format).to_lowercase(),
        opt(&g.metrics_addr.map(|a| a.to_string())),
        r.pollers,
        r.writers,
        r.batch_size,
        r.batch_wait_ms,
        r.wait_seconds,
        r.shutdown_timeout,
    )
}

async fn rejects_list(g: &GlobalArgs, reason: Option<&str>, ids: i64) -> anyhow::Result<()> {
    let client = sink::connect(&g.db()?).await?;
    sink::inspect(&client).await?;
    let groups = sink::rejects_summary(&client, reason, ids).await?;
    if groups.is_empty() {
        println!("no rejects");
    }
    for (reason, count, ids) in groups {
        println!("{reason}\t{count}");
        for id in ids {
            println!("  {id}");
        }
    }
    Ok(())
}

async fn rekey(g: &GlobalArgs, batch_size: i64) -> anyhow::Result<()> {
    let keyring = g.keyring().await?;
    let mut client = sink::connect(&g.db()?).await?;
    sink::inspect(&client).await?;
    let (rows, bodies) = crate::rekey::pending(&client, &keyring).await?;
    tracing::info!(
        rows,
        bodies,
        writing_kid = keyring.writing_kid(),
        "rekey started"
    );
    let bar = crate::telemetry::bar(rows + bodies);
    let report = crate::rekey::run(&mut client, &keyring, batch_size, &bar).await;
    bar.finish_and_clear();
    println!("{}", report?);
    Ok(())
}
