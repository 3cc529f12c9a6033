//! Integration tests: one binary, real LocalStack SQS and real Postgres (start them with
//! `scripts/services up`, or run `make test`). Each test gets its own queue and database
//! from [`helpers::TestEnv`]. [`golden`] needs neither: it checks today's login transform
//! against `tests/golden/login-transform.jsonl`, which the mapping rewrite must reproduce.

/// The pipelines these tests build in-process run on the binary's allocator, large bodies
/// and all (untuned: `Split::tune` wants to run before any thread, and only memory, not
/// correctness, depends on it).
#[global_allocator]
static ALLOC: sqs2pg::alloc::Split = sqs2pg::alloc::Split;

mod audit;
mod big_messages;
mod check;
mod claims;
mod cli;
mod config_file;
mod db_faults;
mod drain;
mod e2e;
mod e2e_core;
mod envelopes;
mod faults;
mod fifo;
mod foreign_events;
mod forget;
mod golden;
mod grafana;
mod health_limits;
mod help_examples;
mod helpers;
mod lambda;
mod lambda_runtime;
mod libpq;
mod login_mapping;
mod manifests;
mod mapped_run;
mod mapping;
mod ops;
mod output;
#[cfg(feature = "failpoints")]
mod panics;
mod partitions;
mod pgbouncer;
mod pii;
mod pii_logs;
mod prometheus;
mod quarantine;
mod queue_faults;
mod readme;
mod region;
mod rekey;
mod rekey_mapped;
mod rekey_partitions;
mod reliability;
mod reveal;
mod reveal_contexts;
mod roles;
mod round_trips;
mod sink;
mod startup;
