//! `citybrain run --brokers`: the long-running Kafka service, and `simulate --brokers`.
//!
//! ```text
//!  Leadership (citybrain.control, 1 partition): wait until this instance is the active one
//!     │
//!     ▼ CheckpointStore::latest ──▶ Pipeline::restore ──▶ KafkaSource at the checkpoint's offsets
//!
//!  KafkaSource ──RawBatch──▶ Pipeline::run (the loop of every mode) ──alerts──▶ KafkaSink (citybrain.alerts)
//!     ▲                         │                                  dead letters ─▶ KafkaSink (citybrain.dlq)
//!     │                         │ every checkpoint interval:               │ one idempotent producer,
//!     └── Source::commit ◀──────┘ state + offsets written, outputs acked ◀─┘ Sink::barrier
//! ```
//!
//! Several instances may run with the same group: the consumer group of the control topic
//! gives its one partition to one of them, which restores the last checkpoint from the shared
//! store and reads every partition of every feed topic; the others stand by and take over,
//! from the last checkpoint, when it dies or leaves. At-least-once: offsets are committed only
//! with a durable checkpoint whose outputs the broker acknowledged. `docs/delivery.md` states
//! the guarantee and its limits.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use citybrain_connectors::kafka::{
    DeliveryTracker, KafkaConfig, KafkaProducer, KafkaSink, KafkaSource, Leadership, TopicPartition,
};
use citybrain_connectors::{
    Catalog, CityConfig, Feed, FeedCounts, Pseudonymizer, RawBatch, SimulatorSource, Sink,
    SinkRecord, Source,
};
use citybrain_rules::CompiledRule;
use tracing::{info, warn};

use crate::checkpoint::CheckpointStore;
use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, names};
use crate::pipeline::{
    AlertFormat, Checkpointing, Observer, Pipeline, PipelineConfig, RunOptions, Stats, Stopped,
};

/// How the service ended.
#[derive(Debug)]
pub struct Outcome {
    /// Counts of the run.
    pub stats: Stats,
    /// Offsets committed last, per partition.
    pub committed: BTreeMap<TopicPartition, i64>,
}

/// Runs the Kafka service until `shutdown` resolves (SIGINT/SIGTERM) or, with `stop_at_end`,
/// until every partition has been read to its end. It first stands by until it holds the
/// control lease (the active instance), then restores the last checkpoint and reads from its offsets.
/// On shutdown it stops consuming, waits for every produced record to be acknowledged, takes a
/// last checkpoint (open windows included), commits its offsets and returns. At the end of
/// input (`stop_at_end`) every open window is emitted first, as `replay` does.
///
/// # Errors
/// When Kafka rejects the configuration, a delivery fails for good, a checkpoint cannot be
/// written or read, a rule fails to execute, or another instance took over
/// ([`Error::Fenced`]). Nothing is committed past unacknowledged output.
// Each argument is a separate part handed in by `main` (config, catalog, rules and their updates,
// key, metrics, stop conditions, the incident grid); a struct grouping them would only be
// unpacked again here.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    config: ServiceConfig,
    catalog: &Catalog,
    rules: Vec<CompiledRule>,
    rule_updates: Option<tokio::sync::mpsc::Receiver<Vec<CompiledRule>>>,
    pseudonymizer: Arc<Pseudonymizer>,
    metrics: Metrics,
    stop_at_end: bool,
    shutdown: impl Future<Output = ()>,
    grid: Option<crate::incidents::Grid>,
) -> Result<Outcome> {
    let e = &config.engine;
    tokio::pin!(shutdown);
    let store = CheckpointStore::open(&config.checkpoint, &config.kafka.group_id)?;
    let mut leadership = Leadership::join(&config.kafka).map_err(Error::Source)?;
    if !leadership.is_active() {
        info!(group = %config.kafka.group_id, "standing by until this instance is the active one");
    }
    tokio::select! {
        () = &mut shutdown => {
            info!("shutdown requested while standing by");
            return Ok(Outcome { stats: Stats::default(), committed: BTreeMap::new() });
        }
        () = leadership.acquired() => {}
    }
    let took_over = Instant::now();
    let latency = Arc::clone(&metrics.latency);
    let producer = Arc::new(
        KafkaProducer::new(
            &config.kafka.producer_config(),
            Some(Box::new(move |d| latency.observe(d))),
        )
        .map_err(Error::Sink)?
        .with_max_in_flight(e.max_in_flight),
    );
    let tracker = Arc::clone(producer.tracker());
    let alerts = KafkaSink::new(Arc::clone(&producer), &config.kafka.alert_topic, true);
    let dead = KafkaSink::new(Arc::clone(&producer), &config.kafka.dlq_topic, false);
    let mut pipeline = Pipeline::new(
        PipelineConfig {
            out_of_orderness_ms: e.out_of_orderness_ms,
            idle_timeout_ms: Some(i64::try_from(e.idle_timeout_ms).unwrap_or(i64::MAX)),
            max_watermark_drift_ms: e
                .watermark_alignment
                .then(|| i64::try_from(e.max_watermark_drift_ms).unwrap_or(i64::MAX)),
            alert_format: AlertFormat::Json,
            max_future_ms: e.max_future_ms,
        },
        rules,
        pseudonymizer,
        Box::new(alerts),
        Box::new(dead),
    );
    if let Some(updates) = rule_updates {
        pipeline.watch_rules(updates);
    }
    if let Some(grid) = grid {
        pipeline.set_grid(grid);
    }
    let topics = config
        .kafka
        .feed_topics(catalog)
        .map_err(|problems| Error::Config { problems })?;
    let feeds = topics.iter().map(|(f, _)| f.clone()).collect();
    let start = match store.latest().await? {
        Some(checkpoint) => {
            let positions = checkpoint.positions.clone();
            pipeline.restore(checkpoint)?;
            positions
        }
        None => {
            info!(
                "no checkpoint yet: starting from the group's committed offsets (or the earliest)"
            );
            BTreeMap::new()
        }
    };
    let mut source = KafkaSource::new(&config.kafka, &topics, e.batch_size, stop_at_end, &start)
        .map_err(Error::Source)?;
    info!(
        ms = took_over.elapsed().as_millis() as u64,
        "active: restored and reading"
    );
    let mut observer = KafkaObserver { tracker, feeds };
    let outcome = pipeline
        .run(
            &mut source,
            async {
                tokio::select! {
                    () = &mut shutdown => {
                        info!("shutdown requested: no more consuming; delivering and checkpointing");
                        Stopped::Gracefully
                    }
                    () = leadership.lost() => Stopped::Fenced,
                }
            },
            RunOptions {
                finish_on_stop: false,
                tick: Duration::from_millis(e.tick_ms),
                checkpoint: Some(Checkpointing {
                    store,
                    interval: Duration::from_millis(config.checkpoint.interval_ms),
                }),
                observer: Some(&mut observer),
            },
        )
        .await?;
    if !leadership.is_active() {
        return Err(Error::Fenced);
    }
    if outcome.ended {
        info!("every partition read to its end");
    }
    info!(epoch = outcome.epoch, committed = ?outcome.committed, "stopped");
    Ok(Outcome {
        stats: pipeline.stats().clone(),
        committed: outcome.committed,
    })
}

/// Publishes the service's metrics from what the loop shows it.
struct KafkaObserver {
    tracker: Arc<DeliveryTracker>,
    /// The tables read.
    feeds: Vec<Feed>,
}

impl Observer for KafkaObserver {
    fn batch_read(&mut self, raw: &RawBatch) {
        self.tracker.set_ingested(Instant::now());
        metrics::histogram!(names::BATCH_RECORDS).record(raw.records.len() as f64);
    }

    fn tick(&mut self, pipeline: &Pipeline, source: &dyn Source) {
        publish_counts(pipeline.stats());
        for (rule, rows) in pipeline.state_rows() {
            metrics::gauge!(names::STATE_ROWS, "rule" => rule).set(rows as f64);
        }
        for p in source.partitions() {
            if let Some(lag) = p.lag() {
                metrics::gauge!(names::CONSUMER_LAG, "topic" => p.id.0.to_string(), "partition" => p.id.1.to_string())
                    .set(lag as f64);
            }
        }
        let wall_ms = chrono::Utc::now().timestamp_millis();
        for feed in &self.feeds {
            if let Some(wm) = pipeline.feed_watermark(feed) {
                metrics::gauge!(names::WATERMARK_DELAY, "feed" => feed.name().to_string())
                    .set((wall_ms - wm) as f64 / 1000.0);
            }
        }
        let delivery = self.tracker.state();
        metrics::gauge!(names::IN_FLIGHT).set(delivery.in_flight() as f64);
        metrics::counter!(names::BACKPRESSURE_PAUSES).absolute(delivery.pauses);
    }
}

fn publish_counts(stats: &Stats) {
    for (feed, n) in &stats.events {
        metrics::counter!(names::EVENTS_IN, "feed" => feed.clone()).absolute(*n);
    }
    for (feed, n) in &stats.malformed {
        metrics::counter!(names::MALFORMED, "feed" => feed.clone()).absolute(*n);
    }
    for ((feed, source), n) in &stats.future {
        metrics::counter!(names::FUTURE, "feed" => feed.clone(), "source" => source.clone())
            .absolute(*n);
    }
    for (rule, n) in &stats.late {
        metrics::counter!(names::LATE, "rule" => rule.clone()).absolute(*n);
    }
    for (rule, n) in &stats.alerts {
        metrics::counter!(names::ALERTS, "rule" => rule.clone()).absolute(*n);
    }
    for (rule, n) in &stats.rule_failures {
        metrics::counter!(names::RULE_FAILURES, "rule" => rule.clone()).absolute(*n);
    }
    metrics::gauge!(names::RULES_STOPPED).set(stats.stopped.len() as f64);
}

/// Publishes `events` simulated events to the feed topics of `kafka`, paced at `rate` events
/// per wall second when given, and waits until the broker acknowledged all of them.
///
/// # Errors
/// When the producer cannot be created or a delivery fails.
pub async fn publish_simulation(
    kafka: &KafkaConfig,
    city: CityConfig,
    rate: Option<f64>,
    events: u64,
    shutdown: impl Future<Output = ()>,
) -> Result<FeedCounts> {
    let producer =
        Arc::new(KafkaProducer::new(&kafka.producer_config(), None).map_err(Error::Sink)?);
    // The simulator writes the city's feeds: their topics as `kafka.topics` or the city
    // catalog declares them.
    let topics = kafka
        .feed_topics(&Catalog::city())
        .map_err(|problems| Error::Config { problems })?;
    let mut sinks: BTreeMap<Feed, KafkaSink> = topics
        .into_iter()
        .map(|(f, t)| (f, KafkaSink::new(Arc::clone(&producer), t, false)))
        .collect();
    let mut source = SimulatorSource::new(city, rate, Some(events), 1024);
    let mut counts = FeedCounts::default();
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            biased;
            () = &mut shutdown => break,
            next = source.next_batch() => next.map_err(Error::Source)?,
        };
        let Some(batch) = next else { break };
        let Some(sink) = sinks.get_mut(&batch.feed) else {
            warn!(feed = %batch.feed, "no topic configured for this feed; its events are skipped");
            continue;
        };
        let records: Vec<SinkRecord> = batch
            .records
            .iter()
            .map(|r| SinkRecord::new(String::from_utf8_lossy(&r.payload)))
            .collect();
        let n = records.len() as u64;
        counts.add_n(&batch.feed, n);
        sink.write(&records).await.map_err(Error::Sink)?;
    }
    producer.wait_all_delivered().await.map_err(Error::Sink)?;
    Ok(counts)
}
