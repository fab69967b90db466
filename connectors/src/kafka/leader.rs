//! Which instance of a group is active: the holder of a lease kept on the single partition of
//! the control topic. Every instance reads that partition; its records say who holds the lease,
//! and since all read the same records in the same order, all agree. There is no coordinator
//! to trust beyond the partition's order.
//!
//! ```text
//!  control topic, partition 0 (records keyed by the group id):
//!    … claim A · mark A · mark A · mark A ·  (A dies)  · claim B · claim C · mark B …
//!                                          └─ no mark for a lease ─┘ B's claim came first: B
//!  claim X    X takes the lease if nobody holds it, or the holder's last record is a lease old
//!  mark X     the holder renews it (every third of a lease); anyone else's mark is ignored
//!  release X  the holder gives it up (a graceful stop): a standby claims at once
//! ```
//!
//! A lease lasts `session.timeout.ms` of the consumer properties (librdkafka's 45 s unless
//! set), measured by the records' timestamps. An instance starting reads the partition's last
//! records to learn the holder, then claims when there is none or its lease ran out; so a
//! restart after a crash waits out the dead holder's lease, and one after a graceful stop
//! does not wait. An active instance that reads another's valid claim (it stalled for a whole
//! lease) is no longer active: [`Leadership::lost`] resolves and the service stops.
//!
//! Kafka's consumer groups would decide the same, but the Kafka-protocol broker the project
//! tests on (tansu 0.6) keeps a dead group leader as the leader of the next generation, after
//! which no member of the group is ever assigned anything; the lease needs nothing from the
//! broker but an ordered partition.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::config::KafkaConfig;
use super::log::{ClientLog, LoggedContext};
use crate::{Error, Result};

/// How long the control thread waits for a record before it looks at the clock.
const POLL: Duration = Duration::from_millis(100);

/// librdkafka's `session.timeout.ms` when the configuration does not set it.
const DEFAULT_LEASE: Duration = Duration::from_secs(45);

/// Records read back at start to learn the holder (the holder's marks are most of them).
const HISTORY: i64 = 256;

/// How long the control partition's offsets may take to read at start.
const OFFSETS_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a graceful stop waits for its release to be written.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a control record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Claim,
    Mark,
    Release,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Self::Claim => "claim",
            Self::Mark => "mark",
            Self::Release => "release",
        }
    }

    /// `"<kind> <instance>"`; anything else is not a control record of ours.
    fn parse(payload: &[u8]) -> Option<(Self, &str)> {
        let text = std::str::from_utf8(payload).ok()?;
        let (word, who) = text.split_once(' ')?;
        let kind = match word {
            "claim" => Self::Claim,
            "mark" => Self::Mark,
            "release" => Self::Release,
            _ => return None,
        };
        Some((kind, who))
    }
}

/// Who holds the lease, from the control records read so far (see the module docs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Lease {
    holder: Option<String>,
    /// Timestamp (ms) of the holder's last claim or mark.
    renewed_ms: i64,
}

impl Lease {
    /// Applies one record, written by `who` at `at_ms`.
    fn apply(&mut self, kind: Kind, who: &str, at_ms: i64, lease_ms: i64) {
        let holds = self.holder.as_deref() == Some(who);
        match kind {
            Kind::Mark if holds => self.renewed_ms = at_ms,
            Kind::Claim if holds || !self.held_at(at_ms, lease_ms) => {
                self.holder = Some(who.to_string());
                self.renewed_ms = at_ms;
            }
            Kind::Release if holds => self.holder = None,
            _ => {}
        }
    }

    /// Whether someone holds the lease at `now_ms`.
    fn held_at(&self, now_ms: i64, lease_ms: i64) -> bool {
        self.holder.is_some() && now_ms - self.renewed_ms < lease_ms
    }
}

/// The lease on the control partition; see the module docs.
pub struct Leadership {
    active: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("active", &*self.active.borrow())
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// Starts following the lease of `config`'s group on [`KafkaConfig::control_topic`]
    /// (created with one partition when it does not exist), claiming it when free.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration, the control partition cannot be read, or
    /// the control topic exists with more than one partition.
    pub fn join(config: &KafkaConfig) -> Result<Self> {
        let topic = config.control_topic.clone();
        ensure_control_topic(config)?;
        let mut client: ClientConfig = config.consumer_config();
        let lease = client
            .get("session.timeout.ms")
            .and_then(|ms| ms.parse().ok())
            .map_or(DEFAULT_LEASE, Duration::from_millis);
        // Read by assignment: the group id is librdkafka's requirement only; the consumer never
        // joins it, so nothing of the broker's group protocol is used.
        client.set("group.id", format!("{}.control", config.group_id));
        client.set("enable.auto.commit", "false");
        client.set("statistics.interval.ms", "0");
        let logged = || LoggedContext(ClientLog::new(config.brokers.clone()));
        let consumer: BaseConsumer<LoggedContext> =
            client
                .create_with_context(logged())
                .map_err(|source| Error::Kafka {
                    action: "creating the control consumer".into(),
                    source,
                })?;
        let (low, high) = consumer
            .fetch_watermarks(&topic, 0, OFFSETS_TIMEOUT)
            .map_err(|source| Error::Kafka {
                action: format!("reading the offsets of the control topic {topic}"),
                source,
            })?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Offset(low.max(high - HISTORY)))
            .and_then(|()| consumer.assign(&assignment))
            .map_err(|source| Error::Kafka {
                action: format!("reading the control topic {topic}"),
                source,
            })?;
        let producer: BaseProducer<LoggedContext> = config
            .producer_config()
            .create_with_context(logged())
            .map_err(|source| Error::Kafka {
                action: "creating the control producer".into(),
                source,
            })?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let (tx, rx) = watch::channel(false);
        let control = Control {
            consumer,
            producer,
            active: tx,
            topic: topic.clone(),
            group: config.group_id.clone(),
            me: format!("pid{}-{nanos:08x}", std::process::id()),
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
            state: Lease::default(),
            start_end: high,
            read_to: low.max(high - HISTORY),
            next_mark: Instant::now(),
            last_claim: None,
        };
        let me = control.me.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("citybrain-leader".into())
            .spawn(move || control.run(&stopping))
            .map_err(|e| Error::Kafka {
                action: format!("starting the control thread: {e}"),
                source: rdkafka::error::KafkaError::Canceled,
            })?;
        tracing::info!(group = %config.group_id, topic = %topic, instance = %me, lease_ms = lease.as_millis(), "following the control lease");
        Ok(Self {
            active: rx,
            stop,
            thread: Some(thread),
        })
    }

    /// Whether this instance is the active one now.
    pub fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    /// Resolves once this instance is the active one.
    ///
    /// # Cancellation
    /// Cancel-safe.
    pub async fn acquired(&mut self) {
        let _ = self.active.wait_for(|a| *a).await;
    }

    /// Resolves once this instance, active until now, is no longer.
    ///
    /// # Cancellation
    /// Cancel-safe.
    pub async fn lost(&mut self) {
        let _ = self.active.wait_for(|a| !*a).await;
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The control thread: reads the control partition, keeps [`Lease`], claims, marks and
/// releases.
struct Control {
    consumer: BaseConsumer<LoggedContext>,
    producer: BaseProducer<LoggedContext>,
    active: watch::Sender<bool>,
    topic: String,
    /// The records' key: groups may share a control topic.
    group: String,
    /// This instance, in the records.
    me: String,
    lease_ms: i64,
    state: Lease,
    /// The partition's end when this instance started: the lease is known once read to it.
    start_end: i64,
    /// The next offset to read.
    read_to: i64,
    next_mark: Instant,
    last_claim: Option<Instant>,
}

impl Control {
    fn run(mut self, stopping: &AtomicBool) {
        while !stopping.load(Ordering::Relaxed) {
            match self.consumer.poll(POLL) {
                Some(Ok(record)) => {
                    self.read_to = record.offset() + 1;
                    if record.key() == Some(self.group.as_bytes())
                        && let Some((kind, who)) = record.payload().and_then(Kind::parse)
                    {
                        let at = record.timestamp().to_millis().unwrap_or_else(now_ms);
                        self.state.apply(kind, who, at, self.lease_ms);
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(topic = %self.topic, error = %e, "reading the control topic");
                }
                None => {}
            }
            self.producer.poll(Duration::ZERO);
            if self.read_to < self.start_end {
                continue;
            }
            let mine = self.state.holder.as_deref() == Some(self.me.as_str());
            self.show(mine);
            if mine {
                if Instant::now() >= self.next_mark {
                    self.write(Kind::Mark);
                    self.next_mark = Instant::now() + self.interval();
                }
            } else if !self.state.held_at(now_ms(), self.lease_ms)
                && self
                    .last_claim
                    .is_none_or(|t| t.elapsed() >= self.interval())
            {
                self.write(Kind::Claim);
                self.last_claim = Some(Instant::now());
            }
        }
        if *self.active.borrow() {
            self.write(Kind::Release);
            if let Err(e) = self.producer.flush(RELEASE_TIMEOUT) {
                tracing::warn!(topic = %self.topic, error = %e, "releasing the control lease failed; a standby takes over when it runs out");
            }
        }
    }

    /// A third of a lease: how often the holder marks and a standby repeats an unanswered claim.
    fn interval(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.lease_ms / 3).unwrap_or(0))
    }

    /// Publishes whether this instance is active, saying so when it changes.
    fn show(&self, mine: bool) {
        let changed = self
            .active
            .send_if_modified(|a| std::mem::replace(a, mine) != mine);
        match (changed, mine) {
            (true, true) => {
                tracing::info!(topic = %self.topic, instance = %self.me, "control lease taken: this instance is the active one");
            }
            (true, false) => {
                tracing::warn!(topic = %self.topic, holder = ?self.state.holder, "control lease lost: this instance is no longer the active one");
            }
            _ => {}
        }
    }

    fn write(&self, kind: Kind) {
        let payload = format!("{} {}", kind.word(), self.me);
        let record = BaseRecord::<str, str>::to(&self.topic)
            .key(&self.group)
            .payload(&payload)
            .partition(0);
        if let Err((e, _)) = self.producer.send(record) {
            tracing::debug!(topic = %self.topic, error = %e, "writing to the control topic");
        }
    }
}

/// Wall-clock milliseconds, the unit of record timestamps.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How long the control-topic check waits for the topic's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the control topic (one partition) when missing; refuses one with several.
fn ensure_control_topic(config: &KafkaConfig) -> Result<()> {
    let topic = &config.control_topic;
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.brokers);
    for (k, v) in &config.properties {
        client.set(k, v);
    }
    // Helper clients log like the others: a broker that cannot be reached is reported at once
    // (once), not after the metadata request's timeout.
    let logged = || LoggedContext(ClientLog::new(config.brokers.clone()));
    let probe: BaseConsumer<LoggedContext> =
        client
            .create_with_context(logged())
            .map_err(|source| Error::Kafka {
                action: "creating a metadata client".into(),
                source,
            })?;
    // The client's error callback (an unreachable broker) only runs when it is polled: poll it
    // while the request waits, so the outage is reported at once, not after the timeout.
    let metadata = std::thread::scope(|scope| {
        let fetch = scope.spawn(|| probe.fetch_metadata(Some(topic), METADATA_TIMEOUT));
        while !fetch.is_finished() {
            let _ = probe.poll(Duration::from_millis(100));
        }
        fetch.join().expect("the metadata request does not panic")
    })
    .map_err(|source| Error::Kafka {
        action: format!("reading the control topic {topic}"),
        source,
    })?;
    let existing = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len());
    match existing {
        Some(1) => return Ok(()),
        Some(n) if n > 1 => {
            return Err(Error::ControlTopic {
                topic: topic.clone(),
                detail: format!("it has {n} partitions; it must have exactly one"),
            });
        }
        _ => {}
    }
    let admin: rdkafka::admin::AdminClient<_> =
        client
            .create_with_context(logged())
            .map_err(|source| Error::Kafka {
                action: "creating an admin client".into(),
                source,
            })?;
    let new = rdkafka::admin::NewTopic::new(topic, 1, rdkafka::admin::TopicReplication::Fixed(1));
    let results = futures::executor::block_on(
        admin.create_topics([&new], &rdkafka::admin::AdminOptions::new()),
    )
    .map_err(|source| Error::Kafka {
        action: format!("creating the control topic {topic}"),
        source,
    })?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic = %topic, "created the control topic (1 partition)"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(Error::ControlTopic {
                    topic: topic.clone(),
                    detail: format!("cannot create it ({code}); create it with one partition"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: i64 = 1_000;

    fn lease(records: &[(Kind, &str, i64)]) -> Lease {
        let mut l = Lease::default();
        for (kind, who, at) in records {
            l.apply(*kind, who, *at, LEASE);
        }
        l
    }

    #[test]
    fn the_first_claim_wins_and_a_later_one_waits_for_the_lease_to_run_out() {
        let l = lease(&[(Kind::Claim, "a", 0), (Kind::Claim, "b", 10)]);
        assert_eq!(l.holder.as_deref(), Some("a"));
        let l = lease(&[
            (Kind::Claim, "a", 0),
            (Kind::Mark, "a", 900),
            (Kind::Claim, "b", 1_800),
        ]);
        assert_eq!(l.holder.as_deref(), Some("a"), "a renewed at 900");
        let l = lease(&[
            (Kind::Claim, "a", 0),
            (Kind::Mark, "a", 900),
            (Kind::Claim, "b", 1_900),
        ]);
        assert_eq!(l.holder.as_deref(), Some("b"));
    }

    #[test]
    fn only_the_holder_renews_or_releases() {
        let l = lease(&[
            (Kind::Claim, "a", 0),
            (Kind::Mark, "b", 500),
            (Kind::Claim, "c", 1_000),
        ]);
        assert_eq!(
            l.holder.as_deref(),
            Some("c"),
            "b's mark did not renew a's lease"
        );
        let l = lease(&[
            (Kind::Claim, "a", 0),
            (Kind::Release, "b", 1),
            (Kind::Claim, "c", 2),
        ]);
        assert_eq!(l.holder.as_deref(), Some("a"));
        let l = lease(&[
            (Kind::Claim, "a", 0),
            (Kind::Release, "a", 1),
            (Kind::Claim, "c", 2),
        ]);
        assert_eq!(
            l.holder.as_deref(),
            Some("c"),
            "a release frees the lease at once"
        );
    }

    #[test]
    fn a_stalled_holder_coming_back_finds_the_lease_taken() {
        let l = lease(&[
            (Kind::Claim, "a", 0),
            (Kind::Claim, "b", 1_500),
            (Kind::Mark, "a", 1_600),
            (Kind::Claim, "a", 1_700),
        ]);
        assert_eq!(l.holder.as_deref(), Some("b"));
        assert!(l.held_at(2_000, LEASE) && !l.held_at(2_500, LEASE));
    }

    #[test]
    fn control_records_round_trip_and_others_are_ignored() {
        for kind in [Kind::Claim, Kind::Mark, Kind::Release] {
            let text = format!("{} pid1-ab", kind.word());
            assert_eq!(Kind::parse(text.as_bytes()), Some((kind, "pid1-ab")));
        }
        assert_eq!(Kind::parse(b""), None);
        assert_eq!(Kind::parse(b"hello world"), None);
        assert_eq!(Kind::parse(&[0xff, b' ', b'a']), None);
    }
}
