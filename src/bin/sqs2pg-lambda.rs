//! `sqs2pg-lambda`: the SQS-event AWS Lambda handler (build with `--features lambda`).
//!
//! Configuration from the environment: `DATABASE_URL`, and `SQS2PG_KEYS` or
//! `SQS2PG_KEYS_FILE` (KMS-wrapped entries are unwrapped at cold start). Enable
//! `ReportBatchItemFailures` on the event source mapping.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    sqs2pg::telemetry::init_tracing(sqs2pg::telemetry::LogFormat::Json);
    let db_url = std::env::var("DATABASE_URL")
        .map_err(|_| "DATABASE_URL is not set: give the function the Postgres connection string")?;
    let db = sqs2pg::config::DbConfig::parse(&db_url)?;
    let keys_file = std::env::var_os("SQS2PG_KEYS_FILE").map(std::path::PathBuf::from);
    let keyring =
        sqs2pg::config::load_keyring(keys_file.as_deref(), sqs2pg::config::env_keys()).await?;
    let handler = std::sync::Arc::new(sqs2pg::lambda::Handler::new(db, &keyring).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handler = handler.clone();
        async move { Ok::<SqsBatchResponse, Error>(handler.handle(event.payload).await) }
    }))
    .await
}
