//! # citybrain-engine
//!
//! Wires the parts into the one data path and drives it from the `citybrain` binary.
//!
//! ```text
//!  connectors::Source ─▶ connectors::Decoder (+ Pseudonymizer) ─▶ rules::RuleRunner ─▶ alert
//!   (files, simulator,     JSON → Arrow, personal fields hashed     windows, watermarks    │
//!    Kafka)                         │ malformed                      │ late               ▼
//!                                   └──────────▶ dead-letter Sink ◀──┘          alert Sink
//! ```
//!
//! - [`pipeline::Pipeline`]: owns the decoders, the [`citybrain_rules::RuleGraph`] and the two
//!   sinks; [`Pipeline::run`] is the one loop of every mode, acknowledging durable progress
//!   to the source ([`citybrain_connectors::Source::commit`]); [`pipeline::Stats`] is its
//!   summary.
//! - [`alert`]: result rows to alert JSON with deterministic ids, located and routed to the
//!   grid unit that owns the place.
//! - [`incidents`]: the incident stage: alerts and the clock into the incident desk
//!   (`citybrain_ops`), actions files, the run's desk.
//! - [`pipeline::rules_catalog`]: a feed catalog (`--feeds`, the CREATE TABLEs of Flink scripts,
//!   by default the city's `feeds/city.sql`) as the tables rules may read: schema, event time,
//!   watermark bound, record id columns; [`pipeline::city_catalog`] the city's.
//! - [`service`]: `run --brokers`, the Kafka service with at-least-once delivery (commits only
//!   durable progress), and `simulate --brokers`; [`config`] its validated TOML file;
//!   [`metrics`] the Prometheus endpoint and every metric name, served by [`http::serve`]
//!   (axum on hyper, size and time limits as layers and connection settings).
//! - [`ingest`]: `citybrain ingest`, the stateless ingest tier: raw feed topics in, decoded,
//!   validated and pseudonymised standard records out (`<topic>.std`), any number of
//!   processes in one consumer group.
//! - [`console`]: the operations console (page, assets) and the incident API on one address.

pub mod alert;
pub mod checkpoint;
pub mod config;
pub mod console;
pub mod error;
pub mod http;
pub mod incidents;
pub mod ingest;
pub mod metrics;
pub mod pipeline;
pub mod reload;
pub mod service;

pub use citybrain_rules::Reloaded;
pub use config::ServiceConfig;
pub use error::{Error, Result};
pub use pipeline::{
    AlertFormat, Checkpointing, DECODE_AHEAD, Observer, Pipeline, PipelineConfig, RunOptions,
    RunOutcome, Stats, Stopped, city_catalog, rules_catalog,
};
pub use reload::RuleWatcher;
