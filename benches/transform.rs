//! Criterion: the transform stage (the login mapping: decode, validate, mask) per message,
//! one core.
//! `cargo bench --bench transform`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sqs2pg::decode::Limits;
use sqs2pg::mask::{Keyring, Masker};
use sqs2pg::pii::Pii;
use sqs2pg::source::Received;

fn bench(c: &mut Criterion) {
    let keys = Keyring::parse(
        "b1=KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKg==",
    )
    .expect("key");
    let mut masker = Masker::new(&keys);
    let live =
        sqs2pg::mapping::login_shape::shared_for(&Limits::default(), keys.writing_kid().len())
            .expect("the login mapping compiles for the contract's table");
    let limits = sqs2pg::transform::Recipe::Login(live);
    let msgs: Vec<Received> = sqs2pg::synth::generate(sqs2pg::synth::SynthOptions {
        count: 1000,
        duplicate_rate: 0.0,
        malformed_rate: 0.01,
        seed: 1,
    })
    .into_iter()
    .enumerate()
    .map(|(i, b)| Received {
        message_id: format!("m{i}"),
        receipt_handle: String::new(),
        body: Pii::new(b),
        sent_at: None,
        receive_count: None,
        framing: Default::default(),
        extra: Default::default(),
    })
    .collect();
    let mut g = c.benchmark_group("transform");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("1000 synthetic messages", |b| {
        b.iter(|| {
            for m in &msgs {
                std::hint::black_box(sqs2pg::transform::transform(m, &limits, &mut masker));
            }
        })
    });
    g.bench_function("mask_ip", |b| {
        let ip = "203.0.113.7".parse().expect("ip");
        b.iter(|| std::hint::black_box(masker.mask_ip(ip)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
