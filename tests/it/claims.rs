//! docs/CLAIMS.md ties every behavioural promise of the README, RELIABILITY.md and docs/PII.md
//! to the tests that prove it. This test keeps that table from rotting: every row names at
//! least one test, and every test it names exists (an integration test in this binary, by
//! `cargo test -- --list`; a unit or property test, named `module::tests::fn`, by its `fn` in
//! the source file of that module).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The test names of this binary, as libtest lists them (`module::name`).
fn integration_tests() -> BTreeSet<String> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args(["--list", "--format", "terse"])
        .output()
        .expect("list this binary's tests");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = entry.path();
        if p.is_dir() {
            files.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            files.push(p);
        }
    }
    files
}

/// Whether a unit test named like `lease::tests::only_what_sqs_confirmed_counts_as_extended`
/// (a trailing `*` matches a prefix) is a `fn` in a source file of that module.
fn unit_test_exists(name: &str, sources: &[(PathBuf, String)]) -> bool {
    let segments: Vec<&str> = name.split("::").collect();
    let Some((func, path)) = segments.split_last() else {
        return false;
    };
    let module = match path.iter().rposition(|s| *s == "tests") {
        Some(0) | None => path.last(),
        Some(i) => path.get(i - 1),
    };
    let Some(module) = module else { return false };
    // A whole name is followed by its parameter list; a `*` name only has to start it.
    let wanted = match func.strip_suffix('*') {
        Some(prefix) => format!("fn {prefix}"),
        None => format!("fn {func}("),
    };
    sources.iter().any(|(file, text)| {
        let stem = file.file_stem().and_then(|s| s.to_str());
        let parent = file
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|s| s.to_str());
        let is_module = stem == Some(module)
            || (matches!(stem, Some("mod" | "tests")) && parent == Some(module));
        is_module && text.contains(&wanted)
    })
}

/// The backticked names in a table cell that look like test paths.
fn test_names(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.contains("::") && !s.contains(' '))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_claim_names_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = std::fs::read_to_string(root.join("docs/CLAIMS.md")).expect("docs/CLAIMS.md");
    let integration = integration_tests();
    let modules: BTreeSet<&str> = integration
        .iter()
        .filter_map(|t| t.split("::").next())
        .collect();
    let sources: Vec<(PathBuf, String)> = rust_files(&root.join("src"))
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read a source file");
            (p, text)
        })
        .collect();
    let mut rows = 0;
    let mut problems = Vec::new();
    for line in table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| #"))
    {
        let cells: Vec<&str> = line.split(" | ").collect();
        let Some(proof) = cells.last() else { continue };
        rows += 1;
        let names = test_names(proof);
        if names.is_empty() {
            problems.push(format!("names no test: {line}"));
        }
        for name in names {
            let first = name.split("::").next().unwrap_or_default();
            let found = if modules.contains(first) && !name.contains("::tests::") {
                integration.contains(&name)
                    || (name.ends_with('*')
                        && integration
                            .iter()
                            .any(|t| t.starts_with(name.trim_end_matches('*'))))
            } else {
                unit_test_exists(&name, &sources)
            };
            if !found {
                problems.push(format!("no such test `{name}` in: {line}"));
            }
        }
    }
    assert!(rows >= 40, "the claims table lost its rows ({rows} left)");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
