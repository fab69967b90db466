//! Property tests of the window arithmetic: slices, the windows of TUMBLE, HOP and CUMULATE,
//! closing horizons and late rows, and session merging, each checked on many random cases
//! against a model written from the definitions (Flink's documentation), not from the code.
//!
//! No property-testing crate (proptest's features would rebuild DataFusion for the tests): a
//! small seeded generator instead. Every run draws new cases from a base seed printed on
//! failure with the case's own seed; to replay one case:
//!
//! ```sh
//! CITYBRAIN_PROP_SEED=0x1234abcd CITYBRAIN_PROP_CASES=1 cargo test --workspace --test window_props
//! ```
//!
//! `CITYBRAIN_PROP_CASES` sets the number of cases per property (default below).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use citybrain_rules::window::WindowKind;
use citybrain_rules::{Catalog, RuleRunner, RuleSource, RunnerConfig, compile};

/// SplitMix64: small, fast and good enough to draw test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo) as u64 + 1;
        lo + (self.next() % span) as i64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as i64 - 1) as usize]
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Runs `property` on `cases` random cases (or `CITYBRAIN_PROP_CASES`), each with its own
/// seed; a failing case panics with its seed and the command that replays it.
fn check(name: &str, cases: u64, property: impl Fn(&mut Rng)) {
    let base = env_u64("CITYBRAIN_PROP_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let cases = env_u64("CITYBRAIN_PROP_CASES").unwrap_or(cases);
    for case in 0..cases {
        let seed = base.wrapping_add(case.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            property(&mut Rng(seed));
        }));
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "property `{name}` fails for seed {seed:#x} (case {case} of base seed {base:#x}):\n\
                 {what}\nreplay it: CITYBRAIN_PROP_SEED={seed:#x} CITYBRAIN_PROP_CASES=1 \
                 cargo test --workspace --test window_props {name}"
            );
        }
    }
}

/// A TUMBLE, HOP or CUMULATE window with a random slice and size.
fn sliced_kind(rng: &mut Rng) -> WindowKind {
    let slice = *rng.pick(&[1, 7, 1_000, 60_000, 86_400_000]) * rng.range(1, 30);
    match rng.range(0, 2) {
        0 => WindowKind::Tumble { size_ms: slice },
        1 => WindowKind::Hop {
            slide_ms: slice,
            size_ms: slice * rng.range(1, 40),
        },
        _ => WindowKind::Cumulate {
            step_ms: slice,
            max_size_ms: slice * rng.range(1, 40),
        },
    }
}

fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// Every window `[start, end)` holding `ts`, by definition, ascending by end:
/// - TUMBLE: the one of `size` starting at a multiple of `size`;
/// - HOP: every window of `size` starting at a multiple of `slide` that holds `ts`;
/// - CUMULATE: from the multiple of `max_size` at or before `ts`, every window ending a whole
///   number of steps later, up to `max_size`, that holds `ts`.
fn model_windows(kind: WindowKind, ts: i64) -> Vec<(i64, i64)> {
    match kind {
        WindowKind::Tumble { size_ms } => {
            let start = floor_div(ts, size_ms) * size_ms;
            vec![(start, start + size_ms)]
        }
        WindowKind::Hop { slide_ms, size_ms } => {
            let mut out = Vec::new();
            let mut start = floor_div(ts, slide_ms) * slide_ms;
            while start + size_ms > ts {
                out.push((start, start + size_ms));
                start -= slide_ms;
            }
            out.sort_by_key(|w| w.1);
            out
        }
        WindowKind::Cumulate {
            step_ms,
            max_size_ms,
        } => {
            let start = floor_div(ts, max_size_ms) * max_size_ms;
            (1..=max_size_ms / step_ms)
                .map(|k| (start, start + k * step_ms))
                .filter(|(_, end)| *end > ts)
                .collect()
        }
        WindowKind::Session { .. } => unreachable!("sessions have no fixed windows"),
    }
}

#[test]
fn slices_and_windows_of_a_row_match_the_definitions() {
    check("slices_and_windows", 20_000, |rng| {
        let kind = sliced_kind(rng);
        let ts = rng.range(-4_000_000_000_000, 4_000_000_000_000);
        let slice_ms = kind.slice_ms().expect("sliced");
        let slice = kind.slice_start(ts);
        assert!(
            slice <= ts && ts < slice + slice_ms && slice.rem_euclid(slice_ms) == 0,
            "{kind}: ts {ts} in slice {slice}"
        );
        let ends: Vec<i64> = kind.window_ends(slice).collect();
        assert!(
            ends.windows(2).all(|w| w[0] < w[1]),
            "{kind}: ends ascend: {ends:?}"
        );
        let from_slices: Vec<(i64, i64)> =
            ends.iter().map(|e| (kind.window_start(*e), *e)).collect();
        let model = model_windows(kind, ts);
        assert_eq!(from_slices, model, "{kind}: windows of ts {ts}");
        assert_eq!(kind.last_window_end(slice), model.last().expect("one").1);
        let (start, end) = kind.assign(ts);
        assert_eq!((start, end), model[0], "{kind}: first window of {ts}");
        for (start, end) in &model {
            // A window is a run of whole slices.
            assert_eq!(start.rem_euclid(slice_ms), 0, "{kind}: [{start}, {end})");
            assert_eq!((end - start) % slice_ms, 0, "{kind}: [{start}, {end})");
            assert!(end - start <= kind.size_ms());
        }
    });
}

#[test]
fn window_arithmetic_saturates_at_the_ends_of_time() {
    for kind in [
        WindowKind::Tumble { size_ms: 60_000 },
        WindowKind::Hop {
            slide_ms: 1_000,
            size_ms: 10_000,
        },
        WindowKind::Cumulate {
            step_ms: 1_000,
            max_size_ms: 10_000,
        },
    ] {
        for ts in [i64::MAX, i64::MAX - 1, i64::MIN + 86_400_000] {
            let slice = kind.slice_start(ts);
            assert!(slice <= ts, "{kind} {ts}");
            let ends: Vec<i64> = kind.window_ends(slice).take(100).collect();
            assert!(
                !ends.is_empty() && ends.len() < 100,
                "{kind} {ts}: {ends:?}"
            );
            assert!(
                ends.windows(2).all(|w| w[0] <= w[1]),
                "{kind} {ts}: {ends:?}"
            );
            let (start, end) = kind.assign(ts);
            assert!(start <= ts && (ts < end || end == i64::MAX), "{kind} {ts}");
        }
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("k", DataType::Utf8, true),
    ]))
}

fn batch(rows: &[(i64, &str)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.0))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .expect("batch")
}

fn runner(window: &str, group: &str, bound_ms: i64) -> RuleRunner {
    let sql = format!(
        "-- title: t\n-- severity: info\n\
         SELECT {group} window_start, window_end, COUNT(*) AS n\n\
         FROM TABLE({window})\nGROUP BY {group} window_start, window_end"
    );
    let catalog = Catalog::new().with_table("t", schema(), "ts");
    let rule = futures::executor::block_on(compile(&RuleSource::inline("p", &sql), &catalog))
        .unwrap_or_else(|p| panic!("{sql}: {p:?}"));
    RuleRunner::new(
        Arc::new(rule),
        RunnerConfig::with_out_of_orderness(bound_ms),
    )
}

fn sql_interval(ms: i64) -> String {
    format!("INTERVAL '{ms}' MILLISECOND")
}

fn window_sql(kind: WindowKind) -> String {
    match kind {
        WindowKind::Tumble { size_ms } => {
            format!("TUMBLE(TABLE t, DESCRIPTOR(ts), {})", sql_interval(size_ms))
        }
        WindowKind::Hop { slide_ms, size_ms } => format!(
            "HOP(TABLE t, DESCRIPTOR(ts), {}, {})",
            sql_interval(slide_ms),
            sql_interval(size_ms)
        ),
        WindowKind::Cumulate {
            step_ms,
            max_size_ms,
        } => format!(
            "CUMULATE(TABLE t, DESCRIPTOR(ts), {}, {})",
            sql_interval(step_ms),
            sql_interval(max_size_ms)
        ),
        WindowKind::Session { gap_ms } => format!(
            "SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), {})",
            sql_interval(gap_ms)
        ),
    }
}

/// `(key, start, end) → count` of every row of `emissions`, checking each window (and key)
/// comes once.
fn counts(
    emissions: &[citybrain_rules::Emission],
    keyed: bool,
    into: &mut BTreeMap<(String, i64, i64), i64>,
) {
    for e in emissions {
        for b in &e.batches {
            let offset = usize::from(keyed);
            let ts = |c: usize| {
                b.column(c)
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .expect("window column")
                    .clone()
            };
            let (starts, ends) = (ts(offset), ts(offset + 1));
            let n = b
                .column(offset + 2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("count");
            for i in 0..b.num_rows() {
                let key = if keyed {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .expect("key")
                        .value(i)
                        .to_string()
                } else {
                    String::new()
                };
                let window = (key, starts.value(i), ends.value(i));
                assert!(
                    into.insert(window.clone(), n.value(i)).is_none(),
                    "window {window:?} emitted twice"
                );
            }
        }
    }
}

/// Random event times, out of order by up to `disorder`, in `split` batches at random cuts.
fn stream(rng: &mut Rng, len: usize, step: i64, disorder: i64) -> Vec<i64> {
    let mut t = rng.range(-1_000_000, 1_000_000);
    (0..len)
        .map(|_| {
            t += rng.range(0, step);
            t - rng.range(0, disorder)
        })
        .collect()
}

fn cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..rng.range(0, 6))
        .map(|_| rng.range(0, len as i64) as usize)
        .collect();
    cuts.push(0);
    cuts.push(len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn windows_close_at_their_last_millisecond_and_rows_count_where_still_open() {
    check("closing_horizons", 300, |rng| {
        let slice = rng.range(1, 40);
        let kind = match rng.range(0, 2) {
            0 => WindowKind::Tumble { size_ms: slice },
            1 => WindowKind::Hop {
                slide_ms: slice,
                size_ms: slice * rng.range(1, 6),
            },
            _ => WindowKind::Cumulate {
                step_ms: slice,
                max_size_ms: slice * rng.range(1, 6),
            },
        };
        let bound = rng.range(0, 30);
        let len = rng.range(1, 60) as usize;
        let ts = stream(rng, len, 8, 40);
        // The model, row by row: the watermark before row i is the largest earlier event
        // time minus the bound; a window has closed once the watermark reached its last
        // millisecond (end - 1). A row counts in each of its windows still open, and is late
        // when none is.
        let mut counted: Vec<Vec<(i64, i64)>> = Vec::with_capacity(len);
        let mut max: Option<i64> = None;
        for t in &ts {
            let wm = max.map(|m| m - bound);
            counted.push(
                model_windows(kind, *t)
                    .into_iter()
                    .filter(|(_, end)| wm.is_none_or(|w| end - 1 > w))
                    .collect(),
            );
            max = Some(max.map_or(*t, |m| m.max(*t)));
        }
        let late_model: Vec<usize> = (0..len).filter(|i| counted[*i].is_empty()).collect();
        let mut model: BTreeMap<(String, i64, i64), i64> = BTreeMap::new();
        for (s, e) in counted.iter().flatten() {
            *model.entry((String::new(), *s, *e)).or_default() += 1;
        }
        let mut r = runner(&window_sql(kind), "", bound);
        let mut got = BTreeMap::new();
        let mut late = Vec::new();
        let cuts = cuts(rng, len);
        for pair in cuts.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            let rows: Vec<(i64, &str)> = ts[from..to].iter().map(|t| (*t, "k")).collect();
            let step = futures::executor::block_on(r.process(0, &batch(&rows))).expect("runs");
            late.extend(step.late_rows.iter().map(|i| from + *i as usize));
            let wm = ts[..to].iter().max().map(|m| m - bound);
            for e in &step.emissions {
                let w = e.window.expect("windowed");
                // Emitted only once the watermark reached the window's last millisecond...
                assert!(
                    wm.is_some_and(|wm| w.end - 1 <= wm),
                    "{kind} bound {bound}: [{}, {}) emitted at watermark {wm:?}",
                    w.start,
                    w.end
                );
            }
            counts(&step.emissions, false, &mut got);
            // ...and by then every window holding rows whose last millisecond it reached.
            for (s, e) in counted[..to].iter().flatten() {
                if wm.is_some_and(|wm| e - 1 <= wm) {
                    let key = (String::new(), *s, *e);
                    assert_eq!(
                        got.get(&key),
                        model.get(&key),
                        "{kind} bound {bound}: [{s}, {e}) due at watermark {wm:?} of {ts:?}"
                    );
                }
            }
        }
        let rest = futures::executor::block_on(r.finish()).expect("finish");
        counts(&rest, false, &mut got);
        assert_eq!(
            late, late_model,
            "{kind} bound {bound}: late rows of {ts:?}"
        );
        assert_eq!(
            got, model,
            "{kind} bound {bound}, cuts {cuts:?}: counts per window of {ts:?}"
        );
    });
}

#[test]
fn sessions_merge_rows_closer_than_the_gap_whatever_their_order() {
    check("session_merging", 300, |rng| {
        let gap = rng.range(1, 30);
        let len = rng.range(1, 50) as usize;
        let keys = ["a", "b", "c"];
        let rows: Vec<(i64, &str)> = (0..len)
            .map(|_| (rng.range(0, 400), *rng.pick(&keys)))
            .collect();
        // The model: per key, sorted event times; a row at most `gap` after the previous one
        // joins its session (windows [t, t + gap) that touch merge, as in Flink); a session is
        // [first, last + gap).
        let mut model: BTreeMap<(String, i64, i64), i64> = BTreeMap::new();
        for key in keys {
            let mut times: Vec<i64> = rows.iter().filter(|r| r.1 == key).map(|r| r.0).collect();
            times.sort_unstable();
            let mut session: Option<(i64, i64, i64)> = None;
            for t in times {
                session = match session {
                    Some((first, last, n)) if t <= last + gap => Some((first, t, n + 1)),
                    Some((first, last, n)) => {
                        model.insert((key.to_string(), first, last + gap), n);
                        Some((t, t, 1))
                    }
                    None => Some((t, t, 1)),
                };
            }
            if let Some((first, last, n)) = session {
                model.insert((key.to_string(), first, last + gap), n);
            }
        }
        // Every row arrives before any session can close (the bound covers all event times),
        // in a random order and random batches: merging must not depend on either.
        let mut shuffled = rows.clone();
        for i in (1..shuffled.len()).rev() {
            let j = rng.range(0, i as i64) as usize;
            shuffled.swap(i, j);
        }
        let mut r = runner(
            &window_sql(WindowKind::Session { gap_ms: gap }),
            "k,",
            1_000,
        );
        let mut got = BTreeMap::new();
        for pair in cuts(rng, len).windows(2) {
            let step =
                futures::executor::block_on(r.process(0, &batch(&shuffled[pair[0]..pair[1]])))
                    .expect("runs");
            assert!(step.late_rows.is_empty());
            counts(&step.emissions, true, &mut got);
        }
        let rest = futures::executor::block_on(r.finish()).expect("finish");
        counts(&rest, true, &mut got);
        assert_eq!(got, model, "gap {gap}: sessions of {shuffled:?}");
    });
}
