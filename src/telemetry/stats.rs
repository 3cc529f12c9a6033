//! The counters of one run, shared by every task, and the summary they add up to. Tasks
//! report what happened through methods; `/metrics`, `/readyz`, the progress display and the
//! summary read snapshots, so they always agree.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::requests::{CallLimits, RequestCounts, SqsRequests};
use super::routes::{self, Routes};
use crate::decode::RejectReason;

/// The counters. Every method is cheap (relaxed atomics), so tasks call them per event.
#[derive(Debug, Default)]
pub struct Stats {
    received: AtomicU64,
    loaded: AtomicU64,
    rejected: AtomicU64,
    rejected_by_reason: Mutex<BTreeMap<String, u64>>,
    routes: Mutex<Routes>,
    duplicates: AtomicU64,
    deleted: AtomicU64,
    delete_failed: AtomicU64,
    batches_failed: AtomicU64,
    unknown_keys: AtomicU64,
    in_flight: AtomicU64,
    inflight_bytes: AtomicU64,
    visibility_extended: AtomicU64,
    visibility_extend_failed: AtomicU64,
    released: AtomicU64,
    sqs_retries: AtomicU64,
    db_retries: AtomicU64,
    last_commit_unix: AtomicU64,
    consuming: AtomicBool,
    db_ok: AtomicBool,
    /// Set while a writer's batch keeps failing (refused, timed out, or the node cannot
    /// write), which the probe's `SELECT 1` cannot see.
    writes_failing: AtomicBool,
    sqs_ok: AtomicBool,
    backlog: AtomicU64,
    /// Shared with the run's `Source`, which counts its own calls.
    sqs_requests: Arc<SqsRequests>,
}

/// What `/readyz` answers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Started and not shutting down.
    pub consuming: bool,
    /// The last database call or probe succeeded.
    pub db_ok: bool,
    /// The last receive or queue probe succeeded.
    pub sqs_ok: bool,
    /// No batch is stuck retrying.
    pub writes_ok: bool,
}

impl Readiness {
    /// Consuming, with database and queue reachable.
    pub fn is_ready(&self) -> bool {
        self.consuming && self.db_ok && self.sqs_ok && self.writes_ok
    }

    /// Why not, in words, for the 503 body.
    pub fn why_not(&self) -> Vec<&'static str> {
        [
            (!self.consuming).then_some("not consuming (starting or shutting down)"),
            (!self.db_ok).then_some("database unreachable"),
            (!self.sqs_ok).then_some("queue unreachable"),
            (!self.writes_ok)
                .then_some("writes failing or stalled: batches are held and retried (see the log)"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Every counter at one moment, for `/metrics`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The summary's counters (its `elapsed` is zero).
    pub summary: Summary,
    pub batches_failed: u64,
    /// Visibility extensions the heartbeat asked for and SQS did not make.
    pub visibility_extend_failed: u64,
    pub sqs_retries: u64,
    pub db_retries: u64,
    pub in_flight: u64,
    /// Body bytes charged to the byte budget (received, not yet deleted).
    pub inflight_bytes: u64,
    pub backlog: u64,
    pub last_commit_unix: u64,
    pub readiness: Readiness,
}

/// Counts the messages inside a writer until dropped.
pub struct InFlight<'a> {
    stats: &'a Stats,
    n: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(self.n, Ordering::Relaxed);
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    /// Messages received from SQS (redeliveries included).
    pub fn add_received(&self, n: usize) {
        add(&self.received, n as u64);
    }

    /// Extra keys seen in otherwise valid messages.
    pub fn add_unknown_keys(&self, n: usize) {
        add(&self.unknown_keys, n as u64);
    }

    /// A committed batch of `size` messages that took `took` to write.
    pub fn record_commit(
        &self,
        loaded: u64,
        duplicates: u64,
        rejected: &[RejectReason],
        size: usize,
        took: Duration,
    ) {
        metrics::histogram!("sqs2pg_batch_size").record(size as f64);
        metrics::histogram!("sqs2pg_commit_seconds").record(took.as_secs_f64());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_commit_unix.store(now, Ordering::Relaxed);
        add(&self.loaded, loaded);
        add(&self.duplicates, duplicates);
        add(&self.rejected, rejected.len() as u64);
        if !rejected.is_empty() {
            let mut by = self
                .rejected_by_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for reason in rejected {
                *by.entry(reason.to_string()).or_default() += 1;
            }
        }
    }

    /// A mapped run's per-route counts of one commit.
    pub fn record_routes(&self, tallies: &Routes) {
        if !tallies.is_empty() {
            let mut known = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            routes::absorb(&mut known, tallies);
        }
    }

    /// SentTimestamp → commit, per message, for the latency histogram.
    pub fn record_latency(&self, sent: impl Iterator<Item = DateTime<Utc>>) {
        let now = Utc::now();
        // One registry look-up per batch, not per message.
        let latency = metrics::histogram!("sqs2pg_latency_seconds");
        for sent_at in sent {
            latency.record((now - sent_at).num_milliseconds().max(0) as f64 / 1000.0);
        }
    }

    /// Deletes confirmed, and deletes that still failed after retries.
    pub fn add_deleted(&self, deleted: u64, failed: u64) {
        add(&self.deleted, deleted);
        add(&self.delete_failed, failed);
    }

    /// A batch given up on (left for redelivery).
    pub fn add_batch_failed(&self) {
        add(&self.batches_failed, 1);
    }

    /// Batches given up on so far.
    pub fn batches_failed(&self) -> u64 {
        self.batches_failed.load(Ordering::Relaxed)
    }

    /// Visibility extensions made by the heartbeat.
    pub fn add_visibility_extended(&self, n: u64) {
        add(&self.visibility_extended, n);
    }

    /// Visibility extensions that failed (retried at the next beat).
    pub fn add_visibility_extend_failed(&self, n: u64) {
        add(&self.visibility_extend_failed, n);
    }

    /// Messages released (visibility 0) at shutdown.
    pub fn add_released(&self, n: u64) {
        add(&self.released, n);
    }

    /// A retried SQS call.
    pub fn add_sqs_retry(&self) {
        add(&self.sqs_retries, 1);
    }

    /// A retried Postgres write.
    pub fn add_db_retry(&self) {
        add(&self.db_retries, 1);
    }

    /// The byte budget now holds `bytes`.
    pub fn set_inflight_bytes(&self, bytes: u64) {
        self.inflight_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Counts `n` messages as inside a writer until the guard drops.
    pub fn in_flight(&self, n: usize) -> InFlight<'_> {
        add(&self.in_flight, n as u64);
        InFlight {
            stats: self,
            n: n as u64,
        }
    }

    /// Consuming (after start-up, before shutdown).
    pub fn set_consuming(&self, yes: bool) {
        self.consuming.store(yes, Ordering::Relaxed);
    }

    /// The outcome of the last database call or probe.
    pub fn set_db_ok(&self, ok: bool) {
        self.db_ok.store(ok, Ordering::Relaxed);
    }

    /// Whether the last batch write failed (and is being retried) or succeeded.
    pub fn set_writes_failing(&self, failing: bool) {
        self.writes_failing.store(failing, Ordering::Relaxed);
    }

    /// The outcome of the last receive or queue probe.
    pub fn set_sqs_ok(&self, ok: bool) {
        self.sqs_ok.store(ok, Ordering::Relaxed);
    }

    /// `ApproximateNumberOfMessages`, polled while metrics are served.
    pub fn set_backlog(&self, visible: u64) {
        self.backlog.store(visible, Ordering::Relaxed);
    }

    /// What `/readyz` answers from.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            consuming: self.consuming.load(Ordering::Relaxed),
            db_ok: self.db_ok.load(Ordering::Relaxed),
            sqs_ok: self.sqs_ok.load(Ordering::Relaxed),
            writes_ok: !self.writes_failing.load(Ordering::Relaxed),
        }
    }

    /// The SQS request counters, for the run's `Source` to count into.
    pub fn sqs_requests(&self) -> Arc<SqsRequests> {
        self.sqs_requests.clone()
    }

    /// The counters as a summary of a run that took `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            received: get(&self.received),
            loaded: get(&self.loaded),
            rejected: get(&self.rejected),
            rejected_by_reason: self
                .rejected_by_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            routes: self
                .routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            duplicates: get(&self.duplicates),
            deleted: get(&self.deleted),
            delete_failed: get(&self.delete_failed),
            unknown_keys: get(&self.unknown_keys),
            visibility_extended: get(&self.visibility_extended),
            released: get(&self.released),
            sqs_requests: self.sqs_requests.counts(),
            sqs_call_limits: self.sqs_requests.limits(),
            elapsed,
        }
    }

    /// Every counter now.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            summary: self.summary(Duration::ZERO),
            batches_failed: get(&self.batches_failed),
            visibility_extend_failed: get(&self.visibility_extend_failed),
            sqs_retries: get(&self.sqs_retries),
            db_retries: get(&self.db_retries),
            in_flight: get(&self.in_flight),
            inflight_bytes: get(&self.inflight_bytes),
            backlog: get(&self.backlog),
            last_commit_unix: get(&self.last_commit_unix),
            readiness: self.readiness(),
        }
    }
}

/// The end-of-run report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Messages received (redeliveries included).
    pub received: u64,
    /// Rows committed.
    pub loaded: u64,
    /// Rejects committed.
    pub rejected: u64,
    /// Rejects committed, by stored reason.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Under a mapping, what each route did.
    pub routes: Routes,
    /// Redeliveries skipped by the ledger.
    pub duplicates: u64,
    /// Messages deleted.
    pub deleted: u64,
    /// Deletes that failed after retries (those messages come back and become duplicates).
    pub delete_failed: u64,
    /// Extra keys ignored.
    pub unknown_keys: u64,
    /// Visibility extensions by the heartbeat.
    pub visibility_extended: u64,
    /// Messages released to other consumers at shutdown.
    pub released: u64,
    /// SQS requests made, by kind.
    pub sqs_requests: RequestCounts,
    /// The adaptive limits on SQS calls in flight, now and at their highest.
    pub sqs_call_limits: CallLimits,
    /// Wall time.
    pub elapsed: Duration,
}

impl Summary {
    /// Messages handled per second of wall time.
    pub fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "received            {}", self.received)?;
        writeln!(f, "loaded              {}", self.loaded)?;
        writeln!(f, "rejected            {}", self.rejected)?;
        for (reason, n) in &self.rejected_by_reason {
            writeln!(f, "  {reason}: {n}")?;
        }
        routes::write_text(f, &self.routes)?;
        writeln!(f, "duplicates skipped  {}", self.duplicates)?;
        writeln!(f, "deleted             {}", self.deleted)?;
        if self.delete_failed > 0 {
            writeln!(f, "delete failures     {}", self.delete_failed)?;
        }
        if self.unknown_keys > 0 {
            writeln!(f, "unknown keys        {}", self.unknown_keys)?;
        }
        if self.visibility_extended > 0 {
            writeln!(f, "visibility extended {}", self.visibility_extended)?;
        }
        if self.released > 0 {
            writeln!(f, "released            {}", self.released)?;
        }
        writeln!(f, "sqs requests        {}", self.sqs_requests)?;
        if self.received > 0 {
            writeln!(
                f,
                "sqs requests/msg    {:.3}",
                self.sqs_requests.total() as f64 / self.received as f64
            )?;
        }
        if self.sqs_call_limits != CallLimits::default() {
            writeln!(f, "sqs calls in flight {}", self.sqs_call_limits)?;
        }
        writeln!(f, "elapsed             {:.2}s", self.elapsed.as_secs_f64())?;
        write!(f, "rate                {:.0} messages/s", self.rate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_failing_to_commit_makes_it_unready_until_one_commits() {
        let stats = Stats::default();
        stats.set_consuming(true);
        stats.set_db_ok(true);
        stats.set_sqs_ok(true);
        assert!(stats.readiness().is_ready());
        stats.set_writes_failing(true);
        let r = stats.readiness();
        assert!(!r.is_ready());
        assert_eq!(r.why_not().len(), 1);
        assert!(r.why_not()[0].starts_with("writes failing"));
        stats.set_writes_failing(false);
        assert!(stats.readiness().is_ready());
    }
}
