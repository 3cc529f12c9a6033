//! `sqs2pg migrate`: create what is missing, say what was created.

use super::args::GlobalArgs;
use crate::error::Failure;
use crate::ops::admin;

pub(super) async fn migrate(g: &GlobalArgs, roles: bool) -> Result<(), Failure> {
    let report = admin::migrate(&g.db()?, roles).await?;
    if report.created.is_empty() {
        println!("nothing to do: all tables exist");
    } else {
        println!("created: {}", report.created.join(", "));
    }
    if roles {
        println!(
            "roles: sqs2pg_ingest, sqs2pg_analyst, sqs2pg_revealer (grant them to login users)"
        );
    }
    Ok(())
}
