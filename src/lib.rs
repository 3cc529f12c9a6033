//! # sqs2pg
//!
//! Streams user-login events from an AWS SQS queue into the Postgres table `user_logins`,
//! pseudonymising `ip` and `device_id` with AES-256-SIV on the way. Nothing is lost (every
//! message that cannot become a row is quarantined in `user_logins_rejects`), nothing is
//! doubled (a ledger of message ids is written in the same transaction as the rows), and a
//! message is deleted from the queue only after its outcome is committed.
//!
//! ## Layout
//!
//! One module per stage; only [`pipeline`] composes them.
//!
//! | module | concern |
//! |---|---|
//! | [`cli`] | flags and environment (clap), one function per command |
//! | [`config`] | validated settings; secrets in `secrecy` types |
//! | [`source`] | SQS: long-poll receive, batched delete, send, queue depth |
//! | [`decode`] | pure: body bytes → [`decode::Login`] or a reject reason |
//! | [`mask`] | pure: AES-256-SIV tokens, keyring, reveal |
//! | [`kms`] | KMS envelope keys: unwrap at start-up, `keygen --kms-key-id` |
//! | [`sink`] | Postgres: migrate, inspect the live table, one transaction per batch |
//! | [`audit`] | the reveal audit: who unmasked what, why, how many |
//! | [`rekey`] | re-encrypt old-key tokens to the writing key, online |
//! | [`pipeline`] | pollers → transform → batcher → writers → delete; shutdown |
//! | [`lambda`] | the SQS-event Lambda handler on the same core (`sqs2pg-lambda`) |
//! | [`telemetry`] | logs, run counters, progress, summary |
//! | [`pii`] | [`pii::Pii`], a wrapper whose `Debug`/`Display` redact |
//! | [`synth`] | synthetic login events for demos and load |
//!
//! ## Data flow
//!
//! ```text
//! SQS ─▶ source::receive ─▶ decode::decode ─▶ mask (ip, device_id) ─▶ batch
//!     ─▶ sink::write: BEGIN; ledger ids; user_logins rows; rejects; COMMIT
//!     ─▶ source::delete (only now)
//! ```

pub mod audit;
pub mod cli;
pub mod config;
pub mod decode;
pub mod kms;
pub mod lambda;
pub mod mask;
pub mod pii;
pub mod pipeline;
pub mod rekey;
pub mod sink;
pub mod source;
pub mod synth;
pub mod telemetry;
