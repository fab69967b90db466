//! Which consumed offsets may be committed: only those whose effects are durable.
//!
//! Every batch the engine processes adds, per partition, a *chunk* (first and last offset, the
//! largest event time among its well-formed records). A chunk is **released** once no rule
//! still holds any of its rows (its largest event time is below the engine's oldest needed
//! event time, or nothing is held); at that moment every output it caused has been handed to
//! the producer, so the chunk remembers the producer's sequence mark. It is **done** once the
//! broker has acknowledged everything up to that mark. The committable offset of a partition
//! is one past the last chunk of the longest done prefix.
//!
//! ```text
//!  partition 0:  [0..99 done] [100..180 done] [181..240 held by a window] [241..300 done]
//!                                            ▲ commit 181: 241.. waits for the chunk before it
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// A partition of a topic.
pub type TopicPartition = (Arc<str>, i32);

#[derive(Debug, Clone)]
struct Chunk {
    last: i64,
    max_ts: Option<i64>,
    released_at: Option<u64>,
}

/// Consumed-but-uncommitted chunks of every partition.
#[derive(Debug, Default)]
pub struct CommitTracker {
    parts: BTreeMap<TopicPartition, VecDeque<Chunk>>,
}

impl CommitTracker {
    /// Records that offsets `..=last` of `tp` were processed (in offset order per partition);
    /// `max_ts` is the largest event time among them (`None` when all were malformed).
    pub fn processed(&mut self, tp: TopicPartition, last: i64, max_ts: Option<i64>) {
        self.parts.entry(tp).or_default().push_back(Chunk {
            last,
            max_ts,
            released_at: None,
        });
    }

    /// Releases chunks no rule needs any more (`oldest_needed`: the engine's oldest event time
    /// held by the rules reading the partition's topic, `None` when they hold nothing) at producer sequence mark `produced`, then pops the
    /// chunks acknowledged up to `confirmed` (every output with a sequence number below it has
    /// been acknowledged). Returns the offset to commit (next offset to read) of each partition
    /// that advanced.
    pub fn advance(
        &mut self,
        oldest_needed: impl Fn(&TopicPartition) -> Option<i64>,
        produced: u64,
        confirmed: u64,
    ) -> Vec<(TopicPartition, i64)> {
        let mut commits = Vec::new();
        for (tp, chunks) in &mut self.parts {
            let oldest_needed = oldest_needed(tp);
            for c in chunks.iter_mut().filter(|c| c.released_at.is_none()) {
                let free = match (c.max_ts, oldest_needed) {
                    (None, _) | (_, None) => true,
                    (Some(t), Some(oldest)) => t < oldest,
                };
                if free {
                    c.released_at = Some(produced);
                }
            }
            let mut next = None;
            while let Some(c) = chunks.front() {
                match c.released_at {
                    Some(mark) if mark <= confirmed => {
                        next = Some(c.last + 1);
                        chunks.pop_front();
                    }
                    _ => break,
                }
            }
            if let Some(offset) = next {
                commits.push((tp.clone(), offset));
            }
        }
        self.parts.retain(|_, c| !c.is_empty());
        commits
    }

    /// Forgets a partition taken away by a rebalance.
    pub fn revoke(&mut self, tp: &TopicPartition) {
        self.parts.remove(tp);
    }

    /// Chunks not yet committable, over all partitions.
    pub fn pending(&self) -> usize {
        self.parts.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("city.traffic".into(), p)
    }

    #[test]
    fn commits_only_the_done_prefix() {
        let mut t = CommitTracker::default();
        t.processed(tp(0), 9, Some(1_000)); // rows at ts <= 1000
        t.processed(tp(0), 19, Some(5_000)); // held by an open window starting at 4000
        t.processed(tp(0), 29, None); // only malformed records
        // Nothing acknowledged yet: nothing to commit even though chunk 1 is released.
        assert!(t.advance(|_| Some(4_000), 3, 0).is_empty());
        // Outputs up to mark 3 acknowledged: chunk 1 done, chunk 2 still held blocks chunk 3.
        assert_eq!(t.advance(|_| Some(4_000), 5, 3), vec![(tp(0), 10)]);
        // The window closes (its alert has sequence number 7): chunk 2 released at mark 8.
        assert!(t.advance(|_| None, 8, 5).is_empty());
        assert_eq!(t.advance(|_| None, 8, 8), vec![(tp(0), 30)]);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn partitions_advance_independently_and_revoke_forgets() {
        let mut t = CommitTracker::default();
        t.processed(tp(0), 4, Some(10));
        t.processed(tp(1), 7, Some(99));
        assert_eq!(
            t.advance(|tp| Some(if tp.1 == 0 { 50 } else { 20 }), 0, 0),
            vec![(tp(0), 5)]
        );
        t.revoke(&tp(1));
        assert_eq!(t.pending(), 0);
        assert!(t.advance(|_| None, 0, 0).is_empty());
    }
}
