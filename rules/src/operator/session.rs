//! SESSION windows: per partition key, rows closer than the gap share a window
//! `[first ts, last ts + gap)`; a row that bridges two sessions merges them.
//!
//! Each row sits in exactly one open session. A session is emitted when the watermark reaches
//! its end. A row is late when it would open a session that is already over
//! (`ts + gap <= watermark`) and no open session takes it in.

use std::collections::HashMap;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::row::{RowConverter, SortField};

use super::sliced::input_schema;
use super::state::{
    Absorbed, StateTable, Times, WindowState, i64_field, stamped_table, take_table, unstamp,
};
use super::{Emission, Window, emission, fault, windowed};
use crate::Result;
use crate::compile::{CompiledRule, Scan};

struct Session {
    start: i64,
    end: i64,
    batches: Vec<RecordBatch>,
    /// Rows of the batch being inserted.
    new_rows: Vec<u32>,
}

pub(crate) struct Sessions {
    gap: i64,
    keys: Vec<usize>,
    converter: Option<RowConverter>,
    /// Partition key (row-encoded) → its open sessions, ordered and disjoint.
    open: HashMap<Vec<u8>, Vec<Session>>,
    /// The earliest end of any open session.
    next_end: i64,
}

impl Sessions {
    pub fn new(scan: &Scan, gap: i64) -> Self {
        let input_fields = scan.schema.fields();
        let converter = (!scan.partition_by.is_empty()).then(|| {
            RowConverter::new(
                scan.partition_by
                    .iter()
                    .map(|i| SortField::new(input_fields[*i].data_type().clone()))
                    .collect(),
            )
            .expect("partition columns are plain scalar types")
        });
        Self {
            gap,
            keys: scan.partition_by.clone(),
            converter,
            open: HashMap::new(),
            next_end: i64::MAX,
        }
    }

    /// The row-encoded partition key of each row of `batch`.
    fn keys(&self, rule: &CompiledRule, batch: &RecordBatch) -> Result<Option<arrow::row::Rows>> {
        match &self.converter {
            Some(c) => {
                let cols: Vec<_> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
                Ok(Some(c.convert_columns(&cols).map_err(|e| fault(rule, e))?))
            }
            None => Ok(None),
        }
    }

    /// Files each row under its session; returns the late rows.
    fn insert(
        &mut self,
        rule: &CompiledRule,
        batch: &RecordBatch,
        ts: &[i64],
        marks: &[i64],
    ) -> Result<Vec<u32>> {
        let rows = self.keys(rule, batch)?;
        let mut groups: HashMap<&[u8], Vec<u32>> = HashMap::new();
        for i in 0..batch.num_rows() {
            let key: &[u8] = rows.as_ref().map_or(&[], |r| r.row(i).data());
            groups.entry(key).or_default().push(i as u32);
        }
        let mut late = Vec::new();
        let gap = self.gap;
        for (key, indexes) in groups {
            let sessions = self.open.entry(key.to_vec()).or_default();
            for i in indexes {
                let (t, wm) = (ts[i as usize], marks[i as usize]);
                let end = t.saturating_add(gap);
                // Open sessions overlapping or touching [t, t + gap) (as Flink merges them); sessions
                // the watermark has passed are closed.
                let overlapping: Vec<usize> = sessions
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.end > wm && s.start <= end && t <= s.end)
                    .map(|(n, _)| n)
                    .collect();
                if overlapping.is_empty() {
                    if end <= wm {
                        late.push(i);
                        continue;
                    }
                    let at = sessions.partition_point(|s| s.start < t);
                    sessions.insert(
                        at,
                        Session {
                            start: t,
                            end,
                            batches: Vec::new(),
                            new_rows: vec![i],
                        },
                    );
                    continue;
                }
                let mut merged = Session {
                    start: t,
                    end,
                    batches: Vec::new(),
                    new_rows: vec![i],
                };
                for n in overlapping.into_iter().rev() {
                    let s = sessions.remove(n);
                    merged.start = merged.start.min(s.start);
                    merged.end = merged.end.max(s.end);
                    merged.batches.extend(s.batches);
                    merged.new_rows.extend(s.new_rows);
                }
                merged.new_rows.sort_unstable();
                let at = sessions.partition_point(|s| s.start < merged.start);
                sessions.insert(at, merged);
            }
            for s in sessions.iter_mut() {
                if !s.new_rows.is_empty() {
                    let idx = UInt32Array::from(std::mem::take(&mut s.new_rows));
                    s.batches.push(
                        arrow::compute::take_record_batch(batch, &idx)
                            .map_err(|e| fault(rule, e))?,
                    );
                }
                self.next_end = self.next_end.min(s.end);
            }
        }
        Ok(late)
    }

    /// Runs every session the watermark has passed, in order of end.
    async fn fire(
        &mut self,
        rule: &CompiledRule,
        wm: i64,
    ) -> Result<Vec<(Window, Vec<RecordBatch>)>> {
        if wm < self.next_end {
            return Ok(Vec::new());
        }
        let mut closed = Vec::new();
        let mut next_end = i64::MAX;
        self.open.retain(|key, sessions| {
            sessions.retain_mut(|s| {
                if s.end <= wm {
                    closed.push((s.end, s.start, key.clone(), std::mem::take(&mut s.batches)));
                    false
                } else {
                    next_end = next_end.min(s.end);
                    true
                }
            });
            !sessions.is_empty()
        });
        self.next_end = next_end;
        closed.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        let scan = &rule.scans[0];
        let mut out = Vec::with_capacity(closed.len());
        for (end, start, _, batches) in closed {
            let rows = batches
                .iter()
                .map(|b| windowed(rule, scan, b, start, end))
                .collect::<Result<Vec<_>>>()?;
            let results = rule.run(&rule.plan, vec![(&*scan.slot, rows)]).await?;
            out.push((Window { start, end }, results));
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl WindowState for Sessions {
    async fn absorb(
        &mut self,
        rule: &CompiledRule,
        _input: usize,
        batch: &RecordBatch,
        times: Times<'_>,
    ) -> Result<Absorbed> {
        Ok(Absorbed {
            late_rows: self.insert(rule, batch, times.ts, times.horizons)?,
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
        self.open.values().map(Vec::len).sum()
    }

    /// Rows held in open sessions.
    fn held_rows(&self) -> usize {
        self.open
            .values()
            .flatten()
            .flat_map(|s| &s.batches)
            .map(RecordBatch::num_rows)
            .sum()
    }

    fn held_bytes(&self) -> usize {
        self.open
            .iter()
            .map(|(key, sessions)| {
                key.len()
                    + sessions
                        .iter()
                        .flat_map(|s| &s.batches)
                        .map(RecordBatch::get_array_memory_size)
                        .sum::<usize>()
            })
            .sum()
    }

    fn oldest_needed_ts(&self) -> Option<i64> {
        self.open.values().flatten().map(|s| s.start).min()
    }

    /// One table, `sessions`: each batch of rows of an open session with the session's start
    /// and end (the partition key is the rows' own columns).
    fn snapshot(&self, rule: &CompiledRule) -> Result<Vec<StateTable>> {
        let mut open: Vec<&Session> = self.open.values().flatten().collect();
        open.sort_by_key(|s| (s.end, s.start));
        Ok(vec![stamped_table(
            rule,
            "sessions",
            &input_schema(&rule.scans[0]),
            &[i64_field("start"), i64_field("end")],
            open.into_iter().flat_map(|s| {
                s.batches
                    .iter()
                    .map(move |b| (b.clone(), vec![s.start, s.end]))
            }),
        )?])
    }

    fn restore(&mut self, rule: &CompiledRule, mut tables: Vec<StateTable>) -> Result<()> {
        self.open.clear();
        self.next_end = i64::MAX;
        for batch in take_table(&mut tables, "sessions") {
            let (rows, Some(bounds)) = unstamp(rule, &batch, 2)? else {
                continue;
            };
            let key = self
                .keys(rule, &rows)?
                .map_or_else(Vec::new, |k| k.row(0).data().to_vec());
            let (start, end) = (bounds[0], bounds[1]);
            let sessions = self.open.entry(key).or_default();
            match sessions
                .iter_mut()
                .find(|s| s.start == start && s.end == end)
            {
                Some(s) => s.batches.push(rows),
                None => {
                    let at = sessions.partition_point(|s| s.start < start);
                    sessions.insert(
                        at,
                        Session {
                            start,
                            end,
                            batches: vec![rows],
                            new_rows: Vec::new(),
                        },
                    );
                }
            }
            self.next_end = self.next_end.min(end);
        }
        Ok(())
    }
}
