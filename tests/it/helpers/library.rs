//! Library types the tests drive directly (masker, sink, Lambda handler, synthetic data),
//! each behind a helper so that an API change is adapted here once.

use std::time::SystemTime;

use sqs2pg::config::DbConfig;
use sqs2pg::db::{Sink, WriteReport};
use sqs2pg::decode::Limits;
use sqs2pg::mask::{Column, Keyring, Masker};
use sqs2pg::source::Received;
use sqs2pg::transform::Record;

use super::*;

/// A valid login body.
pub fn login(user_id: &str, ip: &str, device_id: &str) -> String {
    serde_json::json!({
        "user_id": user_id, "app_version": "1.2.3", "device_type": "ios",
        "ip": ip, "locale": "US", "device_id": device_id,
    })
    .to_string()
}

/// The original exercise's 100 messages, when `../shared` is beside the checkout, or the
/// file `SQS2PG_SAMPLE_FILE` names: when it is set it is the only candidate, so a wrong
/// path fails the test instead of quietly falling back to another copy.
pub fn sample_file() -> Option<std::path::PathBuf> {
    if let Some(named) = std::env::var_os("SQS2PG_SAMPLE_FILE") {
        let named = std::path::PathBuf::from(named);
        return named.is_file().then_some(named);
    }
    let candidates = [
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
pub struct TestMasker(pub(crate) Masker);

impl TestMasker {
    /// The token of `value` under a mapping's token context.
    pub fn token(&mut self, context: &str, value: &str) -> String {
        self.0.seal_context(context, value.as_bytes())
    }

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
    pub(crate) sink: Sink,
    /// What `run` makes records by on the test's `user_logins`.
    pub(crate) recipe: sqs2pg::transform::Recipe,
    pub(crate) masker: TestMasker,
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
            framing: Default::default(),
            extra: Default::default(),
        };
        self.transform(&msg)
    }

    fn transform(&mut self, msg: &Received) -> SinkRecord {
        Record {
            message_id: msg.message_id.clone(),
            outcome: sqs2pg::transform::transform(msg, &self.recipe, &mut self.masker.0).outcome,
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

/// A row as the tests compare it: the PII opened back to what was sent, app_version encoded
/// for the contract's integer column.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedRow {
    pub user_id: String,
    pub device_type: Option<String>,
    pub ip: Option<String>,
    pub device_id: Option<String>,
    pub locale: Option<String>,
    pub app_version: Option<i32>,
}

/// The row a body the contract accepts must become, or the reason it is rejected.
pub fn expected_row(body: &str) -> Result<ExpectedRow, String> {
    let l =
        sqs2pg::decode::decode(body.as_bytes(), &Limits::default()).map_err(|r| r.to_string())?;
    let app_version = match l.app_version {
        None => None,
        Some(sqs2pg::decode::AppVersion::Int(v)) => Some(i32::try_from(v).expect("int column")),
        Some(sqs2pg::decode::AppVersion::Text(t)) => panic!("default limits encode {t:?}"),
    };
    Ok(ExpectedRow {
        user_id: l.user_id,
        device_type: l.device_type,
        ip: l.ip.map(|ip| ip.expose().to_string()),
        device_id: l.device_id.map(|d| d.expose().clone()),
        locale: l.locale,
        app_version,
    })
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

/// An SQS event as Lambda delivers it, one record per `(message id, body)`.
pub fn sqs_event(records: &[(&str, &str)]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1732406400000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1732406400001"
                },
                "messageAttributes": {},
                "md5OfBody": "x",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:login-queue",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

/// The message ids a Lambda response asks to be retried, sorted.
pub fn failed_ids(resp: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

/// The built-in login mapping as `sqs2pg mapping print` prints it.
pub const LOGIN_MAPPING: &str = sqs2pg::mapping::login::LOGIN_TOML;

/// A table as a mapping's compiler reads it from the catalog; `None` when there is none.
pub async fn read_catalog(db: &Db, table: &str) -> Option<sqs2pg::mapping::catalog::TableInfo> {
    sqs2pg::mapping::catalog::read(&db.0, table)
        .await
        .expect("read the catalog")
}
