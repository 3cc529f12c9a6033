//! Per-test environment: its own SQS queue on LocalStack and its own Postgres database,
//! both real, both removed when the test ends (pass or fail).
//!
//! Every use of the library's internals (pipeline, sink, config, masking, telemetry) by the
//! tests goes through this file, so that an API change in `src/` is adapted here once.

mod db;
mod dlq;
mod envelopes;
mod foreign;
mod forward;
mod lambda_deadline;
mod lambda_rt;
mod library;
mod logins;
mod process;
mod prom;
mod run;
mod services;
mod tools;
mod wait;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqs2pg::config::{DbConfig, PipelineConfig, RunConfig, SqsConfig};
/// Days per ledger generation, as the code has them (the docs must say the same).
pub use sqs2pg::db::ledger::LEDGER_GENERATION_DAYS;
use sqs2pg::db::Sink;
use sqs2pg::mask::Keyring;
use sqs2pg::source::{QueueDepth, Received, Source};
use sqs2pg::telemetry::{Stats, Summary};
use tokio_postgres::types::{FromSqlOwned, ToSql};
use tokio_postgres::{NoTls, Row};
use tokio_util::sync::CancellationToken;

pub use self::db::*;
pub use self::dlq::DeadLetters;
pub use self::envelopes::*;
pub use self::foreign::*;
pub use self::forward::*;
pub use self::lambda_deadline::*;
pub use self::lambda_rt::*;
pub use self::library::*;
pub use self::logins::*;
pub use self::process::*;
pub use self::prom::*;
pub use self::run::*;
pub use self::services::Sqs;
use self::services::*;
pub use self::tools::*;
pub use self::wait::*;

/// A fixed test key (64 bytes of 0x2a) so failures can be reproduced by hand.
pub const KEYS: &str =
    "t1=KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKg==";

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server-wide database of `DATABASE_URL` (where test databases are created).
fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into())
}

/// A URL for database `db` on the server of `DATABASE_URL`.
fn url_for_db(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let host_part = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    format!("{host_part}/{db}{query}")
}

/// One test's queue and database.
pub struct TestEnv {
    /// `it-<id>`.
    pub queue_name: String,
    /// Its URL.
    pub queue_url: String,
    /// The test database's URL.
    pub database_url: String,
    pub(crate) db_name: String,
    pub(crate) source: Source,
    /// The client behind [`TestEnv::rows`] and friends, connected on first use.
    pub(crate) client: tokio::sync::OnceCell<Db>,
    /// Set when the queue is not on `AWS_ENDPOINT_URL`'s server (moto's).
    pub(crate) endpoint: Option<String>,
}

impl TestEnv {
    /// A fresh queue and a fresh, migrated database.
    pub async fn new() -> Self {
        Self::on(Sqs::LocalStack).await
    }

    /// Like [`TestEnv::new`], with the queue on `sqs`.
    pub async fn on(sqs: Sqs) -> Self {
        Self::build(sqs, true, 30).await
    }

    /// A migrated database and a queue on `sqs` whose visibility timeout is `seconds`.
    pub async fn on_with_visibility(sqs: Sqs, seconds: u32) -> Self {
        Self::build(sqs, true, seconds).await
    }

    /// Like [`TestEnv::new`], with the queue's visibility timeout set to `seconds`.
    pub async fn with_visibility(seconds: u32) -> Self {
        Self::build(Sqs::LocalStack, true, seconds).await
    }

    /// A fresh queue and an empty database (no tables).
    pub async fn unmigrated() -> Self {
        Self::build(Sqs::LocalStack, false, 30).await
    }

    async fn build(sqs: Sqs, migrate: bool, visibility: u32) -> Self {
        init_env();
        let endpoint = sqs.endpoint();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let queue_name = format!("it-{id}");
        let probe = Source::connect(&SqsConfig {
            queue_url: Some("unused".into()),
            queue_name: queue_name.clone(),
            framing: Default::default(),
            endpoint_url: endpoint.clone(),
        })
        .await
        .expect("AWS config (is LocalStack up? `scripts/services up`)");
        let queue_url = probe
            .client()
            .create_queue()
            .queue_name(&queue_name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                visibility.to_string(),
            )
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("create queue on {sqs:?} ({e:?}; is it up? `scripts/services up`)")
            })
            .queue_url
            .expect("queue url");
        let source = Source::connect(&SqsConfig {
            queue_url: Some(queue_url.clone()),
            queue_name: queue_name.clone(),
            framing: Default::default(),
            endpoint_url: endpoint.clone(),
        })
        .await
        .expect("source");

        let db_name = format!("it_{id}");
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {db_name}"))
            .await
            .expect("create test database (is Postgres up? `scripts/services up`)");
        let database_url = url_for_db(&admin_url(), &db_name);
        if migrate {
            connect(&database_url).await.migrate().await;
        }
        Self {
            queue_name,
            queue_url,
            database_url,
            db_name,
            source,
            client: tokio::sync::OnceCell::new(),
            endpoint,
        }
    }

    /// The test database's name (`it_<id>`).
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// A new client of its own on the test database (for transactions and locks).
    pub async fn db(&self) -> Db {
        connect(&self.database_url).await
    }

    /// The shared client, connected on first use.
    async fn client(&self) -> &Db {
        self.client.get_or_init(|| self.db()).await
    }

    /// [`Db::rows`] on the test database.
    pub async fn rows(&self, sql: &str) -> Vec<Row> {
        self.client().await.rows(sql).await
    }

    /// [`Db::count`] on the test database.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client().await.count(sql).await
    }

    /// [`Db::scalar`] on the test database.
    pub async fn scalar<T: FromSqlOwned>(&self, sql: &str) -> T {
        self.client().await.scalar(sql).await
    }

    /// [`Db::scalar_with`] on the test database.
    pub async fn scalar_with<T: FromSqlOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> T {
        self.client().await.scalar_with(sql, params).await
    }

    /// [`Db::column`] on the test database.
    pub async fn column<T: FromSqlOwned>(&self, sql: &str) -> Vec<T> {
        self.client().await.column(sql).await
    }

    /// [`Db::revealed_rejects`] on the test database.
    pub async fn revealed_rejects(&self) -> Vec<(String, String)> {
        self.client().await.revealed_rejects().await
    }

    /// Test pipeline settings: short long-polls so drain runs end quickly.
    fn run_config(&self, opts: &RunOptions, until_empty: bool) -> RunConfig {
        let pipeline = PipelineConfig {
            pollers: 4,
            writers: opts.writers.unwrap_or(2),
            batch_size: 100,
            batch_wait: opts.batch_wait.unwrap_or(Duration::from_millis(50)),
            max_inflight_bytes: opts
                .max_inflight_bytes
                .unwrap_or(sqs2pg::config::DEFAULT_MAX_INFLIGHT_BYTES as usize),
            wait_seconds: opts.wait_seconds.unwrap_or(1),
            until_empty,
            progress: false,
            shutdown_timeout: Duration::from_secs(10),
            metrics_addr: None,
        };
        RunConfig {
            sqs: SqsConfig {
                queue_url: Some(self.queue_url.clone()),
                queue_name: self.queue_name.clone(),
                framing: Default::default(),
                endpoint_url: opts.sqs_endpoint.clone().or_else(|| self.endpoint.clone()),
            },
            db: DbConfig::new(
                opts.database_url.as_deref().unwrap_or(&self.database_url),
                None,
            )
            .expect("db url")
            .with_write_timeout(opts.db_write_timeout.unwrap_or(Duration::from_secs(
                sqs2pg::config::DEFAULT_DB_WRITE_TIMEOUT_SECS,
            ))),
            keyring: Keyring::parse(opts.keys.as_deref().unwrap_or(KEYS)).expect("keys"),
            pipeline,
            mapping: None,
        }
    }

    /// Only the build step of a drain run: everything that can fail before the first
    /// message, nothing spawned. `adjust` changes the test settings first (a wrong queue, a
    /// taken metrics address).
    pub async fn build_pipeline(
        &self,
        adjust: impl FnOnce(&mut RunConfig),
    ) -> Result<sqs2pg::pipeline::Pipeline, sqs2pg::pipeline::PipelineError> {
        let mut cfg = self.run_config(&RunOptions::default(), true);
        adjust(&mut cfg);
        sqs2pg::pipeline::Pipeline::build(
            cfg,
            Arc::new(Stats::default()),
            &CancellationToken::new(),
        )
        .await
    }

    /// Runs the consumer in-process with the test settings until the queue is drained.
    pub async fn drain(&self) -> Summary {
        self.drain_with(RunOptions::default()).await
    }

    /// [`TestEnv::drain`] with some settings changed; panics if the run fails.
    pub async fn drain_with(&self, opts: RunOptions) -> Summary {
        self.try_drain_with(opts).await.expect("drain run")
    }

    /// [`TestEnv::drain_with`] for a run that may fail: how it ended.
    pub async fn try_drain_with(
        &self,
        opts: RunOptions,
    ) -> Result<Summary, sqs2pg::pipeline::PipelineError> {
        sqs2pg::pipeline::run(
            self.run_config(&opts, true),
            CancellationToken::new(),
            Arc::new(Stats::default()),
        )
        .await
    }

    /// Starts the consumer in-process as a daemon (`run` without `--until-empty`).
    pub fn spawn_daemon(&self, opts: RunOptions) -> Daemon {
        let stop = CancellationToken::new();
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(sqs2pg::pipeline::run(
            self.run_config(&opts, false),
            stop.clone(),
            stats.clone(),
        ));
        Daemon {
            stop,
            stats,
            task: Some(task),
        }
    }

    /// A sink (one writer's connection) on the test database.
    pub async fn sink(&self) -> TestSink {
        self.sink_as(&self.database_url).await
    }

    /// A sink connected with `database_url` (the test database as another role, say).
    pub async fn sink_as(&self, database_url: &str) -> TestSink {
        let opts = RunOptions::default().database_url(database_url);
        self.sink_on(self.run_config(&opts, true).db).await
    }

    /// A sink connected with `database_url` whose statements are prepared once per
    /// connection (`--db-statements prepared`).
    pub async fn sink_prepared_as(&self, database_url: &str) -> TestSink {
        let opts = RunOptions::default().database_url(database_url);
        let db = self.run_config(&opts, true).db;
        self.sink_on(db.with_statements(sqs2pg::config::DbStatements::Prepared))
            .await
    }

    async fn sink_on(&self, db: DbConfig) -> TestSink {
        let client = sqs2pg::db::connect(&db).await.expect("connect");
        let shape = sqs2pg::db::schema::inspect(&client, writing_kid(KEYS).len())
            .await
            .expect("inspect user_logins");
        let sink = Sink::connect(&db, &shape).await.expect("sink");
        TestSink {
            sink,
            recipe: shape.recipe(),
            masker: masker(KEYS),
        }
    }

    /// Sends bodies verbatim.
    pub async fn send<S: AsRef<str>>(&self, bodies: &[S]) {
        let owned: Vec<String> = bodies.iter().map(|b| b.as_ref().to_owned()).collect();
        self.source.send(&owned, 8).await.expect("send");
    }

    /// Receives (short polls) until it holds at least `n` messages, as a poller would.
    pub async fn receive_at_least(&self, n: usize) -> Vec<Received> {
        let mut received = Vec::new();
        while received.len() < n {
            received.extend(self.source.receive(1).await.expect("receive"));
        }
        received
    }

    /// Makes received messages visible again at once, as a crashed consumer's would be
    /// once their visibility timeout ran out.
    pub async fn make_visible(&self, msgs: &[Received]) {
        let handles: Vec<&str> = msgs.iter().map(|m| m.receipt_handle.as_str()).collect();
        self.source
            .change_visibility(&handles, 0)
            .await
            .expect("change visibility");
    }

    /// Visible and in-flight counts (LocalStack's are exact).
    pub async fn depth(&self) -> QueueDepth {
        self.source.depth().await.expect("depth")
    }

    /// Asserts the queue holds 0 visible and 0 in-flight messages.
    pub async fn assert_queue_empty(&self) {
        let d = self.depth().await;
        assert_eq!((d.visible, d.in_flight), (0, 0), "queue not empty: {d:?}");
    }

    /// Waits until LocalStack has reported the queue empty (visible and in flight) for at
    /// least half a second, so a message coming back from invisibility is not missed.
    pub async fn wait_drained(&self, limit: Duration) {
        let empty_since = std::cell::Cell::new(None::<Instant>);
        let empty_since = &empty_since;
        wait_until("queue drained", limit, move || async move {
            let d = self.depth().await;
            if (d.visible, d.in_flight) != (0, 0) {
                empty_since.set(None);
                return Err(d);
            }
            let since = empty_since.get().unwrap_or_else(Instant::now);
            empty_since.set(Some(since));
            if since.elapsed() >= Duration::from_millis(500) {
                Ok(())
            } else {
                Err(d)
            }
        })
        .await
    }

    /// The binary with this test's settings in its environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sqs2pg"));
        c.args(args);
        self.settings(&mut c).env("SQS2PG_KEYS", KEYS);
        c
    }

    /// `line` run by bash (with `pipefail`) in `dir`, as a user types it: this test's queue
    /// and database, no key unless the line gives one, and the binary first on `PATH`.
    pub fn shell(&self, line: &str, dir: &std::path::Path) -> Output {
        let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_sqs2pg"))
            .parent()
            .expect("the binary's directory");
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("bash");
        c.args(["-o", "pipefail", "-c", line])
            .current_dir(dir)
            .env("PATH", path);
        self.settings(&mut c)
            .env_remove("SQS2PG_KEYS")
            .env_remove("SQS2PG_CONFIG")
            .output()
            .expect("bash")
    }

    /// This test's queue and database, and nothing of the caller's keys file or log level.
    fn settings<'c>(&self, c: &'c mut Command) -> &'c mut Command {
        if let Some(url) = &self.endpoint {
            c.env("AWS_ENDPOINT_URL", url);
        }
        c.env("DATABASE_URL", &self.database_url)
            .env("SQS2PG_QUEUE_URL", &self.queue_url)
            .env_remove("SQS2PG_KEYS_FILE")
            .env_remove("RUST_LOG")
    }

    /// Runs the binary and returns its output.
    pub fn run_cmd(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn sqs2pg")
    }

    /// Starts the binary in the background with `envs` added, its output discarded.
    pub fn spawn(&self, args: &[&str], envs: &[(&str, String)]) -> Proc {
        let mut c = self.cmd(args);
        for (k, v) in envs {
            c.env(k, v);
        }
        Proc::spawn(c.stdout(Stdio::null()).stderr(Stdio::null()))
    }

    /// Starts the binary in the background, its summary (stdout) kept for
    /// [`Proc::wait_with_output`] and its log (stderr, at `RUST_LOG=warn`) written to `log`,
    /// a file, so a long run can never block on a full pipe.
    pub fn spawn_reporting(&self, args: &[&str], envs: &[(&str, String)], log: &Path) -> Proc {
        let mut c = self.cmd(args);
        for (k, v) in envs {
            c.env(k, v);
        }
        let log = std::fs::File::create(log).expect("create the child's log file");
        Proc::spawn(c.env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(log))
    }
}

/// Runs a cleanup to its end from a `Drop`, which runs inside the test's runtime and cannot
/// block on it: on a thread with a runtime of its own. A cleanup that fails fails the test
/// (a leaked database or queue is a defect too); during a test's own panic it is only
/// reported, since a second panic would abort the whole test binary.
pub(crate) fn clean_up(
    what: String,
    work: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
) {
    let outcome = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime: {e}"))?
            .block_on(work)
    })
    .join()
    .unwrap_or_else(|_| Err("the cleanup panicked".to_owned()));
    if let Err(e) = outcome {
        if std::thread::panicking() {
            eprintln!("cleanup of {what} failed, it is left behind: {e}");
        } else {
            panic!("cleanup of {what} failed, it is left behind: {e}");
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let (db, url, source) = (self.db_name.clone(), admin_url(), self.source.clone());
        let what = format!("database {db} and queue {}", self.queue_name);
        clean_up(what, async move {
            let (c, conn) = tokio_postgres::connect(&url, NoTls)
                .await
                .map_err(|e| format!("connect to drop the database: {e}"))?;
            tokio::spawn(conn);
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await
                .map_err(|e| {
                    let why = e
                        .as_db_error()
                        .map_or(e.to_string(), |d| d.message().to_owned());
                    format!("DROP DATABASE {db}: {why}")
                })?;
            // IF EXISTS forgives a wrong name: the database must be gone, whatever it said.
            let left = c
                .query_one(
                    "SELECT count(*) FROM pg_database WHERE datname = $1",
                    &[&db],
                )
                .await
                .map_err(|e| format!("check that {db} is gone: {e}"))?
                .get::<_, i64>(0);
            if left != 0 {
                return Err(format!("database {db} still exists after DROP DATABASE"));
            }
            source
                .client()
                .delete_queue()
                .queue_url(source.queue_url())
                .send()
                .await
                .map_err(|e| format!("DeleteQueue: {}", sqs2pg::aws::error_text(&e)))?;
            Ok(())
        });
    }
}
