//! The one shape of every SQS batch call: entries keyed by their index, one call, the entries
//! SQS refused retried after a pause.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::types::BatchResultErrorEntry;

use super::SourceError;
use crate::backoff::Backoff;

/// One entry SQS refused in a batch answer.
#[derive(Debug, Clone)]
pub(super) struct Refused {
    /// The entry's index in the caller's slice (its id in the request).
    pub index: usize,
    /// SQS's error code.
    pub code: String,
    /// SQS's message, if any.
    pub message: Option<String>,
    /// The request was wrong (retrying the same entry cannot help): SQS said so, or its code
    /// says so (LocalStack marks `ReceiptHandleIsInvalid` as not the sender's fault).
    pub sender_fault: bool,
}

/// Codes that mean the entry itself is wrong, whatever the `SenderFault` flag says.
const PERMANENT_CODES: [&str; 3] = [
    "ReceiptHandleIsInvalid",
    "InvalidParameterValue",
    "AWS.SimpleQueueService.MessageNotInflight",
];

impl Refused {
    /// The failure entries of a batch answer (every SQS batch call answers with the same
    /// kind), whose ids are the indexes the request gave them.
    pub fn from_answer(failed: &[BatchResultErrorEntry]) -> Vec<Self> {
        failed
            .iter()
            .filter_map(|f| {
                Some(Self {
                    index: f.id.parse().ok()?,
                    code: f.code.clone(),
                    message: f.message.clone(),
                    sender_fault: f.sender_fault || PERMANENT_CODES.contains(&f.code.as_str()),
                })
            })
            .collect()
    }
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// The operation, for errors and logs.
    pub op: &'static str,
    /// Calls in all, the first included.
    pub attempts: u32,
    /// The first pause between attempts (it doubles).
    pub first_pause: Duration,
    /// Retry a call that failed as a whole (else return its error at once).
    pub retry_call_errors: bool,
    /// What an entry SQS refuses as the sender's fault means.
    pub sender_fault: SenderFault,
}

/// An entry refused as the sender's fault (`ReceiptHandleIsInvalid`, an expired handle, a
/// malformed entry): retrying the same entry cannot help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SenderFault {
    /// The whole call fails (a send: the caller must know).
    Fail,
    /// The entry is given up at once and counted (a delete or visibility change: the ledger
    /// makes the redelivery harmless).
    GiveUp,
}

/// What became of the entries.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Entries SQS accepted.
    pub done: u64,
    /// Entries still pending after the last attempt, or given up as the sender's fault.
    pub failed: u64,
    /// Of `failed`, those given up as the sender's fault without a retry.
    pub permanent: u64,
    /// The indexes of the failed entries.
    pub failed_indexes: Vec<usize>,
}

/// Calls `call` with the pending entries, each with its index, until every entry is done
/// or the attempts run out. `call` returns the entries SQS refused.
pub(super) async fn with_retries<'a, T, F, Fut>(
    entries: &'a [T],
    policy: Policy,
    mut call: F,
) -> Result<Outcome, SourceError>
where
    F: FnMut(Vec<(usize, &'a T)>) -> Fut,
    Fut: Future<Output = Result<Vec<Refused>, SourceError>>,
{
    let mut pending: Vec<(usize, &T)> = entries.iter().enumerate().collect();
    let mut backoff = Backoff::new(policy.first_pause, policy.first_pause * 64);
    let mut outcome = Outcome::default();
    for attempt in 1..=policy.attempts {
        let sent = pending.len();
        match call(pending.clone()).await {
            Ok(refused) => {
                let fail_fast = policy.sender_fault == SenderFault::Fail;
                if let Some(f) = refused.iter().find(|f| fail_fast && f.sender_fault) {
                    return Err(SourceError::Call {
                        op: policy.op,
                        detail: format!(
                            "entry rejected: {} {}",
                            f.code,
                            f.message.as_deref().unwrap_or("")
                        ),
                    });
                }
                outcome.done += (sent - refused.len()) as u64;
                for f in refused.iter().filter(|f| f.sender_fault) {
                    outcome.permanent += 1;
                    outcome.failed_indexes.push(f.index);
                }
                pending.retain(|(i, _)| refused.iter().any(|f| f.index == *i && !f.sender_fault));
            }
            Err(e) if policy.retry_call_errors => {
                tracing::warn!(error = %e, attempt, count = sent, "batch call failed");
            }
            Err(e) => return Err(e),
        }
        if pending.is_empty() || attempt == policy.attempts {
            break;
        }
        tokio::time::sleep(backoff.next_pause()).await;
    }
    outcome
        .failed_indexes
        .extend(pending.iter().map(|(i, _)| *i));
    outcome.failed = outcome.failed_indexes.len() as u64;
    Ok(outcome)
}
