//! The README's `console` blocks are run as written, against the real services, and their
//! output is checked: a changed flag or message breaks the build, not the newcomer.
//!
//! A block is a transcript: `$ COMMAND` lines run one after another with bash in one fresh
//! directory, on this test's queue and database (the `eval "$(scripts/services env)"` the
//! README starts with is what the harness does for them). The lines after a command are its
//! stdout: `[..]` stands for any text within a line, a line `...` for any number of lines,
//! and `[exit: N]` for an exit code other than 0. A block whose info string names a file
//! after its language (```` ```toml orders.toml ````) is that file, written into the
//! directory where it stands in the transcript.

use std::path::Path;

use crate::helpers::{stderr, TestEnv};

/// One `$ ` command of a transcript, with what it must print.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
    exit: i32,
}

/// The steps of every ```` ```console ```` block of `markdown`, in order.
fn transcript(markdown: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut inside = false;
    // The file a block is, and its lines so far.
    let mut file: Option<(String, Vec<&str>)> = None;
    for line in markdown.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            if let Some((name, lines)) = file.take() {
                steps.push(Step {
                    command: format!(
                        "cat > {name} <<'README_FILE_END'\n{}\nREADME_FILE_END",
                        lines.join("\n")
                    ),
                    expected: Vec::new(),
                    exit: 0,
                });
                continue;
            }
            if let Some((_, name)) = info.trim().split_once(' ').filter(|_| !inside) {
                file = Some((name.trim().to_owned(), Vec::new()));
                continue;
            }
            inside = !inside && info.trim() == "console";
            continue;
        }
        if let Some((_, lines)) = &mut file {
            lines.push(line);
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_owned(),
                expected: Vec::new(),
                exit: 0,
            });
        } else if let Some(step) = steps.last_mut() {
            match line
                .strip_prefix("[exit: ")
                .and_then(|l| l.strip_suffix(']'))
            {
                Some(code) => step.exit = code.parse().expect("[exit: N]"),
                None => step.expected.push(line.to_owned()),
            }
        }
    }
    steps
}

/// Whether `line` matches `pattern`, where `[..]` stands for any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut tail) = line.strip_prefix(first) else {
        return false;
    };
    for (i, part) in rest.iter().enumerate() {
        if i == rest.len() - 1 {
            return tail.ends_with(part);
        }
        match tail.find(part) {
            Some(at) => tail = &tail[at + part.len()..],
            None => return false,
        }
    }
    tail.is_empty()
}

/// Whether `lines` match `patterns`, where a pattern `...` stands for any number of lines.
fn lines_match(patterns: &[String], lines: &[&str]) -> bool {
    match patterns.split_first() {
        None => lines.is_empty(),
        Some((p, rest)) if p == "..." => {
            (0..=lines.len()).any(|skip| lines_match(rest, &lines[skip..]))
        }
        Some((p, rest)) => {
            !lines.is_empty() && line_matches(p, lines[0]) && lines_match(rest, &lines[1..])
        }
    }
}

#[test]
fn placeholders_match_as_documented() {
    assert!(line_matches(
        "sent [..] messages to [..]",
        "sent 5 messages to http://q"
    ));
    assert!(line_matches("rate[..]messages/s", "rate   49 messages/s"));
    assert!(!line_matches("loaded 99", "loaded 990"));
    let patterns: Vec<String> = ["a", "...", "z"].map(String::from).to_vec();
    assert!(lines_match(&patterns, &["a", "b", "c", "z"]));
    assert!(lines_match(&patterns, &["a", "z"]));
    assert!(!lines_match(&patterns, &["a", "b"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_examples_run_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let steps = transcript(&readme);
    assert!(steps.len() >= 5, "the README's console blocks: {steps:?}");
    let env = TestEnv::unmigrated().await;
    let dir = std::env::temp_dir().join(format!("sqs2pg-readme-{}", env.queue_name));
    std::fs::create_dir_all(&dir).unwrap();
    for step in &steps {
        let out = env.shell(&step.command, &dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            out.status.code(),
            Some(step.exit),
            "$ {}\nstdout:\n{stdout}\nstderr:\n{}",
            step.command,
            stderr(&out)
        );
        assert!(
            lines_match(&step.expected, &lines),
            "$ {}\nexpected:\n{}\ngot:\n{stdout}\nstderr:\n{}",
            step.command,
            step.expected.join("\n"),
            stderr(&out)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
