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
//!  RecordBatch (a feed) ──▶ operator::RuleRunner ──▶ Emission { window, result rows }
//!                              watermarks, windows, late rows
//! ```
//!
//! - [`Catalog`]: the tables rules may read (the engine fills it with the city feeds), so this
//!   crate knows nothing about where data comes from.
//! - [`CompiledRule`]: metadata ([`RuleMeta`]) plus a physical plan that reads from a slot the
//!   runner refills before each execution.
//! - [`RuleRunner`]: one per rule; turns input batches into [`Emission`]s and late rows.
//! - [`batch::evaluate`]: the same rule as one batch query, the oracle for tests.
//! - [`Problem`]: a rule author's mistake with file, line and column.

pub mod batch;
pub mod chain;
pub mod compile;
pub mod error;
mod flink;
mod flink_functions;
pub mod functions;
pub mod operator;
pub mod rule;
pub mod window;

pub use chain::{compile_all, compile_each};
pub use compile::{Catalog, CompiledRule, KEY_PREFIX, Shape, compile};
pub use error::{Error, Problem, Result};
pub use operator::{
    DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_OUT_OF_ORDERNESS_MS, Emission, RuleRunner, RunnerConfig, Step,
    Window,
};
pub use rule::{Emit, RuleMeta, RuleSource, Severity, read_dir};

/// Reads and plans every rule below `dir` (views before the rules reading them), reporting the
/// problems of all files at once.
///
/// # Errors
/// [`Error::Invalid`] listing every problem in every file, or a read error.
pub async fn load_dir(dir: &std::path::Path, catalog: &Catalog) -> Result<Vec<CompiledRule>> {
    compile_all(&read_dir(dir)?, catalog).await
}
