//! The feed catalog, decoding into Arrow with pseudonymisation at ingest, sources and sinks.
//!
//! Every department publishes events as JSON lines in a feed declared in the [`Catalog`]: a
//! table in Flink SQL DDL (`feeds/city.sql` holds the city's four: traffic, police, emergency,
//! market; a department adds its own with one more file). A [`Feed`] is a handle on one table:
//! [`Feed::schema`] is the Arrow schema it decodes into, `docs/feeds.md` the city's published
//! standard.
//!
//! A [`Source`] yields [`RawBatch`]es: raw JSON payloads of one feed, each tagged with its
//! [`Origin`] (file and line, Kafka position, simulator sequence number). A [`Decoder`] turns a
//! raw batch into an Arrow `RecordBatch` as the feed's table declares it, replacing personal
//! fields (plates, phone numbers, ID numbers) by keyed pseudonyms from a [`Pseudonymizer`] so
//! that raw personal data never enters the engine; records that break the declaration become
//! [`DeadLetter`]s with a precise reason.
//! [`DecodeAhead`] runs decoders on tokio's blocking pool, a few batches ahead of the rules.
//! The [`EventTimeGuard`] then sets aside records dated too far ahead (a wrong clock), before
//! they reach any watermark.
//! A [`Sink`] takes [`SinkRecord`]s (alerts, dead letters) and makes them durable.
//!
//! ```text
//!  FileSource --+                         +------------ Decoder -------------+
//!  Simulator ---+-- Source -- RawBatch -->| JSON --> Arrow builders          |--> RecordBatch
//!  KafkaSource -+   (payload + Origin)    | personal fields --> Pseudonymizer|     (to engine)
//!                                         +----------------------------------+--> DeadLetter
//!                                                                                     |
//!  engine alerts --> SinkRecord --> Sink (JsonlSink: file, stdout; KafkaSink) <-- DeadLetter::to_json
//! ```
//!
//! [`CitySimulator`] generates a realistic, deterministic city (rush hours, accident bursts, a
//! merchant with a food-safety problem, ...) for demos, tests and benchmarks;
//! [`write_feed_files`] writes its output as feed files that [`FileSource`] reads back.
//! [`write_nexmark_files`] writes the Nexmark benchmark's `person`, `auction` and `bid` tables
//! (`feeds/nexmark.sql`) the same way, seeded.

pub mod catalog;
pub mod decode;
pub mod feed;
pub mod kafka;
pub mod privacy;
pub mod record;
pub mod sink;
pub mod source;

use std::path::PathBuf;

pub use catalog::{Catalog, ORIGIN_COLUMN};
pub use decode::{DecodeAhead, Decoded, DecodedBatch, Decoder, EventTimeGuard, GuardConfig};
pub use feed::Feed;
pub use privacy::{KeySource, Pseudonymizer};
pub use record::{DeadLetter, DeadReason, Origin, RawBatch, RawRecord};
pub use sink::{Barrier, JsonlSink, Sink, SinkRecord};
pub use source::clock::{Alignment, DEFAULT_IDLE_TIMEOUT, EventClock, TableTime};
pub use source::file::{DEFAULT_MAX_BATCH, FileSource};
pub use source::nexmark::{NexmarkConfig, NexmarkCounts, NexmarkTable, write_nexmark_files};
pub use source::simulator::{
    CityConfig, CitySimulator, FeedCounts, SimulatorSource, SplitMix64, write_feed_files,
};
pub use source::{PartitionId, PartitionStatus, Progress, Source};

/// Errors of sources and sinks. Bad records are not errors: they become [`DeadLetter`]s.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input directory holds none of the catalog's feed files (a user error).
    #[error("no feed files in {dir}: expected at least one of {expected}")]
    NoFeedFiles { dir: PathBuf, expected: String },
    /// Catalog files with mistakes: every problem of every file, each with file, line and column.
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Catalog {
        problems: Vec<catalog::CatalogProblem>,
    },
    /// A feed file exists but cannot be opened.
    #[error("cannot open {path}")]
    OpenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Reading an open feed file failed.
    #[error("cannot read {path}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An output directory cannot be created.
    #[error("cannot create directory {path}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An output file cannot be created.
    #[error("cannot create {path}")]
    CreateFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing to an output file failed.
    #[error("cannot write {path}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Moving a finished output file into place failed.
    #[error("cannot move {from} to {to}")]
    RenameFile {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    /// Flushing or syncing an output file to disk failed.
    #[error("cannot flush {path} to disk")]
    FlushFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing to standard output failed (e.g. a closed pipe).
    #[error("cannot write to stdout")]
    WriteStdout { source: std::io::Error },
    /// The pseudonymisation key file cannot be used (a user error).
    #[error("pseudonymisation key file {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    /// A Kafka client call failed (configuration, subscription, commit, produce).
    #[error("kafka: {action}")]
    Kafka {
        action: String,
        source: rdkafka::error::KafkaError,
    },
    /// The control topic that decides which instance is active cannot be used.
    #[error("kafka: control topic {topic}: {detail}")]
    ControlTopic { topic: String, detail: String },
    /// The broker did not acknowledge a produced record before librdkafka gave up
    /// (`message.timeout.ms`); its input offsets stay uncommitted.
    #[error("kafka: delivery failed {detail}")]
    Delivery { detail: String },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
