//! The binary's outside behaviour: exit codes, messages that say what to do, keys, and no
//! PII in any output.

use crate::helpers::{login, masker, pipe_through, stderr, stdout_ok, writing_kid, TestEnv, KEYS};

#[tokio::test(flavor = "multi_thread")]
async fn run_without_a_key_exits_2_and_says_how_to_make_one() {
    let env = TestEnv::new().await;
    let out = env
        .cmd(&["run", "--until-empty"])
        .env_remove("SQS2PG_KEYS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("sqs2pg keygen"), "{}", stderr(&out));

    let out = env
        .cmd(&["run", "--until-empty"])
        .env("SQS2PG_KEYS", "k1=c2hvcnQ=")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("SQS2PG_KEYS") && e.contains("needs 64:") && e.contains("keygen --kid k1"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_without_tables_exits_2_and_says_migrate() {
    let env = TestEnv::unmigrated().await;
    let out = env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("sqs2pg migrate"), "{}", stderr(&out));
    stdout_ok(&env.run_cmd(&["migrate"]));
    let out = env.run_cmd(&["run", "--until-empty", "--wait-seconds", "1"]);
    stdout_ok(&out);
}

/// A `--queue-url` that names no queue is the user's to fix, like a name that resolves to
/// none: exit 2 naming the setting, nothing received.
#[tokio::test(flavor = "multi_thread")]
async fn run_with_a_queue_url_that_names_no_queue_exits_2_naming_it() {
    let env = TestEnv::new().await;
    let missing = format!("{}-missing", env.queue_url);
    for args in [
        &["run", "--until-empty", "--wait-seconds", "1"][..],
        &["send", "--synthetic", "3"][..],
    ] {
        let out = env
            .cmd(args)
            .env("SQS2PG_QUEUE_URL", &missing)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--queue-url"), "{}", stderr(&out));
        assert!(stderr(&out).contains(&missing), "{}", stderr(&out));
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let bin = env!("CARGO_BIN_EXE_sqs2pg");
    for (args, flag) in [
        (vec!["run", "--pollers", "0"], "--pollers"),
        (vec!["run", "--wait-seconds", "21"], "--wait-seconds"),
        (vec!["run", "--batch-size", "many"], "--batch-size"),
        (
            vec!["send", "--synthetic", "10", "--malformed-rate", "1.5"],
            "--malformed-rate",
        ),
        (vec!["send"], "--file"),
        (
            vec!["reveal", "--column", "E-mail", "--reason", "r"],
            "--column",
        ),
        (vec!["reveal", "--column", "ip"], "--reason"),
        (vec!["reveal", "--reason", " "], "--reason"),
        (vec!["mask", "--column", "ip", "1.2.3.4"], "--reason"),
        (vec!["run", "--queue-name", "bad name!"], "--queue-name"),
        (vec!["keygen", "--kid", "a:b"], "--kid"),
        (
            vec!["run", "--database-url", "postgres://h:port/x"],
            "--database-url",
        ),
    ] {
        let out = std::process::Command::new(bin)
            .args(&args)
            .env("SQS2PG_KEYS", KEYS)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn keygen_makes_a_usable_64_byte_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
        .args(["keygen", "--kid", "k7"])
        .output()
        .unwrap();
    let line = stdout_ok(&out);
    assert_eq!(writing_kid(&line), "k7");
    let b64 = line.trim().strip_prefix("k7=").unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
            .len(),
        64
    );
}

/// `keygen --out FILE` makes a keyring only its owner can read, holding one loadable entry,
/// and prints nothing on stdout; a second `--out` to the same file exits 2 naming it and
/// saying how to combine keyrings (the new entry first), and leaves it unchanged.
#[test]
#[cfg(unix)]
fn keygen_out_writes_a_new_mode_600_keyring_and_never_overwrites_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("sqs2pg-it-keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys");
    let keygen = |kid: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
            .args(["keygen", "--kid", kid, "--out"])
            .arg(&keys)
            .output()
            .unwrap()
    };
    let first = keygen("k1");
    assert_eq!(stdout_ok(&first), "", "the key goes to the file only");
    let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let written = std::fs::read_to_string(&keys).unwrap();
    let ring = sqs2pg::mask::Keyring::parse(&written).expect("a loadable keyring");
    assert_eq!(ring.writing_kid(), "k1");

    let second = keygen("k2");
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains(&keys.display().to_string()), "{err}");
    assert!(
        err.contains("keygen --kid k2 --out") && err.contains("cat "),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&keys).unwrap(),
        written,
        "unchanged"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn reveal_reports_bad_tokens_by_line_and_keeps_alignment() {
    let env = TestEnv::new().await;
    let good = masker(KEYS).mask_ip("192.168.0.1");
    let out = pipe_through(
        &mut env.cmd(&["reveal", "--reason", "test"]),
        &format!("{good}\nv1:zz:AAAA\n{good}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "192.168.0.1\n\n192.168.0.1\n"
    );
    assert!(
        stderr(&out).contains("line 2:") && stderr(&out).contains("\"zz\""),
        "{}",
        stderr(&out)
    );
}

/// An SQS refusal reads as the service's code and message with its request id: the one
/// useful sentence, not the SDK's debug dump of the raw HTTP response around it. (LocalStack
/// refuses a queue URL whose account id is not one.)
#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_refusal_reads_as_its_code_and_message() {
    let env = TestEnv::new().await;
    let file = std::env::temp_dir().join(format!("sqs2pg-it-refusal-{}.jsonl", env.queue_name));
    std::fs::write(&file, login("u1", "10.0.0.1", "d1")).unwrap();
    let bad_account = env.queue_url.replace("/000000000000/", "/0000/");
    assert_ne!(bad_account, env.queue_url);
    let out = env
        .cmd(&["send", "--file", file.to_str().unwrap()])
        .env("SQS2PG_QUEUE_URL", &bad_account)
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("SQS SendMessageBatch failed: ")
            && e.contains("'0000' is not a valid AWS account ID")
            && e.contains("(request id "),
        "{e}"
    );
    for dump in ["ServiceError", "raw: Response", "SdkBody", "headers"] {
        assert!(!e.contains(dump), "SDK debug output ({dump}): {e}");
    }
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// A message that quotes its cause does not repeat it.
#[tokio::test(flavor = "multi_thread")]
async fn an_error_says_each_cause_once() {
    let env = TestEnv::new().await;
    let out = env
        .cmd(&["run", "--until-empty"])
        .env("SQS2PG_KEYS", "k1=short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert_eq!(e.matches("is not valid base64").count(), 1, "{e}");
    assert_eq!(
        e.trim_end(),
        "error: SQS2PG_KEYS: key \"k1\" is not valid base64: make a new one with `sqs2pg keygen --kid k1`"
    );
}

/// `sqs2pg` alone says where to start: the two commands and `--help`, not a bare usage line.
#[test]
fn no_arguments_print_where_to_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    for part in ["make demo", "make test", "sqs2pg migrate", "--help"] {
        assert!(e.contains(part), "{part}: {e}");
    }
}

/// `sqs2pg config` never prints a password, wherever the connection string holds it.
#[test]
fn config_never_prints_a_password() {
    for url in [
        "postgres://app:s3cr3t-pw@db.internal:5432/logins",
        "postgres://app:s3cr3t-pw/with?slash@db.internal:5432/logins",
        "postgres://app@db.internal:5432/logins?sslmode=require&password=s3cr3t-pw",
        "host=db.internal user=app password=s3cr3t-pw dbname=logins",
        "host=db.internal user=app password='s3cr3t-pw' dbname=logins",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
            .arg("config")
            .env("DATABASE_URL", url)
            .env_remove("SQS2PG_CONFIG")
            .output()
            .unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(out.status.success(), "{url}: {all}");
        assert!(
            !all.contains("s3cr3t-pw"),
            "password printed for {url}: {all}"
        );
        assert!(
            all.contains("<redacted>") && all.contains("db.internal"),
            "{all}"
        );
    }
}

/// Secrets never come from flags: a password inside `--database-url` is refused (it would
/// show in `ps`), naming the variable to use instead; the same URL through `DATABASE_URL` is
/// fine.
#[test]
fn a_password_in_the_database_url_flag_is_refused() {
    let sqs2pg = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sqs2pg"));
        c.env_remove("SQS2PG_CONFIG").env_remove("DATABASE_URL");
        c
    };
    for url in [
        "postgres://app:s3cr3t-pw@db.internal/logins",
        "postgres://app@db.internal/logins?password=s3cr3t-pw",
        "host=db.internal user=app password=s3cr3t-pw",
    ] {
        let out = sqs2pg()
            .args(["--database-url", url, "config"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.contains("--database-url") && e.contains("DATABASE_URL"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t-pw"), "{e}");
        let out = sqs2pg()
            .arg("config")
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url} from the environment: {}",
            stderr(&out)
        );
    }
    let out = sqs2pg()
        .args([
            "--database-url",
            "postgres://app@db.internal/logins",
            "config",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A `--file` that cannot be read is a usage error (exit 2) naming the file, as the README's
/// exit codes promise, not an outage (exit 1) that a scheduler would retry.
#[tokio::test(flavor = "multi_thread")]
async fn send_with_a_file_that_cannot_be_read_exits_2_naming_it() {
    let env = TestEnv::new().await;
    let out = env
        .cmd(&["send", "--file", "/nonexistent/events.json"])
        .output()
        .expect("spawn sqs2pg");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--file: cannot read /nonexistent/events.json"),
        "{err}"
    );
}
