//! Exponential backoff with full jitter, capped: the one retry pause of every stage, so
//! replicas that failed together do not retry together.

use std::time::Duration;

/// The pauses between attempts: each twice the last up to `cap`, each drawn from its upper
/// half so that it never collapses to zero.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    /// Pauses starting near `first`, never above `cap`.
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self { next: first, cap }
    }

    /// The next pause.
    pub fn next_pause(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.cap);
        d.mul_f64(rand::random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<Duration> = (0..8).map(|_| b.next_pause()).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(100));
        assert!(d.iter().all(|x| *x <= Duration::from_secs(1)));
        assert!(d[7] >= Duration::from_millis(500));
    }
}
