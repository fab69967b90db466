//! # citybrain-engine
//!
//! Wires the parts into the one data path and drives it from the `citybrain` binary.
//!
//! ```text
//!  connectors::Source ─▶ connectors::Decoder (+ Pseudonymizer) ─▶ rules::RuleRunner ─▶ alert
//!   (files, simulator)     JSON → Arrow, personal fields hashed     windows, watermarks    │
//!                                   │ malformed                      │ late               ▼
//!                                   └──────────▶ dead-letter Sink ◀──┘          alert Sink
//! ```
//!
//! - [`pipeline::Pipeline`]: owns the decoders, one [`citybrain_rules::RuleRunner`] per rule
//!   and the two sinks; [`pipeline::Stats`] is its summary.
//! - [`alert`]: result rows to alert JSON with deterministic ids.
//! - [`pipeline::city_catalog`]: the feed standard as the tables rules may read.

pub mod alert;
pub mod error;
pub mod pipeline;
pub mod reload;

pub use error::{Error, Result};
pub use pipeline::{AlertFormat, Pipeline, PipelineConfig, Reloaded, Stats, city_catalog};
pub use reload::RuleWatcher;
