//! Fault-injection harness: a TCP proxy that cuts, blackholes or freezes connections,
//! private Postgres clusters (alone, or a primary with a synchronous standby) a test may
//! crash, restart or fail over without disturbing the others, a real PgBouncer, an HTTP
//! proxy that fails chosen SQS operations, and a server that answers everything 403.

mod forbidden;
mod pg;
mod pgbouncer;
mod proxy;
mod selftest;
mod sqs_http;
mod standby;
mod tls;

use std::time::Duration;

pub use self::forbidden::Forbidden;
pub use self::pg::PrivatePg;
pub use self::pgbouncer::Pgbouncer;
pub use self::proxy::Proxy;
pub use self::sqs_http::SqsFaults;
pub use self::standby::multi_host_url;

/// Sleeps a random time in `[lo, hi)` milliseconds.
pub async fn jitter_sleep(lo: u64, hi: u64) {
    let ms = lo + (rand_u64() % (hi - lo).max(1));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A cheap random number for fault timing (not for anything secret).
pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}
