//! `citybrain run --brokers`: the long-running Kafka service, and `simulate --brokers`.
//!
//! ```text
//!  KafkaSource ──RawBatch──▶ Pipeline::process_tracked ──alerts──▶ KafkaSink (citybrain.alerts)
//!     ▲    │ (topic, partition, last offset,      │   dead letters ─▶ KafkaSink (citybrain.dlq)
//!     │    │  max event time) per batch           │                        │ DeliveryTracker
//!     │    └────────────▶ CommitTracker ◀─────────┴─ oldest_needed_ts ◀────┘ produced/confirmed
//!     └──── commit(next offsets of the done prefix), every commit interval and at shutdown
//! ```
//!
//! At-least-once: an offset is committed only when every record before it has no row left in
//! any open window and every alert or dead letter it caused is acknowledged by the broker.
//! `docs/delivery.md` states the guarantee and its limits.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use citybrain_connectors::kafka::{
    CommitTracker, KafkaConfig, KafkaProducer, KafkaSink, KafkaSource, PartitionWatermarks,
    TopicPartition,
};
use citybrain_connectors::{
    CityConfig, Feed, FeedCounts, Origin, Pseudonymizer, SimulatorSource, Sink, SinkRecord, Source,
};
use citybrain_rules::CompiledRule;
use tracing::{info, warn};

use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, names};
use crate::pipeline::{AlertFormat, Pipeline, PipelineConfig, Stats};

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
pub async fn run(
    config: ServiceConfig,
    rules: Vec<CompiledRule>,
    rule_updates: Option<tokio::sync::mpsc::Receiver<Vec<CompiledRule>>>,
    pseudonymizer: Arc<Pseudonymizer>,
    metrics: Metrics,
    stop_at_end: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<Outcome> {
    let e = &config.engine;
    let latency = Arc::clone(&metrics.latency);
    let producer = Arc::new(
        KafkaProducer::new(
            &config.kafka.producer_config(),
            Some(Box::new(move |d| latency.observe(d))),
        )
        .map_err(Error::Sink)?,
    );
    let tracker = Arc::clone(producer.tracker());
    let alerts = KafkaSink::new(Arc::clone(&producer), &config.kafka.alert_topic, true);
    let dead = KafkaSink::new(Arc::clone(&producer), &config.kafka.dlq_topic, false);
    let mut pipeline = Pipeline::new(
        PipelineConfig {
            out_of_orderness_ms: e.out_of_orderness_ms,
            idle_timeout_ms: Some(i64::try_from(e.idle_timeout_ms).unwrap_or(i64::MAX)),
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
    for feed in Feed::ALL {
        // Until the source reports a feed read to the end, its silence is not idleness.
        pipeline.set_feed_may_idle(feed, false);
    }
    let mut source =
        KafkaSource::new(&config.kafka, e.batch_size, stop_at_end).map_err(Error::Source)?;
    let mut state = Progress {
        commits: CommitTracker::default(),
        watermarks: PartitionWatermarks::new(
            e.out_of_orderness_ms,
            Duration::from_millis(e.idle_timeout_ms),
        ),
        ready: BTreeMap::new(),
        committed: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(e.commit_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let ended = loop {
        let next = tokio::select! {
            biased;
            () = &mut shutdown => {
                info!("shutdown requested: no more consuming; delivering and committing");
                break false;
            }
            _ = tick.tick() => {
                state.advance(&pipeline, &source, &tracker.state())?;
                state.commit(&source, false)?;
                publish_gauges(&source, &state, &tracker.state());
                publish_state_rows(&pipeline);
                allow_idle_when_caught_up(&mut pipeline, &source);
                continue;
            }
            next = source.next_batch() => next.map_err(Error::Source)?,
        };
        let Some(raw) = next else {
            info!("every assigned partition read to its end");
            break true;
        };
        for tp in source.take_revoked() {
            state.commits.revoke(&tp);
            if let Some(feed) = source.feed_of(&tp.0) {
                state.watermarks.remove(feed, tp.1);
            }
        }
        let now = Instant::now();
        tracker.set_ingested(now);
        let feed = raw.feed;
        metrics::histogram!(names::BATCH_RECORDS).record(raw.records.len() as f64);
        let origins: Vec<(Arc<str>, i32, i64)> = raw
            .records
            .iter()
            .filter_map(|r| match &r.origin {
                Origin::Kafka {
                    topic,
                    partition,
                    offset,
                    ..
                } => Some((Arc::clone(topic), *partition, *offset)),
                _ => None,
            })
            .collect();
        let ts = pipeline.process_tracked(raw).await?;
        let mut chunks: BTreeMap<TopicPartition, (i64, Option<i64>)> = BTreeMap::new();
        for ((topic, partition, offset), t) in origins.into_iter().zip(ts) {
            let c = chunks.entry((topic, partition)).or_insert((offset, None));
            c.0 = c.0.max(offset);
            if let Some(t) = t {
                c.1 = Some(c.1.map_or(t, |m: i64| m.max(t)));
                state.watermarks.observe(feed, partition, t, now);
            }
        }
        for (tp, (last, max_ts)) in chunks {
            state.commits.processed(tp, last, max_ts);
        }
        publish_counts(pipeline.stats());
        pipeline.apply_rule_updates();
        let delivery = tracker.state();
        state.advance(&pipeline, &source, &delivery)?;
        if delivery.in_flight() > e.max_in_flight {
            // Backpressure: stop consuming until the broker has caught up with half of it.
            metrics::counter!(names::BACKPRESSURE_PAUSES).increment(1);
            tracing::debug!(in_flight = delivery.in_flight(), "pausing consumption");
            tracker
                .wait_in_flight_at_most(e.max_in_flight / 2)
                .await
                .map_err(Error::Sink)?;
        }
    };
    if ended {
        pipeline.finish().await?;
    } else {
        pipeline.flush().await?;
    }
    state.advance(&pipeline, &source, &tracker.state())?;
    state.commit(&source, true)?;
    publish_counts(pipeline.stats());
    if state.commits.pending() > 0 {
        info!(
            chunks = state.commits.pending(),
            "input still held by open windows stays uncommitted; it is read again on restart"
        );
    }
    info!(committed = ?state.committed, "stopped");
    Ok(Outcome {
        stats: pipeline.stats().clone(),
        committed: state.committed,
    })
}

/// Commit bookkeeping of the service loop.
struct Progress {
    commits: CommitTracker,
    watermarks: PartitionWatermarks,
    /// Offsets ready to commit, not yet sent.
    ready: BTreeMap<TopicPartition, i64>,
    committed: BTreeMap<TopicPartition, i64>,
}

impl Progress {
    fn advance(
        &mut self,
        pipeline: &Pipeline,
        source: &KafkaSource,
        delivery: &citybrain_connectors::kafka::DeliveryState,
    ) -> Result<()> {
        if let Some(detail) = &delivery.failed {
            return Err(Error::Sink(citybrain_connectors::Error::Delivery {
                detail: detail.clone(),
            }));
        }
        let done = self.commits.advance(
            |(topic, _)| {
                source
                    .feed_of(topic)
                    .and_then(|feed| pipeline.oldest_needed_ts_of(feed))
            },
            delivery.produced,
            delivery.confirmed,
        );
        self.ready.extend(done);
        Ok(())
    }

    fn commit(&mut self, source: &KafkaSource, sync: bool) -> Result<()> {
        if self.ready.is_empty() {
            return Ok(());
        }
        let offsets: Vec<(TopicPartition, i64)> =
            std::mem::take(&mut self.ready).into_iter().collect();
        source.commit(&offsets, sync).map_err(Error::Commit)?;
        tracing::debug!(?offsets, sync, "committed");
        self.committed.extend(offsets);
        Ok(())
    }
}

fn publish_counts(stats: &Stats) {
    for (feed, n) in &stats.events {
        metrics::counter!(names::EVENTS_IN, "feed" => *feed).absolute(*n);
    }
    for (feed, n) in &stats.malformed {
        metrics::counter!(names::MALFORMED, "feed" => *feed).absolute(*n);
    }
    for ((feed, source), n) in &stats.future {
        metrics::counter!(names::FUTURE, "feed" => *feed, "source" => source.clone()).absolute(*n);
    }
    for (rule, n) in &stats.late {
        metrics::counter!(names::LATE, "rule" => rule.clone()).absolute(*n);
    }
    for (rule, n) in &stats.alerts {
        metrics::counter!(names::ALERTS, "rule" => rule.clone()).absolute(*n);
    }
}

/// A feed may count as idle (and stop holding back rules reading several feeds) only while
/// every partition of its topic is read to the end: a feed whose backlog is still waiting
/// behind another's (after a restart, say) is not quiet, just not read yet.
fn allow_idle_when_caught_up(pipeline: &mut Pipeline, source: &KafkaSource) {
    let mut caught_up: BTreeMap<Feed, bool> = BTreeMap::new();
    for ((topic, _), lag) in source.lag() {
        if let Some(feed) = source.feed_of(&topic) {
            *caught_up.entry(feed).or_insert(true) &= lag <= 0;
        }
    }
    for feed in Feed::ALL {
        pipeline.set_feed_may_idle(feed, caught_up.get(&feed).copied().unwrap_or(false));
    }
}

fn publish_state_rows(pipeline: &Pipeline) {
    for (rule, rows) in pipeline.state_rows() {
        metrics::gauge!(names::STATE_ROWS, "rule" => rule).set(rows as f64);
    }
}

fn publish_gauges(
    source: &KafkaSource,
    state: &Progress,
    delivery: &citybrain_connectors::kafka::DeliveryState,
) {
    for ((topic, partition), lag) in source.lag() {
        metrics::gauge!(names::CONSUMER_LAG, "topic" => topic, "partition" => partition.to_string())
            .set(lag as f64);
    }
    let now = Instant::now();
    let wall_ms = chrono::Utc::now().timestamp_millis();
    for feed in Feed::ALL {
        if let Some(wm) = state.watermarks.feed_watermark(feed, now) {
            metrics::gauge!(names::WATERMARK_DELAY, "feed" => feed.name())
                .set((wall_ms - wm) as f64 / 1000.0);
        }
    }
    metrics::gauge!(names::IN_FLIGHT).set(delivery.in_flight() as f64);
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
    let mut sinks: BTreeMap<Feed, KafkaSink> = kafka
        .feed_topics()
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
        match batch.feed {
            Feed::Traffic => counts.traffic += n,
            Feed::Police => counts.police += n,
            Feed::Emergency => counts.emergency += n,
            Feed::Market => counts.market += n,
        }
        sink.write(&records).await.map_err(Error::Sink)?;
    }
    producer.wait_all_delivered().await.map_err(Error::Sink)?;
    Ok(counts)
}
