//! The `sqs2pg` binary: parse, set up logging, run the command, map the outcome to an exit
//! code.
//!
//! Exit codes: 0 success; 2 usage or configuration error (the message names the flag or
//! variable); 1 anything else. Every error message says what to do next.

use std::process::ExitCode;

#[global_allocator]
static ALLOC: sqs2pg::alloc::Split = sqs2pg::alloc::Split;

fn main() -> ExitCode {
    ALLOC.tune();
    sqs2pg::telemetry::install_panic_hook();
    // clap exits 2 itself on a bad flag, naming it; a bad config file arrives here.
    let cli = match sqs2pg::cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {}", sqs2pg::error::Failure::from(e));
            return ExitCode::from(2);
        }
    };
    sqs2pg::telemetry::init_tracing(cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(sqs2pg::cli::execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
