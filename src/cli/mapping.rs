//! `sqs2pg mapping print` and `sqs2pg mapping check`.

use super::args::GlobalArgs;
use crate::config::keys::KeySource;
use crate::error::Failure;
use crate::mapping::compile::{describe, Plan, MAX_KID_LEN};
use crate::mapping::{login, OnConflict};
use crate::ops;

pub(super) fn print() -> Result<(), Failure> {
    print!("{}", login::LOGIN_TOML);
    Ok(())
}

pub(super) async fn check(g: &GlobalArgs) -> Result<(), Failure> {
    let (name, mapping) = ops::mapping::load(g.mapping.as_deref())?;
    // Token widths are checked for the writing key's id; without a keyring, for the longest.
    let kid_len = match g.keys() {
        KeySource::None => MAX_KID_LEN,
        keys => keys.load().await?.writing_kid().len(),
    };
    let plan = ops::mapping::check(&g.db()?, &mapping, kid_len).await?;
    print_plan(&name, &plan);
    Ok(())
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
    }
    println!("ok: {} route(s) fit the database", plan.routes.len());
}
