//! Behind PgBouncer in transaction pooling mode, where each transaction may run on another
//! server connection: a statement prepared in one transaction (or outside any) is not there
//! in the next ("prepared statement … does not exist", 26000). Debian's PgBouncer (1.18)
//! predates protocol-level prepared statement support (1.21), so the writers must not rely
//! on one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::faults::Pgbouncer;
use crate::helpers::{connect, login, RunOptions, TestEnv};

const MESSAGES: usize = 5_000;
/// Committed before the drain and made visible again: redeliveries the drain must skip.
const REDELIVERED: usize = 300;
/// Other clients on the same pool, each holding a server connection for a moment at a time.
const NEIGHBOURS: usize = 3;

/// Each round `(default_pool_size, writers)`: fewer server connections than clients, so the
/// pooler keeps handing transactions to other server connections.
const ROUNDS: [(u32, usize); 3] = [(2, 4), (3, 2), (4, 3)];

/// 5,000 messages (300 of them redelivered after their commit) through transaction pooling,
/// with other clients on the pool, three times: each message is exactly one row, no write
/// was retried, none given up.
#[tokio::test(flavor = "multi_thread")]
async fn transaction_pooling_loads_each_message_once() {
    for (pool_size, writers) in ROUNDS {
        one_round(pool_size, writers).await;
    }
}

async fn one_round(pool_size: u32, writers: usize) {
    let env = TestEnv::new().await;
    let bouncer = Pgbouncer::transaction_pooling(&env.database_url, pool_size).await;
    let pooled = bouncer.url(env.db_name());
    let bodies: Vec<String> = (0..MESSAGES)
        .map(|i| login(&format!("p{i}"), "10.9.0.1", &format!("d{i}")))
        .collect();
    env.send(&bodies).await;

    // A crash after COMMIT: committed through the pooler, then visible again.
    let received = env.receive_at_least(REDELIVERED).await;
    let first = env.sink_as(&pooled).await.write_received(&received).await;
    assert_eq!(first.loaded as usize, received.len());
    env.make_visible(&received).await;

    let stop = Arc::new(AtomicBool::new(false));
    let neighbours: Vec<_> = (0..NEIGHBOURS)
        .map(|_| tokio::spawn(neighbour(pooled.clone(), stop.clone())))
        .collect();
    let opts = RunOptions::default()
        .database_url(&pooled)
        .writers(writers)
        .batch_wait(Duration::from_millis(20));
    let (result, stats) = env.drain_counting(opts).await;
    stop.store(true, Ordering::Relaxed);
    for n in neighbours {
        n.await.expect("neighbour");
    }
    let round = format!("pool {pool_size}, {writers} writers");
    let summary = result.unwrap_or_else(|e| panic!("{round}: the drain failed: {e}"));
    let counters = stats.snapshot();
    assert_eq!(
        (counters.db_retries, counters.batches_failed),
        (0, 0),
        "{round}: writes were retried or given up (see the log for the database's error)"
    );
    assert_eq!(
        summary.loaded as usize + received.len(),
        MESSAGES,
        "{round}: {summary:?}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins").await as usize,
        MESSAGES,
        "{round}"
    );
    assert_eq!(
        env.count("SELECT count(DISTINCT user_id) FROM user_logins")
            .await as usize,
        MESSAGES,
        "{round}"
    );
    env.assert_queue_empty().await;
}

/// Another application on the same pool: short transactions that hold a server connection
/// for a few milliseconds, until `stop`.
async fn neighbour(url: String, stop: Arc<AtomicBool>) {
    let db = connect(&url).await;
    while !stop.load(Ordering::Relaxed) {
        db.batch_execute("BEGIN; SELECT count(*) FROM user_logins; SELECT pg_sleep(0.003); COMMIT")
            .await
            .unwrap_or_else(|e| panic!("neighbour through PgBouncer: {e}"));
    }
}
