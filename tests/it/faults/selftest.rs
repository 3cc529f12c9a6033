//! The harness's own specifications: a fault test is only as good as its fault, so each
//! fault is shown to do what the tests built on it assume, against the real services.

use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::{multi_host_url, PrivatePg, Proxy};
use crate::helpers::{connect, wait_until, DeadLetters, TestEnv};

/// Where the shared Postgres of `DATABASE_URL` listens, for a proxy to stand in front of.
fn shared_pg_addr() -> SocketAddr {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let cfg = tokio_postgres::Config::from_str(&url).expect("DATABASE_URL parses");
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    (host.as_str(), port)
        .to_socket_addrs()
        .expect("DATABASE_URL host resolves")
        .next()
        .expect("an address for the DATABASE_URL host")
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_standby_sees_primary_commits_and_once_promoted_takes_writes_via_the_multi_host_url() {
    let started = Instant::now();
    let (primary, standby) = PrivatePg::start_pair_migrated().await;
    eprintln!(
        "standby pair started and migrated in {:?}",
        started.elapsed()
    );
    let url = multi_host_url(&primary, &standby, "postgres");
    let cfg = tokio_postgres::Config::from_str(&url).expect("the multi-host URL parses");
    assert_eq!(cfg.get_ports(), [primary.port, standby.port]);

    connect(&primary.url)
        .await
        .batch_execute("CREATE TABLE probe (x int); INSERT INTO probe VALUES (1)")
        .await
        .expect("write on the primary");
    let replica = connect(&standby.url).await;
    wait_until(
        "the primary's row on the standby",
        Duration::from_secs(10),
        || async {
            match replica.query_one("SELECT count(*) FROM probe", &[]).await {
                Ok(row) if row.get::<_, i64>(0) == 1 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    let _primary = tokio::task::spawn_blocking(move || {
        primary.stop_immediate();
        primary
    })
    .await
    .expect("crash the primary");
    let promoting = Instant::now();
    standby.promote().await;
    eprintln!("standby promoted in {:?}", promoting.elapsed());

    let db = connect(&url).await;
    let port: i32 = db.scalar("SELECT inet_server_port()").await;
    assert_eq!(
        port,
        i32::from(standby.port),
        "the multi-host URL found the new primary"
    );
    db.batch_execute("INSERT INTO probe VALUES (2)")
        .await
        .expect("write on the promoted standby");
    assert_eq!(db.count("SELECT count(*) FROM probe").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_proxy_stalls_open_connections_without_closing_them_and_relays_new_ones() {
    let proxy = Proxy::start(shared_pg_addr()).await;
    let url = format!("postgres://postgres@{}/postgres", proxy.addr);
    let old = connect(&url).await;
    assert_eq!(old.scalar::<i32>("SELECT 1").await, 1);

    proxy.freeze(true);
    let stalled =
        tokio::time::timeout(Duration::from_secs(2), old.query_one("SELECT 1", &[])).await;
    assert!(
        stalled.is_err(),
        "a frozen connection answered: {stalled:?}"
    );
    assert!(!old.is_closed(), "a freeze must not close the connection");

    let new = tokio::time::timeout(Duration::from_secs(5), connect(&url))
        .await
        .expect("a new connection through a frozen proxy");
    assert_eq!(new.scalar::<i32>("SELECT 1").await, 1);

    // Thawing resumes the frozen connection, as Proxy::freeze documents.
    proxy.freeze(false);
    let resumed = tokio::time::timeout(Duration::from_secs(5), old.scalar::<i32>("SELECT 2"))
        .await
        .expect("the thawed connection answers");
    assert_eq!(resumed, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_received_more_than_max_receive_count_times_moves_to_the_dead_letter_queue() {
    let (env, dead): (TestEnv, DeadLetters) = TestEnv::with_redrive(1, 1).await;
    env.send(&["poison"]).await;
    assert_eq!(env.receive_at_least(1).await.len(), 1);
    assert_eq!(dead.depth().await, 0, "moved on the first receive");

    // Not deleted, so it comes back after a second; the receive that would be its second
    // moves it instead.
    let received = std::cell::Cell::new(1);
    let (env, dead, received) = (&env, &dead, &received);
    wait_until(
        "the message in the dead-letter queue",
        Duration::from_secs(15),
        move || async move {
            let got = env.source.receive(0).await.expect("receive");
            received.set(received.get() + got.len());
            dead.depth().await == 1
        },
    )
    .await;
    eprintln!(
        "dead-lettered after being received {} times",
        received.get()
    );
    env.assert_queue_empty().await;
}
