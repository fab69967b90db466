//! Window aggregation and a window join through the rules crate's public API (`compile` +
//! `RuleRunner`).
//!
//! Measured: one fresh `RuleRunner` taking every decoded batch of a simulated stream
//! (`RuleRunner::process` per batch, then `finish`): window assignment, late checks, holding
//! rows or partial aggregates, and running the rule's physical plan for every closed window.
//! Not measured (done once, outside the timed loop): simulating, decoding, planning the rule.
//! Throughput is in input events per second (every event fed to the runner, of all inputs).
//!
//! Rules (in `benches/rules/`):
//! - `window_aggregation`: a one-minute tumble per road (the Flink comparison rule), a
//!   ten-second tumble per road, and a ten-minute window hopping every ten seconds per road,
//!   over the traffic feed. A rule this build cannot plan yet is skipped with a message
//!   instead of failing the run.
//! - `window_join`: traffic accidents joined with police reports of the same ten-minute tumble
//!   and H3 cell. The runner holds every traffic reading of a window (the rule's filter runs
//!   when the window closes), so this measures holding the dense feed plus one filter and hash
//!   join per window. The traffic and police batches arrive interleaved, as a source polling
//!   both feeds hands them out, so windows close while the stream runs. The stream is sparser
//!   (20 events per simulated second) so that it spans several staged accident bursts; setup
//!   checks that the join emits rows.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use citybrain_benches::{
    BENCH_KEY, compile_all, rule_sources, simulated_batches, simulated_batches_interleaved,
};
use citybrain_connectors::{Catalog, CityConfig, Decoder, Feed, Pseudonymizer};
use citybrain_rules::{CompiledRule, RuleRunner, RunnerConfig};
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
    let traffic = Catalog::city()
        .table("traffic")
        .expect("the city's traffic feed")
        .clone();
    let mut decoder = Decoder::new(traffic.clone(), Arc::new(Pseudonymizer::new(BENCH_KEY)));
    simulated_batches(CityConfig::default(), events, 8192)
        .iter()
        .filter(|raw| raw.feed == traffic)
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

/// The window-join rule (in `benches/rules/`).
const JOIN_RULE: &str = "join_accident_police_10min";

/// Events per simulated second of the join stream: a tenth of the default, so that the
/// 200,000 events span about 2.8 simulated hours (17 windows, several staged accident bursts)
/// and the 5,000 of the smoke test about four minutes (the first burst).
const JOIN_SIM_RATE: f64 = 20.0;

/// The decoded batches of every feed `rule` reads, in arrival order, each with the index of
/// the rule input it feeds.
fn join_input(rule: &CompiledRule, events: u64) -> Vec<(usize, RecordBatch)> {
    let key = Arc::new(Pseudonymizer::new(BENCH_KEY));
    let city = CityConfig {
        events_per_sim_second: JOIN_SIM_RATE,
        ..CityConfig::default()
    };
    let mut decoders: BTreeMap<Feed, Decoder> = BTreeMap::new();
    simulated_batches_interleaved(city, events, 8192)
        .iter()
        .filter_map(|raw| {
            let input = rule.inputs.iter().position(|t| t == raw.feed.name())?;
            let decoder = decoders
                .entry(raw.feed.clone())
                .or_insert_with(|| Decoder::new(raw.feed.clone(), Arc::clone(&key)));
            Some((input, decoder.decode(raw).batch))
        })
        .collect()
}

/// Feeds every batch to `runner`, then finishes it; returns the rows emitted.
async fn run_to_end(runner: &mut RuleRunner, input: &[(usize, RecordBatch)]) -> usize {
    let rows = |emissions: &[citybrain_rules::Emission]| -> usize {
        emissions
            .iter()
            .flat_map(|e| &e.batches)
            .map(RecordBatch::num_rows)
            .sum()
    };
    let mut out = 0;
    for (index, batch) in input {
        let step = runner.process(*index, batch).await.expect("process");
        out += rows(&step.emissions);
    }
    out + rows(&runner.finish().await.expect("finish"))
}

fn joins(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("rules/{JOIN_RULE}.sql"));
    let sources = rule_sources(&path).expect("benchmark rule file");
    let rule = Arc::new(
        rt.block_on(compile_all(&sources))
            .expect("the window-join rule plans")
            .remove(0),
    );
    let input = join_input(&rule, events());
    let events_fed: usize = input.iter().map(|(_, b)| b.num_rows()).sum();
    let config = RunnerConfig::with_out_of_orderness(5_000);
    // Once outside the timed loop: an empty join would measure nothing.
    let joined = rt.block_on(run_to_end(
        &mut RuleRunner::new(Arc::clone(&rule), config),
        &input,
    ));
    assert!(
        joined > 0,
        "{JOIN_RULE} joined no rows over {events_fed} events; the bench would measure nothing"
    );
    eprintln!("{JOIN_RULE}: {events_fed} events in, {joined} joined rows out");
    let mut group = c.benchmark_group("window_join");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events_fed as u64));
    group.bench_function(JOIN_RULE, |b| {
        b.iter_batched(
            || RuleRunner::new(Arc::clone(&rule), config),
            |mut runner| black_box(rt.block_on(run_to_end(&mut runner, &input))),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, windows, joins);
criterion_main!(benches);
