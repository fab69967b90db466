//! Producing to Kafka with every delivery tracked.
//!
//! One [`KafkaProducer`] (idempotent, `acks=all`) serves any number of [`KafkaSink`]s (alerts,
//! dead letters, the simulator's feeds). Every record gets a sequence number when it is handed
//! to librdkafka; the [`DeliveryTracker`] counts how many were *produced* and up to which
//! sequence number every record was *confirmed* by the broker, so the engine can commit input
//! offsets only once the outputs they caused are durable.
//!
//! ```text
//!  KafkaSink::write ──seq n──▶ librdkafka queue (bounded) ──▶ broker
//!        ▲ queue full: wait for a delivery                      │ ack / error
//!        └──────────── DeliveryTracker (produced, confirmed) ◀──┘ delivery callback
//! ```

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::watch;

use super::log::ClientLog;
use crate::sink::{Sink, SinkRecord};
use crate::{Error, Result};

/// Counts of the producer's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryState {
    /// Records handed to the producer so far (the next sequence number).
    pub produced: u64,
    /// Every record with a sequence number below this has been acknowledged by the broker.
    pub confirmed: u64,
    acked_ahead: BTreeSet<u64>,
    /// The first delivery that failed for good (librdkafka gave up retrying), if any.
    pub failed: Option<String>,
    /// How often writing paused because too many records were in flight (backpressure).
    pub pauses: u64,
}

impl DeliveryState {
    /// Records produced but not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.produced - self.confirmed
    }
}

/// Called with the time from ingest to broker acknowledgement of each alert.
pub type LatencyObserver = Box<dyn Fn(Duration) + Send + Sync>;

/// Shared between the producer's delivery callback and whoever waits for deliveries.
pub struct DeliveryTracker {
    state: watch::Sender<DeliveryState>,
    ingested: Mutex<Option<Instant>>,
    latency: Option<LatencyObserver>,
}

impl std::fmt::Debug for DeliveryTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryTracker")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl DeliveryTracker {
    fn new(latency: Option<LatencyObserver>) -> Self {
        Self {
            state: watch::Sender::new(DeliveryState::default()),
            ingested: Mutex::new(None),
            latency,
        }
    }

    /// The counts now.
    pub fn state(&self) -> DeliveryState {
        self.state.borrow().clone()
    }

    /// Records written from now on were caused by input ingested at `at` (for the latency
    /// metric of sinks created with `measure_latency`).
    pub fn set_ingested(&self, at: Instant) {
        *self.ingested.lock().expect("ingest instant lock") = Some(at);
    }

    fn next_seq(&self) -> u64 {
        let mut seq = 0;
        self.state.send_modify(|s| {
            seq = s.produced;
            s.produced += 1;
        });
        seq
    }

    fn delivered(&self, seq: u64, outcome: std::result::Result<(), String>) {
        self.state.send_modify(|s| match outcome {
            Ok(()) => {
                if seq == s.confirmed {
                    s.confirmed += 1;
                    while s.acked_ahead.remove(&s.confirmed) {
                        s.confirmed += 1;
                    }
                } else {
                    s.acked_ahead.insert(seq);
                }
            }
            Err(e) => {
                s.failed.get_or_insert(e);
            }
        });
    }

    /// Waits until every record with a sequence number below `target` is acknowledged (or a
    /// delivery failed).
    ///
    /// # Errors
    /// When a delivery failed for good.
    ///
    /// # Cancellation
    /// Cancel-safe.
    pub async fn wait_confirmed(&self, target: u64) -> Result<()> {
        let mut rx = self.state.subscribe();
        let s = rx
            .wait_for(|s| s.failed.is_some() || s.confirmed >= target)
            .await
            .expect("the tracker owns its sender");
        match &s.failed {
            Some(e) => Err(Error::Delivery { detail: e.clone() }),
            None => Ok(()),
        }
    }

    /// Waits until at most `max` records are in flight (or a delivery failed).
    ///
    /// # Errors
    /// When a delivery failed for good.
    ///
    /// # Cancellation
    /// Cancel-safe.
    pub async fn wait_in_flight_at_most(&self, max: u64) -> Result<()> {
        let mut rx = self.state.subscribe();
        let s = rx
            .wait_for(|s| s.failed.is_some() || s.in_flight() <= max)
            .await
            .expect("the tracker owns its sender");
        match &s.failed {
            Some(e) => Err(Error::Delivery { detail: e.clone() }),
            None => Ok(()),
        }
    }
}

/// What the delivery callback needs to know about a record (opaque to users).
pub struct Pending {
    seq: u64,
    ingested: Option<Instant>,
}

/// librdkafka context: routes delivery reports to the tracker.
pub struct TrackingContext {
    tracker: Arc<DeliveryTracker>,
    log: ClientLog,
}

impl ClientContext for TrackingContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }
}

impl ProducerContext for TrackingContext {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                if let (Some(at), Some(observe)) = (pending.ingested, &self.tracker.latency) {
                    observe(at.elapsed());
                }
                self.tracker.delivered(pending.seq, Ok(()));
            }
            Err((e, msg)) => {
                use rdkafka::Message;
                tracing::error!(topic = msg.topic(), error = %e, "delivery failed for good");
                self.tracker
                    .delivered(pending.seq, Err(format!("to {}: {e}", msg.topic())));
            }
        }
    }
}

/// Records in flight (produced, not yet acknowledged) above which writing waits, when not set
/// with [`KafkaProducer::with_max_in_flight`]: a few seconds of a busy city, bounded memory
/// when the broker slows.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 50_000;

/// An idempotent producer whose deliveries are tracked.
pub struct KafkaProducer {
    producer: ThreadedProducer<TrackingContext>,
    tracker: Arc<DeliveryTracker>,
    max_in_flight: u64,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("tracker", &self.tracker)
            .finish_non_exhaustive()
    }
}

impl KafkaProducer {
    /// Creates the producer (it connects in the background). `latency` observes, for records
    /// of sinks that measure latency, the time from [`DeliveryTracker::set_ingested`] to the
    /// broker's acknowledgement.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration.
    pub fn new(config: &rdkafka::ClientConfig, latency: Option<LatencyObserver>) -> Result<Self> {
        let tracker = Arc::new(DeliveryTracker::new(latency));
        let producer = config
            .create_with_context(TrackingContext {
                tracker: Arc::clone(&tracker),
                log: ClientLog::new(config.get("bootstrap.servers").unwrap_or_default()),
            })
            .map_err(|source| Error::Kafka {
                action: "creating the producer".into(),
                source,
            })?;
        Ok(Self {
            producer,
            tracker,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    /// Writes wait while more than `max` records are in flight, until half of them are
    /// acknowledged (backpressure: a slow broker pauses the engine instead of growing memory).
    #[must_use]
    pub fn with_max_in_flight(mut self, max: u64) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// Backpressure: when more than the maximum is in flight, waits until half of it is
    /// acknowledged, counting the pause.
    async fn wait_for_room(&self) -> Result<()> {
        if self.tracker.state.borrow().in_flight() <= self.max_in_flight {
            return Ok(());
        }
        self.tracker.state.send_modify(|s| s.pauses += 1);
        tracing::debug!(
            max_in_flight = self.max_in_flight,
            "pausing: too much in flight"
        );
        self.tracker
            .wait_in_flight_at_most(self.max_in_flight / 2)
            .await
    }

    /// The delivery counts.
    pub fn tracker(&self) -> &Arc<DeliveryTracker> {
        &self.tracker
    }

    /// Waits until every record produced so far is acknowledged.
    ///
    /// # Errors
    /// When a delivery failed for good.
    ///
    /// # Cancellation
    /// Cancel-safe.
    pub async fn wait_all_delivered(&self) -> Result<()> {
        self.tracker.wait_in_flight_at_most(0).await
    }

    /// Hands one record to librdkafka, waiting while its queue is full (backpressure).
    async fn send(&self, topic: &str, rec: &SinkRecord, measure_latency: bool) -> Result<()> {
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (k, v) in &rec.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let pending = Box::new(Pending {
            seq: self.tracker.next_seq(),
            ingested: if measure_latency {
                *self.tracker.ingested.lock().expect("ingest instant lock")
            } else {
                None
            },
        });
        let mut record = BaseRecord::<str, str, Box<Pending>>::with_opaque_to(topic, pending)
            .payload(rec.payload.as_str())
            .headers(headers);
        if let Some(k) = &rec.key {
            record = record.key(k.as_str());
        }
        let mut rx = self.tracker.state.subscribe();
        loop {
            rx.borrow_and_update();
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    // Wait for a delivery to make room; the timeout only bounds a missed wake.
                    let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
                }
                Err((source, _)) => {
                    return Err(Error::Kafka {
                        action: format!("producing to {topic}"),
                        source,
                    });
                }
            }
        }
    }

    /// Asks librdkafka to send what it has queued now (best effort, bounded by `timeout`).
    pub fn nudge(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}

/// A [`Sink`] writing to one topic through a shared [`KafkaProducer`].
#[derive(Debug)]
pub struct KafkaSink {
    producer: Arc<KafkaProducer>,
    topic: String,
    measure_latency: bool,
}

impl KafkaSink {
    /// A sink producing to `topic`. With `measure_latency`, each record's ingest-to-ack time is
    /// reported to the producer's latency observer (alerts).
    pub fn new(
        producer: Arc<KafkaProducer>,
        topic: impl Into<String>,
        measure_latency: bool,
    ) -> Self {
        Self {
            producer,
            topic: topic.into(),
            measure_latency,
        }
    }
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    /// Hands the records to the producer, then waits while too many are in flight
    /// ([`KafkaProducer::with_max_in_flight`]).
    async fn write(&mut self, records: &[SinkRecord]) -> Result<()> {
        for r in records {
            self.producer
                .send(&self.topic, r, self.measure_latency)
                .await?;
        }
        self.producer.wait_for_room().await
    }

    /// Waits for the broker to acknowledge every record of the shared producer.
    async fn flush(&mut self) -> Result<()> {
        self.producer.wait_all_delivered().await
    }

    /// Resolves once the broker acknowledged every record the shared producer was handed so
    /// far.
    async fn barrier(&mut self) -> Result<crate::sink::Barrier> {
        let tracker = Arc::clone(&self.producer.tracker);
        let target = tracker.state().produced;
        Ok(Box::pin(
            async move { tracker.wait_confirmed(target).await },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmed_is_the_acknowledged_prefix() {
        let t = DeliveryTracker::new(None);
        for _ in 0..4 {
            t.next_seq();
        }
        t.delivered(1, Ok(()));
        t.delivered(3, Ok(()));
        assert_eq!(t.state().confirmed, 0);
        t.delivered(0, Ok(()));
        assert_eq!(t.state().confirmed, 2);
        t.delivered(2, Ok(()));
        let s = t.state();
        assert_eq!((s.produced, s.confirmed, s.in_flight()), (4, 4, 0));
        t.next_seq();
        t.delivered(4, Err("to x: timed out".into()));
        let s = t.state();
        assert_eq!(s.confirmed, 4, "a failed record is never confirmed");
        assert!(s.failed.is_some());
    }
}
