//! The run summary as JSON (`--output json`): every field always present, zeros included,
//! with the unit in the name where there is one. README "Drain runs" documents each field,
//! and a test holds the two to the same names.

use std::collections::BTreeMap;

use serde::Serialize;

use super::requests::RequestKind;
use super::stats::Summary;

/// One kind's adaptive limit on SQS calls in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallLimitJson {
    /// The limit at the end of the run.
    pub now: u64,
    /// Its highest value during the run.
    pub peak: u64,
}

/// What one mapped route did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RouteJson {
    /// Rows written.
    pub loaded: u64,
    /// Events a skip route took.
    pub skipped: u64,
    /// Rows a business key already held (a producer's re-send).
    pub skipped_by_key: u64,
    /// Rejects of events the route took.
    pub rejected: u64,
}

/// [`Summary`] in the shape `--output json` prints; field names are a stable interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryJson {
    pub received: u64,
    pub loaded: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub routes: BTreeMap<String, RouteJson>,
    pub duplicates: u64,
    pub deleted: u64,
    pub delete_failed: u64,
    pub unknown_keys: u64,
    pub visibility_extended: u64,
    pub released: u64,
    pub sqs_requests: BTreeMap<&'static str, u64>,
    pub sqs_requests_total: u64,
    pub sqs_requests_per_message: f64,
    pub sqs_calls_in_flight: BTreeMap<&'static str, CallLimitJson>,
    pub elapsed_secs: f64,
    pub messages_per_sec: f64,
}

impl Summary {
    /// The summary for `--output json`: each SQS request kind listed even at 0, which the
    /// text leaves out.
    pub fn to_json(&self) -> SummaryJson {
        let per_kind = |f: &dyn Fn(RequestKind) -> u64| -> BTreeMap<&'static str, u64> {
            RequestKind::ALL
                .iter()
                .map(|k| (k.label(), f(*k)))
                .collect()
        };
        let limits = RequestKind::ALL
            .iter()
            .map(|k| {
                let (now, peak) = self.sqs_call_limits.get(*k);
                (k.label(), CallLimitJson { now, peak })
            })
            .collect();
        let total = self.sqs_requests.total();
        SummaryJson {
            received: self.received,
            loaded: self.loaded,
            rejected: self.rejected,
            rejected_by_reason: self.rejected_by_reason.clone(),
            routes: self
                .routes
                .iter()
                .map(|(name, t)| {
                    let json = RouteJson {
                        loaded: t.rows,
                        skipped: t.skipped,
                        skipped_by_key: t.by_key,
                        rejected: t.rejected,
                    };
                    (name.clone(), json)
                })
                .collect(),
            duplicates: self.duplicates,
            deleted: self.deleted,
            delete_failed: self.delete_failed,
            unknown_keys: self.unknown_keys,
            visibility_extended: self.visibility_extended,
            released: self.released,
            sqs_requests: per_kind(&|k| self.sqs_requests.get(k)),
            sqs_requests_total: total,
            // 0 rather than the text's omitted line: JSON has no NaN, and a run that
            // received nothing spent nothing per message.
            sqs_requests_per_message: if self.received == 0 {
                0.0
            } else {
                total as f64 / self.received as f64
            },
            sqs_calls_in_flight: limits,
            elapsed_secs: self.elapsed.as_secs_f64(),
            messages_per_sec: self.rate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::telemetry::Stats;

    /// An idle run still prints every field: zeros, an empty reason map, each request kind.
    #[test]
    fn an_empty_run_has_every_field_at_zero() {
        let json = serde_json::to_value(Stats::default().summary(Duration::ZERO).to_json())
            .unwrap_or_default();
        assert_eq!(json["loaded"], 0);
        assert_eq!(json["rejected_by_reason"], serde_json::json!({}));
        assert_eq!(json["sqs_requests"]["empty_receive"], 0);
        assert_eq!(json["sqs_calls_in_flight"]["delete"]["peak"], 0);
        assert_eq!(json["sqs_requests_per_message"], 0.0);
    }
}
