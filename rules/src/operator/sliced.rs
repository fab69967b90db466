//! Windows that tile time (TUMBLE, HOP, CUMULATE), kept as slices.
//!
//! Every window is a run of whole slices (the slide, the step, or the size of a tumbling
//! window), so each row is stored once, in its slice, however many windows it belongs to.
//! When the rule's plan is a window aggregation that can be cut in two
//! ([`CompiledRule::is_sliced`]), rows are never held: each batch's rows of a slice are
//! reduced to partial aggregate states as they arrive, and a window is the final aggregation
//! over the states of its slices. A 10-minute window hopping every 10 s keeps 60 small sets of
//! states per group, not 60 copies of the rows, and closing a window costs a merge of states,
//! not an aggregation of its rows (the latency of the batch that closes it). Other windowed
//! plans (window joins, Top-N over them) run over the rows of the window's slices; of those,
//! only the rows the plan's filter right above the scan lets through are held
//! ([`Scan::keep_rows`](crate::compile::Scan::keep_rows)).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, TimestampMillisecondArray};

use super::state::{
    Absorbed, StateTable, Times, WindowState, i64_field, i64_table, i64_values, stamped_table,
    take_table, unstamp,
};
use super::{Emission, Window, constant_ts, emission, fault, split_by, take_rows, windowed};
use crate::Result;
use crate::compile::{CompiledRule, Scan, Split};
use crate::window::WindowKind;

pub(crate) struct Slices {
    kind: WindowKind,
    lateness: i64,
    /// Per scan: slice start → rows (input schema) (plans that are not split).
    raw: Vec<BTreeMap<i64, Vec<RecordBatch>>>,
    /// Slice start → partial aggregate states, one batch per input batch (split plans).
    partials: BTreeMap<i64, Vec<RecordBatch>>,
    /// Ends of windows holding rows, not yet emitted.
    pending: BTreeSet<i64>,
    /// Ends of emitted windows that late rows (within the allowed lateness) have updated.
    refire: BTreeSet<i64>,
}

impl Slices {
    pub fn new(kind: WindowKind, lateness: i64, scans: usize) -> Self {
        Self {
            kind,
            lateness,
            raw: (0..scans).map(|_| BTreeMap::new()).collect(),
            partials: BTreeMap::new(),
            pending: BTreeSet::new(),
            refire: BTreeSet::new(),
        }
    }

    /// Files the rows of `batch` (input `input`) under their slices, as partial states when
    /// the plan is split; returns the late rows. `marks[i]` is the rule's watermark just
    /// before row `i`; `before` the watermark at the last emission.
    ///
    /// # Errors
    /// When the partial aggregate fails to execute (an engine fault).
    async fn insert(
        &mut self,
        rule: &CompiledRule,
        input: usize,
        batch: &RecordBatch,
        times: Times<'_>,
    ) -> Result<Vec<u32>> {
        let (ts, marks, before) = (times.ts, times.horizons, times.before);
        let kind = self.kind;
        let mut late = Vec::new();
        let mut keep = Vec::with_capacity(ts.len());
        let mut slices = Vec::with_capacity(ts.len());
        let mut last = (i64::MIN, i64::MIN);
        for (i, (t, wm)) in ts.iter().zip(marks).enumerate() {
            let slice = kind.slice_start(*t);
            // The last window holding the slice; cached as rows mostly share slices.
            if slice != last.0 {
                last = (slice, kind.last_window_end(slice));
            }
            if last.1.saturating_add(self.lateness) <= *wm {
                late.push(i as u32);
            } else {
                keep.push(i as u32);
                slices.push(slice);
            }
        }
        let kept = take_rows(rule, batch, keep)?;
        let emitted_up_to = before.unwrap_or(i64::MIN);
        let slice_ms = kind.slice_ms().unwrap_or(1);
        for (slice, part) in split_by(rule, &kept, &slices)? {
            for (scan_index, scan) in rule.scans.iter().enumerate() {
                if scan.input != input {
                    continue;
                }
                match &rule.split {
                    Some(split) => {
                        let rows =
                            windowed(rule, scan, &part, slice, slice.saturating_add(slice_ms))?;
                        let states = rule
                            .run(&split.partial, vec![(&*scan.slot, vec![rows])])
                            .await?;
                        let held = self.partials.entry(slice).or_default();
                        held.extend(states);
                        compact(held).map_err(|e| fault(rule, e))?;
                    }
                    None => {
                        // The slice is kept even when the scan's filter drops every row, so
                        // that it still counts as needed input (`oldest_needed_ts`).
                        let rows = scan.keep_rows(part.clone()).map_err(|e| fault(rule, e))?;
                        let held = self.raw[scan_index].entry(slice).or_default();
                        if rows.num_rows() > 0 {
                            held.push(rows);
                        }
                    }
                }
            }
            for end in kind.window_ends(slice) {
                if end > emitted_up_to {
                    self.pending.insert(end);
                } else if end.saturating_add(self.lateness) > emitted_up_to {
                    self.refire.insert(end);
                }
            }
        }
        Ok(late)
    }

    /// Runs every window the watermark has passed, then windows updated by late rows, and
    /// drops slices no window can reach any more.
    pub(crate) async fn fire(
        &mut self,
        rule: &CompiledRule,
        wm: i64,
    ) -> Result<Vec<(Window, Vec<RecordBatch>)>> {
        let mut out = Vec::new();
        for end in std::mem::take(&mut self.refire) {
            let window = Window {
                start: self.kind.window_start(end),
                end,
            };
            out.push((window, self.run(rule, window).await?));
        }
        let mut closed = Vec::new();
        while let Some(&end) = self.pending.first() {
            if end > wm {
                break;
            }
            self.pending.pop_first();
            closed.push(Window {
                start: self.kind.window_start(end),
                end,
            });
        }
        match rule.split.as_ref().and_then(|s| s.window_keys) {
            Some(keys) if closed.len() > 1 => {
                out.extend(self.run_together(rule, &closed, keys).await?);
            }
            _ => {
                for window in closed {
                    out.push((window, self.run(rule, window).await?));
                }
            }
        }
        let horizon = wm.saturating_sub(self.lateness);
        let kind = self.kind;
        let gone = |slice: &i64| kind.last_window_end(*slice) <= horizon;
        for map in self
            .raw
            .iter_mut()
            .chain(std::iter::once(&mut self.partials))
        {
            while let Some((slice, _)) = map.first_key_value() {
                if !gone(slice) {
                    break;
                }
                map.pop_first();
            }
        }
        Ok(out)
    }

    /// The partial states of window `w`'s slices, stamped with `w`'s window columns.
    fn window_states(
        &self,
        rule: &CompiledRule,
        split: &Split,
        w: Window,
    ) -> Result<Vec<RecordBatch>> {
        let values = [w.start, w.end, w.end.saturating_sub(1)];
        let mut states = Vec::new();
        for batch in self.partials.range(w.start..w.end).flat_map(|(_, b)| b) {
            let n = batch.num_rows();
            let mut columns = batch.columns().to_vec();
            for (position, value) in split.window_columns.iter().zip(values) {
                if let Some(p) = position {
                    columns[*p] = constant_ts(value, n);
                }
            }
            states.push(
                RecordBatch::try_new(Arc::clone(&split.state_schema), columns)
                    .map_err(|e| fault(rule, e))?,
            );
        }
        Ok(states)
    }

    /// Runs several closed windows of a split plan through one execution of the final plan
    /// (its operators work group by group, and the window columns are group keys), then gives
    /// each window its rows, found by the `(window_start, window_end)` keys of the output. One
    /// batch closing many windows (a sparse feed catching up) so costs one plan execution, not
    /// one per window. Should any row not belong to one of `windows`, each window runs alone.
    async fn run_together(
        &mut self,
        rule: &CompiledRule,
        windows: &[Window],
        (start_key, end_key): (usize, usize),
    ) -> Result<Vec<(Window, Vec<RecordBatch>)>> {
        let split = rule
            .split
            .as_ref()
            .expect("window keys come with a split plan");
        let mut states = Vec::new();
        for w in windows {
            states.extend(self.window_states(rule, split, *w)?);
        }
        let mut out: Vec<(Window, Vec<RecordBatch>)> =
            windows.iter().map(|w| (*w, Vec::new())).collect();
        if states.is_empty() {
            return Ok(out);
        }
        let index: HashMap<(i64, i64), usize> = windows
            .iter()
            .enumerate()
            .map(|(i, w)| ((w.start, w.end), i))
            .collect();
        let batches = rule
            .run_windows(
                &split.final_plan,
                vec![(&*split.state, states)],
                windows.len(),
            )
            .await?;
        for batch in &batches {
            let (Some(starts), Some(ends)) =
                (timestamps(batch, start_key), timestamps(batch, end_key))
            else {
                return self.run_each(rule, windows).await;
            };
            let mut rows: Vec<Vec<u32>> = vec![Vec::new(); windows.len()];
            for row in 0..batch.num_rows() {
                let found = (starts.is_valid(row) && ends.is_valid(row))
                    .then(|| index.get(&(starts.value(row), ends.value(row))))
                    .flatten();
                let Some(&i) = found else {
                    return self.run_each(rule, windows).await;
                };
                rows[i].push(u32::try_from(row).expect("a batch holds fewer than 2^32 rows"));
            }
            for (i, keep) in rows.into_iter().enumerate() {
                if !keep.is_empty() {
                    out[i].1.push(take_rows(rule, batch, keep)?);
                }
            }
        }
        Ok(out)
    }

    async fn run_each(
        &mut self,
        rule: &CompiledRule,
        windows: &[Window],
    ) -> Result<Vec<(Window, Vec<RecordBatch>)>> {
        let mut out = Vec::with_capacity(windows.len());
        for w in windows {
            out.push((*w, self.run(rule, *w).await?));
        }
        Ok(out)
    }

    async fn run(&mut self, rule: &CompiledRule, w: Window) -> Result<Vec<RecordBatch>> {
        match &rule.split {
            Some(split) => {
                let states = self.window_states(rule, split, w)?;
                if states.is_empty() {
                    return Ok(Vec::new());
                }
                rule.run(&split.final_plan, vec![(&*split.state, states)])
                    .await
            }
            None => {
                let mut fills = Vec::with_capacity(rule.scans.len());
                for (i, scan) in rule.scans.iter().enumerate() {
                    let rows = self.raw[i]
                        .range(w.start..w.end)
                        .flat_map(|(_, b)| b)
                        .map(|b| windowed(rule, scan, b, w.start, w.end))
                        .collect::<Result<Vec<_>>>()?;
                    fills.push((&*scan.slot, rows));
                }
                rule.run(&rule.plan, fills).await
            }
        }
    }
}

#[async_trait::async_trait]
impl WindowState for Slices {
    async fn absorb(
        &mut self,
        rule: &CompiledRule,
        input: usize,
        batch: &RecordBatch,
        times: Times<'_>,
    ) -> Result<Absorbed> {
        Ok(Absorbed {
            late_rows: self.insert(rule, input, batch, times).await?,
            emissions: Vec::new(),
        })
    }

    async fn advance(&mut self, rule: &CompiledRule, horizon: i64) -> Result<Vec<Emission>> {
        Ok(self
            .fire(rule, horizon)
            .await?
            .into_iter()
            .filter_map(|(w, b)| emission(Some(w), b, 1))
            .collect())
    }

    fn open_windows(&self) -> usize {
        self.pending.len()
    }

    /// Rows held for windows not yet emitted, and partial states.
    fn held_rows(&self) -> usize {
        self.raw
            .iter()
            .flat_map(BTreeMap::values)
            .chain(self.partials.values())
            .flatten()
            .map(RecordBatch::num_rows)
            .sum()
    }

    fn held_bytes(&self) -> usize {
        let batches: usize = self
            .raw
            .iter()
            .flat_map(BTreeMap::values)
            .chain(self.partials.values())
            .flatten()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        // A B-tree entry of an i64 window end, roughly.
        batches + (self.pending.len() + self.refire.len()) * 16
    }

    fn oldest_needed_ts(&self) -> Option<i64> {
        self.raw
            .iter()
            .filter_map(|m| m.keys().next().copied())
            .chain(self.partials.keys().next().copied())
            .min()
    }

    /// Tables: `pending` and `refire` (window ends), `partials` (partial states with their
    /// slice), and per scan `raw.N` (held rows with their slice) and `raw.N.slices` (every
    /// slice held, some possibly without rows).
    fn snapshot(&self, rule: &CompiledRule) -> Result<Vec<StateTable>> {
        let slice = [i64_field("slice")];
        let mut tables = vec![
            i64_table(rule, "pending", "end", self.pending.iter().copied())?,
            i64_table(rule, "refire", "end", self.refire.iter().copied())?,
        ];
        if let Some(split) = &rule.split {
            tables.push(stamped_table(
                rule,
                "partials",
                &split.state_schema,
                &slice,
                self.partials
                    .iter()
                    .flat_map(|(s, b)| b.iter().map(move |b| (b.clone(), vec![*s]))),
            )?);
        }
        for (i, (map, scan)) in self.raw.iter().zip(&rule.scans).enumerate() {
            tables.push(stamped_table(
                rule,
                format!("raw.{i}"),
                &input_schema(scan),
                &slice,
                map.iter()
                    .flat_map(|(s, b)| b.iter().map(move |b| (b.clone(), vec![*s]))),
            )?);
            tables.push(i64_table(
                rule,
                format!("raw.{i}.slices"),
                "slice",
                map.keys().copied(),
            )?);
        }
        Ok(tables)
    }

    fn restore(&mut self, rule: &CompiledRule, mut tables: Vec<StateTable>) -> Result<()> {
        let mut fresh = Slices::new(self.kind, self.lateness, self.raw.len());
        fresh.pending = i64_values(rule, &take_table(&mut tables, "pending"))?
            .into_iter()
            .collect();
        fresh.refire = i64_values(rule, &take_table(&mut tables, "refire"))?
            .into_iter()
            .collect();
        for batch in take_table(&mut tables, "partials") {
            if let (rows, Some(v)) = unstamp(rule, &batch, 1)? {
                fresh.partials.entry(v[0]).or_default().push(rows);
            }
        }
        for (i, map) in fresh.raw.iter_mut().enumerate() {
            for slice in i64_values(rule, &take_table(&mut tables, &format!("raw.{i}.slices")))? {
                map.entry(slice).or_default();
            }
            for batch in take_table(&mut tables, &format!("raw.{i}")) {
                if let (rows, Some(v)) = unstamp(rule, &batch, 1)? {
                    map.entry(v[0]).or_default().push(rows);
                }
            }
        }
        *self = fresh;
        Ok(())
    }
}

/// The schema of the rows a windowed scan reads: its slot's schema without the three window
/// columns the runner appends.
pub(crate) fn input_schema(scan: &Scan) -> arrow::datatypes::SchemaRef {
    let fields = scan.schema.fields();
    let n = if scan.window.is_some() {
        fields.len().saturating_sub(3)
    } else {
        fields.len()
    };
    Arc::new(arrow::datatypes::Schema::new(fields[..n].to_vec()))
}

/// Column `i` of `batch` as millisecond timestamps, if it is one.
fn timestamps(batch: &RecordBatch, i: usize) -> Option<&TimestampMillisecondArray> {
    batch
        .columns()
        .get(i)?
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
}

/// Keeps a slice's partial states in few, tightly sized batches: while the last batch holds at
/// least half as many rows as the one before it, the two are copied into one (so each batch
/// holds more than twice the rows of the next, there are O(log n) of them, and a row is copied
/// O(log n) times). A partial aggregate's output keeps buffers sized for a whole batch and
/// every batch has its own headers: with a live feed's small batches that was most of the
/// state (`rules/benches/state_per_group.rs`).
fn compact(batches: &mut Vec<RecordBatch>) -> std::result::Result<(), arrow::error::ArrowError> {
    while let [.., before, last] = batches.as_slice() {
        if before.num_rows() > 2 * last.num_rows() {
            break;
        }
        let n = batches.len();
        let merged = arrow::compute::concat_batches(&last.schema(), &batches[n - 2..])?;
        batches.truncate(n - 2);
        batches.push(merged);
    }
    Ok(())
}
