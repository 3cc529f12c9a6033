//! The `sqs2pg` binary: parse, set up logging, run the command, map the outcome to an exit
//! code.
//!
//! Exit codes: 0 success; 2 usage or configuration error (the message names the flag or
//! variable); 1 anything else. Every error message says what to do next.

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mi_option_e` in mimalloc.h, v3 as the sys crate
/// builds it), which the sys crate does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Large bodies come and go in bursts, and mimalloc keeps freed pages 10 ms (arenas: 100 ms)
/// before it gives them back: with 256 KiB bodies that was ~12 MB of peak RSS above the
/// byte budget. Freed pages now go back at once. `MIMALLOC_PURGE_DELAY` set by the user
/// wins. (`MIMALLOC_ARENA_EAGER_COMMIT=0`, worth another ~38 MB there, works only from the
/// environment: the first arena is reserved before `main`; docs/DEPLOYMENT.md.)
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one option's value; called first in main, before any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

fn main() -> ExitCode {
    tune_allocator();
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
