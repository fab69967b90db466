//! Event time per partition: each partition's watermark advances with its own records, a
//! table's watermark is the minimum over its partitions (as in Flink's per-partition
//! watermarks), and partitions far ahead of the slowest are paused (watermark alignment).
//!
//! ```text
//!  city.traffic/0  max ts 10:05:00 ─┐
//!  city.traffic/1  max ts 10:03:10 ─┼─ min ─▶ table watermark 10:03:10 − out-of-orderness
//!  city.traffic/2  idle             ─┘ (read to its end and silent for the idle timeout: left out)
//!
//!  alignment: partitions with a backlog set the floor (the smallest max ts among them);
//!             a partition more than the max drift ahead of it is paused until it is within
//!             half the drift again
//! ```
//!
//! A partition is **idle** only when it is read to its end (its read position reached the
//! end the source reports, not the committed offset) and has delivered nothing for the idle
//! timeout; sources without positions (files, the simulator) are always read to their end. A
//! partition the source reads but that has delivered nothing and is not idle holds its table
//! back (its first records may be old); a table whose partitions are all idle is idle itself
//! and holds no rule back.
//!
//! Watermarks are computed row by row ([`EventClock::observe`]): each row of a batch is judged
//! against the table's watermark just before it, so lateness never depends on how records are
//! cut into batches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{PartitionId, PartitionStatus};

/// Idle timeout used when none is configured: 30 seconds, long enough for a quiet department
/// (a market inspector's tablet) not to count as idle between two reports in normal hours.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One partition's clock.
#[derive(Debug, Clone, Copy)]
struct Part {
    /// Largest event time read from it.
    max_ts: Option<i64>,
    /// When it last delivered a record (or became known).
    last_record: Instant,
    /// Read to its end when last asked.
    at_end: bool,
    /// Paused by alignment.
    paused: bool,
}

/// A table's event time as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableTime {
    /// The table's watermark (minimum over its partitions that are not idle, minus the
    /// out-of-orderness); `None` while a partition that counts has delivered nothing.
    pub watermark: Option<i64>,
    /// Every partition of the table is idle.
    pub idle: bool,
}

/// What alignment asks of the source: partitions to pause and to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alignment {
    /// Partitions to pause: too far ahead.
    pub pause: Vec<PartitionId>,
    /// Partitions paused before that may go on.
    pub resume: Vec<PartitionId>,
}

/// Event time of every partition read; see the module docs.
#[derive(Debug)]
pub struct EventClock {
    out_of_orderness_ms: i64,
    idle_timeout: Option<Duration>,
    /// Table → partition number → clock. Tables are few, partitions per table too.
    tables: BTreeMap<Arc<str>, BTreeMap<i32, Part>>,
    /// The topic (or other name) of each partition of a table, for [`Alignment`].
    names: BTreeMap<(Arc<str>, i32), PartitionId>,
}

impl EventClock {
    /// Watermarks lagging `out_of_orderness_ms` behind each partition's largest event time; a
    /// partition read to its end is idle after `idle_timeout` without records (`None`: never,
    /// as in replays of files, where every table runs to its end).
    pub fn new(out_of_orderness_ms: i64, idle_timeout: Option<Duration>) -> Self {
        Self {
            out_of_orderness_ms: out_of_orderness_ms.max(0),
            idle_timeout,
            tables: BTreeMap::new(),
            names: BTreeMap::new(),
        }
    }

    /// Takes what the source says of its partitions now: partitions it reads (new ones start
    /// holding their table back until they deliver or go idle), whether each is read to its
    /// end, and which it no longer reads (forgotten). `positioned`: whether the source has
    /// positions at all; without (files, the simulator), every partition counts as read to its
    /// end.
    pub fn refresh(&mut self, statuses: &[PartitionStatus], positioned: bool, now: Instant) {
        if !positioned {
            for part in self.tables.values_mut().flat_map(BTreeMap::values_mut) {
                part.at_end = true;
            }
            return;
        }
        let mut seen: Vec<(Arc<str>, i32)> = Vec::with_capacity(statuses.len());
        for s in statuses {
            let table: Arc<str> = Arc::from(s.feed.name());
            let part = self
                .tables
                .entry(Arc::clone(&table))
                .or_default()
                .entry(s.id.1)
                .or_insert(Part {
                    max_ts: None,
                    last_record: now,
                    at_end: false,
                    paused: false,
                });
            part.at_end = s.at_end();
            self.names
                .insert((Arc::clone(&table), s.id.1), s.id.clone());
            seen.push((table, s.id.1));
        }
        for (table, parts) in &mut self.tables {
            parts.retain(|p, _| seen.iter().any(|(t, q)| t == table && q == p));
        }
        self.names.retain(|k, _| seen.contains(k));
    }

    /// Forgets a partition the source no longer reads (revoked by a rebalance).
    pub fn remove(&mut self, table: &str, partition: i32) {
        if let Some(parts) = self.tables.get_mut(table) {
            parts.remove(&partition);
        }
        self.names
            .retain(|(t, p), _| !(&**t == table && *p == partition));
    }

    /// Takes the rows of one batch of `table`: `partitions[i]` and `ts[i]` are row `i`'s
    /// partition and event time. Returns the table's watermark just before each row and after
    /// the batch (see the module docs).
    pub fn observe(
        &mut self,
        table: &str,
        partitions: &[i32],
        ts: &[i64],
        now: Instant,
    ) -> (Vec<Option<i64>>, Option<i64>) {
        let idle = self.idle_timeout;
        let bound = self.out_of_orderness_ms;
        let parts = match self.tables.get_mut(table) {
            Some(p) => p,
            None => self.tables.entry(Arc::from(table)).or_default(),
        };
        // Partitions idle at the start of the batch stay left out unless they deliver in it.
        let mut active: BTreeMap<i32, bool> = parts
            .iter()
            .map(|(p, s)| (*p, !is_idle(s, idle, now)))
            .collect();
        let mut before = Vec::with_capacity(ts.len());
        for (p, t) in partitions.iter().zip(ts) {
            let own = parts.entry(*p).or_insert(Part {
                max_ts: None,
                last_record: now,
                at_end: false,
                paused: false,
            });
            own.last_record = now;
            active.insert(*p, true);
            before.push(table_watermark(parts, &active, bound));
            let own = parts.get_mut(p).expect("just inserted");
            own.max_ts = Some(own.max_ts.map_or(*t, |m| m.max(*t)));
        }
        (before, table_watermark(parts, &active, bound))
    }

    /// How far apart in event time the partitions of `table` have been read: the largest
    /// minus the smallest largest-event-time among its partitions that delivered (`None` with
    /// fewer than two). Alignment keeps it near the max drift; without, a partition read
    /// ahead can run hours ahead of the others.
    pub fn spread(&self, table: &str) -> Option<i64> {
        let parts = self.tables.get(table)?;
        let mut seen = parts.values().filter_map(|p| p.max_ts);
        let first = seen.next()?;
        let (min, max, n) = seen.fold((first, first, 1), |(lo, hi, n), t| {
            (lo.min(t), hi.max(t), n + 1)
        });
        (n > 1).then(|| max.saturating_sub(min))
    }

    /// `table`'s watermark and idleness at `now`.
    pub fn table_time(&self, table: &str, now: Instant) -> TableTime {
        let Some(parts) = self.tables.get(table) else {
            return TableTime {
                watermark: None,
                idle: false,
            };
        };
        let active: BTreeMap<i32, bool> = parts
            .iter()
            .map(|(p, s)| (*p, !is_idle(s, self.idle_timeout, now)))
            .collect();
        let idle = !parts.is_empty() && active.values().all(|a| !a);
        let watermark = if idle {
            // Quiet as a whole: its watermark is its most advanced partition's.
            parts
                .values()
                .filter_map(|s| s.max_ts)
                .max()
                .map(|t| t.saturating_sub(self.out_of_orderness_ms))
        } else {
            table_watermark(parts, &active, self.out_of_orderness_ms)
        };
        TableTime { watermark, idle }
    }

    /// The tables known, in order.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(|t| &**t)
    }

    /// Watermark alignment with `max_drift_ms`: the floor is the smallest largest-event-time
    /// among partitions with a backlog (not read to their end; one that has delivered nothing
    /// yet counts as the oldest), over every table; a partition more than `max_drift_ms` above
    /// the floor is paused, and resumed once within half of it (or once no partition has a
    /// backlog). Returns what changed since the last call.
    pub fn align(&mut self, max_drift_ms: i64, now: Instant) -> Alignment {
        let idle = self.idle_timeout;
        let mut floor: Option<Option<i64>> = None;
        for part in self.tables.values().flat_map(BTreeMap::values) {
            if part.at_end || is_idle(part, idle, now) {
                continue;
            }
            floor = Some(match floor {
                None => part.max_ts,
                Some(f) => match (f, part.max_ts) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    _ => None,
                },
            });
        }
        let mut out = Alignment::default();
        for (table, parts) in &mut self.tables {
            for (p, part) in parts.iter_mut() {
                let ahead = match (floor, part.max_ts) {
                    (Some(f), Some(t)) => {
                        let f = f.unwrap_or(i64::MIN);
                        let drift = t.saturating_sub(f);
                        if part.paused {
                            drift > max_drift_ms / 2
                        } else {
                            drift > max_drift_ms
                        }
                    }
                    _ => false,
                };
                if ahead != part.paused {
                    part.paused = ahead;
                    let id = self
                        .names
                        .get(&(Arc::clone(table), *p))
                        .cloned()
                        .unwrap_or_else(|| (Arc::clone(table), *p));
                    if ahead {
                        out.pause.push(id);
                    } else {
                        out.resume.push(id);
                    }
                }
            }
        }
        out
    }

    /// Every partition's largest event time, for a checkpoint.
    pub fn snapshot(&self) -> Vec<(String, i32, i64)> {
        self.tables
            .iter()
            .flat_map(|(t, parts)| {
                parts
                    .iter()
                    .filter_map(move |(p, s)| Some((t.to_string(), *p, s.max_ts?)))
            })
            .collect()
    }

    /// Puts back partitions' largest event times from a checkpoint (partitions the source
    /// reads but the checkpoint does not know start empty, holding their table back).
    pub fn restore(&mut self, saved: &[(String, i32, i64)], now: Instant) {
        for (table, partition, max_ts) in saved {
            let part = self
                .tables
                .entry(Arc::from(table.as_str()))
                .or_default()
                .entry(*partition)
                .or_insert(Part {
                    max_ts: None,
                    last_record: now,
                    at_end: false,
                    paused: false,
                });
            part.max_ts = Some(part.max_ts.map_or(*max_ts, |m| m.max(*max_ts)));
        }
    }
}

fn is_idle(part: &Part, timeout: Option<Duration>, now: Instant) -> bool {
    part.at_end && timeout.is_some_and(|t| now.saturating_duration_since(part.last_record) >= t)
}

/// The minimum over active partitions of (largest event time − bound); `None` while an active
/// partition has none.
fn table_watermark(
    parts: &BTreeMap<i32, Part>,
    active: &BTreeMap<i32, bool>,
    bound: i64,
) -> Option<i64> {
    let mut min: Option<i64> = None;
    for (p, part) in parts {
        if !active.get(p).copied().unwrap_or(true) {
            continue;
        }
        let t = part.max_ts?;
        min = Some(min.map_or(t, |m| m.min(t)));
    }
    min.map(|t| t.saturating_sub(bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Feed;

    fn status(name: &str, partition: i32, position: i64, end: i64) -> PartitionStatus {
        let feed: Feed = crate::catalog::Catalog::city()
            .table(name)
            .expect("a city feed")
            .clone();
        PartitionStatus {
            id: (
                Arc::from(format!("city.{}", feed.name()).as_str()),
                partition,
            ),
            feed,
            position: Some(position),
            end: Some(end),
        }
    }

    #[test]
    fn the_slowest_partition_holds_the_table_row_by_row() {
        let t0 = Instant::now();
        let mut c = EventClock::new(1_000, Some(Duration::from_secs(30)));
        c.refresh(
            &[status("traffic", 0, 0, 10), status("traffic", 1, 0, 10)],
            true,
            t0,
        );
        // Partition 1 has delivered nothing: the table has no watermark yet.
        let (before, after) = c.observe("traffic", &[0, 0], &[50_000, 60_000], t0);
        assert_eq!((before, after), (vec![None, None], None));
        // Partition 1 delivers: from then on the minimum, row by row.
        let (before, after) = c.observe("traffic", &[1, 1, 0], &[20_000, 30_000, 70_000], t0);
        assert_eq!(before, vec![None, Some(19_000), Some(29_000)]);
        assert_eq!(after, Some(29_000));
        assert_eq!(c.spread("traffic"), Some(40_000));
        assert_eq!(
            c.table_time("traffic", t0),
            TableTime {
                watermark: Some(29_000),
                idle: false
            }
        );
    }

    #[test]
    fn only_a_partition_read_to_its_end_and_silent_goes_idle() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(31);
        let mut c = EventClock::new(0, Some(Duration::from_secs(30)));
        c.refresh(
            &[status("police", 0, 0, 5), status("police", 1, 0, 5)],
            true,
            t0,
        );
        c.observe("police", &[0, 1], &[10_000, 5_000], t0);
        // Silent for 31 s but partition 1 still has a backlog: not idle, it holds the table.
        c.refresh(
            &[status("police", 0, 5, 5), status("police", 1, 2, 5)],
            true,
            later,
        );
        assert_eq!(c.table_time("police", later).watermark, Some(5_000));
        // Read to its end too: both idle, the table is idle.
        c.refresh(
            &[status("police", 0, 5, 5), status("police", 1, 5, 5)],
            true,
            later,
        );
        assert_eq!(
            c.table_time("police", later),
            TableTime {
                watermark: Some(10_000),
                idle: true
            }
        );
        // Partition 1 delivers again: it counts again from that row on.
        let (before, _) = c.observe("police", &[1], &[6_000], later);
        assert_eq!(before, vec![Some(5_000)]);
    }

    #[test]
    fn sources_without_positions_are_always_read_to_their_end() {
        let t0 = Instant::now();
        let mut c = EventClock::new(0, Some(Duration::from_secs(1)));
        c.observe("market", &[0], &[1_000], t0);
        c.refresh(&[], false, t0);
        assert!(c.table_time("market", t0 + Duration::from_secs(2)).idle);
        let mut replay = EventClock::new(0, None);
        replay.observe("market", &[0], &[1_000], t0);
        replay.refresh(&[], false, t0);
        assert!(
            !replay
                .table_time("market", t0 + Duration::from_secs(3600))
                .idle
        );
    }

    #[test]
    fn alignment_pauses_partitions_ahead_of_the_slowest_backlog() {
        let t0 = Instant::now();
        let mut c = EventClock::new(0, Some(Duration::from_secs(30)));
        let parts =
            |p0: i64, p1: i64| [status("traffic", 0, p0, 100), status("traffic", 1, p1, 100)];
        c.refresh(&parts(0, 0), true, t0);
        c.observe("traffic", &[0], &[100_000], t0);
        // Partition 1 has a backlog and nothing delivered: partition 0 waits for it.
        let a = c.align(10_000, t0);
        assert_eq!(a.pause, vec![(Arc::from("city.traffic"), 0)]);
        c.observe("traffic", &[1], &[85_000], t0);
        c.refresh(&parts(10, 5), true, t0);
        // 15 s ahead, more than half the drift: stays paused.
        assert_eq!(c.align(10_000, t0), Alignment::default());
        c.observe("traffic", &[1], &[96_000], t0);
        let a = c.align(10_000, t0);
        assert_eq!(a.resume, vec![(Arc::from("city.traffic"), 0)]);
        // Nothing left to read anywhere: nothing is held back.
        c.observe("traffic", &[1], &[50_000], t0);
        c.refresh(&parts(100, 100), true, t0);
        assert_eq!(c.align(10_000, t0), Alignment::default());
    }

    #[test]
    fn a_snapshot_restores_every_partition() {
        let t0 = Instant::now();
        let mut c = EventClock::new(500, None);
        c.observe("traffic", &[0, 2], &[9_000, 7_000], t0);
        let saved = c.snapshot();
        let mut d = EventClock::new(500, None);
        d.restore(&saved, t0);
        assert_eq!(
            d.table_time("traffic", t0).watermark,
            Some(6_500),
            "the minimum over both partitions"
        );
    }
}
