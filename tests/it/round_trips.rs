//! How often the sink waits on the database per batch. A TCP proxy in front of Postgres
//! counts the client's flights: each time the client sends after the server last spoke is
//! one round trip, however many statements the flight holds. The tests run on a
//! current-thread runtime, as `sqs2pg-lambda` does, so that what is pipelined leaves in one
//! flight (on several threads the connection task may send the first request before the
//! second is queued: still not waited for, but counted twice).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{login, SinkRecord, TestEnv, TestSink};

/// A TCP proxy counting the client's flights on every connection through it.
struct Flights {
    addr: SocketAddr,
    count: Arc<AtomicU64>,
}

impl Flights {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let count = Arc::new(AtomicU64::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, target, counted.clone()));
            }
        });
        Self { addr, count }
    }

    fn now(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

/// Forwards one connection both ways; counts a flight whenever the client speaks after the
/// server (or first).
async fn serve(client: TcpStream, target: SocketAddr, count: Arc<AtomicU64>) {
    let server = TcpStream::connect(target).await.expect("connect Postgres");
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Who spoke last: true for the client.
    let last = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let l = last.clone();
    let up = async move {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = cr.read(&mut buf).await {
            if !l.swap(true, Ordering::SeqCst) {
                count.fetch_add(1, Ordering::SeqCst);
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = sr.read(&mut buf).await {
            last.store(false, Ordering::SeqCst);
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(up, down);
}

fn rec(sink: &mut TestSink, id: &str) -> SinkRecord {
    sink.record(id, &login(id, "10.9.0.1", "d"))
}

/// The round trips of one write of `batch` on `sink` (the first write, which starts the
/// ledger's generation in a transaction of its own, already done).
async fn trips(flights: &Flights, sink: &mut TestSink, batch: &[SinkRecord]) -> u64 {
    let before = flights.now();
    sink.write(batch).await;
    flights.now() - before
}

/// A Lambda-sized batch (ten new messages, one of them malformed) commits in four round
/// trips, statements unnamed (the default, safe behind a transaction pooler) or prepared:
/// `BEGIN`; the bound, the ledger insert and the lookup in the previous generation; the rows
/// and the reject; `COMMIT`. It was ten unnamed: two `COPY`s prepared in the transaction,
/// each three, and the bound and the lookup on their own.
#[tokio::test]
async fn a_lambda_sized_batch_commits_in_four_round_trips() {
    let env = TestEnv::new().await;
    // postgres://user@host:port/db → host:port
    let authority = env
        .database_url
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next());
    let pg: SocketAddr = authority
        .and_then(|a| a.parse().ok())
        .expect("the test database's address");
    let flights = Flights::start(pg).await;
    let url = format!("postgres://postgres@{}/{}", flights.addr, env.db_name());
    for (prepared, tag) in [(false, "u"), (true, "p")] {
        let mut sink = if prepared {
            env.sink_prepared_as(&url).await
        } else {
            env.sink_as(&url).await
        };
        let first = [rec(&mut sink, &format!("{tag}-first"))];
        assert_eq!(sink.write(&first).await.loaded, 1);
        let mut batch: Vec<SinkRecord> = (0..9)
            .map(|i| rec(&mut sink, &format!("{tag}{i}")))
            .collect();
        batch.push(sink.record(&format!("{tag}-bad"), "{"));
        let n = trips(&flights, &mut sink, &batch).await;
        assert_eq!(
            n, 4,
            "round trips of a 10-message batch (prepared: {prepared})"
        );
    }
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 20);
    assert_eq!(
        env.count("SELECT count(*) FROM user_logins_rejects").await,
        2
    );
}

/// With statements prepared (a direct connection, whose session lasts), the transaction's
/// bounds are the session's, set once at connect: the fast path, its fall-back on a
/// redelivery and a batch large enough for `COPY` load each id once, as unnamed.
#[tokio::test]
async fn prepared_statements_keep_the_bounds_on_the_session() {
    let env = TestEnv::new().await;
    let mut sink = env.sink_prepared_as(&env.database_url).await;
    let first = [rec(&mut sink, "a"), rec(&mut sink, "b")];
    let r = sink.write(&first).await;
    assert_eq!(
        (r.loaded, r.duplicates, r.fell_back),
        (2, 0, false),
        "{r:?}"
    );
    let again = [rec(&mut sink, "b"), rec(&mut sink, "c")];
    let r = sink.write(&again).await;
    assert_eq!((r.loaded, r.duplicates, r.fell_back), (1, 1, true), "{r:?}");
    // Above the array insert's limit: the ids and rows go in by binary COPY.
    let many: Vec<SinkRecord> = (0..300)
        .map(|i| rec(&mut sink, &format!("m{i:03}")))
        .collect();
    let r = sink.write(&many).await;
    assert_eq!((r.loaded, r.duplicates), (300, 0), "{r:?}");
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, 303);
    assert_eq!(env.count("SELECT count(*) FROM sqs2pg_ledger").await, 303);
    let timeout: String = sink
        .sink
        .client()
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("SHOW")
        .get(0);
    assert_ne!(timeout, "0", "the session has the write bound");
}
