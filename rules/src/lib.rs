//! # citybrain-rules
//!
//! Analysts' SQL rules: loading, the Flink window front end, the city functions, planning once,
//! and running the plans over event-time windows.
//!
//! ```text
//!  rules/*.sql ──▶ rule::read_dir ──▶ RuleSource
//!                                        │ compile::compile(src, &Catalog)
//!                                        ▼
//!                  window::rewrite (TUMBLE(TABLE t, DESCRIPTOR(ts), size) from tokens)
//!                  DataFusion: SQL ─▶ LogicalPlan ─▶ ExecutionPlan (planned once)
//!                                        │
//!                                        ▼
//!  (table, RecordBatch) ──▶ graph::RuleGraph ──▶ GraphStep { alerts, late rows }
//!                             │ per rule, views first
//!                             ▼
//!                          operator::RuleRunner ──▶ Emission { window, result rows }
//!                             watermarks, late rows; Box<dyn WindowState>
//! ```
//!
//! - [`Catalog`]: the tables rules may read (the engine fills it with the city feeds), so this
//!   crate knows nothing about where data comes from.
//! - [`CompiledRule`]: metadata ([`RuleMeta`]) plus a physical plan that reads from a slot the
//!   runner refills before each execution.
//! - [`RuleRunner`]: one per rule; turns input batches into [`Emission`]s and late rows. Its
//!   window state (slices, sessions, interval-join buffers, revisions) sits behind one trait
//!   and is saved and restored as Arrow tables ([`StateTable`]).
//! - [`RuleGraph`]: every rule of a library at work, views feeding their readers, reloaded in
//!   place ([`RuleGraph::reload`]), snapshotted and restored as a whole ([`GraphSnapshot`]).
//! - [`batch::evaluate`]: the same rule as one batch query, the oracle for tests.
//! - [`Problem`]: a rule author's mistake with file, line and column; [`check`] holds what
//!   planning refuses so that no rule can hurt the engine (nesting depth, recursion, joins on
//!   no key; window limits sit in [`window`]).

pub mod batch;
pub mod chain;
pub mod check;
pub mod compile;
pub mod error;
mod flink;
mod flink_functions;
pub mod functions;
pub mod graph;
pub mod operator;
pub mod rule;
mod script;
pub mod window;

pub use chain::{compile_all, compile_each};
pub use compile::{Catalog, CompiledRule, KEY_PREFIX, RowKey, Shape, TIME_PREFIX, compile};
pub use error::{Error, Problem, Result};
pub use graph::{
    GraphSnapshot, GraphStep, Reloaded, Restored, RuleFailure, RuleGraph, RuleSnapshot,
};
pub use operator::{
    DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_OUT_OF_ORDERNESS_MS, Emission, InputTime, RuleRunner,
    RunnerConfig, StateTable, Step, Window,
};
pub use rule::{
    DEFAULT_SEVERITY, Emit, Limits, Location, RuleMeta, RuleSource, Severity, read_dir,
};
pub use script::split_script;

/// Reads and plans every rule below `dir` (views before the rules reading them), reporting the
/// problems of all files at once.
///
/// # Errors
/// [`Error::Invalid`] listing every problem in every file, or a read error.
pub async fn load_dir(dir: &std::path::Path, catalog: &Catalog) -> Result<Vec<CompiledRule>> {
    compile_all(&read_dir(dir)?, catalog).await
}
