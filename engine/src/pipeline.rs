//! The one data path: source, decode and privacy, rules, sinks.
//!
//! ```text
//!  Source ──RawBatch──▶ Decoder(feed) ──RecordBatch──▶ RuleRunner × rules of that feed
//!                         │ malformed                      │ late rows      │ emissions
//!                         ▼                                ▼                ▼
//!                       dead-letter Sink ◀────────────────┘          alert Sink
//! ```
//!
//! The pipeline owns the runtime parts built from a validated [`PipelineConfig`]; the same
//! struct serves `replay` (files), `run` (simulator) and the Kafka service
//! (`crate::service`), which also uses [`Pipeline::process_tracked`],
//! [`Pipeline::oldest_needed_ts`] and [`Pipeline::flush`] to commit only durable progress.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, TimestampMillisecondArray};
use chrono::Utc;
use citybrain_connectors::{
    DeadLetter, DeadReason, Decoder, Feed, Origin, Pseudonymizer, RawBatch, Sink, SinkRecord,
    Source,
};
use citybrain_rules::{Catalog, CompiledRule, Emission, RuleRunner};

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
    /// How alerts are written.
    pub alert_format: AlertFormat,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            out_of_orderness_ms: citybrain_rules::DEFAULT_OUT_OF_ORDERNESS_MS,
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

/// Called every two seconds during [`Pipeline::run`] with the counts so far and the source's
/// progress.
pub type ProgressFn<'a> = &'a mut dyn FnMut(&Stats, Option<citybrain_connectors::Progress>);

/// Source to sinks, with every rule of the library running on its feed.
pub struct Pipeline {
    config: PipelineConfig,
    decoders: BTreeMap<Feed, Decoder>,
    runners: Vec<RuleRunner>,
    alert_sink: Box<dyn Sink>,
    dead_sink: Box<dyn Sink>,
    stats: Stats,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .field("runners", &self.runners)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Wires the parts together.
    pub fn new(
        config: PipelineConfig,
        rules: Vec<CompiledRule>,
        pseudonymizer: Arc<Pseudonymizer>,
        alert_sink: Box<dyn Sink>,
        dead_sink: Box<dyn Sink>,
    ) -> Self {
        let decoders = Feed::ALL
            .iter()
            .map(|f| (*f, Decoder::new(*f, Arc::clone(&pseudonymizer))))
            .collect();
        let mut stats = Stats::default();
        let runners = rules
            .into_iter()
            .map(|r| {
                stats.alerts.insert(r.meta.id.clone(), 0);
                RuleRunner::new(Arc::new(r), config.out_of_orderness_ms)
            })
            .collect();
        Self {
            config,
            decoders,
            runners,
            alert_sink,
            dead_sink,
            stats,
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Reads `source` until it ends or `stop` resolves, then emits what is ready and flushes
    /// the sinks. At the end of a finite input every open window is emitted; when stopped
    /// early, open windows are emitted too (the demo's Ctrl-C shows what it has).
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
                next = source.next_batch() => next.map_err(Error::Source)?,
            };
            let Some(raw) = next else { break };
            self.process(raw).await?;
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

    /// The smallest event time (epoch ms) still held by any rule, `None` when no rule holds a
    /// row. An input record whose event time is below it (or any record when `None`) has had
    /// every effect it can have: its alerts were handed to the alert sink.
    pub fn oldest_needed_ts(&self) -> Option<i64> {
        self.runners
            .iter()
            .filter_map(RuleRunner::oldest_needed_ts)
            .min()
    }

    /// [`Pipeline::oldest_needed_ts`] over the rules reading `feed` only: a quiet feed's open
    /// window does not hold back the commits of the others.
    pub fn oldest_needed_ts_of(&self, feed: Feed) -> Option<i64> {
        self.runners
            .iter()
            .filter(|r| r.rule().input == feed.name())
            .filter_map(RuleRunner::oldest_needed_ts)
            .min()
    }

    /// Like [`Pipeline::process`], and says what each raw record became: its event time (ms)
    /// when well-formed, `None` when it was dead-lettered as malformed. Sources that commit
    /// positions (Kafka) use it with [`Pipeline::oldest_needed_ts`].
    ///
    /// # Errors
    /// When a sink fails or a plan fails to execute.
    pub async fn process_tracked(&mut self, raw: RawBatch) -> Result<Vec<Option<i64>>> {
        let feed = raw.feed;
        self.stats.bytes += raw
            .records
            .iter()
            .map(|r| r.payload.len() as u64)
            .sum::<u64>();
        let decoder = self.decoders.get_mut(&feed).expect("a decoder per feed");
        let decoded = decoder.decode(&raw);
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
        if !decoded.dead.is_empty() {
            *self.stats.malformed.entry(feed.name()).or_default() += decoded.dead.len() as u64;
            let records: Vec<SinkRecord> = decoded.dead.iter().map(dead_record).collect();
            self.dead_sink.write(&records).await.map_err(Error::Sink)?;
        }
        if decoded.batch.num_rows() == 0 {
            return Ok(event_ts);
        }
        let mut late: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        let mut emitted = Vec::new();
        for runner in self
            .runners
            .iter_mut()
            .filter(|r| r.rule().input == feed.name())
        {
            let step = runner.process(&decoded.batch).await.map_err(Error::Rules)?;
            if !step.late_rows.is_empty() {
                *self
                    .stats
                    .late
                    .entry(runner.rule().meta.id.clone())
                    .or_default() += step.late_rows.len() as u64;
                for row in step.late_rows {
                    late.entry(row)
                        .or_default()
                        .push(runner.rule().meta.id.clone());
                }
            }
            for e in step.emissions {
                emitted.push((Arc::clone(runner.rule()), e));
            }
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
        self.write_alerts(emitted).await?;
        Ok(event_ts)
    }

    /// Makes everything written so far durable without emitting open windows (a long-running
    /// service stopping: open windows are rebuilt from uncommitted input on restart).
    ///
    /// # Errors
    /// When a sink fails.
    pub async fn flush(&mut self) -> Result<()> {
        self.alert_sink.flush().await.map_err(Error::Sink)?;
        self.dead_sink.flush().await.map_err(Error::Sink)
    }

    /// Emits every open window and flushes both sinks.
    ///
    /// # Errors
    /// When a sink fails or a plan fails to execute.
    pub async fn finish(&mut self) -> Result<()> {
        let mut emitted = Vec::new();
        for runner in &mut self.runners {
            for e in runner.finish().await.map_err(Error::Rules)? {
                emitted.push((Arc::clone(runner.rule()), e));
            }
        }
        self.write_alerts(emitted).await?;
        self.alert_sink.flush().await.map_err(Error::Sink)?;
        self.dead_sink.flush().await.map_err(Error::Sink)
    }

    async fn write_alerts(&mut self, emitted: Vec<(Arc<CompiledRule>, Emission)>) -> Result<()> {
        if emitted.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut records = Vec::new();
        for (rule, emission) in &emitted {
            let alerts: Vec<Alert> = alert::alerts(rule, emission, now);
            *self.stats.alerts.entry(rule.meta.id.clone()).or_default() += alerts.len() as u64;
            records.extend(alerts.iter().map(|a| match self.config.alert_format {
                AlertFormat::Json => a.to_record(),
                AlertFormat::Human => SinkRecord {
                    key: Some(a.key.clone()),
                    payload: a.to_human(),
                    headers: Vec::new(),
                },
            }));
        }
        self.alert_sink.write(&records).await.map_err(Error::Sink)
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
