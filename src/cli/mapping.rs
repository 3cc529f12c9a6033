//! `sqs2pg mapping print` and `sqs2pg mapping check [--sample FILE]`.

use std::path::Path;

use super::args::GlobalArgs;
use crate::config::keys::KeySource;
use crate::decode::Envelope;
use crate::error::Failure;
use crate::mapping::compile::{ColumnPlan, Plan, MAX_KID_LEN};
use crate::mapping::convert::{Cell, Converter, Epoch};
use crate::mapping::eval::{eval_body, Outcome};
use crate::mapping::event::Metadata;
use crate::mapping::{login, OnConflict};
use crate::mask::{Keyring, Masker};
use crate::ops;

pub(super) fn print() -> Result<(), Failure> {
    print!("{}", login::LOGIN_TOML);
    Ok(())
}

pub(super) async fn check(g: &GlobalArgs, sample: Option<&Path>) -> Result<(), Failure> {
    let (name, mapping) = ops::mapping::load(g.mapping.as_deref())?;
    // Token widths are checked for the writing key's id; without a keyring, for the longest.
    let keyring = match g.keys() {
        KeySource::None => None,
        keys => Some(keys.load().await?),
    };
    let kid_len = keyring
        .as_ref()
        .map_or(MAX_KID_LEN, |k| k.writing_kid().len());
    let plan = ops::mapping::check(&g.db()?, &mapping, kid_len).await?;
    print_plan(&name, &plan);
    if let Some(path) = sample {
        let keyring = match keyring {
            Some(k) => k,
            None => {
                println!("(no keyring: tokens below are under a throwaway key)");
                throwaway_keyring()?
            }
        };
        let bodies = ops::admin::read_bodies(path)?;
        print_sample(&plan, &bodies, g.envelope, &mut Masker::new(&keyring));
    }
    Ok(())
}

fn throwaway_keyring() -> Result<Keyring, Failure> {
    let entry = Keyring::generate_entry("sample").map_err(|e| Failure::usage(e.to_string()))?;
    Keyring::parse(&entry).map_err(|e| Failure::usage(e.to_string()))
}

/// Per body, one line: its route and row, or its reason.
fn print_sample(plan: &Plan, bodies: &[String], envelope: Envelope, masker: &mut Masker) {
    let sent = chrono::Utc::now();
    for (n, body) in bodies.iter().enumerate() {
        let meta = Metadata {
            message_id: format!("sample-{}", n + 1),
            sent_timestamp: Some(sent),
            receive_count: Some(1),
            ..Default::default()
        };
        let line = match eval_body(plan, body, envelope, meta, masker) {
            Outcome::Row {
                route,
                table,
                cells,
                ..
            } => {
                let cells: Vec<String> = cells
                    .iter()
                    .map(|(c, v)| format!("{c}={}", show(v)))
                    .collect();
                format!("route {route} → {table}: {}", cells.join(", "))
            }
            Outcome::Skip { route } => format!("route {route}: skip"),
            Outcome::Reject {
                route: Some(r),
                reason,
            } => format!("route {r}: reject {reason}"),
            Outcome::Reject {
                route: None,
                reason,
            } => format!("reject {reason}"),
        };
        println!("{}: {line}", n + 1);
    }
}

fn show(cell: &Cell) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Text(s) | Cell::Json(s) => format!("{s:?}"),
        Cell::Int2(n) => n.to_string(),
        Cell::Int4(n) => n.to_string(),
        Cell::Int8(n) => n.to_string(),
        Cell::Numeric(d) => d.to_plain(),
        Cell::Bool(b) => b.to_string(),
        Cell::Uuid(u) => u.to_string(),
        Cell::Date(d) => d.to_string(),
        Cell::Timestamptz(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Cell::Inet(ip) => ip.to_string(),
        Cell::TextArray(items) => format!("{items:?}"),
    }
}

fn print_plan(name: &str, plan: &Plan) {
    println!("mapping {name}: rejects go to {}", plan.rejects_table);
    for r in &plan.routes {
        let when = r
            .when
            .as_ref()
            .map_or_else(|| "every event".to_owned(), |w| format!("when {w}"));
        let Some(load) = &r.load else {
            println!("route {} ({when}): skip", r.name);
            continue;
        };
        let mut extra = String::new();
        if let Some((key, on_conflict)) = &load.key {
            let what = match on_conflict {
                OnConflict::Ignore => "ignore",
                OnConflict::Update => "update",
            };
            extra.push_str(&format!(", key ({}) on conflict {what}", key.join(", ")));
        }
        if let Some(s) = &load.subject {
            extra.push_str(&format!(", subject {s}"));
        }
        println!("route {} ({when}) → {}{extra}", r.name, load.table);
        for c in &load.columns {
            println!("  {}", describe(c));
        }
        if let Some(s) = load.subject.as_ref().filter(|_| !load.subject_indexed) {
            println!(
                "  ⚠ no index leads with the subject column {s}: `sqs2pg forget` reads all of {} to find one person's rows (CREATE INDEX ON {} ({s}))",
                load.table, load.table
            );
        }
    }
    println!("ok: {} route(s) fit the database", plan.routes.len());
}

/// One line for `mapping check`: how a column is made.
fn describe(c: &ColumnPlan) -> String {
    let how = match &c.converter {
        Converter::Text { .. } => "text".to_owned(),
        Converter::Int(_) => "integer".to_owned(),
        Converter::SemverInt(_) | Converter::SemverNumeric(_) => {
            "version as integer (semver_int)".to_owned()
        }
        Converter::Numeric(_) => "exact decimal".to_owned(),
        Converter::Bool => "boolean".to_owned(),
        Converter::Uuid => "uuid".to_owned(),
        Converter::Date => "date (UTC)".to_owned(),
        Converter::Timestamptz(None) => "RFC 3339 time".to_owned(),
        Converter::Timestamptz(Some(Epoch::Seconds)) => "epoch seconds".to_owned(),
        Converter::Timestamptz(Some(Epoch::Millis)) => "epoch milliseconds".to_owned(),
        Converter::Inet => "address".to_owned(),
        Converter::IpText { .. } => "address as canonical text".to_owned(),
        Converter::Json { .. } => "JSON subtree as sent".to_owned(),
        Converter::TextArray { .. } => "array of strings".to_owned(),
        Converter::Token { context, ip, .. } => {
            format!(
                "token {context:?}{}",
                if *ip { " of an address" } else { "" }
            )
        }
    };
    let flags: Vec<&str> = [
        (c.required, "required"),
        (c.not_null, "not null"),
        (c.non_empty, "non-empty"),
        (c.strict, "strict"),
    ]
    .into_iter()
    .filter_map(|(on, flag)| on.then_some(flag))
    .collect();
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", flags.join(", "))
    };
    let reason = c
        .reason
        .as_ref()
        .map_or_else(String::new, |r| format!(", reasons name {r:?}"));
    format!(
        "{} {} ← {} → {how}{flags}{reason}",
        c.name, c.shown_type, c.source
    )
}
