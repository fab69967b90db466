//! Revisions of windows that late rows update (rules with an allowed lateness).
//!
//! The first results of a window are revision 1. When late rows change the window, it runs
//! again; a row whose group was emitted before with other values comes out with the next
//! revision (same group, so the same alert id), a row for a new group with revision 1, and a
//! row equal to what was already emitted not at all.
//!
//! What was emitted is remembered as the rows themselves (Arrow's row format in memory, Arrow
//! columns in a snapshot), not as hashes: nothing written to a checkpoint depends on a hash
//! function that may change between builds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};

use super::sliced::Slices;
use super::state::{
    Absorbed, StateTable, Times, WindowState, i64_field, restore_error, take_table,
};
use super::{Emission, Window, emission};
use crate::Result;
use crate::compile::CompiledRule;

/// What was emitted last of each group of one window: the group's row-encoded key columns →
/// (the whole row, row-encoded, and its revision).
type Emitted = HashMap<Box<[u8]>, (Box<[u8]>, u32)>;

pub(crate) struct Revisions {
    rule: String,
    schema: SchemaRef,
    converter: RowConverter,
    /// Output columns that identify a row's group (as in its alert id).
    key_columns: Vec<usize>,
    key_converter: RowConverter,
    /// Per emitted window still open to late rows, what was emitted of each group.
    windows: BTreeMap<Window, Emitted>,
}

impl Revisions {
    /// Revisions of `rule`'s results (`schema`), a row's group told by the values of
    /// `key_columns` ([`CompiledRule::id_columns`], as the alert id).
    pub fn new(rule: &str, schema: &SchemaRef, key_columns: Vec<usize>) -> Self {
        let converter = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .expect("result columns are row-encodable");
        let key_converter = RowConverter::new(
            key_columns
                .iter()
                .map(|i| SortField::new(schema.field(*i).data_type().clone()))
                .collect(),
        )
        .expect("result columns are row-encodable");
        Self {
            rule: rule.to_string(),
            schema: Arc::clone(schema),
            converter,
            key_columns,
            key_converter,
            windows: BTreeMap::new(),
        }
    }

    /// The emissions for `batches`, the results of running `window` (for the first time, or
    /// again after late rows).
    pub fn revise(&mut self, window: Window, batches: Vec<RecordBatch>) -> Result<Vec<Emission>> {
        let rule = self.rule.clone();
        let fault = |e: arrow::error::ArrowError| crate::Error::Execute {
            rule: rule.clone(),
            source: e.into(),
        };
        let seen = self.windows.entry(window).or_default();
        let mut by_revision: BTreeMap<u32, Vec<RecordBatch>> = BTreeMap::new();
        for batch in batches {
            let rows = self
                .converter
                .convert_columns(batch.columns())
                .map_err(fault)?;
            let keys = self
                .key_converter
                .convert_columns(
                    &self
                        .key_columns
                        .iter()
                        .map(|c| Arc::clone(batch.column(*c)))
                        .collect::<Vec<_>>(),
                )
                .map_err(fault)?;
            let mut picked: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for i in 0..batch.num_rows() {
                let content = rows.row(i);
                let key = keys.row(i);
                let revision = match seen.get(key.as_ref()) {
                    Some((c, _)) if **c == *content.as_ref() => continue,
                    Some((_, r)) => r + 1,
                    None => 1,
                };
                seen.insert(key.as_ref().into(), (content.as_ref().into(), revision));
                picked.entry(revision).or_default().push(i as u32);
            }
            for (revision, idx) in picked {
                let part = arrow::compute::take_record_batch(&batch, &UInt32Array::from(idx))
                    .map_err(fault)?;
                by_revision.entry(revision).or_default().push(part);
            }
        }
        Ok(by_revision
            .into_iter()
            .filter_map(|(r, b)| emission(Some(window), b, r))
            .collect())
    }

    /// Memory of the rows remembered, in bytes (the encoded rows and a rough per-entry cost).
    pub fn held_bytes(&self) -> usize {
        self.windows
            .values()
            .flat_map(HashMap::iter)
            .map(|(key, (row, _))| key.len() + row.len() + 48)
            .sum()
    }

    /// Forgets windows ending at or before `horizon`: late rows can no longer reach them.
    pub fn forget_before(&mut self, horizon: i64) {
        self.windows.retain(|w, _| w.end > horizon);
    }

    fn fault(&self, e: arrow::error::ArrowError) -> crate::Error {
        crate::Error::Execute {
            rule: self.rule.clone(),
            source: e.into(),
        }
    }

    /// The table `revisions`: every row last emitted per group of a window still open to late
    /// rows (the rule's output columns), with the window and the revision.
    fn snapshot(&self) -> Result<StateTable> {
        let mut fields: Vec<Arc<Field>> = self.schema.fields().iter().cloned().collect();
        fields.push(Arc::new(i64_field("window_start")));
        fields.push(Arc::new(i64_field("window_end")));
        fields.push(Arc::new(Field::new(
            "__cb_revision",
            DataType::UInt32,
            false,
        )));
        let schema = Arc::new(Schema::new(fields));
        let parser = self.converter.parser();
        let mut batches = Vec::with_capacity(self.windows.len());
        for (window, seen) in &self.windows {
            if seen.is_empty() {
                continue;
            }
            let mut groups: Vec<&(Box<[u8]>, u32)> = seen.values().collect();
            groups.sort();
            let n = groups.len();
            let mut columns: Vec<ArrayRef> = self
                .converter
                .convert_rows(groups.iter().map(|(row, _)| parser.parse(row)))
                .map_err(|e| self.fault(e))?;
            columns.push(Arc::new(Int64Array::from_value(window.start, n)));
            columns.push(Arc::new(Int64Array::from_value(window.end, n)));
            columns.push(Arc::new(UInt32Array::from_iter_values(
                groups.iter().map(|(_, r)| *r),
            )));
            batches.push(
                RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| self.fault(e))?,
            );
        }
        Ok(StateTable {
            name: "revisions".into(),
            schema,
            batches,
        })
    }

    fn restore(&mut self, rule: &CompiledRule, batches: Vec<RecordBatch>) -> Result<()> {
        self.windows.clear();
        let width = self.schema.fields().len();
        for batch in batches {
            if batch.num_columns() != width + 3 {
                return Err(restore_error(rule, "revisions: unexpected columns"));
            }
            let int = |c: usize| batch.column(c).as_any().downcast_ref::<Int64Array>();
            let (Some(starts), Some(ends), Some(revs)) = (
                int(width),
                int(width + 1),
                batch
                    .column(width + 2)
                    .as_any()
                    .downcast_ref::<UInt32Array>(),
            ) else {
                return Err(restore_error(rule, "revisions: unexpected column types"));
            };
            let rows = self
                .converter
                .convert_columns(&batch.columns()[..width])
                .map_err(|e| self.fault(e))?;
            let keys = self
                .key_converter
                .convert_columns(
                    &self
                        .key_columns
                        .iter()
                        .map(|c| Arc::clone(batch.column(*c)))
                        .collect::<Vec<_>>(),
                )
                .map_err(|e| self.fault(e))?;
            for i in 0..batch.num_rows() {
                let window = Window {
                    start: starts.value(i),
                    end: ends.value(i),
                };
                self.windows.entry(window).or_default().insert(
                    keys.row(i).as_ref().into(),
                    (rows.row(i).as_ref().into(), revs.value(i)),
                );
            }
        }
        Ok(())
    }
}

/// Sliced windows of a rule with an allowed lateness: [`Slices`] whose results go through
/// [`Revisions`] before they are emitted.
pub(crate) struct Revised {
    slices: Slices,
    revisions: Revisions,
}

impl Revised {
    pub fn new(slices: Slices, revisions: Revisions) -> Self {
        Self { slices, revisions }
    }
}

#[async_trait::async_trait]
impl WindowState for Revised {
    async fn absorb(
        &mut self,
        rule: &CompiledRule,
        input: usize,
        batch: &RecordBatch,
        times: Times<'_>,
    ) -> Result<Absorbed> {
        self.slices.absorb(rule, input, batch, times).await
    }

    async fn advance(&mut self, rule: &CompiledRule, horizon: i64) -> Result<Vec<Emission>> {
        let mut out = Vec::new();
        for (window, batches) in self.slices.fire(rule, horizon).await? {
            out.extend(self.revisions.revise(window, batches)?);
        }
        self.revisions
            .forget_before(horizon.saturating_sub(rule.meta.allowed_lateness_ms));
        Ok(out)
    }

    fn open_windows(&self) -> usize {
        self.slices.open_windows()
    }

    fn held_rows(&self) -> usize {
        self.slices.held_rows()
    }

    fn held_bytes(&self) -> usize {
        self.slices.held_bytes() + self.revisions.held_bytes()
    }

    fn oldest_needed_ts(&self) -> Option<i64> {
        self.slices.oldest_needed_ts()
    }

    /// The slices' tables and `revisions`.
    fn snapshot(&self, rule: &CompiledRule) -> Result<Vec<StateTable>> {
        let mut tables = self.slices.snapshot(rule)?;
        tables.push(self.revisions.snapshot()?);
        Ok(tables)
    }

    fn restore(&mut self, rule: &CompiledRule, mut tables: Vec<StateTable>) -> Result<()> {
        let revisions = take_table(&mut tables, "revisions");
        self.slices.restore(rule, tables)?;
        self.revisions.restore(rule, revisions)
    }
}
