//! Revisions of windows that late rows update (rules with an allowed lateness).
//!
//! The first results of a window are revision 1. When late rows change the window, it runs
//! again; a row whose group was emitted before with other values comes out with the next
//! revision (same group, so the same alert id), a row for a new group with revision 1, and a
//! row equal to what was already emitted not at all.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};

use super::{Emission, Window, emission};
use crate::Result;
use crate::compile::KEY_PREFIX;

pub(crate) struct Revisions {
    rule: String,
    converter: RowConverter,
    /// Output columns that identify a row's group: the hidden key columns, or all selected.
    key_columns: Vec<usize>,
    key_converter: RowConverter,
    /// Per emitted window still open to late rows: group hash → (content hash, revision).
    windows: BTreeMap<Window, HashMap<u64, (u64, u32)>>,
}

impl Revisions {
    pub fn new(rule: &str, schema: &SchemaRef, data_columns: usize) -> Self {
        let converter = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .expect("result columns are row-encodable");
        let hidden: Vec<usize> = (0..schema.fields().len())
            .filter(|i| schema.field(*i).name().starts_with(KEY_PREFIX))
            .collect();
        let key_columns: Vec<usize> = if hidden.is_empty() {
            (0..data_columns).collect()
        } else {
            hidden
        };
        let key_converter = RowConverter::new(
            key_columns
                .iter()
                .map(|i| SortField::new(schema.field(*i).data_type().clone()))
                .collect(),
        )
        .expect("result columns are row-encodable");
        Self {
            rule: rule.to_string(),
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
                let content = {
                    let mut h = DefaultHasher::new();
                    rows.row(i).as_ref().hash(&mut h);
                    h.finish()
                };
                let key = {
                    let mut h = DefaultHasher::new();
                    keys.row(i).as_ref().hash(&mut h);
                    h.finish()
                };
                let revision = match seen.get(&key) {
                    Some((c, _)) if *c == content => continue,
                    Some((_, r)) => r + 1,
                    None => 1,
                };
                seen.insert(key, (content, revision));
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

    /// Forgets windows ending at or before `horizon`: late rows can no longer reach them.
    pub fn forget_before(&mut self, horizon: i64) {
        self.windows.retain(|w, _| w.end > horizon);
    }
}
