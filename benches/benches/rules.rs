//! Window aggregation through the rules crate's public API (`compile` + `RuleRunner`).
//!
//! Measured: one fresh `RuleRunner` taking every decoded traffic batch of a simulated stream
//! (`RuleRunner::process` per batch, then `finish`): window assignment, late checks, holding
//! rows or partial aggregates, and running the rule's physical plan for every closed window.
//! Not measured (done once, outside the timed loop): simulating, decoding, planning the rule.
//! Throughput is in input events per second.
//!
//! Rules (in `benches/rules/`): a one-minute tumble per road (the Flink comparison rule), a
//! ten-second tumble per road, and a ten-minute window hopping every ten seconds per road.
//! A rule this build cannot plan yet (HOP before the sliced operator lands) is skipped with a
//! message instead of failing the run.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use citybrain_benches::{BENCH_KEY, compile_all, rule_sources, simulated_batches};
use citybrain_connectors::{CityConfig, Decoder, Feed, Pseudonymizer};
use citybrain_rules::{RuleRunner, RunnerConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const RULES: [&str; 3] = [
    "tumble_1min_per_road",
    "tumble_10s_per_road",
    "hop_10min_10s_per_road",
];

/// Events in the stream: 200,000 (about 17 simulated minutes at the default 200 events per
/// simulated second) under `cargo bench`, a smoke-sized 5,000 under `cargo test`.
fn events() -> u64 {
    if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        5_000
    }
}

fn traffic_batches(events: u64) -> Vec<RecordBatch> {
    let mut decoder = Decoder::new(Feed::Traffic, Arc::new(Pseudonymizer::new(BENCH_KEY)));
    simulated_batches(CityConfig::default(), events, 8192)
        .iter()
        .filter(|raw| raw.feed == Feed::Traffic)
        .map(|raw| decoder.decode(raw).batch)
        .collect()
}

fn windows(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let batches = traffic_batches(events());
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut group = c.benchmark_group("window_aggregation");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows as u64));
    for name in RULES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("rules/{name}.sql"));
        let sources = rule_sources(&path).expect("benchmark rule file");
        let rule = match rt.block_on(compile_all(&sources)) {
            Ok(mut rules) => Arc::new(rules.remove(0)),
            Err(e) => {
                eprintln!("skipping {name}: this build cannot plan it yet: {e}");
                continue;
            }
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    RuleRunner::new(
                        Arc::clone(&rule),
                        RunnerConfig::with_out_of_orderness(5_000),
                    )
                },
                |mut runner| {
                    rt.block_on(async {
                        let mut out = 0usize;
                        for batch in &batches {
                            let step = runner.process(0, batch).await.expect("process");
                            out += step.emissions.len();
                        }
                        out += runner.finish().await.expect("finish").len();
                        black_box(out)
                    })
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, windows);
criterion_main!(benches);
