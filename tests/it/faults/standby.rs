//! A primary with a synchronous streaming standby, for failover tests: crash the primary,
//! promote the standby, and see whether a multi-host client follows.

use std::time::Duration;

use super::pg::run;
use super::PrivatePg;
use crate::helpers::{connect, wait_until};

/// The standby's `application_name`, which the primary's `synchronous_standby_names` names.
const STANDBY_NAME: &str = "standby1";

/// How long a cluster may take to reach a state once asked (slow CI machines included).
const STATE_TIMEOUT: Duration = Duration::from_secs(30);

impl PrivatePg {
    /// A primary and a hot standby streaming from it, each on its own port, the standby
    /// synchronous: once this returns, every commit on the primary is on the standby's disk
    /// before the client hears of it, so a failover loses no acknowledged write. The
    /// standby applies asynchronously, though: a read there may lag the commit by a moment.
    ///
    /// Commits on the primary block while the standby is down (that is what synchronous
    /// means); the pair is meant to lose its primary, not its standby.
    pub async fn start_with_sync_standby() -> (PrivatePg, PrivatePg) {
        let (primary, standby) = tokio::task::spawn_blocking(|| {
            let primary = PrivatePg::initdb();
            primary.allow_replication();
            primary.ctl(&["start"]);
            let standby = PrivatePg::standby_of(&primary);
            standby.ctl(&["start"]);
            (primary, standby)
        })
        .await
        .expect("start primary and standby");
        primary.require_sync_standby().await;
        (primary, standby)
    }

    /// [`PrivatePg::start_with_sync_standby`], then the tables created on the primary (and
    /// so, by replication, on the standby).
    pub async fn start_pair_migrated() -> (PrivatePg, PrivatePg) {
        let (primary, standby) = Self::start_with_sync_standby().await;
        connect(&primary.url).await.migrate().await;
        (primary, standby)
    }

    /// `pg_ctl stop -m immediate`: the server dies as on a power cut, without a shutdown
    /// checkpoint and without telling its clients (they see their sockets close).
    pub fn stop_immediate(&self) {
        self.ctl(&["stop", "-m", "immediate"]);
    }

    /// Promotes a standby and returns once it takes writes. `pg_ctl promote -w` already
    /// waits for the end of recovery; the check afterwards is what a test relies on, so it
    /// is made explicitly rather than trusted.
    pub async fn promote(&self) {
        let mut promote = self.ctl_cmd(&["promote"]);
        tokio::task::spawn_blocking(move || run(&mut promote, "pg_ctl promote"))
            .await
            .expect("pg_ctl promote");
        let db = connect(&self.url).await;
        wait_until(
            "promoted standby out of recovery",
            STATE_TIMEOUT,
            || async { !db.scalar::<bool>("SELECT pg_is_in_recovery()").await },
        )
        .await;
    }

    /// Settings a primary needs before it starts (initdb's defaults already have most; they
    /// are spelled out so that a changed default cannot break the pair).
    fn allow_replication(&self) {
        let data = std::path::PathBuf::from(self.data());
        append(
            &data.join("postgresql.conf"),
            "\nwal_level = replica\nmax_wal_senders = 4\n",
        );
        append(
            &data.join("pg_hba.conf"),
            "\nhost replication all 127.0.0.1/32 trust\n",
        );
    }

    /// A new cluster cloned from `primary` by `pg_basebackup -R`, which leaves it configured
    /// as a standby (`standby.signal`, `primary_conninfo` naming [`STANDBY_NAME`]); stopped.
    fn standby_of(primary: &PrivatePg) -> PrivatePg {
        let standby = PrivatePg::allocate();
        let port = primary.port.to_string();
        let conninfo = format!("application_name={STANDBY_NAME}");
        run(
            standby.pg_cmd("pg_basebackup").args([
                "-D",
                &standby.data(),
                "-R",
                "--checkpoint=fast",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                &conninfo,
            ]),
            "pg_basebackup",
        );
        standby
    }

    /// Makes the standby synchronous and waits until the primary says it is. Done after the
    /// base backup, through `ALTER SYSTEM`, so the standby's copy of the settings does not
    /// name itself: once promoted, it must not wait for a standby of its own.
    async fn require_sync_standby(&self) {
        let db = connect(&self.url).await;
        // Two statements, not one string: ALTER SYSTEM refuses to run in a transaction block,
        // which a multi-statement simple query is.
        let alter = format!("ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'");
        db.batch_execute(&alter).await.expect(&alter);
        db.scalar::<bool>("SELECT pg_reload_conf()").await;
        wait_until("standby synchronous", STATE_TIMEOUT, || async {
            let state: Vec<String> = db
                .column("SELECT sync_state FROM pg_stat_replication")
                .await;
            if state == ["sync"] {
                Ok(())
            } else {
                Err(state)
            }
        })
        .await;
    }
}

/// A URL listing both nodes that only settles on the one taking writes: what a client
/// configured for failover uses. `db` is the database name on both.
pub fn multi_host_url(a: &PrivatePg, b: &PrivatePg, db: &str) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{db}?target_session_attrs=read-write",
        a.port, b.port
    )
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}
