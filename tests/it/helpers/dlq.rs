//! A test queue with a dead-letter queue of its own, for tests of what happens to a message
//! that keeps coming back (a poison message, or a batch whose commit keeps failing).

use aws_sdk_sqs::types::QueueAttributeName;

use super::TestEnv;

/// The dead-letter queue of one test's queue; deleted when dropped.
pub struct DeadLetters {
    /// Its URL.
    pub url: String,
    client: aws_sdk_sqs::Client,
}

impl TestEnv {
    /// [`TestEnv::with_visibility`], with a redrive policy on the queue: a message received
    /// more than `max_receive_count` times moves to a fresh queue of its own, returned
    /// beside the environment. (SQS moves it on the receive that would exceed the count, so
    /// the move is seen only once something receives again.)
    pub async fn with_redrive(
        visibility_secs: u32,
        max_receive_count: u32,
    ) -> (TestEnv, DeadLetters) {
        let env = TestEnv::with_visibility(visibility_secs).await;
        let client = env.source.client().clone();
        let url = client
            .create_queue()
            .queue_name(format!("{}-dlq", env.queue_name))
            .send()
            .await
            .expect("create dead-letter queue")
            .queue_url
            .expect("dead-letter queue url");
        // Made before the policy is set, so that a failure below still deletes the queue.
        let dead = DeadLetters { url, client };
        let policy = serde_json::json!({
            "deadLetterTargetArn": dead.arn().await,
            "maxReceiveCount": max_receive_count.to_string(),
        });
        dead.client
            .set_queue_attributes()
            .queue_url(&env.queue_url)
            .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
            .send()
            .await
            .expect("set the redrive policy");
        (env, dead)
    }
}

impl DeadLetters {
    /// How many messages it holds, visible or in flight: a test that reads them back must
    /// still count them as dead-lettered.
    pub async fn depth(&self) -> u64 {
        let attrs = self
            .attributes(&[
                QueueAttributeName::ApproximateNumberOfMessages,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ])
            .await;
        attrs
            .values()
            .map(|v| v.parse::<u64>().expect("a message count"))
            .sum()
    }

    /// What a redrive policy names it by.
    async fn arn(&self) -> String {
        self.attributes(&[QueueAttributeName::QueueArn])
            .await
            .remove(&QueueAttributeName::QueueArn)
            .expect("dead-letter queue ARN")
    }

    async fn attributes(
        &self,
        names: &[QueueAttributeName],
    ) -> std::collections::HashMap<QueueAttributeName, String> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .expect("dead-letter queue attributes")
            .attributes
            .unwrap_or_default()
    }
}

impl Drop for DeadLetters {
    fn drop(&mut self) {
        let (client, url) = (self.client.clone(), self.url.clone());
        super::clean_up(format!("dead-letter queue {url}"), async move {
            client
                .delete_queue()
                .queue_url(url)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("DeleteQueue: {}", sqs2pg::aws::error_text(&e)))
        });
    }
}
