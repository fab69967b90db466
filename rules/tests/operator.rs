//! Streaming semantics of a rule runner on a small table: when windows are emitted, what is
//! late, and that the plan is reused across windows.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use citybrain_rules::{RuleRunner, RuleSource, RunnerConfig, Shape, compile};

#[path = "common/table.rs"]
mod table;
use table::{batch, catalog};

const SUM_PER_10S: &str = "-- title: t\n-- severity: info\n\
    SELECT k, window_start, SUM(v) AS total\n\
    FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECONDS))\n\
    GROUP BY k, window_start, window_end";

async fn runner(sql: &str, bound_ms: i64) -> RuleRunner {
    let rule = compile(&RuleSource::inline("r", sql), &catalog())
        .await
        .unwrap_or_else(|p| panic!("{p:?}"));
    RuleRunner::new(
        Arc::new(rule),
        RunnerConfig::with_out_of_orderness(bound_ms),
    )
}

fn totals(e: &citybrain_rules::Emission) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for b in &e.batches {
        let k = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let t = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            out.push((k.value(i).to_string(), t.value(i)));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_window_is_emitted_only_when_the_watermark_reaches_its_last_millisecond() {
    let mut r = runner(SUM_PER_10S, 2_000).await;
    assert_eq!(r.rule().shape, Shape::Windowed);
    // Max ts 11.998 s: watermark 9.998 s, before the window's last millisecond: nothing yet.
    let step = r
        .process(
            0,
            &batch(&[(1_000, "a", 1), (9_999, "b", 2), (11_998, "a", 4)]),
        )
        .await
        .unwrap();
    assert!(
        step.emissions.is_empty(),
        "window [0,10s) must wait for the watermark"
    );
    assert_eq!(r.open_windows(), 2);
    // Max ts 11.999 s: watermark 9.999 s reaches the last millisecond of [0, 10 s) (its
    // window_time), which closes it, as in Flink.
    let step = r.process(0, &batch(&[(11_999, "a", 8)])).await.unwrap();
    assert_eq!(step.emissions.len(), 1);
    let w = step.emissions[0].window.expect("windowed");
    assert_eq!((w.start, w.end), (0, 10_000));
    assert_eq!(
        totals(&step.emissions[0]),
        vec![("a".into(), 1), ("b".into(), 2)]
    );
    // The same plan runs again for the next window, at the end of input.
    let rest = r.finish().await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(totals(&rest[0]), vec![("a".into(), 12)]);
    assert_eq!(r.open_windows(), 0);
}

#[tokio::test]
async fn rows_behind_the_watermark_of_an_emitted_window_are_late_and_not_merged() {
    let mut r = runner(SUM_PER_10S, 0).await;
    let step = r
        .process(
            0,
            &batch(&[
                (5_000, "a", 1),
                (10_000, "a", 2),  // watermark 10 s: [0, 10 s) emitted
                (9_000, "a", 100), // late for the emitted window
                (10_500, "a", 4),  // on time
            ]),
        )
        .await
        .unwrap();
    assert_eq!(step.late_rows, vec![2]);
    assert_eq!(r.late_count(), 1);
    assert_eq!(totals(&step.emissions[0]), vec![("a".into(), 1)]);
    let rest = r.finish().await.unwrap();
    assert_eq!(totals(&rest[0]), vec![("a".into(), 6)]);
}

#[tokio::test]
async fn lateness_does_not_depend_on_batch_boundaries() {
    let rows = [
        (1_000, "a", 1),
        (14_000, "b", 1),
        (3_000, "a", 1), // late with a 2 s bound, wherever the batch is cut
        (12_500, "a", 1),
        (25_000, "a", 1),
    ];
    let mut late = Vec::new();
    for cut in 0..=rows.len() {
        let mut r = runner(SUM_PER_10S, 2_000).await;
        let mut n = 0;
        for part in [&rows[..cut], &rows[cut..]] {
            if !part.is_empty() {
                n += r.process(0, &batch(part)).await.unwrap().late_rows.len();
            }
        }
        late.push(n);
    }
    assert_eq!(late, vec![1; rows.len() + 1]);
}

#[tokio::test]
async fn per_event_rules_emit_at_once_and_never_see_late_data() {
    let sql = "-- title: t\n-- severity: info\nSELECT k, v FROM t WHERE v > 1";
    let mut r = runner(sql, 0).await;
    assert_eq!(r.rule().shape, Shape::PerEvent);
    r.process(0, &batch(&[(100_000, "a", 5)])).await.unwrap();
    let step = r
        .process(0, &batch(&[(1_000, "x", 1), (2_000, "y", 3)]))
        .await
        .unwrap();
    assert!(step.late_rows.is_empty());
    let b = &step.emissions[0].batches[0];
    assert_eq!(b.num_rows(), 1);
    let k = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(k.value(0), "y");
    assert!(step.emissions[0].window.is_none());
}

#[tokio::test]
async fn aggregations_need_a_window_grouped_by_its_bounds() {
    let no_window = "-- title: t\n-- severity: info\nSELECT k, COUNT(*) FROM t GROUP BY k";
    let p = compile(&RuleSource::inline("r", no_window), &catalog())
        .await
        .expect_err("endless aggregation");
    assert!(p[0].message.contains("needs a window"), "{p:?}");
    let partial = "-- title: t\n-- severity: info\n\nSELECT k, COUNT(*)\n\
        FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE))\nGROUP BY k, window_start";
    let p = compile(&RuleSource::inline("r", partial), &catalog())
        .await
        .expect_err("window_end missing");
    assert_eq!(p[0].line, 4, "{p:?}");
    assert!(
        p[0].message.contains("GROUP BY window_start, window_end"),
        "{p:?}"
    );
}

const SUM_PER_10S_LATE_10S: &str = "-- title: t\n-- severity: info\n\
    -- allowed_lateness: 10 seconds\n\
    SELECT k, window_start, SUM(v) AS total\n\
    FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECONDS))\n\
    GROUP BY k, window_start, window_end";

#[tokio::test]
async fn a_late_row_within_the_allowed_lateness_reemits_its_window_with_the_next_revision() {
    let mut r = runner(SUM_PER_10S_LATE_10S, 0).await;
    let step = r
        .process(0, &batch(&[(5_000, "a", 1), (12_000, "b", 1)]))
        .await
        .unwrap();
    assert_eq!(step.emissions.len(), 1);
    assert_eq!(step.emissions[0].revision, 1);
    assert_eq!(totals(&step.emissions[0]), vec![("a".into(), 1)]);
    // Late for [0, 10 s) but within 10 s of its end: the window is updated and re-emitted.
    let step = r.process(0, &batch(&[(8_000, "a", 5)])).await.unwrap();
    assert!(step.late_rows.is_empty());
    assert_eq!(step.emissions.len(), 1);
    assert_eq!(step.emissions[0].revision, 2);
    assert_eq!(totals(&step.emissions[0]), vec![("a".into(), 6)]);
    // A new group in the re-run window is its first revision; unchanged groups are not repeated.
    let step = r.process(0, &batch(&[(9_000, "c", 2)])).await.unwrap();
    assert_eq!(step.emissions.len(), 1);
    assert_eq!(step.emissions[0].revision, 1);
    assert_eq!(totals(&step.emissions[0]), vec![("c".into(), 2)]);
    // Beyond the allowed lateness (watermark 25 s > 10 s + 10 s): late, nothing re-emitted.
    r.process(0, &batch(&[(25_000, "b", 1)])).await.unwrap();
    let step = r.process(0, &batch(&[(9_500, "a", 7)])).await.unwrap();
    assert_eq!(step.late_rows, vec![0]);
    assert!(
        step.emissions
            .iter()
            .all(|e| e.window.unwrap().end != 10_000)
    );
}

const HOP_SUM: &str = "-- title: t\n-- severity: info\n\
    SELECT k, window_end, SUM(v) AS total, window_start, MAX(v) AS biggest, COUNT(*) AS n\n\
    FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECONDS, INTERVAL '30' SECONDS))\n\
    GROUP BY k, window_start, window_end";

#[tokio::test]
async fn a_hopping_aggregation_runs_per_slice_and_gives_every_overlapping_window() {
    let mut r = runner(HOP_SUM, 0).await;
    assert!(r.rule().is_sliced(), "partial aggregates per slice");
    let mut emitted = Vec::new();
    for rows in [
        &[(1_000, "a", 1), (12_000, "a", 2)][..],
        &[(25_000, "a", 4), (31_000, "a", 8)][..],
    ] {
        emitted.extend(r.process(0, &batch(rows)).await.unwrap().emissions);
    }
    emitted.extend(r.finish().await.unwrap());
    let by_window: Vec<(i64, i64, i64)> = emitted
        .iter()
        .map(|e| {
            let w = e.window.unwrap();
            (w.start, w.end, totals(e)[0].1)
        })
        .collect();
    assert_eq!(
        by_window,
        vec![
            (-20_000, 10_000, 1),
            (-10_000, 20_000, 3),
            (0, 30_000, 7),
            (10_000, 40_000, 14),
            (20_000, 50_000, 12),
            (30_000, 60_000, 8),
        ]
    );
    // State is per slice: after the input ends nothing is held.
    assert_eq!(r.oldest_needed_ts(), None);
}

/// One batch that closes many windows (a sparse feed catching up) gives each window exactly
/// what it gets when its windows close one batch at a time.
#[tokio::test]
async fn windows_closed_together_give_what_they_give_one_at_a_time() {
    let rows: Vec<(i64, &str, i64)> = (0..40)
        .map(|i| (i * 3_700, if i % 3 == 0 { "a" } else { "b" }, i))
        .collect();
    let closing = [(1_000_000, "a", 0)];
    let collect = |emissions: Vec<citybrain_rules::Emission>| {
        let mut out: Vec<(i64, Vec<(String, i64)>)> = emissions
            .iter()
            .map(|e| (e.window.unwrap().end, totals(e)))
            .collect();
        out.sort();
        out
    };
    let mut together = runner(SUM_PER_10S, 0).await;
    assert!(together.rule().closes_windows_together());
    // The first batch closes the windows its own rows pass, all in one go; the second the last.
    let mut emitted = together.process(0, &batch(&rows)).await.unwrap().emissions;
    assert!(emitted.len() > 1, "one batch closed several windows");
    emitted.extend(
        together
            .process(0, &batch(&closing))
            .await
            .unwrap()
            .emissions,
    );
    let all_at_once = collect(emitted);

    let mut apart = runner(SUM_PER_10S, 0).await;
    let mut one_by_one = Vec::new();
    for row in rows.iter().chain(&closing) {
        one_by_one.extend(apart.process(0, &batch(&[*row])).await.unwrap().emissions);
    }
    let one_by_one = collect(one_by_one);
    assert_eq!(all_at_once.len(), 15, "every window of the first 148 s");
    assert_eq!(all_at_once, one_by_one);
}

#[tokio::test]
async fn a_window_join_holds_only_the_rows_its_filters_let_through() {
    let sql = "-- title: t\n-- severity: info\n\
        SELECT L.window_start, L.k, L.v, R.ts AS replied_at\n\
        FROM (SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECONDS))\n\
              WHERE k = 'alarm') L\n\
        JOIN (SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECONDS))\n\
              WHERE k = 'reply') R\n\
        ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.v = R.v";
    let mut r = runner(sql, 0).await;
    // A thousand readings in [0, 10 s), among them two alarms and the reply to one of them.
    let mut rows: Vec<(i64, &str, i64)> = (0..1_000).map(|i| (i * 9, "reading", i)).collect();
    rows[100] = (900, "alarm", 7);
    rows[500] = (4_500, "alarm", 8);
    rows[900] = (8_100, "reply", 7);
    let step = r.process(0, &batch(&rows)).await.unwrap();
    assert!(step.emissions.is_empty());
    assert_eq!(
        r.held_rows(),
        3,
        "each side holds only the rows its filter lets through"
    );
    let step = r
        .process(0, &batch(&[(10_000, "reading", 0)]))
        .await
        .unwrap();
    assert_eq!(step.emissions.len(), 1);
    let out = &step.emissions[0].batches;
    assert_eq!(out.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
    let v = out[0]
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let replied = out[0]
        .column(3)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!((v.value(0), replied.value(0)), (7, 8_100));
    assert_eq!(
        r.held_rows(),
        0,
        "nothing of the emitted window is held, and the next window's reading is filtered"
    );
}
