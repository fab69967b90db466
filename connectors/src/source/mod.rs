//! Sources: where raw records come from.

pub mod file;
pub mod nexmark;
pub mod simulator;

use crate::Result;
use crate::record::RawBatch;

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
}

/// How far a source has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes consumed so far.
    pub done_bytes: u64,
    /// Total bytes of a finite input, if known.
    pub total_bytes: Option<u64>,
}
