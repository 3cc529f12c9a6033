//! What a FIFO queue asks of its clients, decided without I/O: the message group and the
//! deduplication id of each message sent, and the `ReceiveRequestAttemptId` of a receive.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::decode::envelope::{self, Envelope};

/// The group of messages that have no usable user id, and of `--message-group single`.
pub const SINGLE_GROUP: &str = "sqs2pg";

/// SQS keeps a `ReceiveRequestAttemptId` for five minutes; an older one is not reused.
const ATTEMPT_ID_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// A FIFO queue's name, and so its URL, ends in `.fifo` (SQS enforces it).
pub fn is_fifo(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}

/// How `send` groups messages on a FIFO queue (`--message-group`): SQS delivers a group in
/// order, one batch in flight at a time, and different groups in parallel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessageGroup {
    /// One group per user (the event's `user_id`, also inside an envelope); messages
    /// without one share [`SINGLE_GROUP`].
    #[default]
    UserId,
    /// Every message in [`SINGLE_GROUP`]: one total order, one consumer at a time.
    Single,
}

impl FromStr for MessageGroup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "user-id" => Ok(Self::UserId),
            "single" => Ok(Self::Single),
            _ => Err(format!(
                "{s:?} is not a message grouping: use user-id or single"
            )),
        }
    }
}

impl fmt::Display for MessageGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UserId => "user-id",
            Self::Single => "single",
        })
    }
}

/// The `MessageGroupId` of `body`. A user id SQS accepts as a group id (1-128 printable
/// ASCII characters) is used as it is; any other is replaced by its SHA-256, so one user
/// still has one group and no raw id of an odd shape reaches SQS's error messages.
pub fn group_id(body: &str, grouping: MessageGroup) -> String {
    if grouping == MessageGroup::Single {
        return SINGLE_GROUP.into();
    }
    let user_id = envelope::open(body.as_bytes(), Envelope::Auto)
        .ok()
        .and_then(|o| {
            let v: serde_json::Value = serde_json::from_slice(&o.event).ok()?;
            v.get("user_id")?.as_str().map(str::to_owned)
        });
    match user_id {
        Some(id) if id.is_empty() => SINGLE_GROUP.into(),
        Some(id) if id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) => id,
        Some(id) => hex(&Sha256::digest(id.as_bytes())),
        None => SINGLE_GROUP.into(),
    }
}

/// The `MessageDeduplicationId` of `body` when the queue does not deduplicate by content
/// itself: the SHA-256 of the body, as content-based deduplication would use. A retried
/// send is then not doubled, and an identical body sent within five minutes is dropped by
/// SQS, exactly as on a queue with `ContentBasedDeduplication`.
pub fn deduplication_id(body: &str) -> String {
    hex(&Sha256::digest(body.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One logical receive's `ReceiveRequestAttemptId`. SQS answers a retried receive that
/// carries the same id with the same messages, instead of hiding them until their
/// visibility timeout runs out (which on a FIFO queue also holds back the rest of their
/// group). The id is kept while the receive fails and is retried, and renewed once it was
/// answered.
#[derive(Debug, Default)]
pub struct ReceiveAttempt {
    current: Option<(String, Instant)>,
}

impl ReceiveAttempt {
    /// The id for the next call at `now`: the pending one, or a new one.
    pub fn id(&mut self, now: Instant) -> String {
        match &self.current {
            Some((id, since)) if now.duration_since(*since) < ATTEMPT_ID_LIFETIME => id.clone(),
            _ => {
                let id = hex(&rand::random::<[u8; 16]>());
                self.current = Some((id.clone(), now));
                id
            }
        }
    }

    /// The receive was answered: the next one is a new logical receive.
    pub fn answered(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"user_id":"424cdd21-063a-43a7","app_version":"2.3.0","device_type":"android","ip":"1.2.3.4","locale":"RU","device_id":"d"}"#;

    #[test]
    fn groups_follow_the_user_id() {
        let g = MessageGroup::UserId;
        assert_eq!(group_id(GOOD, g), "424cdd21-063a-43a7");
        let sns = serde_json::json!({"Type":"Notification","TopicArn":"arn:t","Message":GOOD})
            .to_string();
        assert_eq!(group_id(&sns, g), "424cdd21-063a-43a7");
        for no_user in [
            r#"{"foo":"oops_wrong_msg_type","bar":"123"}"#,
            "not json",
            r#"{"user_id":""}"#,
            r#"{"user_id":7}"#,
        ] {
            assert_eq!(group_id(no_user, g), SINGLE_GROUP, "{no_user}");
        }
        let odd = group_id(r#"{"user_id":"a user with spaces"}"#, g);
        assert_eq!(odd.len(), 64);
        assert_eq!(
            odd,
            group_id(r#"{"user_id":"a user with spaces","x":1}"#, g)
        );
        let long = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129));
        assert_eq!(group_id(&long, g).len(), 64);
        assert_eq!(group_id(GOOD, MessageGroup::Single), SINGLE_GROUP);
        assert_eq!("single".parse(), Ok(MessageGroup::Single));
        assert_eq!(
            MessageGroup::UserId.to_string().parse(),
            Ok(MessageGroup::UserId)
        );
        assert!("user_id"
            .parse::<MessageGroup>()
            .unwrap_err()
            .contains("user-id or single"));
    }

    #[test]
    fn deduplication_ids_are_the_bodys_hash() {
        assert_eq!(deduplication_id("a"), deduplication_id("a"));
        assert_ne!(deduplication_id("a"), deduplication_id("b"));
        assert_eq!(
            deduplication_id(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn an_attempt_id_stays_until_answered_or_stale() {
        let t0 = Instant::now();
        let mut a = ReceiveAttempt::default();
        let first = a.id(t0);
        assert_eq!(first.len(), 32);
        // A failed receive retried: the same id.
        assert_eq!(a.id(t0 + Duration::from_secs(30)), first);
        a.answered();
        let second = a.id(t0 + Duration::from_secs(31));
        assert_ne!(second, first);
        // Past SQS's five minutes, a new one.
        assert_ne!(a.id(t0 + Duration::from_secs(31 + 300)), second);
        assert!(is_fifo("http://localhost:4566/000000000000/q.fifo"));
        assert!(!is_fifo("http://localhost:4566/000000000000/q"));
    }
}
