//! A configuration file that cannot be used is refused (exit 2) naming the file, the line
//! and column, and the key.

use crate::helpers::stderr;

/// A directory of this test's own, removed when dropped.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sqs2pg-it-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `text` to `name` in the directory; its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `sqs2pg ARGS` with no environment but `envs`: no setting comes from anywhere else.
fn sqs2pg(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
        .env_clear()
        .envs(envs.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

/// What `sqs2pg --config FILE config` says about FILE holding `text`: exit 2 and one line
/// on stderr, with FILE's path written `FILE`.
fn refusal(dir: &Dir, text: &str) -> String {
    let file = dir.file("bad.toml", text);
    let out = sqs2pg(&["--config", &file, "config"], &[]);
    assert_eq!(out.status.code(), Some(2), "{text}: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "{text}");
    let e = stderr(&out).replace(&file, "FILE");
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    e
}

/// A syntax error, a wrong type, an unknown key and a value its flag refuses each name the
/// file and where in it; the last also the key and why.
#[test]
fn config_file_errors_name_the_file_line_and_key() {
    let dir = Dir::new("config-errors");
    let e = refusal(&dir, "queue_name = \"q\"\nenvelope = sns\n");
    assert!(e.contains("--config / SQS2PG_CONFIG: FILE:2:12: "), "{e}");
    let e = refusal(&dir, "[run]\npollers = \"8\"\n");
    assert!(
        e.contains("FILE:2:11: ") && e.contains("expected u64"),
        "{e}"
    );
    let e = refusal(&dir, "[run]\n\npolers = 8\n");
    assert!(e.contains("FILE:3:1: ") && e.contains("polers"), "{e}");
    let e = refusal(&dir, "[run]\npollers = 0\n");
    assert!(
        e.contains("FILE:2:11: pollers = 0 is refused: ") && e.contains("1..=256"),
        "{e}"
    );
    let e = refusal(&dir, "envelope = \"smoke\"\n");
    assert!(
        e.contains("FILE:1:12: envelope = \"smoke\" is refused: ") && e.contains("sns"),
        "{e}"
    );
}
