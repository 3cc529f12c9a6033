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
    /// Per kind, the adaptive limit on calls in flight ([`crate::source::limit`]) now and
    /// at its highest; 0 for kinds without one.
    limits: [AtomicU64; 6],
    peaks: [AtomicU64; 6],
}

impl SqsRequests {
    /// One request of `kind` was made.
    pub fn add(&self, kind: RequestKind) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The adaptive limit on `kind`'s calls in flight is now `limit`.
    pub fn set_limit(&self, kind: RequestKind, limit: usize) {
        let limit = limit as u64;
        self.limits[kind as usize].store(limit, Ordering::Relaxed);
        self.peaks[kind as usize].fetch_max(limit, Ordering::Relaxed);
    }

    /// The adaptive limits now and at their highest.
    pub fn limits(&self) -> CallLimits {
        CallLimits(std::array::from_fn(|i| {
            (
                self.limits[i].load(Ordering::Relaxed),
                self.peaks[i].load(Ordering::Relaxed),
            )
        }))
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

/// Per kind, the adaptive limit on calls in flight `(now, highest)`; `(0, 0)` for a kind
/// that has none or made no call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits([(u64, u64); 6]);

impl CallLimits {
    /// `kind`'s limit `(now, highest)`.
    pub fn get(&self, kind: RequestKind) -> (u64, u64) {
        self.0[kind as usize]
    }
}

impl fmt::Display for CallLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = RequestKind::ALL
            .iter()
            .filter(|k| self.get(**k).1 > 0)
            .map(|k| {
                let (now, peak) = self.get(*k);
                format!("{} {now} (peak {peak})", k.label())
            })
            .collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// Sets `sqs2pg_sqs_requests_total{kind}` and `sqs2pg_sqs_calls_limit{kind}` (called at
/// scrape time).
pub(super) fn record(counts: &RequestCounts, limits: &CallLimits) {
    for kind in RequestKind::ALL {
        metrics::counter!("sqs2pg_sqs_requests_total", "kind" => kind.label())
            .absolute(counts.get(kind));
        let (now, peak) = limits.get(kind);
        if peak > 0 {
            metrics::gauge!("sqs2pg_sqs_calls_limit", "kind" => kind.label()).set(now as f64);
        }
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

    #[test]
    fn a_limit_reports_where_it_is_and_its_highest() {
        let r = SqsRequests::default();
        assert_eq!(r.limits().to_string(), "");
        r.set_limit(RequestKind::Delete, 8);
        r.set_limit(RequestKind::Delete, 30);
        r.set_limit(RequestKind::Delete, 12);
        r.set_limit(RequestKind::ChangeVisibility, 8);
        assert_eq!(r.limits().get(RequestKind::Delete), (12, 30));
        assert_eq!(
            r.limits().to_string(),
            "delete 12 (peak 30), change_visibility 8 (peak 8)"
        );
    }
}
