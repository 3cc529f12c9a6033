//! `Pipeline::build` does everything that can fail before the first message, and fails
//! without receiving anything: a message on the queue stays there, visible.

use std::process::Stdio;
use std::time::Duration;

use sqs2pg::db::DbError;
use sqs2pg::pipeline::PipelineError;
use sqs2pg::source::SourceError;

use crate::faults::{Forbidden, Proxy, SqsFaults};
use crate::helpers::{http_get, login, stderr, wait_until, Proc, TestEnv};
use crate::ops::{free_addr, sample, wait_status};

#[tokio::test(flavor = "multi_thread")]
async fn build_refuses_a_database_without_tables_and_receives_nothing() {
    let env = TestEnv::unmigrated().await;
    env.send(&[login("u1", "10.0.0.1", "d1")]).await;
    let err = env
        .build_pipeline(|_| {})
        .await
        .err()
        .expect("build must fail");
    assert!(
        matches!(err, PipelineError::Db(DbError::NotMigrated(_))),
        "{err}"
    );
    assert!(err.to_string().contains("sqs2pg migrate"), "{err}");
    let depth = env.depth().await;
    assert_eq!(
        (depth.visible, depth.in_flight),
        (1, 0),
        "nothing was received"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn build_refuses_a_queue_that_does_not_exist() {
    let env = TestEnv::new().await;
    let err = env
        .build_pipeline(|cfg| {
            cfg.sqs.queue_url = None;
            cfg.sqs.queue_name = format!("{}-missing", env.queue_name);
        })
        .await
        .err()
        .expect("build must fail");
    assert!(
        matches!(
            err,
            PipelineError::Source(SourceError::QueueNotFound { .. })
        ),
        "{err}"
    );
    assert!(
        sqs2pg::error::Classified::is_usage(&err),
        "a missing queue is the user's to fix: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn build_refuses_a_metrics_address_in_use() {
    let env = TestEnv::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = env
        .build_pipeline(|cfg| cfg.pipeline.metrics_addr = Some(addr))
        .await
        .err()
        .expect("build must fail");
    assert!(
        matches!(err, PipelineError::Metrics(a, _) if a == addr),
        "{err}"
    );
    assert!(err.to_string().contains("--metrics-addr"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_built_pipeline_runs_until_the_queue_is_empty() {
    let env = TestEnv::new().await;
    env.send(&[login("u1", "10.0.0.1", "d1"), login("u2", "10.0.0.2", "d2")])
        .await;
    let pipeline = env.build_pipeline(|_| {}).await.expect("build");
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        pipeline.run_until_stopped(Default::default()),
    )
    .await
    .expect("drain finishes")
    .expect("drain run");
    assert_eq!(
        (summary.received, summary.loaded, summary.deleted),
        (2, 2, 2)
    );
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 2);
}

/// An SQS endpoint that refuses connections is an outage, not a missing queue: `run` exits 1
/// (a service manager restarts it; exit 2 would keep it down for good) and says it could not
/// reach SQS, whether it was resolving the queue's name or reading a given URL's attributes.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_sqs_endpoint_exits_1_as_an_outage_not_a_missing_queue() {
    let env = TestEnv::new().await;
    let refused = "http://127.0.0.1:1";
    let by_name = env
        .cmd(&["run", "--until-empty"])
        .env("AWS_ENDPOINT_URL", refused)
        .env_remove("SQS2PG_QUEUE_URL")
        .output()
        .expect("spawn sqs2pg");
    let by_url = env
        .cmd(&["run", "--until-empty"])
        .env("AWS_ENDPOINT_URL", refused)
        .env("SQS2PG_QUEUE_URL", format!("{refused}/000000000000/q"))
        .output()
        .expect("spawn sqs2pg");
    for (out, op) in [(by_name, "GetQueueUrl"), (by_url, "GetQueueAttributes")] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("cannot reach SQS for {op}")), "{err}");
        assert!(!err.contains("not found"), "{err}");
    }
}

/// No credentials anywhere in the chain: exit 2 with one line that says what to set, not
/// the chain's account of every provider it tried.
#[tokio::test(flavor = "multi_thread")]
async fn missing_aws_credentials_exit_2_with_one_line_saying_what_to_set() {
    let env = TestEnv::new().await;
    let out = env
        .cmd(&["run", "--until-empty"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env("HOME", "/nonexistent-home")
        .output()
        .expect("spawn sqs2pg");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("error: no AWS credentials found"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// A call the IAM policy does not allow is a grant to add, not an outage and not a missing
/// queue: `run` exits 2 with one line naming the IAM action to grant (the batch-free name
/// IAM uses) and the service's own code, whether it was resolving the queue's name or
/// reading a given URL's attributes.
#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_call_iam_refuses_exits_2_naming_the_action_to_grant() {
    let env = TestEnv::new().await;
    let iam = SqsFaults::start(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await;
    iam.deny("GetQueueUrl");
    iam.deny("GetQueueAttributes");
    let by_name = env
        .cmd(&["run", "--until-empty"])
        .env("AWS_ENDPOINT_URL", iam.url())
        .env_remove("SQS2PG_QUEUE_URL")
        .output()
        .expect("spawn sqs2pg");
    let by_url = env
        .cmd(&["run", "--until-empty"])
        .env("AWS_ENDPOINT_URL", iam.url())
        .output()
        .expect("spawn sqs2pg");
    for (out, action) in [
        (by_name, "sqs:GetQueueUrl"),
        (by_url, "sqs:GetQueueAttributes"),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("not allowed to call {action} (AccessDenied: ")),
            "{err}"
        );
        assert!(err.contains("grant it in the IAM policy"), "{err}");
        assert!(!err.contains("not found"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

/// A daemon started while SQS refuses connections waits for it, as it does for Postgres:
/// it stays up, trying again with backoff, `/readyz` answers 503 naming the queue
/// meanwhile, and once SQS answers it loads what is sent. (A drain run reports the outage at
/// once: see [`an_unreachable_sqs_endpoint_exits_1_as_an_outage_not_a_missing_queue`].)
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_started_while_sqs_is_unreachable_waits_for_it_then_loads() {
    let env = TestEnv::new().await;
    let sqs = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let target = sqs
        .trim_start_matches("http://")
        .parse()
        .expect("host:port");
    let proxy = Proxy::start(target).await;
    proxy.refuse(true);
    let addr = free_addr();
    let mut daemon = Proc::spawn(
        env.cmd(&["run", "--wait-seconds", "1", "--metrics-addr", &addr])
            .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_status(&addr, "/readyz", 503, Duration::from_secs(30)).await;
    let why = http_get(&addr, "/readyz").expect("readyz").1;
    assert!(why.contains("queue unreachable"), "{why}");
    let tries = r#"sqs2pg_sqs_requests_total{kind="get_attributes"}"#;
    wait_until("a second try at SQS", Duration::from_secs(60), || async {
        let metrics = http_get(&addr, "/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default();
        match sample(&metrics, tries) {
            Some(n) if n >= 2.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(daemon.try_exit_code(), None, "the daemon is still up");

    proxy.refuse(false);
    env.send(&[login("u1", "10.0.0.1", "d1")]).await;
    wait_until("the message is loaded", Duration::from_secs(60), || async {
        match env.count("SELECT count(*) FROM user_logins").await {
            1 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    wait_status(&addr, "/readyz", 200, Duration::from_secs(30)).await;
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)).await, Some(0));
}

/// No region anywhere and an instance metadata service that answers 403 (an EKS pod with a
/// hop limit of 1): the SDK's warning, which dumps the raw HTTP response, never shows; the
/// user reads one line saying what to set, and the run exits 2.
#[tokio::test(flavor = "multi_thread")]
async fn no_region_with_imds_answering_403_is_one_line_saying_what_to_set() {
    let env = TestEnv::new().await;
    let imds = Forbidden::start().await;
    let out = env
        .cmd(&["run", "--until-empty"])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env("HOME", "/nonexistent-home")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url())
        .output()
        .expect("spawn sqs2pg");
    let err = stderr(&out);
    assert!(imds.requests() > 0, "IMDS was asked for the region");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: no AWS region configured: set AWS_REGION"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// KMS refusing to unwrap a key by policy names the IAM action to grant, exit 2, one line:
/// the same classification as SQS's.
#[tokio::test(flavor = "multi_thread")]
async fn a_kms_decrypt_iam_refuses_exits_2_naming_kms_decrypt() {
    let env = TestEnv::new().await;
    let kms = Forbidden::kms_access_denied().await;
    let out = env
        .cmd(&["run", "--until-empty"])
        .env("SQS2PG_KEYS", "k1=kms:AAAAAAAAAAAAAAAAAAAAAA==")
        .env("AWS_ENDPOINT_URL_KMS", kms.url())
        .output()
        .expect("spawn sqs2pg");
    let err = stderr(&out);
    assert!(kms.requests() > 0, "KMS was asked");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not allowed to call kms:Decrypt (AccessDeniedException: "),
        "{err}"
    );
    assert!(err.contains("grant it in the IAM policy"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
