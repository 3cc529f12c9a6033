//! A real PgBouncer (Debian's `pgbouncer`, which `scripts/services up` installs) in front of the
//! suite's Postgres, on its own port with a config of its own, owned by one test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::pg::{free_port, is_root};
use crate::helpers::wait_until;

/// PgBouncer in transaction pooling mode; killed and its directory removed on drop.
pub struct Pgbouncer {
    port: u16,
    dir: PathBuf,
    child: Child,
}

fn binary() -> PathBuf {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("PgBouncer (Debian's `pgbouncer`; `scripts/services up` installs it)")
}

impl Pgbouncer {
    /// `pool_mode = transaction` with `pool_size` server connections per database and user,
    /// in front of the server of `upstream` (any database on it, as user `postgres`).
    pub async fn transaction_pooling(upstream: &str, pool_size: u32) -> Self {
        let pg: tokio_postgres::Config = upstream.parse().expect("upstream URL");
        let host = match pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let listen = free_port();
        let dir = std::env::temp_dir().join(format!(
            "sqs2pg-it-pgbouncer-{}-{listen}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        let users = dir.join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").expect("auth file");
        // As root it must drop to another user (it refuses to run as root).
        let user = if is_root() { "user = postgres\n" } else { "" };
        let ini = format!(
            "[databases]\n* = host={host} port={port} user=postgres\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {}\npool_mode = transaction\n\
             default_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\n\
             max_client_conn = 500\nserver_round_robin = 1\nignore_startup_parameters = extra_float_digits\n{user}",
            users.display()
        );
        let config = dir.join("pgbouncer.ini");
        std::fs::write(&config, ini).expect("pgbouncer.ini");
        let _ = Command::new("chmod")
            .args(["-R", "a+rwX", dir.to_str().unwrap()])
            .status();
        let log = std::fs::File::create(dir.join("log")).expect("log file");
        let child = Command::new(binary())
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn pgbouncer");
        let me = Self {
            port: listen,
            dir,
            child,
        };
        let target = format!("127.0.0.1:{listen}");
        wait_until(
            "PgBouncer accepts connections",
            Duration::from_secs(20),
            || async {
                std::net::TcpStream::connect(&target)
                    .map(drop)
                    .map_err(|e| format!("{e}; log: {}", me.log()))
            },
        )
        .await;
        me
    }

    /// A URL for database `db` through the pooler.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
