//! `sqs2pg completions` and `sqs2pg man`: generated from the clap definitions.

use clap::CommandFactory;

use super::args::Cli;
use crate::error::Failure;

pub(super) fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    clap_complete::generate(shell, &mut Cli::command(), "sqs2pg", &mut std::io::stdout());
    Ok(())
}

pub(super) fn man() -> Result<(), Failure> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .map_err(anyhow::Error::from)?;
    Ok(())
}
