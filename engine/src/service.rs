//! `citybrain run --brokers`: the long-running Kafka service, and `simulate --brokers`.
//!
//! ```text
//!  KafkaSource ──RawBatch──▶ Pipeline::run (the loop of every mode) ──alerts──▶ KafkaSink (citybrain.alerts)
//!     ▲                         │                                  dead letters ─▶ KafkaSink (citybrain.dlq)
//!     │                         │ every commit interval:                   │ one idempotent producer,
//!     └── Source::commit ◀──────┘ input no rule holds, outputs acked ◀─────┘ Sink::barrier
//! ```
//!
//! The service builds the Kafka source and sinks, runs [`Pipeline::run`] with them and
//! observes it for the metrics ([`KafkaObserver`]). At-least-once: an offset is committed only
//! when every record before it has no row left in any open window and every alert or dead
//! letter it caused is acknowledged by the broker. `docs/delivery.md` states the guarantee and
//! its limits.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use citybrain_connectors::kafka::{
    DeliveryTracker, KafkaConfig, KafkaProducer, KafkaSink, KafkaSource, TopicPartition,
};
use citybrain_connectors::{
    Catalog, CityConfig, Feed, FeedCounts, Pseudonymizer, RawBatch, SimulatorSource, Sink,
    SinkRecord, Source,
};
use citybrain_rules::CompiledRule;
use tracing::{info, warn};

use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, names};
use crate::pipeline::{AlertFormat, Observer, Pipeline, PipelineConfig, RunOptions, Stats};

/// How the service ended.
#[derive(Debug)]
pub struct Outcome {
    /// Counts of the run.
    pub stats: Stats,
    /// Offsets committed last, per partition.
    pub committed: BTreeMap<TopicPartition, i64>,
}

/// Runs the Kafka service until `shutdown` resolves (SIGINT/SIGTERM) or, with `stop_at_end`,
/// until every assigned partition has been read to its end. On shutdown it stops consuming,
/// waits for every produced record to be acknowledged, commits durable progress and returns;
/// open windows are not emitted (they are rebuilt from uncommitted input on restart). At the
/// end of input (`stop_at_end`) every open window is emitted first, as `replay` does.
///
/// # Errors
/// When Kafka rejects the configuration, a delivery fails for good, a commit at shutdown
/// fails, or a rule fails to execute. Nothing is committed past unacknowledged output.
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
    let mut source = KafkaSource::new(&config.kafka, &topics, e.batch_size, stop_at_end)
        .map_err(Error::Source)?;
    let mut observer = KafkaObserver { tracker, feeds };
    let outcome = pipeline
        .run(
            &mut source,
            async {
                shutdown.await;
                info!("shutdown requested: no more consuming; delivering and committing");
            },
            RunOptions {
                finish_on_stop: false,
                tick: Duration::from_millis(e.commit_interval_ms),
                observer: Some(&mut observer),
            },
        )
        .await?;
    if outcome.ended {
        info!("every assigned partition read to its end");
    }
    info!(committed = ?outcome.committed, "stopped");
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
