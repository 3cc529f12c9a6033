//! Prometheus text: counters and gauges are set from a [`Stats`] snapshot at scrape time (so
//! `/metrics` always equals the summary); histograms are recorded as batches commit. Every
//! metric is described in [`HELP`], so the exposition passes `promtool check metrics`
//! (`tests/it/prometheus.rs` lints a live scrape).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::stats::Stats;

/// The process-wide Prometheus recorder (the `metrics` facade allows one).
pub(super) fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("sqs2pg_commit_seconds".into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("sqs2pg_latency_seconds".into()),
                        &[
                            0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
                            1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("sqs2pg_batch_size".into()),
                        &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0],
                    )
                })
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// Every metric sqs2pg exports and its `# HELP` text (docs/DEPLOYMENT.md's table says the
/// same; a metric missing here has no HELP line and fails the promtool lint).
pub const HELP: [(&str, &str); 26] = [
    ("sqs2pg_received_total", "Messages received from SQS, redeliveries included."),
    ("sqs2pg_loaded_total", "Rows committed (to user_logins, or under a mapping file to its routes' tables)."),
    ("sqs2pg_rejected_total", "Rejects committed to user_logins_rejects, by reason."),
    ("sqs2pg_route_loaded_total", "Under a mapping: rows committed, by route."),
    ("sqs2pg_route_skipped_total", "Under a mapping: events a skip route took (ledgered and deleted, no row), by route."),
    ("sqs2pg_route_skipped_by_key_total", "Under a mapping: rows a route's business key already held (a producer's re-send), by route."),
    ("sqs2pg_route_rejected_total", "Under a mapping: rejects of events a route took, by route (no_route rejects have none)."),
    ("sqs2pg_duplicates_total", "Redeliveries the ledger recognised: written nowhere, deleted."),
    ("sqs2pg_deleted_total", "Messages deleted from the queue after their commit."),
    ("sqs2pg_delete_failures_total", "Deletes given up after retries; those messages come back as duplicates."),
    ("sqs2pg_unknown_keys_total", "Extra keys seen in otherwise valid messages."),
    ("sqs2pg_visibility_extended_total", "Visibility extensions the heartbeat made for held messages."),
    ("sqs2pg_visibility_extend_failures_total", "Visibility extensions the heartbeat asked for and SQS did not make (retried at the next beat)."),
    ("sqs2pg_released_total", "Messages released (visibility 0) to other consumers at shutdown."),
    ("sqs2pg_batches_failed_total", "Batches given up on and left in the queue for redelivery."),
    ("sqs2pg_retries_total", "Retried calls, by stage (sqs or postgres)."),
    ("sqs2pg_in_flight", "Messages held by the writers, not yet committed."),
    ("sqs2pg_sqs_requests_total", "SQS requests made, by kind (receive: brought messages; empty_receive: came back empty; delete, change_visibility, send: batch calls; get_attributes); SQS bills each"),
    ("sqs2pg_sqs_calls_limit", "Delete and change_visibility calls allowed in flight at once, by kind: grows while SQS keeps up, shrinks when its answers slow down or fail."),
    ("sqs2pg_inflight_bytes", "Message-body bytes held from receive to delete, against --max-inflight-bytes."),
    ("sqs2pg_queue_backlog", "The queue's ApproximateNumberOfMessages, polled every few seconds."),
    ("sqs2pg_last_commit_timestamp_seconds", "Unix time of the last commit, 0 before the first."),
    ("sqs2pg_ready", "1 while /readyz would answer 200, else 0."),
    ("sqs2pg_batch_size", "Messages per committed transaction."),
    ("sqs2pg_commit_seconds", "Time to commit one batch."),
    ("sqs2pg_latency_seconds", "Per message, SentTimestamp to commit."),
];

/// Registers [`HELP`] with the recorder, by each name's kind.
fn describe() {
    for (name, help) in HELP {
        if name.ends_with("_total") {
            metrics::describe_counter!(name, help);
        } else if matches!(
            name,
            "sqs2pg_batch_size" | "sqs2pg_commit_seconds" | "sqs2pg_latency_seconds"
        ) {
            metrics::describe_histogram!(name, help);
        } else {
            metrics::describe_gauge!(name, help);
        }
    }
}

/// The Prometheus text for `stats`.
pub fn render(stats: &Stats) -> String {
    let Some(handle) = prometheus() else {
        return String::new();
    };
    let s = stats.snapshot();
    let sum = &s.summary;
    for (name, value) in [
        ("sqs2pg_received_total", sum.received),
        ("sqs2pg_loaded_total", sum.loaded),
        ("sqs2pg_duplicates_total", sum.duplicates),
        ("sqs2pg_deleted_total", sum.deleted),
        ("sqs2pg_delete_failures_total", sum.delete_failed),
        ("sqs2pg_unknown_keys_total", sum.unknown_keys),
        ("sqs2pg_visibility_extended_total", sum.visibility_extended),
        ("sqs2pg_released_total", sum.released),
        ("sqs2pg_batches_failed_total", s.batches_failed),
        (
            "sqs2pg_visibility_extend_failures_total",
            s.visibility_extend_failed,
        ),
    ] {
        metrics::counter!(name).absolute(value);
    }
    metrics::counter!("sqs2pg_retries_total", "stage" => "sqs").absolute(s.sqs_retries);
    metrics::counter!("sqs2pg_retries_total", "stage" => "postgres").absolute(s.db_retries);
    for (reason, n) in &sum.rejected_by_reason {
        metrics::counter!("sqs2pg_rejected_total", "reason" => reason.clone()).absolute(*n);
    }
    super::routes::record(&sum.routes);
    super::requests::record(&sum.sqs_requests, &sum.sqs_call_limits);
    metrics::gauge!("sqs2pg_in_flight").set(s.in_flight as f64);
    metrics::gauge!("sqs2pg_inflight_bytes").set(s.inflight_bytes as f64);
    metrics::gauge!("sqs2pg_queue_backlog").set(s.backlog as f64);
    metrics::gauge!("sqs2pg_last_commit_timestamp_seconds").set(s.last_commit_unix as f64);
    metrics::gauge!("sqs2pg_ready").set(if s.readiness.is_ready() { 1.0 } else { 0.0 });
    handle.run_upkeep();
    handle.render()
}
