//! The one data path: source, decode and privacy, rules, sinks.
//!
//! ```text
//!  Source ──RawBatch──▶ Decoder(feed) ──RecordBatch──▶ RuleRunner × rules reading that feed
//!                         │ malformed                      │ late rows      │ emissions
//!                         ▼                                ▼                ├─ alert rules ──▶ alert Sink
//!                       dead-letter Sink ◀────────────────┘                └─ view rules: rows and
//!                                                                             watermark to the rules
//!                                                                             reading the view
//! ```
//!
//! Runners are kept in dependency order (views before their readers), so one pass over them
//! carries a batch's effects through every chain of views.
//!
//! The pipeline owns the runtime parts built from a validated [`PipelineConfig`]; the same
//! struct serves `replay` (files), `run` (simulator) and the Kafka service
//! (`crate::service`), which also uses [`Pipeline::process_tracked`],
//! [`Pipeline::oldest_needed_ts`] and [`Pipeline::flush`] to commit only durable progress.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, TimestampMillisecondArray};
use chrono::Utc;
use citybrain_connectors::{
    DeadLetter, DeadReason, DecodeAhead, Decoded, Feed, Origin, Pseudonymizer, RawBatch, Sink,
    SinkRecord, Source,
};
use citybrain_rules::{Catalog, CompiledRule, Emission, Emit, RuleRunner, RunnerConfig};

use crate::alert::{self, Alert};
use crate::error::{Error, Result};

/// The rules catalog of the city feed standard: one table per feed, event time in `ts`.
pub fn city_catalog() -> Catalog {
    Feed::ALL.iter().fold(Catalog::new(), |c, f| {
        c.with_table(f.name(), f.schema(), "ts")
    })
}

/// Settings of a pipeline, validated before anything runs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Bounded out-of-orderness of every feed, in milliseconds (default 5,000).
    pub out_of_orderness_ms: i64,
    /// After how long without input (wall-clock milliseconds) a feed stops holding back the
    /// rules reading several; `None` for replays, where every feed runs to its end.
    pub idle_timeout_ms: Option<i64>,
    /// How alerts are written.
    pub alert_format: AlertFormat,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            out_of_orderness_ms: citybrain_rules::DEFAULT_OUT_OF_ORDERNESS_MS,
            idle_timeout_ms: None,
            alert_format: AlertFormat::Json,
        }
    }
}

/// How alerts are written to the alert sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFormat {
    /// One JSON object per line (files, Kafka).
    Json,
    /// One readable line per alert (a terminal).
    Human,
}

/// Counts kept while running, printed as the summary.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Well-formed events per feed.
    pub events: BTreeMap<&'static str, u64>,
    /// Malformed records per feed.
    pub malformed: BTreeMap<&'static str, u64>,
    /// Late events per rule.
    pub late: BTreeMap<String, u64>,
    /// Alerts per rule (every rule listed, zero included).
    pub alerts: BTreeMap<String, u64>,
    /// Raw bytes read.
    pub bytes: u64,
}

impl Stats {
    /// Every record read, malformed ones included.
    pub fn records(&self) -> u64 {
        self.events.values().sum::<u64>() + self.malformed.values().sum::<u64>()
    }

    /// A multi-line summary for a person.
    pub fn summary(&self, elapsed: Duration) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(
            s,
            "read {} records ({:.1} MB) in {:.2} s: {:.0} records/s",
            self.records(),
            self.bytes as f64 / 1e6,
            secs,
            self.records() as f64 / secs
        );
        for f in Feed::ALL {
            let (e, m) = (
                self.events.get(f.name()).copied().unwrap_or(0),
                self.malformed.get(f.name()).copied().unwrap_or(0),
            );
            if e + m > 0 {
                let _ = writeln!(s, "  {:<10} {e:>10} events {m:>8} malformed", f.name());
            }
        }
        let late: u64 = self.late.values().sum();
        let alerts: u64 = self.alerts.values().sum();
        let _ = writeln!(s, "late events: {late}");
        for (rule, n) in self.late.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(s, "  {rule:<40} {n:>8}");
        }
        let _ = writeln!(s, "alerts: {alerts}");
        for (rule, n) in &self.alerts {
            let _ = writeln!(s, "  {rule:<40} {n:>8}");
        }
        s
    }
}

/// Batches [`Pipeline::run`] decodes ahead of the rules: enough to keep one more core busy
/// decoding while the rules run, few enough to keep memory and latency small.
pub const DECODE_AHEAD: usize = 3;

/// Called every two seconds during [`Pipeline::run`] with the counts so far and the source's
/// progress.
pub type ProgressFn<'a> = &'a mut dyn FnMut(&Stats, Option<citybrain_connectors::Progress>);

/// One rule at work, with where its inputs come from.
struct Stage {
    runner: RuleRunner,
    /// Input index of each feed it reads.
    feeds: Vec<(Feed, usize)>,
    /// Input index of each view it reads, with the stage producing that view.
    views: Vec<(usize, usize)>,
}

impl Stage {
    /// Connects `runner` to the feeds and the views (produced by `earlier` stages) it reads.
    fn wire(runner: RuleRunner, earlier: &[Stage]) -> Self {
        let mut feeds = Vec::new();
        let mut views = Vec::new();
        for (input, name) in runner.rule().inputs.iter().enumerate() {
            if let Some(feed) = Feed::ALL.iter().find(|f| f.name() == name) {
                feeds.push((*feed, input));
            } else if let Some(producer) = earlier.iter().position(|s| {
                s.runner.rule().meta.emit == Emit::View && s.runner.rule().meta.view_name() == name
            }) {
                views.push((producer, input));
            }
        }
        let mut runner = runner;
        for (_, input) in &views {
            // A view's watermark is its producer's; the producer's feeds are the ones that
            // may be idle.
            runner.set_may_idle(*input, false);
        }
        Self {
            runner,
            feeds,
            views,
        }
    }
}

/// What [`Pipeline::reload`] changed, by rule id.
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

/// Source to sinks, with every rule of the library running on its feeds and views.
pub struct Pipeline {
    config: PipelineConfig,
    decoding: DecodeAhead,
    stages: Vec<Stage>,
    rule_updates: Option<tokio::sync::mpsc::Receiver<Vec<CompiledRule>>>,
    alert_sink: Box<dyn Sink>,
    dead_sink: Box<dyn Sink>,
    stats: Stats,
    /// Routing to the grid and the incident desk (`crate::incidents`), when set.
    grid: Option<crate::incidents::Grid>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .field("rules", &self.stages.len())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Wires the parts together. `rules` must be in dependency order (as
    /// [`citybrain_rules::load_dir`] returns them).
    pub fn new(
        config: PipelineConfig,
        rules: Vec<CompiledRule>,
        pseudonymizer: Arc<Pseudonymizer>,
        alert_sink: Box<dyn Sink>,
        dead_sink: Box<dyn Sink>,
    ) -> Self {
        let decoding = DecodeAhead::new(pseudonymizer, DECODE_AHEAD);
        let mut stats = Stats::default();
        let runner_config = RunnerConfig {
            out_of_orderness_ms: config.out_of_orderness_ms,
            idle_timeout_ms: config.idle_timeout_ms,
        };
        let mut stages: Vec<Stage> = Vec::with_capacity(rules.len());
        for rule in rules {
            if rule.meta.emit == Emit::Alert {
                stats.alerts.insert(rule.meta.id.clone(), 0);
            }
            let runner = RuleRunner::new(Arc::new(rule), runner_config);
            stages.push(Stage::wire(runner, &stages));
        }
        Self {
            config,
            decoding,
            stages,
            rule_updates: None,
            alert_sink,
            dead_sink,
            stats,
            grid: None,
        }
    }

    /// Routes alerts to the grid and, when it holds a desk, turns them into incidents.
    pub fn set_grid(&mut self, grid: crate::incidents::Grid) {
        self.grid = Some(grid);
    }

    /// The grid, when set.
    pub fn grid(&self) -> Option<&crate::incidents::Grid> {
        self.grid.as_ref()
    }

    /// Swaps in a new set of rules (in dependency order) while running: an unchanged rule keeps
    /// its runner and state; a new or changed rule (or one reading a changed view) starts
    /// empty from the next batch; a removed rule stops. Other rules are not disturbed.
    pub fn reload(&mut self, rules: Vec<CompiledRule>) -> Reloaded {
        let runner_config = RunnerConfig {
            out_of_orderness_ms: self.config.out_of_orderness_ms,
            idle_timeout_ms: self.config.idle_timeout_ms,
        };
        let mut old: BTreeMap<String, RuleRunner> = self
            .stages
            .drain(..)
            .map(|s| (s.runner.rule().meta.id.clone(), s.runner))
            .collect();
        let mut report = Reloaded::default();
        let mut restarted_views: Vec<String> = Vec::new();
        let mut stages: Vec<Stage> = Vec::with_capacity(rules.len());
        for rule in rules {
            let id = rule.meta.id.clone();
            let reads_restarted = rule.inputs.iter().any(|i| restarted_views.contains(i));
            let runner = match old.remove(&id) {
                Some(r) if r.rule().meta.text == rule.meta.text && !reads_restarted => {
                    report.kept += 1;
                    r
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
                    RuleRunner::new(Arc::new(rule), runner_config)
                }
            };
            if runner.rule().meta.emit == Emit::Alert {
                self.stats.alerts.entry(id).or_insert(0);
            }
            stages.push(Stage::wire(runner, &stages));
        }
        report.removed = old.into_keys().collect();
        if let Some(grid) = &self.grid {
            grid.set_rules(stages.iter().map(|s| &**s.runner.rule()));
        }
        for id in &report.removed {
            self.stats.alerts.remove(id);
        }
        self.stages = stages;
        report
    }

    /// Takes new rule sets from `updates` (see [`crate::reload::RuleWatcher`]) between
    /// batches while running.
    pub fn watch_rules(&mut self, updates: tokio::sync::mpsc::Receiver<Vec<CompiledRule>>) {
        self.rule_updates = Some(updates);
    }

    /// Applies the newest rule set received from [`Pipeline::watch_rules`], if any (sources
    /// other than [`Pipeline::run`]'s call it between batches).
    pub fn apply_rule_updates(&mut self) {
        let Some(updates) = self.rule_updates.as_mut() else {
            return;
        };
        let mut latest = None;
        while let Ok(rules) = updates.try_recv() {
            latest = Some(rules);
        }
        if let Some(rules) = latest {
            let r = self.reload(rules);
            tracing::info!(
                added = ?r.added,
                changed = ?r.changed,
                removed = ?r.removed,
                kept = r.kept,
                "rules reloaded"
            );
        }
    }

    /// Whether `feed` may count as idle in the rules reading it with other inputs (see
    /// [`RuleRunner::set_may_idle`]); the Kafka service allows it only while the feed is read
    /// to the end.
    pub fn set_feed_may_idle(&mut self, feed: Feed, may: bool) {
        for stage in &mut self.stages {
            for (f, input) in &stage.feeds {
                if *f == feed {
                    stage.runner.set_may_idle(*input, may);
                }
            }
        }
    }

    /// The ids of the rules running, in dependency order.
    pub fn rule_ids(&self) -> Vec<String> {
        self.stages
            .iter()
            .map(|s| s.runner.rule().meta.id.clone())
            .collect()
    }

    /// Rows (or partial aggregate states) each rule holds for windows not yet emitted, by
    /// rule id (see [`RuleRunner::held_rows`]).
    pub fn state_rows(&self) -> Vec<(String, usize)> {
        self.stages
            .iter()
            .map(|s| (s.runner.rule().meta.id.clone(), s.runner.held_rows()))
            .collect()
    }

    /// Counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Reads `source` until it ends or `stop` resolves, then emits what is ready and flushes
    /// the sinks. At the end of a finite input every open window is emitted; when stopped
    /// early, open windows are emitted too (the demo's Ctrl-C shows what it has).
    ///
    /// Batches are decoded up to [`DECODE_AHEAD`] ahead on tokio's blocking pool while the
    /// rules run on this task, so decoding and rules use two cores; batches reach the rules in
    /// source order.
    ///
    /// # Errors
    /// When the source or a sink fails, or a plan fails to execute.
    pub async fn run(
        &mut self,
        source: &mut dyn Source,
        stop: impl std::future::Future<Output = ()>,
        mut progress: Option<ProgressFn<'_>>,
    ) -> Result<()> {
        tokio::pin!(stop);
        let mut last_report = Instant::now();
        loop {
            let next = tokio::select! {
                biased;
                () = &mut stop => break,
                next = self.decoding.next_from(source) => next.map_err(Error::Source)?,
            };
            let Some((raw, decoded)) = next else { break };
            self.apply(raw, decoded).await?;
            self.apply_rule_updates();
            if let Some(report) = progress.as_deref_mut()
                && last_report.elapsed() >= Duration::from_secs(2)
            {
                report(&self.stats, source.progress());
                last_report = Instant::now();
            }
        }
        self.finish().await
    }

    /// Decodes one raw batch and runs the rules of its feed.
    ///
    /// # Errors
    /// When a sink fails or a plan fails to execute.
    pub async fn process(&mut self, raw: RawBatch) -> Result<()> {
        self.process_tracked(raw).await.map(drop)
    }

    /// The smallest event time (epoch ms) of input still needed by any rule, `None` when no
    /// rule holds anything. An input record whose event time is below it (or any record when
    /// `None`) has had every effect it can have: its alerts were handed to the alert sink.
    pub fn oldest_needed_ts(&self) -> Option<i64> {
        self.needed().into_iter().filter_map(|(t, _)| t).min()
    }

    /// [`Pipeline::oldest_needed_ts`] over the rules reading `feed` (directly or through views)
    /// only: a quiet feed's open window does not hold back the commits of the others.
    pub fn oldest_needed_ts_of(&self, feed: Feed) -> Option<i64> {
        self.needed()
            .into_iter()
            .filter(|(_, feeds)| feeds.contains(&feed))
            .filter_map(|(t, _)| t)
            .min()
    }

    /// Per stage: the oldest feed event time it still needs, and the feeds it depends on. A
    /// rule reading a view holds view rows stamped with the end of the producer's window, so
    /// the feed events behind them reach back by the producer's window length.
    fn needed(&self) -> Vec<(Option<i64>, Vec<Feed>)> {
        let mut out: Vec<(Option<i64>, Vec<Feed>, i64)> = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let mut feeds: Vec<Feed> = stage.feeds.iter().map(|(f, _)| *f).collect();
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
                feeds.extend(f.iter().copied());
                needed = match (needed, *t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            let own = stage
                .runner
                .oldest_needed_ts()
                .map(|t| t.saturating_sub(reach));
            let needed = match (needed, own) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            feeds.sort();
            feeds.dedup();
            out.push((needed, feeds, reach));
        }
        out.into_iter().map(|(t, f, _)| (t, f)).collect()
    }

    /// Like [`Pipeline::process`], and says what each raw record became: its event time (ms)
    /// when well-formed, `None` when it was dead-lettered as malformed. Sources that commit
    /// positions (Kafka) use it with [`Pipeline::oldest_needed_ts`].
    ///
    /// # Errors
    /// When a sink fails or a plan fails to execute.
    pub async fn process_tracked(&mut self, raw: RawBatch) -> Result<Vec<Option<i64>>> {
        let decoded = self.decoding.decode_now(&raw);
        self.apply(raw, decoded).await
    }

    /// Runs the rules of `raw`'s feed on `decoded`, what decoding made of `raw` (see
    /// [`DecodeAhead`]); returns what [`Pipeline::process_tracked`] returns. Batches must be
    /// applied in source order.
    ///
    /// # Errors
    /// When a sink fails or a plan fails to execute.
    pub async fn apply(&mut self, raw: RawBatch, decoded: Decoded) -> Result<Vec<Option<i64>>> {
        let feed = raw.feed;
        self.stats.bytes += raw
            .records
            .iter()
            .map(|r| r.payload.len() as u64)
            .sum::<u64>();
        *self.stats.events.entry(feed.name()).or_default() += decoded.batch.num_rows() as u64;
        let mut event_ts = vec![None; raw.records.len()];
        if let Some(ts) = decoded
            .batch
            .column_by_name("ts")
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
        {
            for (row, record) in decoded.rows.iter().enumerate() {
                event_ts[*record as usize] = Some(ts.value(row));
            }
        }
        if let Some(grid) = &mut self.grid {
            grid.saw(event_ts.iter().flatten().max().copied());
        }
        if !decoded.dead.is_empty() {
            *self.stats.malformed.entry(feed.name()).or_default() += decoded.dead.len() as u64;
            let records: Vec<SinkRecord> = decoded.dead.iter().map(dead_record).collect();
            self.dead_sink.write(&records).await.map_err(Error::Sink)?;
        }
        if decoded.batch.num_rows() == 0 {
            self.step_grid(Vec::new(), false).await?;
            return Ok(event_ts);
        }
        let mut late: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        let mut emitted = Vec::new();
        let mut view_rows: Vec<Vec<RecordBatch>> = vec![Vec::new(); self.stages.len()];
        for i in 0..self.stages.len() {
            let inputs: Vec<usize> = self.stages[i]
                .feeds
                .iter()
                .filter(|(f, _)| *f == feed)
                .map(|(_, input)| *input)
                .collect();
            for input in inputs {
                let stage = &mut self.stages[i];
                let step = stage
                    .runner
                    .process(input, &decoded.batch)
                    .await
                    .map_err(Error::Rules)?;
                let rule = Arc::clone(stage.runner.rule());
                if !step.late_rows.is_empty() {
                    *self.stats.late.entry(rule.meta.id.clone()).or_default() +=
                        step.late_rows.len() as u64;
                    for row in step.late_rows {
                        late.entry(row).or_default().push(rule.meta.id.clone());
                    }
                }
                route(&rule, step.emissions, &mut view_rows[i], &mut emitted);
            }
            self.feed_views(i, &mut view_rows, &mut emitted, false)
                .await?;
        }
        if !late.is_empty() {
            let records: Vec<SinkRecord> = late
                .into_iter()
                .map(|(row, rules)| {
                    let rec = &raw.records[decoded.rows[row as usize] as usize];
                    dead_record(&DeadLetter {
                        feed,
                        origin: rec.origin.clone(),
                        payload: rec.payload.clone(),
                        reason: DeadReason::Late { rules },
                    })
                })
                .collect();
            self.dead_sink.write(&records).await.map_err(Error::Sink)?;
        }
        let alerts = self.write_alerts(emitted).await?;
        self.step_grid(alerts, false).await?;
        Ok(event_ts)
    }

    /// Makes everything written so far durable without emitting open windows (a long-running
    /// service stopping: open windows are rebuilt from uncommitted input on restart).
    ///
    /// # Errors
    /// When a sink fails.
    pub async fn flush(&mut self) -> Result<()> {
        if let Some(grid) = &self.grid {
            grid.flush().await?;
        }
        self.alert_sink.flush().await.map_err(Error::Sink)?;
        self.dead_sink.flush().await.map_err(Error::Sink)
    }

    /// Emits every open window and flushes both sinks.
    ///
    /// # Errors
    /// When a sink fails or a plan fails to execute.
    pub async fn finish(&mut self) -> Result<()> {
        let mut emitted = Vec::new();
        let mut view_rows: Vec<Vec<RecordBatch>> = vec![Vec::new(); self.stages.len()];
        for i in 0..self.stages.len() {
            self.feed_views(i, &mut view_rows, &mut emitted, true)
                .await?;
            let stage = &mut self.stages[i];
            let emissions = stage.runner.finish().await.map_err(Error::Rules)?;
            let rule = Arc::clone(stage.runner.rule());
            route(&rule, emissions, &mut view_rows[i], &mut emitted);
        }
        let alerts = self.write_alerts(emitted).await?;
        self.step_grid(alerts, true).await?;
        if let Some(grid) = &self.grid {
            grid.flush().await?;
        }
        self.alert_sink.flush().await.map_err(Error::Sink)?;
        self.dead_sink.flush().await.map_err(Error::Sink)
    }

    /// Hands the incident desk (if any) this pass's alerts and the clock; writes refused
    /// actions to the dead-letter sink.
    async fn step_grid(&mut self, alerts: Vec<Alert>, at_end: bool) -> Result<()> {
        let Some(grid) = &mut self.grid else {
            return Ok(());
        };
        let dead = grid.observe(&alerts, at_end).await?;
        if !dead.is_empty() {
            self.dead_sink.write(&dead).await.map_err(Error::Sink)?;
        }
        Ok(())
    }

    /// Hands stage `i` the rows its views produced in this pass, then their watermarks (or
    /// the end of input, `at_end`), routing what that emits.
    async fn feed_views(
        &mut self,
        i: usize,
        view_rows: &mut [Vec<RecordBatch>],
        emitted: &mut Vec<(Arc<CompiledRule>, Emission)>,
        at_end: bool,
    ) -> Result<()> {
        let views = self.stages[i].views.clone();
        for (producer, input) in views {
            let rows = view_rows[producer].clone();
            let watermark = if at_end {
                Some(i64::MAX)
            } else {
                self.stages[producer].runner.watermark()
            };
            let stage = &mut self.stages[i];
            let rule = Arc::clone(stage.runner.rule());
            for batch in &rows {
                let step = stage
                    .runner
                    .process_view(input, batch)
                    .await
                    .map_err(Error::Rules)?;
                *self.stats.late.entry(rule.meta.id.clone()).or_default() +=
                    step.late_rows.len() as u64;
                route(&rule, step.emissions, &mut view_rows[i], emitted);
            }
            if let Some(wm) = watermark {
                let emissions = stage
                    .runner
                    .advance(input, wm)
                    .await
                    .map_err(Error::Rules)?;
                route(&rule, emissions, &mut view_rows[i], emitted);
            }
        }
        Ok(())
    }

    async fn write_alerts(
        &mut self,
        emitted: Vec<(Arc<CompiledRule>, Emission)>,
    ) -> Result<Vec<Alert>> {
        if emitted.is_empty() {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let mut records = Vec::new();
        let mut all = Vec::new();
        let grid = alert::Grid {
            jurisdictions: self.grid.as_ref().map(|g| g.jurisdictions()),
            clock_ms: self.grid.as_ref().and_then(crate::incidents::Grid::clock),
        };
        for (rule, emission) in &emitted {
            let alerts: Vec<Alert> = alert::alerts(rule, emission, now, grid);
            *self.stats.alerts.entry(rule.meta.id.clone()).or_default() += alerts.len() as u64;
            records.extend(alerts.iter().map(|a| match self.config.alert_format {
                AlertFormat::Json => a.to_record(),
                AlertFormat::Human => SinkRecord {
                    key: Some(a.key.clone()),
                    payload: a.to_human(),
                    headers: Vec::new(),
                },
            }));
            all.extend(alerts);
        }
        self.alert_sink.write(&records).await.map_err(Error::Sink)?;
        Ok(all)
    }
}

/// Alert rules' emissions go to the alert sink; a view's rows go to the rules reading it.
fn route(
    rule: &Arc<CompiledRule>,
    emissions: Vec<Emission>,
    view_rows: &mut Vec<RecordBatch>,
    emitted: &mut Vec<(Arc<CompiledRule>, Emission)>,
) {
    match rule.meta.emit {
        Emit::Alert => emitted.extend(emissions.into_iter().map(|e| (Arc::clone(rule), e))),
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

/// A dead letter as a sink record. Headers follow Kafka Connect's dead-letter convention
/// (`__connect.errors.*`: origin topic, partition, offset, exception message) for records that
/// came from Kafka, plus `citybrain.reason` (`malformed` | `late`), `citybrain.feed` and, for
/// late records, `citybrain.rules` (comma-separated rule ids).
fn dead_record(d: &DeadLetter) -> SinkRecord {
    let (reason, detail) = match &d.reason {
        DeadReason::Malformed(detail) => ("malformed", detail.clone()),
        DeadReason::Late { rules } => (
            "late",
            format!(
                "event time behind the watermark of rule(s) {}",
                rules.join(",")
            ),
        ),
    };
    let mut headers = Vec::with_capacity(8);
    let mut key = None;
    if let Origin::Kafka {
        topic,
        partition,
        offset,
        ..
    } = &d.origin
    {
        key = Some(format!("{topic}/{partition}"));
        headers.push(("__connect.errors.topic".to_string(), topic.to_string()));
        headers.push((
            "__connect.errors.partition".to_string(),
            partition.to_string(),
        ));
        headers.push(("__connect.errors.offset".to_string(), offset.to_string()));
    }
    headers.push(("__connect.errors.exception.message".to_string(), detail));
    headers.push(("citybrain.reason".to_string(), reason.to_string()));
    headers.push(("citybrain.feed".to_string(), d.feed.name().to_string()));
    if let DeadReason::Late { rules } = &d.reason {
        headers.push(("citybrain.rules".to_string(), rules.join(",")));
    }
    SinkRecord {
        key,
        payload: d.to_json(),
        headers,
    }
}
