//! `citybrain-bench checkpoint`: what a checkpoint costs with many keys in open windows.
//!
//! ```text
//! simulated traffic ─▶ Decoder ─▶ road_id rewritten to KEYS distinct values ─▶ RuleGraph
//!   (benches/rules/checkpoint/tumble_1day_per_road.sql: one open group per road)
//!        │ timed: RuleGraph::snapshot ─▶ CheckpointStore::save (Arrow IPC, fsync, manifest)
//!        │ timed: CheckpointStore::latest (read, decode) ─▶ RuleGraph::restore (a fresh graph)
//!        ▼
//!   RESULT {"keys", "rows", "bytes", "snapshot_s", "save_s", "load_s", "restore_s"}
//! ```
//!
//! The restored graph is checked: it holds as many rows as the one saved.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use arrow::array::{ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;
use citybrain_connectors::{Catalog, CityConfig, Decoder, Pseudonymizer};
use citybrain_engine::checkpoint::{Checkpoint, CheckpointConfig, CheckpointStore};
use citybrain_rules::{RuleGraph, RunnerConfig};

use crate::{BENCH_KEY, compile_all, rule_sources, simulated_batches};

/// Arguments of `citybrain-bench checkpoint`.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// Distinct keys (roads) held in the open window, one event each.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// The rule holding them.
    #[arg(
        long,
        default_value = "benches/rules/checkpoint/tumble_1day_per_road.sql"
    )]
    pub rules: PathBuf,
    /// Where the checkpoint is written (a folder, or memory://); default a new folder in the
    /// system temp dir, removed at the end.
    #[arg(long)]
    pub store: Option<String>,
}

/// Runs the measurement and prints it.
///
/// # Errors
/// When the rule cannot be planned or the checkpoint written or read.
pub async fn checkpoint(args: &CheckpointArgs) -> anyhow::Result<()> {
    let sources = rule_sources(&args.rules)?;
    let config = RunnerConfig::default();
    let mut graph = RuleGraph::new(compile_all(&sources).await?, config);
    let traffic = Catalog::city()
        .table("traffic")
        .context("the city's traffic feed")?
        .clone();
    let mut decoder = Decoder::new(traffic.clone(), Arc::new(Pseudonymizer::new(BENCH_KEY)));
    // About 60 events per simulated second: the keys' events stay within one simulated day.
    let city = CityConfig {
        events_per_sim_second: 60.0,
        ..CityConfig::default()
    };
    let fed_at = Instant::now();
    let mut key = 0u64;
    for raw in simulated_batches(city, args.keys + args.keys / 5 + 10_000, 8192) {
        if raw.feed != traffic || key >= args.keys {
            continue;
        }
        let batch = decoder.decode(&raw).batch;
        let take = (args.keys - key).min(batch.num_rows() as u64) as usize;
        let batch = distinct_roads(&batch.slice(0, take), key)?;
        key += take as u64;
        graph.process("traffic", &batch).await?;
    }
    if key < args.keys {
        bail!(
            "the simulator gave {key} traffic events, fewer than {} keys",
            args.keys
        );
    }
    let rows: usize = graph.state_rows().iter().map(|(_, n)| n).sum();
    println!(
        "fed {key} keys in {:.1} s: {rows} rows held",
        fed_at.elapsed().as_secs_f64()
    );

    let temp =
        std::env::temp_dir().join(format!("citybrain-bench-checkpoint-{}", std::process::id()));
    let store_name = args
        .store
        .clone()
        .unwrap_or_else(|| temp.display().to_string());
    let store = CheckpointStore::open(
        &CheckpointConfig {
            store: store_name.clone(),
            ..CheckpointConfig::default()
        },
        "bench",
    )?;
    let t = Instant::now();
    let snapshot = graph.snapshot()?;
    let snapshot_s = t.elapsed().as_secs_f64();
    let checkpoint = Checkpoint {
        epoch: 1,
        graph: snapshot,
        ..Checkpoint::default()
    };
    let saved = store.save(&checkpoint).await?;
    drop(checkpoint);
    let t = Instant::now();
    let loaded = store
        .latest()
        .await?
        .context("the checkpoint just written")?;
    let load_s = t.elapsed().as_secs_f64();
    // A fresh process's graph: the same rules planned again.
    let mut fresh = RuleGraph::new(compile_all(&sources).await?, config);
    let t = Instant::now();
    let report = fresh.restore(loaded.graph)?;
    let restore_s = t.elapsed().as_secs_f64();
    let restored_rows: usize = fresh.state_rows().iter().map(|(_, n)| n).sum();
    if restored_rows != rows || report.restored.len() != 1 {
        bail!("restored {restored_rows} rows of {rows} ({report:?})");
    }
    if args.store.is_none() {
        std::fs::remove_dir_all(&temp).with_context(|| format!("removing {}", temp.display()))?;
    }
    println!(
        "checkpoint of {rows} rows: {:.1} MB; snapshot {snapshot_s:.3} s, encode + write + \
         fsync {:.3} s; read + decode {load_s:.3} s, restore {restore_s:.3} s ({store_name})",
        saved.bytes as f64 / 1e6,
        saved.took.as_secs_f64()
    );
    println!(
        "RESULT {}",
        serde_json::json!({
            "keys": args.keys,
            "rows": rows,
            "bytes": saved.bytes,
            "snapshot_s": snapshot_s,
            "save_s": saved.took.as_secs_f64(),
            "load_s": load_s,
            "restore_s": restore_s,
        })
    );
    Ok(())
}

/// `batch` with its `road_id` replaced by `R<first>`, `R<first + 1>`, ...
fn distinct_roads(batch: &RecordBatch, first: u64) -> anyhow::Result<RecordBatch> {
    let at = batch.schema().index_of("road_id")?;
    let roads: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..batch.num_rows() as u64).map(|i| format!("R{:09}", first + i)),
    ));
    let mut columns = batch.columns().to_vec();
    columns[at] = roads;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
