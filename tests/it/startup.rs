//! `Pipeline::build` does everything that can fail before the first message, and fails
//! without receiving anything: a message on the queue stays there, visible.

use std::time::Duration;

use sqs2pg::db::DbError;
use sqs2pg::pipeline::PipelineError;
use sqs2pg::source::SourceError;

use crate::helpers::{login, TestEnv};

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
        err.is_usage(),
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
