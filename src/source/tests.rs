//! The source's adaptive limits, as built for the heartbeat.

use super::*;

/// `rounds` rounds of calls, each taking every slot the limit allows at once (the limit
/// all in use) and then ending them, `failed` or not; returns the highest limit seen.
async fn rounds(gate: &CallLimit, rounds: usize, failed: bool) -> usize {
    let mut highest = gate.limit();
    for _ in 0..rounds {
        let mut slots = Vec::new();
        for _ in 0..gate.limit() {
            slots.push(gate.slot().await);
        }
        for slot in slots {
            highest = highest.max(slot.done(failed));
        }
    }
    highest
}

/// One call that fails as a whole; returns the limit after it.
async fn one_failed_call(gate: &CallLimit) -> usize {
    gate.slot().await.done(true)
}

/// README "Delivery guarantee" 6: the heartbeat's calls in flight are "at least 8 ... 8 to
/// 64, adapting as the deletes' does".
#[tokio::test]
async fn the_heartbeats_call_limit_adapts_from_8_to_64_and_never_below_8() {
    let gate = extend_calls();
    assert_eq!(gate.limit(), 8, "it starts at 8");
    rounds(&gate, 3, true).await;
    assert_eq!(gate.limit(), 8, "failing calls never take it below 8");
    let grown = rounds(&gate, 10, false).await;
    assert!(
        grown > 8,
        "calls that use it all and keep up grow it: {grown}"
    );
    // A window that a busy machine made look slow shrinks it by a tenth: plenty of rounds.
    let highest = rounds(&gate, 500, false).await;
    assert_eq!(highest, 64, "it grows to 64 and no further");
    let before = gate.limit();
    let after = one_failed_call(&gate).await;
    assert_eq!(after, (before / 2).max(8), "a failed call halves it");
    for _ in 0..5 {
        one_failed_call(&gate).await;
    }
    assert_eq!(gate.limit(), 8, "and never below 8");
}
