//! Every setting, defined once: its help, flag, environment variable and default (the clap
//! field and its `#[arg]`), and, for one the configuration file may set (`=> KIND`), its TOML
//! key (the field's name; in `[run]` for the second table) and how the file holds it and
//! `sqs2pg config` shows it ([`Kind`]). The clap structs ([`GlobalArgs`], [`RunArgs`]), the
//! file's structs and the order `config` prints in all come from these two tables, and a
//! test (`readme.rs`) checks the README's settings table against them. The tables are in
//! `--help`'s order; `before KEY` lists a file key ahead of the one before it, where `config`
//! has always printed them in another order than `--help`.
//!
//! A new setting is an entry here (its default in [`defaults`]) and its use where its
//! validated form is built: `GlobalArgs::sqs` and `GlobalArgs::db` in [`super`] (the
//! keyring's `GlobalArgs::keys` in [`super::keys`]), `RunArgs::pipeline` in
//! `config/pipeline.rs`.

#[macro_use]
mod macros;
#[cfg(test)]
mod names;
#[cfg(test)]
mod readme;

use std::path::PathBuf;

use clap::Args;

pub use macros::{FileEntry, Kind, Setting};

use self::defaults::*;
use crate::cli::args::OutputFormat;
use crate::cli::run_args::ProgressMode;
use crate::config::DbStatements;
use crate::decode::{CreateDateFrom, Envelope};
use crate::telemetry::LogFormat;

/// The defaults the tables name, for the code that needs them outside a parse.
pub mod defaults {
    use crate::config::DbStatements;

    /// `--queue-name`'s default.
    pub const DEFAULT_QUEUE_NAME: &str = "login-queue";
    /// `--database-url`'s default: the local cluster `scripts/services up` starts.
    pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    /// `--db-write-timeout-secs`' default.
    pub const DEFAULT_DB_WRITE_TIMEOUT_SECS: u64 = 30;
    /// `--db-statements`' default: correct behind a transaction-pooling proxy as well as on a
    /// direct connection; `make bench` reports what it costs against `prepared` (the sink row
    /// "--db-statements unnamed (default) vs prepared").
    pub const DEFAULT_DB_STATEMENTS: DbStatements = DbStatements::Unnamed;
    /// `run --pollers`' default.
    pub const DEFAULT_POLLERS: u16 = 8;
    /// `run --writers`' default.
    pub const DEFAULT_WRITERS: u16 = 2;
    /// `run --batch-size`'s default.
    pub const DEFAULT_BATCH_SIZE: u32 = 500;
    /// `run --batch-wait-ms`' default.
    pub const DEFAULT_BATCH_WAIT_MS: u64 = 200;
    /// `run --max-inflight-bytes`' default: 64 MiB of bodies held from receive to delete.
    pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 64 * 1024 * 1024;
    /// `run --max-inflight-bytes`' smallest accepted value (64 KiB).
    pub const MIN_MAX_INFLIGHT_BYTES: u64 = 64 * 1024;
    /// `run --max-inflight-bytes`' largest accepted value (64 GiB).
    pub const MAX_MAX_INFLIGHT_BYTES: u64 = 64 * 1024 * 1024 * 1024;
    /// `run --wait-seconds`' default: SQS's longest long poll.
    pub const DEFAULT_WAIT_SECONDS: i32 = 20;
    /// `run --shutdown-timeout`'s default, in seconds.
    pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;
}

settings! {
    /// Settings shared by every command; each may also come from its environment variable.
    /// Under their own heading in every command's `--help`, after the command's own flags.
    #[derive(Debug, Args)]
    #[command(next_help_heading = "Global options")]
    pub struct GlobalArgs;
    /// The configuration file's top level: the global settings, then the `[run]` table.
    file FileConfig {
        /// The `[run]` table.
        #[serde(default)]
        pub run: FileRunConfig,
        /// Where the file is and what it says.
        #[serde(skip)]
        pub(super) origin: super::file::Origin,
        /// One line for each deprecated key the file uses, naming the key to use instead.
        #[serde(skip)]
        pub(super) warnings: Vec<String>,
    }
    list GLOBAL_SETTINGS;
    {
        /// Queue URL; skips the name lookup.
        #[arg(long, env = "SQS2PG_QUEUE_URL", global = true)]
        pub queue_url: Option<String> => Text,
        /// Queue name, resolved with GetQueueUrl when no URL is given.
        #[arg(long, env = "SQS2PG_QUEUE_NAME", default_value = DEFAULT_QUEUE_NAME, global = true, value_parser = parse_queue_name)]
        pub queue_name: String => Text,
        /// The envelope around each event, one of none, sns, eventbridge, auto. `auto` opens an
        /// SNS notification (keys Type, TopicArn, Message: the event is the Message string) or an
        /// EventBridge event (keys detail-type, source, detail: the event is the detail object)
        /// and takes any other body as the event; `sns` or `eventbridge` expect every body in that
        /// envelope; `none` takes every body as the event. A broken envelope is rejected
        /// `bad_envelope`; the quarantined body is always the whole SQS body.
        #[arg(long, env = "SQS2PG_ENVELOPE", global = true, default_value_t = Envelope::Auto)]
        pub envelope: Envelope => Text,
        /// Where a row's create_date comes from, one of sqs (the SQS SentTimestamp), envelope (an
        /// envelope's own time: SNS Timestamp, EventBridge time; a bare body keeps its
        /// SentTimestamp, an envelope without a readable time is rejected `bad_envelope`).
        #[arg(long, env = "SQS2PG_CREATE_DATE_FROM", global = true, default_value_t = CreateDateFrom::Sqs)]
        pub create_date_from: CreateDateFrom => Text,
        /// Postgres connection string.
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = DEFAULT_DATABASE_URL,
            global = true,
            hide_env_values = true
        )]
        pub database_url: String => Url,
        /// PEM bundle that signs the database's certificate (e.g. RDS's global-bundle.pem);
        /// without it, the system's roots.
        #[arg(long, env = "SQS2PG_DB_CA_FILE", global = true)]
        pub db_ca_file: Option<PathBuf> => Text,
        /// How long one batch's transaction (BEGIN to COMMIT) may take before the connection is
        /// taken for dead (a half-open TCP path, a COMMIT waiting on a lost synchronous standby):
        /// readiness turns 503, the backend is terminated and the batch retried on a fresh
        /// connection. Connect and keepalive bounds are libpq parameters of DATABASE_URL
        /// (`connect_timeout`, `keepalives_idle`, `tcp_user_timeout`); see docs/DEPLOYMENT.md.
        #[arg(long, env = "SQS2PG_DB_WRITE_TIMEOUT_SECS", global = true,
              default_value_t = DEFAULT_DB_WRITE_TIMEOUT_SECS,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        pub db_write_timeout_secs: u64 => Integer,
        /// How writers send their statements: `unnamed` (each use parsed in its own transaction;
        /// works behind PgBouncer's transaction pooling and other poolers like it) or `prepared`
        /// (once per connection; fewer round trips per batch, only on a direct or session-pooled
        /// connection). See docs/DEPLOYMENT.md.
        #[arg(long, env = "SQS2PG_DB_STATEMENTS", global = true, value_enum,
              default_value_t = DEFAULT_DB_STATEMENTS)]
        pub db_statements: DbStatements => Text,
        /// File holding the keyring (`kid=BASE64KEY` lines; first entry writes). Without it,
        /// the keyring is read from SQS2PG_KEYS.
        #[arg(long, env = "SQS2PG_KEYS_FILE", global = true)]
        pub keys_file: Option<PathBuf> => Text,
        /// Serve Prometheus /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9898).
        #[arg(long, env = "SQS2PG_METRICS_ADDR", global = true)]
        pub metrics_addr: Option<std::net::SocketAddr> => Text,
        /// Mapping file: which events go to which tables and columns (`sqs2pg mapping print`
        /// shows the format, as the built-in login mapping). Without it, the built-in login
        /// load. Read by `run`, `mapping check`, `reveal` (its token contexts are tried) and
        /// the Lambda function.
        #[arg(long, env = "SQS2PG_MAPPING", global = true, value_name = "FILE")]
        pub mapping: Option<PathBuf>,
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
        pub log_format: LogFormat => Text before metrics_addr,
        /// How `run`, `check`, `rejects list`, `migrate` and `config` print their result on
        /// stdout: text, or one JSON object with every field present (logs stay on stderr).
        #[arg(
            long,
            env = "SQS2PG_OUTPUT",
            value_enum,
            default_value = "text",
            global = true
        )]
        pub output: OutputFormat,
    }
}

settings! {
    /// Flags of `run` (and of `config`, which shows what `run` would use).
    #[derive(Debug, Args)]
    pub struct RunArgs;
    /// The `[run]` table: the settings of `sqs2pg run`.
    file FileRunConfig {
        /// `shutdown_timeout`'s old key, read with a warning (see [`DEPRECATED_FILE_KEYS`]).
        #[serde(default)]
        pub(crate) shutdown_timeout_secs: Option<toml::Spanned<u64>>,
    }
    list RUN_SETTINGS;
    {
        /// Stop once the queue is empty, print a summary, exit 0. Empty means: every poller's
        /// latest receive came back empty, every message received is deleted (or given up), and
        /// the queue reports 0 visible and 0 in flight (ApproximateNumberOfMessages +
        /// ApproximateNumberOfMessagesNotVisible). Messages in flight elsewhere are waited for,
        /// up to the queue's visibility timeout + 5 s (at most 5 min) with none received. Receives
        /// wait at most 1 s, so the run ends about a second after its last commit.
        #[arg(long)]
        pub until_empty: bool,
        /// Concurrent long-polling receivers.
        #[arg(long, env = "SQS2PG_POLLERS", default_value_t = DEFAULT_POLLERS, value_parser = clap::value_parser!(u16).range(1..=256))]
        pub pollers: u16 => Integer,
        /// Concurrent database writers (one connection each).
        #[arg(long, env = "SQS2PG_WRITERS", default_value_t = DEFAULT_WRITERS, value_parser = clap::value_parser!(u16).range(1..=64))]
        pub writers: u16 => Integer,
        /// Most messages per transaction.
        #[arg(long, env = "SQS2PG_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        pub batch_size: u32 => Integer,
        /// Longest a partial batch waits for more messages, in milliseconds.
        #[arg(long, env = "SQS2PG_BATCH_WAIT_MS", default_value_t = DEFAULT_BATCH_WAIT_MS, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        pub batch_wait_ms: u64 => Integer,
        /// Most message-body bytes held from receive to delete: receiving pauses while more are
        /// held (a body larger than this goes through alone), and a batch closes at an eighth
        /// of it. Size the memory limit from it (docs/DEPLOYMENT.md).
        #[arg(long, env = "SQS2PG_MAX_INFLIGHT_BYTES", default_value_t = DEFAULT_MAX_INFLIGHT_BYTES,
              value_parser = clap::value_parser!(u64).range(MIN_MAX_INFLIGHT_BYTES..=MAX_MAX_INFLIGHT_BYTES))]
        pub max_inflight_bytes: u64 => Integer,
        /// Long-poll wait per receive, in seconds (0-20); a --until-empty run waits at most 1.
        #[arg(long, env = "SQS2PG_WAIT_SECONDS", default_value_t = DEFAULT_WAIT_SECONDS, value_parser = clap::value_parser!(i32).range(0..=20))]
        pub wait_seconds: i32 => Integer,
        /// After SIGINT/SIGTERM, seconds in-flight work may take to commit before it is released
        /// to other consumers (visibility 0); then the process exits 0.
        #[arg(long, env = "SQS2PG_SHUTDOWN_TIMEOUT", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
        pub shutdown_timeout: u64 => Integer,
        /// Progress display: a bar on a terminal (auto), always a bar, or log lines only.
        #[arg(long, value_enum, default_value = "auto")]
        pub progress: ProgressMode,
    }
}

/// Old spellings still read, each with a one-line warning naming its new key: `(table, old
/// key, new key)`, the table `""` for the top level. Every other setting has one spelling,
/// derived from its key (`names.rs` checks): flag `--KEY` with `-` for `_`, variable
/// `SQS2PG_KEY` in capitals.
pub const DEPRECATED_FILE_KEYS: &[(&str, &str, &str)] =
    &[("run", "shutdown_timeout_secs", "shutdown_timeout")];

impl Setting {
    /// The setting of either table whose TOML key is `key`.
    pub fn named(key: &str) -> Option<Self> {
        GLOBAL_SETTINGS
            .iter()
            .chain(RUN_SETTINGS)
            .find(|s| s.key == key)
            .copied()
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
