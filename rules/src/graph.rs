//! The rule graph: every rule of a library running together, views feeding the rules that read
//! them, reloaded in place, saved and restored as a whole.
//!
//! ```text
//!  (table name, RecordBatch) ──▶ RuleGraph::process
//!                                  │ stages in dependency order (views before readers)
//!                                  ├─ stage reading the table: RuleRunner::process
//!                                  │     ├─ alert rule: emissions ─────────────▶ GraphStep::alerts
//!                                  │     └─ view: rows, then its watermark ──┐
//!                                  ├─ stages reading the view ◀──────────────┘ (same pass)
//!                                  └─ late rows of the table's batch ─────────▶ GraphStep::late_rows
//! ```
//!
//! [`RuleGraph`] knows tables by name only (the [`Catalog`](crate::Catalog)'s and the views'):
//! where rows come from is the caller's business. A table's watermark may be set from outside
//! ([`RuleGraph::advance`]) by a source that tracks event time per partition.
//!
//! **Isolation.** A rule that fails (an execution error such as an integer division by zero
//! or an oversized regex, a panic, or one of its limits exceeded: [`crate::rule::Limits`]) is
//! stopped alone: its state is dropped, it is reported in [`GraphStep::failed`], and every
//! other rule goes on. A view that fails stops the rules reading it (and theirs) too, each
//! reported with the view named. A stopped rule stays stopped until its text (or the text of
//! the view that stopped it) changes on a [`RuleGraph::reload`]: a rule fixed in the folder
//! comes back.
//!
//! [`RuleGraph::snapshot`] returns each rule's state with a fingerprint of its text;
//! [`RuleGraph::restore`] puts back the state of every rule whose text (and whose views' text)
//! is unchanged, and leaves the others empty.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arrow::array::RecordBatch;
use futures::FutureExt;
use sha2::{Digest, Sha256};

use crate::compile::CompiledRule;
use crate::error::Result;
use crate::operator::{Emission, InputTime, RuleRunner, RunnerConfig, StateTable};
use crate::rule::Emit;

/// One rule at work, with where its inputs come from.
struct Stage {
    runner: RuleRunner,
    /// Input index of each table (not a view) it reads, by table name.
    tables: Vec<(String, usize)>,
    /// Input index of each view it reads, with the stage producing that view.
    views: Vec<(usize, usize)>,
    /// SHA-256 over the rule's text and its views' fingerprints, hex.
    fingerprint: String,
    /// Why the rule was stopped, when it was (see the module docs).
    failed: Option<String>,
}

impl Stage {
    /// Connects `runner` to the tables and the views (produced by `earlier` stages) it reads.
    fn wire(runner: RuleRunner, earlier: &[Stage]) -> Self {
        let mut tables = Vec::new();
        let mut views = Vec::new();
        for (input, name) in runner.rule().inputs.iter().enumerate() {
            match earlier.iter().position(|s| {
                s.runner.rule().meta.emit == Emit::View && s.runner.rule().meta.view_name() == name
            }) {
                Some(producer) => views.push((producer, input)),
                None => tables.push((name.clone(), input)),
            }
        }
        let mut runner = runner;
        for (_, input) in &views {
            // A view's watermark is its producer's; the producer's tables are the ones that
            // may be idle.
            runner.set_may_idle(*input, false);
        }
        let mut hash = Sha256::new();
        hash.update(runner.rule().meta.text.as_bytes());
        for (producer, _) in &views {
            hash.update(earlier[*producer].fingerprint.as_bytes());
        }
        let fingerprint = hex(&hash.finalize());
        Self {
            runner,
            tables,
            views,
            fingerprint,
            failed: None,
        }
    }

    fn reads_table<'a>(&'a self, table: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.tables
            .iter()
            .filter(move |(t, _)| t == table)
            .map(|(_, input)| *input)
    }
}

/// What [`RuleGraph::each_reader`] does to a rule reading the table.
#[derive(Clone, Copy)]
enum Op<'a> {
    /// Rows, with their watermarks when the source gives them.
    Batch(&'a RecordBatch, Option<InputTime<'a>>),
    /// A watermark.
    Advance(i64),
    /// Idle or not.
    Idle(bool),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`RuleGraph::reload`] changed, by rule id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// New rules, starting from now.
    pub added: Vec<String>,
    /// Rules whose text (or a view they read) changed: restarted with empty state.
    pub changed: Vec<String>,
    /// Rules no longer in the folder: stopped, open windows dropped.
    pub removed: Vec<String>,
    /// Rules running on untouched, state kept.
    pub kept: usize,
}

/// What one batch, watermark or end of input did to the graph.
#[derive(Debug, Default)]
pub struct GraphStep {
    /// Results of alert rules, in the order they were produced.
    pub alerts: Vec<(Arc<CompiledRule>, Emission)>,
    /// Rows of the table's batch that were late, by row index, with the rules they were late
    /// for (rows of views are counted in [`GraphStep::late`] only).
    pub late_rows: BTreeMap<u32, Vec<String>>,
    /// Late rows per rule id, table and view rows alike.
    pub late: BTreeMap<String, u64>,
    /// Rules this step stopped, in the order they failed (see the module docs).
    pub failed: Vec<RuleFailure>,
}

/// A rule stopped because it failed.
#[derive(Debug, Clone)]
pub struct RuleFailure {
    /// The rule.
    pub rule: Arc<CompiledRule>,
    /// What went wrong, for a person: the error, the panic, or the limit and its header.
    pub reason: String,
    /// When the rule stopped because a view it reads failed: that view's rule id.
    pub view: Option<String>,
}

/// One rule's state in a [`GraphSnapshot`].
#[derive(Debug, Clone)]
pub struct RuleSnapshot {
    /// The rule id.
    pub id: String,
    /// SHA-256 (hex) over the rule's text and the fingerprints of the views it reads: stable
    /// across builds, so a saved state is put back only into the rule that made it.
    pub fingerprint: String,
    /// The runner's tables (see [`RuleRunner::snapshot`]).
    pub tables: Vec<StateTable>,
}

/// The state of every rule of a graph at one point between batches.
#[derive(Debug, Clone, Default)]
pub struct GraphSnapshot {
    /// In dependency order.
    pub rules: Vec<RuleSnapshot>,
}

/// What [`RuleGraph::restore`] did, by rule id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// Rules whose state was put back.
    pub restored: Vec<String>,
    /// Rules whose text (or a view they read) changed since the snapshot: they start empty.
    pub changed: Vec<String>,
    /// Rules the snapshot does not know: they start empty.
    pub added: Vec<String>,
    /// Rules of the snapshot no longer loaded: their state is dropped.
    pub dropped: Vec<String>,
}

/// Every rule of a library at work; see the module docs.
pub struct RuleGraph {
    config: RunnerConfig,
    stages: Vec<Stage>,
}

impl std::fmt::Debug for RuleGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleGraph")
            .field("config", &self.config)
            .field("rules", &self.rule_ids())
            .finish()
    }
}

impl RuleGraph {
    /// Wires `rules`, which must be in dependency order (as [`crate::load_dir`] and
    /// [`crate::compile_all`] return them).
    pub fn new(rules: Vec<CompiledRule>, config: RunnerConfig) -> Self {
        let mut stages: Vec<Stage> = Vec::with_capacity(rules.len());
        for rule in rules {
            let runner = RuleRunner::new(Arc::new(rule), config);
            stages.push(Stage::wire(runner, &stages));
        }
        Self { config, stages }
    }

    /// Swaps in a new set of rules (in dependency order) while running: an unchanged rule keeps
    /// its runner and state; a new or changed rule (or one reading a changed view) starts
    /// empty from the next batch; a removed rule stops. Other rules are not disturbed.
    pub fn reload(&mut self, rules: Vec<CompiledRule>) -> Reloaded {
        let mut old: BTreeMap<String, (RuleRunner, Option<String>)> = self
            .stages
            .drain(..)
            .map(|s| (s.runner.rule().meta.id.clone(), (s.runner, s.failed)))
            .collect();
        let mut report = Reloaded::default();
        let mut restarted_views: Vec<String> = Vec::new();
        let mut stages: Vec<Stage> = Vec::with_capacity(rules.len());
        for rule in rules {
            let id = rule.meta.id.clone();
            let reads_restarted = rule.inputs.iter().any(|i| restarted_views.contains(i));
            let (runner, failed) = match old.remove(&id) {
                // Unchanged, and so is what it reads: it keeps its state (or stays stopped).
                Some((r, failed)) if r.rule().meta.text == rule.meta.text && !reads_restarted => {
                    report.kept += 1;
                    (r, failed)
                }
                previous => {
                    if previous.is_some() {
                        report.changed.push(id.clone());
                    } else {
                        report.added.push(id.clone());
                    }
                    if rule.meta.emit == Emit::View {
                        restarted_views.push(rule.meta.view_name().to_string());
                    }
                    (RuleRunner::new(Arc::new(rule), self.config), None)
                }
            };
            let mut stage = Stage::wire(runner, &stages);
            stage.failed = failed;
            stages.push(stage);
        }
        report.removed = old.into_keys().collect();
        self.stages = stages;
        report
    }

    /// The rules, in dependency order.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<CompiledRule>> {
        self.stages.iter().map(|s| s.runner.rule())
    }

    /// The runners of the rules running (not stopped), in dependency order.
    pub fn runners(&self) -> impl Iterator<Item = &RuleRunner> {
        self.stages
            .iter()
            .filter(|s| s.failed.is_none())
            .map(|s| &s.runner)
    }

    /// The rules stopped because they failed (see the module docs), with why, in dependency
    /// order.
    pub fn stopped(&self) -> Vec<(Arc<CompiledRule>, String)> {
        self.stages
            .iter()
            .filter_map(|s| Some((Arc::clone(s.runner.rule()), s.failed.clone()?)))
            .collect()
    }

    /// The ids of the rules, in dependency order.
    pub fn rule_ids(&self) -> Vec<String> {
        self.rules().map(|r| r.meta.id.clone()).collect()
    }

    /// Rows (or partial aggregate states) each rule holds for windows not yet emitted, by
    /// rule id (see [`RuleRunner::held_rows`]).
    pub fn state_rows(&self) -> Vec<(String, usize)> {
        self.stages
            .iter()
            .map(|s| (s.runner.rule().meta.id.clone(), s.runner.held_rows()))
            .collect()
    }

    /// Whether table `table` may count as idle in the rules reading it with other inputs (see
    /// [`RuleRunner::set_may_idle`]).
    pub fn set_may_idle(&mut self, table: &str, may: bool) {
        for stage in &mut self.stages {
            let inputs: Vec<usize> = stage.reads_table(table).collect();
            for input in inputs {
                stage.runner.set_may_idle(input, may);
            }
        }
    }

    /// The smallest event time (epoch ms) of input still needed by any rule, `None` when no
    /// rule holds anything.
    pub fn oldest_needed_ts(&self) -> Option<i64> {
        self.needed().into_iter().filter_map(|(t, _)| t).min()
    }

    /// [`RuleGraph::oldest_needed_ts`] over the rules reading `table` (directly or through
    /// views) only: a quiet table's open window does not hold back the others.
    pub fn oldest_needed_ts_of(&self, table: &str) -> Option<i64> {
        self.needed()
            .into_iter()
            .filter(|(_, tables)| tables.iter().any(|t| t == table))
            .filter_map(|(t, _)| t)
            .min()
    }

    /// Per stage: the oldest table event time it still needs, and the tables it depends on. A
    /// rule reading a view holds view rows stamped with the end of the producer's window, so
    /// the table events behind them reach back by the producer's window length.
    fn needed(&self) -> Vec<(Option<i64>, Vec<String>)> {
        let mut out: Vec<(Option<i64>, Vec<String>, i64)> = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let mut tables: Vec<String> = stage.tables.iter().map(|(t, _)| t.clone()).collect();
            let mut reach = 0i64;
            let mut needed: Option<i64> = None;
            for (producer, _) in &stage.views {
                let (t, f, r) = &out[*producer];
                let size = self.stages[*producer]
                    .runner
                    .rule()
                    .window
                    .as_ref()
                    .map_or(0, |w| w.kind.size_ms());
                reach = reach.max(r + size);
                tables.extend(f.iter().cloned());
                needed = min_opt(needed, *t);
            }
            let own = stage
                .runner
                .oldest_needed_ts()
                .map(|t| t.saturating_sub(reach));
            let needed = min_opt(needed, own);
            tables.sort();
            tables.dedup();
            out.push((needed, tables, reach));
        }
        out.into_iter().map(|(t, f, _)| (t, f)).collect()
    }

    /// Runs the rules reading table `table` on `batch` (and, through views, the rules reading
    /// those), returning the alerts and late rows. The table's watermark comes from its own
    /// rows. Batches of one table must come in order.
    ///
    /// # Errors
    /// When a plan fails to execute (an engine fault).
    pub async fn process(&mut self, table: &str, batch: &RecordBatch) -> Result<GraphStep> {
        self.each_reader(table, Op::Batch(batch, None)).await
    }

    /// [`RuleGraph::process`] with the table's watermark given row by row by a source that
    /// keeps event time per partition (see [`RuleRunner::process_timed`]).
    ///
    /// # Errors
    /// When a plan fails to execute (an engine fault).
    pub async fn process_timed(
        &mut self,
        table: &str,
        batch: &RecordBatch,
        time: InputTime<'_>,
    ) -> Result<GraphStep> {
        self.each_reader(table, Op::Batch(batch, Some(time))).await
    }

    /// Sets the watermark of table `table` from outside (a source tracking event time per
    /// partition) in every rule reading it, and runs what that completes. From then on the
    /// table's rows no longer move its watermark in those rules.
    ///
    /// # Errors
    /// When a plan fails to execute (an engine fault).
    pub async fn advance(&mut self, table: &str, watermark: i64) -> Result<GraphStep> {
        self.each_reader(table, Op::Advance(watermark)).await
    }

    /// Says in every rule reading `table` whether it is idle (see [`RuleRunner::set_idle`]),
    /// and runs what that completes.
    ///
    /// # Errors
    /// When a plan fails to execute (an engine fault).
    pub async fn set_idle(&mut self, table: &str, idle: bool) -> Result<GraphStep> {
        self.each_reader(table, Op::Idle(idle)).await
    }

    /// Applies `op` to every rule reading `table`, views first, handing view rows and
    /// watermarks on in the same pass.
    async fn each_reader(&mut self, table: &str, op: Op<'_>) -> Result<GraphStep> {
        let mut step = GraphStep::default();
        let mut view_rows: Vec<Vec<RecordBatch>> = vec![Vec::new(); self.stages.len()];
        for i in 0..self.stages.len() {
            if self.stages[i].failed.is_some() {
                continue;
            }
            let inputs: Vec<usize> = self.stages[i].reads_table(table).collect();
            for input in inputs {
                let stage = &mut self.stages[i];
                let rule = Arc::clone(stage.runner.rule());
                let runner = &mut stage.runner;
                let ran = guarded(async move {
                    Ok(match op {
                        Op::Batch(batch, time) => {
                            let out = match time {
                                Some(t) => runner.process_timed(input, batch, t).await?,
                                None => runner.process(input, batch).await?,
                            };
                            (out.emissions, out.late_rows)
                        }
                        Op::Advance(wm) => (runner.advance(input, wm).await?, Vec::new()),
                        Op::Idle(idle) => (runner.set_idle(input, idle).await?, Vec::new()),
                    })
                })
                .await;
                let (emissions, late_rows) = match ran {
                    Ok(out) => out,
                    Err(reason) => {
                        self.fail(i, reason, &mut step, &mut view_rows);
                        break;
                    }
                };
                if !late_rows.is_empty() {
                    *step.late.entry(rule.meta.id.clone()).or_default() += late_rows.len() as u64;
                    for row in late_rows {
                        step.late_rows
                            .entry(row)
                            .or_default()
                            .push(rule.meta.id.clone());
                    }
                }
                route(&rule, emissions, &mut view_rows[i], &mut step.alerts);
                self.check_limits(i, &mut step, &mut view_rows);
            }
            self.feed_views(i, &mut view_rows, &mut step, false).await;
        }
        Ok(step)
    }

    /// End of every input: emits every open window, views first.
    ///
    /// # Errors
    /// When a plan fails to execute (an engine fault).
    pub async fn finish(&mut self) -> Result<GraphStep> {
        let mut step = GraphStep::default();
        let mut view_rows: Vec<Vec<RecordBatch>> = vec![Vec::new(); self.stages.len()];
        for i in 0..self.stages.len() {
            self.feed_views(i, &mut view_rows, &mut step, true).await;
            if self.stages[i].failed.is_some() {
                continue;
            }
            let stage = &mut self.stages[i];
            match guarded(stage.runner.finish()).await {
                Ok(emissions) => {
                    let rule = Arc::clone(stage.runner.rule());
                    route(&rule, emissions, &mut view_rows[i], &mut step.alerts);
                }
                Err(reason) => self.fail(i, reason, &mut step, &mut view_rows),
            }
        }
        Ok(step)
    }

    /// Hands stage `i` the rows its views produced in this pass, then their watermarks (or
    /// the end of input, `at_end`), routing what that emits.
    async fn feed_views(
        &mut self,
        i: usize,
        view_rows: &mut [Vec<RecordBatch>],
        step: &mut GraphStep,
        at_end: bool,
    ) {
        let views = self.stages[i].views.clone();
        for (producer, input) in views {
            if self.stages[i].failed.is_some() {
                return;
            }
            let rows = view_rows[producer].clone();
            let watermark = if at_end {
                Some(i64::MAX)
            } else {
                self.stages[producer].runner.watermark()
            };
            let rule = Arc::clone(self.stages[i].runner.rule());
            for batch in &rows {
                let stage = &mut self.stages[i];
                match guarded(stage.runner.process_view(input, batch)).await {
                    Ok(out) => {
                        *step.late.entry(rule.meta.id.clone()).or_default() +=
                            out.late_rows.len() as u64;
                        route(&rule, out.emissions, &mut view_rows[i], &mut step.alerts);
                    }
                    Err(reason) => return self.fail(i, reason, step, view_rows),
                }
                self.check_limits(i, step, view_rows);
                if self.stages[i].failed.is_some() {
                    return;
                }
            }
            if let Some(wm) = watermark {
                let stage = &mut self.stages[i];
                match guarded(stage.runner.advance(input, wm)).await {
                    Ok(emissions) => route(&rule, emissions, &mut view_rows[i], &mut step.alerts),
                    Err(reason) => return self.fail(i, reason, step, view_rows),
                }
            }
        }
    }

    /// Stops stage `i` when its state went over one of its rule's limits.
    fn check_limits(&mut self, i: usize, step: &mut GraphStep, view_rows: &mut [Vec<RecordBatch>]) {
        if let Some(reason) = self.stages[i].runner.over_limits() {
            self.fail(i, reason, step, view_rows);
        }
    }

    /// Stops stage `i` for `reason`: its state is dropped, its rows of this pass are not
    /// handed on, and the rules reading its view (and theirs) stop too.
    fn fail(
        &mut self,
        i: usize,
        reason: String,
        step: &mut GraphStep,
        view_rows: &mut [Vec<RecordBatch>],
    ) {
        let mut stopped = vec![i];
        self.stop(i, reason.clone(), None, step, view_rows);
        for j in i + 1..self.stages.len() {
            if self.stages[j].failed.is_some() {
                continue;
            }
            let Some(&(producer, _)) = self.stages[j]
                .views
                .iter()
                .find(|(p, _)| stopped.contains(p))
            else {
                continue;
            };
            let view = self.stages[producer].runner.rule().meta.id.clone();
            let why = format!(
                "it reads the view {view}, which {}",
                if producer == i {
                    format!("failed: {reason}")
                } else {
                    "was stopped for the same reason".to_string()
                }
            );
            self.stop(j, why, Some(view), step, view_rows);
            stopped.push(j);
        }
    }

    fn stop(
        &mut self,
        i: usize,
        reason: String,
        view: Option<String>,
        step: &mut GraphStep,
        view_rows: &mut [Vec<RecordBatch>],
    ) {
        let rule = Arc::clone(self.stages[i].runner.rule());
        // A fresh runner: the failed one's state (maybe the very memory it went over) goes.
        self.stages[i].runner = RuleRunner::new(Arc::clone(&rule), self.config);
        self.stages[i].failed = Some(reason.clone());
        view_rows[i].clear();
        step.failed.push(RuleFailure { rule, reason, view });
    }

    /// Every rule's state, between batches (see [`RuleRunner::snapshot`]).
    ///
    /// # Errors
    /// When Arrow cannot assemble a table (an engine fault).
    pub fn snapshot(&self) -> Result<GraphSnapshot> {
        let mut rules = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            rules.push(RuleSnapshot {
                id: stage.runner.rule().meta.id.clone(),
                fingerprint: stage.fingerprint.clone(),
                tables: stage.runner.snapshot()?,
            });
        }
        Ok(GraphSnapshot { rules })
    }

    /// Puts back the state of every rule whose fingerprint matches the snapshot's; the others
    /// start empty (see [`Restored`]).
    ///
    /// # Errors
    /// [`crate::Error::Restore`] when a rule's saved tables do not fit it; the graph is then
    /// unchanged.
    pub fn restore(&mut self, snapshot: GraphSnapshot) -> Result<Restored> {
        let mut saved: BTreeMap<String, RuleSnapshot> = snapshot
            .rules
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut report = Restored::default();
        let mut runners = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let rule = Arc::clone(stage.runner.rule());
            let mut runner = RuleRunner::new(Arc::clone(&rule), self.config);
            match saved.remove(&rule.meta.id) {
                Some(s) if s.fingerprint == stage.fingerprint => {
                    runner.restore(s.tables)?;
                    report.restored.push(rule.meta.id.clone());
                }
                Some(_) => report.changed.push(rule.meta.id.clone()),
                None => report.added.push(rule.meta.id.clone()),
            }
            runners.push(runner);
        }
        report.dropped = saved.into_keys().collect();
        let mut stages: Vec<Stage> = Vec::with_capacity(runners.len());
        for runner in runners {
            stages.push(Stage::wire(runner, &stages));
        }
        // Idle permissions set on the old runners carry over (views are set by `wire`), and
        // so do failures.
        for (new, old) in stages.iter_mut().zip(&self.stages) {
            new.runner.copy_idle_permissions(&old.runner);
            new.failed.clone_from(&old.failed);
        }
        self.stages = stages;
        Ok(report)
    }
}

/// Runs one step of a rule, turning its error or panic into why it failed.
async fn guarded<T>(
    step: impl std::future::Future<Output = Result<T>>,
) -> std::result::Result<T, String> {
    match AssertUnwindSafe(step).catch_unwind().await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error_chain(&e)),
        Err(panic) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        )),
    }
}

/// An error and its causes on one line, each said once.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Alert rules' emissions go to the alerts; a view's rows go to the rules reading it.
fn route(
    rule: &Arc<CompiledRule>,
    emissions: Vec<Emission>,
    view_rows: &mut Vec<RecordBatch>,
    alerts: &mut Vec<(Arc<CompiledRule>, Emission)>,
) {
    match rule.meta.emit {
        Emit::Alert => alerts.extend(emissions.into_iter().map(|e| (Arc::clone(rule), e))),
        Emit::View => {
            let schema = rule.view_schema();
            for e in emissions {
                for b in e.batches {
                    let columns = b.columns()[..rule.data_columns].to_vec();
                    view_rows.push(
                        RecordBatch::try_new(Arc::clone(&schema), columns)
                            .expect("a view's rows are its selected columns"),
                    );
                }
            }
        }
    }
}
