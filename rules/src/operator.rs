//! Running a compiled rule over a stream: event time, watermarks, windows and late data.
//!
//! ```text
//!  input batch ──▶ RuleRunner::process
//!                    │ per row: window = assign(ts); late if window_end <= watermark
//!                    ├─ late rows ──────────────────────────────▶ Step::late_rows
//!                    ├─ PerEvent: run the plan now ─────────────▶ Step::emissions
//!                    └─ WindowAggregate: hold rows per window;
//!                       when the watermark passes a window's end,
//!                       run the plan over that window's rows ──▶ Step::emissions
//! ```
//!
//! The watermark of the rule's input is the largest event time seen minus the bounded
//! out-of-orderness. It is advanced row by row, so which events count as late does not depend
//! on how the input happens to be cut into batches. A tumbling window holds each row once.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, TimestampMillisecondArray};
use arrow::compute::filter_record_batch;

use crate::Result;
use crate::compile::{CompiledRule, Shape};

/// Bounded out-of-orderness used when none is configured: 5 seconds, enough for feeds whose
/// devices batch uploads every few seconds without holding alerts back noticeably.
pub const DEFAULT_OUT_OF_ORDERNESS_MS: i64 = 5_000;

/// A window's `[start, end)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

/// Results of one plan execution.
#[derive(Debug)]
pub struct Emission {
    /// The window these rows close, for window aggregations.
    pub window: Option<Window>,
    /// Result rows with the rule's [`CompiledRule::output_schema`]; never empty.
    pub batches: Vec<RecordBatch>,
}

/// What one input batch produced.
#[derive(Debug, Default)]
pub struct Step {
    /// Results ready to become alerts, in window order.
    pub emissions: Vec<Emission>,
    /// Indexes (into the input batch) of rows whose window had already been emitted.
    pub late_rows: Vec<u32>,
}

struct OpenWindow {
    start: i64,
    batches: Vec<RecordBatch>,
}

/// Runs one [`CompiledRule`] over its input feed.
pub struct RuleRunner {
    rule: Arc<CompiledRule>,
    out_of_orderness_ms: i64,
    max_ts: Option<i64>,
    open: BTreeMap<i64, OpenWindow>,
    late: u64,
}

impl std::fmt::Debug for RuleRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleRunner")
            .field("rule", &self.rule.meta.id)
            .field("watermark", &self.watermark())
            .field("open_windows", &self.open.len())
            .finish()
    }
}

impl RuleRunner {
    /// A runner with no state yet.
    pub fn new(rule: Arc<CompiledRule>, out_of_orderness_ms: i64) -> Self {
        Self {
            rule,
            out_of_orderness_ms: out_of_orderness_ms.max(0),
            max_ts: None,
            open: BTreeMap::new(),
            late: 0,
        }
    }

    /// The rule this runner runs.
    pub fn rule(&self) -> &Arc<CompiledRule> {
        &self.rule
    }

    /// The current watermark, once an event has been seen.
    pub fn watermark(&self) -> Option<i64> {
        self.max_ts
            .map(|m| m.saturating_sub(self.out_of_orderness_ms))
    }

    /// Windows holding rows, not yet emitted.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Late rows seen so far.
    pub fn late_count(&self) -> u64 {
        self.late
    }

    /// The smallest event time (epoch ms) of any row the runner still holds in an open window;
    /// `None` when it holds nothing. Rows older than this are no longer needed: every effect
    /// they can have has been emitted, so their input positions may be committed.
    pub fn oldest_needed_ts(&self) -> Option<i64> {
        // Tumbling windows do not overlap, so the oldest row sits in the first open window.
        let (_, first) = self.open.first_key_value()?;
        first
            .batches
            .iter()
            .filter_map(|b| {
                b.column(self.rule.time_index)
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .and_then(arrow::compute::min)
            })
            .min()
            .or(Some(first.start))
    }

    /// Takes one batch of the input feed (schema of the feed table).
    ///
    /// # Errors
    /// When the plan fails to execute (an engine fault).
    pub async fn process(&mut self, batch: &RecordBatch) -> Result<Step> {
        let ts = batch
            .column(self.rule.time_index)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("the catalog's time column is a millisecond timestamp")
            .clone();
        let Some(window) = self.rule.window.as_ref().map(|w| w.kind) else {
            // A per-event rule over the plain feed.
            self.observe(&ts);
            let out = self.rule.execute(vec![batch.clone()]).await?;
            return Ok(Step {
                emissions: emission(None, out).into_iter().collect(),
                late_rows: Vec::new(),
            });
        };
        let n = batch.num_rows();
        let mut starts = Vec::with_capacity(n);
        let mut late_rows = Vec::new();
        let aggregate = self.rule.shape == Shape::WindowAggregate;
        for (i, t) in ts.values().iter().enumerate() {
            let (start, end) = window.assign(*t);
            if aggregate && self.watermark().is_some_and(|wm| end <= wm) {
                late_rows.push(i as u32);
            } else {
                starts.push(start);
            }
            self.max_ts = Some(self.max_ts.map_or(*t, |m| m.max(*t)));
        }
        self.late += late_rows.len() as u64;
        let kept = if late_rows.is_empty() {
            batch.clone()
        } else {
            let mut keep = vec![true; n];
            for &i in &late_rows {
                keep[i as usize] = false;
            }
            filter_record_batch(batch, &BooleanArray::from(keep)).map_err(|e| self.fault(e))?
        };
        let windowed = self.with_window_columns(&kept, &starts)?;
        let mut emissions = Vec::new();
        if aggregate {
            self.hold(windowed, &starts)?;
            if let Some(wm) = self.watermark() {
                emissions = self.emit_until(wm).await?;
            }
        } else if windowed.num_rows() > 0 {
            let out = self.rule.execute(vec![windowed]).await?;
            emissions.extend(emission(None, out));
        }
        Ok(Step {
            emissions,
            late_rows,
        })
    }

    /// End of a finite input: emits every open window.
    ///
    /// # Errors
    /// When the plan fails to execute (an engine fault).
    pub async fn finish(&mut self) -> Result<Vec<Emission>> {
        self.emit_until(i64::MAX).await
    }

    fn fault(&self, e: arrow::error::ArrowError) -> crate::Error {
        crate::Error::Execute {
            rule: self.rule.meta.id.clone(),
            source: e.into(),
        }
    }

    fn observe(&mut self, ts: &TimestampMillisecondArray) {
        if let Some(m) = arrow::compute::max(ts) {
            self.max_ts = Some(self.max_ts.map_or(m, |x| x.max(m)));
        }
    }

    fn with_window_columns(&self, batch: &RecordBatch, starts: &[i64]) -> Result<RecordBatch> {
        let size = self
            .rule
            .window
            .as_ref()
            .map(|w| w.kind.size_ms())
            .expect("only windowed rules get window columns");
        let col = |f: &dyn Fn(i64) -> i64| -> ArrayRef {
            Arc::new(
                TimestampMillisecondArray::from_iter_values(starts.iter().map(|s| f(*s)))
                    .with_timezone("UTC"),
            )
        };
        let mut columns = batch.columns().to_vec();
        columns.push(col(&|s| s));
        columns.push(col(&|s| s.saturating_add(size)));
        columns.push(col(&|s| s.saturating_add(size - 1)));
        RecordBatch::try_new(Arc::clone(&self.rule.slot_schema), columns).map_err(|e| self.fault(e))
    }

    /// Files each row of `batch` under its window.
    fn hold(&mut self, batch: RecordBatch, starts: &[i64]) -> Result<()> {
        let size = self.rule.window.as_ref().map_or(1, |w| w.kind.size_ms());
        let Some(&first) = starts.first() else {
            return Ok(());
        };
        if starts.iter().all(|s| *s == first) {
            self.open_window(first, size).batches.push(batch);
            return Ok(());
        }
        let mut distinct = starts.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        for start in distinct {
            let mask: BooleanArray = starts.iter().map(|s| Some(*s == start)).collect();
            let part = filter_record_batch(&batch, &mask).map_err(|e| self.fault(e))?;
            self.open_window(start, size).batches.push(part);
        }
        Ok(())
    }

    fn open_window(&mut self, start: i64, size: i64) -> &mut OpenWindow {
        self.open
            .entry(start.saturating_add(size))
            .or_insert_with(|| OpenWindow {
                start,
                batches: Vec::new(),
            })
    }

    async fn emit_until(&mut self, watermark: i64) -> Result<Vec<Emission>> {
        let mut out = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() > watermark {
                break;
            }
            let (end, w) = entry.remove_entry();
            let window = Window {
                start: w.start,
                end,
            };
            let batches = self.rule.execute(w.batches).await?;
            out.extend(emission(Some(window), batches));
        }
        Ok(out)
    }
}

fn emission(window: Option<Window>, batches: Vec<RecordBatch>) -> Option<Emission> {
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    (!batches.is_empty()).then_some(Emission { window, batches })
}
