//! docs/TUNING.md lists every feedback loop with its constants; this keeps the page from going
//! stale. Each line `` - `FILE`: `NAME = value`, … `` must match a `const NAME: T = value;` in
//! that file (whitespace aside), each `` - `FILE` (inline): `code`, … `` must occur in it as
//! written; every metric it names must be one sqs2pg exports, every test it names must be a
//! `fn` of that module (an integration test `module::name` in `tests/it/module.rs`, a unit
//! test `module::tests::name` in the module's source), and every row it quotes after
//! `BENCHMARKS.md` must be in BENCHMARKS.md.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text between backticks, in order.
fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value `const NAME: T = value;` gives in `source`, whitespace squeezed.
fn const_value(source: &str, name: &str) -> Option<String> {
    let at = source.find(&format!("const {name}: "))?;
    let decl = &source[at..];
    let decl = &decl[..decl.find(";\n")?];
    let (_, value) = decl.split_once(" = ")?;
    Some(squeeze(value))
}

/// The problems with one constants line of the page, or `None` if it is not one.
fn check_constants(line: &str) -> Option<Vec<String>> {
    let rest = line.strip_prefix("- `src/")?;
    let (file, list) = rest.split_once('`')?;
    let inline = if let Some(list) = list.strip_prefix(": ") {
        (false, list)
    } else {
        (true, list.strip_prefix(" (inline): ")?)
    };
    let path = root().join("src").join(file);
    let source = read(&path);
    let mut problems = Vec::new();
    let mut entries = 0;
    for entry in backticked(inline.1) {
        entries += 1;
        if inline.0 {
            if !squeeze(&source).contains(&squeeze(entry)) {
                problems.push(format!("src/{file} has no `{entry}`"));
            }
            continue;
        }
        let Some((name, value)) = entry.split_once(" = ") else {
            problems.push(format!("not `NAME = value`: `{entry}` in: {line}"));
            continue;
        };
        match const_value(&source, name) {
            Some(actual) if actual == squeeze(value) => {}
            Some(actual) => problems.push(format!(
                "src/{file}: {name} is `{actual}`, the page says `{value}`"
            )),
            None => problems.push(format!("src/{file} has no const {name}")),
        }
    }
    if entries == 0 {
        problems.push(format!("names nothing: {line}"));
    }
    Some(problems)
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("read a source directory")
        .flatten()
    {
        let p = entry.path();
        if p.is_dir() {
            files.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            files.push(p);
        }
    }
    files
}

/// Whether the test `name` (`module::fn` in tests/it, or `module::tests::fn` in src) is a
/// `fn` of that module.
fn test_exists(name: &str, sources: &[(PathBuf, String)]) -> bool {
    let segments: Vec<&str> = name.split("::").collect();
    let Some((func, path)) = segments.split_last() else {
        return false;
    };
    let wanted = format!("fn {func}(");
    if !path.contains(&"tests") {
        let file = root()
            .join("tests/it")
            .join(format!("{}.rs", path.join("/")));
        return std::fs::read_to_string(file).is_ok_and(|text| text.contains(&wanted));
    }
    let module = match path.iter().rposition(|s| *s == "tests") {
        Some(0) | None => path.last(),
        Some(i) => path.get(i - 1),
    };
    let Some(module) = module else { return false };
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

/// The rows quoted after `BENCHMARKS.md` in `paragraph`.
fn bench_quotes(paragraph: &str) -> Vec<&str> {
    paragraph
        .split("BENCHMARKS.md")
        .skip(1)
        .flat_map(|after| after.split('"').skip(1).step_by(2))
        .collect()
}

fn problems(page: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut constant_lines = 0;
    for line in page.lines() {
        if let Some(found) = check_constants(line) {
            constant_lines += 1;
            problems.extend(found);
        }
    }
    if constant_lines < 10 {
        problems.push(format!("only {constant_lines} constants lines"));
    }
    let metrics = read(&root().join("src/telemetry/metrics.rs"));
    let benchmarks = squeeze(&read(&root().join("BENCHMARKS.md")));
    let sources: Vec<(PathBuf, String)> = rust_files(&root().join("src"))
        .into_iter()
        .map(|p| {
            let text = read(&p);
            (p, text)
        })
        .collect();
    for token in backticked(page) {
        if token.starts_with("sqs2pg_") {
            let metric = token.split('{').next().unwrap_or(token);
            if !metrics.contains(&format!("(\"{metric}\", \"")) {
                problems.push(format!("no metric {metric}"));
            }
        } else if token.contains("::")
            && token
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
            && !test_exists(token, &sources)
        {
            problems.push(format!("no test {token}"));
        }
    }
    for paragraph in page.split("\n\n") {
        for quote in bench_quotes(&squeeze(paragraph)) {
            if !benchmarks.contains(quote) {
                problems.push(format!("BENCHMARKS.md has no \"{quote}\""));
            }
        }
    }
    problems
}

#[test]
fn the_tuning_page_matches_the_code() {
    let page = read(&root().join("docs/TUNING.md"));
    let problems = problems(&page);
    assert!(
        problems.is_empty(),
        "docs/TUNING.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_changed_value_a_missing_test_or_an_unknown_metric_is_caught() {
    let page = read(&root().join("docs/TUNING.md"));
    for (right, wrong) in [
        (
            "`SHAPE_RECHECK = Duration::from_secs(60)`",
            "`SHAPE_RECHECK = Duration::from_secs(61)`",
        ),
        ("`FAILING = 0.5`", "`FAILING = 0.25`"),
        ("`sqs2pg_inflight_bytes`", "`sqs2pg_inflight_bites`"),
        (
            "`budget::tests::a_body_bigger_than_the_budget_goes_alone`",
            "`budget::tests::a_body_bigger_than_the_budget_is_refused`",
        ),
        (
            "`drain::a_drain_does_not_end_while_a_message_is_in_flight_elsewhere`",
            "`drain::a_drain_ends_while_a_message_is_in_flight_elsewhere`",
        ),
        (
            "`Backoff::new(Duration::from_millis(200), Duration::from_secs(10))`",
            "`Backoff::new(Duration::from_millis(250), Duration::from_secs(10))`",
        ),
        (
            "\"drain: last commit → process exit\"",
            "\"drain: last commit → exit\"",
        ),
    ] {
        assert!(page.contains(right), "the page no longer says {right}");
        let stale = page.replacen(right, wrong, 1);
        assert!(!problems(&stale).is_empty(), "{wrong} went unnoticed");
    }
}
