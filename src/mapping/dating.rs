//! `meta = "message_time"` as `--create-date-from` says: the time a row is dated by.

use chrono::{DateTime, Utc};

use super::event::Metadata;
use crate::decode::envelope::Opened;
use crate::decode::CreateDateFrom;

/// How the queue's messages are dated, and the opened envelope's own time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dating {
    /// `--create-date-from`.
    pub from: CreateDateFrom,
    /// The envelope's time (SNS `Timestamp`, EventBridge `time`), `Some(None)` when it has
    /// none that reads as RFC 3339; `None` for a bare body.
    pub envelope_time: Option<Option<DateTime<Utc>>>,
}

/// An envelope without a time that reads, where `--create-date-from envelope` dates rows by
/// it: `bad_envelope`, as for logins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreadableTime;

impl Dating {
    /// Dated as `from` says, for a body opened as `opened`.
    pub fn new(from: CreateDateFrom, opened: &Opened<'_>) -> Self {
        let envelope_time = opened.kind.map(|_| opened.time().ok().flatten());
        Self {
            from,
            envelope_time,
        }
    }

    /// `message_time`: with `--create-date-from envelope` the envelope's time (an envelope
    /// without one that reads is `Err`); otherwise, and for a bare body, `SentTimestamp`;
    /// the current time when that is missing.
    pub fn time(&self, meta: &Metadata) -> Result<DateTime<Utc>, UnreadableTime> {
        match (self.from, self.envelope_time) {
            (CreateDateFrom::Envelope, Some(Some(t))) => Ok(t),
            (CreateDateFrom::Envelope, Some(None)) => Err(UnreadableTime),
            _ => Ok(meta.sent_timestamp.unwrap_or_else(Utc::now)),
        }
    }
}
