//! Which instance of a group is active: the one the consumer group assigned the single
//! partition of the control topic to. Kafka decides; there is no consensus of our own.
//!
//! ```text
//!  instance A ─┐  group <group>.control, cooperative-sticky   ┌─ A: partition 0 → active
//!  instance B ─┼──────────── citybrain.control (1 partition) ──┼─ B: nothing    → standby
//!  instance C ─┘                                               └─ C: nothing    → standby
//!  A dies: after session.timeout.ms the group rebalances, B (or C) gets partition 0 and
//!  takes over from the last checkpoint in the shared store.
//! ```
//!
//! The control consumer is polled on its own thread, so heartbeats and rebalances are served
//! whatever the engine is doing; [`Leadership::acquired`] and [`Leadership::lost`] wait for
//! the changes. With the cooperative-sticky assignor a standby joining the group does not take
//! the partition away from the active instance. A graceful stop leaves the group at once, so a
//! standby takes over without waiting for the session timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::watch;

use super::config::KafkaConfig;
use super::log::{ClientLog, LoggedContext};
use crate::{Error, Result};

/// How long the control thread waits for an event before it checks whether to stop.
const POLL: Duration = Duration::from_millis(100);

/// librdkafka context of the control consumer: tells whether partition 0 is ours.
pub struct LeaderContext {
    topic: String,
    active: watch::Sender<bool>,
    log: ClientLog,
}

impl ClientContext for LeaderContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }
}

impl ConsumerContext for LeaderContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance
            && tpl
                .elements_for_topic(&self.topic)
                .iter()
                .any(|e| e.partition() == 0)
        {
            tracing::warn!(topic = %self.topic, "control partition revoked: this instance is no longer the active one");
            self.active.send_replace(false);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance
            && tpl
                .elements_for_topic(&self.topic)
                .iter()
                .any(|e| e.partition() == 0)
        {
            tracing::info!(topic = %self.topic, "control partition assigned: this instance is the active one");
            self.active.send_replace(true);
        }
    }
}

/// Membership in the control group; see the module docs.
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
    /// Joins the control group of `config` (`<group_id>.control`, reading
    /// [`KafkaConfig::control_topic`]), creating the control topic with one partition when it
    /// does not exist.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration or the subscription, or the control topic
    /// exists with more than one partition (two instances could then both be active).
    pub fn join(config: &KafkaConfig) -> Result<Self> {
        let topic = config.control_topic.clone();
        ensure_control_topic(config)?;
        let (tx, rx) = watch::channel(false);
        let mut client: ClientConfig = config.consumer_config();
        client
            .set("group.id", format!("{}.control", config.group_id))
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("enable.auto.commit", "false")
            .set("statistics.interval.ms", "0");
        let consumer: BaseConsumer<LeaderContext> = client
            .create_with_context(LeaderContext {
                topic: topic.clone(),
                active: tx,
                log: ClientLog::new(config.brokers.clone()),
            })
            .map_err(|source| Error::Kafka {
                action: "creating the control consumer".into(),
                source,
            })?;
        consumer
            .subscribe(&[topic.as_str()])
            .map_err(|source| Error::Kafka {
                action: format!("subscribing to the control topic {topic}"),
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("citybrain-leader".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    // Control records carry nothing; polling serves heartbeats and rebalances.
                    let _ = consumer.poll(POLL);
                }
                // Dropping the consumer leaves the group: a standby takes over at once.
                drop(consumer);
            })
            .map_err(|e| Error::Kafka {
                action: format!("starting the control thread: {e}"),
                source: rdkafka::error::KafkaError::Canceled,
            })?;
        tracing::info!(group = %format!("{}.control", config.group_id), topic = %topic, "joined the control group");
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

/// Creates the control topic (one partition) when missing; refuses one with several.
/// One metadata request of the control-topic check, and how many are made (30 s in all).
const METADATA_STEP: Duration = Duration::from_secs(1);
const METADATA_ATTEMPTS: u32 = 30;

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
    // In steps, serving the client's callbacks between them: its error callback (an
    // unreachable broker) only runs when the client is polled.
    let mut attempt = 0;
    let metadata = loop {
        attempt += 1;
        match probe.fetch_metadata(Some(topic), METADATA_STEP) {
            Ok(metadata) => break metadata,
            Err(source) if attempt >= METADATA_ATTEMPTS => {
                return Err(Error::Kafka {
                    action: format!("reading the control topic {topic}"),
                    source,
                });
            }
            Err(_) => {
                let _ = probe.poll(Duration::ZERO);
            }
        }
    };
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
