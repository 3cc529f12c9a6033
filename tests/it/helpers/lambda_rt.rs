//! The real Lambda Runtime API (`cargo lambda watch --only-lambda-apis`) on loopback, the
//! `sqs2pg-lambda` binary polling it as Lambda's `provided.al2023` runtime would, and
//! invocations sent with `cargo lambda invoke`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;

/// The function name `cargo lambda watch` serves on the bare `/.rt` path.
const FUNCTION: &str = "_";

/// A Runtime API emulator and, once started, the function binary attached to it.
pub struct LambdaRuntime {
    port: u16,
    dir: PathBuf,
    _watch: Proc,
    function: Option<Proc>,
    /// Between the function and the emulator when the test gives the function a timeout.
    deadlines: Option<RuntimeDeadlines>,
}

impl LambdaRuntime {
    /// Starts `cargo lambda watch --only-lambda-apis` on a free loopback port and waits until
    /// it accepts connections.
    pub async fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sqs2pg-it-lambda-{port}"));
        std::fs::create_dir_all(&dir).expect("lambda test dir");
        let log = std::fs::File::create(dir.join("watch.log")).expect("watch log");
        let watch = Proc::spawn(
            Command::new(cargo_lambda())
                .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
                .args(["-P", &port.to_string(), "--timeout", "120"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdout(Stdio::null())
                .stderr(log),
        );
        let rt = Self {
            port,
            dir,
            _watch: watch,
            function: None,
            deadlines: None,
        };
        let addr = format!("127.0.0.1:{port}");
        wait_until(
            "cargo lambda watch listens",
            Duration::from_secs(30),
            || {
                let open = std::net::TcpStream::connect(&addr).is_ok();
                async move { open }
            },
        )
        .await;
        rt
    }

    /// Runs the `sqs2pg-lambda` binary against the Runtime API with `DATABASE_URL` set to
    /// `database_url` and the test key, as Lambda would start it at a cold start.
    pub fn start_function(&mut self, database_url: &str) {
        self.start_function_with(database_url, &[]);
    }

    /// [`LambdaRuntime::start_function`] with `envs` added to the function's environment;
    /// its stdout goes to a file of its own, read back with the log by
    /// [`LambdaRuntime::function_output`].
    pub fn start_function_with(&mut self, database_url: &str, envs: &[(&str, &str)]) {
        self.spawn_function(database_url, envs, self.port);
    }

    /// [`LambdaRuntime::start_function`] for a function whose timeout is `timeout`: each
    /// invocation carries the deadline Lambda would give it (see [`RuntimeDeadlines`]).
    pub async fn start_function_with_timeout(&mut self, database_url: &str, timeout: Duration) {
        let upstream = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadlines = RuntimeDeadlines::start(upstream, timeout).await;
        self.spawn_function(database_url, &[], deadlines.addr.port());
        self.deadlines = Some(deadlines);
    }

    /// The latest invocation's deadline and answer, for a function started with a timeout.
    pub fn last_invocation(&self) -> Option<Invocation> {
        self.deadlines.as_ref().and_then(RuntimeDeadlines::last)
    }

    fn spawn_function(&mut self, database_url: &str, envs: &[(&str, &str)], runtime_api_port: u16) {
        let log = std::fs::File::create(self.dir.join("function.log")).expect("function log");
        let out = std::fs::File::create(self.dir.join("function.out")).expect("function out");
        let mut cmd = Command::new(lambda_binary());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{runtime_api_port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/sqs2pg")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "it")
            .env("DATABASE_URL", database_url)
            .env("SQS2PG_KEYS", KEYS)
            .envs(envs.iter().copied())
            .stdout(out)
            .stderr(log);
        self.function = Some(Proc::spawn(&mut cmd));
    }

    /// Everything the function wrote so far, stdout then stderr.
    pub fn function_output(&self) -> String {
        let out = std::fs::read_to_string(self.dir.join("function.out")).unwrap_or_default();
        out + &self.function_log()
    }

    /// What the function logged so far (JSON lines), for failure messages.
    pub fn function_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("function.log")).unwrap_or_default()
    }

    /// Sends `event` through `cargo lambda invoke --data-file` and returns the function's
    /// answer.
    pub async fn invoke(&self, event: &serde_json::Value) -> serde_json::Value {
        let file = self
            .dir
            .join(format!("event-{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, event.to_string()).expect("write event");
        let mut cmd = Command::new(cargo_lambda());
        cmd.args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &self.port.to_string(),
        ])
        .arg("--data-file")
        .arg(&file)
        .args(["-o", "json", FUNCTION]);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("invoke task")
            .expect("run cargo lambda invoke");
        assert!(
            out.status.success(),
            "cargo lambda invoke: {}\nfunction log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.function_log()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "the function's answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for LambdaRuntime {
    fn drop(&mut self) {
        self.function.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One SQS record of a Lambda event: its id, body and the attributes Lambda copies from SQS.
pub struct SqsRecord<'a> {
    /// `messageId`, or none for a hand-made record without one.
    pub id: Option<&'a str>,
    /// The message body, verbatim.
    pub body: &'a str,
    /// `ApproximateReceiveCount`.
    pub receive_count: u32,
}

/// An event of one record per `(id, body)` pair, each received once.
pub fn event_of(ids: &[String], bodies: &[String]) -> serde_json::Value {
    let records: Vec<SqsRecord> = ids
        .iter()
        .zip(bodies)
        .map(|(id, body)| SqsRecord {
            id: Some(id),
            body,
            receive_count: 1,
        })
        .collect();
    sqs_event_json(&records)
}

/// An SQS event as Lambda's event source mapping delivers it (`SentTimestamp` a second ago).
pub fn sqs_event_json(records: &[SqsRecord]) -> serde_json::Value {
    let sent_ms = chrono::Utc::now().timestamp_millis() - 1000;
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut rec = serde_json::json!({
                "receiptHandle": format!("handle-{}", uuid::Uuid::new_v4().simple()),
                "body": r.body,
                "attributes": {
                    "ApproximateReceiveCount": r.receive_count.to_string(),
                    "SentTimestamp": sent_ms.to_string(),
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": (sent_ms + 5).to_string()
                },
                "messageAttributes": {},
                "md5OfBody": "not-checked",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:login-queue",
                "awsRegion": "us-east-1"
            });
            if let Some(id) = r.id {
                rec["messageId"] = id.into();
            }
            rec
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// The `itemIdentifier`s of a `batchItemFailures` answer, sorted.
pub fn failed_item_ids(answer: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {answer}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap_or("?").to_owned())
        .collect();
    ids.sort();
    ids
}
