//! Run-time isolation of rules in a [`RuleGraph`]: a rule that fails while running (an integer
//! division by zero, a regular expression too large to compile, one of its state limits
//! exceeded) is stopped alone and reported; every other rule goes on with the same alerts it
//! gives without the failing rule; the readers of a failing view stop with it; and a rule whose
//! text changes on a reload runs again.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use citybrain_rules::{RuleGraph, RuleSource, RunnerConfig, compile_all};

#[path = "common/table.rs"]
mod table;
use table::{batch, catalog};

/// Ten batches of ten rows, one second apart; the fourth batch holds a row with `v = 0`.
fn input() -> Vec<RecordBatch> {
    (0..10)
        .map(|b| {
            let rows: Vec<(i64, &str, i64)> = (0..10)
                .map(|i| {
                    let n = b * 10 + i;
                    let v = if n == 35 { 0 } else { n + 1 };
                    (n * 1_000, if n % 2 == 0 { "a" } else { "b" }, v)
                })
                .collect();
            batch(&rows)
        })
        .collect()
}

const GOOD: (&str, &str) = (
    "good",
    "SELECT k, window_start, window_end, SUM(v) AS total \
     FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECONDS)) \
     GROUP BY k, window_start, window_end",
);
const EVENTS: (&str, &str) = ("events", "SELECT k, v FROM t WHERE v % 10 = 0");
const DIVIDES: (&str, &str) = ("divides", "SELECT k, 100 / v AS share FROM t");
const REGEX: (&str, &str) = (
    "regex",
    "SELECT k, v FROM t WHERE v > 30 AND regexp_like(k, '((a{100}){100}){100}')",
);

fn sources(rules: &[(&str, &str)]) -> Vec<RuleSource> {
    rules
        .iter()
        .map(|(id, sql)| {
            let text = if sql.starts_with("--") {
                (*sql).to_string()
            } else {
                format!("-- title: {id}\n-- severity: info\n{sql}")
            };
            RuleSource::inline(id, &text)
        })
        .collect()
}

async fn graph(rules: &[(&str, &str)]) -> RuleGraph {
    let compiled = compile_all(&sources(rules), &catalog())
        .await
        .unwrap_or_else(|p| panic!("rules plan: {p:?}"));
    RuleGraph::new(compiled, RunnerConfig::with_out_of_orderness(0))
}

/// What running `input` through `graph` gave: alert rows by rule, and the failures by rule
/// with the batch (index) they happened at (`usize::MAX`: at the end).
#[derive(Default)]
struct Run {
    alerts: BTreeMap<String, usize>,
    failed: BTreeMap<String, (usize, String, Option<String>)>,
}

async fn run(graph: &mut RuleGraph, input: &[RecordBatch], run: &mut Run, first: usize) {
    for (i, b) in input.iter().enumerate() {
        let step = graph.process("t", b).await.expect("the graph goes on");
        take(step, first + i, run);
    }
}

fn take(step: citybrain_rules::GraphStep, at: usize, run: &mut Run) {
    for (rule, e) in step.alerts {
        *run.alerts.entry(rule.meta.id.clone()).or_default() +=
            e.batches.iter().map(RecordBatch::num_rows).sum::<usize>();
    }
    for f in step.failed {
        let old = run
            .failed
            .insert(f.rule.meta.id.clone(), (at, f.reason, f.view));
        assert!(old.is_none(), "{} reported once", f.rule.meta.id);
    }
}

async fn whole(rules: &[(&str, &str)]) -> Run {
    let mut g = graph(rules).await;
    let mut r = Run::default();
    run(&mut g, &input(), &mut r, 0).await;
    take(g.finish().await.expect("finish"), usize::MAX, &mut r);
    r
}

#[tokio::test]
async fn a_rule_failing_at_run_time_stops_alone_and_the_others_give_what_they_give_without_it() {
    let alone = whole(&[GOOD, EVENTS]).await;
    assert!(alone.failed.is_empty());
    let with = whole(&[DIVIDES, GOOD, REGEX, EVENTS]).await;

    let (at, reason, view) = &with.failed["divides"];
    assert_eq!(*at, 3, "stopped at the batch with the zero");
    assert!(reason.to_lowercase().contains("divide by zero"), "{reason}");
    assert_eq!(*view, None);
    let (at, reason, _) = &with.failed["regex"];
    assert_eq!(*at, 3, "stopped at the first batch with v > 30");
    assert!(
        reason.contains("regex") || reason.contains("size limit"),
        "{reason}"
    );

    assert_eq!(with.alerts.get("good"), alone.alerts.get("good"));
    assert_eq!(with.alerts.get("events"), alone.alerts.get("events"));
    assert_eq!(alone.alerts["good"], 20, "2 keys in 10 windows");
    assert_eq!(
        with.alerts.get("divides"),
        Some(&30),
        "its alerts of the batches before the failing one stand"
    );
    assert_eq!(with.alerts.get("regex"), None);
}

#[tokio::test]
async fn a_failing_view_stops_its_readers_and_only_them() {
    let view = (
        "ratios",
        "-- title: ratios\n-- severity: info\n-- emit: view\n\
         SELECT ts, k, 1000 / v AS r FROM t",
    );
    let reader = (
        "reader",
        "SELECT k, window_start, window_end, SUM(r) AS total \
         FROM TABLE(TUMBLE(TABLE ratios, DESCRIPTOR(ts), INTERVAL '10' SECONDS)) \
         GROUP BY k, window_start, window_end",
    );
    let run = whole(&[view, reader, GOOD]).await;
    assert_eq!(run.failed["ratios"].0, 3);
    let (at, reason, view) = &run.failed["reader"];
    assert_eq!(*at, 3, "stopped with its view");
    assert_eq!(view.as_deref(), Some("ratios"));
    assert!(
        reason.contains("view ratios") && reason.to_lowercase().contains("divide by zero"),
        "{reason}"
    );
    assert_eq!(
        run.alerts["good"], 20,
        "the rule not reading the view goes on"
    );
}

#[tokio::test]
async fn a_stopped_rule_stays_stopped_until_its_file_changes() {
    let mut g = graph(&[DIVIDES, EVENTS]).await;
    let input = input();
    let mut r = Run::default();
    run(&mut g, &input[..5], &mut r, 0).await;
    assert_eq!(r.failed["divides"].0, 3);
    assert_eq!(
        g.stopped()
            .iter()
            .map(|(r, _)| r.meta.id.as_str())
            .collect::<Vec<_>>(),
        ["divides"]
    );

    // Reloading the same text keeps it stopped (it would fail again on the next zero).
    let same = compile_all(&sources(&[DIVIDES, EVENTS]), &catalog())
        .await
        .expect("plan");
    let report = g.reload(same);
    assert_eq!(report.kept, 2);
    assert_eq!(g.stopped().len(), 1);
    let before = r.alerts["divides"];
    run(&mut g, &input[5..6], &mut r, 5).await;
    assert_eq!(r.alerts["divides"], before, "a stopped rule gives nothing");

    // The fixed rule runs again, from the next batch.
    let fixed = ("divides", "SELECT k, 100 / NULLIF(v, 0) AS share FROM t");
    let report = g.reload(
        compile_all(&sources(&[fixed, EVENTS]), &catalog())
            .await
            .expect("plan"),
    );
    assert_eq!(report.changed, vec!["divides".to_string()]);
    assert!(g.stopped().is_empty());
    run(&mut g, &input[6..], &mut r, 6).await;
    assert_eq!(
        r.alerts["divides"],
        before + 40,
        "every row of the last 4 batches"
    );
}

#[tokio::test]
async fn a_rule_over_its_state_limit_stops_with_the_header_that_raises_it() {
    let tight = (
        "tight",
        "-- title: tight\n-- severity: info\n-- max_state_rows: 25\n\
         SELECT k, v, window_start, window_end, COUNT(*) AS n \
         FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
         GROUP BY k, v, window_start, window_end",
    );
    let roomy_text = tight
        .1
        .replace("max_state_rows: 25", "max_state_rows: 1000");
    let roomy = ("roomy", roomy_text.as_str());
    let run = whole(&[tight, roomy, GOOD]).await;
    let (at, reason, _) = &run.failed["tight"];
    assert_eq!(*at, 2, "over 25 groups in the third batch");
    assert!(
        reason.contains("over its limit of 25") && reason.contains("-- max_state_rows: 25"),
        "{reason}"
    );
    assert!(!run.failed.contains_key("roomy"), "{:?}", run.failed.keys());
    assert_eq!(run.alerts["roomy"], 100, "one group per row");
    assert_eq!(run.alerts["good"], 20);
}

#[tokio::test]
async fn a_window_giving_too_many_rows_stops_the_rule() {
    // A key of two values: a self join per window and key gives 5 x 5 rows per key.
    let cross = (
        "cross",
        "-- title: cross\n-- severity: info\n-- max_rows_per_window: 40\n\
         SELECT a.k, b.v FROM \
         (SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECONDS))) a \
         JOIN (SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECONDS))) b \
         ON a.window_start = b.window_start AND a.window_end = b.window_end AND a.k = b.k",
    );
    let run = whole(&[cross, GOOD]).await;
    let (_, reason, _) = &run.failed["cross"];
    assert!(
        reason.contains("more than 40 result rows") && reason.contains("max_rows_per_window"),
        "{reason}"
    );
    assert_eq!(
        run.alerts.get("cross"),
        None,
        "50 rows per window (5 by 5 of each key), none emitted"
    );
    assert_eq!(run.alerts["good"], 20);
}
