//! Per-partition watermarks: a feed's watermark is the minimum over its partitions (as in
//! Flink), so one partition read ahead of another does not make the other's events late.
//! A partition that has delivered nothing for the idle timeout stops holding the feed back.
//!
//! ```text
//!  city.traffic/0  max ts 10:05:00 ─┐
//!  city.traffic/1  max ts 10:03:10 ─┼─ min ─▶ feed watermark 10:03:10 − out-of-orderness
//!  city.traffic/2  idle for 30 s  ──┘ (ignored)
//! ```
//!
//! The engine's rules currently keep one watermark per rule from the event times they see; the
//! service reports this watermark (metrics: watermark delay) and hands it to the rules once they
//! accept an external watermark (see `docs/delivery.md`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::feed::Feed;

/// Idle timeout used when none is configured: 30 seconds, long enough for a quiet department
/// (a market inspector's tablet) not to count as idle between two reports in normal hours.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct PartitionState {
    max_ts: i64,
    last_seen: Instant,
}

/// Largest event time per (feed, partition) and when the partition last delivered.
#[derive(Debug)]
pub struct PartitionWatermarks {
    /// Over every feed's own bound (its `WATERMARK`), when set.
    out_of_orderness_ms: Option<i64>,
    idle_timeout: Duration,
    parts: BTreeMap<(Feed, i32), PartitionState>,
}

impl PartitionWatermarks {
    /// Watermarks lagging behind the largest event time of each partition by
    /// `out_of_orderness_ms`, or when `None` by each feed's declared bound
    /// ([`Feed::out_of_orderness_ms`]).
    pub fn new(out_of_orderness_ms: Option<i64>, idle_timeout: Duration) -> Self {
        Self {
            out_of_orderness_ms: out_of_orderness_ms.map(|b| b.max(0)),
            idle_timeout,
            parts: BTreeMap::new(),
        }
    }

    /// Records an event time read from `partition` of `feed` at `now`.
    pub fn observe(&mut self, feed: &Feed, partition: i32, ts: i64, now: Instant) {
        let s = self
            .parts
            .entry((feed.clone(), partition))
            .or_insert(PartitionState {
                max_ts: ts,
                last_seen: now,
            });
        s.max_ts = s.max_ts.max(ts);
        s.last_seen = now;
    }

    /// Forgets a partition (revoked by a rebalance).
    pub fn remove(&mut self, feed: &Feed, partition: i32) {
        self.parts.remove(&(feed.clone(), partition));
    }

    /// The feed's watermark at `now`: the minimum over its partitions that are not idle of
    /// (largest event time − out-of-orderness). When every partition is idle, the largest of
    /// them counts (the feed as a whole is quiet; nothing holds it back). `None` before any
    /// event.
    pub fn feed_watermark(&self, feed: &Feed, now: Instant) -> Option<i64> {
        let parts = self
            .parts
            .range((feed.clone(), i32::MIN)..=(feed.clone(), i32::MAX));
        let mut active = None::<i64>;
        let mut any = None::<i64>;
        for (_, s) in parts {
            any = Some(any.map_or(s.max_ts, |a| a.max(s.max_ts)));
            if now.duration_since(s.last_seen) < self.idle_timeout {
                active = Some(active.map_or(s.max_ts, |a| a.min(s.max_ts)));
            }
        }
        let bound = self
            .out_of_orderness_ms
            .unwrap_or_else(|| feed.out_of_orderness_ms());
        active.or(any).map(|t| t.saturating_sub(bound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn slowest_active_partition_holds_the_feed() {
        let t0 = Instant::now();
        let city = Catalog::city();
        let traffic = city.table("traffic").expect("traffic");
        let police = city.table("police").expect("police");
        // No bound given: each feed's own (5 s in feeds/city.sql).
        let mut w = PartitionWatermarks::new(None, Duration::from_secs(30));
        assert_eq!(w.feed_watermark(traffic, t0), None);
        w.observe(traffic, 0, 100_000, t0);
        w.observe(traffic, 1, 40_000, t0);
        w.observe(police, 0, 900_000, t0);
        assert_eq!(w.feed_watermark(traffic, t0), Some(35_000));
        // Partition 1 idle past the timeout: partition 0 alone counts.
        w.observe(traffic, 0, 120_000, t0 + Duration::from_secs(31));
        assert_eq!(
            w.feed_watermark(traffic, t0 + Duration::from_secs(31)),
            Some(115_000)
        );
        // It delivers again and holds the feed back again.
        w.observe(traffic, 1, 50_000, t0 + Duration::from_secs(32));
        assert_eq!(
            w.feed_watermark(traffic, t0 + Duration::from_secs(32)),
            Some(45_000)
        );
        w.remove(traffic, 1);
        assert_eq!(
            w.feed_watermark(traffic, t0 + Duration::from_secs(32)),
            Some(115_000)
        );
        assert_eq!(w.feed_watermark(police, t0), Some(895_000));
        let mut w = PartitionWatermarks::new(Some(1_000), Duration::from_secs(30));
        w.observe(police, 0, 900_000, t0);
        assert_eq!(w.feed_watermark(police, t0), Some(899_000));
    }
}
