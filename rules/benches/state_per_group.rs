//! Bytes of state per open group: one `GROUP BY` over a high-cardinality column in a 1-hour
//! tumbling window (every row a new group, as a plate or a phone number would be), fed in
//! batches of 8,192 rows (a replay) and of 64 (a live feed). Measures, per group, what the rule counts against `max_state_bytes`
//! (`RuleRunner::held_bytes`: Arrow's count of the buffers its state keeps alive) and the
//! growth of the process's resident memory (input batches dropped; the workspace forbids the
//! unsafe code a counting allocator needs).
//!
//! ```sh
//! cargo bench -p citybrain-rules --bench state_per_group          # release, 1M groups
//! cargo test -p citybrain-rules --bench state_per_group --release # the same, test profile
//! cargo test -p citybrain-rules --bench state_per_group           # debug, 20k groups (smoke)
//! STATE_GROUPS=200000 cargo test -p citybrain-rules --bench state_per_group -- --bench
//! ```

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use citybrain_rules::{Catalog, RuleRunner, RuleSource, RunnerConfig, compile};

/// The process's resident memory, bytes (`VmRSS` of /proc/self/status; 0 where there is none).
fn rss() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

const RULE: &str = "-- title: per plate\n-- severity: info\n-- max_state_rows: 100M\n-- max_rows_per_window: 100M\n\
    -- max_state_bytes: 64 GiB\n\
    SELECT k, window_start, window_end, COUNT(*) AS n, SUM(v) AS total\n\
    FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' HOUR))\n\
    GROUP BY k, window_start, window_end";

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

/// Rows `from..to`: key `plate-{i}`, one millisecond apart (all in the first hour).
fn batch(from: usize, to: usize) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(
                TimestampMillisecondArray::from_iter_values((from..to).map(|i| i as i64))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                (from..to).map(|i| format!("plate-{i:08}")),
            )),
            Arc::new(Int64Array::from_iter_values(
                (from..to).map(|i| i as i64 % 100),
            )),
        ],
    )
    .expect("batch")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let groups: usize = std::env::var("STATE_GROUPS")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 20_000 });
    let Some(per_batch) = std::env::var("BATCH").ok().and_then(|b| b.parse().ok()) else {
        // Large batches (a replay) and small ones (a live feed of a few hundred events a
        // second), each in a process of its own so that resident memory starts afresh.
        for per_batch in ["8192", "64"] {
            let status = std::process::Command::new(std::env::current_exe().expect("self"))
                .args(std::env::args().skip(1))
                .env("BATCH", per_batch)
                .env("STATE_GROUPS", groups.to_string())
                .status()
                .expect("runs");
            assert!(status.success());
        }
        return;
    };
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(measure(groups, per_batch));
}

async fn measure(groups: usize, per_batch: usize) {
    let catalog = Catalog::new().with_table("t", schema(), "ts");
    let rule = compile(&RuleSource::inline("per_plate", RULE), &catalog)
        .await
        .expect("the rule plans");
    let mut runner = RuleRunner::new(Arc::new(rule), RunnerConfig::with_out_of_orderness(0));
    // One batch first, so that the plans' one-off allocations are not counted per group.
    let warm = batch(0, 16);
    runner.process(0, &warm).await.expect("process");
    drop(warm);
    let before = rss();
    let mut from = 16;
    while from < groups {
        let to = (from + per_batch).min(groups);
        let b = batch(from, to);
        let step = runner.process(0, &b).await.expect("process");
        assert!(step.emissions.is_empty(), "the hour is still open");
        from = to;
    }
    let heap = rss() - before;
    let counted = runner.held_bytes();
    let n = (groups - 16) as f64;
    println!(
        "{groups} open groups in a 1-hour window, {per_batch} rows per batch: \
         held_bytes {:.0} per group, resident memory grew {:.0} per group \
         ({:.1} MB), held_rows {}",
        counted as f64 / n,
        heap as f64 / n,
        heap as f64 / 1e6,
        runner.held_rows()
    );
    let out = runner.finish().await.expect("finish");
    let rows: usize = out
        .iter()
        .flat_map(|e| &e.batches)
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(rows, groups, "one result per group");
}
