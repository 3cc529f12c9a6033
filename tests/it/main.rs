//! Integration tests: one binary, real LocalStack SQS and real Postgres (start them with
//! `scripts/services up`, or run `make test`). Each test gets its own queue and database
//! from [`helpers::TestEnv`].

mod cli;
mod db_faults;
mod e2e;
mod e2e_core;
mod faults;
mod helpers;
mod lambda;
mod ops;
mod partitions;
mod pgbouncer;
mod pii;
mod queue_faults;
mod readme;
mod rekey;
mod reliability;
mod reveal;
mod roles;
mod sink;
mod startup;
