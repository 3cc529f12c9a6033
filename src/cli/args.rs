//! The command line as clap sees it: the commands and their own flags, documented once here
//! (this is what `--help` and the man page show). The settings shared by every command and
//! those of `run` are defined in [`crate::config::settings`].

use clap::{Parser, Subcommand};

use crate::mask::{Column, Context};

pub use super::output::OutputFormat;
pub use super::run_args::{ProgressMode, SendArgs};
pub use crate::config::settings::{GlobalArgs, RunArgs};

pub(super) const EXAMPLES: &str = "Examples:\n  sqs2pg keygen --kid k1 --out keys               # a new file, mode 600\n  sqs2pg migrate\n  sqs2pg check --keys-file keys\n  sqs2pg send --synthetic 1000 --malformed-rate 0.01\n  sqs2pg run --keys-file keys --until-empty\n  psql \"$DATABASE_URL\" -Atc \\\n    'select masked_ip from user_logins where masked_ip is not null limit 3' \\\n    | sqs2pg reveal --keys-file keys --column ip --reason 'TICKET-123'\n(against the local LocalStack and Postgres: `eval \"$(scripts/services env)\"` in a clone)";

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
    /// What parsing warns about (a deprecated key in the config file), logged once logging
    /// is set up.
    #[arg(skip)]
    pub(crate) warnings: Vec<String>,
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
    /// Check everything `run` needs without running it, one ✓/⚠/✗ line a check with the fix.
    ///
    /// The keyring (loads, file mode and owner, writing key), the database (reachable, tables,
    /// the grants run uses, a user_logins it can fill), the AWS region, endpoint and
    /// credential source, and the queue (exists, visibility timeout, redrive policy and
    /// dead-letter queue, message size).
    ///
    /// One line a check, ✓ ok, ⚠ worth changing, ✗ failed, with the fix under it. Every
    /// check runs, but those that need one that failed (no tables without a connection, no
    /// queue attributes without the queue). Exit 0 when none failed (warnings allowed), 2
    /// when a setting failed (a table, the queue, credentials, the key file), 1 when only
    /// something did not answer. With --output json, one object:
    /// {"checks": [{"name": "keyring", "status": "ok" | "warn" | "fail", "detail": "...",
    /// "fix": "..." or null}, ...], "ok": true when none failed}.
    #[command(
        after_help = "Examples:\n  sqs2pg check --keys-file keys\n  sqs2pg check --keys-file keys --output json"
    )]
    Check,
    /// Consume the queue into Postgres until SIGINT/SIGTERM, or with --until-empty until
    /// the queue is drained.
    #[command(
        after_help = "Examples:\n  sqs2pg run --keys-file keys --until-empty                # drain and print a summary\n  sqs2pg run --keys-file keys --metrics-addr 0.0.0.0:9898  # daemon: /metrics, /healthz, /readyz\n  SQS2PG_POLLERS=16 SQS2PG_WRITERS=4 sqs2pg run --keys-file keys --until-empty  # more throughput"
    )]
    Run(RunArgs),
    /// Send message bodies to the queue: from a file (JSON array or JSONL, verbatim) or
    /// synthetic login events.
    #[command(
        after_help = "Examples:\n  sqs2pg send --file events.json      # a JSON array, one message an element\n  sqs2pg send --file events.jsonl     # one message a line\n  sqs2pg send --synthetic 2000 --malformed-rate 0.01 --duplicate-rate 0.05 --seed 7"
    )]
    Send(SendArgs),
    /// Make a new keyring entry `ID=BASE64` (64 random bytes): printed, or with --out written
    /// to a new file of mode 600. Keep it secret.
    ///
    /// With --kms-key-id, KMS makes the key (GenerateDataKeyWithoutPlaintext) and the entry is
    /// `ID=kms:BASE64BLOB`: the key wrapped by that KMS key, unwrapped by sqs2pg at start-up.
    #[command(
        after_help = "Examples:\n  sqs2pg keygen --kid k1 --out keys                          # a new file, mode 600\n  sqs2pg keygen --kid k2 --kms-key-id alias/sqs2pg --out k2  # KMS-wrapped: k2=kms:...\n  sqs2pg keygen --kid k3 --out keys.new && cat keys >> keys.new && mv keys.new keys  # k3 writes"
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
        after_help = "Examples:\n  psql \"$DATABASE_URL\" -Atc \\\n    'select masked_ip from user_logins where masked_ip is not null limit 3' \\\n    | sqs2pg reveal --keys-file keys --column ip --reason 'TICKET-123 fraud review'\n  sqs2pg reveal --keys-file keys --reason 'TICKET-124 why rejected' \\\n    --reject \"$(psql \"$DATABASE_URL\" -Atc 'select message_id from user_logins_rejects limit 1')\"\n  sqs2pg mask --keys-file keys --column email --reason 'DSAR-12' < emails.txt \\\n    | sqs2pg reveal --keys-file keys --column email --reason 'DSAR-12 check'  # any context"
    )]
    Reveal {
        /// The column the tokens come from: ip, device_id, body, or a mapping's token context
        /// (`token = "email"`: its tokens open to text). Without it ip, device_id and body are
        /// tried, then the token contexts of --mapping.
        #[arg(long, value_name = "CONTEXT", value_parser = parse_context, conflicts_with = "reject")]
        column: Option<Context>,
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
    ///
    /// A value is never given on the command line, where `ps` and the shell's history would
    /// keep it: from a file, or typed unechoed with `read -rs ip; printf '%s\n' "$ip" |
    /// sqs2pg mask --column ip --reason '...'`.
    #[command(
        after_help = "Examples:\n  sqs2pg mask --keys-file keys --column ip --reason 'INC-4711' < ips.txt\n  sqs2pg mask --keys-file keys --column email --reason 'DSAR-12' < emails.txt  # token = \"email\""
    )]
    Mask {
        /// The column whose token to make: ip (any spelling of an address gives its one
        /// token), device_id, or a mapping's token context (`token = "email"`: the text's).
        #[arg(long, value_name = "CONTEXT", value_parser = parse_mask_context)]
        column: Context,
        /// Why you look it up (recorded in the audit).
        #[arg(long, value_parser = parse_reason)]
        reason: String,
        /// Refused: a value here would show in `ps` and the shell's history. Kept only to
        /// say so (exit 2) instead of clap's bare "unexpected argument".
        #[arg(hide = true)]
        value: Vec<String>,
    },
    /// Erase one data subject: every route's rows whose `subject` column holds the value (a
    /// token column: any of its tokens, under every key of the keyring) and the subject's
    /// quarantined bodies, in one transaction with an audit row; prints counts per table,
    /// never values. Idempotent.
    ///
    /// `--subject -` reads the value from stdin, so it need not sit in argv or the shell's
    /// history. With --output json: `{"tables": {TABLE: N}, "unreadable": N, "dry_run": B}`.
    #[command(
        after_help = "Examples:\n  sqs2pg forget --keys-file keys --subject 424cdd21-063a-43a7-b91b-7ca1a833afae \\\n    --reason 'GDPR-88' --dry-run\n  echo 424cdd21-063a-43a7-b91b-7ca1a833afae \\\n    | sqs2pg forget --keys-file keys --subject - --reason 'GDPR-88'"
    )]
    Forget {
        /// The subject's value as the events carry it (`-`: read one line from stdin).
        #[arg(long, value_name = "VALUE")]
        subject: String,
        /// Why (recorded in the audit).
        #[arg(long, value_parser = parse_reason)]
        reason: String,
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Inspect and replay quarantined messages (user_logins_rejects).
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  sqs2pg rejects list\n  sqs2pg rejects list --reason bad_app_version --ids 100\n  sqs2pg rejects replay --keys-file keys --reason bad_app_version"
    )]
    Rejects(RejectsCommand),
    /// Print or check a mapping: which events go to which tables and columns.
    #[command(
        subcommand,
        after_help = "Examples:\n  sqs2pg mapping print > my-mapping.toml   # the built-in login mapping: a start\n  sqs2pg mapping check --mapping my-mapping.toml"
    )]
    Mapping(MappingCommand),
    /// Print the effective configuration (flags > environment > config file > defaults),
    /// secrets redacted.
    ///
    /// As TOML that --config reads back, each value followed by where it came from; with
    /// --output json, one object: {"config_file": PATH or null, "keyring": {"source": "...",
    /// "key_ids": [...]}, "settings": {"KEY": {"value": ..., "source": "default" | "file" |
    /// "env" | "flag", "from": the file, variable or flag, or null}, ..., "run": {...}}}, each
    /// KEY as the file spells it and every one present (value null when unset).
    #[command(
        after_help = "Examples:\n  sqs2pg config\n  sqs2pg config > sqs2pg.toml && sqs2pg --config sqs2pg.toml config   # read back\n  sqs2pg config --output json"
    )]
    Config(RunArgs),
    /// Print shell completions for SHELL on stdout.
    #[command(
        after_help = "Examples:\n  sqs2pg completions bash > sqs2pg.bash   # then into /etc/bash_completion.d/sqs2pg\n  sqs2pg completions zsh > _sqs2pg        # then into a directory of $fpath"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page sqs2pg(1) on stdout, or with --dir write every page into DIR.
    ///
    /// The pages are roff: sqs2pg(1), and one a command (sqs2pg-run(1),
    /// sqs2pg-rejects-list(1), …), which sqs2pg(1) refers to.
    #[command(
        after_help = "Examples:\n  sqs2pg man > sqs2pg.1                          # then: man -l sqs2pg.1\n  sqs2pg man --dir man && ls man/sqs2pg-run.1   # every page (e.g. into /usr/local/share/man/man1)"
    )]
    Man {
        /// Write every page into this directory (made if missing) instead of printing
        /// sqs2pg(1).
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
    /// Re-encrypt every token and rejected body under an older key to the writing key.
    ///
    /// Rotation: put the new key first in the keyring (new tokens are written under it,
    /// older keys stay readable), restart `run`, then run `rekey`. It works in batches while
    /// `run` keeps loading, and is idempotent and safe to interrupt: rerun it and it resumes
    /// where it stopped. With --mapping it walks every token column of the mapping's routes,
    /// each under its context, and the rejects' subject tokens. Values that are not tokens, or whose key is not in the keyring, are
    /// left as they were and counted (located by ctid, never printed); the summary ends with
    /// what is still under old keys (0 when done).
    /// Between the two steps, equal values under different key ids have DIFFERENT tokens, so
    /// duplicates across old and new rows are not identifiable until rekey has finished.
    #[command(
        after_help = "Examples:\n  sqs2pg keygen --kid k2 --out keys.new && cat keys >> keys.new && mv keys.new keys  # k2 writes\n  sqs2pg rekey --keys-file keys --batch-size 5000\n  sqs2pg mapping print > login.toml && sqs2pg rekey --keys-file keys --mapping login.toml"
    )]
    Rekey {
        /// Rows per transaction.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch_size: i64,
    },
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
        after_help = "Examples:\n  sqs2pg rejects replay --reason bad_app_version --keys-file keys\n  sqs2pg rejects replay --keys-file keys \\\n    --id \"$(psql \"$DATABASE_URL\" -Atc 'select message_id from user_logins_rejects limit 1')\""
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

/// `sqs2pg mapping ...`
#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Print the built-in login mapping, in the mapping file's format: a starting point for
    /// a file of your own.
    #[command(after_help = "Examples:\n  sqs2pg mapping print > my-mapping.toml")]
    Print,
    /// Compile the mapping (--mapping, else the built-in login mapping) against the live
    /// database and print, per route, its table and how each column is filled; exit 2 naming
    /// the file line, route and column of anything that cannot work.
    #[command(
        after_help = "Examples:\n  sqs2pg mapping check                       # the built-in login mapping\n  sqs2pg mapping print > my-mapping.toml\n  sqs2pg mapping check --mapping my-mapping.toml --sample events.jsonl --keys-file keys"
    )]
    Check {
        /// Also run these bodies (a JSON array, or JSONL: one body a line) through the
        /// compiled mapping, opening envelopes as --envelope says, and print per body its
        /// route and row (tokens as tokens; without a keyring, under a throwaway key) or
        /// its reject reason. SentTimestamp is now; message ids are `sample-N`.
        #[arg(long, value_name = "FILE")]
        sample: Option<std::path::PathBuf>,
    },
}

/// What `reveal --column` takes: `ip`, `device_id` (or `device-id`), `body`, or a mapping's
/// token context, named as the mapping file names one (`token = "..."`).
fn parse_context(s: &str) -> Result<Context, String> {
    let name = if s == "device-id" { "device_id" } else { s };
    match Context::named(name) {
        Context::Text(t) if !crate::mapping::file::is_label(&t) => Err(
            "use ip, device_id, body or a mapping's token context (1-63 of [a-z0-9_], \
             starting with a letter, e.g. email)"
                .into(),
        ),
        context => Ok(context),
    }
}

/// What `mask --column` takes: what `reveal` does but `body` (bodies are sealed, not looked
/// up; `reveal --reject` opens them).
fn parse_mask_context(s: &str) -> Result<Context, String> {
    match parse_context(s)? {
        Context::Column(Column::Body) => Err(
            "use ip, device_id or a mapping's token context (e.g. email): quarantined bodies are \
             opened by `reveal --reject`, not looked up"
                .into(),
        ),
        context => Ok(context),
    }
}

fn parse_reason(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("give a reason (e.g. a ticket number); it is recorded in the audit".into())
    } else {
        Ok(s.to_owned())
    }
}

/// The Lambda function's settings: the global settings, from its environment only.
#[derive(Debug, Parser)]
#[command(name = "sqs2pg-lambda")]
pub struct LambdaArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}
