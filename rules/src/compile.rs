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
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Problem, suggest};
use crate::rule::{RuleMeta, RuleSource, parse_header};
use crate::window::{self, Diag, Mode, WINDOW_END, WINDOW_START, WINDOW_TIME, WindowTvf};

/// Prefix of the hidden output columns that identify an alert's group.
pub const KEY_PREFIX: &str = "__cb_key_";

/// The tables rules may read, by name, with the name of each one's event-time column.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, (SchemaRef, String)>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a table whose event time is the timestamp column `time_column`.
    pub fn with_table(mut self, name: &str, schema: SchemaRef, time_column: &str) -> Self {
        self.tables
            .insert(name.to_string(), (schema, time_column.to_string()));
        self
    }

    /// The schema of table `name`.
    pub fn schema(&self, name: &str) -> Option<&SchemaRef> {
        self.tables.get(name).map(|(s, _)| s)
    }

    /// The table names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

/// How a rule turns input rows into results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No aggregation: every input batch is run through the plan at once and results are
    /// emitted immediately (per-event alerts).
    PerEvent,
    /// A window aggregation: rows are held per window and the plan runs when the watermark
    /// passes the window's end.
    WindowAggregate,
}

/// A rule planned once and ready to run.
#[derive(Debug)]
pub struct CompiledRule {
    /// Header metadata.
    pub meta: RuleMeta,
    /// The catalog table the rule reads.
    pub input: String,
    /// The window call, when the rule reads through one.
    pub window: Option<WindowTvf>,
    /// Per event or per window.
    pub shape: Shape,
    /// Index of the event-time column in the input table.
    pub time_index: usize,
    /// What the slot holds: the input table's columns, plus the window columns when windowed.
    pub slot_schema: SchemaRef,
    /// The plan's output: the selected columns, then the hidden key columns.
    pub output_schema: SchemaRef,
    /// How many leading output columns the analyst selected.
    pub data_columns: usize,
    pub(crate) plan: Arc<dyn ExecutionPlan>,
    pub(crate) slot: Arc<Slot>,
    pub(crate) task_ctx: Arc<TaskContext>,
}

impl CompiledRule {
    /// Runs the plan once over `batches` (with the [`CompiledRule::slot_schema`]).
    ///
    /// # Errors
    /// When DataFusion fails to execute the plan (an engine fault).
    pub async fn execute(&self, batches: Vec<RecordBatch>) -> crate::Result<Vec<RecordBatch>> {
        self.slot.put(batches);
        let out =
            datafusion::physical_plan::collect(Arc::clone(&self.plan), Arc::clone(&self.task_ctx))
                .await;
        // Never leave rows behind for the next run, even when execution failed early.
        self.slot.put(Vec::new());
        out.map_err(|source| crate::Error::Execute {
            rule: self.meta.id.clone(),
            source,
        })
    }
}

/// The leaf a plan reads from: the operator puts batches in, one execution takes them out.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    batches: Mutex<Vec<RecordBatch>>,
}

impl Slot {
    fn put(&self, batches: Vec<RecordBatch>) {
        *self.batches.lock().unwrap_or_else(|e| e.into_inner()) = batches;
    }

    fn take(&self) -> Vec<RecordBatch> {
        std::mem::take(&mut *self.batches.lock().unwrap_or_else(|e| e.into_inner()))
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
        let batches = self.slot.take();
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

/// A fresh session with the city functions, planning for one partition.
pub(crate) fn new_context() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false);
    config.options_mut().sql_parser.collect_spans = true;
    let ctx = SessionContext::new_with_config(config);
    crate::functions::register(&ctx);
    ctx
}

/// Parses rewritten tokens into exactly one query.
pub(crate) fn parse_query(
    src: &RuleSource,
    rewritten: window::Rewritten,
) -> Result<Statement, Vec<Problem>> {
    let mut code = rewritten
        .tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)));
    let first = code.next().map(|t| t.span.start);
    let last = code.next_back().map_or(first, |t| Some(t.span.end));
    let mut parser = Parser::new(&GenericDialect {}).with_tokens_with_locations(rewritten.tokens);
    let statements = parser
        .parse_statements()
        .map_err(|e| vec![parser_problem(src, &e.to_string(), last)])?;
    let at = |message: &str| {
        let loc = first.unwrap_or(datafusion::sql::sqlparser::tokenizer::Location::new(1, 1));
        vec![problem(src, Diag::at(loc, message))]
    };
    match <[Statement; 1]>::try_from(statements) {
        Ok([stmt @ Statement::Query(_)]) => Ok(stmt),
        Ok(_) => Err(at("a rule must be one SELECT query")),
        Err(v) if v.is_empty() => Err(at("the rule has no query: write one SELECT")),
        Err(_) => Err(at(
            "a rule holds exactly one SELECT; split the others into their own files",
        )),
    }
}

/// Plans `src` against `catalog`, reporting every problem found.
///
/// # Errors
/// The rule's mistakes, each with its file, line and column.
pub async fn compile(src: &RuleSource, catalog: &Catalog) -> Result<CompiledRule, Vec<Problem>> {
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
    let ctx = new_context();
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
    for (name, (schema, _)) in &catalog.tables {
        register(name, Arc::clone(schema));
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
                            "; feeds are {}",
                            catalog.names().collect::<Vec<_>>().join(", ")
                        )
                    });
                problems.push(problem(
                    src,
                    Diag::at(loc, format!("unknown feed `{}`{hint}", w.table)),
                ));
            }
            Some((schema, time)) => {
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
        .map_err(|e| vec![planning_problem(src, &e)])?;

    // Which tables does it read?
    let mut scans = Vec::new();
    let mut has_aggregate = None;
    let mut unsupported = None;
    plan.apply(|node| {
        match node {
            LogicalPlan::TableScan(scan) => scans.push(scan.table_name.table().to_string()),
            LogicalPlan::Aggregate(agg) => {
                let names: Vec<bool> = [WINDOW_START, WINDOW_END]
                    .iter()
                    .map(|w| {
                        agg.group_expr
                            .iter()
                            .any(|e| matches!(e, Expr::Column(c) if c.name == *w))
                    })
                    .collect();
                has_aggregate = Some(names.iter().all(|b| *b));
            }
            LogicalPlan::Window(_) => {
                unsupported = Some("OVER (...) window functions are not supported yet")
            }
            LogicalPlan::Join(_) => {
                unsupported = Some("joins are not supported yet: a rule reads one feed")
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("visiting never fails");
    let first_line = first_query_line(&src.text);
    let fail = |message: String| vec![problem(src, Diag::at(first_line, message))];
    if let Some(why) = unsupported {
        return Err(fail(why.to_string()));
    }
    scans.sort();
    scans.dedup();
    let [scan] = scans.as_slice() else {
        return Err(fail(format!(
            "a rule reads exactly one feed; this one reads {}",
            if scans.is_empty() {
                "none".to_string()
            } else {
                scans.join(", ")
            }
        )));
    };
    let window = windows.iter().find(|w| &w.slot == scan).cloned();
    let input = window.as_ref().map_or(scan.clone(), |w| w.table.clone());
    let shape = match (has_aggregate, &window) {
        (None, _) => Shape::PerEvent,
        (Some(true), Some(_)) => Shape::WindowAggregate,
        (Some(false), Some(_)) => {
            return Err(fail(format!(
                "a windowed aggregation must GROUP BY {WINDOW_START}, {WINDOW_END} (as in Flink)"
            )));
        }
        (Some(_), None) => {
            return Err(fail(format!(
                "aggregation over an endless feed needs a window: read FROM TABLE(TUMBLE(TABLE {input}, \
                 DESCRIPTOR(ts), INTERVAL '5' MINUTES)) and GROUP BY {WINDOW_START}, {WINDOW_END}"
            )));
        }
    };
    let (input_schema, time) = catalog
        .tables
        .get(&input)
        .expect("scans only name registered tables");
    let time_index = input_schema
        .index_of(time)
        .expect("catalog time column is in its schema");
    let data_columns = plan.schema().fields().len();
    let plan = with_key_columns(plan, shape).map_err(|e| vec![planning_problem(src, &e)])?;
    let physical = state
        .create_physical_plan(&plan)
        .await
        .map_err(|e| vec![planning_problem(src, &e)])?;
    let (slot, slot_schema) = slots.remove(scan).expect("scanned table has a slot");
    Ok(CompiledRule {
        meta,
        input,
        window,
        shape,
        time_index,
        slot_schema,
        output_schema: physical.schema(),
        data_columns,
        plan: physical,
        slot,
        task_ctx: ctx.task_ctx(),
    })
}

/// Appends the columns that identify a result row's group to the query's output, so alerts get
/// an id that is the same whenever the same rule, window and group come round again: the GROUP
/// BY values for a window aggregation, the input's `event_id` for a per-event rule.
fn with_key_columns(plan: LogicalPlan, shape: Shape) -> datafusion::error::Result<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(p) => {
            let keys: Vec<Expr> = match shape {
                Shape::WindowAggregate => {
                    let mut node = p.input.as_ref();
                    loop {
                        match node {
                            LogicalPlan::Aggregate(agg) => {
                                break (0..agg.group_expr.len())
                                    .map(|i| Expr::Column(agg.schema.qualified_field(i).into()))
                                    .collect();
                            }
                            other => match other.inputs().as_slice() {
                                [one] => node = one,
                                _ => break Vec::new(),
                            },
                        }
                    }
                }
                Shape::PerEvent => p
                    .input
                    .schema()
                    .qualified_field_with_unqualified_name("event_id")
                    .map(|f| vec![Expr::Column(f.into())])
                    .unwrap_or_default(),
            };
            let mut exprs = p.expr.clone();
            exprs.extend(
                keys.into_iter()
                    .enumerate()
                    .map(|(i, e)| e.alias(format!("{KEY_PREFIX}{i}"))),
            );
            Ok(LogicalPlan::Projection(Projection::try_new(
                exprs, p.input,
            )?))
        }
        other => match other.inputs().as_slice() {
            [one] => {
                let child = with_key_columns((*one).clone(), shape)?;
                other.with_new_exprs(other.expressions(), vec![child])
            }
            _ => Ok(other),
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
