//! `sqs2pg-lambda`: the SQS-event AWS Lambda handler (build with `--features lambda`).
//!
//! Configured from the environment through the same settings as `sqs2pg`: `DATABASE_URL`,
//! `SQS2PG_DB_CA_FILE`, `SQS2PG_ENVELOPE`, `SQS2PG_CREATE_DATE_FROM`, and `SQS2PG_KEYS` or
//! `SQS2PG_KEYS_FILE` (KMS-wrapped entries are unwrapped at cold start). Enable `ReportBatchItemFailures` on the event source mapping.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use clap::Parser;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use sqs2pg::error::Failure;

// The daemon's allocator: glibc's malloc was among the top entries of the function's profile.
#[global_allocator]
static ALLOC: sqs2pg::alloc::Split = sqs2pg::alloc::Split;

/// One thread: Lambda hands an instance one invocation at a time, and on the multi-thread
/// runtime each await moved the work to another worker, so about half of the function's CPU
/// was the kernel switching threads (BENCHMARKS.md, "The Lambda function"). The daemon, which
/// runs many pollers and writers at once, keeps its multi-thread runtime.
fn main() -> Result<(), Error> {
    ALLOC.tune();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Error> {
    sqs2pg::telemetry::install_panic_hook();
    sqs2pg::telemetry::init_tracing(sqs2pg::telemetry::LogFormat::Json);
    // The local default would point a function at 127.0.0.1: demand the real one.
    if std::env::var_os("DATABASE_URL").is_none() {
        return Err(
            "DATABASE_URL is not set: give the function the Postgres connection string".into(),
        );
    }
    // No arguments: every setting comes from the function's environment.
    let settings = sqs2pg::cli::args::LambdaArgs::try_parse_from(["sqs2pg-lambda"])?;
    // The same one-line messages as the binary's, not their Debug form.
    let say = |e: Failure| e.to_string();
    let db = settings.global.db().map_err(|e| say(e.into()))?;
    let keyring = settings
        .global
        .keys()
        .load()
        .await
        .map_err(|e| say(e.into()))?;
    let mapping = settings.global.load_mapping().map_err(|e| say(e.into()))?;
    let handler = match mapping {
        None => sqs2pg::lambda::Handler::new(db, &keyring)
            .await
            .map_err(|e| say(e.into()))?,
        Some(mapping) => sqs2pg::lambda::Handler::mapped(db, &keyring, mapping)
            .await
            .map_err(|e| say(e.into()))?,
    }
    .framed(settings.global.framing());
    let handler = std::sync::Arc::new(handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handler = handler.clone();
        let deadline = event.context.deadline();
        async move {
            Ok::<SqsBatchResponse, Error>(handler.handle_until(event.payload, deadline).await)
        }
    }))
    .await
}
