//! Between pollers and writers: each received message is transformed (decode + mask) into
//! its record, and the records are gathered into batches of at most `batch_size` messages
//! or `batch_bytes` of bodies, a partial batch leaving after `batch_wait`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::budget::Charge;
use super::commit::SharedShape;
use crate::decode::{Limits, RejectReason};
use crate::mask::{Column, Masker};
use crate::pii::Pii;
use crate::source::Received;
use crate::telemetry::Stats;
use crate::transform::{quarantine, transform, Outcome, Record};

/// A received message and what it becomes. The message stays for its receipt handle (the
/// delete) and its body: a row the database refuses is quarantined from the original body.
/// A body is held once: a reject keeps only its sealed copy (4/3 of the raw size), opened
/// again in the rare case the record must be made anew.
pub struct Item {
    pub msg: Received,
    pub record: Record,
    /// The limits `record` was made for: a committer that learns of a changed table makes
    /// the record again.
    pub made_for: Limits,
    /// The body's bytes in the byte budget, released when the item is dropped.
    pub charge: Charge,
    /// The raw body was dropped for the reject's sealed copy.
    sealed_only: bool,
    /// The SQLSTATE with which the database refused even this message's reject: it cannot
    /// be quarantined, so nothing of it is committed and it is left on the queue.
    pub refused: Option<String>,
}

impl Item {
    /// Transforms one message for `limits`.
    pub fn new(
        msg: Received,
        charge: Charge,
        limits: &Limits,
        masker: &mut Masker,
    ) -> (Self, usize) {
        let t = transform(&msg, limits, masker);
        let mut item = Item {
            record: Record {
                message_id: msg.message_id.clone(),
                outcome: t.outcome,
            },
            msg,
            made_for: *limits,
            charge,
            sealed_only: false,
            refused: None,
        };
        item.hold_once();
        (item, t.unknown_keys)
    }

    /// Makes the record again for `limits` (the table changed), from the raw body, opened
    /// from the sealed one where only that is held.
    pub fn remake(&mut self, limits: &Limits, masker: &mut Masker) {
        if self.sealed_only {
            let Outcome::Reject(r) = &self.record.outcome else {
                return;
            };
            // The writing key sealed it, so it opens; if not, the reject stays as it is.
            let Ok(body) = masker.reveal(Column::Body, &r.body_ciphertext) else {
                return;
            };
            self.msg.body = Pii::new(body);
            self.sealed_only = false;
        }
        self.record.outcome = transform(&self.msg, limits, masker).outcome;
        self.made_for = *limits;
        self.hold_once();
    }

    /// Whether the record is a reject that the table's limits decided (a column since widened,
    /// or altered to text, would take it).
    pub fn rejected_for_limits(&self) -> bool {
        matches!(
            &self.record.outcome,
            Outcome::Reject(r) if matches!(r.reason, RejectReason::BadAppVersion | RejectReason::TooLong(_))
        )
    }

    /// Quarantines a row the database refused.
    pub fn quarantine(&mut self, reason: RejectReason, masker: &mut Masker) {
        if !self.sealed_only {
            self.record.outcome = Outcome::Reject(quarantine(&self.msg, reason, masker));
            self.hold_once();
        }
    }

    /// A reject drops its raw body; the charge follows what is held.
    fn hold_once(&mut self) {
        if let Outcome::Reject(r) = &self.record.outcome {
            self.msg.body = Pii::new(String::new());
            self.sealed_only = true;
            self.charge.resize(r.body_ciphertext.len());
        }
    }
}

/// Transforms received messages into batch items, counting unknown keys.
pub fn to_items(
    msgs: impl IntoIterator<Item = (Received, Charge)>,
    limits: &Limits,
    masker: &mut Masker,
    stats: &Stats,
) -> Vec<Item> {
    msgs.into_iter()
        .map(|(msg, charge)| {
            let (item, unknown_keys) = Item::new(msg, charge, limits, masker);
            stats.add_unknown_keys(unknown_keys);
            item
        })
        .collect()
}

/// A batch being gathered: it is full at `max_len` things or `max_bytes` of them, whichever
/// comes first (a single thing larger than `max_bytes` makes a batch of its own).
#[derive(Debug)]
pub struct Gather<T> {
    items: Vec<T>,
    bytes: usize,
    max_len: usize,
    max_bytes: usize,
}

impl<T> Gather<T> {
    /// An empty batch with these bounds (each at least 1).
    pub fn new(max_len: usize, max_bytes: usize) -> Self {
        Self {
            items: Vec::new(),
            bytes: 0,
            max_len: max_len.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Adds a thing of `bytes`; the batch, when that filled it.
    pub fn push(&mut self, item: T, bytes: usize) -> Option<Vec<T>> {
        self.items.push(item);
        self.bytes += bytes;
        (self.items.len() >= self.max_len || self.bytes >= self.max_bytes).then(|| self.take())
    }

    /// Whatever is gathered, leaving it empty.
    pub fn take(&mut self) -> Vec<T> {
        self.bytes = 0;
        std::mem::take(&mut self.items)
    }

    /// Nothing gathered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The transform-and-batch stage.
pub struct TransformAndBatch {
    pub batch_size: usize,
    /// Body bytes (as charged) at which a batch closes.
    pub batch_bytes: usize,
    pub batch_wait: Duration,
    /// The live table's shape, for its limits.
    pub shape: SharedShape,
    pub masker: Masker,
    pub stats: Arc<Stats>,
    /// The shutdown deadline: stop handing on.
    pub deadline: CancellationToken,
}

impl TransformAndBatch {
    /// Runs until the pollers' channel closes (flushing what it holds) or the deadline.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Vec<(Received, Charge)>>,
        tx: mpsc::Sender<Vec<Item>>,
    ) {
        let mut batch = Gather::new(self.batch_size, self.batch_bytes);
        let mut window: Option<tokio::time::Instant> = None;
        loop {
            let next = match window {
                Some(until) => tokio::select! {
                    m = rx.recv() => m,
                    _ = tokio::time::sleep_until(until) => {
                        window = None;
                        if !self.hand_on(batch.take(), &tx).await { return; }
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(msgs) = next else { break };
            let limits = self.shape.borrow().limits;
            for item in to_items(msgs, &limits, &mut self.masker, &self.stats) {
                let bytes = item.charge.bytes();
                window.get_or_insert_with(|| tokio::time::Instant::now() + self.batch_wait);
                if let Some(full) = batch.push(item, bytes) {
                    window = None;
                    if !self.hand_on(full, &tx).await {
                        return;
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.hand_on(batch.take(), &tx).await;
        }
    }

    /// Sends a batch to the writers; false when the run is ending.
    async fn hand_on(&self, items: Vec<Item>, tx: &mpsc::Sender<Vec<Item>>) -> bool {
        tokio::select! {
            r = tx.send(items) => r.is_ok(),
            _ = self.deadline.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_close_on_bytes_as_well_as_count() {
        let mut g = Gather::new(3, 1000);
        assert_eq!(g.push(1, 400), None);
        assert_eq!(g.push(2, 599), None);
        assert_eq!(g.push(3, 1), Some(vec![1, 2, 3]), "1000 bytes and 3 items");
        assert_eq!(g.push(4, 10), None);
        assert_eq!(g.push(5, 995), Some(vec![4, 5]), "bytes first");
        assert_eq!(g.push(6, 1), None);
        assert_eq!(g.push(7, 1), None);
        assert_eq!(g.push(8, 1), Some(vec![6, 7, 8]), "count first");
        assert!(g.is_empty());
        assert_eq!(
            g.push(9, 5000),
            Some(vec![9]),
            "an oversized body goes alone"
        );
        assert_eq!(g.push(10, 1), None);
        assert_eq!(g.take(), vec![10]);
    }

    #[test]
    fn a_reject_holds_its_sealed_body_only_and_opens_it_to_be_made_again() {
        let mut m = Masker::fixed_for_tests();
        let body = format!("not json {}", "x".repeat(3000));
        let msg = Received::new("m".into(), "r".into(), body.clone(), None, None);
        let (mut item, _) = Item::new(msg, Charge::default(), &Limits::default(), &mut m);
        assert!(item.msg.body.expose().is_empty(), "raw body dropped");
        assert!(matches!(item.record.outcome, Outcome::Reject(_)));
        item.remake(&Limits::default(), &mut m);
        let Outcome::Reject(r) = &item.record.outcome else {
            panic!("still a reject")
        };
        assert_eq!(m.reveal(Column::Body, &r.body_ciphertext).unwrap(), body);
        assert!(item.msg.body.expose().is_empty(), "held once again");
    }
}
