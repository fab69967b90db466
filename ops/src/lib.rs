//! # citybrain-ops
//!
//! Incidents: alerts become cases (立案) routed to the grid unit that owns the place (属地),
//! acknowledged and handled within time limits, escalated up the four-level chain when a limit
//! passes (督办: community → street → district → city) and closed after a check (核查结案).
//!
//! ```text
//!  alert JSON ──AlertIn──┐                 ┌──────────── Context ─────────────┐
//!  actions (file, Kafka, │                 │ Jurisdictions  Policy  Calendar  │
//!   HTTP) ──Action───────┼──▶ Desk ──▶ Book::{alert, act, advance} ──▶ IncidentEvent
//!  clock (watermark,     │     │            (pure decisions, Book::apply)      │
//!   wall − bound) ───────┘     │                                               ▼
//!                              └── api::router (axum) ◀── reads ──  Outputs: event log (file |
//!                                   bearer tokens (Access)          Kafka), incident table,
//!                                                                   CAP 1.2, terminal lines
//! ```
//!
//! - [`jurisdiction::Jurisdictions`]: community polygons from GeoJSON, every H3 cell of the
//!   routing resolution mapped to one community, [`unit::Code`]s whose prefixes give parents.
//! - [`policy::Policy`] (TOML) and [`calendar::Calendar`] (working time, 调休): the deadlines;
//!   [`policy::Terms`] are copied onto each incident when it opens.
//! - [`incident::Book`]: every incident; decisions produce [`incident::IncidentEvent`]s and
//!   [`incident::Book::apply`] is the only code that changes state, so the event log rebuilds
//!   it after a restart ([`store`]). Deadlines are timers on the state (`due_at`).
//! - [`correlate`]: which alerts are one incident; deterministic incident ids.
//! - [`desk::Desk`]: the book at work, shared by the engine and the HTTP API ([`api::router`]),
//!   with the clock ([`desk::ClockMode`]) and the outputs ([`store::Outputs`]).
//! - [`kafka`]: restoring from `citybrain.incident-events`, reading `citybrain.incident-actions`.
//! - [`cap`]: CAP 1.2 XML; [`report`]: indicators (考核) per unit and day.
//!
//! This crate knows nothing of SQL: alerts arrive as JSON (or [`incident::AlertIn`]).

pub mod access;
pub mod api;
pub mod calendar;
pub mod cap;
pub mod correlate;
pub mod desk;
pub mod error;
pub mod incident;
pub mod jurisdiction;
pub mod kafka;
pub mod policy;
pub mod report;
pub mod store;
pub mod time;
pub mod unit;

pub use access::Access;
pub use api::router;
pub use correlate::RuleProfile;
pub use desk::{ClockMode, Desk, DeskConfig};
pub use error::{Error, Result};
pub use incident::{Action, AlertIn, Book, Context, Incident, IncidentEvent};
pub use jurisdiction::{Jurisdictions, Location};
pub use policy::{Policy, Severity};
pub use unit::{Code, Level};
