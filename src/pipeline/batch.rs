//! Between pollers and writers: each received message is transformed (decode + mask) into
//! its record, and the records are gathered into batches of at most `batch_size` messages
//! or `batch_bytes` of bodies, a partial batch leaving after `batch_wait`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::budget::Charge;
use crate::commit::{Item, SharedShape};
use crate::mask::Masker;
use crate::source::Received;
use crate::telemetry::Stats;

/// A batch for a writer: its items, and their bodies' bytes in the byte budget (released
/// when the batch is dropped, after its commit).
pub struct Batch {
    pub items: Vec<Item>,
    pub charges: Vec<Charge>,
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
        tx: mpsc::Sender<Batch>,
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
            let recipe = self.shape.borrow().recipe();
            for (msg, mut charge) in msgs {
                let (item, unknown_keys) = Item::new(msg, &recipe, &mut self.masker);
                self.stats.add_unknown_keys(unknown_keys);
                // A reject holds its sealed copy instead of the raw body (a row: no change,
                // and no lock taken).
                charge.resize(item.held_bytes());
                let bytes = charge.bytes();
                window.get_or_insert_with(|| tokio::time::Instant::now() + self.batch_wait);
                if let Some(full) = batch.push((item, charge), bytes) {
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
    async fn hand_on(&self, gathered: Vec<(Item, Charge)>, tx: &mpsc::Sender<Batch>) -> bool {
        let (items, charges) = gathered.into_iter().unzip();
        tokio::select! {
            r = tx.send(Batch { items, charges }) => r.is_ok(),
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
}
