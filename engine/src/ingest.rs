//! `citybrain ingest`: the stateless ingest tier, scaled out over Kafka partitions.
//!
//! Any number of `citybrain ingest` processes share one consumer group over the departments'
//! raw feed topics and split their partitions. Each decodes and validates what it reads with
//! the feed standard ([`Decoder`]), pseudonymises personal fields, dead-letters bad records
//! with their reason and origin, and writes every clean record as a standard JSON object to
//! its feed's standard topic (`<raw topic>.std` unless configured), keyed by its `event_id`
//! so that a downstream consumer can recognise the duplicates a rebalance or a crash makes.
//! It holds no state: an offset is committed once every record produced from the input
//! before it is acknowledged by the broker (at least once).
//!
//! ```text
//!  city.traffic ─┐                          ┌─ Decoder + Pseudonymizer ─┬─▶ city.traffic.std (key: event_id)
//!  city.police  ─┼─▶ KafkaSource ─RawBatch─▶┤   (one per feed)          ├─▶ city.police.std   ...
//!    ...        ─┘   group citybrain-ingest └───────────────────────────┴─▶ citybrain.dlq (malformed, origin)
//!        ▲                                              one idempotent KafkaProducer │ acks
//!        └──── commit(offsets) ◀── CommitTracker (chunks released at once) ◀─────────┘
//! ```
//!
//! - [`IngestConfig`]: the TOML file (`[kafka]` as the service's, `[ingest]`), validated once
//!   with every problem reported ([`IngestConfig::validated`]).
//! - [`run`]: the loop; [`IngestStats`] its counts.
//! - [`standard_json`]: a decoded row as the standard JSON record.
//!
//! `docs/scale.md` says when to deploy it and what it guarantees.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use citybrain_connectors::kafka::{
    CommitTracker, KafkaConfig, KafkaProducer, KafkaSink, KafkaSource,
};
use citybrain_connectors::{
    Decoder, Feed, Origin, Pseudonymizer, RawBatch, Sink, SinkRecord, Source,
};
use serde::Deserialize;
use tracing::{debug, info};

use crate::error::{Error, Result};
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
    /// Ingest configuration (TOML: [kafka] as the service's, [ingest]); see docs/scale.md.
    #[arg(long, env = "CITYBRAIN_INGEST_CONFIG")]
    pub config: Option<std::path::PathBuf>,
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
    /// The file (when given) with the flags over it, validated.
    ///
    /// # Errors
    /// When the file cannot be read or the result has problems (all listed).
    pub fn config(&self) -> Result<IngestConfig> {
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
        config.validated()
    }
}

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
/// [kafka.topics]                   # feed -> raw topic
/// traffic = "city.traffic"
///
/// [ingest]
/// batch_size = 8192
/// [ingest.std_topics]              # feed -> standard topic; default <raw topic>.std
/// traffic = "std.traffic"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Brokers, group, raw feed topics, the dead-letter topic and librdkafka properties
    /// (`alert_topic` is not used by ingest).
    pub kafka: KafkaConfig,
    /// Standard topics, batching, commits and backpressure.
    pub ingest: IngestSection,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig {
                group_id: DEFAULT_GROUP.to_string(),
                ..KafkaConfig::default()
            },
            ingest: IngestSection::default(),
        }
    }
}

/// The `[ingest]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// Standard topic of a feed, by feed name. Default `<raw topic>.std` for every feed read.
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

    /// The standard topic of each feed read (configured, else `<raw topic>.std`).
    pub fn std_topics(&self) -> BTreeMap<String, String> {
        self.kafka
            .topics
            .iter()
            .map(|(feed, raw)| {
                let std = self
                    .ingest
                    .std_topics
                    .get(feed)
                    .cloned()
                    .unwrap_or_else(|| format!("{raw}.std"));
                (feed.clone(), std)
            })
            .collect()
    }

    /// Every problem of the configuration, each as one line naming the field; empty when valid.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.kafka.problems();
        for feed in self.ingest.std_topics.keys() {
            if !self.kafka.topics.contains_key(feed) {
                out.push(format!(
                    "ingest.std_topics.{feed}: feed not read (not in kafka.topics)"
                ));
            }
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (feed, raw) in &self.kafka.topics {
            seen.insert(raw.clone(), format!("the raw topic of feed {feed}"));
        }
        seen.insert(self.kafka.dlq_topic.clone(), "kafka.dlq_topic".to_string());
        for (feed, std) in self.std_topics() {
            let field = format!("ingest.std_topics.{feed}");
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

    /// The configuration, or every problem of it.
    ///
    /// # Errors
    /// [`Error::Config`] listing every problem.
    pub fn validated(self) -> Result<Self> {
        let problems = self.problems();
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
    /// Records read, per feed.
    pub read: BTreeMap<&'static str, u64>,
    /// Standard records produced, per feed.
    pub standard: BTreeMap<&'static str, u64>,
    /// Malformed records dead-lettered, per feed.
    pub malformed: BTreeMap<&'static str, u64>,
    /// Partitions whose offsets this process committed, and the last offset committed.
    pub committed: BTreeMap<(Arc<str>, i32), i64>,
}

impl IngestStats {
    /// A few lines for the end of a run.
    pub fn summary(&self, elapsed: Duration) -> String {
        let sum = |m: &BTreeMap<&'static str, u64>| m.values().sum::<u64>();
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
    pseudonymizer: Arc<Pseudonymizer>,
    stop_at_end: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<IngestStats> {
    let producer = Arc::new(
        KafkaProducer::new(&config.kafka.producer_config(), None)
            .map_err(Error::Sink)?
            .with_max_in_flight(config.ingest.max_in_flight),
    );
    let mut lanes: BTreeMap<Feed, Lane> = BTreeMap::new();
    for (name, std) in config.std_topics() {
        let Some(feed) = Feed::from_name(&name) else {
            continue; // validated: cannot happen
        };
        info!(feed = name, std_topic = %std, "standard topic");
        lanes.insert(
            feed,
            Lane {
                decoder: Decoder::new(feed, Arc::clone(&pseudonymizer)),
                sink: KafkaSink::new(Arc::clone(&producer), std, false),
                out: Vec::new(),
            },
        );
    }
    let mut dead = KafkaSink::new(Arc::clone(&producer), &config.kafka.dlq_topic, false);
    let mut source = KafkaSource::new(&config.kafka, config.ingest.batch_size, stop_at_end)
        .map_err(Error::Source)?;
    let mut progress = CommitTracker::default();
    let mut stats = IngestStats::default();
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
                if let Some(failed) = producer.tracker().state().failed {
                    return Err(Error::Sink(citybrain_connectors::Error::Delivery { detail: failed }));
                }
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
            progress.revoke(&tp);
            due.remove(&tp);
        }
        let Some(lane) = lanes.get_mut(&raw.feed) else {
            continue; // the source reads only the lanes' topics
        };
        let malformed = lane.ingest(&raw);
        let name = raw.feed.name();
        *stats.read.entry(name).or_default() += raw.records.len() as u64;
        *stats.standard.entry(name).or_default() += lane.out.len() as u64;
        *stats.malformed.entry(name).or_default() += malformed.len() as u64;
        lane.sink.write(&lane.out).await.map_err(Error::Sink)?;
        dead.write(&malformed).await.map_err(Error::Sink)?;
        for (tp, last) in last_offsets(&raw) {
            progress.processed(tp, last, None);
        }
        let d = producer.tracker().state();
        due.extend(progress.advance(|_| None, d.produced, d.confirmed));
    }
    producer.wait_all_delivered().await.map_err(Error::Sink)?;
    let d = producer.tracker().state();
    due.extend(progress.advance(|_| None, d.produced, d.confirmed));
    commit(&source, &mut due, &mut stats, true)?;
    Ok(stats)
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
        let writers = ColumnWriters::new(&decoded.batch);
        for row in 0..decoded.batch.num_rows() {
            let (key, payload) = writers.row(row);
            self.out.push(SinkRecord {
                key,
                payload,
                headers: Vec::new(),
            });
        }
        decoded.dead.iter().map(dead_record).collect()
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

/// Row `row` of a decoded feed batch as the standard JSON record: the feed's fields in the
/// standard's order, nulls left out, times as RFC 3339 UTC with milliseconds, personal fields
/// already pseudonyms. Returns it with its `event_id` (the record's key).
pub fn standard_json(batch: &RecordBatch, row: usize) -> (Option<String>, String) {
    ColumnWriters::new(batch).row(row)
}

/// The columns of a decoded batch, typed once per batch.
struct ColumnWriters<'a> {
    columns: Vec<(&'a str, Column<'a>)>,
}

enum Column<'a> {
    Str(&'a arrow::array::StringArray),
    Int(&'a arrow::array::Int64Array),
    Float(&'a arrow::array::Float64Array),
    Ts(&'a arrow::array::TimestampMillisecondArray),
}

impl<'a> ColumnWriters<'a> {
    fn new(batch: &'a RecordBatch) -> Self {
        let columns = batch
            .schema_ref()
            .fields()
            .iter()
            .zip(batch.columns())
            .filter_map(|(f, c): (_, &'a ArrayRef)| {
                let col = match f.data_type() {
                    DataType::Utf8 => Column::Str(c.as_string::<i32>()),
                    DataType::Int64 => Column::Int(c.as_primitive::<Int64Type>()),
                    DataType::Float64 => Column::Float(c.as_primitive::<Float64Type>()),
                    DataType::Timestamp(TimeUnit::Millisecond, _) => {
                        Column::Ts(c.as_primitive::<TimestampMillisecondType>())
                    }
                    // The feed standard has no other types.
                    _ => return None,
                };
                Some((f.name().as_str(), col))
            })
            .collect();
        Self { columns }
    }

    fn row(&self, row: usize) -> (Option<String>, String) {
        let mut out = String::with_capacity(256);
        let mut key = None;
        out.push('{');
        for (name, col) in &self.columns {
            let is_null = match col {
                Column::Str(a) => a.is_null(row),
                Column::Int(a) => a.is_null(row),
                Column::Float(a) => a.is_null(row),
                Column::Ts(a) => a.is_null(row),
            };
            if is_null {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            push_json_str(&mut out, name);
            out.push(':');
            match col {
                Column::Str(a) => {
                    let v = a.value(row);
                    if *name == "event_id" {
                        key = Some(v.to_string());
                    }
                    push_json_str(&mut out, v);
                }
                Column::Int(a) => {
                    let _ = write!(out, "{}", a.value(row));
                }
                Column::Float(a) => {
                    // The decoder admits finite numbers only.
                    out.push_str(
                        &serde_json::to_string(&a.value(row)).unwrap_or_else(|_| "null".into()),
                    );
                }
                Column::Ts(a) => {
                    let ms = a.value(row);
                    match chrono::DateTime::from_timestamp_millis(ms) {
                        Some(t) => {
                            out.push('"');
                            out.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                            out.push('"');
                        }
                        None => {
                            let _ = write!(out, "{ms}");
                        }
                    }
                }
            }
        }
        out.push('}');
        (key, out)
    }
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

    fn raw(feed: Feed, lines: &[&str]) -> RawBatch {
        RawBatch {
            feed,
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
        let mut decoder = Decoder::new(Feed::Traffic, Arc::clone(&p));
        let input = raw(
            Feed::Traffic,
            &[
                r#"{"event_id":"t-1","ts":1700000000123,"lat":30.25,"lon":120.17,"plate":"浙A12345","speed_kmh":12,"extra":"dropped","kind":"flow"}"#,
                r#"{"event_id":"t-2","lat":30.2}"#,
            ],
        );
        let decoded = decoder.decode(&input);
        assert_eq!(decoded.batch.num_rows(), 1);
        assert_eq!(decoded.dead.len(), 1, "the record without ts is malformed");
        let (key, json) = standard_json(&decoded.batch, 0);
        assert_eq!(key.as_deref(), Some("t-1"));
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
        let again = decoder.decode(&raw(Feed::Traffic, &[&json]));
        assert!(again.dead.is_empty(), "{:?}", again.dead);
        let (_, json2) = standard_json(&again.batch, 0);
        let mut v2: Value = serde_json::from_str(&json2).expect("JSON");
        v2["plate"] = v["plate"].clone();
        assert_eq!(v2, v);
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
            market = "city.market.std"
        "#;
        let c: IngestConfig = toml::from_str(text).expect("parses");
        let p = c.problems();
        let expect = [
            "ingest.std_topics.market: feed not read",
            "ingest.std_topics.traffic: `city.police` is also the raw topic of feed police",
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
    fn defaults_read_every_feed_into_dot_std() {
        let mut c = IngestConfig::default();
        c.kafka.brokers = "127.0.0.1:9092".into();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.kafka.group_id, DEFAULT_GROUP);
        assert_eq!(c.std_topics()["traffic"], "city.traffic.std");
    }

    #[test]
    fn last_offsets_per_partition() {
        let r = raw(Feed::Traffic, &["{}", "{}", "{}"]);
        let got = last_offsets(&r);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![(("city.traffic".into(), 2), 12)]
        );
    }
}
