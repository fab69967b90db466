//! The whole pipeline with the built-in rule library, on simulated events in memory.
//!
//! Measured: `Pipeline::process` for every raw batch of a simulated stream, then
//! `Pipeline::finish`: decoding, pseudonymisation, every rule of `rules/library`, alert JSON
//! and dead-letter records handed to sinks that only count them. Not measured (outside the
//! timed loop): simulating the events, planning the rules, building the pipeline; reading
//! files and writing alert files (the `citybrain-bench` binary measures those end to end).
//! Throughput is in input events per second.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use citybrain_benches::{BENCH_KEY, CountingSink, compile_all, rule_sources, simulated_batches};
use citybrain_connectors::{CityConfig, Pseudonymizer, RawBatch};
use citybrain_engine::{Pipeline, PipelineConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// 200,000 events under `cargo bench`, a smoke-sized 5,000 under `cargo test`.
fn events() -> u64 {
    if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        5_000
    }
}

fn library(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let events = events();
    let raw: Vec<RawBatch> = simulated_batches(CityConfig::default(), events, 8192);
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/library");
    let sources = rule_sources(&library).expect("the built-in rule library");
    let key = Arc::new(Pseudonymizer::new(BENCH_KEY));
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("library", |b| {
        b.iter_batched(
            || {
                let rules = rt.block_on(compile_all(&sources)).expect("library plans");
                let pipeline = Pipeline::new(
                    PipelineConfig::default(),
                    rules,
                    Arc::clone(&key),
                    Box::new(CountingSink::default()),
                    Box::new(CountingSink::default()),
                );
                (pipeline, raw.clone())
            },
            |(mut pipeline, raw)| {
                rt.block_on(async {
                    for batch in raw {
                        pipeline.process(batch).await.expect("process");
                    }
                    pipeline.finish().await.expect("finish");
                });
                black_box(pipeline.stats().records())
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, library);
criterion_main!(benches);
