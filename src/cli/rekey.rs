//! `sqs2pg rekey`: re-encrypt old-key tokens, with a bar on a terminal.

use super::args::GlobalArgs;
use crate::error::Failure;
use crate::ops::rekey::Rekey;

pub(super) async fn rekey(g: &GlobalArgs, batch_size: i64) -> Result<(), Failure> {
    let keyring = g.keys().load().await?;
    let db = g.db()?;
    let rekey = Rekey::prepare(&db, &keyring, g.load_mapping()?).await?;
    let (rows, bodies) = rekey.pending().await?;
    let tables: Vec<&str> = rekey
        .targets()
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    tracing::info!(
        rows,
        bodies,
        writing_kid = keyring.writing_kid(),
        tables = tables.join(","),
        "rekey started"
    );
    let bar = crate::telemetry::bar(rows + bodies);
    let report = rekey.run(batch_size, &bar).await;
    bar.finish_and_clear();
    println!("{}", report?);
    Ok(())
}
