//! The command line as clap sees it: every flag and variable, documented once here (this is
//! what `--help` and the man page show), then turned into [`crate::config`] types by the
//! methods at the end.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::keys::KeySource;
use crate::config::{self, ConfigError, DbConfig, SqsConfig};
use crate::decode::{CreateDateFrom, Envelope, Framing};
use crate::mask::Column;
use crate::telemetry::LogFormat;

pub use super::output::OutputFormat;
pub use super::run_args::{ProgressMode, RunArgs, SendArgs};

const EXAMPLES: &str = "\
Examples:
  eval \"$(scripts/services env)\"          # point at local LocalStack + Postgres
  sqs2pg keygen --kid k1 --out keys               # a new file, mode 600
  sqs2pg migrate
  sqs2pg send --synthetic 1000 --malformed-rate 0.01
  sqs2pg run --keys-file keys --until-empty
  psql \"$DATABASE_URL\" -Atc 'select masked_ip from user_logins limit 3' | sqs2pg reveal --keys-file keys --column ip --reason 'TICKET-123'";

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
    /// What `config` prints: each setting's value and origin, recorded while parsing.
    #[arg(skip)]
    pub(crate) effective: super::config::Effective,
}

/// Settings shared by every command; each may also come from its environment variable.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Queue URL; skips the name lookup.
    #[arg(long, env = "SQS2PG_QUEUE_URL", global = true)]
    pub queue_url: Option<String>,
    /// Queue name, resolved with GetQueueUrl when no URL is given.
    #[arg(long, env = "SQS2PG_QUEUE_NAME", default_value = config::DEFAULT_QUEUE_NAME, global = true, value_parser = parse_queue_name)]
    pub queue_name: String,
    /// The envelope around each event, one of none, sns, eventbridge, auto. `auto` opens an
    /// SNS notification (keys Type, TopicArn, Message: the event is the Message string) or an
    /// EventBridge event (keys detail-type, source, detail: the event is the detail object)
    /// and takes any other body as the event; `sns` or `eventbridge` expect every body in that
    /// envelope; `none` takes every body as the event. A broken envelope is rejected
    /// `bad_envelope`; the quarantined body is always the whole SQS body.
    #[arg(long, env = "SQS2PG_ENVELOPE", global = true, default_value_t = Envelope::Auto)]
    pub envelope: Envelope,
    /// Where a row's create_date comes from, one of sqs (the SQS SentTimestamp), envelope (an
    /// envelope's own time: SNS Timestamp, EventBridge time; a bare body keeps its
    /// SentTimestamp, an envelope without a readable time is rejected `bad_envelope`).
    #[arg(long, env = "SQS2PG_CREATE_DATE_FROM", global = true, default_value_t = CreateDateFrom::Sqs)]
    pub create_date_from: CreateDateFrom,
    /// Postgres connection string.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = config::DEFAULT_DATABASE_URL,
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    /// PEM bundle that signs the database's certificate (e.g. RDS's global-bundle.pem);
    /// without it, the system's roots.
    #[arg(long, env = "SQS2PG_DB_CA_FILE", global = true)]
    pub db_ca_file: Option<PathBuf>,
    /// How long one batch's transaction (BEGIN to COMMIT) may take before the connection is
    /// taken for dead (a half-open TCP path, a COMMIT waiting on a lost synchronous standby):
    /// readiness turns 503, the backend is terminated and the batch retried on a fresh
    /// connection. Connect and keepalive bounds are libpq parameters of DATABASE_URL
    /// (`connect_timeout`, `keepalives_idle`, `tcp_user_timeout`); see docs/DEPLOYMENT.md.
    #[arg(long, env = "SQS2PG_DB_WRITE_TIMEOUT_SECS", global = true,
          default_value_t = config::DEFAULT_DB_WRITE_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub db_write_timeout_secs: u64,
    /// How writers send their statements: `unnamed` (each use parsed in its own transaction;
    /// works behind PgBouncer's transaction pooling and other poolers like it) or `prepared`
    /// (once per connection; fewer round trips per batch, only on a direct or session-pooled
    /// connection). See docs/DEPLOYMENT.md.
    #[arg(long, env = "SQS2PG_DB_STATEMENTS", global = true, value_enum,
          default_value_t = config::DEFAULT_DB_STATEMENTS)]
    pub db_statements: config::DbStatements,
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
    /// How `run`, `rejects list` and `migrate` print their result on stdout: text, or one
    /// JSON object with every field present (logs stay on stderr).
    #[arg(
        long,
        env = "SQS2PG_OUTPUT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub output: OutputFormat,
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
        after_help = "Examples:\n  sqs2pg send --file events.json\n  sqs2pg send --file events.jsonl\n  sqs2pg send --synthetic 20000 --malformed-rate 0.01 --duplicate-rate 0.05 --seed 7"
    )]
    Send(SendArgs),
    /// Make a new keyring entry `ID=BASE64` (64 random bytes): printed, or with --out written
    /// to a new file of mode 600. Keep it secret.
    ///
    /// With --kms-key-id, KMS makes the key (GenerateDataKeyWithoutPlaintext) and the entry is
    /// `ID=kms:BASE64BLOB`: the key wrapped by that KMS key, unwrapped by sqs2pg at start-up.
    #[command(
        after_help = "Examples:\n  sqs2pg keygen --kid k1 --out keys                          # a new file, mode 600\n  sqs2pg keygen --kid k2 --kms-key-id alias/sqs2pg --out k2  # KMS-wrapped: k2=kms:...\n  sqs2pg keygen --kid k3 --out keys.new && cat keys >> keys.new && mv keys.new keys  # a new writing key first"
    )]
    Keygen {
        /// Key id written into every token (1-32 of [A-Za-z0-9_-]).
        #[arg(long, default_value = "k1")]
        kid: String,
        /// Wrap the new key with this KMS key (id, ARN or alias/NAME).
        #[arg(long)]
        kms_key_id: Option<String>,
        /// Write the entry to this new file (mode 600, from its creation) instead of stdout.
        /// An existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Read tokens on stdin, one a line; write the originals on stdout, one a line.
    ///
    /// Audited: before anything is printed, a row goes to sqs2pg_reveal_audit with the
    /// database user, OS user, host, --reason, how many values and the SHA-256 of each token
    /// (of the message id with --reject).
    #[command(
        after_help = "Examples:\n  psql \"$DATABASE_URL\" -Atc \"select masked_ip from user_logins where user_id='u1'\" | sqs2pg reveal --column ip --reason 'TICKET-123 fraud review'\n  sqs2pg reveal --reject 5f0c... --reason 'TICKET-124 why rejected'"
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
        /// Print values exactly as stored; by default control characters (escape sequences,
        /// newlines inside a body) are printed escaped, `\u{1b}`, `\n`, so a quarantined
        /// body cannot drive the terminal or break the one-line-per-token output.
        #[arg(long)]
        raw: bool,
    },
    /// Print the tokens of raw values read on stdin, one a line, to find their rows
    /// (audited like reveal, with the fingerprint of each token made).
    #[command(
        after_help = "Examples:\n  sqs2pg mask --column ip --reason 'INC-4711' < ips.txt\n  read -rs ip; printf '%s\\n' \"$ip\" | sqs2pg mask --column ip --reason 'INC-4711'\n(the value is never typed on a command line, so it reaches neither `ps` nor the shell's history)"
    )]
    Mask {
        /// The column whose token to make.
        #[arg(long, value_enum)]
        column: MaskColumn,
        /// Why you look it up (recorded in the audit).
        #[arg(long, value_parser = parse_reason)]
        reason: String,
        /// Refused: a value here would show in `ps` and the shell's history. Kept only to
        /// say so (exit 2) instead of clap's bare "unexpected argument".
        #[arg(hide = true)]
        value: Vec<String>,
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
    /// Print shell completions for SHELL on stdout.
    #[command(
        after_help = "Examples:\n  sqs2pg completions bash > /etc/bash_completion.d/sqs2pg\n  sqs2pg completions zsh > \"${fpath[1]}/_sqs2pg\""
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    #[command(after_help = "Examples:\n  sqs2pg man > sqs2pg.1 && man ./sqs2pg.1")]
    Man,
    /// Re-encrypt every token and rejected body under an older key to the writing key.
    ///
    /// Rotation: put the new key first in the keyring (new tokens are written under it,
    /// older keys stay readable), restart `run`, then run `rekey`. It works in batches while
    /// `run` keeps loading, and is idempotent and safe to interrupt: rerun it and it resumes
    /// where it stopped. Values that are not tokens, or whose key is not in the keyring, are
    /// left as they were and counted (located by ctid, never printed); the summary ends with
    /// what is still under old keys (0 when done).
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
    /// Counts and message ids by reason, most first (never bodies).
    #[command(
        after_help = "Examples:\n  sqs2pg rejects list\n  sqs2pg rejects list --reason bad_app_version --ids 100"
    )]
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
    #[command(
        after_help = "Examples:\n  sqs2pg rejects replay --reason bad_app_version --keys-file keys\n  sqs2pg rejects replay --id 5f0c... --keys-file keys"
    )]
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

impl From<MaskColumn> for Column {
    fn from(c: MaskColumn) -> Self {
        match c {
            MaskColumn::Ip => Column::Ip,
            MaskColumn::DeviceId => Column::DeviceId,
        }
    }
}

fn parse_reason(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("give a reason (e.g. a ticket number); it is recorded in the audit".into())
    } else {
        Ok(s.to_owned())
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
    /// The queue to read or fill.
    pub fn sqs(&self) -> SqsConfig {
        SqsConfig {
            queue_url: self.queue_url.clone(),
            queue_name: self.queue_name.clone(),
            framing: self.framing(),
            endpoint_url: None,
        }
    }

    /// How bodies are read: by `run` (through [`GlobalArgs::sqs`]), `rejects replay` and
    /// the Lambda handler alike.
    pub fn framing(&self) -> Framing {
        Framing {
            envelope: self.envelope,
            create_date_from: self.create_date_from,
        }
    }

    /// The database, checked, with its TLS roots loaded.
    pub fn db(&self) -> Result<DbConfig, ConfigError> {
        Ok(
            DbConfig::new(&self.database_url, self.db_ca_file.as_deref())?
                .with_write_timeout(std::time::Duration::from_secs(self.db_write_timeout_secs))
                .with_statements(self.db_statements),
        )
    }

    /// Where the keyring comes from; nothing is read yet.
    pub fn keys(&self) -> KeySource {
        KeySource::choose(self.keys_file.as_deref())
    }
}

/// The Lambda function's settings: the global settings, from its environment only.
#[derive(Debug, Parser)]
#[command(name = "sqs2pg-lambda")]
pub struct LambdaArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}
