//! Kafka in and out: the feed topics as a [`KafkaSource`], alerts and dead letters through
//! [`KafkaSink`]s sharing one tracked, idempotent [`KafkaProducer`].
//!
//! ```text
//!  city.traffic ─┐                                    ┌─▶ KafkaSink ─▶ citybrain.alerts
//!  city.police  ─┼─▶ KafkaSource ─RawBatch─▶ (engine) ─┤                    (key: group/cell)
//!  city.emergency┤   consumer group,                  └─▶ KafkaSink ─▶ citybrain.dlq
//!  city.market  ─┘   no auto-commit          KafkaProducer: idempotent, DeliveryTracker
//!        ▲                                                  │ confirmed sequence
//!        └──── commit(offsets) ◀── CommitTracker ◀──────────┘ + oldest event time still held
//! ```
//!
//! - [`config`]: the `[kafka]` table of the service's TOML file, validated as a whole.
//! - [`source`]: the consumer; [`progress`]: which offsets may be committed.
//! - [`sink`]: the producer and its delivery tracking.
//! - [`log`]: librdkafka's logs and errors, each kind once (then a summary a minute).

pub mod config;
pub mod log;
pub mod progress;
pub mod sink;
pub mod source;

pub use config::KafkaConfig;
pub use progress::{CommitTracker, TopicPartition};
pub use sink::{
    DEFAULT_MAX_IN_FLIGHT, DeliveryState, DeliveryTracker, KafkaProducer, KafkaSink,
    LatencyObserver,
};
pub use source::KafkaSource;
