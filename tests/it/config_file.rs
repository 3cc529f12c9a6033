//! `sqs2pg config` prints a TOML document that `--config` reads back, each value followed by
//! where it came from; a configuration file that cannot be used is refused (exit 2) naming
//! the file, the line and column, and the key.

use crate::helpers::{stderr, stdout_ok, KEYS};

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

/// The settings of a printed configuration: its lines that are not comments, without the
/// comment saying where each value came from.
fn settings(document: &str) -> Vec<String> {
    document
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split("  # ").next().unwrap_or(l).trim_end().to_owned())
        .collect()
}

/// The comment after `key = …` in a printed configuration.
fn origin_of<'a>(document: &'a str, key: &str) -> &'a str {
    let line = document
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {document}"));
    line.split("  # ")
        .nth(1)
        .unwrap_or_else(|| panic!("no origin: {line}"))
}

/// Settings from a flag, a variable, a file and the defaults, printed, read back with
/// `--config` and nothing else: the same settings, now all from that file. A value with a
/// quote and a backslash survives; a password-holding URL is printed commented out, so the
/// document never sets `<redacted>` as a password.
#[test]
fn config_prints_toml_that_reads_back_the_same_settings() {
    let dir = Dir::new("config-round-trip");
    let file = dir.file(
        "layers.toml",
        "queue_url = \"http://127.0.0.1:4566/000000000000/q\\\"\\\\x\"\nenvelope = \"sns\"\n[run]\nbatch_size = 100\n",
    );
    let keys = dir.file("keys", &format!("{KEYS}\n"));
    // A keys file others can read is refused.
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let printed = stdout_ok(&sqs2pg(
        &[
            "--config",
            &file,
            "config",
            "--pollers",
            "7",
            "--queue-name",
            "from-flag",
        ],
        &[
            ("SQS2PG_WRITERS", "5"),
            ("SQS2PG_KEYS_FILE", &keys),
            (
                "DATABASE_URL",
                "postgres://app@db.internal:6432/logins?sslmode=require",
            ),
        ],
    ));
    assert_eq!(origin_of(&printed, "pollers"), "from --pollers");
    assert_eq!(origin_of(&printed, "writers"), "from SQS2PG_WRITERS");
    assert_eq!(origin_of(&printed, "batch_size"), format!("from {file}"));
    assert_eq!(origin_of(&printed, "wait_seconds"), "default");
    assert!(
        printed.contains("# keyring: ") && printed.contains("key ids t1"),
        "{printed}"
    );

    let document = dir.file("printed.toml", &printed);
    let reread = stdout_ok(&sqs2pg(&["--config", &document, "config"], &[]));
    assert_eq!(
        settings(&reread),
        settings(&printed),
        "{printed}\n---\n{reread}"
    );
    assert_eq!(origin_of(&reread, "pollers"), format!("from {document}"));
    assert!(
        settings(&printed).contains(&"pollers = 7".to_owned()),
        "{printed}"
    );

    let with_password = stdout_ok(&sqs2pg(
        &["config"],
        &[(
            "DATABASE_URL",
            "postgres://app:s3cr3t-pw@db.internal:5432/logins",
        )],
    ));
    assert!(!with_password.contains("s3cr3t-pw"), "{with_password}");
    assert!(
        with_password
            .contains("# database_url = \"postgres://app:<redacted>@db.internal:5432/logins\""),
        "{with_password}"
    );
    let document = dir.file("with-password.toml", &with_password);
    stdout_ok(&sqs2pg(&["--config", &document, "config"], &[]));
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

/// A deprecated key (`[run] shutdown_timeout_secs`) is still read, as its new key, with one
/// warning on stderr naming the new spelling (a JSON line under JSON logs); `config` prints
/// only the new key.
#[test]
fn a_deprecated_key_is_read_with_a_warning_naming_its_new_spelling() {
    let dir = Dir::new("config-deprecated");
    let file = dir.file("old.toml", "[run]\nshutdown_timeout_secs = 12\n");
    let out = sqs2pg(&["--config", &file, "config"], &[]);
    let printed = stdout_ok(&out);
    assert_eq!(
        origin_of(&printed, "shutdown_timeout"),
        format!("from {file}")
    );
    assert!(
        settings(&printed).contains(&"shutdown_timeout = 12".to_owned()),
        "{printed}"
    );
    assert!(!printed.contains("shutdown_timeout_secs"), "{printed}");
    let e = stderr(&out);
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    assert!(
        e.contains("WARN")
            && e.contains(&format!("{file}:2:"))
            && e.contains("shutdown_timeout_secs is deprecated")
            && e.contains("rename it shutdown_timeout"),
        "{e}"
    );

    let out = sqs2pg(&["--config", &file, "--log-format", "json", "config"], &[]);
    stdout_ok(&out);
    let e = stderr(&out);
    let line: serde_json::Value =
        serde_json::from_str(e.trim_end()).unwrap_or_else(|err| panic!("{err}: {e}"));
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(
        line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rename it shutdown_timeout")),
        "{line}"
    );
}
