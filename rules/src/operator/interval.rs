//! Interval joins: two inputs joined where their event times are at most a bounded distance
//! apart (`b.ts BETWEEN a.ts - INTERVAL '10' MINUTES AND a.ts`).
//!
//! Each side keeps its rows until the watermark is further past them than the interval: no
//! row still to come can match them after that. A new batch of one side is joined at once
//! with the rows the other side keeps, then kept itself, so every matching pair is produced
//! exactly once, as soon as its second row arrives.

use arrow::array::RecordBatch;

use super::state::{
    Absorbed, StateTable, Times, WindowState, i64_field, stamped_table, take_table, unstamp,
};
use super::{Emission, emission, fault, take_rows};
use crate::Result;
use crate::compile::CompiledRule;

pub(crate) struct IntervalJoin {
    span: i64,
    /// Per scan: kept batches with their smallest and largest event time.
    kept: [Vec<(i64, i64, RecordBatch)>; 2],
}

impl IntervalJoin {
    pub fn new(span: i64) -> Self {
        Self {
            span,
            kept: [Vec::new(), Vec::new()],
        }
    }

    /// Joins the on-time rows of `batch` (input `input`) with the other side; returns the late
    /// rows and the joined results.
    async fn insert(
        &mut self,
        rule: &CompiledRule,
        input: usize,
        batch: &RecordBatch,
        ts: &[i64],
        marks: &[i64],
    ) -> Result<(Vec<u32>, Vec<RecordBatch>)> {
        let mut late = Vec::new();
        let mut keep = Vec::with_capacity(ts.len());
        for (i, (t, wm)) in ts.iter().zip(marks).enumerate() {
            if t < wm {
                late.push(i as u32);
            } else {
                keep.push(i as u32);
            }
        }
        let Some(side) = rule.scans.iter().position(|s| s.input == input) else {
            return Ok((late, Vec::new()));
        };
        // Rows the filter above this side's scan rejects join nothing: dropped before joining
        // and never kept.
        let kept = rule.scans[side]
            .keep_rows(take_rows(rule, batch, keep)?)
            .map_err(|e| fault(rule, e))?;
        if kept.num_rows() == 0 {
            return Ok((late, Vec::new()));
        }
        let max_ts = ts.iter().copied().max().unwrap_or(i64::MIN);
        let min_ts = ts.iter().copied().min().unwrap_or(i64::MIN);
        let other = 1 - side;
        let fills = vec![
            (&*rule.scans[side].slot, vec![kept.clone()]),
            (
                &*rule.scans[other].slot,
                self.kept[other].iter().map(|(_, _, b)| b.clone()).collect(),
            ),
        ];
        let out = rule.run(&rule.plan, fills).await?;
        self.kept[side].push((min_ts, max_ts, kept));
        Ok((late, out))
    }

    /// Drops kept batches entirely older than the watermark minus the interval.
    fn forget_before(&mut self, wm: i64) {
        let horizon = wm.saturating_sub(self.span);
        for side in &mut self.kept {
            side.retain(|(_, max, _)| *max >= horizon);
        }
    }
}

#[async_trait::async_trait]
impl WindowState for IntervalJoin {
    async fn absorb(
        &mut self,
        rule: &CompiledRule,
        input: usize,
        batch: &RecordBatch,
        times: Times<'_>,
    ) -> Result<Absorbed> {
        // Rows older than the watermark itself are late here (the closing horizon is one past
        // it).
        let marks: Vec<i64> = times.horizons.iter().map(|m| m.saturating_sub(1)).collect();
        let (late_rows, out) = self.insert(rule, input, batch, times.ts, &marks).await?;
        Ok(Absorbed {
            late_rows,
            emissions: emission(None, out, 1).into_iter().collect(),
        })
    }

    async fn advance(&mut self, _rule: &CompiledRule, horizon: i64) -> Result<Vec<Emission>> {
        self.forget_before(horizon);
        Ok(Vec::new())
    }

    /// Rows kept for joining with the other side's later rows.
    fn held_rows(&self) -> usize {
        self.kept
            .iter()
            .flatten()
            .map(|(_, _, b)| b.num_rows())
            .sum()
    }

    fn held_bytes(&self) -> usize {
        self.kept
            .iter()
            .flatten()
            .map(|(_, _, b)| b.get_array_memory_size())
            .sum()
    }

    fn oldest_needed_ts(&self) -> Option<i64> {
        self.kept.iter().flatten().map(|(min, _, _)| *min).min()
    }

    /// Per side, `kept.N`: each kept batch with its smallest and largest event time.
    fn snapshot(&self, rule: &CompiledRule) -> Result<Vec<StateTable>> {
        let mut tables = Vec::with_capacity(2);
        for (side, kept) in self.kept.iter().enumerate() {
            tables.push(stamped_table(
                rule,
                format!("kept.{side}"),
                &rule.scans[side].schema,
                &[i64_field("min_ts"), i64_field("max_ts")],
                kept.iter()
                    .map(|(min, max, b)| (b.clone(), vec![*min, *max])),
            )?);
        }
        Ok(tables)
    }

    fn restore(&mut self, rule: &CompiledRule, mut tables: Vec<StateTable>) -> Result<()> {
        for (side, kept) in self.kept.iter_mut().enumerate() {
            kept.clear();
            for batch in take_table(&mut tables, &format!("kept.{side}")) {
                if let (rows, Some(v)) = unstamp(rule, &batch, 2)? {
                    kept.push((v[0], v[1], rows));
                }
            }
        }
        Ok(())
    }
}
