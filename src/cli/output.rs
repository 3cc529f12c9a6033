//! `--output text|json`: how a command prints its result on stdout. Text is for people and
//! may leave out what is zero; JSON is for scripts (cron, Airflow) and always holds every
//! field, so a parser never meets a missing key.

use clap::ValueEnum;
use serde::Serialize;

use crate::error::Failure;

/// The form of a command's result on stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// Prints `value` as one JSON object on one line of stdout.
pub(super) fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let line = serde_json::to_string(value).map_err(anyhow::Error::from)?;
    println!("{line}");
    Ok(())
}
