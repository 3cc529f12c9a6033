//! The consumer in-process: a drain run's options and a daemon handle to stop it.

use std::sync::Arc;
use std::time::Duration;

use sqs2pg::pipeline::PipelineError;
use sqs2pg::telemetry::{Stats, Summary};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Settings of an in-process run that differ from the test defaults (4 pollers, 2 writers,
/// batches of 100 within 50 ms, 1 s long polls, the key [`KEYS`], the test's database).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub(crate) keys: Option<String>,
    pub(crate) database_url: Option<String>,
    pub(crate) writers: Option<usize>,
    pub(crate) batch_wait: Option<Duration>,
    pub(crate) wait_seconds: Option<i32>,
    pub(crate) db_write_timeout: Option<Duration>,
    pub(crate) max_inflight_bytes: Option<usize>,
    pub(crate) sqs_endpoint: Option<String>,
}

impl RunOptions {
    /// The keyring (`kid=base64` lines, writing key first) instead of [`KEYS`].
    pub fn keys(mut self, keys: &str) -> Self {
        self.keys = Some(keys.to_owned());
        self
    }

    /// Another database (a private cluster, a proxy, another role) instead of the test's.
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// How many writers.
    pub fn writers(mut self, n: usize) -> Self {
        self.writers = Some(n);
        self
    }

    /// How long a writer waits to fill a batch.
    pub fn batch_wait(mut self, wait: Duration) -> Self {
        self.batch_wait = Some(wait);
        self
    }

    /// The bound on one batch's transaction (`--db-write-timeout-secs`).
    pub fn db_write_timeout(mut self, bound: Duration) -> Self {
        self.db_write_timeout = Some(bound);
        self
    }

    /// Another SQS endpoint (a fault proxy in front of the test's server).
    pub fn sqs_endpoint(mut self, url: &str) -> Self {
        self.sqs_endpoint = Some(url.to_owned());
        self
    }

    /// The byte budget (`--max-inflight-bytes`).
    pub fn max_inflight_bytes(mut self, bytes: usize) -> Self {
        self.max_inflight_bytes = Some(bytes);
        self
    }

    /// The long-poll length of each receive.
    pub fn wait_seconds(mut self, seconds: i32) -> Self {
        self.wait_seconds = Some(seconds);
        self
    }
}

/// The consumer running in-process as a daemon (not stopping on an empty queue), started
/// by [`TestEnv::spawn_daemon`]; its counters can be read while it runs.
pub struct Daemon {
    pub(crate) stop: CancellationToken,
    pub(crate) stats: Arc<Stats>,
    /// `None` once joined.
    pub(crate) task: Option<JoinHandle<Result<Summary, PipelineError>>>,
}

impl Daemon {
    /// Body bytes the byte budget holds now (the `sqs2pg_inflight_bytes` gauge).
    pub fn inflight_bytes(&self) -> u64 {
        self.stats.snapshot().inflight_bytes
    }

    /// Messages received so far, redeliveries included.
    pub fn received(&self) -> u64 {
        self.stats.summary(Duration::ZERO).received
    }

    /// Rows committed so far.
    pub fn loaded(&self) -> u64 {
        self.stats.summary(Duration::ZERO).loaded
    }

    /// Messages deleted from the queue so far.
    pub fn deleted(&self) -> u64 {
        self.stats.summary(Duration::ZERO).deleted
    }

    /// The adaptive limit on delete calls in flight: `(now, highest so far)`.
    pub fn delete_call_limit(&self) -> (u64, u64) {
        self.stats
            .summary(Duration::ZERO)
            .sqs_call_limits
            .get(sqs2pg::telemetry::RequestKind::Delete)
    }

    /// Visibility extensions SQS confirmed so far.
    pub fn extensions_made(&self) -> u64 {
        self.stats.summary(Duration::ZERO).visibility_extended
    }

    /// Visibility extensions SQS did not confirm after their call's retries.
    pub fn extensions_failed(&self) -> u64 {
        self.stats.snapshot().visibility_extend_failed
    }

    /// SQS or Postgres calls retried so far.
    pub fn retries(&self) -> u64 {
        {
            let s = self.stats.snapshot();
            s.sqs_retries + s.db_retries
        }
    }

    /// Connected and consuming (what `/readyz` reports before its reachability checks).
    pub fn ready(&self) -> bool {
        self.stats.readiness().consuming
    }

    /// Waits (up to a minute) until it is connected and consuming.
    pub async fn wait_ready(&self) {
        super::wait_until("the daemon ready", Duration::from_secs(60), || async {
            self.ready()
        })
        .await;
    }

    /// A batch is being held and retried (what turns `/readyz` to 503).
    pub fn writes_failing(&self) -> bool {
        !self.stats.readiness().writes_ok
    }

    /// The slow-database window of the heartbeat tests: waits (bounded) until SQS confirmed
    /// `extensions` visibility extensions while `lock` keeps every row from loading, then lifts
    /// the lock, waits for the queue to drain and stops the daemon.
    pub async fn hold_until_extended_then_drain(
        &mut self,
        env: &super::TestEnv,
        lock: tokio_postgres::Transaction<'_>,
        extensions: u64,
    ) -> Summary {
        super::wait_until(
            &format!("{extensions} visibility extensions while the writers are held"),
            Duration::from_secs(60),
            || async { self.extensions_made() >= extensions },
        )
        .await;
        assert_eq!(self.loaded(), 0, "the lock holds the writers");
        lock.rollback().await.expect("lift the lock");
        env.wait_drained(Duration::from_secs(60)).await;
        self.stop_and_join().await
    }

    /// Asks it to shut down as SIGTERM would, and returns the run's summary; panics if the
    /// run failed. The counters stay readable afterwards.
    pub async fn stop_and_join(&mut self) -> Summary {
        self.stop.cancel();
        self.task
            .take()
            .expect("daemon already joined")
            .await
            .expect("daemon task")
            .expect("daemon run ends Ok")
    }
}

impl super::TestEnv {
    /// A drain run with `opts`, its outcome returned failed or not, with its counters (retries
    /// and given-up batches, which a drain that ends `Ok` can still have had).
    pub async fn drain_counting(
        &self,
        opts: RunOptions,
    ) -> (Result<Summary, PipelineError>, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let result = sqs2pg::pipeline::run(
            self.run_config(&opts, true),
            CancellationToken::new(),
            stats.clone(),
        )
        .await;
        (result, stats)
    }
}
