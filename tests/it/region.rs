//! The region of a real AWS queue URL against the configured one.

use crate::helpers::{login, stderr, TestEnv};

/// A real AWS queue URL in another region than AWS_REGION exits 2 naming both, before any
/// request goes to the wrong region; behind AWS_ENDPOINT_URL (LocalStack) the URL's region
/// is not enforced.
#[tokio::test(flavor = "multi_thread")]
async fn a_queue_url_in_another_region_than_aws_region_exits_2() {
    let env = TestEnv::new().await;
    let file = std::env::temp_dir().join(format!("sqs2pg-it-region-{}.jsonl", env.queue_name));
    std::fs::write(&file, login("u1", "10.9.0.1", "d1")).unwrap();
    let aws = "https://sqs.eu-west-1.amazonaws.com/123456789012/login-queue";
    for args in [
        vec!["send", "--file", file.to_str().unwrap()],
        vec!["run", "--until-empty"],
    ] {
        let out = env
            .cmd(&args)
            .env("SQS2PG_QUEUE_URL", aws)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_SQS")
            .output()
            .unwrap();
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert!(
            e.contains("--queue-url") && e.contains("eu-west-1") && e.contains("us-east-1"),
            "{args:?}: {e}"
        );
    }
    // LocalStack's URL names us-east-1; another AWS_REGION does not stop a send to it.
    let out = env
        .cmd(&["send", "--file", file.to_str().unwrap()])
        .env("AWS_REGION", "eu-west-1")
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
