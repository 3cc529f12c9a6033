//! What the queue refuses: calls SQS answers with an entry-level error.

use std::time::{Duration, Instant};

use crate::helpers::{login, TestEnv};

/// A receipt handle SQS no longer accepts (it expired, or another consumer's receive
/// replaced it) is given up at once instead of being retried for ~25 s, which held the
/// writer back from its next batch: the valid entry beside it is deleted, the refused one
/// counted as permanent.
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_receipt_handle_is_given_up_without_retries() {
    let env = TestEnv::new().await;
    env.send(&[login("del-1", "10.9.0.1", "d")]).await;
    let msgs = env.receive_at_least(1).await;
    let started = Instant::now();
    let report = env
        .source
        .delete(
            &[
                ("m-valid", msgs[0].receipt_handle.as_str()),
                ("m-expired", "not-a-receipt-handle"),
            ],
            4,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(
        (report.deleted, report.failed, report.permanent),
        (1, 1, 1),
        "{report:?}"
    );
    // Retries of the refused entry would take ~25 s; an answer takes milliseconds.
    assert!(
        took < Duration::from_secs(5),
        "the refused entry was retried: {took:?}"
    );
    env.assert_queue_empty().await;
}
