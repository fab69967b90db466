//! The incident desk on Kafka: restoring from the event topic, reading the action topic.
//!
//! ```text
//!  citybrain.incident-events ──read to its end at start──▶ Book::restore (sorted by seq)
//!  citybrain.incident-actions ──ActionReader (own group)──▶ Desk::act ──▶ events
//!                                 └─ commit once the action's events are delivered
//! ```
//!
//! The events topic *is* the incident state (any number of partitions; keys are incident ids,
//! so one incident's events stay in order; restoring sorts by `seq`). The compacted
//! `citybrain.incidents` topic holds each incident's latest state for other systems; it is
//! written, never read back. An action is applied once: its id (given, or
//! `<topic>/<partition>/<offset>`) is recorded in the events it causes, and a re-read action
//! whose id is in the log changes nothing.

use std::time::{Duration, Instant};

use citybrain_connectors::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::incident::{Action, IncidentEvent};

/// How long restoring waits for the broker before giving up.
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(120);

fn kafka(action: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
    let action = action.into();
    move |source| Error::Kafka {
        action,
        source: Box::new(source),
    }
}

/// Every event of the events topic, in `seq` order (all partitions, from the beginning to
/// the end as it is now).
///
/// # Errors
/// [`Error::Kafka`] when the broker cannot be read within [`RESTORE_TIMEOUT`];
/// [`Error::Invalid`] naming the partition and offset of a record that is not an event (the
/// log is the state: the desk does not start on a corrupt one).
pub fn restore_events(config: &KafkaConfig, topic: &str) -> Result<Vec<IncidentEvent>> {
    let started = Instant::now();
    let mut client = config.consumer_config();
    client
        .set("group.id", format!("{}-incident-restore", config.group_id))
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = client
        .create()
        .map_err(kafka("creating the restore consumer"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(kafka(format!("reading the metadata of {topic}")))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut ends = std::collections::BTreeMap::new();
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(30))
            .map_err(kafka(format!("reading the offsets of {topic}/{p}")))?;
        if high > low {
            ends.insert(*p, high);
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(kafka(format!("assigning {topic}/{p}")))?;
        }
    }
    let mut events = Vec::new();
    if ends.is_empty() {
        return Ok(events);
    }
    consumer
        .assign(&tpl)
        .map_err(kafka(format!("assigning {topic}")))?;
    let mut done = std::collections::BTreeMap::new();
    while done.len() < ends.len() {
        if started.elapsed() > RESTORE_TIMEOUT {
            return Err(Error::Kafka {
                action: format!("reading {topic} to its end"),
                source: Box::new(KafkaError::Canceled),
            });
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.map_err(kafka(format!("reading {topic}")))?;
        let payload = m.payload().unwrap_or_default();
        let event: IncidentEvent = serde_json::from_slice(payload).map_err(|e| Error::Invalid {
            problems: vec![format!(
                "{topic}/{}/{}: not an incident event: {e}",
                m.partition(),
                m.offset()
            )],
        })?;
        events.push(event);
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            done.insert(m.partition(), ());
        }
    }
    events.sort_by_key(|e| e.seq);
    tracing::info!(
        topic,
        events = events.len(),
        ms = started.elapsed().as_millis() as u64,
        "incident events read back"
    );
    Ok(events)
}

/// Where an action came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOrigin {
    /// The topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
}

impl ActionOrigin {
    /// `<topic>/<partition>/<offset>`: the id of an action that brings none.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// One record of the actions topic.
#[derive(Debug)]
pub struct ActionRecord {
    /// The action, or why the record is not one.
    pub action: std::result::Result<Action, String>,
    /// The record as received.
    pub raw: String,
    /// Where it came from.
    pub origin: ActionOrigin,
}

/// Reads the actions topic with a consumer group of its own (`<group>-incident-actions`).
pub struct ActionReader {
    consumer: StreamConsumer,
    topic: String,
}

impl std::fmt::Debug for ActionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionReader")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ActionReader {
    /// Subscribes to `topic`.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration or the subscription.
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<Self> {
        let mut client = config.consumer_config();
        client.set("group.id", format!("{}-incident-actions", config.group_id));
        let consumer: StreamConsumer = client
            .create()
            .map_err(kafka("creating the actions consumer"))?;
        consumer
            .subscribe(&[topic])
            .map_err(kafka(format!("subscribing to {topic}")))?;
        Ok(Self {
            consumer,
            topic: topic.to_string(),
        })
    }

    /// The next record.
    ///
    /// # Errors
    /// When the consumer fails.
    ///
    /// # Cancellation
    /// Cancel-safe.
    pub async fn next(&self) -> Result<ActionRecord> {
        let m = self
            .consumer
            .recv()
            .await
            .map_err(kafka(format!("reading {}", self.topic)))?;
        let origin = ActionOrigin {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
        };
        let raw = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        let action = serde_json::from_str::<Action>(&raw)
            .map(|mut a| {
                a.action_id.get_or_insert_with(|| origin.id());
                a
            })
            .map_err(|e| format!("not an action: {e}"));
        Ok(ActionRecord {
            action,
            raw,
            origin,
        })
    }

    /// Commits everything up to and including `origin` (call once its effects are durable).
    ///
    /// # Errors
    /// When the commit fails.
    pub fn commit(&self, origin: &ActionOrigin) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &origin.topic,
            origin.partition,
            Offset::Offset(origin.offset + 1),
        )
        .map_err(kafka("committing an action"))?;
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(kafka(format!("committing {}", origin.id())))
    }
}
