//! Failpoints: where the tests make sqs2pg panic on purpose, to prove a panic is contained
//! (a transform's becomes a reject) or ends the run (a writer's releases its messages).
//!
//! Compiled only with the test-only `failpoints` feature (the `fail` crate); in any other
//! build [`panic_if_marked`] is an empty inline function. A failpoint fires only when the
//! process was told so: `FAILPOINTS=NAME=return(TEXT)` in the environment (read by the
//! binary at start) or `configure` in-process (with the feature). Then it panics for a
//! message whose body contains `TEXT`, so concurrent tests in one process do not hit each
//! other's; the failpoints of tasks that handle no body ([`hit`]) fire when configured
//! `panic`.

/// `transform`: one message's decode panics.
pub const TRANSFORM: &str = "transform";

/// `commit`: a writer's (or the Lambda handler's) commit of a batch panics.
pub const COMMIT: &str = "commit";

/// `heartbeat`: the heartbeat task panics at a beat (configured `panic`).
pub const HEARTBEAT: &str = "heartbeat";

/// `health`: the health probe task panics at a probe (configured `panic`).
pub const HEALTH: &str = "health";

/// Panics when failpoint `name` is configured `panic`: for tasks that handle no body.
#[cfg(feature = "failpoints")]
#[track_caller]
pub fn hit(name: &str) {
    fail::eval(name, |_| ());
}

/// Without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Panics when failpoint `name` is configured `return(TEXT)` and `body` contains `TEXT`.
/// The panic's location is the caller's.
#[cfg(feature = "failpoints")]
#[track_caller]
pub fn panic_if_marked(name: &str, body: &str) {
    if let Some(Some(text)) = fail::eval(name, |arg| arg) {
        if body.contains(text.as_str()) {
            panic!("failpoint {name} fired");
        }
    }
}

/// Without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn panic_if_marked(_name: &str, _body: &str) {}

/// Makes failpoint `name` fire for bodies containing `text`, in this process.
#[cfg(feature = "failpoints")]
pub fn configure(name: &str, text: &str) -> Result<(), String> {
    fail::cfg(name, &format!("return({text})"))
}

/// Reads `FAILPOINTS` from the environment; kept alive for the process's life.
#[cfg(feature = "failpoints")]
pub fn from_env() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}
