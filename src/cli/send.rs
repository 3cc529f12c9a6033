//! `sqs2pg send`: bodies from a file, or synthetic events, onto the queue.

use super::args::{GlobalArgs, SendArgs};
use crate::error::Failure;
use crate::ops::admin::{self, Bodies};
use crate::synth::SynthOptions;

pub(super) async fn send(g: &GlobalArgs, args: &SendArgs) -> Result<(), Failure> {
    let bodies = match (&args.file, args.synthetic) {
        (Some(path), _) => Bodies::File(path),
        (None, Some(count)) => Bodies::Synthetic(SynthOptions {
            count,
            duplicate_rate: args.duplicate_rate,
            malformed_rate: args.malformed_rate,
            seed: args.seed,
        }),
        (None, None) => return Err(Failure::usage("give --file PATH or --synthetic N")),
    };
    let (sent, queue_url) = admin::send(
        &g.sqs(),
        bodies,
        args.concurrency.into(),
        args.message_group,
    )
    .await?;
    println!("sent {sent} messages to {queue_url}");
    Ok(())
}
