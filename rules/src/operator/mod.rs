//! Running a compiled rule over streams: event time, watermarks, windows and late data.
//!
//! ```text
//!  batch of input i ──▶ RuleRunner::process(i, batch)
//!                         │ per row: the rule's watermark before the row; late rows out
//!                         ├─ late rows ───────────────────────────────────────▶ Step::late_rows
//!                         └─ Box<dyn WindowState>: absorb the rows, then advance to the
//!                            rule's watermark ─────────────────────────────────▶ Step::emissions
//!                              PerEvent        run the plan now
//!                              Slices          TUMBLE/HOP/CUMULATE, partials per slice
//!                              Revised<Slices> the same with allowed lateness (revisions)
//!                              Sessions        SESSION
//!                              IntervalJoin    joined at once, rows kept for the interval
//! ```
//!
//! Every kind of window state sits behind one trait, [`state::WindowState`] (absorb,
//! advance, snapshot, restore): the runner owns event time and never asks which kind it
//! holds. [`RuleRunner::snapshot`] and [`RuleRunner::restore`] save and load a runner (its
//! clocks and its state) as Arrow tables ([`StateTable`]) for checkpoints.
//!
//! **Watermarks.** Each input has its own watermark: for a feed, the largest event time seen
//! minus the bounded out-of-orderness, advanced row by row (so lateness never depends on how
//! input is cut into batches); for a view, the watermark of the rule producing it, set with
//! [`RuleRunner::advance`] after its rows. A rule's watermark is the minimum over its inputs.
//! An input that has delivered nothing for the idle timeout (wall-clock time, as in Flink) is
//! left out of that minimum until it delivers again, so a feed that has gone quiet does not
//! stall the rule forever. A window closes when the watermark reaches its last millisecond.
//!
//! **Late data.** A row is late when every window it belongs to was emitted more than the
//! rule's allowed lateness ago; it is reported in [`Step::late_rows`] and merged into nothing.
//! A row that arrives after its window was emitted but within the allowed lateness updates the
//! window, which is emitted again: rows whose result changed carry the next revision.

mod interval;
mod revisions;
mod session;
mod sliced;
pub mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::Result;
use crate::compile::{CompiledRule, Scan, Shape};
use crate::window::WindowKind;

use interval::IntervalJoin;
use revisions::{Revised, Revisions};
use session::Sessions;
use sliced::Slices;
use state::{PerEvent, Times, WindowState};
pub use state::{STATE_COLUMN_PREFIX, StateTable};

/// Bounded out-of-orderness used when none is configured: 5 seconds, enough for feeds whose
/// devices batch uploads every few seconds without holding alerts back noticeably.
pub const DEFAULT_OUT_OF_ORDERNESS_MS: i64 = 5_000;

/// Idle timeout of live runs when none is configured: an input of a multi-input rule that has
/// delivered nothing for a minute stops holding the rule's watermark back.
pub const DEFAULT_IDLE_TIMEOUT_MS: i64 = 60_000;

/// How a runner treats time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Bounded out-of-orderness of feed inputs that declare none (a feed's `WATERMARK` in the
    /// catalog declares its own: [`CompiledRule::input_bounds`]), in milliseconds.
    pub out_of_orderness_ms: i64,
    /// After how long without input (wall-clock milliseconds) an input stops holding back a
    /// multi-input rule; `None` never (replays of files, where every feed runs to its end).
    pub idle_timeout_ms: Option<i64>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            out_of_orderness_ms: DEFAULT_OUT_OF_ORDERNESS_MS,
            idle_timeout_ms: None,
        }
    }
}

impl RunnerConfig {
    /// The defaults with another out-of-orderness.
    pub fn with_out_of_orderness(out_of_orderness_ms: i64) -> Self {
        Self {
            out_of_orderness_ms,
            ..Self::default()
        }
    }
}

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
    /// The window these rows close, for windowed rules.
    pub window: Option<Window>,
    /// Result rows with the rule's [`CompiledRule::output_schema`]; never empty.
    pub batches: Vec<RecordBatch>,
    /// 1 for a window's first results; higher when late rows (within the allowed lateness)
    /// changed these rows after they were first emitted.
    pub revision: u32,
}

/// Event time of one batch of a table input, given by a source that keeps it per partition
/// (see [`RuleRunner::process_timed`]).
#[derive(Debug, Clone, Copy)]
pub struct InputTime<'a> {
    /// The input's watermark just before each row (`None`: none yet).
    pub before: &'a [Option<i64>],
    /// The input's watermark after the batch.
    pub after: Option<i64>,
}

/// Where the event time of a batch's input comes from.
#[derive(Clone, Copy)]
enum Own<'a> {
    /// A table's own rows, largest event time minus the out-of-orderness.
    Rows,
    /// A view: its producer sets it.
    View,
    /// Given by the source.
    Given(InputTime<'a>),
}

/// What one input batch produced.
#[derive(Debug, Default)]
pub struct Step {
    /// Results ready to become alerts, in window order.
    pub emissions: Vec<Emission>,
    /// Indexes (into the input batch) of rows that were too late to count.
    pub late_rows: Vec<u32>,
}

/// One input's clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    max_ts: Option<i64>,
    /// Set from outside (a view's producer, or a source tracking partitions).
    explicit: Option<i64>,
    /// When it last delivered rows or a watermark.
    last_active: Option<Instant>,
    /// Whether it may be left out as idle at all.
    may_idle: bool,
    /// Idle as its source says (every partition read to its end and quiet): left out.
    idle: bool,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            max_ts: None,
            explicit: None,
            last_active: None,
            may_idle: true,
            idle: false,
        }
    }
}

/// Runs one [`CompiledRule`] over its inputs.
pub struct RuleRunner {
    rule: Arc<CompiledRule>,
    config: RunnerConfig,
    clocks: Vec<Clock>,
    state: Box<dyn WindowState>,
    late: u64,
}

/// The window state a rule needs: the one place that looks at the rule's shape.
fn state_for(rule: &CompiledRule) -> Box<dyn WindowState> {
    let lateness = rule.meta.allowed_lateness_ms.max(0);
    match (rule.shape, rule.window.as_ref().map(|w| w.kind)) {
        (Shape::Windowed, Some(WindowKind::Session { gap_ms })) => {
            Box::new(Sessions::new(&rule.scans[0], gap_ms))
        }
        (Shape::Windowed, Some(kind)) => {
            let slices = Slices::new(kind, lateness, rule.scans.len());
            if lateness > 0 {
                Box::new(Revised::new(
                    slices,
                    Revisions::new(&rule.meta.id, &rule.output_schema, rule.id_columns()),
                ))
            } else {
                Box::new(slices)
            }
        }
        (Shape::IntervalJoin, _) => Box::new(IntervalJoin::new(rule.interval_ms.unwrap_or(0))),
        _ => Box::new(PerEvent),
    }
}

impl std::fmt::Debug for RuleRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleRunner")
            .field("rule", &self.rule.meta.id)
            .field("watermark", &self.watermark())
            .field("open_windows", &self.open_windows())
            .finish()
    }
}

impl RuleRunner {
    /// A runner with no state yet.
    pub fn new(rule: Arc<CompiledRule>, config: RunnerConfig) -> Self {
        let state = state_for(&rule);
        Self {
            clocks: vec![Clock::default(); rule.inputs.len()],
            config: RunnerConfig {
                out_of_orderness_ms: config.out_of_orderness_ms.max(0),
                idle_timeout_ms: config.idle_timeout_ms.map(|t| t.max(0)),
            },
            rule,
            state,
            late: 0,
        }
    }

    /// The rule this runner runs.
    pub fn rule(&self) -> &Arc<CompiledRule> {
        &self.rule
    }

    /// The rule's watermark, once its inputs have one.
    pub fn watermark(&self) -> Option<i64> {
        self.combined(None, Instant::now())
    }

    /// Windows (or sessions) holding rows, not yet emitted.
    pub fn open_windows(&self) -> usize {
        self.state.open_windows()
    }

    /// Rows (or partial aggregate states) the rule holds for results not yet emitted: what
    /// its memory grows with.
    pub fn held_rows(&self) -> usize {
        self.state.held_rows()
    }

    /// Memory the rule's state keeps alive, in bytes (see [`RuleRunner::held_rows`]).
    pub fn held_bytes(&self) -> usize {
        self.state.held_bytes()
    }

    /// Why the rule's state is over one of its limits ([`crate::Limits`]), if it is: the
    /// limit, what it holds, and the header that raises it.
    pub fn over_limits(&self) -> Option<String> {
        let limits = &self.rule.meta.limits;
        let rows = self.held_rows() as u64;
        if rows > limits.state_rows {
            return Some(format!(
                "it holds {rows} rows or partial aggregate states, over its limit of {} \
                 (`{}` raises it)",
                limits.state_rows,
                limits.header("state_rows")
            ));
        }
        let bytes = self.held_bytes() as u64;
        if bytes > limits.state_bytes {
            return Some(format!(
                "its state takes {}, over its limit of {} (`{}` raises it)",
                crate::rule::human_bytes(bytes),
                crate::rule::human_bytes(limits.state_bytes),
                limits.header("state_bytes")
            ));
        }
        None
    }

    /// Late rows seen so far.
    pub fn late_count(&self) -> u64 {
        self.late
    }

    /// The earliest event time of any row whose effects are not final yet (it sits in a
    /// window not yet emitted, or one that late rows may still update, or an interval join
    /// buffer). Input before it can be forgotten: a restart from there rebuilds the same state.
    pub fn oldest_needed_ts(&self) -> Option<i64> {
        self.state.oldest_needed_ts()
    }

    /// How far input `input`'s watermark stays behind its largest event time: its own
    /// declared bound, else the configured one.
    fn bound(&self, input: usize) -> i64 {
        self.rule
            .input_bounds
            .get(input)
            .copied()
            .flatten()
            .map_or(self.config.out_of_orderness_ms, |b| b.max(0))
    }

    fn input_watermark(&self, input: usize, c: &Clock) -> Option<i64> {
        c.explicit
            .or(c.max_ts.map(|m| m.saturating_sub(self.bound(input))))
    }

    /// The rule's watermark at `now`, with input `replaced` (index, watermark) standing in
    /// for its clock: the minimum over the inputs not idle, or the largest watermark when all
    /// are idle.
    fn combined(&self, replaced: Option<(usize, Option<i64>)>, now: Instant) -> Option<i64> {
        let timeout = self
            .config
            .idle_timeout_ms
            .map(|t| Duration::from_millis(t.unsigned_abs()));
        let mut min: Option<i64> = None;
        let mut missing = false;
        let mut max = None::<i64>;
        for (i, c) in self.clocks.iter().enumerate() {
            let (wm, current) = match replaced {
                Some((r, wm)) if r == i => (wm, true),
                _ => (self.input_watermark(i, c), false),
            };
            max = max.max(wm);
            // Only an input that has delivered before can go quiet; one never heard from yet
            // holds the rule back.
            let idle = !current
                && (c.idle
                    || c.may_idle
                        && timeout.is_some_and(|t| {
                            c.last_active
                                .is_some_and(|at| now.saturating_duration_since(at) >= t)
                        }));
            if idle {
                continue;
            }
            match wm {
                Some(w) => min = Some(min.map_or(w, |m| m.min(w))),
                None => missing = true,
            }
        }
        if missing { None } else { min.or(max) }
    }

    /// Whether input `input` may be left out of the rule's watermark when idle (default yes;
    /// no for views, whose watermark is their producer's, and for a feed whose backlog has not
    /// been read yet).
    pub fn set_may_idle(&mut self, input: usize, may: bool) {
        if let Some(c) = self.clocks.get_mut(input) {
            c.may_idle = may;
        }
    }

    /// Takes the idle permissions ([`RuleRunner::set_may_idle`]) of `other`, a runner of the
    /// same rule.
    pub fn copy_idle_permissions(&mut self, other: &RuleRunner) {
        for (c, o) in self.clocks.iter_mut().zip(&other.clocks) {
            c.may_idle = o.may_idle;
        }
    }

    /// Says whether input `input` is idle (its source read every partition of it to the end
    /// and heard nothing for its idle timeout): an idle input does not hold the rule's
    /// watermark back. Emits what the change completes.
    ///
    /// # Errors
    /// When the plan fails to execute (an engine fault).
    pub async fn set_idle(&mut self, input: usize, idle: bool) -> Result<Vec<Emission>> {
        let Some(c) = self.clocks.get_mut(input) else {
            return Ok(Vec::new());
        };
        if c.idle == idle {
            return Ok(Vec::new());
        }
        c.idle = idle;
        match self.watermark() {
            Some(wm) => self.fire(wm).await,
            None => Ok(Vec::new()),
        }
    }

    /// Takes one batch of input `input` (a feed: its rows also advance that input's
    /// watermark).
    ///
    /// # Errors
    /// When the plan fails to execute (an engine fault).
    pub async fn process(&mut self, input: usize, batch: &RecordBatch) -> Result<Step> {
        self.take(input, batch, Own::Rows).await
    }

    /// Takes one batch of table input `input` whose watermark the source gives, row by row
    /// (`time`: a source keeping event time per partition). The input's watermark never goes
    /// back: a row's is the larger of what `time` says and what the input had before.
    ///
    /// # Errors
    /// When the plan fails to execute (an engine fault).
    pub async fn process_timed(
        &mut self,
        input: usize,
        batch: &RecordBatch,
        time: InputTime<'_>,
    ) -> Result<Step> {
        self.take(input, batch, Own::Given(time)).await
    }

    /// Takes rows of a view input: they do not move its watermark, which the producing rule
    /// sets with [`RuleRunner::advance`] after handing over its rows.
    ///
    /// # Errors
    /// When the plan fails to execute (an engine fault).
    pub async fn process_view(&mut self, input: usize, batch: &RecordBatch) -> Result<Step> {
        self.take(input, batch, Own::View).await
    }

    /// Sets the watermark of input `input` from outside (a view's producer, or a source that
    /// tracks partitions), and emits what it completes. From then on that input's rows no
    /// longer move its watermark.
    ///
    /// # Errors
    /// When the plan fails to execute (an engine fault).
    pub async fn advance(&mut self, input: usize, watermark: i64) -> Result<Vec<Emission>> {
        let c = &mut self.clocks[input];
        c.explicit = Some(c.explicit.map_or(watermark, |w| w.max(watermark)));
        c.last_active = Some(Instant::now());
        match self.watermark() {
            Some(wm) => self.fire(wm).await,
            None => Ok(Vec::new()),
        }
    }

    /// End of a finite input: emits every open window.
    ///
    /// # Errors
    /// When the plan fails to execute (an engine fault).
    pub async fn finish(&mut self) -> Result<Vec<Emission>> {
        self.fire(i64::MAX).await
    }

    async fn take(&mut self, input: usize, batch: &RecordBatch, own: Own<'_>) -> Result<Step> {
        let Some(scan) = self.rule.scans.iter().find(|s| s.input == input) else {
            return Ok(Step::default());
        };
        let ts = batch
            .column(scan.time_index)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("the catalog's time column is a millisecond timestamp")
            .clone();
        let now = Instant::now();
        let before = self.watermark().map(|w| closing(Some(w)));
        // The rule's watermark just before each row.
        self.clocks[input].last_active = Some(now);
        let clock = self.clocks[input];
        let mut marks = Vec::with_capacity(ts.len());
        if let Own::Given(time) = own {
            // A table delivering rows is not idle, whatever its source said before.
            self.clocks[input].idle = false;
            let single = self.clocks.len() == 1;
            for w in time.before {
                let own = (*w).max(clock.explicit);
                marks.push(closing(if single {
                    own
                } else {
                    self.combined(Some((input, own)), now)
                }));
            }
            let c = &mut self.clocks[input];
            c.explicit = time.after.max(c.explicit);
        } else {
            let observe = matches!(own, Own::Rows) && clock.explicit.is_none();
            let mut running = clock.max_ts;
            if self.clocks.len() == 1 && observe {
                // One feed: the rule's watermark is that feed's, row by row.
                let bound = self.bound(input);
                for t in ts.values() {
                    marks.push(closing(running.map(|m| m.saturating_sub(bound))));
                    running = Some(running.map_or(*t, |m| m.max(*t)));
                }
            }
            for t in ts.values().iter().skip(marks.len()) {
                let own = match (observe, running) {
                    (true, Some(m)) => Some(m.saturating_sub(self.bound(input))),
                    (true, None) => None,
                    (false, _) => self.input_watermark(input, &clock),
                };
                marks.push(closing(self.combined(Some((input, own)), now)));
                if observe {
                    running = Some(running.map_or(*t, |m| m.max(*t)));
                }
            }
            if observe {
                self.clocks[input].max_ts = running;
            }
        }
        let rule = Arc::clone(&self.rule);
        let mut step = Step::default();
        let segments = segments(&rule, &marks);
        for (n, range) in segments.iter().enumerate() {
            let part = if range.len() == batch.num_rows() {
                batch.clone()
            } else {
                batch.slice(range.start, range.len())
            };
            let absorbed = self
                .state
                .absorb(
                    &rule,
                    input,
                    &part,
                    Times {
                        ts: &ts.values()[range.clone()],
                        horizons: &marks[range.clone()],
                        before: if n == 0 {
                            before
                        } else {
                            Some(marks[range.start])
                        },
                    },
                )
                .await?;
            step.emissions.extend(absorbed.emissions);
            let offset = u32::try_from(range.start).expect("a batch holds fewer than 2^32 rows");
            step.late_rows
                .extend(absorbed.late_rows.into_iter().map(|i| i + offset));
            if let Some(next) = segments.get(n + 1) {
                // Windows the watermark closed before the next segment's first row: they must
                // not take in its rows (results never depend on batch boundaries).
                step.emissions
                    .extend(self.state.advance(&rule, marks[next.start]).await?);
            }
        }
        self.late += step.late_rows.len() as u64;
        if let Some(wm) = self.watermark() {
            step.emissions.extend(self.fire(wm).await?);
        }
        Ok(step)
    }

    /// Emits every window the watermark `wm` has closed (and re-emits windows updated by
    /// late rows), then drops state nothing can reach any more.
    async fn fire(&mut self, wm: i64) -> Result<Vec<Emission>> {
        let rule = Arc::clone(&self.rule);
        self.state.advance(&rule, closing(Some(wm))).await
    }

    /// The runner's state as Arrow tables: `clocks` (per input, the largest event time seen
    /// and the watermark set from outside), `counters` (late rows), then the window state's
    /// tables prefixed `state.`. [`RuleRunner::restore`] on a runner of the same rule
    /// continues exactly where this one stood.
    ///
    /// # Errors
    /// When Arrow cannot assemble a table (an engine fault).
    pub fn snapshot(&self) -> Result<Vec<StateTable>> {
        let rule = &self.rule;
        let schema = Arc::new(Schema::new(vec![
            Field::new("max_ts", DataType::Int64, true),
            Field::new("explicit", DataType::Int64, true),
        ]));
        let clocks = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(self.clocks.iter().map(|c| c.max_ts).collect::<Int64Array>()),
                Arc::new(
                    self.clocks
                        .iter()
                        .map(|c| c.explicit)
                        .collect::<Int64Array>(),
                ),
            ],
        )
        .map_err(|e| fault(rule, e))?;
        let mut tables = vec![
            StateTable {
                name: "clocks".into(),
                schema,
                batches: vec![clocks],
            },
            state::i64_table(
                rule,
                "counters",
                "late",
                [i64::try_from(self.late).unwrap_or(i64::MAX)],
            )?,
        ];
        for mut t in self.state.snapshot(rule)? {
            t.name = format!("state.{}", t.name);
            tables.push(t);
        }
        Ok(tables)
    }

    /// Replaces this runner's clocks and state by a snapshot of a runner of the same rule
    /// (see [`RuleRunner::snapshot`]). Inputs restored with a watermark count as active now.
    ///
    /// # Errors
    /// [`crate::Error::Restore`] when the tables do not have the shape a snapshot of this
    /// rule has.
    pub fn restore(&mut self, mut tables: Vec<StateTable>) -> Result<()> {
        let rule = Arc::clone(&self.rule);
        let clocks = state::take_table(&mut tables, "clocks");
        let mut restored = Vec::with_capacity(self.clocks.len());
        for b in &clocks {
            let int = |c: usize| {
                b.columns()
                    .get(c)
                    .and_then(|a| a.as_any().downcast_ref::<Int64Array>())
                    .ok_or_else(|| state::restore_error(&rule, "clocks: unexpected columns"))
            };
            let (max_ts, explicit) = (int(0)?, int(1)?);
            for i in 0..b.num_rows() {
                let value = |a: &Int64Array| a.is_valid(i).then(|| a.value(i));
                restored.push((value(max_ts), value(explicit)));
            }
        }
        if restored.len() != self.clocks.len() {
            return Err(state::restore_error(
                &rule,
                format!(
                    "{} input clocks saved, the rule has {} inputs",
                    restored.len(),
                    self.clocks.len()
                ),
            ));
        }
        let late = state::i64_values(&rule, &state::take_table(&mut tables, "counters"))?;
        let state_tables: Vec<StateTable> = tables
            .into_iter()
            .filter_map(|mut t| {
                let name = t.name.strip_prefix("state.")?.to_string();
                t.name = name;
                Some(t)
            })
            .collect();
        let mut state = state_for(&rule);
        state.restore(&rule, state_tables)?;
        let now = Instant::now();
        for (c, (max_ts, explicit)) in self.clocks.iter_mut().zip(restored) {
            c.max_ts = max_ts;
            c.explicit = explicit;
            c.last_active = (max_ts.is_some() || explicit.is_some()).then_some(now);
        }
        self.late = late
            .first()
            .map_or(0, |l| u64::try_from(*l).unwrap_or_default());
        self.state = state;
        Ok(())
    }
}

/// The runs of rows of one batch between which the watermark closes windows, given the
/// closing horizon before each row (`marks`). Where a row belongs to several windows (HOP
/// with a size above its slide, CUMULATE) and its slice is shared by a window that closed
/// earlier in the same batch, the rows after the closing must not reach that window: the batch
/// is cut where the horizon passes a window end (a multiple of the slice), and the windows
/// closed are emitted between the parts, as if the rows had come one by one. Elsewhere (one
/// window per row, sessions, interval joins) each row's own horizon already decides, and the
/// batch stays whole.
fn segments(rule: &CompiledRule, marks: &[i64]) -> Vec<std::ops::Range<usize>> {
    let slice = match rule.window.as_ref().map(|w| w.kind) {
        Some(WindowKind::Hop { slide_ms, size_ms }) if size_ms > slide_ms => slide_ms,
        Some(WindowKind::Cumulate {
            step_ms,
            max_size_ms,
        }) if max_size_ms > step_ms => step_ms,
        _ => return std::iter::once(0..marks.len()).collect(),
    };
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..marks.len() {
        if marks[i].div_euclid(slice) > marks[start].div_euclid(slice) {
            out.push(start..i);
            start = i;
        }
    }
    out.push(start..marks.len());
    out
}

/// The closing horizon for watermark `wm`: windows ending at or before it are complete. As in
/// Flink, a window `[start, end)` closes when the watermark reaches its last millisecond,
/// `end - 1` (its `window_time`), so the horizon is one past the watermark.
fn closing(wm: Option<i64>) -> i64 {
    wm.map_or(i64::MIN, |w| w.saturating_add(1))
}

/// Results as an emission, unless there are none.
pub(crate) fn emission(
    window: Option<Window>,
    batches: Vec<RecordBatch>,
    revision: u32,
) -> Option<Emission> {
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    (!batches.is_empty()).then_some(Emission {
        window,
        batches,
        revision,
    })
}

/// A constant timestamp column (UTC milliseconds).
pub(crate) fn constant_ts(value: i64, len: usize) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_value(value, len).with_timezone("UTC"))
}

/// `batch` (an input's rows) with the window columns of `[start, end)` appended, as the scan's
/// slot expects.
pub(crate) fn windowed(
    rule: &CompiledRule,
    scan: &Scan,
    batch: &RecordBatch,
    start: i64,
    end: i64,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut columns = batch.columns().to_vec();
    columns.push(constant_ts(start, n));
    columns.push(constant_ts(end, n));
    columns.push(constant_ts(end.saturating_sub(1), n));
    RecordBatch::try_new(Arc::clone(&scan.schema), columns).map_err(|e| fault(rule, e))
}

/// An Arrow or DataFusion failure while running `rule` (an engine fault), as the rule's error.
pub(crate) fn fault(
    rule: &CompiledRule,
    e: impl Into<datafusion::error::DataFusionError>,
) -> crate::Error {
    crate::Error::Execute {
        rule: rule.meta.id.clone(),
        source: e.into(),
    }
}

/// The rows of `batch` at `keep`, in order (the batch itself when every row is kept).
pub(crate) fn take_rows(
    rule: &CompiledRule,
    batch: &RecordBatch,
    keep: Vec<u32>,
) -> Result<RecordBatch> {
    if keep.len() == batch.num_rows() {
        return Ok(batch.clone());
    }
    arrow::compute::take_record_batch(batch, &arrow::array::UInt32Array::from(keep))
        .map_err(|e| fault(rule, e))
}

/// Splits `batch` by a key per row (rows keep their order within each part).
pub(crate) fn split_by(
    rule: &CompiledRule,
    batch: &RecordBatch,
    keys: &[i64],
) -> Result<Vec<(i64, RecordBatch)>> {
    let Some(&first) = keys.first() else {
        return Ok(Vec::new());
    };
    if keys.iter().all(|k| *k == first) {
        return Ok(vec![(first, batch.clone())]);
    }
    let mut distinct = keys.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut out = Vec::with_capacity(distinct.len());
    for k in distinct {
        let idx: arrow::array::UInt32Array = keys
            .iter()
            .enumerate()
            .filter(|(_, x)| **x == k)
            .map(|(i, _)| i as u32)
            .collect();
        let part = arrow::compute::take_record_batch(batch, &idx).map_err(|e| fault(rule, e))?;
        out.push((k, part));
    }
    Ok(out)
}
