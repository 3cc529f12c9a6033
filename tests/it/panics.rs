//! Panics, made on purpose through failpoints (the `failpoints` feature; `make test` builds
//! with it): a panic while decoding is contained, a panic while committing ends the run and
//! gives back what was held, a background task's panic ends it too, and none prints what it
//! was handling.

use sqs2pg::failpoint::{COMMIT, HEALTH, HEARTBEAT, TRANSFORM};

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::helpers::{
    failed_ids, free_port, lambda_handler, login, sqs_event, stderr, stdout_ok, Proc, TestEnv,
};
use crate::reliability::workload;

const IP: &str = "203.0.113.77";
const DEVICE: &str = "device-under-test";

/// Runs a daemon to its end; the test fails if it still runs after a minute (a panic that
/// vanished would leave it running for ever).
async fn daemon_output(cmd: &mut Command) -> Output {
    let mut daemon = Proc::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()));
    daemon.wait_exit(Duration::from_secs(60)).await;
    daemon.wait_with_output()
}

/// `FAILPOINTS` for the binary: failpoint `name` fires for bodies containing `text`.
fn failpoint(name: &str, text: &str) -> (&'static str, String) {
    ("FAILPOINTS", format!("{name}=return({text})"))
}

/// A panic while decoding one message is contained: that message is quarantined as
/// `internal_error`, the rest load, and the run ends normally.
#[tokio::test(flavor = "multi_thread")]
async fn a_panic_while_decoding_becomes_a_reject_and_the_run_goes_on() {
    let env = TestEnv::new().await;
    let w = workload(30, 0.0, 0.0, 19);
    let panics = login("panics-while-decoding", IP, DEVICE);
    let mut bodies = w.bodies.clone();
    bodies.insert(10, panics.clone());
    env.send(&bodies).await;
    let (k, v) = failpoint(TRANSFORM, "panics-while-decoding");
    let out = env
        .cmd(&["run", "--until-empty", "--wait-seconds", "1"])
        .env(k, v)
        .output()
        .expect("run");
    stdout_ok(&out);
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins").await,
        30,
        "every other message loaded"
    );
    assert_eq!(
        env.revealed_rejects().await,
        vec![(panics, "internal_error".to_owned())]
    );
}

/// A panic contained while decoding: stderr names the panic's location but not its message,
/// which could quote a body.
#[tokio::test(flavor = "multi_thread")]
async fn a_contained_panic_prints_its_location_not_its_message() {
    let env = TestEnv::new().await;
    env.send(&[
        login("panic-quotes-me", IP, DEVICE),
        login("after-panic", IP, DEVICE),
    ])
    .await;
    let (k, v) = failpoint(TRANSFORM, "panic-quotes-me");
    let out = env
        .cmd(&["run", "--until-empty", "--wait-seconds", "1"])
        .env(k, v)
        .output()
        .expect("run");
    let err = stderr(&out);
    stdout_ok(&out);
    assert!(!err.contains("failpoint transform fired"), "{err}");
    assert!(err.contains("panic at src/transform/"), "{err}");
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 1);
}

/// A writer panics: the process exits non-zero, and the messages it held are released to
/// the queue at once rather than after their visibility timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_writer_exits_non_zero_and_releases_its_messages() {
    let env = TestEnv::with_visibility(300).await;
    let mut bodies: Vec<String> = workload(20, 0.0, 0.0, 32).bodies;
    bodies.push(login("panics-in-the-writer", IP, DEVICE));
    env.send(&bodies).await;
    let (k, v) = failpoint(COMMIT, "panics-in-the-writer");
    let out = daemon_output(
        env.cmd(&["run", "--batch-wait-ms", "2000", "--wait-seconds", "1"])
            .env(k, v),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the writer task panicked"),
        "{}",
        stderr(&out)
    );
    let d = env.depth().await;
    assert_eq!(d.in_flight, 0, "nothing left held: {d:?}");
    assert!(
        d.visible >= 1,
        "the panicking batch is back on the queue: {d:?}"
    );
}

/// The Lambda handler's commit panics: every message of the batch comes back as a
/// `batchItemFailure` (none is lost to a swallowed panic), and the warm instance goes on
/// committing the next event.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_lambda_commit_fails_every_message_of_its_batch() {
    let env = TestEnv::new().await;
    let handler = lambda_handler(&env).await;
    // In this process: bodies of other tests never hold this text.
    sqs2pg::failpoint::configure(COMMIT, "panics-in-the-lambda-commit").expect("failpoint");
    let good = login("lambda-p", "10.6.0.9", "d");
    let panics = login("panics-in-the-lambda-commit", "10.6.0.9", "d");
    let resp = handler
        .handle(sqs_event(&[("p-1", &good), ("p-2", &panics)]))
        .await;
    assert_eq!(failed_ids(&resp), ["p-1", "p-2"]);
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 0);
    let resp = handler.handle(sqs_event(&[("p-1", &good)])).await;
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 1);
}

/// A background task that panics (the heartbeat; the health probes when metrics are served)
/// ends a daemon's run like a stage's panic does: exit 1, naming the task.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_heartbeat_or_health_probe_ends_the_run_with_exit_1() {
    // A 4 s visibility timeout: the heartbeat beats every second.
    let env = TestEnv::with_visibility(4).await;
    for (task, extra) in [
        (HEARTBEAT, vec![]),
        (
            HEALTH,
            vec![
                "--metrics-addr".to_owned(),
                format!("127.0.0.1:{}", free_port()),
            ],
        ),
    ] {
        let mut args = vec!["run", "--wait-seconds", "1"];
        args.extend(extra.iter().map(String::as_str));
        let out = daemon_output(env.cmd(&args).env("FAILPOINTS", format!("{task}=panic"))).await;
        assert_eq!(out.status.code(), Some(1), "{task}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("the {task} task panicked")),
            "{task}: {}",
            stderr(&out)
        );
    }
}
