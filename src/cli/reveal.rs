//! `sqs2pg reveal` and `sqs2pg mask`: tokens in, originals out (or the reverse), audited.

use std::io::{BufRead, Write};

use anyhow::Context;

use super::args::GlobalArgs;
use crate::error::Failure;
use crate::mask::Column;
use crate::ops::reveal;

/// Reads every token first, so the audit row can say how many values are opened and
/// `--max` can refuse before anything is printed. One output line per input line, so the
/// output still lines up with the input when a token does not open.
pub(super) async fn reveal(
    g: &GlobalArgs,
    column: Option<Column>,
    reason: &str,
    max: usize,
) -> Result<(), Failure> {
    let keyring = g.keys().load().await?;
    let db = g.db()?;
    let lines: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .collect::<Result<_, _>>()
        .context("reading tokens from stdin")?;
    let opened = reveal::reveal_tokens(&db, &keyring, column, reason, max, &lines).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    for (n, result) in opened.iter().enumerate() {
        match result {
            Ok(v) => writeln!(out, "{v}").context("writing to stdout")?,
            Err(e) => {
                writeln!(out).context("writing to stdout")?;
                eprintln!("sqs2pg reveal: line {}: {e}", n + 1);
                failed += 1;
            }
        }
    }
    out.flush().context("writing to stdout")?;
    if failed > 0 {
        return Err(
            anyhow::anyhow!("{failed} token(s) could not be opened (see the lines above)").into(),
        );
    }
    Ok(())
}

pub(super) async fn reveal_reject(
    g: &GlobalArgs,
    message_id: &str,
    reason: &str,
) -> Result<(), Failure> {
    let keyring = g.keys().load().await?;
    let (body, why) = reveal::reveal_reject(&g.db()?, &keyring, message_id, reason).await?;
    eprintln!("sqs2pg reveal: message {message_id} was rejected: {why}");
    println!("{body}");
    Ok(())
}

pub(super) async fn mask(
    g: &GlobalArgs,
    column: Column,
    reason: &str,
    value: &str,
) -> Result<(), Failure> {
    let keyring = g.keys().load().await?;
    let token = reveal::mask_value(&g.db()?, &keyring, column, reason, value).await?;
    println!("{token}");
    Ok(())
}
