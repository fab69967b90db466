//! The one data path and the one loop that drives it: source, decode and privacy, the rule
//! graph, sinks, and the acknowledgement back to the source.
//!
//! ```text
//!  Source ──RawBatch──▶ DecodeAhead(feed) ──▶ EventTimeGuard ──RecordBatch──▶ RuleGraph (rules, views)
//!    ▲                    │ malformed           │ future                       │ late rows     │ alerts
//!    │                    ▼                     ▼                              ▼               ▼
//!    │                  dead-letter Sink ◀────────────────────────────────────┘          alert Sink
//!    │                                                                       │
//!    └── Source::commit(positions) ◀── every checkpoint interval: the state of every rule, the
//!                                     event time of every partition and the input positions
//!                                     saved together (checkpoint::CheckpointStore), once the
//!                                     sinks made every earlier output durable (Sink::barrier)
//! ```
//!
//! [`Pipeline::run`] is the loop of every mode: `replay` (files), `run` (the simulator) and
//! `run --brokers` (Kafka, `crate::service`), which differ only in their source, sinks and
//! [`RunOptions`]. The pipeline owns the runtime parts built from a validated
//! [`PipelineConfig`]; the rule graph itself lives in `citybrain_rules::RuleGraph`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, TimestampMillisecondArray};
use chrono::Utc;
use citybrain_connectors::{
    Catalog as FeedCatalog, DeadLetter, DeadReason, DecodeAhead, Decoded, EventClock,
    EventTimeGuard, Feed, GuardConfig, Origin, PartitionId, Pseudonymizer, RawBatch, Sink,
    SinkRecord, Source,
};
use citybrain_rules::{
    Catalog, CompiledRule, Emission, Emit, GraphStep, InputTime, Reloaded, Restored, RuleGraph,
    RunnerConfig,
};

use crate::alert::{self, Alert};
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::error::{Error, Result};

/// The tables rules may read, from the feed catalog: per table its schema, event-time column,
/// watermark bound and the columns identifying a record (per-event alert ids).
pub fn rules_catalog(feeds: &FeedCatalog) -> Catalog {
    feeds.tables().iter().fold(Catalog::new(), |c, f| {
        c.with_feed(
            f.name(),
            f.schema(),
            f.time_column(),
            f.out_of_orderness_ms(),
            &f.key_columns(),
        )
    })
}

/// [`rules_catalog`] of the shipped city catalog (`feeds/city.sql`).
pub fn city_catalog() -> Catalog {
    rules_catalog(&FeedCatalog::city())
}

/// Settings of a pipeline, validated before anything runs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Bounded out-of-orderness of every feed, in milliseconds (default 5,000).
    pub out_of_orderness_ms: i64,
    /// After how long without input (wall-clock milliseconds) a partition read to its end
    /// stops holding back its feed, and a feed whose partitions all did the rules reading
    /// several; `None` for replays, where every feed runs to its end.
    pub idle_timeout_ms: Option<i64>,
    /// Watermark alignment: a partition whose largest event time is more than this many
    /// milliseconds ahead of the slowest partition with a backlog is paused until it is within
    /// half of it (sources with partitions only); `None` turns alignment off.
    pub max_watermark_drift_ms: Option<i64>,
    /// How alerts are written.
    pub alert_format: AlertFormat,
    /// How far ahead of its reference (the wall clock in live runs, its source's time in any
    /// run) an event time may be before the record is set aside as `future`, in milliseconds
    /// (default 10 minutes; see [`EventTimeGuard`]). A run is live when `idle_timeout_ms` is set.
    pub max_future_ms: i64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            out_of_orderness_ms: citybrain_rules::DEFAULT_OUT_OF_ORDERNESS_MS,
            idle_timeout_ms: None,
            max_watermark_drift_ms: None,
            alert_format: AlertFormat::Json,
            max_future_ms: citybrain_connectors::decode::guard::DEFAULT_MAX_FUTURE_MS,
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
    pub events: BTreeMap<String, u64>,
    /// Malformed records per feed.
    pub malformed: BTreeMap<String, u64>,
    /// Records set aside as dated too far ahead, per feed and source (file, `topic/partition`
    /// or `simulator`).
    pub future: BTreeMap<(String, String), u64>,
    /// Late events per rule.
    pub late: BTreeMap<String, u64>,
    /// Alerts per rule (every rule listed, zero included).
    pub alerts: BTreeMap<String, u64>,
    /// Times each rule failed and was stopped (see [`citybrain_rules::graph`]).
    pub rule_failures: BTreeMap<String, u64>,
    /// Rules stopped now, with why (a rule leaves when its file changes or goes).
    pub stopped: BTreeMap<String, String>,
    /// Raw bytes read.
    pub bytes: u64,
    /// The most rows (or partial aggregate states) all rules held at once, after a batch.
    pub peak_state_rows: u64,
    /// How far apart in event time the partitions of one feed were read at most,
    /// milliseconds (see `EventClock::spread`).
    pub max_partition_spread_ms: i64,
    /// Checkpoints taken.
    pub checkpoints: u64,
    /// Time spent taking them (the loop processes nothing meanwhile).
    pub checkpoint_time: Duration,
}

impl Stats {
    /// Every record read, malformed and future ones included.
    pub fn records(&self) -> u64 {
        self.events.values().sum::<u64>()
            + self.malformed.values().sum::<u64>()
            + self.future.values().sum::<u64>()
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
        let names: std::collections::BTreeSet<&String> =
            self.events.keys().chain(self.malformed.keys()).collect();
        for name in names {
            let (e, m) = (
                self.events.get(name).copied().unwrap_or(0),
                self.malformed.get(name).copied().unwrap_or(0),
            );
            if e + m > 0 {
                let _ = writeln!(s, "  {name:<10} {e:>10} events {m:>8} malformed");
            }
        }
        let future: u64 = self.future.values().sum();
        if future > 0 {
            let _ = writeln!(s, "future events (dated too far ahead): {future}");
            for ((feed, source), n) in &self.future {
                let _ = writeln!(s, "  {feed:<10} {source:<30} {n:>8}");
            }
        }
        let late: u64 = self.late.values().sum();
        let alerts: u64 = self.alerts.values().sum();
        let _ = writeln!(
            s,
            "state: at most {} rows held by the rules at once",
            self.peak_state_rows
        );
        let _ = writeln!(
            s,
            "event time: partitions of a feed read at most {:.1} s apart",
            self.max_partition_spread_ms as f64 / 1000.0
        );
        if self.checkpoints > 0 {
            let _ = writeln!(
                s,
                "checkpoints: {} taken, {:.0} ms in all ({:.1} % of the run)",
                self.checkpoints,
                self.checkpoint_time.as_secs_f64() * 1000.0,
                100.0 * self.checkpoint_time.as_secs_f64() / secs
            );
        }
        let _ = writeln!(s, "late events: {late}");
        for (rule, n) in self.late.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(s, "  {rule:<40} {n:>8}");
        }
        let _ = writeln!(s, "alerts: {alerts}");
        for (rule, n) in &self.alerts {
            let _ = writeln!(s, "  {rule:<40} {n:>8}");
        }
        if !self.stopped.is_empty() {
            let _ = writeln!(
                s,
                "rules stopped after failing (the others ran on): {}",
                self.stopped.len()
            );
            for (rule, why) in &self.stopped {
                let _ = writeln!(s, "  {rule:<40} {why}");
            }
        }
        s
    }
}

/// Batches [`Pipeline::run`] decodes ahead of the rules: enough to keep one more core busy
/// decoding while the rules run, few enough to keep memory and latency small.
pub const DECODE_AHEAD: usize = 3;

/// Watches a run: told of each batch read and, every tick, shown the pipeline and the source
/// (metrics, progress lines). It observes; it changes nothing.
pub trait Observer: Send {
    /// A batch read from the source is about to run through the rules.
    fn batch_read(&mut self, raw: &RawBatch) {
        let _ = raw;
    }

    /// Called every [`RunOptions::tick`] and once at the end.
    fn tick(&mut self, pipeline: &Pipeline, source: &dyn Source) {
        let _ = (pipeline, source);
    }
}

/// Why the `stop` future of [`Pipeline::run`] ended the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop (a signal, a duration): with checkpoints, a last one is taken.
    Gracefully,
    /// Another instance took over: nothing more is written, no checkpoint taken.
    Fenced,
}

/// Checkpoints of a run: where and how often.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    /// The store.
    pub store: CheckpointStore,
    /// How often.
    pub interval: Duration,
}

/// How [`Pipeline::run`] runs.
pub struct RunOptions<'a> {
    /// When `stop` resolves: emit every open window (the demo shows what it has) or leave them
    /// open (the service: they are in its checkpoint). Reaching the end of a finite input
    /// always emits them.
    pub finish_on_stop: bool,
    /// How often idleness and alignment are decided and the observer looks.
    pub tick: Duration,
    /// Checkpoints (the Kafka service): the only time input is acknowledged to the source.
    pub checkpoint: Option<Checkpointing>,
    /// Watches the run.
    pub observer: Option<&'a mut dyn Observer>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        Self {
            finish_on_stop: true,
            tick: Duration::from_secs(2),
            checkpoint: None,
            observer: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// The input ended (rather than `stop` resolving).
    pub ended: bool,
    /// Positions acknowledged to the source last, per partition.
    pub committed: BTreeMap<PartitionId, i64>,
    /// The epoch of the last checkpoint taken.
    pub epoch: u64,
}

/// Source to sinks, with every rule of the library running on its feeds and views.
pub struct Pipeline {
    config: PipelineConfig,
    decoding: DecodeAhead,
    guard: EventTimeGuard,
    graph: RuleGraph,
    rule_updates: Option<tokio::sync::mpsc::Receiver<Vec<CompiledRule>>>,
    alert_sink: Box<dyn Sink>,
    dead_sink: Box<dyn Sink>,
    stats: Stats,
    /// Event time per partition of every table read.
    clock: EventClock,
    /// What the rules were last told of each table: its watermark and idleness.
    told: BTreeMap<String, (Option<i64>, bool)>,
    /// Per partition, the next position after every record applied (or restored).
    positions: BTreeMap<PartitionId, i64>,
    /// The epoch of the last checkpoint taken or restored.
    epoch: u64,
    /// Positions acknowledged to the source last.
    committed: BTreeMap<PartitionId, i64>,
    /// Routing to the grid and the incident desk (`crate::incidents`), when set.
    grid: Option<crate::incidents::Grid>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .field("graph", &self.graph)
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
        for rule in rules.iter().filter(|r| r.meta.emit == Emit::Alert) {
            stats.alerts.insert(rule.meta.id.clone(), 0);
        }
        let graph = RuleGraph::new(rules, runner_config(&config));
        let clock = EventClock::new(
            config.out_of_orderness_ms,
            config
                .idle_timeout_ms
                .map(|t| Duration::from_millis(t.unsigned_abs())),
        );
        let guard = EventTimeGuard::new(GuardConfig {
            max_future_ms: config.max_future_ms,
            live: config.idle_timeout_ms.is_some(),
        });
        Self {
            config,
            decoding,
            guard,
            graph,
            rule_updates: None,
            alert_sink,
            dead_sink,
            stats,
            clock,
            told: BTreeMap::new(),
            positions: BTreeMap::new(),
            epoch: 0,
            committed: BTreeMap::new(),
            grid: None,
        }
    }

    /// Puts back a checkpoint's state (every rule whose text is unchanged; see
    /// [`RuleGraph::restore`]), the event time of every partition and the input positions;
    /// the source must then start at [`Checkpoint::positions`]. Says in the log what it did,
    /// and which rules start empty.
    ///
    /// # Errors
    /// When a rule's saved state does not fit it (a damaged or foreign checkpoint); the
    /// pipeline is then unchanged.
    pub fn restore(&mut self, checkpoint: Checkpoint) -> Result<Restored> {
        let rows = checkpoint.rows();
        let report = self.graph.restore(checkpoint.graph)?;
        self.clock.restore(&checkpoint.clock, Instant::now());
        self.told.clear();
        self.epoch = checkpoint.epoch;
        self.committed.clone_from(&checkpoint.positions);
        self.positions = checkpoint.positions;
        tracing::info!(
            epoch = self.epoch,
            rows,
            rules = report.restored.len(),
            positions = %positions_text(&self.positions),
            "restored checkpoint"
        );
        for id in &report.changed {
            tracing::warn!(rule = %id, "rule changed since the checkpoint: it starts empty (windows open at the checkpoint are lost for it)");
        }
        for id in &report.added {
            tracing::info!(rule = %id, "rule new since the checkpoint: it starts empty");
        }
        for id in &report.dropped {
            tracing::info!(rule = %id, "rule of the checkpoint no longer loaded: its state is dropped");
        }
        Ok(report)
    }

    /// Routes alerts to the grid and, when it holds a desk, turns them into incidents.
    pub fn set_grid(&mut self, grid: crate::incidents::Grid) {
        self.grid = Some(grid);
    }

    /// The grid, when set.
    pub fn grid(&self) -> Option<&crate::incidents::Grid> {
        self.grid.as_ref()
    }

    /// Swaps in a new set of rules (in dependency order) while running; see
    /// [`RuleGraph::reload`].
    pub fn reload(&mut self, rules: Vec<CompiledRule>) -> Reloaded {
        let report = self.graph.reload(rules);
        for id in report.changed.iter().chain(&report.removed) {
            if self.stats.stopped.remove(id).is_some() && report.changed.contains(id) {
                tracing::info!(rule = %id, "stopped rule changed: it runs again, from empty windows");
            }
        }
        for rule in self.graph.rules().filter(|r| r.meta.emit == Emit::Alert) {
            self.stats.alerts.entry(rule.meta.id.clone()).or_insert(0);
        }
        for id in &report.removed {
            self.stats.alerts.remove(id);
        }
        if let Some(grid) = &self.grid {
            grid.set_rules(self.graph.rules().map(|r| &**r));
        }
        report
    }

    /// Takes new rule sets from `updates` (see [`crate::reload::RuleWatcher`]) between
    /// batches while running.
    pub fn watch_rules(&mut self, updates: tokio::sync::mpsc::Receiver<Vec<CompiledRule>>) {
        self.rule_updates = Some(updates);
    }

    /// Applies the newest rule set received from [`Pipeline::watch_rules`], if any.
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

    /// The rule graph.
    pub fn graph(&self) -> &RuleGraph {
        &self.graph
    }

    /// The ids of the rules running, in dependency order.
    pub fn rule_ids(&self) -> Vec<String> {
        self.graph.rule_ids()
    }

    /// Rows (or partial aggregate states) each rule holds for windows not yet emitted, by
    /// rule id.
    pub fn state_rows(&self) -> Vec<(String, usize)> {
        self.graph.state_rows()
    }

    /// Counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The watermark of `feed`: the minimum over the partitions read of it that are not idle,
    /// minus the out-of-orderness.
    pub fn feed_watermark(&self, feed: &Feed) -> Option<i64> {
        self.clock.table_time(feed.name(), Instant::now()).watermark
    }

    /// The smallest event time (epoch ms) of input still needed by any rule, `None` when no
    /// rule holds anything.
    pub fn oldest_needed_ts(&self) -> Option<i64> {
        self.graph.oldest_needed_ts()
    }

    /// Reads `source` until it ends or `stop` resolves, then (see
    /// [`RunOptions::finish_on_stop`]) emits open windows or not and makes every output
    /// durable.
    ///
    /// Batches are decoded up to [`DECODE_AHEAD`] ahead on tokio's blocking pool while the
    /// rules run on this task, so decoding and rules use two cores; batches reach the rules in
    /// source order.
    ///
    /// With [`RunOptions::checkpoint`], every interval (and when stopped gracefully or at the
    /// end) the loop takes a checkpoint between batches ([`Pipeline::checkpoint`]); input is
    /// acknowledged to the source ([`Source::commit`]) only up to a durable checkpoint whose
    /// outputs are durable. A crash re-reads at most one interval of input plus the batch in
    /// flight.
    ///
    /// # Errors
    /// When the source or a sink fails, a delivery fails for good, a checkpoint cannot be
    /// written or a plan fails to execute. Nothing past an output that failed is acknowledged.
    pub async fn run(
        &mut self,
        source: &mut dyn Source,
        stop: impl std::future::Future<Output = Stopped>,
        mut options: RunOptions<'_>,
    ) -> Result<RunOutcome> {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(options.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        let mut checkpoint_tick = options.checkpoint.as_ref().map(|c| {
            let mut t = tokio::time::interval(c.interval);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t.reset();
            t
        });
        let stopped = loop {
            let next = tokio::select! {
                biased;
                how = &mut stop => break Some(how),
                _ = tick.tick() => {
                    self.keep_time(source).await?;
                    if let Some(o) = options.observer.as_deref_mut() {
                        o.tick(self, source);
                    }
                    continue;
                }
                () = next_tick(checkpoint_tick.as_mut()) => {
                    if let Some(c) = &options.checkpoint {
                        self.checkpoint(source, &c.store).await?;
                    }
                    continue;
                }
                next = self.decoding.next_from(source) => next.map_err(Error::Source)?,
            };
            let Some((raw, decoded)) = next else {
                break None;
            };
            if let Some(o) = options.observer.as_deref_mut() {
                o.batch_read(&raw);
            }
            let origins: Vec<Option<(PartitionId, i64)>> =
                raw.records.iter().map(|r| position(&r.origin)).collect();
            let table = raw.feed.clone();
            let applied = self.apply(raw, decoded).await?.len();
            self.advance_positions(table.name(), &origins[..applied.min(origins.len())]);
            if self.config.max_watermark_drift_ms.is_some() && source.has_positions() {
                let now = Instant::now();
                self.clock.refresh(&source.partitions(), true, now);
                self.align(source, now)?;
            }
            self.apply_rule_updates();
        };
        let ended = stopped.is_none();
        if stopped == Some(Stopped::Fenced) {
            tracing::warn!("another instance took over: stopping without writing more");
            return Ok(RunOutcome {
                ended,
                committed: self.committed.clone(),
                epoch: self.epoch,
            });
        }
        if ended || options.finish_on_stop {
            self.finish().await?;
        } else {
            tracing::info!("stopped: no more consuming; delivering and checkpointing");
            self.flush().await?;
        }
        if let Some(c) = &options.checkpoint {
            self.checkpoint(source, &c.store).await?;
        }
        if let Some(o) = options.observer.as_deref_mut() {
            o.tick(self, source);
        }
        Ok(RunOutcome {
            ended,
            committed: self.committed.clone(),
            epoch: self.epoch,
        })
    }

    /// Records that the records at `origins` (a batch of `table` applied in full) were
    /// processed.
    fn advance_positions(&mut self, table: &str, origins: &[Option<(PartitionId, i64)>]) {
        let mut last: Option<&PartitionId> = None;
        for (tp, offset) in origins.iter().flatten() {
            // Records of one partition come in order; a batch is mostly one partition's.
            match self.positions.get_mut(tp) {
                Some(next) => *next = (*next).max(offset + 1),
                None => {
                    self.positions.insert(tp.clone(), offset + 1);
                }
            }
            last = Some(tp);
        }
        if last.is_some() && tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(table, positions = %positions_text(&self.positions), "applied");
        }
    }

    /// Takes a checkpoint between batches: asks the sinks for a barrier (every output so far),
    /// snapshots every rule, the event clock and the positions, writes the state while waiting
    /// for the barrier, then the manifest (the commit point: only once every output before it
    /// is durable, so a restore never skips an undelivered alert), then acknowledges the
    /// positions to the source (a synchronous commit). While it runs no batch is processed, so
    /// a crash re-reads at most what came after it.
    ///
    /// # Errors
    /// When the checkpoint cannot be written (the previous one stays the latest), a delivery
    /// failed for good, or the commit fails.
    pub async fn checkpoint(
        &mut self,
        source: &mut dyn Source,
        store: &CheckpointStore,
    ) -> Result<()> {
        let started = Instant::now();
        let mut barriers = vec![
            self.alert_sink.barrier().await.map_err(Error::Sink)?,
            self.dead_sink.barrier().await.map_err(Error::Sink)?,
        ];
        if let Some(grid) = &self.grid {
            // Incident events too: input is acknowledged only once they are durable.
            barriers.push(grid.barrier().await?);
        }
        let checkpoint = Checkpoint {
            epoch: self.epoch + 1,
            positions: self.positions.clone(),
            clock: self.clock.snapshot(),
            graph: self.graph.snapshot()?,
        };
        let rows = checkpoint.rows();
        let durable = async {
            futures::future::try_join_all(barriers)
                .await
                .map(drop)
                .map_err(Error::Sink)
        };
        let saved = store.save_after(&checkpoint, durable).await?;
        self.epoch = saved.epoch;
        let positions: Vec<(PartitionId, i64)> = checkpoint.positions.into_iter().collect();
        source
            .commit(&positions, true)
            .await
            .map_err(Error::Commit)?;
        self.committed = positions.into_iter().collect();
        self.stats.checkpoints += 1;
        self.stats.checkpoint_time += started.elapsed();
        tracing::info!(
            epoch = saved.epoch,
            rows,
            bytes = saved.bytes,
            write_ms = saved.took.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            positions = %positions_text(&self.committed),
            "checkpoint"
        );
        Ok(())
    }

    /// Updates event time from what the source says of its partitions: tells the rules of
    /// tables that went idle (or woke) and of watermarks moved by it, and pauses or resumes
    /// partitions for alignment.
    async fn keep_time(&mut self, source: &mut dyn Source) -> Result<()> {
        let now = Instant::now();
        self.clock
            .refresh(&source.partitions(), source.has_positions(), now);
        let tables: Vec<String> = self.clock.tables().map(str::to_string).collect();
        for table in tables {
            let time = self.clock.table_time(&table, now);
            let (told_wm, told_idle) = self.told.get(&table).copied().unwrap_or((None, false));
            if time.idle != told_idle {
                tracing::debug!(table, idle = time.idle, "table idleness");
                let step = self.graph.set_idle(&table, time.idle).await?;
                self.report_failures(&step.failed, None).await?;
                self.record(step, false).await?;
            }
            if let Some(wm) = time.watermark.filter(|w| Some(*w) > told_wm && !time.idle) {
                let step = self.graph.advance(&table, wm).await?;
                self.report_failures(&step.failed, None).await?;
                self.record(step, false).await?;
            }
            let wm = if time.idle {
                told_wm
            } else {
                time.watermark.max(told_wm)
            };
            self.told.insert(table, (wm, time.idle));
        }
        self.align(source, now)
    }

    /// Watermark alignment (sources with positions): pauses partitions running too far ahead
    /// of the slowest one with records left to read, resumes them once it caught up. Runs
    /// after every batch, so that a partition read ahead stops within a batch or two.
    fn align(&mut self, source: &mut dyn Source, now: Instant) -> Result<()> {
        let Some(drift) = self.config.max_watermark_drift_ms else {
            return Ok(());
        };
        if !source.has_positions() {
            return Ok(());
        }
        let a = self.clock.align(drift, now);
        if !a.pause.is_empty() {
            tracing::debug!(partitions = ?a.pause, "alignment: pausing partitions ahead");
            source.pause(&a.pause, true).map_err(Error::Source)?;
        }
        if !a.resume.is_empty() {
            tracing::debug!(partitions = ?a.resume, "alignment: resuming");
            source.pause(&a.resume, false).map_err(Error::Source)?;
        }
        Ok(())
    }

    /// Decodes one raw batch and runs the rules of its feed.
    ///
    /// # Errors
    /// When a sink fails or a plan fails to execute.
    pub async fn process(&mut self, raw: RawBatch) -> Result<()> {
        let decoded = self.decoding.decode_now(&raw);
        self.apply(raw, decoded).await.map(drop)
    }

    /// Runs the rules of `raw`'s feed on `decoded`, what decoding made of `raw` (see
    /// [`DecodeAhead`]); returns what each raw record became: its event time (ms) when
    /// well-formed, `None` when it was dead-lettered as malformed or dated too far ahead.
    /// Batches must be applied in source order.
    ///
    /// Records dated too far ahead are set aside first ([`EventTimeGuard`]). In a replay (no
    /// idle timeout) the guard may hold a batch's last records until its feed's next batch
    /// ([`Pipeline::finish`] releases them); the result then covers the records of `raw` up to
    /// the first held one. Live runs (the Kafka service) never hold.
    ///
    /// # Errors
    /// When a sink fails or a plan fails to execute.
    pub async fn apply(
        &mut self,
        mut raw: RawBatch,
        mut decoded: Decoded,
    ) -> Result<Vec<Option<i64>>> {
        self.guard
            .screen(&mut raw, &mut decoded, Utc::now().timestamp_millis());
        self.run_rules(raw, decoded).await
    }

    /// [`Pipeline::apply`] after the guard.
    async fn run_rules(&mut self, raw: RawBatch, decoded: Decoded) -> Result<Vec<Option<i64>>> {
        let feed = raw.feed;
        self.stats.bytes += raw
            .records
            .iter()
            .map(|r| r.payload.len() as u64)
            .sum::<u64>();
        *self
            .stats
            .events
            .entry(feed.name().to_string())
            .or_default() += decoded.batch.num_rows() as u64;
        let mut event_ts = vec![None; raw.records.len()];
        let ts: &[i64] = decoded
            .batch
            .columns()
            .get(feed.time_index())
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
            .map_or(&[], |a| a.values());
        let mut partitions = Vec::with_capacity(ts.len());
        for (record, t) in decoded.rows.iter().zip(ts) {
            event_ts[*record as usize] = Some(*t);
            partitions.push(match &raw.records[*record as usize].origin {
                Origin::Kafka { partition, .. } => *partition,
                _ => 0,
            });
        }
        let (before, after) = self
            .clock
            .observe(feed.name(), &partitions, ts, Instant::now());
        if let Some(spread) = self.clock.spread(feed.name()) {
            self.stats.max_partition_spread_ms = self.stats.max_partition_spread_ms.max(spread);
        }
        if let Some(grid) = &mut self.grid {
            grid.saw(event_ts.iter().flatten().max().copied());
        }
        if !decoded.dead.is_empty() {
            for d in &decoded.dead {
                match &d.reason {
                    DeadReason::Future(_) => {
                        *self
                            .stats
                            .future
                            .entry((feed.name().to_string(), d.origin.source()))
                            .or_default() += 1;
                    }
                    _ => {
                        *self
                            .stats
                            .malformed
                            .entry(feed.name().to_string())
                            .or_default() += 1;
                    }
                }
            }
            let records: Vec<SinkRecord> = decoded.dead.iter().map(dead_record).collect();
            self.dead_sink.write(&records).await.map_err(Error::Sink)?;
        }
        if decoded.batch.num_rows() == 0 {
            self.step_grid(Vec::new(), false).await?;
            return Ok(event_ts);
        }
        let step = self
            .graph
            .process_timed(
                feed.name(),
                &decoded.batch,
                InputTime {
                    before: &before,
                    after,
                },
            )
            .await?;
        let first = decoded
            .rows
            .first()
            .map(|r| &raw.records[*r as usize].origin);
        self.report_failures(&step.failed, Some((feed.name(), first)))
            .await?;
        // The rules now hold this watermark for the table, which delivered (so is not idle).
        match self.told.get_mut(feed.name()) {
            Some(told) => *told = (told.0.max(after), false),
            None => {
                self.told.insert(feed.name().to_string(), (after, false));
            }
        }
        let held: usize = self.graph.runners().map(|r| r.held_rows()).sum();
        self.stats.peak_state_rows = self.stats.peak_state_rows.max(held as u64);
        if !step.late_rows.is_empty() {
            let records: Vec<SinkRecord> = step
                .late_rows
                .iter()
                .map(|(row, rules)| {
                    let rec = &raw.records[decoded.rows[*row as usize] as usize];
                    dead_record(&DeadLetter {
                        feed: feed.clone(),
                        origin: rec.origin.clone(),
                        payload: rec.payload.clone(),
                        reason: DeadReason::Late {
                            rules: rules.clone(),
                        },
                    })
                })
                .collect();
            self.dead_sink.write(&records).await.map_err(Error::Sink)?;
        }
        self.record(step, false).await?;
        Ok(event_ts)
    }

    /// Reports rules a graph step stopped: an ERROR log with the rule file and line, the
    /// counts behind `citybrain_rule_failures_total`, and a dead letter with reason
    /// `rule_failed` (naming the feed and the first record of the batch that was running,
    /// when a batch was).
    async fn report_failures(
        &mut self,
        failed: &[citybrain_rules::RuleFailure],
        during: Option<(&str, Option<&Origin>)>,
    ) -> Result<()> {
        if failed.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(failed.len());
        for f in failed {
            let id = &f.rule.meta.id;
            tracing::error!(
                rule = %id,
                at = %f.rule.source_position(),
                reason = %f.reason,
                "rule failed and is stopped; the other rules go on (a change to its file brings it back)"
            );
            *self.stats.rule_failures.entry(id.clone()).or_default() += 1;
            self.stats.stopped.insert(id.clone(), f.reason.clone());
            let mut letter = serde_json::json!({
                "reason": "rule_failed",
                "detail": f.reason,
                "rules": [id],
                "rule_file": f.rule.meta.path.display().to_string(),
                "at": f.rule.source_position(),
            });
            if let Some((feed, origin)) = during {
                letter["feed"] = feed.into();
                if let Some(origin) = origin {
                    letter["batch_starts_at"] = origin_json(origin);
                }
            }
            if let Some(view) = &f.view {
                letter["view"] = view.clone().into();
            }
            records.push(SinkRecord {
                key: Some(id.clone()),
                payload: letter.to_string(),
                headers: vec![
                    (
                        "__connect.errors.exception.message".to_string(),
                        f.reason.clone(),
                    ),
                    ("citybrain.reason".to_string(), "rule_failed".to_string()),
                    ("citybrain.rules".to_string(), id.clone()),
                ],
            });
        }
        self.dead_sink.write(&records).await.map_err(Error::Sink)
    }

    /// Counts a graph step's late rows, writes its alerts and hands them to the incident
    /// desk (`at_end`: the input is over).
    async fn record(&mut self, step: GraphStep, at_end: bool) -> Result<()> {
        for (rule, n) in step.late {
            *self.stats.late.entry(rule).or_default() += n;
        }
        let alerts = self.write_alerts(step.alerts).await?;
        self.step_grid(alerts, at_end).await
    }

    /// Hands the incident desk (if any) a pass's alerts and the clock; writes malformed or
    /// refused actions to the dead-letter sink.
    async fn step_grid(&mut self, alerts: Vec<Alert>, at_end: bool) -> Result<()> {
        if self.grid.is_none() {
            return Ok(());
        }
        // Every alert before the alert rules' smallest watermark has been emitted; a rule
        // without a watermark yet (its input not seen) holds the clock back.
        let watermark = self
            .graph
            .runners()
            .filter(|r| r.rule().meta.emit == Emit::Alert)
            .map(citybrain_rules::RuleRunner::watermark)
            .collect::<Option<Vec<i64>>>()
            .and_then(|w| w.into_iter().min());
        let Some(grid) = &mut self.grid else {
            return Ok(());
        };
        let dead = grid.observe(&alerts, watermark, at_end).await?;
        if !dead.is_empty() {
            self.dead_sink.write(&dead).await.map_err(Error::Sink)?;
        }
        Ok(())
    }

    /// Makes everything written so far durable without emitting open windows (a long-running
    /// service stopping: open windows are rebuilt from unacknowledged input on restart).
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
        for (raw, decoded) in self.guard.release(Utc::now().timestamp_millis()) {
            self.run_rules(raw, decoded).await?;
        }
        let step = self.graph.finish().await?;
        self.report_failures(&step.failed, None).await?;
        self.record(step, true).await?;
        self.flush().await
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
            clock_ms: self
                .grid
                .as_ref()
                .and_then(crate::incidents::Grid::event_clock),
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

/// The rules' time settings of a pipeline: idleness is the event clock's to decide (per
/// partition, from what the source says), not the runners'.
fn runner_config(config: &PipelineConfig) -> RunnerConfig {
    RunnerConfig {
        out_of_orderness_ms: config.out_of_orderness_ms,
        idle_timeout_ms: None,
    }
}

/// The partition and position of a record from a source with positions (Kafka).
fn position(origin: &Origin) -> Option<(PartitionId, i64)> {
    match origin {
        Origin::Kafka {
            topic,
            partition,
            offset,
            ..
        } => Some(((Arc::clone(topic), *partition), *offset)),
        _ => None,
    }
}

/// Waits for the next tick of `interval`, forever when there is none.
async fn next_tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Positions as `topic/partition=offset,...`, for the log.
fn positions_text(positions: &BTreeMap<PartitionId, i64>) -> String {
    positions
        .iter()
        .map(|((t, p), o)| format!("{t}/{p}={o}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Where a record came from, as dead letters write it.
fn origin_json(origin: &Origin) -> serde_json::Value {
    match origin {
        Origin::File { path, line } => serde_json::json!({"file": path.to_string(), "line": line}),
        Origin::Kafka {
            topic,
            partition,
            offset,
            ..
        } => {
            serde_json::json!({"topic": topic.to_string(), "partition": partition, "offset": offset})
        }
        Origin::Simulator { seq } => serde_json::json!({"simulator_seq": seq}),
    }
}

/// A dead letter as a sink record. Headers follow Kafka Connect's dead-letter convention
/// (`__connect.errors.*`: origin topic, partition, offset, exception message) for records that
/// came from Kafka, plus `citybrain.reason` (`malformed` | `late` | `future`), `citybrain.feed`
/// and, for late records, `citybrain.rules` (comma-separated rule ids).
pub(crate) fn dead_record(d: &DeadLetter) -> SinkRecord {
    let reason = d.reason.name();
    let detail = match &d.reason {
        DeadReason::Malformed(detail) | DeadReason::Future(detail) => detail.clone(),
        DeadReason::Late { rules } => format!(
            "event time behind the watermark of rule(s) {}",
            rules.join(",")
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
