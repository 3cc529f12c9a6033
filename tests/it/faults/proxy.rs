//! A TCP proxy whose path a test can break in three ways: cut it, blackhole it, or freeze it.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy on 127.0.0.1 in front of `target`.
///
/// * [`Proxy::cut`] drops every open connection at once (both directions, mid-stream).
/// * [`Proxy::blackhole`] makes it accept connections but forward nothing, so clients hang
///   until their own timeouts; turning it off closes the stalled connections.
/// * [`Proxy::freeze`] stalls the connections open at that moment without closing them, as a
///   NAT or firewall that forgot them would, while new connections work.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    generation: watch::Sender<u64>,
    blackholed: Arc<AtomicBool>,
    refusing: Arc<AtomicBool>,
    /// Connections with a sequence number below this are frozen (`None`: nothing is).
    frozen_below: watch::Sender<Option<u64>>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (generation, _) = watch::channel(0u64);
        let (frozen_below, _) = watch::channel(None);
        let blackholed = Arc::new(AtomicBool::new(false));
        let refusing = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (gen_tx, frz, bh, rf, acc) = (
            generation.clone(),
            frozen_below.clone(),
            blackholed.clone(),
            refusing.clone(),
            accepted.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    break;
                };
                if rf.load(Ordering::Relaxed) {
                    // Closed before a byte is read: the client's request fails at once.
                    drop(client);
                    continue;
                }
                let seq = acc.fetch_add(1, Ordering::Relaxed);
                let conn = Conn {
                    cut: gen_tx.subscribe(),
                    gate: Gate {
                        seq,
                        frozen_below: frz.subscribe(),
                    },
                    blackholed: bh.load(Ordering::Relaxed),
                };
                tokio::spawn(conn.serve(client, target));
            }
        });
        Self {
            addr,
            generation,
            blackholed,
            refusing,
            frozen_below,
            accepted,
            task,
        }
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Starts or ends refusing: while on, every new connection is closed as soon as it is
    /// accepted and open ones are dropped, so every request fails fast (a server that is down).
    pub fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::Relaxed);
        self.cut();
    }

    /// Starts or ends a blackhole. Entering it also drops open connections, so in-flight
    /// requests fail or hang on reconnect like a network partition.
    pub fn blackhole(&self, on: bool) {
        self.blackholed.store(on, Ordering::Relaxed);
        self.cut();
    }

    /// `on`: every connection open now stops relaying in both directions, but stays open (no
    /// FIN, no RST), so its client learns nothing until its own timeout fires; connections
    /// accepted afterwards relay normally. `off`: the frozen connections RESUME, delivering
    /// what was queued meanwhile (they are not closed; [`Proxy::cut`] closes them).
    ///
    /// The proxy stops reading, so what the peers send piles up in socket buffers and then
    /// meets a zero TCP window. This host's kernel still ACKs TCP keepalive probes, though:
    /// keepalive alone does not notice a freeze, only a timeout on an application answer
    /// (or `tcp_user_timeout` once unacknowledged data is queued) does.
    pub fn freeze(&self, on: bool) {
        let below = on.then(|| self.accepted.load(Ordering::Relaxed));
        self.frozen_below.send_replace(below);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

/// One accepted connection's view of the proxy's switches.
struct Conn {
    cut: watch::Receiver<u64>,
    gate: Gate,
    /// Whether the proxy was blackholed when this connection arrived.
    blackholed: bool,
}

impl Conn {
    async fn serve(mut self, mut client: TcpStream, target: SocketAddr) {
        if self.blackholed {
            // Hold the connection silently until the blackhole ends or a cut.
            let _ = self.cut.changed().await;
            let _ = client.shutdown().await;
            return;
        }
        let Ok(server) = TcpStream::connect(target).await else {
            return;
        };
        let (client_rx, client_tx) = client.into_split();
        let (server_rx, server_tx) = server.into_split();
        let up = pump(client_rx, server_tx, self.gate.clone());
        let down = pump(server_rx, client_tx, self.gate);
        // Returning drops both sockets: that is what a cut is.
        tokio::select! {
            _ = async { tokio::try_join!(up, down) } => {}
            _ = self.cut.changed() => {}
        }
    }
}

/// Tells a connection whether it is frozen.
#[derive(Clone)]
struct Gate {
    seq: u64,
    frozen_below: watch::Receiver<Option<u64>>,
}

impl Gate {
    /// Returns once this connection may relay (at once unless frozen).
    async fn open(&mut self) {
        let seq = self.seq;
        // An error means the proxy is gone; the cut that comes with that ends the connection.
        let _ = self
            .frozen_below
            .wait_for(|f| f.is_none_or(|below| seq >= below))
            .await;
    }
}

/// Copies one direction by hand rather than with `copy_bidirectional`, so a freeze can stop
/// the bytes between a read and its write: nothing read after the freeze is delivered.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut gate: Gate) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        gate.open().await;
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close, as `copy_bidirectional` does: the other direction keeps going.
            return to.shutdown().await;
        }
        gate.open().await;
        to.write_all(&buf[..n]).await?;
    }
}
