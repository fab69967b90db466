//! Snapshots of rule state: a runner saved mid-stream and restored into a fresh runner goes on
//! exactly as the runner that was never interrupted, for every kind of window state (sliced
//! partial aggregates, held rows of a window join, sessions, interval-join buffers, revisions
//! of late-updated windows, per-event rules), and so does a whole graph of rules with a view.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::array_value_to_string;
use citybrain_rules::{
    Catalog, Emission, RuleGraph, RuleRunner, RuleSource, RunnerConfig, compile, compile_all,
};

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

fn catalog() -> Catalog {
    Catalog::new()
        .with_table("t", schema(), "ts")
        .with_table("u", schema(), "ts")
}

fn batch(rows: &[(i64, String, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.0))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("batch")
}

/// 40 batches alternating between `t` and `u`: time moves forward with jitter inside the
/// out-of-orderness, and every seventh row lags far behind (late for some rules, within the
/// allowed lateness of others).
fn input() -> Vec<(&'static str, RecordBatch)> {
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        seed >> 33
    };
    let mut out = Vec::new();
    let mut clock = 0i64;
    for b in 0..40 {
        let mut rows = Vec::new();
        for i in 0..25 {
            clock += 300 + (next() % 400) as i64;
            let jitter = (next() % 1_500) as i64;
            let ts = if i % 7 == 6 {
                clock - 9_000
            } else {
                clock - jitter
            };
            rows.push((ts, format!("k{}", next() % 4), (next() % 100) as i64));
        }
        out.push((if b % 2 == 0 { "t" } else { "u" }, batch(&rows)));
    }
    out
}

const RULES: [(&str, &str); 7] = [
    (
        "tumble",
        "SELECT k, window_start, window_end, SUM(v) AS total, COUNT(*) AS n \
         FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '5' SECONDS)) \
         GROUP BY k, window_start, window_end",
    ),
    (
        "hop",
        "SELECT k, window_start, window_end, MAX(v) AS top \
         FROM TABLE(HOP(TABLE u, DESCRIPTOR(ts), INTERVAL '2' SECONDS, INTERVAL '6' SECONDS)) \
         GROUP BY k, window_start, window_end",
    ),
    (
        "join",
        "SELECT L.window_start, L.window_end, L.k, L.v AS lv, R.v AS rv \
         FROM (SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '4' SECONDS))) L \
         JOIN (SELECT * FROM TABLE(TUMBLE(TABLE u, DESCRIPTOR(ts), INTERVAL '4' SECONDS))) R \
         ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.k = R.k \
         WHERE L.v > 50",
    ),
    (
        "session",
        "SELECT k, window_start, window_end, COUNT(*) AS n, SUM(v) AS total \
         FROM TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '2' SECONDS)) \
         GROUP BY k, window_start, window_end",
    ),
    (
        "interval",
        "SELECT a.k, a.ts AS a_ts, b.ts AS b_ts, a.v + b.v AS both_v \
         FROM t a, u b \
         WHERE a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '1' SECONDS",
    ),
    (
        "lateness",
        "-- allowed_lateness: 6 seconds\n\
         SELECT k, window_start, window_end, SUM(v) AS total \
         FROM TABLE(TUMBLE(TABLE u, DESCRIPTOR(ts), INTERVAL '3' SECONDS)) \
         GROUP BY k, window_start, window_end",
    ),
    ("per_event", "SELECT k, ts, v FROM t WHERE v > 90"),
];

async fn runner(id: &str, sql: &str) -> RuleRunner {
    let text = format!("-- title: {id}\n-- severity: info\n{sql}");
    let rule = compile(&RuleSource::inline(id, &text), &catalog())
        .await
        .unwrap_or_else(|p| panic!("{id}: {p:?}"));
    RuleRunner::new(Arc::new(rule), RunnerConfig::with_out_of_orderness(2_000))
}

/// An emission as comparable text: window, revision and every row, rows sorted.
fn text(e: &Emission) -> String {
    let mut rows: Vec<String> = Vec::new();
    for b in &e.batches {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| array_value_to_string(c, i).expect("printable"))
                .collect();
            rows.push(cells.join(","));
        }
    }
    rows.sort();
    format!("{:?} r{} [{}]", e.window, e.revision, rows.join("; "))
}

/// Runs `runner` over `input` (from batch `from` on), collecting emissions and late rows.
async fn feed(
    runner: &mut RuleRunner,
    input: &[(&str, RecordBatch)],
    out: &mut Vec<String>,
) -> usize {
    let mut late = 0;
    let inputs = runner.rule().inputs.clone();
    for (table, b) in input {
        let Some(i) = inputs.iter().position(|t| t == table) else {
            continue;
        };
        let step = runner.process(i, b).await.expect("process");
        late += step.late_rows.len();
        out.extend(step.emissions.iter().map(text));
    }
    late
}

#[tokio::test]
async fn every_kind_of_state_continues_from_its_snapshot_as_if_never_interrupted() {
    let input = input();
    for (id, sql) in RULES {
        let mut whole = runner(id, sql).await;
        let mut expected = Vec::new();
        let expected_late = feed(&mut whole, &input, &mut expected).await;
        expected.extend(whole.finish().await.expect("finish").iter().map(text));
        assert!(
            expected.len() >= 3,
            "{id}: the input should make the rule emit, got {expected:?}"
        );
        for cut in [1, 9, 20, 33] {
            let mut first = runner(id, sql).await;
            let mut got = Vec::new();
            let mut late = feed(&mut first, &input[..cut], &mut got).await;
            let saved = first.snapshot().expect("snapshot");
            // Keeps running after the snapshot (a checkpoint does not disturb its runner).
            let mut ignored = Vec::new();
            feed(&mut first, &input[cut..cut + 2], &mut ignored).await;
            let mut second = runner(id, sql).await;
            second.restore(saved).expect("restore");
            late += feed(&mut second, &input[cut..], &mut got).await;
            got.extend(second.finish().await.expect("finish").iter().map(text));
            if let Some(i) =
                (0..got.len().max(expected.len())).find(|i| got.get(*i) != expected.get(*i))
            {
                panic!(
                    "{id}, restored at batch {cut}: emission {i} of {} differs:\n got      {:?}\n expected {:?}",
                    expected.len(),
                    got.get(i),
                    expected.get(i)
                );
            }
            assert_eq!(late, expected_late, "{id}: late rows, restored at {cut}");
            assert_eq!(second.late_count(), whole.late_count(), "{id}: late count");
        }
    }
}

#[tokio::test]
async fn a_state_does_not_restore_into_another_rule() {
    let mut tumble = runner(RULES[0].0, RULES[0].1).await;
    let input = input();
    feed(&mut tumble, &input[..10], &mut Vec::new()).await;
    let saved = tumble.snapshot().expect("snapshot");
    let mut join = runner(RULES[2].0, RULES[2].1).await;
    let err = join
        .restore(saved)
        .expect_err("a one-input state in a two-input rule");
    assert!(
        err.to_string().contains("cannot restore"),
        "the error says what failed: {err}"
    );
}

#[tokio::test]
async fn a_graph_restores_unchanged_rules_and_starts_changed_ones_empty() {
    let view = "-- title: sums\n-- severity: info\n-- emit: view\n\
        SELECT k, window_time AS rowtime, SUM(v) AS total \
        FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '2' SECONDS)) \
        GROUP BY k, window_start, window_end, window_time";
    let reader = "-- title: r\n-- severity: info\n\
        SELECT k, window_start, window_end, MAX(total) AS peak \
        FROM TABLE(TUMBLE(TABLE sums, DESCRIPTOR(rowtime), INTERVAL '6' SECONDS)) \
        GROUP BY k, window_start, window_end";
    let alone = format!("-- title: a\n-- severity: info\n{}", RULES[1].1);
    let sources = |alone_text: &str| {
        vec![
            RuleSource::inline("sums", view),
            RuleSource::inline("r", reader),
            RuleSource::inline("a", alone_text),
        ]
    };
    let rules = |alone_text: String| {
        let s = sources(&alone_text);
        async move { compile_all(&s, &catalog()).await.expect("rules plan") }
    };
    let config = RunnerConfig::with_out_of_orderness(2_000);
    let input = input();
    // Uninterrupted.
    let mut whole = RuleGraph::new(rules(alone.clone()).await, config);
    let expected = process_all(&mut whole, &input).await;
    assert!(
        expected.get("r").is_some_and(|v| v.len() >= 2),
        "{expected:?}"
    );

    // Saved after 15 batches, restored into a graph whose rule `a` changed.
    let mut first = RuleGraph::new(rules(alone.clone()).await, config);
    let mut got = process_all(&mut first, &input[..15]).await;
    let saved = first.snapshot().expect("snapshot");
    let changed = alone.replace("MAX(v) AS top", "MAX(v) + 0 AS top");
    let mut second = RuleGraph::new(rules(changed).await, config);
    let report = second.restore(saved).expect("restore");
    assert_eq!(report.restored, vec!["sums".to_string(), "r".to_string()]);
    assert_eq!(report.changed, vec!["a".to_string()]);
    for (rule, alerts) in process_all(&mut second, &input[15..]).await {
        got.entry(rule).or_default().extend(alerts);
    }
    assert_eq!(
        got["r"], expected["r"],
        "the view's reader continues exactly"
    );
    assert_ne!(
        got["a"], expected["a"],
        "the changed rule started empty: windows begun before the restore lack their first rows"
    );
}

/// Every alert of `graph` over `input`, then at the end, by rule.
async fn process_all(
    graph: &mut RuleGraph,
    input: &[(&'static str, RecordBatch)],
) -> BTreeMap<String, Vec<String>> {
    let mut alerts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, b) in input {
        for (rule, e) in graph.process(table, b).await.expect("process").alerts {
            alerts
                .entry(rule.meta.id.clone())
                .or_default()
                .push(text(&e));
        }
    }
    alerts
}
