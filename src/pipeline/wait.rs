//! Waiting out an outage at start: the database and SQS each get a few tries in a drain run
//! and every try until shutdown in a daemon, so a network blip at boot does not leave a
//! service down (a service manager does not restart an exit it was told means "fix the
//! setting"). Failures that are settings (a missing queue or table, a refused login or IAM
//! call, no credentials) fail at once, whatever the mode.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{DbConfig, SqsConfig};
use crate::db::DbError;
use crate::source::{QueueLimits, Source, SourceError};
use crate::telemetry::Stats;

/// The pauses between tries: the same for both sides, capped so a daemon notices a
/// recovered service within seconds.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(500), Duration::from_secs(10))
}

/// Sleeps `pause`, or less if `shutdown` comes first.
async fn pause_unless_stopped(pause: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(pause) => {}
    }
}

/// Connects, waiting for a database that is not reachable yet: up to `attempts` tries, or
/// until `shutdown`. A missing table or a refused login fails at once.
pub(super) async fn for_db(
    db: &DbConfig,
    attempts: u32,
    shutdown: &CancellationToken,
) -> Result<tokio_postgres::Client, DbError> {
    let mut backoff = backoff();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match crate::db::connect(db).await {
            Err(e) if e.is_transient() && attempt < attempts && !shutdown.is_cancelled() => {
                tracing::warn!(error = %e, attempt, "database not reachable yet; retrying");
                pause_unless_stopped(backoff.next_pause(), shutdown).await;
            }
            other => return other,
        }
    }
}

/// Resolves the queue and reads its limits (the first calls a run makes), waiting for an
/// SQS that does not answer yet: up to `attempts` tries, or until `shutdown`. Only
/// [`SourceError::Unreachable`] is retried; the source counts its calls into `stats` and
/// sizes its delete calls for `pollers`.
pub(super) async fn for_sqs(
    sqs: &SqsConfig,
    stats: &Stats,
    pollers: usize,
    attempts: u32,
    shutdown: &CancellationToken,
) -> Result<(Source, QueueLimits), SourceError> {
    let mut backoff = backoff();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tried = async {
            let source = Source::connect(sqs)
                .await?
                .counting_into(stats.sqs_requests())
                .deleting_for(pollers);
            let limits = source.limits().await?;
            Ok((source, limits))
        };
        match tried.await {
            Err(e @ SourceError::Unreachable { .. })
                if attempt < attempts && !shutdown.is_cancelled() =>
            {
                tracing::warn!(error = %e, attempt, "SQS not reachable yet; retrying");
                pause_unless_stopped(backoff.next_pause(), shutdown).await;
            }
            other => return other,
        }
    }
}
