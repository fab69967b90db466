//! The one trait every kind of window state implements, and the Arrow form of its snapshots.
//!
//! ```text
//!                 ┌──────────── WindowState ────────────┐
//!  rows + times ─▶│ absorb   late rows, immediate results│
//!  horizon ──────▶│ advance  results of closed windows   │─▶ Emission
//!                 │ snapshot / restore  ⇄ StateTable[]   │   (Arrow, for checkpoints)
//!                 └──────────────────────────────────────┘
//!      PerEvent · Slices (TUMBLE/HOP/CUMULATE) · Revised<Slices> (allowed lateness)
//!      · Sessions · IntervalJoin
//! ```
//!
//! The [`RuleRunner`](super::RuleRunner) owns the event time (watermarks, horizons) and one
//! `Box<dyn WindowState>`; it never asks which kind it holds. A checkpoint writes the tables a
//! state snapshots as they are (Arrow IPC) and knows nothing of window kinds either.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{Emission, emission};
use crate::Result;
use crate::compile::CompiledRule;

/// Prefix of the bookkeeping columns states append to the rows they snapshot (a slice start,
/// a session's bounds, ...), chosen not to collide with a rule's own columns.
pub const STATE_COLUMN_PREFIX: &str = "__cb_";

/// One table of a state snapshot: rows of one kind, in Arrow.
#[derive(Debug, Clone)]
pub struct StateTable {
    /// What the rows are (`pending`, `raw.0`, `sessions`, ...), unique within a snapshot.
    pub name: String,
    /// The schema of every batch (also when there is none).
    pub schema: SchemaRef,
    /// The rows; batch boundaries are part of the snapshot and come back on restore.
    pub batches: Vec<RecordBatch>,
}

impl StateTable {
    /// Rows over all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Event time of the rows of one input batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Times<'a> {
    /// Event time of each row.
    pub ts: &'a [i64],
    /// The rule's closing horizon just before each row (windows ending at or before it are
    /// complete; see `closing`).
    pub horizons: &'a [i64],
    /// The closing horizon before the batch.
    pub before: Option<i64>,
}

/// What a state made of one input batch.
#[derive(Debug, Default)]
pub(crate) struct Absorbed {
    /// Indexes of the rows too late to count.
    pub late_rows: Vec<u32>,
    /// Results ready at once (per-event rules, interval joins).
    pub emissions: Vec<Emission>,
}

/// The state of one rule's windows: what rows it holds, when results come out, and how it is
/// saved and restored. One implementation per kind of window; see the module docs.
#[async_trait::async_trait]
pub(crate) trait WindowState: Send {
    /// Takes the rows of one batch of input `input` (`times`: their event times and the
    /// horizons before each); returns the late rows and any results ready at once.
    ///
    /// # Errors
    /// When a plan fails to execute (an engine fault).
    async fn absorb(
        &mut self,
        rule: &CompiledRule,
        input: usize,
        batch: &RecordBatch,
        times: Times<'_>,
    ) -> Result<Absorbed>;

    /// Emits every result the closing horizon `horizon` completes (and results late rows
    /// changed), then drops what nothing can reach any more.
    ///
    /// # Errors
    /// When a plan fails to execute (an engine fault).
    async fn advance(&mut self, rule: &CompiledRule, horizon: i64) -> Result<Vec<Emission>>;

    /// Windows (or sessions) holding rows, not yet emitted.
    fn open_windows(&self) -> usize {
        0
    }

    /// Rows (or partial aggregate states) held for results not yet final: what memory grows
    /// with.
    fn held_rows(&self) -> usize {
        0
    }

    /// Memory of what it holds, in bytes (Arrow's count of the buffers its batches keep
    /// alive, plus its bookkeeping): what `max_state_bytes` limits.
    fn held_bytes(&self) -> usize {
        0
    }

    /// The earliest event time of any row whose effects are not final yet.
    fn oldest_needed_ts(&self) -> Option<i64> {
        None
    }

    /// Everything needed to continue later, as Arrow tables.
    ///
    /// # Errors
    /// When Arrow cannot assemble a table (an engine fault).
    fn snapshot(&self, rule: &CompiledRule) -> Result<Vec<StateTable>>;

    /// Replaces the state by a snapshot taken with [`WindowState::snapshot`] of the same rule.
    ///
    /// # Errors
    /// When a table is missing or does not have the shape this state writes.
    fn restore(&mut self, rule: &CompiledRule, tables: Vec<StateTable>) -> Result<()>;
}

/// A rule without windows: every batch runs through the plan at once; nothing is held.
pub(crate) struct PerEvent;

#[async_trait::async_trait]
impl WindowState for PerEvent {
    async fn absorb(
        &mut self,
        rule: &CompiledRule,
        input: usize,
        batch: &RecordBatch,
        _times: Times<'_>,
    ) -> Result<Absorbed> {
        let Some(scan) = rule.scans.iter().find(|s| s.input == input) else {
            return Ok(Absorbed::default());
        };
        let out = rule
            .run(&rule.plan, vec![(&*scan.slot, vec![batch.clone()])])
            .await?;
        Ok(Absorbed {
            late_rows: Vec::new(),
            emissions: emission(None, out, 1).into_iter().collect(),
        })
    }

    async fn advance(&mut self, _rule: &CompiledRule, _horizon: i64) -> Result<Vec<Emission>> {
        Ok(Vec::new())
    }

    fn snapshot(&self, _rule: &CompiledRule) -> Result<Vec<StateTable>> {
        Ok(Vec::new())
    }

    fn restore(&mut self, _rule: &CompiledRule, _tables: Vec<StateTable>) -> Result<()> {
        Ok(())
    }
}

/// A restore failure of `rule`.
pub(crate) fn restore_error(rule: &CompiledRule, detail: impl Into<String>) -> crate::Error {
    crate::Error::Restore {
        rule: rule.meta.id.clone(),
        detail: detail.into(),
    }
}

/// A nullable i64 bookkeeping field named `__cb_<name>`.
pub(crate) fn i64_field(name: &str) -> Field {
    Field::new(
        format!("{STATE_COLUMN_PREFIX}{name}"),
        DataType::Int64,
        true,
    )
}

/// A table whose batches are `rows` with constant i64 columns appended (one value per extra
/// field for each batch), e.g. the slice a batch of rows belongs to. `rows_schema` is the
/// schema of the rows when there are none.
pub(crate) fn stamped_table(
    rule: &CompiledRule,
    name: impl Into<String>,
    rows_schema: &SchemaRef,
    extra: &[Field],
    rows: impl IntoIterator<Item = (RecordBatch, Vec<i64>)>,
) -> Result<StateTable> {
    let mut fields: Vec<Arc<Field>> = rows_schema.fields().iter().cloned().collect();
    fields.extend(extra.iter().cloned().map(Arc::new));
    let schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::new();
    for (batch, values) in rows {
        let n = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        columns.extend(
            values
                .iter()
                .map(|v| Arc::new(Int64Array::from_value(*v, n)) as ArrayRef),
        );
        batches.push(
            RecordBatch::try_new(Arc::clone(&schema), columns)
                .map_err(|e| super::fault(rule, e))?,
        );
    }
    Ok(StateTable {
        name: name.into(),
        schema,
        batches,
    })
}

/// Undoes [`stamped_table`] for one batch: the rows (first columns) and the values of the
/// `extra` trailing i64 columns, read from the first row (`None` for an empty batch).
pub(crate) fn unstamp(
    rule: &CompiledRule,
    batch: &RecordBatch,
    extra: usize,
) -> Result<(RecordBatch, Option<Vec<i64>>)> {
    let width = batch.num_columns();
    if width < extra {
        return Err(restore_error(
            rule,
            "a state table lacks its bookkeeping columns",
        ));
    }
    let keep = width - extra;
    let mut values = Vec::with_capacity(extra);
    for c in keep..width {
        let column = batch
            .column(c)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| restore_error(rule, "a bookkeeping column is not Int64"))?;
        if column.is_empty() {
            break;
        }
        values.push(column.value(0));
    }
    let rows = batch
        .project(&(0..keep).collect::<Vec<_>>())
        .map_err(|e| super::fault(rule, e))?;
    let values = (values.len() == extra).then_some(values);
    Ok((rows, values))
}

/// The table named `name` of `tables`, taken out (an empty list when it is absent).
pub(crate) fn take_table(tables: &mut Vec<StateTable>, name: &str) -> Vec<RecordBatch> {
    match tables.iter().position(|t| t.name == name) {
        Some(i) => tables.swap_remove(i).batches,
        None => Vec::new(),
    }
}

/// A one-column i64 table.
pub(crate) fn i64_table(
    rule: &CompiledRule,
    name: impl Into<String>,
    column: &str,
    values: impl IntoIterator<Item = i64>,
) -> Result<StateTable> {
    let schema = Arc::new(Schema::new(vec![i64_field(column)]));
    let array: Int64Array = values.into_iter().collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(array)])
        .map_err(|e| super::fault(rule, e))?;
    Ok(StateTable {
        name: name.into(),
        schema,
        batches: vec![batch],
    })
}

/// The values of a one-column i64 table written by [`i64_table`].
pub(crate) fn i64_values(rule: &CompiledRule, batches: &[RecordBatch]) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for b in batches {
        let column = b
            .columns()
            .first()
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| restore_error(rule, "expected one Int64 column"))?;
        out.extend(column.iter().flatten());
    }
    Ok(out)
}
