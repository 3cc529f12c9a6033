//! # sqs2pg
//!
//! Streams user-login events from an AWS SQS queue into the Postgres table `user_logins`,
//! pseudonymising `ip` and `device_id` with AES-256-SIV on the way; or, under a mapping file,
//! any JSON events into the tables it names, token columns by context. Nothing is lost (every
//! message that cannot become a row is quarantined in `user_logins_rejects`), nothing is
//! doubled (a ledger of message ids is written in the same transaction as the rows), and a
//! message is deleted from the queue only after its outcome is committed.
//!
//! ## Layout
//!
//! Files follow the data flow. The stages (`source`, `decode`, `mask`, `transform`, `db`)
//! do not know each other beyond the types they hand on; only [`commit`] (a batch's commit),
//! [`pipeline`] (streaming), [`ops`] (the other use cases) and [`lambda`] compose them; the
//! pipeline and the Lambda handler both commit through [`commit`], and the handler imports
//! nothing from [`pipeline`]. [`cli`] builds configuration and calls those; [`telemetry`]
//! only observes [`telemetry::Stats`], and nothing steers by it.
//!
//! | module | concern |
//! |---|---|
//! | [`cli`] | clap types ([`cli::args`]), the config-file layer, text or JSON output (`cli::output`), one file per command |
//! | [`config`] | every setting defined once ([`config::settings`]: flag, variable, default, help, TOML key, how `config` shows it; one spelling each, old ones read with a warning), validated; the TOML layer; keyring loading (one open handle, mode and owner checked); the connection string as libpq reads it (`sslmode`, `sslrootcert`, `PGPASSWORD`, the password file), redacted from its parse; database TLS roots |
//! | [`source`] | SQS: long-poll receive, delete and visibility on one batch-call helper, send, queue attributes; FIFO group, deduplication and receive-attempt ids ([`source::fifo`]); the adaptive limit on delete and visibility calls in flight ([`source::limit`]) |
//! | [`decode`] | pure: the event inside an SNS or EventBridge envelope ([`decode::envelope`]), the framing and the reject reasons; the hand-written login decoder ([`decode::Login`]), now only the tests' oracle ([`transform::reference`]) |
//! | [`mask`] | pure: AES-256-SIV tokens under a context (a login column, or a mapping's token context: [`mask::Context`]); the keyring; KMS-wrapped keys |
//! | [`mapping`] | any event into any table, as a mapping file says: the file and its checks ([`mapping::file`]), route predicates ([`mapping::when`]), a table's live catalog ([`mapping::catalog`]), the compiled plan with one converter per column ([`mapping::compile`]), exact converters ([`mapping::convert`]), one event through the plan ([`mapping::eval`], reading the event once along the pointers the plan names: [`mapping::index`], [`mapping::tree`]; `strict` values read as the login reads them, [`mapping::strict`]; `message_time`, [`mapping::dating`]), the built-in login mapping, which `run` loads `user_logins` by and which gives the golden corpus's outcomes ([`mapping::login`]; compiled without a database for a shape, [`mapping::login_shape`]); the plan with the catalogs it was compiled from, read again when a table changes ([`mapping::live`]) |
//! | [`transform`] | pure: a message through the login mapping → a `user_logins` [`transform::Row`] or a [`transform::Reject`] (`transform::login`); under a mapping file, its route's row, a skip or a reject (`transform::mapped`), as the [`transform::Recipe`] says; panics contained; the hand-written login path it replaced, kept as the tests' oracle ([`transform::reference`]) |
//! | [`db`] | Postgres: connect, the DDL (`db::ddl`), schema and table shape, ledger, encoders, the batch write, a mapping's rows per route ([`db::mapped`]: binary `COPY`, keyed routes staged and merged), rejects, audit, erasure ([`db::forget`]), rekey queries; statements prepared or unnamed for poolers (`db::statement`) |
//! | [`commit`] | committing a batch, composed by the pipeline's writers and the Lambda handler: retries, reconnects, bisection to the refused row ([`commit::Committer`]); the items it commits ([`commit::Item`]); the writers' health that pollers steer by ([`commit::WriteSignal`]) |
//! | [`pipeline`] | `Pipeline::build` / `run_until_stopped`: pollers → batcher → writers → delete; the byte budget ([`pipeline::budget`]); when a drain ends ([`pipeline::drain`]); waiting for the database and SQS at start (`pipeline::wait`); lease; shutdown; health probes |
//! | [`ops`] | replay, rekey, reveal and mask, erasure ([`ops::forget`]), migrate, rejects list, send, keygen; `check`'s checks ([`ops::check`]: the keyring, the database's tables, grants and table shape, the AWS region, endpoint, credential source and queue attributes), each a ✓/⚠/✗ line with its fix |
//! | [`lambda`] | the SQS-event Lambda handler on the same transform and [`commit`] (`sqs2pg-lambda`) |
//! | [`telemetry`] | logs (sqs2pg's own targets alone above `info`) and the panic hook, run counters and summary (as JSON: [`telemetry::summary_json`]), SQS requests by kind ([`telemetry::requests`]), Prometheus text, `/metrics` `/healthz` `/readyz` on a bounded server, progress |
//! | [`error`] | what a failed command prints and its exit code |
//! | [`failpoint`] | where the tests make sqs2pg panic on purpose (feature `failpoints` only) |
//! | [`alloc`] | the binary's global allocator: mimalloc for small blocks, the system's for large ones |
//! | [`aws`] | the AWS SDK configuration, error text and failure classes (no credentials, unreachable, access denied with its IAM action) shared by SQS and KMS; the region a queue URL names |
//! | [`backoff`] | the jittered exponential pause every retry uses |
//! | [`pii`] | [`pii::Pii`], a wrapper whose `Debug`/`Display` redact |
//! | [`synth`] | synthetic login events for demos and load |
//!
//! ## Data flow
//!
//! ```text
//! config ─▶ Pipeline::build (connect, resolve, inspect → TableShape)
//! SQS ─▶ source::receive ─▶ transform (the login mapping, or a mapping file's route) ─▶ batch
//!     ─▶ commit (retry, bisect) ─▶ db::Sink: BEGIN; ledger ids; rows (user_logins, or each
//!        route's table); rejects; COMMIT
//!     ─▶ source::ack delete (only now)
//! ```
//!
//! Every loop that adapts to what it measures along the way (the delete and visibility call
//! limits, the heartbeat's pace, the byte budget's estimate, when a drain ends, the brake on
//! receiving while writes fail, backoff) is listed with its constants in `docs/TUNING.md`.

pub mod alloc;
pub mod aws;
pub mod backoff;
pub mod cli;
pub mod commit;
pub mod config;
pub mod db;
pub mod decode;
pub mod error;
pub mod failpoint;
pub mod lambda;
pub mod mapping;
pub mod mask;
pub mod ops;
pub mod pii;
pub mod pipeline;
pub mod source;
pub mod synth;
pub mod telemetry;
pub mod transform;

#[cfg(test)]
mod tuning_doc;
