//! Every example in `--help` runs as written: the indented lines under `Examples:` of the
//! binary's own `--help`, each command's in `--help`'s order, by bash in a fresh directory
//! per command, against this test's queue and database (as the README's transcript is).
//! The first block, `sqs2pg --help`'s, migrates, makes the key and drains a queue; each later
//! block finds that key as `keys` (unless it makes its own) and the files the examples read.

use std::path::Path;

use crate::helpers::{login, stderr, TestEnv};

/// The command paths, `sqs2pg` itself first, then each command and subcommand in order.
fn commands() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            let mut path = path.to_vec();
            path.push(sub.get_name().to_owned());
            out.push(path.clone());
            walk(sub, &path, out);
        }
    }
    let mut out = vec![Vec::new()];
    walk(
        &<sqs2pg::cli::Cli as clap::CommandFactory>::command(),
        &[],
        &mut out,
    );
    out
}

/// The examples of a `--help` text: the lines indented by two spaces after `Examples:` (an
/// unindented line is prose), a line ending in `\` continued on the next.
fn examples(help: &str) -> Vec<String> {
    let lines = help
        .split_once("\nExamples:\n")
        .map(|(_, after)| after)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("  "));
    let mut examples: Vec<String> = Vec::new();
    let mut continued = false;
    for line in lines {
        match examples.last_mut() {
            Some(last) if continued => {
                last.push('\n');
                last.push_str(line);
            }
            _ => examples.push(line.to_owned()),
        }
        continued = line.ends_with('\\');
    }
    examples
}

/// Whether an example writes `file` with `--out`.
fn writes(lines: &[String], file: &str) -> bool {
    lines.iter().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.windows(2).any(|w| w == ["--out", file])
    })
}

/// A daemon (`run` without `--until-empty`) runs until SIGTERM: it gets five seconds, then
/// the signal, after which it must exit 0 as it does under a service manager.
fn as_run(line: &str) -> String {
    if line.contains("sqs2pg run") && !line.contains("--until-empty") {
        let quoted = line.replace('\'', r"'\''");
        format!("timeout --preserve-status -s TERM 5 bash -c '{quoted}'")
    } else {
        line.to_owned()
    }
}

/// The files the examples read, made in `dir`: events in both `send --file` forms, an
/// address and an email for `mask`, and the first block's key as `keys` unless this block
/// makes its own.
fn fixtures(dir: &Path, lines: &[String], first: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let events = [
        login("help-1", "10.8.0.1", "d1"),
        login("help-2", "10.8.0.2", "d2"),
    ];
    std::fs::write(dir.join("events.json"), format!("[{}]", events.join(","))).unwrap();
    std::fs::write(dir.join("events.jsonl"), events.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("ips.txt"), "10.8.0.1\n").unwrap();
    std::fs::write(dir.join("emails.txt"), "help-1@example.com\n").unwrap();
    if dir != first && !writes(lines, "keys") {
        let keys = dir.join("keys");
        std::fs::copy(first.join("keys"), &keys).expect("the first block's keys");
    }
}

/// The KMS key the keygen example wraps with, on LocalStack: `alias/sqs2pg`, made once.
async fn kms_alias() {
    let kms = aws_sdk_kms::Client::new(&crate::helpers::aws_sdk_config().await);
    let aliases = kms.list_aliases().send().await.expect("ListAliases");
    if aliases
        .aliases()
        .iter()
        .any(|a| a.alias_name() == Some("alias/sqs2pg"))
    {
        return;
    }
    let key = kms
        .create_key()
        .description("sqs2pg help examples")
        .send()
        .await;
    let key_id = key
        .expect("CreateKey")
        .key_metadata
        .expect("metadata")
        .key_id;
    // Another run of this test may have made it meanwhile: either alias serves.
    let _ = kms
        .create_alias()
        .alias_name("alias/sqs2pg")
        .target_key_id(key_id)
        .send()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_help_example_runs_as_written() {
    let env = TestEnv::unmigrated().await;
    kms_alias().await;
    let root = std::env::temp_dir().join(format!("sqs2pg-help-{}", env.queue_name));
    let first = root.join("0");
    let mut ran = 0;
    for (i, path) in commands().iter().enumerate() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = env.run_cmd(&args);
        let text = String::from_utf8_lossy(&help.stdout);
        let lines = examples(&text);
        assert!(
            !lines.is_empty(),
            "`sqs2pg {}` has no example:\n{text}",
            path.join(" ")
        );
        let dir = root.join(i.to_string());
        fixtures(&dir, &lines, &first);
        for line in &lines {
            let out = env.shell(&as_run(line), &dir);
            assert_eq!(
                out.status.code(),
                Some(0),
                "`sqs2pg {} --help`: $ {line}\nstdout:\n{}\nstderr:\n{}",
                path.join(" "),
                String::from_utf8_lossy(&out.stdout),
                stderr(&out)
            );
            ran += 1;
        }
    }
    assert!(ran >= 25, "{ran} examples");
    std::fs::remove_dir_all(&root).unwrap();
}
