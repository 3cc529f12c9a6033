//! Events from other AWS services, as they really arrive: moto's server (not LocalStack)
//! sends them into a queue on it, through boto3 in moto's venv
//! (`foreign_events.py` beside this file). S3 sends a bucket's event notifications, EventBridge
//! a rule's matches, SNS a topic's notifications; each test names its own queue, and every
//! resource made for it is named after that queue.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::services::Sqs;

/// The service whose events [`produce`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// A bucket whose notification configuration targets the queue: an `s3:TestEvent` when
    /// it is set, then one `ObjectCreated:Put` for the object put (a `Records` array of one).
    S3,
    /// A rule on a bus of its own whose target is the queue: an `OrderPlaced` (nested order,
    /// numeric amount, items, customer email), a `Heartbeat` and a `RefundIssued`.
    EventBridge,
    /// A topic the queue is subscribed to, raw delivery off: two notifications (subject
    /// `account`) whose `Message` is an account event.
    Sns,
}

impl Foreign {
    /// `s3`, `eventbridge`, `sns`: the script's argument and the example's file name.
    pub fn name(self) -> &'static str {
        match self {
            Foreign::S3 => "s3",
            Foreign::EventBridge => "eventbridge",
            Foreign::Sns => "sns",
        }
    }

    /// The `--envelope` its bodies are read with.
    pub fn envelope(self) -> &'static str {
        match self {
            Foreign::S3 => "none",
            Foreign::EventBridge => "eventbridge",
            Foreign::Sns => "sns",
        }
    }

    /// `examples/mappings/NAME.toml`, the example mapping for these events.
    pub fn mapping(self) -> PathBuf {
        examples_dir().join(format!("{}.toml", self.name()))
    }

    /// The DDL of the example's table (`examples/mappings/NAME.sql`).
    pub fn ddl(self) -> String {
        let path = examples_dir().join(format!("{}.sql", self.name()));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }
}

/// `examples/mappings` of this checkout.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mappings")
}

/// Makes moto's `kind` service send its events into `queue_url`, a queue on moto's server
/// (a [`super::TestEnv::on`]`(Sqs::Moto)` queue); returns how many messages the queue will
/// hold. Blocks until the events are sent (moto delivers them before its call returns).
pub fn produce(kind: Foreign, queue_url: &str) -> usize {
    let out = script(&["produce", kind.name(), queue_url]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("foreign_events.py produce printed {out:?}, not a count"))
}

/// Receives every message of `queue_url` on moto (at most 30 s), deletes them, asserts there
/// were exactly `n`, and returns their bodies as they arrived.
pub fn receive_bodies(queue_url: &str, n: usize) -> Vec<String> {
    let out = script(&["receive", queue_url, &n.to_string()]);
    let bodies: Vec<String> = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("foreign_events.py receive printed no JSON list ({e}): {out}"));
    assert_eq!(bodies.len(), n, "moto delivered {bodies:?}");
    bodies
}

/// `bodies` as a JSON array of the bodies themselves (a `--sample` file): SNS bodies are
/// JSON over several lines, so one per line would not do.
pub fn sample_text(bodies: &[String]) -> String {
    format!("[{}]", bodies.join(",\n"))
}

/// Runs `foreign_events.py ARGS` with moto's venv, its endpoint set; its stdout.
fn script(args: &[&str]) -> String {
    let endpoint = Sqs::Moto.endpoint().expect("moto's endpoint");
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/helpers/foreign_events.py");
    let out = Command::new(moto_python())
        .arg(&py)
        .args(args)
        .env("SQS2PG_MOTO_URL", &endpoint)
        .output()
        .expect("run moto's python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "foreign_events.py {args:?} failed ({}): {stderr}",
        out.status
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The python of moto's venv: `SQS2PG_MOTO_PYTHON` (which `scripts/services env` exports),
/// else the venv `scripts/services up` built in its cache directory.
pub fn moto_python() -> PathBuf {
    if let Some(p) = std::env::var_os("SQS2PG_MOTO_PYTHON").map(PathBuf::from) {
        assert!(
            p.is_file(),
            "SQS2PG_MOTO_PYTHON={} is not a file: run `scripts/services up`",
            p.display()
        );
        return p;
    }
    let cache = std::env::var_os("SQS2PG_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("sqs2pg")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/sqs2pg")))
        .expect("no HOME: set SQS2PG_MOTO_PYTHON");
    std::fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("moto-venv-"))
                && d.join(".sqs2pg-complete").is_file()
        })
        .map(|d| d.join("bin/python"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no moto venv in {}: run `scripts/services up`, then eval \"$(scripts/services env)\"",
                cache.display()
            )
        })
}
