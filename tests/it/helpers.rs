//! Per-test environment: its own SQS queue on LocalStack and its own Postgres database,
//! both real, both removed when the test ends (pass or fail).

use std::process::{Command, Output};
use std::sync::{Arc, Once};
use std::time::Duration;

use sqs2pg::config::{DbConfig, PipelineConfig, RunConfig, SqsConfig};
use sqs2pg::mask::Keyring;
use sqs2pg::source::{QueueDepth, Source};
use sqs2pg::telemetry::{Stats, Summary};
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

/// A fixed test key (64 bytes of 0x2a) so failures can be reproduced by hand.
pub const KEYS: &str =
    "t1=KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKg==";

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Points the AWS SDK at local LocalStack unless the caller already chose an endpoint.
/// Never real AWS: without AWS_ENDPOINT_URL the tests use 127.0.0.1:4566.
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
    });
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
    db_name: String,
    /// A source on the test queue.
    pub source: Source,
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
        let admin = connect(&admin_url()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {db_name}"))
            .await
            .expect("create test database (is Postgres up? `scripts/services up`)");
        let database_url = url_for_db(&admin_url(), &db_name);
        if migrate {
            let mut c = connect(&database_url).await;
            sqs2pg::sink::migrate(&mut c, false).await.expect("migrate");
        }
        Self {
            queue_name,
            queue_url,
            database_url,
            db_name,
            source,
        }
    }

    /// A client on the test database.
    pub async fn db(&self) -> Client {
        connect(&self.database_url).await
    }

    /// Pipeline settings for tests: short long-polls so drain runs end quickly.
    pub fn pipeline_config(&self) -> PipelineConfig {
        PipelineConfig {
            pollers: 4,
            writers: 2,
            batch_size: 100,
            batch_wait: Duration::from_millis(50),
            wait_seconds: 1,
            until_empty: true,
            progress: false,
            shutdown_timeout: Duration::from_secs(10),
            metrics_addr: None,
        }
    }

    /// A run configuration on this test's queue and database.
    pub fn run_config(&self, pipeline: PipelineConfig) -> RunConfig {
        RunConfig {
            sqs: SqsConfig {
                queue_url: Some(self.queue_url.clone()),
                queue_name: self.queue_name.clone(),
            },
            db: DbConfig::parse(&self.database_url).expect("db url"),
            keyring: Keyring::parse(KEYS).expect("keys"),
            pipeline,
        }
    }

    /// Runs the consumer in-process until the queue is drained.
    pub async fn drain(&self) -> Summary {
        sqs2pg::pipeline::run(
            self.run_config(self.pipeline_config()),
            CancellationToken::new(),
            Arc::new(Stats::default()),
        )
        .await
        .expect("drain run")
    }

    /// Sends bodies verbatim.
    pub async fn send<S: AsRef<str>>(&self, bodies: &[S]) {
        let owned: Vec<String> = bodies.iter().map(|b| b.as_ref().to_owned()).collect();
        self.source.send(&owned, 8).await.expect("send");
    }

    /// Visible and in-flight counts (LocalStack's are exact).
    pub async fn depth(&self) -> QueueDepth {
        self.source.depth().await.expect("depth")
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
pub async fn connect(url: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to Postgres ({e}); is it up? `scripts/services up`"));
    tokio::spawn(conn);
    c
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
