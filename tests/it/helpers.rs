//! Per-test environment: its own SQS queue on LocalStack and its own Postgres database,
//! both real, both removed when the test ends (pass or fail).
//!
//! Every use of the library's internals (pipeline, sink, config, masking, telemetry) by the
//! tests goes through this file, so that an API change in `src/` is adapted here once.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime};

use sqs2pg::config::{DbConfig, PipelineConfig, RunConfig, SqsConfig};
use sqs2pg::db::{BatchWriter, WriteReport};
use sqs2pg::decode::Limits;
use sqs2pg::mask::{Column, Keyring, Masker};
use sqs2pg::pipeline::PipelineError;
use sqs2pg::source::{QueueDepth, Received, Source};
use sqs2pg::telemetry::{Stats, Summary};
use sqs2pg::transform::Record;
use tokio::task::JoinHandle;
use tokio_postgres::types::{FromSqlOwned, ToSql};
use tokio_postgres::{Client, NoTls, Row};
use tokio_util::sync::CancellationToken;

/// A fixed test key (64 bytes of 0x2a) so failures can be reproduced by hand.
pub const KEYS: &str =
    "t1=KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKg==";

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server-wide database of `DATABASE_URL` (where test databases are created).
fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into())
}

/// A client on the `DATABASE_URL` server's admin database, for what a test does to its
/// database from outside (refusing connections, say).
pub async fn admin() -> Db {
    connect(&admin_url()).await
}

/// Points the AWS SDK at local LocalStack unless the caller already chose an endpoint.
/// Never real AWS: without AWS_ENDPOINT_URL the tests use 127.0.0.1:4566. Then checks,
/// once per process, that both services answer (see [`preflight`]).
fn init_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ] {
            if std::env::var_os(k).is_none() {
                std::env::set_var(k, v);
            }
        }
        preflight();
    });
}

/// Ends the whole test process (exit 2) with one line on stderr when Postgres or LocalStack
/// does not accept a TCP connection within a second, instead of every test failing on its
/// own after its own timeouts.
fn preflight() {
    let pg = host_port(&admin_url(), 5432);
    let sqs = host_port(
        &std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into()),
        4566,
    );
    for (what, target) in [("PostgreSQL", pg), ("LocalStack", sqs)] {
        // A URL we cannot take apart (a Unix socket, say) is left to the tests themselves.
        let Some(target) = target else { continue };
        if let Err(e) = tcp_probe(&target) {
            // Straight to fd 2: libtest captures `eprintln!` in a test and would drop it
            // on exit.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "integration tests need PostgreSQL and LocalStack ({what} at {target}: {e}): \
                 run `scripts/services up` (or `make test`), then eval \"$(scripts/services env)\""
            );
            std::process::exit(2);
        }
    }
}

fn tcp_probe(target: &str) -> std::io::Result<()> {
    let addrs: Vec<SocketAddr> = target.to_socket_addrs()?.collect();
    let mut last = std::io::Error::other("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `host:port` of a `scheme://[user[:pw]@]host[:port][/...]` URL, `default_port` when it
/// names none; `None` when it names no host.
fn host_port(url: &str, default_port: u16) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return None;
    }
    let has_port = match hostport.rfind(']') {
        Some(close) => hostport[close..].contains(':'),
        None => hostport.contains(':'),
    };
    Some(if has_port {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    })
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

/// Polls `condition` every 100 ms until it holds and returns what it yielded; panics naming
/// `what` and `timeout` (and the last thing the condition saw, for a `Result`) if it never
/// does. The one place the tests wait for something to happen.
pub async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    mut condition: F,
) -> <Fut::Output as Check>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Check,
{
    let started = Instant::now();
    loop {
        let last = match condition().await.check() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if started.elapsed() >= timeout {
            match last {
                Some(last) => panic!("{what}: not within {timeout:?} (last seen: {last})"),
                None => panic!("{what}: not within {timeout:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a [`wait_until`] condition may yield: `bool` (done or not), or `Result<T, D>` (done
/// with `T`, or not yet, with `D` to show if time runs out).
pub trait Check {
    /// What [`wait_until`] returns once the condition holds.
    type Value;
    /// `Err` with what to show on timeout, if anything, while the condition does not hold.
    fn check(self) -> Result<Self::Value, Option<String>>;
}

impl Check for bool {
    type Value = ();
    fn check(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T, D: std::fmt::Debug> Check for Result<T, D> {
    type Value = T;
    fn check(self) -> Result<T, Option<String>> {
        self.map_err(|d| Some(format!("{d:?}")))
    }
}

/// A Postgres client with one-line queries for tests; derefs to the [`Client`].
pub struct Db(Client);

impl Deref for Db {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

impl DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.0
    }
}

impl Db {
    /// Every row of `sql`, read by column name; panics with the SQL on error.
    pub async fn rows(&self, sql: &str) -> Vec<Row> {
        self.rows_with(sql, &[]).await
    }

    /// [`Db::rows`] with `$n` parameters.
    pub async fn rows_with(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        self.0
            .query(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The one value of a one-row, one-column query.
    pub async fn scalar<T: FromSqlOwned>(&self, sql: &str) -> T {
        self.scalar_with(sql, &[]).await
    }

    /// [`Db::scalar`] with `$n` parameters.
    pub async fn scalar_with<T: FromSqlOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> T {
        self.0
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// A `SELECT count(...)` as a plain number.
    pub async fn count(&self, sql: &str) -> i64 {
        self.scalar(sql).await
    }

    /// The first column of every row, e.g. `SELECT user_id FROM user_logins ORDER BY 1`.
    pub async fn column<T: FromSqlOwned>(&self, sql: &str) -> Vec<T> {
        self.rows(sql).await.iter().map(|r| r.get(0)).collect()
    }

    /// Creates the tables, as `sqs2pg migrate` would (without the roles).
    pub async fn migrate(&mut self) {
        sqs2pg::db::schema::migrate(&mut self.0, false)
            .await
            .expect("migrate");
    }
}

/// Settings of an in-process run that differ from the test defaults (4 pollers, 2 writers,
/// batches of 100 within 50 ms, 1 s long polls, the key [`KEYS`], the test's database).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    keys: Option<String>,
    database_url: Option<String>,
    writers: Option<usize>,
    batch_wait: Option<Duration>,
    wait_seconds: Option<i32>,
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

    /// The long-poll length of each receive.
    pub fn wait_seconds(mut self, seconds: i32) -> Self {
        self.wait_seconds = Some(seconds);
        self
    }
}

/// The consumer running in-process as a daemon (not stopping on an empty queue), started
/// by [`TestEnv::spawn_daemon`]; its counters can be read while it runs.
pub struct Daemon {
    stop: CancellationToken,
    stats: Arc<Stats>,
    /// `None` once joined.
    task: Option<JoinHandle<Result<Summary, PipelineError>>>,
}

impl Daemon {
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

/// One test's queue and database.
pub struct TestEnv {
    /// `it-<id>`.
    pub queue_name: String,
    /// Its URL.
    pub queue_url: String,
    /// The test database's URL.
    pub database_url: String,
    db_name: String,
    source: Source,
    /// The client behind [`TestEnv::rows`] and friends, connected on first use.
    client: tokio::sync::OnceCell<Db>,
}

impl TestEnv {
    /// A fresh queue and a fresh, migrated database.
    pub async fn new() -> Self {
        Self::build(true, 30).await
    }

    /// Like [`TestEnv::new`], with the queue's visibility timeout set to `seconds`.
    pub async fn with_visibility(seconds: u32) -> Self {
        Self::build(true, seconds).await
    }

    /// A fresh queue and an empty database (no tables).
    pub async fn unmigrated() -> Self {
        Self::build(false, 30).await
    }

    async fn build(migrate: bool, visibility: u32) -> Self {
        init_env();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let queue_name = format!("it-{id}");
        let probe = Source::connect(&SqsConfig {
            queue_url: Some("unused".into()),
            queue_name: queue_name.clone(),
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
            .expect("create queue on LocalStack (is it up? `scripts/services up`)")
            .queue_url
            .expect("queue url");
        let source = Source::connect(&SqsConfig {
            queue_url: Some(queue_url.clone()),
            queue_name: queue_name.clone(),
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

    /// Every reject as `(revealed body, reason)`, sorted, bodies opened with [`KEYS`].
    pub async fn revealed_rejects(&self) -> Vec<(String, String)> {
        let mut m = masker(KEYS);
        let mut got: Vec<(String, String)> = self
            .rows("SELECT body_ciphertext, reason FROM user_logins_rejects")
            .await
            .iter()
            .map(|r| (m.reveal_body(r.get("body_ciphertext")), r.get("reason")))
            .collect();
        got.sort();
        got
    }

    /// Test pipeline settings: short long-polls so drain runs end quickly.
    fn run_config(&self, opts: &RunOptions, until_empty: bool) -> RunConfig {
        let pipeline = PipelineConfig {
            pollers: 4,
            writers: opts.writers.unwrap_or(2),
            batch_size: 100,
            batch_wait: opts.batch_wait.unwrap_or(Duration::from_millis(50)),
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
            },
            db: DbConfig::new(
                opts.database_url.as_deref().unwrap_or(&self.database_url),
                None,
            )
            .expect("db url"),
            keyring: Keyring::parse(opts.keys.as_deref().unwrap_or(KEYS)).expect("keys"),
            pipeline,
        }
    }

    /// Runs the consumer in-process with the test settings until the queue is drained.
    pub async fn drain(&self) -> Summary {
        self.drain_with(RunOptions::default()).await
    }

    /// [`TestEnv::drain`] with some settings changed; panics if the run fails.
    pub async fn drain_with(&self, opts: RunOptions) -> Summary {
        sqs2pg::pipeline::run(
            self.run_config(&opts, true),
            CancellationToken::new(),
            Arc::new(Stats::default()),
        )
        .await
        .expect("drain run")
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
        let db = self.run_config(&RunOptions::default(), true).db;
        let shape = sqs2pg::db::schema::inspect(&sqs2pg::db::connect(&db).await.expect("connect"))
            .await
            .expect("inspect user_logins");
        let sink = BatchWriter::connect(&db, &shape).await.expect("sink");
        TestSink {
            sink,
            limits: shape.limits,
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
        c.args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("SQS2PG_QUEUE_URL", &self.queue_url)
            .env("SQS2PG_KEYS", KEYS)
            .env_remove("SQS2PG_KEYS_FILE")
            .env_remove("RUST_LOG");
        c
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
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let (db, url, source) = (self.db_name.clone(), admin_url(), self.source.clone());
        // Drop runs inside the test's runtime; clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((c, conn)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(conn);
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .await;
                }
                let _ = source
                    .client()
                    .delete_queue()
                    .queue_url(source.queue_url())
                    .send()
                    .await;
            });
        })
        .join();
    }
}

/// Connects or panics with the fix.
pub async fn connect(url: &str) -> Db {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to Postgres ({e}); is it up? `scripts/services up`"));
    tokio::spawn(conn);
    Db(c)
}

/// A child process that is SIGKILLed and reaped if the test drops it still running (a
/// failed assertion, say), so no consumer outlives its test.
pub struct Proc(Option<Child>);

impl Proc {
    /// Spawns `cmd` as it is configured.
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(Some(cmd.spawn().expect("spawn sqs2pg")))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("process already collected")
    }

    /// Sends SIGTERM (the graceful stop) and returns at once.
    pub fn sigterm(&mut self) {
        let pid = self.child().id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -TERM {pid}");
    }

    /// SIGKILL (a crash) and reap; returns the exit status, which is never a success.
    pub fn sigkill(&mut self) -> std::process::ExitStatus {
        let c = self.child();
        c.kill().expect("kill -9");
        c.wait().expect("wait")
    }

    /// SIGKILL and collect what it wrote to piped stdout/stderr.
    pub fn sigkill_with_output(mut self) -> Output {
        let mut c = self.0.take().expect("process already collected");
        c.kill().expect("kill -9");
        c.wait_with_output().expect("wait")
    }

    /// Waits for it to exit on its own, at most `limit` (it is killed if not); returns its
    /// exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child();
        wait_until("process exits", limit, || {
            let status = child.try_wait().expect("try_wait");
            async move { status.map(|s| s.code()).ok_or("still running") }
        })
        .await
    }

    /// Waits for it to exit and collects what it wrote to piped stdout/stderr.
    pub fn wait_with_output(mut self) -> Output {
        self.0
            .take()
            .expect("process already collected")
            .wait_with_output()
            .expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Runs `cmd` with `input` on its stdin (written from a thread, so a large output cannot
/// block it) and stdout/stderr piped; asserts all of `input` was written.
pub fn pipe_through(cmd: &mut Command, input: &str) -> Output {
    let (out, written) = with_stdin(cmd, input);
    written.expect("write stdin");
    out
}

/// [`pipe_through`] for a command that may refuse and exit before reading its stdin: a
/// failed write is not an error.
pub fn offer_stdin(cmd: &mut Command, input: &str) -> Output {
    with_stdin(cmd, input).0
}

fn with_stdin(cmd: &mut Command, input: &str) -> (Output, std::io::Result<()>) {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sqs2pg");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    (out, writer.join().expect("stdin writer"))
}

/// Stdout of a command that must succeed.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `name   value` lines of a printed summary (run, rekey, replay), by name, whatever
/// the padding: the name ends at the first run of two spaces (or the last space). An
/// indented `  reason: n` line under `rejected` is `rejected/reason`.
pub fn summary_fields(stdout: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut parent = String::new();
    for line in stdout.lines() {
        if line.starts_with(' ') {
            if let Some((reason, n)) = line.trim().rsplit_once(": ") {
                fields.insert(format!("{parent}/{reason}"), n.trim().to_owned());
            }
            continue;
        }
        let line = line.trim_end();
        let split = line.split_once("  ").or_else(|| line.rsplit_once(' '));
        if let Some((name, value)) = split {
            parent = name.trim().to_owned();
            fields.insert(parent.clone(), value.trim().to_owned());
        }
    }
    fields
}

/// The whole-number fields of [`summary_fields`] (`elapsed` and `rate` are left out).
pub fn summary_numbers(stdout: &str) -> BTreeMap<String, u64> {
    summary_fields(stdout)
        .into_iter()
        .filter_map(|(k, v)| v.parse().ok().map(|n| (k, n)))
        .collect()
}

/// A valid login body.
pub fn login(user_id: &str, ip: &str, device_id: &str) -> String {
    serde_json::json!({
        "user_id": user_id, "app_version": "1.2.3", "device_type": "ios",
        "ip": ip, "locale": "US", "device_id": device_id,
    })
    .to_string()
}

/// The original exercise's 100 messages, when `../shared` is beside the checkout (or
/// `SQS2PG_SAMPLE_FILE` names it).
pub fn sample_file() -> Option<std::path::PathBuf> {
    let candidates = [
        std::env::var_os("SQS2PG_SAMPLE_FILE").map(Into::into),
        Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/data/fetch-login-sample.json"),
        ),
        Some("/work/shared/data/fetch-login-sample.json".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p: &std::path::PathBuf| p.is_file())
}

/// A masker on `keys` (a keyring's text), to compute and open tokens as the product does.
pub fn masker(keys: &str) -> TestMasker {
    TestMasker(Masker::new(&Keyring::parse(keys).expect("keys")))
}

/// The writing key id of a keyring's text (its first entry).
pub fn writing_kid(keys: &str) -> String {
    Keyring::parse(keys).expect("keys").writing_kid().to_owned()
}

/// Masks and reveals with one keyring; every call panics if the product would refuse.
pub struct TestMasker(Masker);

impl TestMasker {
    /// The token of an ip address (any spelling `IpAddr` parses).
    pub fn mask_ip(&mut self, ip: &str) -> String {
        self.0.mask_ip(ip.parse().expect("ip"))
    }

    /// The original of an ip token.
    pub fn reveal_ip(&mut self, token: &str) -> String {
        self.0.reveal(Column::Ip, token).expect("reveal ip")
    }

    /// The original of a device id token.
    pub fn reveal_device_id(&mut self, token: &str) -> String {
        self.0
            .reveal(Column::DeviceId, token)
            .expect("reveal device id")
    }

    /// The body of a sealed reject, verbatim.
    pub fn reveal_body(&mut self, sealed: &str) -> String {
        self.0.reveal(Column::Body, sealed).expect("reveal body")
    }
}

/// One writer's connection to the test database, with the limits it read from the table
/// and a masker on [`KEYS`], to drive the sink without the pipeline around it.
pub struct TestSink {
    sink: BatchWriter,
    limits: Limits,
    masker: TestMasker,
}

/// What a sink write did (rows, rejects by reason, duplicates).
pub type Written = WriteReport;

/// A record the sink takes: one message's outcome.
pub type SinkRecord = Record;

impl TestSink {
    /// What a writer would make of the message `id` with `body` (received once, no sent
    /// time).
    pub fn record(&mut self, id: &str, body: &str) -> SinkRecord {
        let msg = Received {
            message_id: id.into(),
            receipt_handle: String::new(),
            body: sqs2pg::pii::Pii::new(body.to_owned()),
            sent_at: None,
            receive_count: None,
        };
        self.transform(&msg)
    }

    fn transform(&mut self, msg: &Received) -> SinkRecord {
        Record {
            message_id: msg.message_id.clone(),
            outcome: sqs2pg::transform::transform(msg, &self.limits, &mut self.masker.0).outcome,
        }
    }

    /// Commits one batch; panics if the sink returns an error.
    pub async fn write(&mut self, batch: &[SinkRecord]) -> Written {
        let refs: Vec<&SinkRecord> = batch.iter().collect();
        self.sink.write(&refs).await.expect("sink write")
    }

    /// [`TestSink::write`] as if the clock read `at` (the ledger's generations follow it).
    pub async fn write_at(&mut self, batch: &[&SinkRecord], at: SystemTime) -> Written {
        self.sink.write_at(batch, at).await.expect("sink write")
    }

    /// Transforms and commits received messages as one writer batch (without deleting
    /// them from the queue).
    pub async fn write_received(&mut self, msgs: &[Received]) -> Written {
        let records: Vec<SinkRecord> = msgs.iter().map(|m| self.transform(m)).collect();
        self.write(&records).await
    }
}

/// Synthetic bodies as `sqs2pg send --synthetic` makes them, reproducible by `seed`.
pub fn synthetic(count: usize, malformed_rate: f64, duplicate_rate: f64, seed: u64) -> Vec<String> {
    sqs2pg::synth::generate(sqs2pg::synth::SynthOptions {
        count,
        duplicate_rate,
        malformed_rate,
        seed,
    })
}

/// `(user_id, ip)` of a body the contract accepts, `None` for one it rejects.
pub fn decode_valid(body: &str) -> Option<(String, Option<String>)> {
    sqs2pg::decode::decode(body.as_bytes(), &Limits::default())
        .ok()
        .map(|l| (l.user_id, l.ip.map(|ip| ip.expose().to_string())))
}

/// An SDK config for LocalStack, the one the binary builds.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    init_env();
    sqs2pg::aws::sdk_config().await
}

/// The Lambda handler on the test database with [`KEYS`].
pub async fn lambda_handler(env: &TestEnv) -> sqs2pg::lambda::Handler {
    let db = DbConfig::new(&env.database_url, None).expect("db url");
    sqs2pg::lambda::Handler::new(db, &Keyring::parse(KEYS).expect("keys"))
        .await
        .expect("lambda handler")
}
