//! The binary as a child process: spawn, signal, pipe stdin, read its output and summary.

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::*;

/// A child process that is SIGKILLed and reaped if the test drops it still running (a
/// failed assertion, say), so no consumer outlives its test.
pub struct Proc(pub(crate) Option<Child>);

impl Proc {
    /// Spawns `cmd` as it is configured.
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(Some(cmd.spawn().expect("spawn sqs2pg")))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("process already collected")
    }

    /// Sends SIGTERM (the graceful stop) and returns at once.
    pub fn sigterm(&mut self) {
        self.signal("TERM");
    }

    /// Freezes it (SIGSTOP): no heartbeat, no commit, no exit, until [`Proc::sigcont`].
    pub fn sigstop(&mut self) {
        self.signal("STOP");
    }

    /// Thaws a [`Proc::sigstop`]ped process.
    pub fn sigcont(&mut self) {
        self.signal("CONT");
    }

    fn signal(&mut self, name: &str) {
        let pid = self.child().id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{name} {pid}");
    }

    /// SIGKILL (a crash) and reap; returns the exit status, which is never a success.
    pub fn sigkill(&mut self) -> std::process::ExitStatus {
        let c = self.child();
        c.kill().expect("kill -9");
        c.wait().expect("wait")
    }

    /// SIGKILL and collect what it wrote to piped stdout/stderr.
    pub fn sigkill_with_output(mut self) -> Output {
        let mut c = self.0.take().expect("process already collected");
        c.kill().expect("kill -9");
        c.wait_with_output().expect("wait")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("process already collected").id()
    }

    /// Its exit code once it has exited (a death by signal reads as -1), `None` while it runs.
    pub fn try_exit_code(&mut self) -> Option<i32> {
        let status = self.child().try_wait().expect("try_wait");
        status.map(|s| s.code().unwrap_or(-1))
    }

    /// Waits for it to exit on its own, at most `limit` (it is killed if not); returns its
    /// exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child();
        wait_until("process exits", limit, || {
            let status = child.try_wait().expect("try_wait");
            async move { status.map(|s| s.code()).ok_or("still running") }
        })
        .await
    }

    /// Waits for it to exit and collects what it wrote to piped stdout/stderr.
    pub fn wait_with_output(mut self) -> Output {
        self.0
            .take()
            .expect("process already collected")
            .wait_with_output()
            .expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A process's resident memory (`VmRSS` in `/proc/<pid>/status`) in bytes; `None` once it
/// is gone.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The highest resident memory of a process, sampled every 50 ms from its start until
/// [`PeakRss::stop`].
pub struct PeakRss {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    /// Starts sampling `pid`.
    pub fn sample(pid: u32) -> Self {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            while let Some(rss) = resident_bytes(pid) {
                seen.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak, task }
    }

    /// The highest sample so far.
    pub fn peak(&self) -> u64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops sampling; returns the highest sample.
    pub fn stop(self) -> u64 {
        self.task.abort();
        self.peak()
    }
}

/// Runs `cmd` with `input` on its stdin (written from a thread, so a large output cannot
/// block it) and stdout/stderr piped; asserts all of `input` was written.
pub fn pipe_through(cmd: &mut Command, input: &str) -> Output {
    let (out, written) = with_stdin(cmd, input);
    written.expect("write stdin");
    out
}

/// [`pipe_through`] for a command that may refuse and exit before reading its stdin: a
/// failed write is not an error.
pub fn offer_stdin(cmd: &mut Command, input: &str) -> Output {
    with_stdin(cmd, input).0
}

pub(crate) fn with_stdin(cmd: &mut Command, input: &str) -> (Output, std::io::Result<()>) {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sqs2pg");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    (out, writer.join().expect("stdin writer"))
}

/// Stdout of a command that must succeed.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `name   value` lines of a printed summary (run, rekey, replay), by name, whatever
/// the padding: the name ends at the first run of two spaces (or the last space). An
/// indented `  reason: n` line under `rejected` is `rejected/reason`.
pub fn summary_fields(stdout: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut parent = String::new();
    for line in stdout.lines() {
        if line.starts_with(' ') {
            if let Some((reason, n)) = line.trim().rsplit_once(": ") {
                fields.insert(format!("{parent}/{reason}"), n.trim().to_owned());
            }
            continue;
        }
        let line = line.trim_end();
        let split = line.split_once("  ").or_else(|| line.rsplit_once(' '));
        if let Some((name, value)) = split {
            parent = name.trim().to_owned();
            fields.insert(parent.clone(), value.trim().to_owned());
        }
    }
    fields
}

/// The whole-number fields of [`summary_fields`] (`elapsed` and `rate` are left out).
pub fn summary_numbers(stdout: &str) -> BTreeMap<String, u64> {
    summary_fields(stdout)
        .into_iter()
        .filter_map(|(k, v)| v.parse().ok().map(|n| (k, n)))
        .collect()
}
