//! The golden file of today's login transform: `tests/golden/login-transform.jsonl`.
//!
//! Why it exists: the hard-coded decode/transform path of a login is to be replaced by a
//! declarative mapping compiler, which must reproduce what today's path gives, exactly
//! (rows, tokens, reject reasons, unknown-key counts). This generator records today's
//! outputs on a fixed corpus; [`golden_login_transform`] regenerates them and compares
//! with the committed file. When the mapping path lands, [`record`] runs it instead and
//! the same file must come out.
//!
//! The corpus, all built by code, the same on every run and machine:
//! - `sample/NN`: the 100 messages of the exercise's sample file (required: the test
//!   fails without it; `helpers::sample_file` finds it, or `SQS2PG_SAMPLE_FILE`);
//! - `synth/NNNNN`: 10,000 events of `sqs2pg::synth` (seed [`SYNTH_SEED`]; the generator
//!   uses `rand`'s `StdRng`, so a `rand` upgrade that changes its stream shows here);
//! - `mutation/…`, `body/…`, `bytes/…`, `sent/…`: systematic mutations of one valid event
//!   (`mutations.rs`, `bodies.rs`);
//! - `hostile/…`: every hostile body of the existing tests (`hostile.rs`).
//!
//! Each event is run bare and, for most, in an SNS and an EventBridge envelope with and
//! without the envelope's time, under all eight `Framing`s, against the contract's column
//! limits and, for some, other column shapes (`cases::Lim`). One line per event, wrap and
//! column shape, id `<event>~<wrap>` (`@<shape>` after it when not the contract's): `{"id", "body": fingerprint of the body on
//! the queue, "sent" (when not the default), "path": "decode" (for bytes that are not
//! UTF-8), then one key per distinct outcome naming the framings that gave it}`; an outcome
//! is `{"row": [user_id, app_version, device_type, masked_ip, masked_device_id, locale,
//! create_date, unknown_keys]}` or `{"reject": reason as stored, "sealed": fingerprint of
//! the sealed body}` (fingerprints: SHA-256's first 6 bytes, hex). Tokens are made with
//! `helpers::KEYS`. The first line is a header saying so.
//!
//! Run: `cargo test --test it golden`. Rewrite the file after an intended change:
//! `SQS2PG_BLESS_GOLDEN=1 cargo test --test it golden`, and review its diff.

mod bodies;
mod cases;
mod hostile;
mod mapped;
mod mutations;
mod record;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sqs2pg::synth::{generate, SynthOptions};

use self::cases::{Event, Wrap, ALL_FRAMINGS, SENT};

/// The synthetic events' seed.
const SYNTH_SEED: u64 = 20_261_206;
/// How many synthetic events.
const SYNTH_COUNT: usize = 10_000;
/// Every this many synthetic events, one is also wrapped and run under every framing.
const SYNTH_WRAP_EVERY: usize = 100;
/// A row's columns, in the order a line holds them.
const ROW: [&str; 8] = [
    "user_id",
    "app_version",
    "device_type",
    "masked_ip",
    "masked_device_id",
    "locale",
    "create_date",
    "unknown_keys",
];
/// How many differing cases a failure shows in full.
const SHOWN: usize = 5;

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/login-transform.jsonl")
}

/// The committed file's lines by id.
fn golden_lines(text: &str) -> BTreeMap<String, &str> {
    text.lines().map(|l| (line_id(l), l)).collect()
}

/// The whole corpus, in a fixed order.
fn corpus(device_id_max: usize) -> Vec<Event> {
    let mut events = sample();
    for (n, body) in generate(SynthOptions {
        count: SYNTH_COUNT,
        duplicate_rate: 0.02,
        malformed_rate: 0.01,
        seed: SYNTH_SEED,
    })
    .into_iter()
    .enumerate()
    {
        let id = format!("synth/{n:05}");
        events.push(if n % SYNTH_WRAP_EVERY == 0 {
            Event::wrapped(id, body)
        } else {
            Event::plain(id, body)
        });
    }
    mutations::per_field(&mut events);
    mutations::lengths(&mut events, device_id_max);
    mutations::app_versions(&mut events);
    mutations::ips(&mut events);
    bodies::shapes(&mut events);
    bodies::bytes(&mut events);
    bodies::clocks(&mut events);
    hostile::all(&mut events);
    events
}

/// The sample file's 100 messages, verbatim as `send --file` sends them.
fn sample() -> Vec<Event> {
    let path = crate::helpers::sample_file().expect(
        "the golden corpus needs the exercise's sample (../shared/data/fetch-login-sample.json, \
         or SQS2PG_SAMPLE_FILE)",
    );
    let bodies = sqs2pg::ops::admin::read_bodies(&path).expect("the sample file reads");
    assert_eq!(bodies.len(), 100, "{} holds 100 messages", path.display());
    bodies
        .into_iter()
        .enumerate()
        .map(|(n, b)| Event::wrapped(format!("sample/{n:02}"), b))
        .collect()
}

/// The first line: what the file is and how to read it.
fn header(events: usize, lines: usize) -> String {
    let about = serde_json::json!({
        "about": "sqs2pg's login transform before the mapping rewrite; the mapping must reproduce every line (tests/it/golden/mod.rs)",
        "row": ROW,
        "reject": "the reason as stored in user_logins_rejects; sealed: sha256(body_ciphertext)[..6], hex",
        "body": "sha256(the body on the queue)[..6], hex",
        "key": "tests/it/helpers KEYS (kid t1)",
        "sent": SENT,
        "framings": ALL_FRAMINGS.map(cases::framing_name),
        "wraps": Wrap::ALL.map(Wrap::name),
        "events": events,
        "cases": lines,
    })
    .to_string();
    format!(r##"{{"id":"#header",{}"##, &about[1..])
}

/// The corpus, its lengths fitted to `masker`'s tokens.
fn corpus_for(masker: &sqs2pg::mask::Masker) -> Vec<Event> {
    let limit = sqs2pg::decode::Limits::default()
        .masked_device_id
        .expect("a limit");
    let device_id_max = (0..limit)
        .take_while(|n| masker.token_len(*n) <= limit)
        .last();
    corpus(device_id_max.expect("some device id fits"))
}

/// Today's outputs, as the file's lines (header first).
fn regenerate() -> Vec<(String, String)> {
    let mut masker = record::masker();
    let events = corpus_for(&masker);
    let mut lines = Vec::new();
    for event in &events {
        record::lines(event, &mut masker, &mut lines);
    }
    let mut ids = HashSet::new();
    for (id, _) in &lines {
        assert!(ids.insert(id.as_str()), "case id {id} twice");
    }
    let head = ("#header".to_owned(), header(events.len(), lines.len()));
    std::iter::once(head).chain(lines).collect()
}

/// Today's login transform on the corpus gives the committed golden file, line for line.
#[test]
fn golden_login_transform() {
    let actual = regenerate();
    let path = golden_path();
    if std::env::var_os("SQS2PG_BLESS_GOLDEN").is_some_and(|v| v == "1") {
        let text: String = actual.iter().map(|(_, l)| format!("{l}\n")).collect();
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write the golden file");
        eprintln!("blessed {} ({} lines)", path.display(), actual.len());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with SQS2PG_BLESS_GOLDEN=1 cargo test --test it golden",
            path.display()
        )
    });
    let expected = golden_lines(&text);
    let report = diff(&expected, &actual);
    assert!(
        report.is_empty(),
        "today's login transform differs from {}:\n{report}\nif the change is intended: \
         SQS2PG_BLESS_GOLDEN=1 cargo test --test it golden, and review the file's diff",
        path.display()
    );
}

fn line_id(line: &str) -> String {
    let v: Value = serde_json::from_str(line).expect("a JSON line");
    v["id"].as_str().expect("an id").to_owned()
}

/// What differs between two lines of one case: its body (the corpus changed), or per
/// outcome key (framings), the row's columns or the outcome as a whole.
fn what_differs(want: &str, got: &str) -> String {
    let parse = |l: &str| -> Map<String, Value> { serde_json::from_str(l).expect("a JSON line") };
    let (want, got) = (parse(want), parse(got));
    if want.get("body") != got.get("body") {
        return "its body changed: the corpus, not only the outcome".to_owned();
    }
    let keys: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    let mut parts = Vec::new();
    for key in keys {
        match (want.get(key), got.get(key)) {
            (a, b) if a == b => {}
            (Some(a), Some(b)) => parts.push(format!("{key}: {}", columns(a, b))),
            _ => parts.push(format!("{key}: framings grouped otherwise")),
        }
    }
    format!("differs in {}", parts.join("; "))
}

fn columns(want: &Value, got: &Value) -> String {
    match (want["row"].as_array(), got["row"].as_array()) {
        (Some(w), Some(g)) => ROW
            .iter()
            .zip(w.iter().zip(g))
            .filter(|(_, (a, b))| a != b)
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(","),
        _ => "the outcome".to_owned(),
    }
}

/// The differing cases: a count, and the first [`SHOWN`] with expected and actual.
fn diff(expected: &BTreeMap<String, &str>, actual: &[(String, String)]) -> String {
    let mut shown = Vec::new();
    let mut differing = 0;
    for (id, line) in actual {
        let want = expected.get(id).copied();
        if want == Some(line.as_str()) || id == "#header" {
            continue;
        }
        differing += 1;
        if shown.len() < SHOWN {
            let (note, want) = match want {
                Some(w) => (what_differs(w, line), w),
                None => ("new".to_owned(), "(no such case in the file)"),
            };
            shown.push(format!(
                "case {id} ({note})\n  expected: {want}\n  actual:   {line}"
            ));
        }
    }
    let ids: HashSet<&str> = actual.iter().map(|(id, _)| id.as_str()).collect();
    let gone: Vec<&String> = expected
        .keys()
        .filter(|id| !ids.contains(id.as_str()))
        .collect();
    if differing == 0 && gone.is_empty() {
        return String::new();
    }
    let mut report = format!(
        "{differing} case(s) differ or are new; {} gone\n",
        gone.len()
    );
    report.push_str(&shown.join("\n"));
    if let Some(first) = gone.first() {
        report.push_str(&format!("\nfirst case gone: {first}"));
    }
    report
}
