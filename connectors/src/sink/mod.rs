//! Sinks: where alerts and dead letters go.

pub mod file;

pub use file::JsonlSink;

use futures::future::BoxFuture;

use crate::Result;

/// Resolves once every record written before it was made is durable (see [`Sink::barrier`]).
pub type Barrier = BoxFuture<'static, Result<()>>;

/// One record to write: a JSON payload with an optional key and headers (used by message-bus
/// sinks; file sinks write only the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRecord {
    /// Partitioning key (e.g. the rule name or the cell of an alert).
    pub key: Option<String>,
    /// The record, one JSON value without newlines.
    pub payload: String,
    /// Extra metadata as name/value pairs.
    pub headers: Vec<(String, String)>,
}

impl SinkRecord {
    /// A record with only a payload.
    pub fn new(payload: impl Into<String>) -> Self {
        Self {
            key: None,
            payload: payload.into(),
            headers: Vec::new(),
        }
    }
}

/// A destination for records.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Writes `records` in order. They may sit in a buffer until [`Sink::flush`].
    ///
    /// # Errors
    ///
    /// When the destination cannot be written; the error names it. After an error, which of
    /// `records` reached the destination is unknown.
    ///
    /// # Cancellation
    ///
    /// Not cancel-safe: if the future is dropped, some of `records` may have been written.
    async fn write(&mut self, records: &[SinkRecord]) -> Result<()>;

    /// Makes everything written so far durable (for files: flush buffers and fsync).
    ///
    /// # Errors
    ///
    /// When buffered data cannot be written or synced; the error names the destination.
    ///
    /// # Cancellation
    ///
    /// Safe to drop and call again: a later successful flush covers everything written before.
    async fn flush(&mut self) -> Result<()>;

    /// A future that resolves once everything written so far is durable, without waiting for
    /// it here: the caller keeps working and checks later (the engine commits input positions
    /// once their outputs are durable). The default flushes now and returns a resolved future.
    ///
    /// # Errors
    /// The flush's error; the future resolves to an error when a delivery fails for good.
    async fn barrier(&mut self) -> Result<Barrier> {
        self.flush().await?;
        Ok(Box::pin(futures::future::ready(Ok(()))))
    }
}
