//! `sqs2pg rekey`: re-encrypt old-key tokens, with a bar on a terminal.

use super::args::GlobalArgs;
use crate::error::Failure;
use crate::ops::rekey;

pub(super) async fn rekey(g: &GlobalArgs, batch_size: i64) -> Result<(), Failure> {
    let keyring = g.keys().load().await?;
    let db = g.db()?;
    let (rows, bodies) = rekey::pending(&db, &keyring).await?;
    tracing::info!(
        rows,
        bodies,
        writing_kid = keyring.writing_kid(),
        "rekey started"
    );
    let bar = crate::telemetry::bar(rows + bodies);
    let report = rekey::run(&db, &keyring, batch_size, &bar).await;
    bar.finish_and_clear();
    println!("{}", report?);
    Ok(())
}
