//! JSON to Arrow decoding with pseudonymisation, per feed, on simulator events.
//!
//! Measured: `Decoder::decode` over one batch of 8,192 raw records already in memory (the
//! records are generated once, outside the timed loop). Not measured: reading files, rules,
//! sinks. Throughput is reported in events per second.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use citybrain_connectors::{
    Catalog, CityConfig, CitySimulator, Decoder, Feed, Origin, Pseudonymizer, RawBatch, RawRecord,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 8192;

/// One batch of `BATCH` simulator events of `feed`. The simulator runs slowly (0.05 events per
/// simulated second) so the rarer departments are well represented; their events are cycled
/// to fill the batch.
fn batch_of(feed: Feed) -> RawBatch {
    let mut sim = CitySimulator::new(CityConfig {
        events_per_sim_second: 0.05,
        ..CityConfig::default()
    });
    let mut distinct = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..200_000 {
        buf.clear();
        if *sim.next_event(&mut buf) == feed {
            distinct.push(Bytes::copy_from_slice(&buf));
            if distinct.len() == BATCH {
                break;
            }
        }
    }
    assert!(!distinct.is_empty(), "the simulator produces {feed} events");
    let records = (0..BATCH)
        .map(|i| RawRecord {
            payload: distinct[i % distinct.len()].clone(),
            origin: Origin::Simulator { seq: i as u64 },
        })
        .collect();
    RawBatch { feed, records }
}

fn decode(c: &mut Criterion) {
    let key = Arc::new(Pseudonymizer::new(b"bench-key"));
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(BATCH as u64));
    for feed in Catalog::city().tables() {
        let raw = batch_of(feed.clone());
        let mut decoder = Decoder::new(feed.clone(), Arc::clone(&key));
        group.bench_function(feed.name(), |b| {
            b.iter(|| black_box(decoder.decode(black_box(&raw))));
        });
    }
    group.finish();
}

fn pseudonymize(c: &mut Criterion) {
    let key = Pseudonymizer::new(b"bench-key");
    let phones: Vec<String> = (0..BATCH).map(|i| format!("138{i:08}")).collect();
    let mut group = c.benchmark_group("pseudonymize");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("phone", |b| {
        let mut out = String::with_capacity(64);
        b.iter(|| {
            for p in &phones {
                out.clear();
                key.pseudonymize_into(black_box(p), &mut out);
                black_box(&out);
            }
        });
    });
    group.finish();
}

criterion_group!(benches, decode, pseudonymize);
criterion_main!(benches);
