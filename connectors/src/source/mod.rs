//! Sources: where raw records come from, and where they are told what is done.
//!
//! ```text
//!  Source::next_batch ──RawBatch──▶ (engine: decode, rules, sinks)
//!        ▲                                   │ effects durable up to these positions
//!        └──────── Source::commit ◀──────────┘ (Kafka: commit offsets; files: nothing)
//! ```
//!
//! A source cuts its input into *partitions* (a Kafka topic's partitions; a file or the
//! simulator is one partition per feed) and reports where each stands
//! ([`Source::partitions`]), so that the engine can keep event time per partition.

pub mod clock;
pub mod file;
pub mod nexmark;
pub mod simulator;

use std::sync::Arc;

use crate::Result;
use crate::feed::Feed;
use crate::record::RawBatch;

/// A partition of a source's input: a Kafka topic and partition number.
pub type PartitionId = (Arc<str>, i32);

/// Where one partition of a source stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    /// The partition.
    pub id: PartitionId,
    /// The feed read from it.
    pub feed: Feed,
    /// The next position to read (an offset), when known.
    pub position: Option<i64>,
    /// The end of the partition (Kafka: the high watermark) when known.
    pub end: Option<i64>,
}

impl PartitionStatus {
    /// Whether everything the partition held when last asked has been read.
    pub fn at_end(&self) -> bool {
        matches!((self.position, self.end), (Some(p), Some(e)) if p >= e)
    }

    /// Records between the read position and the end, when both are known.
    pub fn lag(&self) -> Option<i64> {
        Some((self.end? - self.position?).max(0))
    }
}

/// A stream of raw batches, each of one feed.
#[async_trait::async_trait]
pub trait Source: Send {
    /// The next batch of raw records; `Ok(None)` at the end of a finite input (and on every
    /// later call).
    ///
    /// # Errors
    ///
    /// When the underlying input cannot be read (an I/O error on a feed file, say). The error
    /// names the input; the source should not be polled again after an error.
    ///
    /// # Cancellation
    ///
    /// Cancel-safe between batches: if the future is dropped before it completes, no record is
    /// lost and the next call continues where the source stood.
    async fn next_batch(&mut self) -> Result<Option<RawBatch>>;

    /// Bytes consumed so far and total bytes when known, for progress bars.
    fn progress(&self) -> Option<Progress> {
        None
    }

    /// The acknowledgement: every record before `positions` (per partition, the next position
    /// to read) has had all its effects made durable, so the source may forget it (Kafka:
    /// commit the offsets for the consumer group). `last` is the final call before the source
    /// is dropped (a Kafka commit then waits for the broker). Sources that cannot resume
    /// ignore it.
    ///
    /// # Errors
    /// When a final commit fails. Earlier commits may fail silently: a later one covers them.
    async fn commit(&mut self, positions: &[(PartitionId, i64)], last: bool) -> Result<()> {
        let _ = (positions, last);
        Ok(())
    }

    /// The partitions the source reads now and where each stands; empty for sources without
    /// positions (files, the simulator).
    fn partitions(&self) -> Vec<PartitionStatus> {
        Vec::new()
    }

    /// Whether the source reads partitions with positions and ends ([`Source::partitions`]);
    /// a source without (files, the simulator) always counts as read to its end.
    fn has_positions(&self) -> bool {
        false
    }

    /// Stops (`paused`) or resumes reading `partitions` (watermark alignment: a partition far
    /// ahead of the others waits for them). Records already handed out are not taken back.
    ///
    /// # Errors
    /// When the source cannot pause or resume them.
    fn pause(&mut self, partitions: &[PartitionId], paused: bool) -> Result<()> {
        let _ = (partitions, paused);
        Ok(())
    }
}

/// How far a source has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes consumed so far.
    pub done_bytes: u64,
    /// Total bytes of a finite input, if known.
    pub total_bytes: Option<u64>,
}
