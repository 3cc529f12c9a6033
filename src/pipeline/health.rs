//! The probes behind `/readyz` and `sqs2pg_queue_backlog`: every two seconds, one query on
//! a connection of its own and one queue-attributes call. Only runs when metrics are served.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::DbConfig;
use crate::source::Source;
use crate::telemetry::Stats;

/// Probes until `finished`.
pub async fn monitor(source: Source, db: DbConfig, finished: CancellationToken, stats: Arc<Stats>) {
    let mut client: Option<tokio_postgres::Client> = None;
    loop {
        crate::failpoint::hit(crate::failpoint::HEALTH);
        let probe = async {
            stats.set_db_ok(probe_db(&db, &mut client).await);
            match source.depth().await {
                Ok(d) => {
                    stats.set_backlog(d.visible);
                    stats.set_sqs_ok(true);
                }
                Err(_) => stats.set_sqs_ok(false),
            }
        };
        tokio::select! {
            _ = finished.cancelled() => break,
            r = tokio::time::timeout(Duration::from_secs(5), probe) => if r.is_err() {
                stats.set_db_ok(false);
            },
        }
        tokio::select! {
            _ = finished.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// `SELECT 1` on the probe's connection, reconnecting when it is gone.
async fn probe_db(db: &DbConfig, client: &mut Option<tokio_postgres::Client>) -> bool {
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        *client = crate::db::connect(db).await.ok();
    }
    match client {
        Some(c) => c.simple_query("SELECT 1").await.is_ok(),
        None => false,
    }
}
