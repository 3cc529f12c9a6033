//! Fault-injection harness: a TCP proxy that cuts or blackholes connections, and a private
//! Postgres cluster a test may restart without disturbing the others.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy on 127.0.0.1 in front of `target`.
///
/// * [`Proxy::cut`] drops every open connection at once (both directions, mid-stream).
/// * [`Proxy::blackhole`] makes it accept connections but forward nothing, so clients hang
///   until their own timeouts; turning it off closes the stalled connections.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    generation: watch::Sender<u64>,
    blackholed: Arc<AtomicBool>,
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
        let blackholed = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (gen_tx, bh, acc) = (generation.clone(), blackholed.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    break;
                };
                acc.fetch_add(1, Ordering::Relaxed);
                let mut cut = gen_tx.subscribe();
                let bh = bh.clone();
                tokio::spawn(async move {
                    let mut client = client;
                    if bh.load(Ordering::Relaxed) {
                        // Hold the connection silently until the blackhole ends or a cut.
                        let _ = cut.changed().await;
                        let _ = client.shutdown().await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            generation,
            blackholed,
            accepted,
            task,
        }
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Starts or ends a blackhole. Entering it also drops open connections, so in-flight
    /// requests fail or hang on reconnect like a network partition.
    pub fn blackhole(&self, on: bool) {
        self.blackholed.store(on, Ordering::Relaxed);
        self.cut();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn pg_bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/services up installs them)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("an initdb")
}

/// A throwaway Postgres cluster on its own port, owned by this test.
pub struct PrivatePg {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePg {
    fn pg_cmd(&self, tool: &str) -> Command {
        as_pg(&self.bin.join(tool))
    }

    /// initdb + start (a few seconds).
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// [`PrivatePg::start`] off the async runtime's threads, then the tables created.
    pub async fn start_migrated() -> Self {
        let pg = tokio::task::spawn_blocking(Self::start)
            .await
            .expect("start private cluster");
        crate::helpers::connect(&pg.url).await.migrate().await;
        pg
    }

    /// Like [`PrivatePg::start`], with TLS on: a throwaway CA (its PEM at
    /// [`PrivatePg::ca_file`]) signs a certificate for `127.0.0.1` and `localhost`.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// The test CA's certificate (PEM), when started with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn start_with(tls: bool) -> Self {
        let bin = pg_bindir();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sqs2pg-it-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("pg dir");
        if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:", dir.to_str().unwrap()])
                .status();
        }
        let pg = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            dir,
            bin,
        };
        let out = pg
            .pg_cmd("initdb")
            .args([
                "-D",
                pg.data().as_str(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if tls {
            pg.make_certs();
        }
        pg.ctl(&["start"]);
        pg
    }

    fn make_certs(&self) {
        let d = &self.dir;
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .current_dir(d)
                .args(args)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=sqs2pg test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        let data = PathBuf::from(self.data());
        for f in ["server.pem", "server.key"] {
            std::fs::copy(d.join(f), data.join(f)).expect("copy cert");
        }
        let key = data.join("server.key");
        let _ = Command::new("chmod").arg("600").arg(&key).status();
        if is_root() {
            let _ = Command::new("chown")
                .arg("postgres:")
                .arg(&key)
                .arg(data.join("server.pem"))
                .status();
        }
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str("\nssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).expect("postgresql.conf");
        // TLS or nothing: a connection that succeeds is an encrypted one.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn ctl(&self, args: &[&str]) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        let mut c = self.pg_cmd("pg_ctl");
        c.args([
            "-D",
            &self.data(),
            "-l",
            &log,
            "-w",
            "-t",
            "60",
            "-o",
            &opts,
        ])
        .args(args);
        let out = c.output().expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl restart -m immediate`: a crash and recovery.
    pub fn restart_immediate(&self) {
        self.ctl(&["restart", "-m", "immediate"]);
    }

    /// Stops the server (fast).
    pub fn stop(&self) {
        self.ctl(&["stop", "-m", "fast"]);
    }

    /// Starts it again.
    pub fn start_again(&self) {
        self.ctl(&["start"]);
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .pg_cmd("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn as_pg(tool: &std::path::Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    }
}

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
