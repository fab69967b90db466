//! `citybrain ingest`: the stateless ingest tier, scaled out over Kafka partitions.
//!
//! Any number of `citybrain ingest` processes share one consumer group over the departments'
//! raw feed topics (the catalog's tables, `--feeds`) and split their partitions. Each decodes
//! and validates what it reads against its table ([`Decoder`]), pseudonymises the `[personal]`
//! columns, dead-letters bad records with their reason and origin, and writes every clean
//! record as a standard JSON object to its table's standard topic (`<raw topic>.std` unless
//! configured), keyed by its id (the `[id]` columns) so that a downstream consumer can
//! recognise the duplicates a rebalance or a crash makes.
//! It holds no state: an offset is committed once every record produced from the input
//! before it is acknowledged by the broker (at least once).
//!
//! ```text
//!  city.traffic ─┐                          ┌─ Decoder + Pseudonymizer ─┬─▶ city.traffic.std (key: event_id)
//!  city.police  ─┼─▶ KafkaSource ─RawBatch─▶┤   (one per table)         ├─▶ city.police.std   ...
//!    ...        ─┘   group citybrain-ingest └───────────────────────────┴─▶ citybrain.dlq (malformed, origin)
//!        ▲                                              one idempotent KafkaProducer │ acks
//!        └──── commit(offsets) ◀── Acknowledged (batch's mark confirmed) ◀────────────┘
//! ```
//!
//! - [`IngestConfig`]: the TOML file (`[kafka]` as the service's, `[ingest]`), validated once
//!   with every problem reported ([`IngestConfig::validated`]).
//! - [`run`]: the loop; [`IngestStats`] its counts.
//! - [`standard_json`]: a decoded row as the standard JSON record.
//!
//! `docs/scale.md` says when to deploy it and what it guarantees.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use citybrain_connectors::catalog::ORIGIN_COLUMN;
use citybrain_connectors::kafka::{
    KafkaConfig, KafkaProducer, KafkaSink, KafkaSource, TopicPartition,
};
use citybrain_connectors::{
    Catalog, Decoder, Feed, Origin, Pseudonymizer, RawBatch, Sink, SinkRecord, Source,
};
use serde::Deserialize;
use tracing::{debug, info};

use crate::config::MetricsSection;
use crate::error::{Error, Result};
use crate::metrics::names;
use crate::pipeline::dead_record;

/// `citybrain ingest`'s command line; everything else comes from the TOML file.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Kafka bootstrap servers HOST:PORT[,HOST:PORT] (overrides the file's).
    #[arg(long, env = "CITYBRAIN_BROKERS")]
    pub brokers: Option<String>,
    /// Consumer group id shared by every ingest process (default: the file's, else
    /// `citybrain-ingest`).
    #[arg(long, env = "CITYBRAIN_GROUP")]
    pub group: Option<String>,
    /// The feed catalog: Flink SQL `CREATE TABLE` files or folders of them (repeatable;
    /// default: the shipped city feeds, feeds/city.sql). Every table with a topic is read.
    #[arg(long)]
    pub feeds: Vec<std::path::PathBuf>,
    /// Ingest configuration (TOML: [kafka] as the service's, [ingest]); see docs/scale.md.
    #[arg(long, env = "CITYBRAIN_INGEST_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Serve Prometheus metrics at /metrics here (IP:PORT; overrides the file's [metrics]
    /// listen; default: none, so that several instances on one host do not collide).
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Most records per batch (overrides the file's; default 8192).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Stop once every assigned partition has been read to its end: deliver, commit, exit.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Secret for pseudonymising personal fields (default: $CITYBRAIN_PSEUDONYM_KEY). On the
    /// command line it shows in `ps`: prefer --pseudonym-key-file.
    #[arg(long, env = "CITYBRAIN_PSEUDONYM_KEY", hide_env_values = true)]
    pub pseudonym_key: Option<String>,
    /// A file holding the pseudonymisation secret (surrounding whitespace ignored; chmod 600).
    #[arg(long, env = "CITYBRAIN_PSEUDONYM_KEY_FILE")]
    pub pseudonym_key_file: Option<std::path::PathBuf>,
    /// Use the PUBLIC development key when no key is configured: its pseudonyms protect
    /// nothing. Development only.
    #[arg(long)]
    pub insecure_dev_key: bool,
}

impl IngestArgs {
    /// The file (when given) with the flags over it, validated against `catalog`.
    ///
    /// # Errors
    /// When the file cannot be read or the result has problems (all listed).
    pub fn config(&self, catalog: &Catalog) -> Result<IngestConfig> {
        let mut config = match &self.config {
            Some(path) => IngestConfig::load(path)?,
            None => IngestConfig::default(),
        };
        if let Some(b) = &self.brokers {
            config.kafka.brokers.clone_from(b);
        }
        if let Some(g) = &self.group {
            config.kafka.group_id.clone_from(g);
        }
        if let Some(n) = self.batch_size {
            config.ingest.batch_size = n;
        }
        if let Some(listen) = &self.metrics_listen {
            config.metrics.listen.clone_from(listen);
        }
        config.validated(catalog)
    }
}

/// How long a stopping instance waits for the broker to acknowledge what it produced: 20 s,
/// within the 30 s grace period compose (`stop_grace_period`) and Kubernetes give by default.
const SHUTDOWN_DELIVERY: Duration = Duration::from_secs(20);

/// The consumer group of the ingest tier when neither the file nor `--group` names one: not
/// the rules service's `citybrain`, which reads other topics.
pub const DEFAULT_GROUP: &str = "citybrain-ingest";

/// The whole `citybrain ingest --config FILE` file.
///
/// ```toml
/// [kafka]                          # the service's table (connectors::kafka::config)
/// brokers = "127.0.0.1:9092"       # --brokers overrides
/// group_id = "citybrain-ingest"    # --group overrides; default citybrain-ingest
/// dlq_topic = "citybrain.dlq"
/// [kafka.topics]                   # table -> raw topic, over the catalog's 'topic'
/// traffic = "city.traffic"
///
/// [ingest]
/// batch_size = 8192
/// [ingest.std_topics]              # table -> standard topic; default <raw topic>.std
/// traffic = "std.traffic"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Brokers, group, raw topics (over the catalog's), the dead-letter topic and librdkafka
    /// properties (`alert_topic` is not used by ingest).
    pub kafka: KafkaConfig,
    /// Standard topics, batching, commits and backpressure.
    pub ingest: IngestSection,
    /// The Prometheus endpoint: the rules service's names (`citybrain_events_in_total{feed}`
    /// counts standard records, `citybrain_malformed_total{feed}`, `citybrain_consumer_lag`,
    /// `citybrain_outputs_in_flight`, `citybrain_backpressure_pauses_total`). Default: off
    /// when the file has no `[metrics]` table.
    pub metrics: MetricsSection,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig {
                group_id: DEFAULT_GROUP.to_string(),
                ..KafkaConfig::default()
            },
            ingest: IngestSection::default(),
            metrics: MetricsSection {
                listen: String::new(),
            },
        }
    }
}

/// The `[ingest]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// Standard topic of a table, by table name. Default `<raw topic>.std` for every table read.
    pub std_topics: BTreeMap<String, String>,
    /// Most records per batch taken from one poll. Default 8,192, as the service's.
    pub batch_size: usize,
    /// Records produced but not yet acknowledged before consuming pauses. Default 50,000: a
    /// few seconds of a busy city, bounded memory when the broker slows.
    pub max_in_flight: u64,
    /// How often acknowledged progress is committed, milliseconds. Default 1,000: a crash
    /// re-sends at most about a second of records (plus what was in flight).
    pub commit_interval_ms: u64,
}

impl Default for IngestSection {
    fn default() -> Self {
        Self {
            std_topics: BTreeMap::new(),
            batch_size: 8192,
            max_in_flight: citybrain_connectors::kafka::DEFAULT_MAX_IN_FLIGHT,
            commit_interval_ms: 1_000,
        }
    }
}

impl IngestConfig {
    /// Reads `path`; the group is [`DEFAULT_GROUP`] unless the file names one.
    ///
    /// # Errors
    /// When the file cannot be read or is not valid TOML of this shape (not validated yet).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| Error::Config {
            problems: vec![format!("{}: {e}", path.display())],
        })?;
        let names_group = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("kafka")?.get("group_id").cloned())
            .is_some();
        if !names_group {
            config.kafka.group_id = DEFAULT_GROUP.to_string();
        }
        Ok(config)
    }

    /// Each table read with its raw topic and its standard topic (configured, else
    /// `<raw topic>.std`).
    ///
    /// # Errors
    /// Every problem of the raw topics (see [`KafkaConfig::feed_topics`]), one line each.
    pub fn lanes(&self, catalog: &Catalog) -> Result<Vec<(Feed, String, String)>, Vec<String>> {
        Ok(self
            .kafka
            .feed_topics(catalog)?
            .into_iter()
            .map(|(feed, raw)| {
                let std = self
                    .ingest
                    .std_topics
                    .get(feed.name())
                    .cloned()
                    .unwrap_or_else(|| format!("{raw}.std"));
                (feed, raw, std)
            })
            .collect())
    }

    /// Every problem of the configuration against `catalog`, each as one line naming the
    /// field; empty when valid.
    pub fn problems(&self, catalog: &Catalog) -> Vec<String> {
        let mut out = self.kafka.problems();
        let lanes = match self.lanes(catalog) {
            Ok(lanes) => lanes,
            Err(problems) => {
                out.extend(problems);
                Vec::new()
            }
        };
        for table in self.ingest.std_topics.keys() {
            if catalog.table(table).is_none() {
                out.push(format!(
                    "ingest.std_topics.{table}: no such table in the catalog"
                ));
            }
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (feed, raw, _) in &lanes {
            seen.insert(raw.clone(), format!("the raw topic of {}", feed.name()));
        }
        seen.insert(self.kafka.dlq_topic.clone(), "kafka.dlq_topic".to_string());
        seen.insert(
            self.kafka.alert_topic.clone(),
            "kafka.alert_topic".to_string(),
        );
        for (feed, _, std) in &lanes {
            let field = format!("ingest.std_topics.{}", feed.name());
            let ok_chars = std
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if std.is_empty() || std.len() > 249 || !ok_chars || std == "." || std == ".." {
                out.push(format!(
                    "{field}: `{std}` is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"
                ));
            }
            if let Some(other) = seen.insert(std.clone(), field.clone()) {
                out.push(format!("{field}: `{std}` is also {other}"));
            }
        }
        if self.ingest.batch_size == 0 {
            out.push("ingest.batch_size: must be at least 1".to_string());
        }
        if self.ingest.max_in_flight == 0 {
            out.push("ingest.max_in_flight: must be at least 1".to_string());
        }
        if self.ingest.commit_interval_ms == 0 {
            out.push("ingest.commit_interval_ms: must be at least 1".to_string());
        }
        out
    }

    /// The configuration, or every problem of it against `catalog`.
    ///
    /// # Errors
    /// [`Error::Config`] listing every problem.
    pub fn validated(self, catalog: &Catalog) -> Result<Self> {
        let problems = self.problems(catalog);
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Error::Config { problems })
        }
    }
}

/// Counts of one ingest process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Records read, per table.
    pub read: BTreeMap<String, u64>,
    /// Standard records produced, per table.
    pub standard: BTreeMap<String, u64>,
    /// Malformed records dead-lettered, per table.
    pub malformed: BTreeMap<String, u64>,
    /// Partitions whose offsets this process committed, and the last offset committed.
    pub committed: BTreeMap<(Arc<str>, i32), i64>,
}

impl IngestStats {
    /// A few lines for the end of a run.
    pub fn summary(&self, elapsed: Duration) -> String {
        let sum = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
        let read = sum(&self.read);
        format!(
            "ingest: read {read} records in {:.1}s ({:.0} records/s), wrote {} standard records, \
             {} dead letters; committed {} partition(s)\n",
            elapsed.as_secs_f64(),
            read as f64 / elapsed.as_secs_f64().max(1e-9),
            sum(&self.standard),
            sum(&self.malformed),
            self.committed.len()
        )
    }
}

/// Runs the ingest tier until `shutdown` resolves or, with `stop_at_end`, until every assigned
/// partition has been read to its end. On the way out it waits for every produced record to be
/// acknowledged and commits synchronously.
///
/// # Errors
/// When Kafka rejects the configuration, a delivery fails for good (nothing is committed past
/// it: a restart re-reads), or the final commit fails.
pub async fn run(
    config: IngestConfig,
    catalog: &Catalog,
    pseudonymizer: Arc<Pseudonymizer>,
    stop_at_end: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<IngestStats> {
    let producer = Arc::new(
        KafkaProducer::new(&config.kafka.producer_config(), None)
            .map_err(Error::Sink)?
            .with_max_in_flight(config.ingest.max_in_flight),
    );
    let lanes_config = config
        .lanes(catalog)
        .map_err(|problems| Error::Config { problems })?;
    let mut topics = Vec::new();
    let mut lanes: BTreeMap<String, Lane> = BTreeMap::new();
    for (feed, raw, std) in lanes_config {
        info!(table = feed.name(), raw_topic = %raw, std_topic = %std, "ingesting");
        lanes.insert(
            feed.name().to_string(),
            Lane {
                decoder: Decoder::new(feed.clone(), Arc::clone(&pseudonymizer)),
                sink: KafkaSink::new(Arc::clone(&producer), std, false),
                out: Vec::new(),
            },
        );
        topics.push((feed, raw));
    }
    let mut dead = KafkaSink::new(Arc::clone(&producer), &config.kafka.dlq_topic, false);
    let mut source = KafkaSource::in_group(
        &config.kafka,
        &topics,
        config.ingest.batch_size,
        stop_at_end,
    )
    .map_err(Error::Source)?;
    let mut progress = Acknowledged::default();
    // Every table's counts exist from the start, at 0: an instance whose partitions hold
    // nothing new still exports them (and a rate over them starts at the first scrape).
    let mut stats = IngestStats::default();
    for table in lanes.keys() {
        for counts in [&mut stats.read, &mut stats.standard, &mut stats.malformed] {
            counts.insert(table.clone(), 0);
        }
    }
    let mut due: BTreeMap<(Arc<str>, i32), i64> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(config.ingest.commit_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            biased;
            () = &mut shutdown => {
                info!("shutdown requested: no more consuming; delivering and committing");
                break;
            }
            _ = tick.tick() => {
                let delivery = producer.tracker().state();
                if let Some(failed) = delivery.failed {
                    return Err(Error::Sink(citybrain_connectors::Error::Delivery { detail: failed }));
                }
                publish_metrics(&stats, &source, &delivery);
                progress.advance(delivery.confirmed, &mut due);
                commit(&source, &mut due, &mut stats, false)?;
                continue;
            }
            next = source.next_batch() => next.map_err(Error::Source)?,
        };
        let Some(raw) = next else {
            info!("every assigned partition read to its end");
            break;
        };
        for tp in source.take_revoked() {
            progress.revoke(&tp, &mut due);
        }
        let name = raw.feed.name();
        let Some(lane) = lanes.get_mut(name) else {
            continue; // the source reads only the lanes' topics
        };
        let malformed = lane.ingest(&raw);
        *stats.read.entry(name.to_string()).or_default() += raw.records.len() as u64;
        *stats.standard.entry(name.to_string()).or_default() += lane.out.len() as u64;
        *stats.malformed.entry(name.to_string()).or_default() += malformed.len() as u64;
        lane.sink.write(&lane.out).await.map_err(Error::Sink)?;
        dead.write(&malformed).await.map_err(Error::Sink)?;
        let d = producer.tracker().state();
        progress.written(d.produced, last_offsets(&raw));
        progress.advance(d.confirmed, &mut due);
    }
    // Bounded: a broker that stopped answering must not keep a stopping instance alive past
    // its orchestrator's grace period; what is not acknowledged stays uncommitted (re-read).
    tokio::time::timeout(SHUTDOWN_DELIVERY, producer.wait_all_delivered())
        .await
        .map_err(|_| {
            Error::Sink(citybrain_connectors::Error::Delivery {
                detail: format!(
                    "not acknowledged within {}s of stopping; their input stays uncommitted",
                    SHUTDOWN_DELIVERY.as_secs()
                ),
            })
        })?
        .map_err(Error::Sink)?;
    progress.advance(producer.tracker().state().confirmed, &mut due);
    commit(&source, &mut due, &mut stats, true)?;
    Ok(stats)
}

/// Publishes the counts, the consumer lag and the producer's state (no-ops without a
/// recorder).
fn publish_metrics(
    stats: &IngestStats,
    source: &KafkaSource,
    delivery: &citybrain_connectors::kafka::DeliveryState,
) {
    for (feed, n) in &stats.standard {
        metrics::counter!(names::EVENTS_IN, "feed" => feed.clone()).absolute(*n);
    }
    for (feed, n) in &stats.malformed {
        metrics::counter!(names::MALFORMED, "feed" => feed.clone()).absolute(*n);
    }
    for p in Source::partitions(source) {
        if let Some(lag) = p.lag() {
            metrics::gauge!(names::CONSUMER_LAG, "topic" => p.id.0.to_string(), "partition" => p.id.1.to_string())
                .set(lag as f64);
        }
    }
    metrics::gauge!(names::IN_FLIGHT).set(delivery.in_flight() as f64);
    metrics::counter!(names::BACKPRESSURE_PAUSES).absolute(delivery.pauses);
}

/// Commits the offsets `due` (acknowledged progress) and forgets them.
fn commit(
    source: &KafkaSource,
    due: &mut BTreeMap<(Arc<str>, i32), i64>,
    stats: &mut IngestStats,
    sync: bool,
) -> Result<()> {
    if due.is_empty() {
        return Ok(());
    }
    let offsets: Vec<_> = std::mem::take(due).into_iter().collect();
    debug!(?offsets, sync, "committing");
    source.commit(&offsets, sync).map_err(Error::Commit)?;
    stats.committed.extend(offsets);
    Ok(())
}

/// One feed's decoder and standard topic.
struct Lane {
    decoder: Decoder,
    sink: KafkaSink,
    /// The standard records of the batch being ingested (reused).
    out: Vec<SinkRecord>,
}

impl Lane {
    /// Decodes `raw` into `self.out`; returns the dead letters.
    fn ingest(&mut self, raw: &RawBatch) -> Vec<SinkRecord> {
        let decoded = self.decoder.decode(raw);
        self.out.clear();
        let rows = StandardRows::new(&decoded.batch, &raw.feed);
        for row in 0..decoded.batch.num_rows() {
            let (key, payload) = rows.row(row);
            self.out.push(SinkRecord {
                key: Some(key),
                payload,
                headers: Vec::new(),
            });
        }
        decoded.dead.iter().map(dead_record).collect()
    }
}

/// Input written to the producer and not yet committable: per batch, the producer's sequence
/// mark after its records were handed over, and the batch's last offset per partition. A
/// batch's offsets become due for commit (`last + 1`) once the broker acknowledged every record
/// produced before its mark; batches are released in the order they were written, so an offset
/// is never committed before the records produced ahead of it are acknowledged.
#[derive(Debug, Default)]
struct Acknowledged {
    pending: VecDeque<(u64, BTreeMap<TopicPartition, i64>)>,
}

impl Acknowledged {
    /// A batch whose records were all handed to the producer by sequence number `mark`
    /// (`DeliveryState::produced` after writing it), with its last offset per partition.
    fn written(&mut self, mark: u64, last: BTreeMap<TopicPartition, i64>) {
        if !last.is_empty() {
            self.pending.push_back((mark, last));
        }
    }

    /// Moves into `due` the next offsets of every batch whose mark `confirmed` has reached.
    fn advance(&mut self, confirmed: u64, due: &mut BTreeMap<TopicPartition, i64>) {
        while self
            .pending
            .front()
            .is_some_and(|(mark, _)| *mark <= confirmed)
        {
            let (_, last) = self.pending.pop_front().expect("front checked");
            for (tp, offset) in last {
                let next = due.entry(tp).or_insert(offset + 1);
                *next = (*next).max(offset + 1);
            }
        }
    }

    /// Forgets `tp`, revoked by the group: its new owner commits it from now on.
    fn revoke(&mut self, tp: &TopicPartition, due: &mut BTreeMap<TopicPartition, i64>) {
        for (_, last) in &mut self.pending {
            last.remove(tp);
        }
        due.remove(tp);
    }
}

/// The last offset of each partition in `raw`.
fn last_offsets(raw: &RawBatch) -> BTreeMap<(Arc<str>, i32), i64> {
    let mut out = BTreeMap::new();
    for r in &raw.records {
        if let Origin::Kafka {
            topic,
            partition,
            offset,
            ..
        } = &r.origin
        {
            let last = out
                .entry((Arc::clone(topic), *partition))
                .or_insert(*offset);
            *last = (*last).max(*offset);
        }
    }
    out
}

/// Row `row` of a batch `feed`'s decoder made, as the standard JSON record: the table's
/// columns in declaration order, nulls left out, times as RFC 3339 UTC with milliseconds, dates
/// as `YYYY-MM-DD`, decimals as JSON numbers, rows as objects and arrays as arrays, personal
/// columns already pseudonyms. Returns it with its key: the id column's value (several id
/// columns: their values joined by `/`), or the raw record's origin when the table has none.
pub fn standard_json(batch: &RecordBatch, feed: &Feed, row: usize) -> (String, String) {
    StandardRows::new(batch, feed).row(row)
}

/// The columns of a decoded batch and which of them make the key.
struct StandardRows<'a> {
    columns: Vec<(&'a str, &'a dyn Array)>,
    key: Vec<&'a dyn Array>,
}

impl<'a> StandardRows<'a> {
    fn new(batch: &'a RecordBatch, feed: &Feed) -> Self {
        let schema = batch.schema_ref();
        let column = |name: &str| schema.index_of(name).ok().map(|i| batch.column(i).as_ref());
        let columns = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| f.name() != ORIGIN_COLUMN)
            .map(|(f, c)| (f.name().as_str(), c.as_ref()))
            .collect();
        let key = feed.key_columns().into_iter().filter_map(column).collect();
        Self { columns, key }
    }

    fn row(&self, row: usize) -> (String, String) {
        let mut out = String::with_capacity(256);
        out.push('{');
        for (name, col) in &self.columns {
            if col.is_null(row) {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            push_json_str(&mut out, name);
            out.push(':');
            push_value(&mut out, *col, row);
        }
        out.push('}');
        let mut key = String::new();
        for (i, col) in self.key.iter().enumerate() {
            if i > 0 {
                key.push('/');
            }
            match col.as_string_opt::<i32>() {
                Some(s) => key.push_str(s.value(row)),
                None => {
                    let mut v = String::new();
                    push_value(&mut v, *col, row);
                    key.push_str(v.trim_matches('"'));
                }
            }
        }
        (key, out)
    }
}

/// Appends value `row` of `array` as JSON.
fn push_value(out: &mut String, array: &dyn Array, row: usize) {
    if array.is_null(row) {
        out.push_str("null");
        return;
    }
    match array.data_type() {
        DataType::Utf8 => push_json_str(out, array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => push_json_str(out, array.as_string::<i64>().value(row)),
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Int8 => push_display(out, array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => push_display(out, array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => push_display(out, array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => push_display(out, array.as_primitive::<Int64Type>().value(row)),
        // The decoder admits finite numbers only; serde_json writes the shortest exact form.
        DataType::Float32 => push_float(out, &array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => push_float(out, &array.as_primitive::<Float64Type>().value(row)),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row) * 1000,
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row) / 1000
                }
                TimeUnit::Nanosecond => {
                    array.as_primitive::<TimestampNanosecondType>().value(row) / 1_000_000
                }
            };
            match chrono::DateTime::from_timestamp_millis(v) {
                Some(t) => {
                    out.push('"');
                    out.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                    out.push('"');
                }
                None => push_display(out, v),
            }
        }
        DataType::Struct(_) => {
            let s = array.as_struct();
            out.push('{');
            let mut first = true;
            for (field, col) in s.fields().iter().zip(s.columns()) {
                if col.is_null(row) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                push_json_str(out, field.name());
                out.push(':');
                push_value(out, col.as_ref(), row);
            }
            out.push('}');
        }
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            out.push('[');
            for i in 0..values.len() {
                if i > 0 {
                    out.push(',');
                }
                push_value(out, values.as_ref(), i);
            }
            out.push(']');
        }
        // Decimals as numbers (their exact text), everything else (dates) as strings.
        other => {
            let text = ArrayFormatter::try_new(array, &FormatOptions::default())
                .map(|f| f.value(row).to_string())
                .unwrap_or_default();
            if matches!(other, DataType::Decimal128(..) | DataType::Decimal256(..)) {
                out.push_str(&text);
            } else {
                push_json_str(out, &text);
            }
        }
    }
}

fn push_display(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn push_float<T: serde::Serialize>(out: &mut String, v: &T) {
    out.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
}

fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string serialises to JSON"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use citybrain_connectors::RawRecord;
    use serde_json::{Value, json};

    fn traffic() -> Feed {
        Catalog::city()
            .table("traffic")
            .expect("the city's traffic")
            .clone()
    }

    fn raw(feed: &Feed, lines: &[&str]) -> RawBatch {
        RawBatch {
            feed: feed.clone(),
            records: lines
                .iter()
                .enumerate()
                .map(|(i, l)| RawRecord {
                    payload: Bytes::copy_from_slice(l.as_bytes()),
                    origin: Origin::Kafka {
                        topic: "city.traffic".into(),
                        partition: 2,
                        offset: 10 + i as i64,
                        timestamp_ms: None,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn standard_records_are_pseudonymised_normalised_and_decode_again() {
        let p = Arc::new(Pseudonymizer::new(b"unit-test-key"));
        let feed = traffic();
        let mut decoder = Decoder::new(feed.clone(), Arc::clone(&p));
        let input = raw(
            &feed,
            &[
                r#"{"event_id":"t-1","ts":1700000000123,"lat":30.25,"lon":120.17,"plate":"浙A12345","speed_kmh":12,"extra":"dropped","kind":"flow"}"#,
                r#"{"event_id":"t-2","lat":30.2}"#,
            ],
        );
        let decoded = decoder.decode(&input);
        assert_eq!(decoded.batch.num_rows(), 1);
        assert_eq!(decoded.dead.len(), 1, "the record without ts is malformed");
        let (key, json) = standard_json(&decoded.batch, &feed, 0);
        assert_eq!(key, "t-1");
        let v: Value = serde_json::from_str(&json).expect("standard record is JSON");
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["speed_kmh"], json!(12.0));
        assert_eq!(v["plate"], p.pseudonymize("浙A12345"));
        assert!(
            v.get("extra").is_none(),
            "fields outside the standard dropped"
        );
        assert!(v.get("occupancy").is_none(), "nulls left out");
        assert!(!json.contains("浙A12345"));
        // The standard record is a valid record of its feed: decoding it again gives the
        // same row (personal fields aside, which a second pass would hash again).
        let again = decoder.decode(&raw(&feed, &[&json]));
        assert!(again.dead.is_empty(), "{:?}", again.dead);
        let (_, json2) = standard_json(&again.batch, &feed, 0);
        let mut v2: Value = serde_json::from_str(&json2).expect("JSON");
        v2["plate"] = v["plate"].clone();
        assert_eq!(v2, v);
    }

    #[test]
    fn every_catalog_type_is_written_and_read_back() {
        let catalog = Catalog::parse(
            "t.sql",
            "CREATE TABLE sensors (
                ts TIMESTAMP_LTZ(3) NOT NULL,
                n INT, small SMALLINT, ok BOOLEAN, f FLOAT, price DECIMAL(10, 2), day DATE,
                pos ROW<x DOUBLE, label STRING>, tags ARRAY<STRING>,
                WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
            ) WITH ('connector' = 'kafka', 'topic' = 'sensors', 'format' = 'json',
                   'properties.bootstrap.servers' = 'localhost:9092');",
        )
        .expect("catalog");
        let feed = catalog.table("sensors").expect("table").clone();
        let mut decoder = Decoder::new(feed.clone(), Arc::new(Pseudonymizer::new(b"k")));
        let line = r#"{"ts":"2024-05-01T08:00:00.250Z","n":7,"small":-3,"ok":true,"f":0.5,"price":12.34,"day":"2024-05-01","pos":{"x":1.5,"label":"a\"b"},"tags":["x","y"]}"#;
        let decoded = decoder.decode(&raw(&feed, &[line]));
        assert!(decoded.dead.is_empty(), "{:?}", decoded.dead);
        let (key, json) = standard_json(&decoded.batch, &feed, 0);
        let v: Value = serde_json::from_str(&json).expect("JSON");
        let mut want: Value = serde_json::from_str(line).expect("JSON");
        want["ts"] = json!("2024-05-01T08:00:00.250Z");
        assert_eq!(v, want, "{json}");
        assert!(!json.contains(ORIGIN_COLUMN), "{json}");
        assert!(!key.is_empty(), "no id column: the origin is the key");
        let again = decoder.decode(&raw(&feed, &[&json]));
        assert!(again.dead.is_empty(), "{:?}", again.dead);
        assert_eq!(standard_json(&again.batch, &feed, 0).1, json);
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"
            [kafka]
            brokers = "127.0.0.1:9092"
            dlq_topic = "city.police.std"
            [kafka.topics]
            traffic = "city.traffic"
            police = "city.police"
            [ingest]
            batch_size = 0
            [ingest.std_topics]
            traffic = "city.police"
            weather = "city.weather.std"
        "#;
        let c: IngestConfig = toml::from_str(text).expect("parses");
        let p = c.problems(&Catalog::city());
        let expect = [
            "ingest.std_topics.weather: no such table in the catalog",
            "ingest.std_topics.traffic: `city.police` is also the raw topic of police",
            "ingest.std_topics.police: `city.police.std` is also kafka.dlq_topic",
            "ingest.batch_size",
        ];
        for e in expect {
            assert!(
                p.iter().any(|x| x.starts_with(e)),
                "missing {e:?} in {p:#?}"
            );
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn defaults_read_every_table_into_dot_std() {
        let mut c = IngestConfig::default();
        c.kafka.brokers = "127.0.0.1:9092".into();
        let city = Catalog::city();
        assert!(c.problems(&city).is_empty(), "{:?}", c.problems(&city));
        assert_eq!(c.kafka.group_id, DEFAULT_GROUP);
        let lanes = c.lanes(&city).expect("lanes");
        assert_eq!(lanes.len(), 4);
        assert_eq!(
            (lanes[0].0.name(), lanes[0].1.as_str(), lanes[0].2.as_str()),
            ("traffic", "city.traffic", "city.traffic.std")
        );
    }

    #[test]
    fn offsets_are_due_once_everything_produced_before_them_is_acknowledged() {
        let tp = |p: i32| -> TopicPartition { ("city.traffic".into(), p) };
        let mut acked = Acknowledged::default();
        let mut due = BTreeMap::new();
        acked.written(3, BTreeMap::from([(tp(0), 9), (tp(1), 4)]));
        acked.written(5, BTreeMap::from([(tp(0), 20)]));
        acked.written(5, BTreeMap::new()); // only dead letters of no partition: nothing to wait for
        acked.advance(2, &mut due);
        assert!(
            due.is_empty(),
            "record 2 of the first batch is not acknowledged"
        );
        acked.advance(4, &mut due);
        assert_eq!(due, BTreeMap::from([(tp(0), 10), (tp(1), 5)]));
        acked.advance(5, &mut due);
        assert_eq!(due, BTreeMap::from([(tp(0), 21), (tp(1), 5)]));
        assert!(acked.pending.is_empty());
    }

    #[test]
    fn a_revoked_partition_is_never_committed_again() {
        let tp = |p: i32| -> TopicPartition { ("city.traffic".into(), p) };
        let mut acked = Acknowledged::default();
        let mut due = BTreeMap::from([(tp(0), 3)]);
        acked.written(1, BTreeMap::from([(tp(0), 9), (tp(1), 4)]));
        acked.revoke(&tp(0), &mut due);
        assert!(due.is_empty());
        acked.advance(1, &mut due);
        assert_eq!(due, BTreeMap::from([(tp(1), 5)]));
    }

    #[test]
    fn last_offsets_per_partition() {
        let r = raw(&traffic(), &["{}", "{}", "{}"]);
        let got = last_offsets(&r);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![(("city.traffic".into(), 2), 12)]
        );
    }
}
