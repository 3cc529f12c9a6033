//! `sqs2pg run`: the consumer, until SIGINT/SIGTERM or, draining, until the queue is empty.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::args::{GlobalArgs, OutputFormat, RunArgs};
use super::output::print_json;
use crate::config::RunConfig;
use crate::error::Failure;
use crate::pipeline::Pipeline;
use crate::telemetry::Stats;

pub(super) async fn run(g: &GlobalArgs, args: &RunArgs) -> Result<(), Failure> {
    let cfg = RunConfig {
        sqs: g.sqs(),
        db: g.db()?,
        keyring: g.keys().load().await?,
        pipeline: args.pipeline(g.metrics_addr),
        mapping: g.load_mapping()?,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let pipeline = Pipeline::build(cfg, Arc::new(Stats::default()), &shutdown).await?;
    let summary = pipeline.run_until_stopped(shutdown).await?;
    match g.output {
        OutputFormat::Text => println!("{summary}"),
        OutputFormat::Json => print_json(&summary.to_json())?,
    }
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
