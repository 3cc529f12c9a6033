//! The built-in login mapping, compiled as any user's file is and evaluated by the mapping
//! evaluator, over the golden corpus: it must give the committed file, line for line.
//!
//! Each column shape (`cases::Lim`) becomes the `user_logins` catalog `migrate`'s DDL gives
//! with that shape's types (varchar(n) for a limit, `text` for none; app_version `int2`,
//! `integer` or varchar(n)), compiled for the tests' key (kid `t1`). Each case's body goes
//! through `mapping::eval::eval_message` under its framing, its `SentTimestamp` as metadata;
//! a reject's sealed body is the whole body sealed, as `transform::quarantine` seals it.
//!
//! Left out, each asserted to be exactly what is left out:
//! - the `"path":"decode"` lines: bodies that are not UTF-8, which only the decoder can be
//!   handed (SQS and Lambda carry text; the evaluator's input is `&str`);
//! - the `@ip-short` lines: a `masked_ip` column one character too narrow for an address's
//!   token. The compiler refuses it before the first message (`mapping check` says so),
//!   where today's path starts and rejects each row with an ip `too_long:ip`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use sqs2pg::decode::Framing;
use sqs2pg::mapping::compile::{compile, Plan};
use sqs2pg::mapping::convert::Cell;
use sqs2pg::mapping::eval::{eval_message, Outcome};
use sqs2pg::mapping::event::Metadata;
use sqs2pg::mapping::{login, login_shape};
use sqs2pg::mask::Masker;
use sqs2pg::source::Received;

use super::cases::{Body, Lim, SHAPES};
use super::{corpus_for, diff, golden_lines, golden_path, record};

/// The login mapping compiled for each shape; `None` where the compiler refuses it.
fn plans(masker: &Masker) -> BTreeMap<&'static str, Option<Plan>> {
    let mapping = login::mapping().expect("the built-in mapping reads");
    // The tests' key id, `t1` (`helpers::KEYS`).
    let kid_len = "t1".len();
    SHAPES
        .iter()
        .map(|lim| {
            let limits = lim.limits(|len| masker.token_len(len));
            let plan = compile(&mapping, &login_shape::catalogs(&limits), kid_len);
            if *lim == Lim::IpShort {
                let refusal = plan
                    .expect_err("too narrow for an address's token")
                    .to_string();
                assert!(
                    refusal.contains("column \"masked_ip\"") && refusal.contains("too narrow"),
                    "{refusal}"
                );
                return (lim.name(), None);
            }
            let plan = plan.unwrap_or_else(|e| panic!("shape {}: {e}", lim.name()));
            (lim.name(), Some(plan))
        })
        .collect()
}

/// `{"row": [...]}` as `record::row` renders today's, or `{"reject", "sealed"}`.
fn render(outcome: Outcome<'_>, body: &str, sent: Option<&str>, m: &mut Masker) -> Value {
    match outcome {
        Outcome::Row {
            cells,
            unknown_keys,
            ..
        } => {
            let cell: BTreeMap<&str, Cell> = cells.into_iter().collect();
            let text = |name: &str| match &cell[name] {
                Cell::Null => Value::Null,
                Cell::Text(s) => json!(s),
                other => panic!("{name}: {other:?}"),
            };
            let version = match &cell["app_version"] {
                Cell::Null => None,
                Cell::Int2(n) => Some(sqs2pg::decode::AppVersion::Int((*n).into())),
                Cell::Int4(n) => Some(sqs2pg::decode::AppVersion::Int((*n).into())),
                Cell::Text(s) => Some(sqs2pg::decode::AppVersion::Text(s.clone())),
                other => panic!("app_version: {other:?}"),
            };
            let Cell::Date(day) = cell["create_date"] else {
                panic!("create_date: {:?}", cell["create_date"])
            };
            let locale = match &cell["locale"] {
                Cell::Null => None,
                Cell::Text(s) => Some(s.clone()),
                other => panic!("locale: {other:?}"),
            };
            let sent_at = received(body, sent).sent_at;
            record::row(
                [
                    text("user_id"),
                    text("device_type"),
                    text("masked_ip"),
                    text("masked_device_id"),
                ],
                (&locale, &version, day),
                sent_at,
                unknown_keys,
            )
        }
        Outcome::Skip { route } => panic!("the login mapping has no skip route ({route})"),
        Outcome::Reject { reason, .. } => json!({
            "reject": reason.to_string(),
            "sealed": record::fingerprint(m.seal_body(body.as_bytes()).as_bytes()),
        }),
    }
}

fn received(body: &str, sent: Option<&str>) -> Received {
    Received::new("golden".into(), String::new(), body.to_owned(), sent, None)
}

/// The compiled login mapping on the corpus gives the committed golden file, line for
/// line, but for the lines it cannot be asked (see the module's doc).
#[test]
fn the_login_mapping_reproduces_the_golden_file() {
    let mut masker = record::masker();
    let plans = plans(&masker);
    let events = corpus_for(&masker);
    let mut actual = Vec::new();
    for event in &events {
        let mut run =
            |body: &Body, framing: Framing, sent: Option<&str>, lim: Lim, m: &mut Masker| {
                let (Body::Text(text), Some(plan)) = (body, &plans[lim.name()]) else {
                    return None;
                };
                let meta = Metadata {
                    message_id: "golden".into(),
                    sent_timestamp: received(text, sent).sent_at,
                    ..Metadata::default()
                };
                let outcome = eval_message(plan, text, framing, meta, m);
                Some(render(outcome, text, sent, m))
            };
        record::lines_by(event, &mut masker, &mut actual, &mut run);
    }
    let made: BTreeSet<&str> = actual.iter().map(|(id, _)| id.as_str()).collect();
    let text = std::fs::read_to_string(golden_path()).expect("the golden file");
    let mut expected = golden_lines(&text);
    let left_out: Vec<String> = expected
        .iter()
        .filter(|(id, _)| *id != "#header" && !made.contains(id.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    for id in &left_out {
        let line = expected[id];
        assert!(
            line.contains(r#""path":"decode""#) || id.ends_with("@ip-short"),
            "case {id} has no line from the mapping, and is not one left out on purpose"
        );
        expected.remove(id);
    }
    expected.remove("#header");
    if let Some(path) = std::env::var_os("SQS2PG_MAPPED_GOLDEN_OUT") {
        let text: String = actual.iter().map(|(_, l)| format!("{l}\n")).collect();
        std::fs::write(path, text).expect("write the mapping's lines");
    }
    let decode = left_out
        .iter()
        .filter(|id| !id.ends_with("@ip-short"))
        .count();
    let narrow = left_out.len() - decode;
    let report = diff(&expected, &actual);
    assert!(
        report.is_empty(),
        "the login mapping differs from {} ({} cases compared; {decode} not UTF-8 and {narrow} \
         ip-short left out):\n{report}",
        golden_path().display(),
        made.len(),
    );
    eprintln!(
        "the login mapping gives {} golden cases exactly; left out: {decode} not UTF-8, {narrow} ip-short",
        made.len()
    );
}
