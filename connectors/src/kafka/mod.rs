//! Kafka in and out: the feed topics as a [`KafkaSource`], alerts and dead letters through
//! [`KafkaSink`]s sharing one tracked, idempotent [`KafkaProducer`].
//!
//! ```text
//!  city.traffic ─┐                                    ┌─▶ KafkaSink ─▶ citybrain.alerts
//!  city.police  ─┼─▶ KafkaSource ─RawBatch─▶ (engine) ─┤                    (key: group/cell)
//!  city.emergency┤   every partition, from            └─▶ KafkaSink ─▶ citybrain.dlq
//!  city.market  ─┘   the checkpoint's offsets KafkaProducer: idempotent, DeliveryTracker
//!        ▲                                                  │ Sink::barrier
//!        └──── Source::commit(a durable checkpoint's offsets) ◀┘
//!
//!  citybrain.control (1 partition) ──▶ Leadership: the holder of the lease its records keep
//!                                      is active; the others stand by
//! ```
//!
//! - [`config`]: the `[kafka]` table of the service's TOML file, validated as a whole.
//! - [`source`]: the consumer of the feed topics (every partition for the rules service; a
//!   consumer group's share of them for `citybrain ingest`).
//! - [`leader`]: which instance of a group is active.
//! - [`sink`]: the producer and its delivery tracking.
//! - [`log`]: librdkafka's logs and errors, each kind once (then a summary a minute).

pub mod config;
pub mod leader;
pub mod log;
pub mod sink;
pub mod source;

/// A partition of a topic.
pub use crate::source::PartitionId as TopicPartition;
pub use config::KafkaConfig;
pub use leader::Leadership;
pub use sink::{
    DEFAULT_MAX_IN_FLIGHT, DeliveryState, DeliveryTracker, KafkaProducer, KafkaSink,
    LatencyObserver,
};
pub use source::KafkaSource;
