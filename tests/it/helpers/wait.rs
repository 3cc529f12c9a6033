//! One way to wait: poll a condition until it holds, or panic naming what never happened.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `condition` every 100 ms until it holds and returns what it yielded; panics naming
/// `what` and `timeout` (and the last thing the condition saw, for a `Result`) if it never
/// does. The one place the tests wait for something to happen.
pub async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    mut condition: F,
) -> <Fut::Output as Check>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Check,
{
    let started = Instant::now();
    loop {
        let last = match condition().await.check() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if started.elapsed() >= timeout {
            match last {
                Some(last) => panic!("{what}: not within {timeout:?} (last seen: {last})"),
                None => panic!("{what}: not within {timeout:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a [`wait_until`] condition may yield: `bool` (done or not), or `Result<T, D>` (done
/// with `T`, or not yet, with `D` to show if time runs out).
pub trait Check {
    /// What [`wait_until`] returns once the condition holds.
    type Value;
    /// `Err` with what to show on timeout, if anything, while the condition does not hold.
    fn check(self) -> Result<Self::Value, Option<String>>;
}

impl Check for bool {
    type Value = ();
    fn check(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T, D: std::fmt::Debug> Check for Result<T, D> {
    type Value = T;
    fn check(self) -> Result<T, Option<String>> {
        self.map_err(|d| Some(format!("{d:?}")))
    }
}
