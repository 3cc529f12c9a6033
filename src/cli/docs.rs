//! `sqs2pg completions` and `sqs2pg man`: generated from the clap definitions.

use clap::CommandFactory;

use super::args::Cli;
use crate::error::Failure;

pub(super) fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    clap_complete::generate(shell, &mut Cli::command(), "sqs2pg", &mut std::io::stdout());
    Ok(())
}

/// sqs2pg(1) on stdout, or with `dir` every page, which is what sqs2pg(1) refers to.
pub(super) fn man(dir: Option<&std::path::Path>) -> Result<(), Failure> {
    match dir {
        None => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(|e| anyhow::Error::from(e).into()),
        // A directory that is missing or not writable is the user's to fix.
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
            .map_err(|e| {
                Failure::usage(format!(
                    "--dir: cannot write the man pages into {}: {e}",
                    dir.display()
                ))
            }),
    }
}
