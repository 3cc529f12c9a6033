//! Between pollers and writers: each received message is transformed (decode + mask) into
//! its record, and the records are gathered into batches of at most `batch_size`, a partial
//! batch leaving after `batch_wait`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::commit::SharedShape;
use crate::decode::Limits;
use crate::mask::Masker;
use crate::source::Received;
use crate::telemetry::Stats;
use crate::transform::{transform, Record};

/// A received message and what it becomes. The message stays for its receipt handle (the
/// delete) and its body: a row the database refuses is quarantined from the original body.
pub struct Item {
    pub msg: Received,
    pub record: Record,
    /// The limits `record` was made for: a committer that learns of a changed table makes
    /// the record again.
    pub made_for: Limits,
}

/// Transforms received messages into batch items, counting unknown keys.
pub fn to_items(
    msgs: Vec<Received>,
    limits: &Limits,
    masker: &mut Masker,
    stats: &Stats,
) -> Vec<Item> {
    msgs.into_iter()
        .map(|msg| {
            let t = transform(&msg, limits, masker);
            stats.add_unknown_keys(t.unknown_keys);
            let record = Record {
                message_id: msg.message_id.clone(),
                outcome: t.outcome,
            };
            Item {
                msg,
                record,
                made_for: *limits,
            }
        })
        .collect()
}

/// The transform-and-batch stage.
pub struct TransformAndBatch {
    pub batch_size: usize,
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
    pub async fn run(mut self, mut rx: mpsc::Receiver<Vec<Received>>, tx: mpsc::Sender<Vec<Item>>) {
        let mut items: Vec<Item> = Vec::with_capacity(self.batch_size);
        let mut window: Option<tokio::time::Instant> = None;
        loop {
            let next = match window {
                Some(until) => tokio::select! {
                    m = rx.recv() => m,
                    _ = tokio::time::sleep_until(until) => {
                        window = None;
                        if !self.hand_on(std::mem::take(&mut items), &tx).await { return; }
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(msgs) = next else { break };
            let limits = self.shape.borrow().limits;
            items.extend(to_items(msgs, &limits, &mut self.masker, &self.stats));
            window.get_or_insert_with(|| tokio::time::Instant::now() + self.batch_wait);
            if items.len() >= self.batch_size {
                window = None;
                if !self.hand_on(std::mem::take(&mut items), &tx).await {
                    return;
                }
            }
        }
        if !items.is_empty() {
            self.hand_on(items, &tx).await;
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
