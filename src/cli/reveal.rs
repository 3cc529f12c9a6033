//! `sqs2pg reveal` and `sqs2pg mask`: tokens in, originals out (or the reverse), audited.
//! Both read their input on stdin only: a raw value in argv would show in `ps` and the
//! shell's history.

use std::borrow::Cow;
use std::io::{BufRead, Write};

use anyhow::Context as _;

use super::args::GlobalArgs;
use crate::error::Failure;
use crate::mask::Context;
use crate::ops::{self, reveal};
use crate::pii::Pii;

/// Reads every token first, so the audit row can say how many values are opened and
/// `--max` can refuse before anything is printed. One output line per input line, so the
/// output still lines up with the input when a token does not open. Without `--column`,
/// the token contexts of `--mapping` (the file as read, not compiled) are tried too.
pub(super) async fn reveal(
    g: &GlobalArgs,
    column: Option<&Context>,
    reason: &str,
    max: usize,
    raw: bool,
) -> Result<(), Failure> {
    let keyring = g.keys().load().await?;
    let db = g.db()?;
    let mapping = match (column, g.mapping.as_deref()) {
        (None, Some(path)) => Some(ops::mapping::load(Some(path))?.1),
        _ => None,
    };
    let lines = stdin_lines().context("reading tokens from stdin")?;
    let opened =
        reveal::reveal_tokens(&db, &keyring, column, mapping.as_ref(), reason, max, &lines).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    for (n, result) in opened.iter().enumerate() {
        match result {
            Ok(v) => writeln!(out, "{}", printable(v, raw)).context("writing to stdout")?,
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
    raw: bool,
) -> Result<(), Failure> {
    let keyring = g.keys().load().await?;
    let mapping = g.load_mapping()?;
    let (body, why) =
        reveal::reveal_reject(&g.db()?, &keyring, message_id, reason, mapping.as_deref()).await?;
    eprintln!("sqs2pg reveal: message {message_id} was rejected: {why}");
    println!("{}", printable(&body, raw));
    Ok(())
}

/// Refuses a value in argv before anything else (not echoing it), then reads the values on
/// stdin and prints one token per line.
pub(super) async fn mask(
    g: &GlobalArgs,
    column: &Context,
    reason: &str,
    argv_values: &[String],
) -> Result<(), Failure> {
    if !argv_values.is_empty() {
        return Err(Failure::usage(
            "VALUE: mask reads values on stdin, one a line, never from the command line, where they show in `ps` and the shell's history (remove this one from yours): e.g. `printf '%s\\n' \"$IP\" | sqs2pg mask --column ip --reason …`",
        ));
    }
    let keyring = g.keys().load().await?;
    let values: Vec<Pii<String>> = stdin_lines()
        .context("reading values from stdin")?
        .into_iter()
        .map(Pii::new)
        .collect();
    let tokens = reveal::mask_values(&g.db()?, &keyring, column, reason, &values).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for token in &tokens {
        writeln!(out, "{token}").context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}

fn stdin_lines() -> std::io::Result<Vec<String>> {
    std::io::stdin().lock().lines().collect()
}

/// A revealed value as it is printed: with `raw`, verbatim; else each control character
/// (ESC, CR, NUL, a newline inside a body, …) as its Rust escape (`\u{1b}`, `\r`, `\n`), so
/// a quarantined body cannot move the cursor, retitle the terminal or split one line in two.
fn printable(value: &str, raw: bool) -> Cow<'_, str> {
    if raw || !value.chars().any(char::is_control) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_unless_raw() {
        let body = "{\"ip\":\"1.2.3.4\"}\u{1b}]0;pwned\u{7}\r\n\tx";
        assert_eq!(
            printable(body, false),
            "{\"ip\":\"1.2.3.4\"}\\u{1b}]0;pwned\\u{7}\\r\\n\\tx"
        );
        assert_eq!(printable(body, true), body);
    }

    #[test]
    fn plain_text_and_unicode_pass_unchanged() {
        assert_eq!(
            printable("Zoë 203.0.113.7 \"q\" \\", false),
            "Zoë 203.0.113.7 \"q\" \\"
        );
    }
}
