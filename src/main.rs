//! The `sqs2pg` binary: parse, set up logging, run the command, map the outcome to an exit
//! code.
//!
//! Exit codes: 0 success; 2 usage or configuration error (the message names the flag or
//! variable); 1 anything else. Every error message says what to do next: one `error: …` line
//! on stderr, or under `--log-format json` one JSON line shaped like the logs.

use std::process::ExitCode;

use sqs2pg::error::Failure;
use sqs2pg::telemetry::LogFormat;

#[global_allocator]
static ALLOC: sqs2pg::alloc::Split = sqs2pg::alloc::Split;

fn main() -> ExitCode {
    ALLOC.tune();
    #[cfg(feature = "failpoints")]
    let _failpoints = sqs2pg::failpoint::from_env();
    sqs2pg::telemetry::install_panic_hook();
    // clap exits 2 itself on a bad flag, naming it (as one JSON line under JSON logs); a bad
    // config file arrives here.
    let cli = match sqs2pg::cli::parse() {
        Ok(cli) => cli,
        // The flag, else the variable (a config file that failed to load cannot say).
        Err(e) => {
            let args: Vec<_> = std::env::args_os().collect();
            return fail(Failure::from(e), sqs2pg::cli::log_format_asked(&args, None));
        }
    };
    let log_format = cli.global.log_format;
    sqs2pg::telemetry::init_tracing(log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = anyhow::Error::from(e).context("cannot start the async runtime");
            return fail(Failure::from(e), log_format);
        }
    };
    match runtime.block_on(sqs2pg::cli::execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(failure, log_format),
    }
}

/// Prints `failure` in the log format (its only line on stderr) and returns its exit code.
fn fail(failure: Failure, log_format: LogFormat) -> ExitCode {
    match log_format {
        LogFormat::Text => eprintln!("error: {failure}"),
        LogFormat::Json => eprintln!("{}", failure.json_line()),
    }
    ExitCode::from(failure.exit_code())
}
