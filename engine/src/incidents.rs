//! The incident stage: the pipeline's alerts and clock into the incident desk
//! (`citybrain_ops`), actions from a file, the console's HTTP address, and the command-line
//! options they share.
//!
//! ```text
//!  Pipeline::apply ──alerts (routed to the grid), max event time──▶ Grid::observe
//!                                                                     │ clock = max ts − out-of-orderness
//!  actions file (replay) ──released when the clock reaches `at`──────▶ Desk::ingest ─▶ outputs
//!                                                                     │ refused / malformed actions
//!                                                                     ▼
//!                                                          dead letters (reason, file:line)
//! ```

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use citybrain_connectors::{JsonlSink, Sink, SinkRecord};
use citybrain_ops::cap::CapWriter;
use citybrain_ops::desk::{ClockMode, DeskConfig};
use citybrain_ops::incident::Refusal;
use citybrain_ops::jurisdiction::{Jurisdictions, sample_city_path};
use citybrain_ops::policy::Overrides;
use citybrain_ops::store::{Format, LocalStore, Outputs};
use citybrain_ops::{Access, Action, AlertIn, Context, Desk, Level, Policy, RuleProfile};
use citybrain_rules::CompiledRule;
use serde_json::{Value, json};

use crate::alert::Alert;
use crate::error::{Error, Result};

/// Command-line options of the incident desk (`run` and `replay`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct IncidentArgs {
    /// Jurisdictions: a GeoJSON FeatureCollection of community polygons (default: the sample
    /// city, ops/data/sample-city.geojson).
    #[arg(long)]
    pub jurisdictions: Option<PathBuf>,
    /// Escalation policy (TOML; default: the built-in policy, see docs/incidents.md).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Working-time calendar (TOML: hours, holidays, swapped working days).
    #[arg(long)]
    pub calendar: Option<PathBuf>,
    /// Replay: write incident events here (JSON lines).
    #[arg(long)]
    pub incidents: Option<PathBuf>,
    /// Replay: actions to take, one JSON object a line, merged in event time.
    #[arg(long, requires = "incidents")]
    pub actions: Option<PathBuf>,
    /// Write every incident as CAP 1.2 XML messages into this folder.
    #[arg(long)]
    pub cap: Option<PathBuf>,
}

/// Everything an incident desk is built from, read and checked.
pub struct DeskParts {
    /// The city.
    pub jurisdictions: Arc<Jurisdictions>,
    /// The decision context.
    pub context: Context,
}

impl std::fmt::Debug for DeskParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeskParts")
            .field("jurisdictions", &self.jurisdictions)
            .finish_non_exhaustive()
    }
}

/// Reads the jurisdictions, policy and calendar (defaults when not given), reporting every
/// problem of every file at once.
///
/// # Errors
/// [`Error::Incidents`] listing the problems.
pub fn desk_parts<'a>(
    args: &IncidentArgs,
    rules: impl IntoIterator<Item = &'a CompiledRule>,
) -> Result<DeskParts> {
    let mut problems = Vec::new();
    let mut take = |e: citybrain_ops::Error| match e {
        citybrain_ops::Error::Invalid { problems: p } => problems.extend(p),
        other => problems.push(format!("{other}: {}", source_text(&other))),
    };
    let policy = match &args.policy {
        Some(p) => Policy::load(p).map_err(&mut take).ok(),
        None => Some(Policy::default()),
    };
    let calendar = match &args.calendar {
        Some(p) => citybrain_ops::calendar::Calendar::load(p)
            .map_err(&mut take)
            .ok(),
        None => Some(citybrain_ops::calendar::Calendar::default()),
    };
    let path = args.jurisdictions.clone().unwrap_or_else(sample_city_path);
    let jurisdictions = Jurisdictions::load(
        &path,
        policy.as_ref().map(|p| p.routing).unwrap_or_default(),
    )
    .map_err(&mut take)
    .ok();
    match (policy, calendar, jurisdictions) {
        (Some(policy), Some(calendar), Some(j)) if problems.is_empty() => {
            let jurisdictions = Arc::new(j);
            Ok(DeskParts {
                context: Context {
                    jurisdictions: Arc::clone(&jurisdictions),
                    policy,
                    calendar,
                    rules: profiles(rules),
                },
                jurisdictions,
            })
        }
        _ => Err(Error::Incidents(citybrain_ops::Error::Invalid { problems })),
    }
}

fn source_text(e: &dyn std::error::Error) -> String {
    e.source().map(ToString::to_string).unwrap_or_default()
}

/// What the desk knows of each rule: department (owner), header overrides, window slide.
pub fn profiles<'a>(
    rules: impl IntoIterator<Item = &'a CompiledRule>,
) -> HashMap<String, RuleProfile> {
    rules
        .into_iter()
        .map(|r| {
            let meta = &r.meta;
            let department = meta
                .headers
                .get("owner")
                .cloned()
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| meta.id.split('/').next().unwrap_or(&meta.id).to_string());
            let profile = RuleProfile {
                department,
                overrides: Overrides {
                    level: meta
                        .incident_level
                        .as_deref()
                        .and_then(|l| l.parse::<Level>().ok()),
                    ack_within_ms: meta.ack_within_ms,
                },
                slide_ms: r
                    .window
                    .as_ref()
                    .map(|w| w.kind.slice_ms().unwrap_or_else(|| w.kind.size_ms())),
            };
            (meta.id.clone(), profile)
        })
        .collect()
}

/// Reads the access file (default: the sample city's demo tokens).
///
/// # Errors
/// [`Error::Incidents`] with every problem.
pub fn access(path: Option<&Path>, jurisdictions: &Jurisdictions) -> Result<Access> {
    let path = path.map_or_else(citybrain_ops::access::demo_access_path, Path::to_path_buf);
    Access::load(&path, jurisdictions).map_err(Error::Incidents)
}

/// Actions of a file, in event-time order, released when the clock reaches them.
#[derive(Debug, Default)]
pub struct ActionQueue {
    pending: VecDeque<Action>,
}

impl ActionQueue {
    /// Reads an actions file: one JSON object a line (`{"incident_id","action","unit","at",
    /// "comment"?,"due_at"?,"to"?,"action_id"?}`). A line that is not an action becomes a
    /// dead letter naming file and line; an action without an id gets `<file name>:<line>`.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn read(path: &Path) -> Result<(Self, Vec<SinkRecord>)> {
        let file = std::fs::File::open(path).map_err(|source| {
            Error::Incidents(citybrain_ops::Error::Read {
                path: path.to_path_buf(),
                source,
            })
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        );
        let mut actions = Vec::new();
        let mut dead = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| {
                Error::Incidents(citybrain_ops::Error::Read {
                    path: path.to_path_buf(),
                    source,
                })
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let origin = json!({"file": path.display().to_string(), "line": i + 1});
            match serde_json::from_str::<Action>(&line) {
                Ok(mut a) => {
                    a.action_id
                        .get_or_insert_with(|| format!("{name}:{}", i + 1));
                    actions.push(a);
                }
                Err(e) => dead.push(action_dead_letter(
                    &line,
                    &format!("not an action: {e}"),
                    &origin,
                )),
            }
        }
        actions.sort_by_key(|a| a.at);
        Ok((
            Self {
                pending: actions.into(),
            },
            dead,
        ))
    }

    /// Takes the actions due at or before `clock` (none without a clock).
    pub fn release(&mut self, clock: Option<i64>) -> Vec<Action> {
        let n = clock.map_or(0, |c| self.pending.iter().take_while(|a| a.at <= c).count());
        self.pending.drain(..n).collect()
    }

    /// Takes every action left.
    pub fn release_all(&mut self) -> Vec<Action> {
        self.pending.drain(..).collect()
    }
}

/// A refused or malformed action as a dead letter: `{"reason","origin","action"}`, with the
/// Kafka-Connect-style headers the engine's other dead letters carry.
pub fn action_dead_letter(raw: &str, reason: &str, origin: &Value) -> SinkRecord {
    let action: Value =
        serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    SinkRecord {
        key: None,
        payload: json!({"reason": reason, "origin": origin, "action": action}).to_string(),
        headers: vec![
            (
                "__connect.errors.exception.message".to_string(),
                reason.to_string(),
            ),
            ("citybrain.reason".to_string(), "action".to_string()),
        ],
    }
}

fn refused_dead_letter(a: &Action, r: &Refusal) -> SinkRecord {
    let raw = serde_json::to_string(a).expect("actions serialize");
    let origin = json!({"action_id": a.action_id});
    action_dead_letter(&raw, &format!("refused: {r}"), &origin)
}

/// The pipeline's link to the grid: routing of alerts, and the incident desk when one runs.
pub struct Grid {
    jurisdictions: Arc<Jurisdictions>,
    desk: Option<Arc<Desk>>,
    actions: ActionQueue,
    /// Dead letters not yet handed to the pipeline (malformed lines of the actions file).
    dead: Vec<SinkRecord>,
    out_of_orderness_ms: i64,
    max_ts: Option<i64>,
    watermark: Option<i64>,
}

impl std::fmt::Debug for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grid")
            .field("jurisdictions", &self.jurisdictions)
            .field("desk", &self.desk.is_some())
            .finish_non_exhaustive()
    }
}

impl Grid {
    /// Routing only: alerts carry their unit, no incidents are kept.
    pub fn routing(jurisdictions: Arc<Jurisdictions>, out_of_orderness_ms: i64) -> Self {
        Self {
            jurisdictions,
            desk: None,
            actions: ActionQueue::default(),
            dead: Vec::new(),
            out_of_orderness_ms,
            max_ts: None,
            watermark: None,
        }
    }

    /// Routing and the incident desk, with actions from a file released in event time
    /// (`dead`: the file's malformed lines, handed to the dead-letter sink with the first
    /// batch).
    pub fn with_desk(
        jurisdictions: Arc<Jurisdictions>,
        desk: Arc<Desk>,
        actions: ActionQueue,
        dead: Vec<SinkRecord>,
        out_of_orderness_ms: i64,
    ) -> Self {
        Self {
            desk: Some(desk),
            actions,
            dead,
            ..Self::routing(jurisdictions, out_of_orderness_ms)
        }
    }

    /// The jurisdictions alerts are routed by.
    pub fn jurisdictions(&self) -> &Jurisdictions {
        &self.jurisdictions
    }

    /// The desk, when one runs.
    pub fn desk(&self) -> Option<&Arc<Desk>> {
        self.desk.as_ref()
    }

    /// The desk's event-time clock: the alert rules' watermark (every alert before it has
    /// been emitted); `None` until every alert rule has one.
    pub fn clock(&self) -> Option<i64> {
        self.watermark
    }

    /// The event time of alerts whose rows carry none: the clock, before it exists the largest
    /// event time seen minus the out-of-orderness bound.
    pub fn event_clock(&self) -> Option<i64> {
        self.watermark
            .or_else(|| self.max_ts.map(|t| t - self.out_of_orderness_ms))
    }

    /// Notes input up to event time `max_ts` (a batch's largest).
    pub fn saw(&mut self, max_ts: Option<i64>) {
        if let Some(t) = max_ts {
            self.max_ts = Some(self.max_ts.map_or(t, |m| m.max(t)));
        }
    }

    /// Updates what the desk knows of the rules (after a reload).
    pub fn set_rules<'a>(&self, rules: impl IntoIterator<Item = &'a CompiledRule>) {
        if let Some(d) = &self.desk {
            d.set_rules(profiles(rules));
        }
    }

    /// Hands the desk `alerts` and the actions due, then moves its clock to `watermark` (the
    /// alert rules' smallest: no alert before it is still to come); at the end of the input
    /// to the last event time, and every remaining action is taken. Returns dead letters of
    /// malformed or refused actions.
    ///
    /// # Errors
    /// When the desk cannot write its outputs.
    pub async fn observe(
        &mut self,
        alerts: &[Alert],
        watermark: Option<i64>,
        at_end: bool,
    ) -> Result<Vec<SinkRecord>> {
        if let Some(w) = watermark {
            self.watermark = Some(self.watermark.map_or(w, |m| m.max(w)));
        }
        if at_end && let Some(t) = self.max_ts {
            self.watermark = Some(self.watermark.map_or(t, |m| m.max(t)));
        }
        let Some(desk) = &self.desk else {
            return Ok(Vec::new());
        };
        let fallback = self.event_clock();
        let alerts: Vec<AlertIn> = alerts
            .iter()
            .filter_map(|a| match AlertIn::from_json(&a.json, fallback) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(alert = %a.id, error = %e, "alert not taken by the incident desk");
                    None
                }
            })
            .collect();
        let clock = self.clock();
        let mut actions = self.actions.release(clock);
        let mut dead = std::mem::take(&mut self.dead);
        if alerts.is_empty() && actions.is_empty() && clock.is_none() {
            return Ok(dead);
        }
        let done = desk
            .ingest(alerts, std::mem::take(&mut actions), clock)
            .await
            .map_err(Error::Incidents)?;
        dead.extend(done.refused.iter().map(|(a, r)| refused_dead_letter(a, r)));
        if at_end {
            // Actions after the end of the data: the clock moves to each in turn.
            for a in self.actions.release_all() {
                let at = a.at;
                let done = desk
                    .ingest(Vec::new(), vec![a], Some(at))
                    .await
                    .map_err(Error::Incidents)?;
                dead.extend(done.refused.iter().map(|(a, r)| refused_dead_letter(a, r)));
            }
        }
        publish_metrics(desk, &done.events);
        Ok(dead)
    }

    /// A future resolving once the desk's outputs written so far are durable (the pipeline
    /// acknowledges input only after it).
    ///
    /// # Errors
    /// When a barrier cannot be set.
    pub async fn barrier(&self) -> Result<citybrain_connectors::Barrier> {
        match &self.desk {
            Some(d) => d.barrier().await.map_err(Error::Incidents),
            None => Ok(Box::pin(futures::future::ready(Ok(())))),
        }
    }

    /// Makes the desk's outputs durable.
    ///
    /// # Errors
    /// When an output cannot be flushed.
    pub async fn flush(&self) -> Result<()> {
        match &self.desk {
            Some(d) => d.flush().await.map_err(Error::Incidents),
            None => Ok(()),
        }
    }
}

/// Live counts on `/metrics`: events by type, open incidents by level, overdue ones.
fn publish_metrics(desk: &Desk, events: &[Arc<citybrain_ops::IncidentEvent>]) {
    use crate::metrics::names;
    for e in events {
        metrics::counter!(names::INCIDENT_EVENTS, "type" => e.kind.as_str()).increment(1);
    }
    if events.is_empty() {
        return;
    }
    let book = desk.book();
    let now = desk.now();
    let mut open = [0u64; 4];
    let mut overdue = 0u64;
    for i in book.incidents().filter(|i| !i.state.is_final()) {
        open[i.level.index()] += 1;
        if i.overdue || i.due_at.is_some_and(|d| d < now) {
            overdue += 1;
        }
    }
    for l in Level::ALL {
        metrics::gauge!(names::INCIDENTS_OPEN, "level" => l.as_str()).set(open[l.index()] as f64);
    }
    metrics::gauge!(names::INCIDENTS_OVERDUE).set(overdue as f64);
}

/// How a desk's outputs are set up from the options.
#[derive(Debug, Default)]
pub struct OutputPlan {
    /// Incident events as JSON lines (replay `--incidents`).
    pub events_file: Option<PathBuf>,
    /// A local store: the event log appended to and restored from (no Kafka).
    pub store: Option<PathBuf>,
    /// Readable lines on stdout.
    pub terminal: bool,
    /// CAP 1.2 folder.
    pub cap: Option<PathBuf>,
}

/// Builds a desk over `parts` with the outputs of `plan`, restored from the local store when
/// there is one.
///
/// # Errors
/// When an output cannot be created or the store cannot be read.
pub async fn build_desk(
    parts: &DeskParts,
    access: Access,
    config: DeskConfig,
    plan: &OutputPlan,
    extra: Vec<(String, Format, Box<dyn Sink>)>,
) -> Result<Arc<Desk>> {
    let mut outputs = Outputs::new();
    let write_err = |path: &Path, source| {
        Error::Incidents(citybrain_ops::Error::Write {
            what: path.display().to_string(),
            source: Box::new(source),
        })
    };
    if let Some(p) = &plan.events_file {
        outputs.add(
            &p.display().to_string(),
            Format::Events,
            Box::new(JsonlSink::create(p).map_err(|e| write_err(p, e))?),
        );
    }
    let mut restored = Vec::new();
    if let Some(p) = &plan.store {
        let store = LocalStore { path: p.clone() };
        restored = store.load().map_err(Error::Incidents)?;
        outputs.add(
            &p.display().to_string(),
            Format::Events,
            Box::new(store.sink().map_err(Error::Incidents)?),
        );
    }
    if plan.terminal {
        outputs.add("stdout", Format::Human, Box::new(JsonlSink::stdout()));
    }
    if let Some(dir) = &plan.cap {
        outputs.add_cap(
            CapWriter::new(dir, parts.jurisdictions.city(), config.exercise)
                .map_err(Error::Incidents)?,
        );
    }
    for (name, format, sink) in extra {
        outputs.add(&name, format, sink);
    }
    let desk = Desk::new(parts.context.clone(), access, config, outputs);
    if !restored.is_empty() {
        desk.restore(restored).await.map_err(Error::Incidents)?;
    }
    Ok(desk)
}

/// The grid of a replay: routing always; the incident desk when `--incidents` or `--cap` is
/// given, with the actions of `--actions`.
///
/// # Errors
/// When a file is invalid or an output cannot be created.
pub async fn replay_grid(
    args: &IncidentArgs,
    rules: &[CompiledRule],
    out_of_orderness_ms: i64,
) -> Result<Grid> {
    let parts = desk_parts(args, rules)?;
    if args.incidents.is_none() && args.cap.is_none() {
        return Ok(Grid::routing(
            Arc::clone(&parts.jurisdictions),
            out_of_orderness_ms,
        ));
    }
    let (actions, dead) = match &args.actions {
        Some(p) => ActionQueue::read(p)?,
        None => (ActionQueue::default(), Vec::new()),
    };
    let plan = OutputPlan {
        events_file: args.incidents.clone(),
        cap: args.cap.clone(),
        ..OutputPlan::default()
    };
    let desk = build_desk(
        &parts,
        Access::default(),
        replay_config(),
        &plan,
        Vec::new(),
    )
    .await?;
    Ok(Grid::with_desk(
        Arc::clone(&parts.jurisdictions),
        desk,
        actions,
        dead,
        out_of_orderness_ms,
    ))
}

/// Options of the desk of `citybrain run` (the simulator demo).
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    /// Jurisdictions, policy, calendar, outputs.
    pub args: IncidentArgs,
    /// The access file (default: demo tokens).
    pub access: Option<PathBuf>,
    /// The local store (event log kept across restarts).
    pub store: Option<PathBuf>,
    /// Whether to run a desk at all (else routing only).
    pub desk: bool,
    /// Readable incident lines on stdout.
    pub terminal: bool,
}

/// The grid of `citybrain run` with the simulator: the desk on the simulated city's event
/// time (its API is served with the console: `crate::console::start`).
///
/// # Errors
/// When a file is invalid or an output cannot be created.
pub async fn live_grid(
    options: &LiveOptions,
    rules: &[CompiledRule],
    out_of_orderness_ms: i64,
) -> Result<Grid> {
    let parts = desk_parts(&options.args, rules)?;
    if !options.desk {
        return Ok(Grid::routing(
            Arc::clone(&parts.jurisdictions),
            out_of_orderness_ms,
        ));
    }
    let access = access(options.access.as_deref(), &parts.jurisdictions)?;
    let plan = OutputPlan {
        events_file: options.args.incidents.clone(),
        store: options.store.clone(),
        terminal: options.terminal,
        cap: options.args.cap.clone(),
    };
    // The simulated city keeps its own time: its clock is event time, as in a replay.
    let config = DeskConfig {
        exercise: true,
        ..replay_config()
    };
    let desk = build_desk(&parts, access, config, &plan, Vec::new()).await?;
    Ok(Grid::with_desk(
        Arc::clone(&parts.jurisdictions),
        desk,
        ActionQueue::default(),
        Vec::new(),
        out_of_orderness_ms,
    ))
}

/// A few lines for the end of a run: incidents by state, events by type.
pub fn summary(grid: &Grid) -> Option<String> {
    use std::fmt::Write;
    let desk = grid.desk()?;
    let book = desk.book();
    let mut states: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for i in book.incidents() {
        *states.entry(i.state.as_str()).or_default() += 1;
    }
    let mut kinds: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for e in desk.log_snapshot() {
        *kinds.entry(e.kind.as_str()).or_default() += 1;
    }
    let mut s = String::new();
    let _ = writeln!(s, "incidents: {}", book.len());
    for (state, n) in states {
        let _ = writeln!(s, "  {state:<40} {n:>8}");
    }
    let _ = writeln!(s, "incident events:");
    for (kind, n) in kinds {
        let _ = writeln!(s, "  {kind:<40} {n:>8}");
    }
    Some(s)
}

/// The desk settings of a replay: event time, CAP `Exercise`.
pub fn replay_config() -> DeskConfig {
    DeskConfig {
        clock: ClockMode::EventTime,
        exercise: true,
        ..DeskConfig::default()
    }
}

/// `citybrain incidents report`: indicators per unit and day from an event log.
///
/// # Errors
/// When a file cannot be read or is invalid.
pub fn report(
    events: &Path,
    jurisdictions: Option<&Path>,
    calendar: Option<&Path>,
    day: Option<&str>,
    as_json: bool,
) -> Result<String> {
    let log = citybrain_ops::store::read_log(events).map_err(Error::Incidents)?;
    let j = Jurisdictions::load(
        &jurisdictions.map_or_else(sample_city_path, Path::to_path_buf),
        citybrain_ops::jurisdiction::RoutingOptions::default(),
    )
    .map_err(Error::Incidents)?;
    let cal = match calendar {
        Some(p) => citybrain_ops::calendar::Calendar::load(p).map_err(Error::Incidents)?,
        None => citybrain_ops::calendar::Calendar::default(),
    };
    let day = day
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                Error::Incidents(citybrain_ops::Error::Invalid {
                    problems: vec![format!("--day `{d}` is not YYYY-MM-DD")],
                })
            })
        })
        .transpose()?;
    let refs: Vec<&citybrain_ops::IncidentEvent> = log.iter().collect();
    let rows = citybrain_ops::report::indicators(&refs, &j, &cal, day);
    Ok(if as_json {
        rows.iter()
            .map(|r| serde_json::to_string(r).expect("rows serialize") + "\n")
            .collect()
    } else {
        citybrain_ops::report::render(&rows)
    })
}

/// The `[incidents]` table of the service's TOML file (`run --brokers`).
///
/// ```toml
/// [incidents]
/// enabled = true
/// events_topic = "citybrain.incident-events"   # every incident event; the state is rebuilt from it
/// table_topic = "citybrain.incidents"          # compacted: each incident's latest state
/// actions_topic = "citybrain.incident-actions" # actions from other systems
/// clock = "live"                               # or "event": the watermark only (back-tests)
/// live_bound_ms = 60000                        # live: the clock is at least wall time minus this
/// # jurisdictions, policy, calendar, access: files (defaults: the sample city, the built-in
/// # policy, UTC+8 office hours, the demo tokens)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsSection {
    /// Whether the service runs the incident desk. Default true.
    pub enabled: bool,
    /// Where incident events go (and are restored from). Default `citybrain.incident-events`.
    pub events_topic: String,
    /// The compacted topic of each incident's latest state. Default `citybrain.incidents`.
    pub table_topic: String,
    /// Where actions are read from. Default `citybrain.incident-actions`.
    pub actions_topic: String,
    /// Jurisdictions (GeoJSON). Default: the sample city.
    pub jurisdictions: Option<PathBuf>,
    /// Escalation policy (TOML). Default: the built-in policy.
    pub policy: Option<PathBuf>,
    /// Working-time calendar (TOML).
    pub calendar: Option<PathBuf>,
    /// Bearer tokens of the incident API. Default: the sample city's demo tokens.
    pub access: Option<PathBuf>,
    /// `live` (the watermark, at least wall time minus `live_bound_ms`) or `event` (the
    /// watermark only). Default `live`.
    pub clock: String,
    /// How far the live clock may stay behind wall time, ms. Default 60,000: a minute of
    /// transport and out-of-order delay before a quiet feed stops holding deadlines back.
    pub live_bound_ms: u64,
}

impl Default for IncidentsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            events_topic: "citybrain.incident-events".into(),
            table_topic: "citybrain.incidents".into(),
            actions_topic: "citybrain.incident-actions".into(),
            jurisdictions: None,
            policy: None,
            calendar: None,
            access: None,
            clock: "live".into(),
            live_bound_ms: 60_000,
        }
    }
}

impl IncidentsSection {
    /// Every problem of the table, one line each naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let topics = [
            ("events_topic", &self.events_topic),
            ("table_topic", &self.table_topic),
            ("actions_topic", &self.actions_topic),
        ];
        for (key, topic) in topics {
            let ok = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                out.push(format!(
                    "incidents.{key}: `{topic}` is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"
                ));
            }
        }
        if topics[0].1 == topics[1].1 || topics[0].1 == topics[2].1 || topics[1].1 == topics[2].1 {
            out.push("incidents: the events, table and actions topics must differ".into());
        }
        if !matches!(self.clock.as_str(), "live" | "event") {
            out.push(format!(
                "incidents.clock: `{}` must be `live` or `event`",
                self.clock
            ));
        }
        for (key, path) in [
            ("jurisdictions", &self.jurisdictions),
            ("policy", &self.policy),
            ("calendar", &self.calendar),
            ("access", &self.access),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                out.push(format!("incidents.{key}: {} is not a file", p.display()));
            }
        }
        out
    }
}

/// The incident desk of the Kafka service, with its background tasks (actions, the live
/// clock); dropping it stops them.
pub struct KafkaDesk {
    /// The desk (for the API); `None` when `[incidents] enabled = false` (alerts are still
    /// routed to the grid's units).
    pub desk: Option<Arc<Desk>>,
    grid: Option<Grid>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for KafkaDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDesk").finish_non_exhaustive()
    }
}

impl Drop for KafkaDesk {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KafkaDesk {
    /// The grid for the pipeline (once).
    pub fn take_grid(&mut self) -> Option<Grid> {
        self.grid.take()
    }
}

/// The service's incident desk: restored from the events topic, writing events and the
/// incident table through its own idempotent producer (the pipeline waits for them before it
/// commits input: `Grid::barrier`), taking actions from the actions topic, and moving the live
/// clock every second. With `[incidents] enabled = false`, no desk: alerts are only routed to
/// the grid's units (as `run --no-incidents` does).
///
/// # Errors
/// When a file is invalid, the topics cannot be read, or a Kafka client cannot be created.
pub async fn kafka_desk(
    config: &crate::config::ServiceConfig,
    rules: &[CompiledRule],
) -> Result<KafkaDesk> {
    use citybrain_connectors::kafka::{KafkaProducer, KafkaSink};
    let section = &config.incidents;
    let args = IncidentArgs {
        jurisdictions: section.jurisdictions.clone(),
        policy: section.policy.clone(),
        calendar: section.calendar.clone(),
        ..IncidentArgs::default()
    };
    let parts = desk_parts(&args, rules)?;
    if !section.enabled {
        return Ok(KafkaDesk {
            desk: None,
            grid: Some(Grid::routing(
                Arc::clone(&parts.jurisdictions),
                config.engine.out_of_orderness_ms,
            )),
            tasks: Vec::new(),
        });
    }
    let access = access(section.access.as_deref(), &parts.jurisdictions)?;
    let producer =
        Arc::new(KafkaProducer::new(&config.kafka.producer_config(), None).map_err(Error::Sink)?);
    let kafka = config.kafka.clone();
    let topic = section.events_topic.clone();
    let restored =
        tokio::task::spawn_blocking(move || citybrain_ops::kafka::restore_events(&kafka, &topic))
            .await
            .map_err(|e| {
                Error::Incidents(citybrain_ops::Error::Invalid {
                    problems: vec![format!("restoring incidents: {e}")],
                })
            })?
            .map_err(Error::Incidents)?;
    let desk_config = DeskConfig {
        clock: if section.clock == "event" {
            ClockMode::EventTime
        } else {
            ClockMode::Live {
                bound_ms: i64::try_from(section.live_bound_ms).unwrap_or(i64::MAX),
            }
        },
        exercise: false,
        ..DeskConfig::default()
    };
    let extra: Vec<(String, Format, Box<dyn Sink>)> = vec![
        (
            section.events_topic.clone(),
            Format::Events,
            Box::new(KafkaSink::new(
                Arc::clone(&producer),
                &section.events_topic,
                false,
            )),
        ),
        (
            section.table_topic.clone(),
            Format::Table,
            Box::new(KafkaSink::new(
                Arc::clone(&producer),
                &section.table_topic,
                false,
            )),
        ),
    ];
    let desk = build_desk(
        &parts,
        access,
        desk_config.clone(),
        &OutputPlan::default(),
        extra,
    )
    .await?;
    desk.restore(restored).await.map_err(Error::Incidents)?;
    let mut tasks = Vec::new();
    let reader = citybrain_ops::kafka::ActionReader::new(&config.kafka, &section.actions_topic)
        .map_err(Error::Incidents)?;
    let dead = KafkaSink::new(Arc::clone(&producer), &config.kafka.dlq_topic, false);
    tasks.push(tokio::spawn(take_actions(Arc::clone(&desk), reader, dead)));
    if matches!(desk_config.clock, ClockMode::Live { .. }) {
        let ticking = Arc::clone(&desk);
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match ticking.tick().await {
                    Ok(events) => publish_metrics(&ticking, &events),
                    Err(e) => tracing::error!(error = %e, "incident clock: outputs failed"),
                }
            }
        }));
    }
    tracing::info!(
        events = %section.events_topic,
        table = %section.table_topic,
        actions = %section.actions_topic,
        incidents = desk.book().len(),
        "incident desk on Kafka"
    );
    Ok(KafkaDesk {
        grid: Some(Grid::with_desk(
            Arc::clone(&parts.jurisdictions),
            Arc::clone(&desk),
            ActionQueue::default(),
            Vec::new(),
            config.engine.out_of_orderness_ms,
        )),
        desk: Some(desk),
        tasks,
    })
}

/// Applies the actions topic's records one by one: an action seen before is skipped, a
/// malformed or refused one dead-lettered with its reason; each record is committed once its
/// events (or its dead letter) are delivered.
async fn take_actions(
    desk: Arc<Desk>,
    reader: citybrain_ops::kafka::ActionReader,
    mut dead: citybrain_connectors::kafka::KafkaSink,
) {
    loop {
        let record = match reader.next().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading incident actions; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let origin = json!({
            "topic": record.origin.topic,
            "partition": record.origin.partition,
            "offset": record.origin.offset,
        });
        let reason = match record.action {
            Ok(a)
                if a.action_id
                    .as_deref()
                    .is_some_and(|id| desk.book().has_action(id)) =>
            {
                None
            }
            Ok(a) => match desk.act(a).await {
                Ok(Ok(_)) => None,
                Ok(Err(refusal)) => Some(format!("refused: {refusal}")),
                Err(e) => {
                    // Not committed: read again after a restart.
                    tracing::error!(error = %e, "incident outputs failed; the action is not committed");
                    continue;
                }
            },
            Err(why) => Some(why),
        };
        if let Some(reason) = reason {
            let letter = action_dead_letter(&record.raw, &reason, &origin);
            if let Err(e) = async {
                dead.write(&[letter]).await?;
                dead.flush().await
            }
            .await
            {
                tracing::error!(error = %e, "dead-lettering an action failed; not committed");
                continue;
            }
        }
        if let Err(e) = reader.commit(&record.origin) {
            tracing::warn!(error = %e, "committing an incident action");
        }
    }
}
