//! SQS requests by kind: what the queue bills for. SQS charges per request (each 64 KiB of
//! a payload counts as one), so the count per message is the run's cost per message; the
//! receives that came back empty are the idle cost of long polling.
//!
//! Counted per call sqs2pg makes (each retry of a batch call is a call of its own); an
//! attempt the AWS SDK retries inside one call counts once.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of request, each a value of the `kind` label of `sqs2pg_sqs_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A `ReceiveMessage` that brought at least one message.
    Receive,
    /// A `ReceiveMessage` that came back empty.
    EmptyReceive,
    /// A `DeleteMessageBatch`.
    Delete,
    /// A `ChangeMessageVisibilityBatch` (heartbeat extensions, releases).
    ChangeVisibility,
    /// A `SendMessageBatch`.
    Send,
    /// A `GetQueueAttributes` (visibility timeout, depth).
    GetAttributes,
}

impl RequestKind {
    /// Every kind, in the order the summary lists them.
    pub const ALL: [RequestKind; 6] = [
        Self::Receive,
        Self::EmptyReceive,
        Self::Delete,
        Self::ChangeVisibility,
        Self::Send,
        Self::GetAttributes,
    ];

    /// The `kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Receive => "receive",
            Self::EmptyReceive => "empty_receive",
            Self::Delete => "delete",
            Self::ChangeVisibility => "change_visibility",
            Self::Send => "send",
            Self::GetAttributes => "get_attributes",
        }
    }
}

/// The live counters, shared by a [`crate::source::Source`] and its clones.
#[derive(Debug, Default)]
pub struct SqsRequests {
    counts: [AtomicU64; 6],
}

impl SqsRequests {
    /// One request of `kind` was made.
    pub fn add(&self, kind: RequestKind) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn counts(&self) -> RequestCounts {
        RequestCounts(std::array::from_fn(|i| {
            self.counts[i].load(Ordering::Relaxed)
        }))
    }
}

/// Requests by kind at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounts([u64; 6]);

impl RequestCounts {
    /// Requests of `kind`.
    pub fn get(&self, kind: RequestKind) -> u64 {
        self.0[kind as usize]
    }

    /// Requests of every kind.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.total())?;
        let parts: Vec<String> = RequestKind::ALL
            .iter()
            .filter(|k| self.get(**k) > 0)
            .map(|k| format!("{} {}", k.label(), self.get(*k)))
            .collect();
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// Sets `sqs2pg_sqs_requests_total{kind}` from `counts` (called at scrape time).
pub(super) fn record(counts: &RequestCounts) {
    for kind in RequestKind::ALL {
        metrics::counter!("sqs2pg_sqs_requests_total", "kind" => kind.label())
            .absolute(counts.get(kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_counted_apart_and_summed() {
        let r = SqsRequests::default();
        r.add(RequestKind::Receive);
        r.add(RequestKind::Receive);
        r.add(RequestKind::EmptyReceive);
        r.add(RequestKind::Delete);
        let c = r.counts();
        assert_eq!(c.get(RequestKind::Receive), 2);
        assert_eq!(c.get(RequestKind::EmptyReceive), 1);
        assert_eq!(c.get(RequestKind::Send), 0);
        assert_eq!(c.total(), 4);
        assert_eq!(c.to_string(), "4 (receive 2, empty_receive 1, delete 1)");
    }
}
