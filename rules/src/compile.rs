//! Planning a rule once, when it is loaded: text to a reusable DataFusion physical plan.
//!
//! ```text
//! RuleSource ─ header ─▶ RuleMeta
//!     │
//!     └─ window::rewrite ─▶ tokens ─ sqlparser ─▶ AST ─ DataFusion ─▶ LogicalPlan
//!                                                         │ checks (one input, windowed GROUP BY)
//!                                                         │ + hidden key columns (alert ids)
//!                                                         ▼
//!                                          ExecutionPlan reading from a Slot, kept for life
//! ```
//!
//! Each rule gets its own [`SessionContext`] with the city functions and one table per catalog
//! entry (and per window call). Those tables are [`Slot`]s: a leaf that yields whatever batches
//! the operator put there just before executing the plan, so the same physical plan runs again
//! and again over fresh rows with no re-planning.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue, TableReference};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, Operator, Projection};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{
    ChildrenPropertiesMode, ReplaceChildrenOptions, reset_plan_states,
};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token};

use crate::error::{Problem, suggest};
use crate::rule::{Emit, RuleMeta, RuleSource, parse_header};
use crate::window::{
    self, Diag, Mode, WINDOW_END, WINDOW_START, WINDOW_TIME, WindowKind, WindowTvf,
};

/// Prefix of the hidden output columns that identify an alert's group.
pub const KEY_PREFIX: &str = "__cb_key_";

/// Prefix of the hidden columns carrying the event times behind a result row of a rule without
/// windows (`__cb_time_0`, ...): an alert's `event_time` is the latest of them.
pub const TIME_PREFIX: &str = "__cb_time_";

/// The tables rules may read, by name: each one's schema, event-time column, watermark bound
/// and the columns that identify a row (for per-event alert ids).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, TableDef>,
}

/// One table of a [`Catalog`].
#[derive(Debug, Clone)]
struct TableDef {
    schema: SchemaRef,
    time_column: String,
    /// How far its watermark stays behind its largest event time, when the table says (a
    /// feed's `WATERMARK`); otherwise the runner's default.
    out_of_orderness_ms: Option<i64>,
    /// Columns that identify a row: a per-event alert's id is taken over them.
    key_columns: Vec<String>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a table whose event time is the timestamp column `time_column`, with no key
    /// columns and the runner's default watermark bound.
    pub fn with_table(mut self, name: &str, schema: SchemaRef, time_column: &str) -> Self {
        self.tables.insert(
            name.to_string(),
            TableDef {
                schema,
                time_column: time_column.to_string(),
                out_of_orderness_ms: None,
                key_columns: Vec::new(),
            },
        );
        self
    }

    /// Adds a feed: [`Catalog::with_table`] with its watermark bound (milliseconds) and the
    /// columns that identify a row (its record id, or where the record came from).
    pub fn with_feed(
        self,
        name: &str,
        schema: SchemaRef,
        time_column: &str,
        out_of_orderness_ms: i64,
        key_columns: &[&str],
    ) -> Self {
        let mut c = self.with_table(name, schema, time_column);
        if let Some(t) = c.tables.get_mut(name) {
            t.out_of_orderness_ms = Some(out_of_orderness_ms);
            t.key_columns = key_columns.iter().map(|k| (*k).to_string()).collect();
        }
        c
    }

    /// Adds a view's rows as a table: its watermark is its producer's, and its key columns
    /// those of its inputs it selects.
    pub(crate) fn with_view(
        self,
        name: &str,
        schema: SchemaRef,
        time_column: &str,
        key_columns: &[&str],
    ) -> Self {
        let mut c = self.with_table(name, schema, time_column);
        if let Some(t) = c.tables.get_mut(name) {
            t.key_columns = key_columns.iter().map(|k| (*k).to_string()).collect();
        }
        c
    }

    /// The schema of table `name`.
    pub fn schema(&self, name: &str) -> Option<&SchemaRef> {
        self.tables.get(name).map(|t| &t.schema)
    }

    /// The event-time column of table `name`.
    pub fn time_column(&self, name: &str) -> Option<&str> {
        self.tables.get(name).map(|t| t.time_column.as_str())
    }

    /// The watermark bound of table `name`, when it declares one.
    pub fn out_of_orderness_ms(&self, name: &str) -> Option<i64> {
        self.tables.get(name).and_then(|t| t.out_of_orderness_ms)
    }

    /// The columns that identify a row of table `name`.
    pub fn key_columns(&self, name: &str) -> &[String] {
        self.tables
            .get(name)
            .map_or(&[][..], |t| t.key_columns.as_slice())
    }

    /// The table names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

/// How a rule turns input rows into results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No window and no aggregation: every input batch runs through the plan at once and its
    /// results are emitted immediately (per-event alerts).
    PerEvent,
    /// Reads every input through the same window TVF (window aggregations, window Top-N,
    /// window joins): the plan runs once per window, when the watermark passes its end.
    Windowed,
    /// Two inputs joined on a bounded distance in event time: each new batch is joined at once
    /// against the rows the other side still retains.
    IntervalJoin,
}

/// One table the plan reads, and which input fills it.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Index into [`CompiledRule::inputs`].
    pub input: usize,
    /// The event-time column in the input's schema.
    pub time_index: usize,
    /// The window call this scan reads through.
    pub window: Option<WindowTvf>,
    /// `SESSION ... PARTITION BY` columns, as indexes into the input's schema.
    pub partition_by: Vec<usize>,
    pub slot: Arc<Slot>,
    /// What the slot holds: the input's columns, plus the window columns when windowed.
    pub schema: SchemaRef,
    /// The filter the plan applies right above this scan, when it reads only the input's own
    /// columns and gives the same answer every time: rows it rejects can be dropped on arrival
    /// instead of held until their window closes (see [`Scan::keep_rows`]).
    pub keep: Option<Arc<dyn PhysicalExpr>>,
}

impl Scan {
    /// The rows of `rows` (the input's schema) the plan's filter above this scan lets through:
    /// all of them when there is no such filter. Applying it early changes nothing but memory,
    /// as the plan applies it again.
    pub(crate) fn keep_rows(&self, rows: RecordBatch) -> datafusion::error::Result<RecordBatch> {
        let Some(keep) = &self.keep else {
            return Ok(rows);
        };
        let mask = keep.evaluate(&rows)?.into_array(rows.num_rows())?;
        let mask = datafusion::common::cast::as_boolean_array(&mask)?;
        if mask.true_count() == rows.num_rows() {
            return Ok(rows);
        }
        Ok(arrow::compute::filter_record_batch(&rows, mask)?)
    }
}

/// A window aggregation cut in two, as Flink slices windows: the partial aggregate runs once
/// per slice, the final aggregate (and whatever sits above it) once per window over the
/// partial states of the window's slices.
#[derive(Debug)]
pub(crate) struct Split {
    pub partial: Reusable,
    pub final_plan: Reusable,
    pub state: Arc<Slot>,
    pub state_schema: SchemaRef,
    /// Where `window_start`, `window_end`, `window_time` sit among the grouping columns of the
    /// partial state, when grouped by.
    pub window_columns: [Option<usize>; 3],
    /// The output columns holding each row's `window_start` and `window_end` (hidden group
    /// keys), when the final plan works group by group (no sort, limit or window function
    /// across groups): then the windows one watermark closes run through one execution.
    pub window_keys: Option<(usize, usize)>,
}

/// A rule planned once and ready to run.
#[derive(Debug)]
pub struct CompiledRule {
    /// Header metadata.
    pub meta: RuleMeta,
    /// The tables it reads (feeds or views), in order of first use.
    pub inputs: Vec<String>,
    /// The window call (every window call of a rule is the same kind and size).
    pub window: Option<WindowTvf>,
    /// Per event, per window, or an interval join.
    pub shape: Shape,
    /// The plan's output: the selected columns, then the hidden key columns.
    pub output_schema: SchemaRef,
    /// How many leading output columns the analyst selected.
    pub data_columns: usize,
    /// What tells one result row from another (see [`CompiledRule::id_columns`]).
    pub row_key: RowKey,
    /// For an interval join, the largest distance in event time between joined rows.
    pub interval_ms: Option<i64>,
    /// Per input, its declared watermark bound (a feed's `WATERMARK`), if any.
    pub input_bounds: Vec<Option<i64>>,
    /// Names of its inputs' row-identifying columns (a view keeps those it selects).
    pub(crate) key_names: Vec<String>,
    /// Names of its inputs' event-time columns.
    pub(crate) time_names: Vec<String>,
    pub(crate) scans: Vec<Scan>,
    pub(crate) plan: Reusable,
    pub(crate) split: Option<Split>,
    pub(crate) task_ctx: Arc<TaskContext>,
}

/// What tells one result row of a rule from another within a window (or, per event, at all):
/// the hidden `__cb_key_N` output columns the planner appends, and whether the selected values
/// count too. The alert id hashes exactly [`CompiledRule::id_columns`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKey {
    /// A window aggregation: the GROUP BY values (hidden columns), in GROUP BY order. A group
    /// re-emitted after late rows with other values keeps its id (the next revision).
    Group,
    /// Every input `event_id` behind the row (hidden columns, one per input read), then every
    /// selected value: the rows one event gives (an unnest, a join matching several rows)
    /// differ in what they select, and two records reusing one `event_id` differ in what the
    /// rule selects of them.
    Events,
    /// Every selected value: no group or `event_id` reaches the top of the query.
    Selected,
}

/// How many runs a plan serves before it is swapped for a fresh copy (see [`Reusable`]). Each
/// run adds about 7 KB of metrics to a sliced aggregation's partial plan: 512 runs held 3.5 MB
/// per plan, and a rule library (a dozen plans running per batch) reached that only on long
/// inputs, so peak memory grew with the input. Renewing costs far less than a run.
const RENEW_EVERY: u32 = 32;

/// A physical plan planned once and run many times.
///
/// DataFusion operators register their metrics on the plan node at every `execute`, so a plan
/// kept for the life of a rule would grow by every run (kilobytes each). The plan is
/// swapped for a fresh copy (`reset_plan_states`, which also drops cached state) every
/// [`RENEW_EVERY`] runs, and before every run when operators cache state between runs (a hash
/// join's build side, a sort's dynamic filter).
#[derive(Debug)]
pub(crate) struct Reusable {
    plan: std::sync::Mutex<Arc<dyn ExecutionPlan>>,
    runs: std::sync::atomic::AtomicU32,
    stateful: bool,
    /// Whether it produces the rule's results (not partial states): their rows count against
    /// `max_rows_per_window`.
    results: bool,
}

impl Reusable {
    fn partial(plan: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            results: false,
            ..Self::new(plan)
        }
    }

    fn new(plan: Arc<dyn ExecutionPlan>) -> Self {
        let mut stateful = false;
        plan.apply(|node| {
            stateful |= node.name().contains("Join") || node.name().contains("Sort");
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("visiting never fails");
        Self {
            plan: std::sync::Mutex::new(plan),
            runs: std::sync::atomic::AtomicU32::new(0),
            stateful,
            results: true,
        }
    }

    /// The plan to execute now.
    fn instance(&self) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        let runs = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.stateful {
            return reset_plan_states(Arc::clone(&plan));
        }
        if runs % RENEW_EVERY == RENEW_EVERY - 1 {
            *plan = reset_plan_states(Arc::clone(&plan))?;
        }
        Ok(Arc::clone(&plan))
    }
}

impl CompiledRule {
    /// Whether the window aggregation runs as partial aggregates per slice (constant work and
    /// memory per slice however much windows overlap).
    pub fn is_sliced(&self) -> bool {
        self.split.is_some()
    }

    /// Whether windows the watermark closes together run through one execution of the final
    /// aggregate (sliced plans whose operators above it work group by group).
    pub fn closes_windows_together(&self) -> bool {
        self.split.as_ref().is_some_and(|s| s.window_keys.is_some())
    }

    /// The output columns whose values identify a result row (hashed, with the rule id and
    /// the window, into the alert id): per [`RowKey`], the hidden key columns, then the
    /// selected columns when the keys are input events, or the selected columns alone.
    pub fn id_columns(&self) -> Vec<usize> {
        let schema = &self.output_schema;
        let hidden = (self.data_columns..schema.fields().len())
            .filter(|i| schema.field(*i).name().starts_with(KEY_PREFIX));
        match self.row_key {
            RowKey::Group => hidden.collect(),
            RowKey::Events => hidden.chain(0..self.data_columns).collect(),
            RowKey::Selected => (0..self.data_columns).collect(),
        }
    }

    /// The schema of this rule's rows as a view: the selected columns.
    pub fn view_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.output_schema.fields()[..self.data_columns].to_vec(),
        ))
    }

    /// The event-time column of this rule's rows as a view: `window_time`, `rowtime` or the
    /// event-time column of an input it reads, whichever it selects first in that order of
    /// preference.
    pub fn view_time_column(&self) -> Option<&str> {
        let schema = self.view_schema();
        [WINDOW_TIME, "rowtime"]
            .into_iter()
            .chain(self.time_names.iter().map(String::as_str))
            .find(|name| {
                schema.field_with_name(name).is_ok_and(|f| {
                    matches!(f.data_type(), DataType::Timestamp(TimeUnit::Millisecond, _))
                })
            })
    }

    /// The columns of this rule's rows as a view that identify a row: those of its inputs'
    /// key columns it selects.
    pub fn view_key_columns(&self) -> Vec<&str> {
        let schema = self.view_schema();
        let mut keys: Vec<&str> = Vec::new();
        for k in &self.key_names {
            if schema.index_of(k).is_ok() && !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys
    }

    /// Where the rule's query starts, `file:line`, for logs about it.
    pub fn source_position(&self) -> String {
        format!(
            "{}:{}",
            self.meta.path.display(),
            first_query_line(&self.meta.text).line
        )
    }

    /// Runs `plan` once with each slot holding its batches: one window's results (or one
    /// batch's, without windows), or partial states.
    pub(crate) async fn run(
        &self,
        plan: &Reusable,
        fills: Vec<(&Slot, Vec<RecordBatch>)>,
    ) -> crate::Result<Vec<RecordBatch>> {
        self.run_windows(plan, fills, 1).await
    }

    /// [`CompiledRule::run`] for the results of `windows` windows at once: a plan producing
    /// results may give `windows` times the rule's `max_rows_per_window`, counted as batches
    /// come, so that a runaway join stops before it is all in memory.
    pub(crate) async fn run_windows(
        &self,
        plan: &Reusable,
        fills: Vec<(&Slot, Vec<RecordBatch>)>,
        windows: usize,
    ) -> crate::Result<Vec<RecordBatch>> {
        let limit = plan.results.then(|| {
            self.meta
                .limits
                .rows_per_window
                .saturating_mul(windows.max(1) as u64)
        });
        let instance = plan.instance().map_err(|source| crate::Error::Execute {
            rule: self.meta.id.clone(),
            source,
        })?;
        let slots: Vec<&Slot> = fills
            .into_iter()
            .map(|(slot, batches)| {
                slot.put(batches);
                slot
            })
            .collect();
        let out = self.collect(instance, limit).await;
        // Never leave rows behind for the next run, even when execution failed early.
        for slot in slots {
            slot.put(Vec::new());
        }
        out
    }

    async fn collect(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        limit: Option<u64>,
    ) -> crate::Result<Vec<RecordBatch>> {
        use futures::StreamExt;
        let execute = |source| crate::Error::Execute {
            rule: self.meta.id.clone(),
            source,
        };
        let mut stream =
            datafusion::physical_plan::execute_stream(plan, Arc::clone(&self.task_ctx))
                .map_err(execute)?;
        let mut out = Vec::new();
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(execute)?;
            rows += batch.num_rows() as u64;
            if let Some(limit) = limit
                && rows > limit
            {
                let limits = &self.meta.limits;
                return Err(crate::Error::Limit {
                    rule: self.meta.id.clone(),
                    message: format!(
                        "one window gave more than {} result rows (`{}` raises the limit)",
                        limits.rows_per_window,
                        limits.header("rows_per_window")
                    ),
                });
            }
            out.push(batch);
        }
        Ok(out)
    }
}

/// The leaf a plan reads from: the operator puts batches in, executions read them.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    batches: Mutex<Vec<RecordBatch>>,
}

impl Slot {
    fn put(&self, batches: Vec<RecordBatch>) {
        *self.batches.lock().unwrap_or_else(|e| e.into_inner()) = batches;
    }

    fn get(&self) -> Vec<RecordBatch> {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[derive(Debug)]
struct SlotStream {
    schema: SchemaRef,
    slot: Arc<Slot>,
}

impl PartitionStream for SlotStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> datafusion::execution::SendableRecordBatchStream {
        // Cloned, not taken: a table scanned twice (a self join) sees its rows both times.
        let batches = self.slot.get();
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::iter(batches.into_iter().map(Ok)),
        ))
    }
}

/// The timestamp type of window columns: milliseconds, UTC.
pub fn window_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// `schema` plus `window_start`, `window_end` and `window_time`.
pub fn with_window_columns(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for name in [WINDOW_START, WINDOW_END, WINDOW_TIME] {
        fields.push(Field::new(name, window_type(), false));
    }
    Arc::new(Schema::new(fields))
}

/// A fresh session with the city functions, planning for one partition. Partial and final
/// aggregates are left apart so that a window aggregation can be sliced. With `memory`, one
/// execution may reserve at most that many bytes (hash tables, join build sides, sorts) and
/// never spills to disk: going over fails the execution, and so stops the rule alone.
pub(crate) fn new_context(memory: Option<u64>) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false);
    config.options_mut().sql_parser.collect_spans = true;
    // Identifiers keep their case, quoted or not, as in Flink (`bidTime`, not `bidtime`).
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features();
    if let Some(bytes) = memory {
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_limit(usize::try_from(bytes).unwrap_or(usize::MAX), 1.0)
            .with_disk_manager_builder(
                datafusion::execution::disk_manager::DiskManagerBuilder::default()
                    .with_mode(datafusion::execution::disk_manager::DiskManagerMode::Disabled),
            )
            .build_arc()
            .expect("a memory limit and no disk make a valid runtime");
        builder = builder.with_runtime_env(runtime);
    }
    let state = builder.build();
    let rules: Vec<_> = state
        .physical_optimizers()
        .iter()
        .filter(|r| r.name() != "CombinePartialFinalAggregate")
        .cloned()
        .collect();
    let state = SessionStateBuilder::new_from_existing(state)
        .with_physical_optimizer_rules(rules)
        .build();
    let ctx = SessionContext::new_with_state(state);
    crate::functions::register(&ctx);
    ctx
}

/// Parses rewritten tokens into exactly one query, and refuses what must not reach
/// DataFusion ([`crate::check::syntax`]: nesting depth, recursion). Runs on a thread with a
/// large stack, as dropping a deep syntax tree recurses (see [`crate::check`]).
pub(crate) fn parse_query(
    src: &RuleSource,
    rewritten: window::Rewritten,
) -> Result<Statement, Vec<Problem>> {
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("rule-parser".into())
            .stack_size(crate::check::PARSE_STACK_BYTES)
            .spawn_scoped(scope, || parse_checked(src, rewritten));
        match parser {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => Err(vec![problem(
                src,
                Diag::at(
                    Location::new(1, 1),
                    format!("cannot start the rule parser: {e}"),
                ),
            )]),
        }
    })
}

fn parse_checked(
    src: &RuleSource,
    rewritten: window::Rewritten,
) -> Result<Statement, Vec<Problem>> {
    let mut code = rewritten
        .tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)));
    let first = code.next().map(|t| t.span.start);
    let last = code.next_back().map_or(first, |t| Some(t.span.end));
    let start = first.unwrap_or(Location::new(1, 1));
    let mut parser = Parser::new(&GenericDialect {}).with_tokens_with_locations(rewritten.tokens);
    let statements = parser
        .parse_statements()
        .map_err(|e| vec![parser_problem(src, &e.to_string(), last)])?;
    let refused: Vec<Problem> = statements
        .iter()
        .flat_map(|s| crate::check::syntax(s, start))
        .map(|d| problem(src, d))
        .collect();
    if !refused.is_empty() {
        return Err(refused);
    }
    let at = |message: &str| vec![problem(src, Diag::at(start, message))];
    match <[Statement; 1]>::try_from(statements) {
        Ok([stmt @ Statement::Query(_)]) => Ok(stmt),
        Ok(_) => Err(at("a rule must be one SELECT query")),
        Err(v) if v.is_empty() => Err(at("the rule has no query: write one SELECT")),
        Err(_) => Err(at(
            "a rule holds exactly one SELECT; split the others into their own files",
        )),
    }
}

/// What the logical plan reads and does, for classifying the rule.
#[derive(Default)]
struct Anatomy {
    scans: Vec<String>,
    /// One entry per aggregate: does it group by `window_start` and `window_end`?
    aggregates: Vec<bool>,
    joins: bool,
    over: bool,
}

fn anatomy(plan: &LogicalPlan) -> Anatomy {
    let mut a = Anatomy::default();
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table().to_string();
                if !a.scans.contains(&name) {
                    a.scans.push(name);
                }
            }
            LogicalPlan::Aggregate(agg) => {
                // `window_start` itself, or a column a subquery renamed it to (Nexmark q5's
                // `window_start AS starttime`, grouped by again outside).
                let grouped = |w: &str| {
                    agg.group_expr.iter().any(|e| {
                        matches!(e, Expr::Column(c)
                            if c.name == w || origin(&agg.input, &c.name).as_deref() == Some(w))
                    })
                };
                a.aggregates
                    .push(grouped(WINDOW_START) && grouped(WINDOW_END));
            }
            LogicalPlan::Window(_) => a.over = true,
            LogicalPlan::Join(_) => a.joins = true,
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("visiting never fails");
    a
}

/// The name column `name` of `plan`'s output had where it was made: followed down through
/// projections that only rename it, subquery aliases and filters to the aggregate, window or
/// scan that produced it. `None` when it was computed.
fn origin(plan: &LogicalPlan, name: &str) -> Option<String> {
    match plan {
        LogicalPlan::Projection(p) => {
            let schema = p.schema.as_ref();
            let i = (0..schema.fields().len()).find(|i| schema.field(*i).name() == name)?;
            let column = match &p.expr[i] {
                Expr::Column(c) => c,
                Expr::Alias(a) => match a.expr.as_ref() {
                    Expr::Column(c) => c,
                    _ => return None,
                },
                _ => return None,
            };
            origin(&p.input, &column.name)
        }
        LogicalPlan::SubqueryAlias(a) => origin(&a.input, name),
        LogicalPlan::Filter(f) => origin(&f.input, name),
        _ => Some(name.to_string()),
    }
}

/// Per scanned table (by name): its qualified name and the predicate of the filter right
/// above it in the optimized plan (the optimizer pushes filters down to their scans).
fn scan_filters(plan: &LogicalPlan) -> HashMap<String, (TableReference, Expr)> {
    let mut filters = HashMap::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Filter(filter) = node
            && let LogicalPlan::TableScan(scan) = filter.input.as_ref()
            && scan.filters.is_empty()
        {
            filters.insert(
                scan.table_name.table().to_string(),
                (scan.table_name.clone(), filter.predicate.clone()),
            );
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("visiting never fails");
    filters
}

/// `predicate` as a filter on rows of the input, if it reads only the first `input_columns`
/// columns of the scan's `schema` (not the window columns) and is not volatile.
fn row_filter(
    state: &SessionState,
    table: &TableReference,
    predicate: &Expr,
    schema: &SchemaRef,
    input_columns: usize,
) -> Option<Arc<dyn PhysicalExpr>> {
    if predicate.is_volatile() {
        return None;
    }
    let df_schema = DFSchema::try_from_qualified_schema(table.clone(), schema).ok()?;
    let expr = state
        .create_physical_expr(predicate.clone(), &df_schema)
        .ok()?;
    collect_columns(&expr)
        .iter()
        .all(|c| c.index() < input_columns)
        .then_some(expr)
}

/// Plans `src` against `catalog`, reporting every problem found.
///
/// # Errors
/// The rule's mistakes, each with its file, line and column.
pub async fn compile(src: &RuleSource, catalog: &Catalog) -> Result<CompiledRule, Vec<Problem>> {
    if let Some(defect) = &src.defect {
        return Err(vec![defect.clone()]);
    }
    let meta = parse_header(src);
    let rewritten = window::rewrite(&src.text, Mode::Streaming)
        .map_err(|d| d.into_iter().map(|d| problem(src, d)).collect::<Vec<_>>());
    let (meta, rewritten) = match (meta, rewritten) {
        (Ok(m), Ok(r)) => (m, r),
        (m, r) => {
            let mut all = m.err().unwrap_or_default();
            all.extend(r.err().unwrap_or_default());
            return Err(all);
        }
    };
    let windows = rewritten.windows.clone();
    let ctx = new_context(Some(meta.limits.state_bytes));
    let mut slots: HashMap<String, (Arc<Slot>, SchemaRef)> = HashMap::new();
    let mut register = |name: &str, schema: SchemaRef| {
        let slot = Arc::new(Slot::default());
        let stream = SlotStream {
            schema: Arc::clone(&schema),
            slot: Arc::clone(&slot),
        };
        let table = StreamingTable::try_new(Arc::clone(&schema), vec![Arc::new(stream)])
            .expect("slot schema equals table schema");
        ctx.register_table(name, Arc::new(table))
            .expect("fresh context accepts tables");
        slots.insert(name.to_string(), (slot, schema));
    };
    for (name, table) in &catalog.tables {
        register(name, Arc::clone(&table.schema));
    }
    let mut problems = Vec::new();
    for w in &windows {
        let loc = datafusion::sql::sqlparser::tokenizer::Location::new(w.line, 1);
        match catalog.tables.get(&w.table) {
            None => {
                let hint = suggest(&w.table, catalog.names())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| {
                        format!(
                            "; tables are {}",
                            catalog.names().collect::<Vec<_>>().join(", ")
                        )
                    });
                problems.push(problem(
                    src,
                    Diag::at(loc, format!("unknown feed `{}`{hint}", w.table)),
                ));
            }
            Some(TableDef {
                schema,
                time_column: time,
                ..
            }) => {
                if &w.time_column != time {
                    problems.push(problem(
                        src,
                        Diag::at(
                            loc,
                            format!(
                                "DESCRIPTOR({}) is not the event-time column of `{}`: use DESCRIPTOR({time})",
                                w.time_column, w.table
                            ),
                        ),
                    ));
                }
                for key in &w.partition_by {
                    if schema.index_of(key).is_err() {
                        let names = schema.fields().iter().map(|f| f.name().as_str());
                        let hint = suggest(key, names)
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default();
                        problems.push(problem(
                            src,
                            Diag::at(
                                loc,
                                format!(
                                    "PARTITION BY column `{key}` is not a column of `{}`{hint}",
                                    w.table
                                ),
                            ),
                        ));
                    }
                }
                if let Some(clash) = [WINDOW_START, WINDOW_END, WINDOW_TIME]
                    .into_iter()
                    .find(|c| schema.index_of(c).is_ok())
                {
                    problems.push(problem(
                        src,
                        Diag::at(
                            loc,
                            format!(
                                "`{}` already has a `{clash}` column, which the window adds again: \
                                 rename it in `{}` (as in Flink's cascaded windows, select \
                                 `window_time AS rowtime` and read DESCRIPTOR(rowtime))",
                                w.table, w.table
                            ),
                        ),
                    ));
                    continue;
                }
                register(&w.slot, with_window_columns(schema));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let stmt = parse_query(src, rewritten)?;
    let state = ctx.state();
    let plan = state
        .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
        .await
        .and_then(crate::flink::with_flink_semantics)
        .map_err(|e| vec![planning_problem(src, &e)])?;

    let a = anatomy(&plan);
    let first_line = first_query_line(&src.text);
    let fail = |message: String| vec![problem(src, Diag::at(first_line, message))];
    let tvfs: Vec<&WindowTvf> = a
        .scans
        .iter()
        .filter_map(|s| windows.iter().find(|w| &w.slot == s))
        .collect();
    let plain: Vec<&String> = a
        .scans
        .iter()
        .filter(|s| !windows.iter().any(|w| &w.slot == *s))
        .collect();
    if a.scans.is_empty() {
        return Err(fail("a rule reads at least one feed".to_string()));
    }
    let mut interval_ms = None;
    let shape = if let Some(first) = tvfs.first() {
        if let Some(p) = plain.first() {
            return Err(fail(format!(
                "`{p}` is read directly while other inputs go through {}: a windowed rule reads \
                 every input through the same window, e.g. TABLE({}(TABLE {p}, ...))",
                first.kind,
                first.kind.to_string().split(' ').next().unwrap_or("TUMBLE")
            )));
        }
        if let Some(other) = tvfs.iter().find(|w| w.kind != first.kind) {
            return Err(fail(format!(
                "every window of a rule must be the same (as in Flink's window joins): found {} and {}",
                first.kind, other.kind
            )));
        }
        if a.aggregates.iter().any(|g| !g) {
            return Err(fail(format!(
                "a windowed aggregation must GROUP BY {WINDOW_START}, {WINDOW_END} (as in Flink)"
            )));
        }
        if matches!(first.kind, WindowKind::Session { .. }) && tvfs.len() > 1 {
            return Err(fail(
                "SESSION windows cannot be joined: join TUMBLE, HOP or CUMULATE windows".into(),
            ));
        }
        Shape::Windowed
    } else {
        let input = plain[0];
        if !a.aggregates.is_empty() {
            let time = catalog.time_column(input).unwrap_or("<time>");
            return Err(fail(format!(
                "aggregation over an endless feed needs a window: read FROM TABLE(TUMBLE(TABLE {input}, \
                 DESCRIPTOR({time}), INTERVAL '5' MINUTES)) and GROUP BY {WINDOW_START}, {WINDOW_END}"
            )));
        }
        if a.over {
            return Err(fail(format!(
                "OVER (...) needs a window to partition by: read through TUMBLE/HOP/CUMULATE and \
                 PARTITION BY {WINDOW_START}, {WINDOW_END}"
            )));
        }
        match (plain.len(), a.joins) {
            (1, false) => Shape::PerEvent,
            (1, true) => {
                return Err(fail(format!(
                    "joining `{input}` with itself needs windows: join two TUMBLE/HOP windows of it"
                )));
            }
            (2, _) => {
                let times: Vec<String> = plain
                    .iter()
                    .filter_map(|t| catalog.tables.get(*t).map(|t| t.time_column.clone()))
                    .collect();
                match interval_bounds(&plan, &times) {
                    Some(span) => interval_ms = Some(span),
                    None => {
                        return Err(fail(format!(
                            "joining `{}` and `{}` without windows needs an interval on event time, \
                             e.g. `b.ts BETWEEN a.ts - INTERVAL '10' MINUTES AND a.ts` (as in Flink's \
                             interval joins), or join two windows",
                            plain[0], plain[1]
                        )));
                    }
                }
                Shape::IntervalJoin
            }
            (n, _) => {
                return Err(fail(format!(
                    "an interval join reads two inputs; this one reads {n}: join windows instead"
                )));
            }
        }
    };

    let data_columns = plan.schema().fields().len();
    let keys: Vec<&str> = a
        .scans
        .iter()
        .map(|s| {
            windows
                .iter()
                .find(|w| &w.slot == s)
                .map_or(s.as_str(), |w| w.table.as_str())
        })
        .flat_map(|t| catalog.key_columns(t).iter().map(String::as_str))
        .collect();
    let (plan, row_key) = with_key_columns(plan, !a.aggregates.is_empty(), &keys);
    let optimized = state
        .optimize(&plan)
        .map_err(|e| vec![planning_problem(src, &e)])?;
    if let Some(kind) = crate::check::unkeyed_join(&optimized) {
        return Err(vec![problem(
            src,
            Diag::at(
                keyword_position(&src.text, &["CROSS", "JOIN"], &["FROM"]).unwrap_or(first_line),
                format!(
                    "this {} join matches rows on no key (only on the window or nothing): \
                     every pair of rows is a result, growing with the square of the rows; join \
                     on a column as well, e.g. `ON L.window_start = R.window_start AND \
                     L.window_end = R.window_end AND L.cell = R.cell`",
                    kind.to_string().to_lowercase()
                ),
            ),
        )]);
    }
    let filters = scan_filters(&optimized);
    let physical = state
        .query_planner()
        .create_physical_plan(&optimized, &state)
        .await
        .map_err(|e| vec![planning_problem(src, &e)])?;

    let mut inputs: Vec<String> = Vec::new();
    let mut scans = Vec::new();
    for name in &a.scans {
        let w = windows.iter().find(|w| &w.slot == name).cloned();
        let table = w.as_ref().map_or(name.clone(), |w| w.table.clone());
        let Some(TableDef {
            schema: input_schema,
            time_column: time,
            ..
        }) = catalog.tables.get(&table)
        else {
            return Err(fail(format!(
                "`{table}` is not a feed or view this rule can read as a stream"
            )));
        };
        let input = inputs.iter().position(|i| *i == table).unwrap_or_else(|| {
            inputs.push(table.clone());
            inputs.len() - 1
        });
        let (slot, schema) = slots.remove(name).expect("scanned table has a slot");
        let keep = filters.get(name).and_then(|(table, predicate)| {
            row_filter(
                &state,
                table,
                predicate,
                &schema,
                input_schema.fields().len(),
            )
        });
        scans.push(Scan {
            keep,
            input,
            time_index: input_schema
                .index_of(time)
                .expect("catalog time column is in its schema"),
            partition_by: w.as_ref().map_or_else(Vec::new, |w| {
                w.partition_by
                    .iter()
                    .map(|k| input_schema.index_of(k).expect("checked above"))
                    .collect()
            }),
            window: w,
            slot,
            schema,
        });
    }
    let window = scans.iter().find_map(|s| s.window.clone());
    let split = match (&window, scans.as_slice()) {
        (Some(w), [_]) if w.kind.slice_ms().is_some() => split_aggregate(&physical),
        _ => None,
    };
    let rule = CompiledRule {
        meta,
        inputs: inputs.clone(),
        window,
        shape,
        output_schema: physical.schema(),
        data_columns,
        row_key,
        interval_ms,
        input_bounds: inputs
            .iter()
            .map(|i| catalog.out_of_orderness_ms(i))
            .collect(),
        key_names: keys.iter().map(|k| (*k).to_string()).collect(),
        time_names: inputs
            .iter()
            .filter_map(|i| catalog.time_column(i).map(str::to_string))
            .collect(),
        scans,
        plan: Reusable::new(physical),
        split,
        task_ctx: ctx.task_ctx(),
    };
    let located =
        crate::rule::location_problems(src, &rule.meta, &rule.output_schema, data_columns);
    if !located.is_empty() {
        return Err(located);
    }
    if rule.meta.emit == Emit::View && rule.view_time_column().is_none() {
        return Err(fail(format!(
            "a view must select its event time for the rules reading it: select {WINDOW_TIME} \
             (and GROUP BY it, as in Flink), `... AS rowtime`, or its input's event-time column \
             ({})",
            rule.time_names.join(", ")
        )));
    }
    Ok(rule)
}

fn names_window_column(expr: &Arc<dyn PhysicalExpr>) -> bool {
    collect_columns(expr)
        .iter()
        .any(|c| [WINDOW_START, WINDOW_END, WINDOW_TIME].contains(&c.name()))
}

/// Finds the one partial/final aggregate pair of a window aggregation and cuts the plan
/// between them, when the part below the final aggregate uses the window columns only as
/// grouping keys (so a slice's partial state is valid for every window holding the slice).
fn split_aggregate(plan: &Arc<dyn ExecutionPlan>) -> Option<Split> {
    let mut pairs = Vec::new();
    let mut partials = 0;
    plan.apply(|node| {
        if let Some(agg) = node.downcast_ref::<AggregateExec>() {
            match agg.mode() {
                AggregateMode::Partial => partials += 1,
                AggregateMode::Final
                    if agg
                        .input()
                        .downcast_ref::<AggregateExec>()
                        .is_some_and(|p| *p.mode() == AggregateMode::Partial) =>
                {
                    pairs.push(Arc::clone(node));
                }
                _ => {}
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    let ([final_node], 1) = (pairs.as_slice(), partials) else {
        return None;
    };
    let final_agg = final_node.downcast_ref::<AggregateExec>()?;
    let partial = Arc::clone(final_agg.input());
    let partial_agg = partial.downcast_ref::<AggregateExec>()?;
    if !partial_agg.group_expr().is_single()
        || partial_agg
            .aggr_expr()
            .iter()
            .flat_map(|a| a.expressions())
            .chain(partial_agg.filter_expr().iter().flatten().cloned())
            .any(|e| names_window_column(&e))
    {
        return None;
    }
    let mut window_columns = [None; 3];
    for (i, (expr, name)) in partial_agg.group_expr().expr().iter().enumerate() {
        if !names_window_column(expr) {
            continue;
        }
        let column = expr.downcast_ref::<Column>()?;
        let w = [WINDOW_START, WINDOW_END, WINDOW_TIME]
            .iter()
            .position(|w| *w == column.name() && *w == name)?;
        window_columns[w] = Some(i);
    }
    window_columns[0]?;
    window_columns[1]?;
    // Below the partial aggregate, window columns may only be passed through.
    let mut plain = true;
    partial_agg
        .input()
        .apply(|node| {
            if let Some(p) = node.downcast_ref::<ProjectionExec>() {
                plain &= p.expr().iter().all(|e| {
                    !names_window_column(&e.expr)
                        || e.expr
                            .downcast_ref::<Column>()
                            .is_some_and(|c| c.name() == e.alias)
                });
            } else if let Some(f) = node.downcast_ref::<FilterExec>() {
                plain &= !names_window_column(f.predicate());
            } else if !matches!(
                node.name(),
                "StreamingTableExec"
                    | "CoalesceBatchesExec"
                    | "RepartitionExec"
                    | "CooperativeExec"
            ) {
                plain = false;
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .ok()?;
    if !plain {
        return None;
    }
    let state_schema = partial.schema();
    let state = Arc::new(Slot::default());
    let stream = SlotStream {
        schema: Arc::clone(&state_schema),
        slot: Arc::clone(&state),
    };
    let leaf: Arc<dyn ExecutionPlan> = Arc::new(
        StreamingTableExec::try_new(
            Arc::clone(&state_schema),
            vec![Arc::new(stream)],
            None,
            Vec::new(),
            false,
            None,
        )
        .ok()?,
    );
    let final_plan = Arc::clone(plan)
        .transform_down(|node| {
            if Arc::ptr_eq(&node, final_node) {
                let replaced = Arc::clone(&node).replace_children(
                    vec![Arc::clone(&leaf)],
                    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
                )?;
                Ok(Transformed::new(replaced, true, TreeNodeRecursion::Jump))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .ok()?
        .data;
    let window_keys = group_by_group(&final_plan)
        .then(|| {
            let key = |position: Option<usize>| {
                let i = final_plan
                    .schema()
                    .index_of(&format!("{KEY_PREFIX}{}", position?))
                    .ok()?;
                matches!(
                    final_plan.schema().field(i).data_type(),
                    DataType::Timestamp(TimeUnit::Millisecond, _)
                )
                .then_some(i)
            };
            Some((key(window_columns[0])?, key(window_columns[1])?))
        })
        .flatten();
    Some(Split {
        partial: Reusable::partial(partial),
        final_plan: Reusable::new(final_plan),
        state,
        state_schema,
        window_columns,
        window_keys,
    })
}

/// Whether every operator of `plan` works within a group (aggregates, filters, projections):
/// then running several windows' groups together gives each window what it would alone.
fn group_by_group(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut ok = true;
    plan.apply(|node| {
        ok &= matches!(
            node.name(),
            "AggregateExec"
                | "FilterExec"
                | "ProjectionExec"
                | "CoalesceBatchesExec"
                | "CoalescePartitionsExec"
                | "StreamingTableExec"
        );
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("visiting never fails");
    ok
}

/// The largest distance in event time between the rows of an interval join, from its
/// predicates: both `a.ts - b.ts >= lo` and `a.ts - b.ts <= hi` must be stated (with
/// `BETWEEN`, comparisons, or `=`), as Flink requires.
fn interval_bounds(plan: &LogicalPlan, time_columns: &[String]) -> Option<i64> {
    let mut predicates = Vec::new();
    plan.apply(|node| {
        match node {
            LogicalPlan::Filter(f) => predicates.push(f.predicate.clone()),
            LogicalPlan::Join(j) => {
                predicates.extend(j.filter.clone());
                for (l, r) in &j.on {
                    predicates.push(l.clone().eq(r.clone()));
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    // A side of a comparison: a time column plus a constant offset.
    let term = |e: &Expr| -> Option<(String, i64)> {
        let column = |e: &Expr| match e {
            Expr::Column(c) if time_columns.contains(&c.name) => Some(
                c.relation
                    .as_ref()
                    .map_or(c.name.clone(), |r| r.to_string()),
            ),
            _ => None,
        };
        if let Some(q) = column(e) {
            return Some((q, 0));
        }
        match e {
            Expr::BinaryExpr(b) => {
                let offset = interval_literal_ms(&b.right)?;
                let q = column(&b.left)?;
                match b.op {
                    Operator::Plus => Some((q, offset)),
                    Operator::Minus => Some((q, -offset)),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let (mut lower, mut upper): (Option<i64>, Option<i64>) = (None, None);
    let mut first: Option<String> = None;
    // Records `l <op> r` where l = (qa, a), r = (qb, b): bounds on first - other.
    let mut record = |l: (String, i64), op: Operator, r: (String, i64)| {
        if l.0 == r.0 {
            return;
        }
        let reference = first.get_or_insert_with(|| l.0.clone()).clone();
        // l.q + a OP r.q + b  <=>  l.q - r.q OP b - a
        let (diff, op) = if l.0 == reference {
            (r.1 - l.1, op)
        } else {
            // r.q - l.q  (flipped) OP' a - b
            (l.1 - r.1, op.swap().unwrap_or(op))
        };
        match op {
            Operator::Lt | Operator::LtEq => upper = Some(upper.map_or(diff, |u| u.min(diff))),
            Operator::Gt | Operator::GtEq => lower = Some(lower.map_or(diff, |x| x.max(diff))),
            Operator::Eq => {
                upper = Some(diff);
                lower = Some(diff);
            }
            _ => {}
        }
    };
    for p in &predicates {
        for c in split_conjunction(p) {
            match c {
                Expr::BinaryExpr(b) => {
                    if let (Some(l), Some(r)) = (term(&b.left), term(&b.right)) {
                        record(l, b.op, r);
                    }
                }
                Expr::Between(b) if !b.negated => {
                    if let Some(x) = term(&b.expr) {
                        if let Some(lo) = term(&b.low) {
                            record(x.clone(), Operator::GtEq, lo);
                        }
                        if let Some(hi) = term(&b.high) {
                            record(x, Operator::LtEq, hi);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Some(lower?.abs().max(upper?.abs()))
}

fn interval_literal_ms(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            Some(i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            Some(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
        }
        Expr::Cast(c) => interval_literal_ms(&c.expr),
        _ => None,
    }
}

/// Appends the columns that identify a result row to the query's output as hidden
/// `__cb_key_N` columns, so alerts get an id that is the same whenever the same rule, window
/// and row come round again (see [`RowKey`]): the GROUP BY values of a window aggregation,
/// otherwise every input column named in `key_names` (the catalog's record ids or record
/// origins, one per joined side). When neither can be reached from the top of the query (a join
/// or union above the aggregate, a subquery without them, an unnest above the aggregate), no
/// column is added and rows are told apart by their selected values alone.
fn with_key_columns(
    plan: LogicalPlan,
    aggregated: bool,
    key_names: &[&str],
) -> (LogicalPlan, RowKey) {
    match plan {
        LogicalPlan::Projection(p) => {
            let input_schema = p.input.schema();
            let mut keys: Vec<Expr> = Vec::new();
            if aggregated {
                let mut node = p.input.as_ref();
                loop {
                    match node {
                        LogicalPlan::Aggregate(agg) => {
                            keys = (0..agg.group_expr.len())
                                .map(|i| Expr::Column(agg.schema.qualified_field(i).into()))
                                .collect();
                            break;
                        }
                        // Several rows per group: the group no longer tells them apart.
                        LogicalPlan::Unnest(_) => break,
                        other => match other.inputs().as_slice() {
                            [one] => node = one,
                            _ => break,
                        },
                    }
                }
            } else {
                keys = (0..input_schema.fields().len())
                    .filter(|i| key_names.contains(&input_schema.field(*i).name().as_str()))
                    .map(|i| Expr::Column(input_schema.qualified_field(i).into()))
                    .collect();
            }
            let resolvable = keys.iter().all(|k| match k {
                Expr::Column(c) => input_schema.has_column(c),
                _ => false,
            });
            // Rows without windows: the event times behind each row ride along, so an alert's
            // `event_time` is the row's own whatever the rule selects (not the engine's clock
            // when it was emitted, which depends on how input was cut into batches).
            let (p, times) = if aggregated {
                (p, Vec::new())
            } else {
                let (input, times) = carry_times(Arc::unwrap_or_clone(Arc::clone(&p.input)));
                match Projection::try_new(p.expr.clone(), Arc::new(input)) {
                    Ok(carried) if !times.is_empty() => (carried, times),
                    _ => (p, Vec::new()),
                }
            };
            let keys = if resolvable { keys } else { Vec::new() };
            if keys.is_empty() && times.is_empty() {
                return (LogicalPlan::Projection(p), RowKey::Selected);
            }
            let key = match (keys.is_empty(), aggregated) {
                (true, _) => RowKey::Selected,
                (false, true) => RowKey::Group,
                (false, false) => RowKey::Events,
            };
            let mut exprs = p.expr.clone();
            exprs.extend(
                keys.into_iter()
                    .enumerate()
                    .map(|(i, e)| e.alias(format!("{KEY_PREFIX}{i}"))),
            );
            exprs.extend(
                times
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| e.alias(format!("{TIME_PREFIX}{i}"))),
            );
            match Projection::try_new(exprs, Arc::clone(&p.input)) {
                Ok(with_keys) => (LogicalPlan::Projection(with_keys), key),
                Err(_) => (LogicalPlan::Projection(p), RowKey::Selected),
            }
        }
        other => match other.inputs().as_slice() {
            [one] => {
                let (child, key) = with_key_columns((*one).clone(), aggregated, key_names);
                match other.with_new_exprs(other.expressions(), vec![child]) {
                    Ok(plan) => (plan, key),
                    Err(_) => (other.clone(), RowKey::Selected),
                }
            }
            _ => (other, RowKey::Selected),
        },
    }
}

/// `plan` made to output the event times behind each of its rows, with those columns: the
/// timestamp columns of its output when it has any; otherwise, below single-input operators
/// (an unnest, a filter) and projections that dropped them, the times of their input carried
/// up as hidden [`TIME_PREFIX`] columns. Plans reading several inputs without a timestamp in
/// their output carry none.
fn carry_times(plan: LogicalPlan) -> (LogicalPlan, Vec<Expr>) {
    let own = |schema: &DFSchema| -> Vec<Expr> {
        (0..schema.fields().len())
            .filter(|i| matches!(schema.field(*i).data_type(), DataType::Timestamp(..)))
            .map(|i| Expr::Column(schema.qualified_field(i).into()))
            .collect()
    };
    let times = own(plan.schema());
    if !times.is_empty() {
        return (plan, times);
    }
    match plan {
        LogicalPlan::Projection(p) => {
            let (input, below) = carry_times(Arc::unwrap_or_clone(Arc::clone(&p.input)));
            if below.is_empty() {
                return (LogicalPlan::Projection(p), Vec::new());
            }
            let mut exprs = p.expr.clone();
            let names: Vec<String> = (0..below.len())
                .map(|i| format!("{TIME_PREFIX}{}", exprs.len() + i))
                .collect();
            exprs.extend(below.into_iter().zip(&names).map(|(e, n)| e.alias(n)));
            match Projection::try_new(exprs, Arc::new(input)) {
                Ok(carried) => {
                    let times = names
                        .iter()
                        .map(|n| Expr::Column(n.as_str().into()))
                        .collect();
                    (LogicalPlan::Projection(carried), times)
                }
                Err(_) => (LogicalPlan::Projection(p), Vec::new()),
            }
        }
        LogicalPlan::Aggregate(_) | LogicalPlan::Join(_) | LogicalPlan::Union(_) => {
            (plan, Vec::new())
        }
        other => match other.inputs().as_slice() {
            [one] => {
                let (child, below) = carry_times((*one).clone());
                if below.is_empty() {
                    return (other, Vec::new());
                }
                match other.with_new_exprs(other.expressions(), vec![child]) {
                    Ok(rebuilt) => {
                        let times = own(rebuilt.schema());
                        (rebuilt, times)
                    }
                    Err(_) => (other, Vec::new()),
                }
            }
            _ => (other, Vec::new()),
        },
    }
}

fn problem(src: &RuleSource, d: Diag) -> Problem {
    Problem {
        file: src.path.clone(),
        line: d.line,
        column: d.column,
        message: d.message,
    }
}

/// Where the first of `keywords` appears in the rule's query, else the first of `fallback`.
fn keyword_position(text: &str, keywords: &[&str], fallback: &[&str]) -> Option<Location> {
    let tokens = datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .ok()?;
    let first = |words: &[&str]| {
        tokens.iter().find_map(|t| match &t.token {
            Token::Word(w)
                if w.quote_style.is_none()
                    && words.iter().any(|k| w.value.eq_ignore_ascii_case(k)) =>
            {
                Some(t.span.start)
            }
            _ => None,
        })
    };
    first(keywords).or_else(|| first(fallback))
}

/// The position of the first line of SQL after the header.
fn first_query_line(text: &str) -> datafusion::sql::sqlparser::tokenizer::Location {
    let line = text
        .lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("--")
        })
        .unwrap_or(0);
    datafusion::sql::sqlparser::tokenizer::Location::new(line as u64 + 1, 1)
}

/// sqlparser reports "... at Line: 3, Column: 7"; turn that into a positioned problem. Errors
/// at the end of input carry no position: they are reported after the last token, `end`.
fn parser_problem(
    src: &RuleSource,
    message: &str,
    end: Option<datafusion::sql::sqlparser::tokenizer::Location>,
) -> Problem {
    let message = message.trim_start_matches("sql parser error: ").to_string();
    let (text, line, column) = match message.rfind(" at Line: ") {
        Some(i) => {
            let pos = &message[i + " at Line: ".len()..];
            let mut parts = pos.split(", Column: ");
            let line = parts
                .next()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(1);
            let col = parts
                .next()
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(1);
            (message[..i].to_string(), line, col)
        }
        None => {
            let end = end.unwrap_or(datafusion::sql::sqlparser::tokenizer::Location::new(1, 1));
            (
                message.replace("found: EOF", "found the end of the rule"),
                end.line,
                end.column,
            )
        }
    };
    Problem {
        file: src.path.clone(),
        line,
        column,
        message: format!("syntax error: {text}"),
    }
}

/// A DataFusion planning error as a problem at the position it names, when it names one.
fn planning_problem(src: &RuleSource, e: &DataFusionError) -> Problem {
    let (line, column) = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| (s.start.line, s.start.column))
        .unwrap_or_else(|| {
            let l = first_query_line(&src.text);
            (l.line, l.column)
        });
    let root = e.find_root();
    let raw = match root {
        DataFusionError::SchemaError(..) | DataFusionError::Plan(_) => root.message().to_string(),
        _ => root.strip_backtrace(),
    };
    // Keep the first sentence(s); drop DataFusion's list of every valid field.
    let message = raw.lines().next().unwrap_or_default().to_string();
    Problem {
        file: src.path.clone(),
        line: line.max(1),
        column: column.max(1),
        message,
    }
}
