//! Helpers of the Kafka tests: the broker's address, topics of one test, publishing,
//! reading back, the service as a child process and `citybrain replay` as the oracle.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use citybrain_connectors::{CityConfig, Feed, write_feed_files};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;

pub const KEY: &str = "kafka-test-key";
/// Generous bound for anything a test waits for; a healthy run needs a fraction of it.
pub const DEADLINE: Duration = Duration::from_secs(180);

pub fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/library")
}

/// The broker address, or `None` (after a loud message) when it is absent and skipping is
/// allowed. Panics when it is absent and skipping is not allowed.
pub fn brokers() -> Option<String> {
    let addr = std::env::var("CITYBRAIN_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let reachable = addr.split(',').any(|a| {
        a.parse()
            .ok()
            .and_then(|sa| std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(2)).ok())
            .is_some()
    });
    if reachable {
        return Some(addr);
    }
    if std::env::var("CITYBRAIN_SKIP_KAFKA_TESTS").is_ok_and(|v| v == "1") {
        eprintln!(
            "\n\n!!!!!!!! SKIPPING KAFKA TEST: no broker at {addr} and CITYBRAIN_SKIP_KAFKA_TESTS=1 !!!!!!!!\n\n"
        );
        return None;
    }
    panic!(
        "no Kafka broker at {addr}: run scripts/kafka-dev.sh up (or set CITYBRAIN_TEST_BROKERS; \
         CITYBRAIN_SKIP_KAFKA_TESTS=1 skips these tests)"
    );
}

/// Names unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "t-{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The topics of one test.
pub struct Topics {
    pub feeds: BTreeMap<Feed, String>,
    pub alerts: String,
    pub dlq: String,
    pub control: String,
    pub group: String,
    /// `[checkpoint] interval_ms` of the configs written (default 200).
    pub checkpoint_ms: u64,
    /// `session.timeout.ms` of the configs written (default 6,000).
    pub session_ms: u64,
}

impl Topics {
    pub fn new(brokers: &str, name: &str) -> Self {
        Self::with_partitions(brokers, name, 1)
    }

    /// Topics whose feed topics have `partitions` partitions (alerts and dead letters: one).
    pub fn with_partitions(brokers: &str, name: &str, partitions: i32) -> Self {
        let t = Self {
            feeds: city_feeds()
                .iter()
                .map(|f| (f.clone(), unique(&format!("{name}-{}", f.name()))))
                .collect(),
            alerts: unique(&format!("{name}-alerts")),
            dlq: unique(&format!("{name}-dlq")),
            control: unique(&format!("{name}-control")),
            group: unique(&format!("{name}-group")),
            checkpoint_ms: 200,
            session_ms: 6_000,
        };
        let admin: AdminClient<_> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("admin client");
        let new: Vec<NewTopic<'_>> = t
            .feeds
            .values()
            .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
            .chain(
                [&t.alerts, &t.dlq, &t.control]
                    .into_iter()
                    .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1))),
            )
            .collect();
        let results = futures::executor::block_on(admin.create_topics(&new, &AdminOptions::new()))
            .expect("create topics");
        for r in results {
            r.unwrap_or_else(|(topic, e)| panic!("creating topic {topic}: {e:?}"));
        }
        t
    }

    /// A service config for these topics (`metrics`: the listen address, empty for none).
    pub fn config(&self, dir: &Path, brokers: &str, metrics: &str) -> PathBuf {
        self.config_with(dir, brokers, metrics, "", "")
    }

    /// [`Topics::config`] with more consumer properties (TOML lines).
    pub fn config_with(
        &self,
        dir: &Path,
        brokers: &str,
        metrics: &str,
        consumer_properties: &str,
        engine: &str,
    ) -> PathBuf {
        let mut text = format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{}\"\nalert_topic = \"{}\"\ndlq_topic = \"{}\"\n\
             control_topic = \"{}\"\n[kafka.topics]\n",
            self.group, self.alerts, self.dlq, self.control
        );
        for (f, t) in &self.feeds {
            text.push_str(&format!("{} = \"{t}\"\n", f.name()));
        }
        // A killed instance's control lease runs out after `session_ms` instead of librdkafka's
        // 45 s default, so a restarted service or a standby becomes active promptly.
        text.push_str(&format!(
            "[kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"10\"\n\
             \"session.timeout.ms\" = \"{}\"\n\"heartbeat.interval.ms\" = \"{}\"\n",
            self.session_ms,
            (self.session_ms / 3).min(1000)
        ));
        text.push_str(consumer_properties);
        text.push_str(
            "[kafka.producer_properties]\n\"linger.ms\" = \"1\"\n\
             [engine]\ntick_ms = 50\n",
        );
        text.push_str(engine);
        text.push_str(&format!("[metrics]\nlisten = \"{metrics}\"\n"));
        // These tests are about alerts: no incident desk (it would share the default
        // incident topics between tests; engine/tests/incidents_kafka.rs tests it).
        text.push_str("[incidents]\nenabled = false\n");
        // Every instance of the group shares the folder, as a standby must.
        text.push_str(&format!(
            "[checkpoint]\nstore = \"{}\"\ninterval_ms = {}\n",
            dir.join("checkpoints").display(),
            self.checkpoint_ms
        ));
        let path = dir.join(format!("{}.toml", self.group));
        std::fs::write(&path, text).expect("write config");
        path
    }
}

/// Publishes `lines` to `topic` (partition 0, in order) and waits for the broker's acks.
pub fn publish(brokers: &str, topic: &str, lines: &[String]) {
    publish_to(brokers, topic, 0, lines);
}

/// Publishes `lines` to `partition` of `topic` in order and waits for the broker's acks.
pub fn publish_to(brokers: &str, topic: &str, partition: i32, lines: &[String]) {
    let publisher = Publisher::new(brokers);
    publisher.send(topic, partition, lines);
    publisher.flush();
}

/// One idempotent producer for many sends (creating one costs a round of broker requests).
pub struct Publisher {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl Publisher {
    pub fn new(brokers: &str) -> Self {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        Self { producer }
    }

    /// Queues `lines` for `partition` of `topic`, in order.
    pub fn send(&self, topic: &str, partition: i32, lines: &[String]) {
        for line in lines {
            let mut record = BaseRecord::<(), str>::to(topic)
                .payload(line)
                .partition(partition);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((rdkafka::error::KafkaError::MessageProduction(_), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => panic!("producing to {topic}: {e}"),
                }
            }
        }
    }

    /// Waits for the broker's acks of everything sent.
    pub fn flush(&self) {
        self.producer
            .flush(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("flushing: {e}"));
    }
}

/// A message read back: payload and headers.
#[derive(Debug, Clone)]
pub struct Received {
    pub offset: i64,
    pub payload: String,
    pub headers: BTreeMap<String, String>,
}

/// Every message of partition 0 of `topic`, from the start up to its current end.
pub fn read_all(brokers: &str, topic: &str) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(30))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let start = Instant::now();
    while out.last().is_none_or(|r: &Received| r.offset + 1 < high) && high > 0 {
        assert!(start.elapsed() < DEADLINE, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(Received {
                offset: m.offset(),
                payload: m
                    .payload_view::<str>()
                    .and_then(Result::ok)
                    .unwrap_or("")
                    .to_string(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// The end offset of partition 0 of `topic`.
pub fn high_watermark(brokers: &str, topic: &str) -> i64 {
    Probe::new(brokers).high(topic)
}

/// One client asking the broker where topics end, for tests that ask again and again (a new
/// client per question would flood the broker with connections).
pub struct Probe {
    consumer: BaseConsumer,
}

impl Probe {
    pub fn new(brokers: &str) -> Self {
        Self {
            consumer: ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .create()
                .expect("consumer"),
        }
    }

    /// The end offset of partition 0 of `topic`.
    pub fn high(&self, topic: &str) -> i64 {
        self.consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(30))
            .expect("watermarks")
            .1
    }
}

/// Simulated feeds as lines per feed.
pub fn simulated(dir: &Path, events: u64, sim_rate: f64) -> BTreeMap<Feed, Vec<String>> {
    write_feed_files(
        dir,
        CityConfig {
            seed: 4,
            events_per_sim_second: sim_rate,
            ..CityConfig::default()
        },
        events,
    )
    .expect("simulate");
    city_feeds()
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(dir.join(format!("{}.jsonl", f.name()))).expect("feed");
            (f.clone(), text.lines().map(str::to_string).collect())
        })
        .collect()
}

pub fn write_feeds(dir: &Path, feeds: &BTreeMap<Feed, Vec<String>>) {
    std::fs::create_dir_all(dir).expect("feed dir");
    for (f, lines) in feeds {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(dir.join(format!("{}.jsonl", f.name())), text).expect("write feed");
    }
}

/// Alerts of `citybrain replay` over `feeds`, without `emitted_at`.
pub fn replay_alerts(dir: &Path, feeds: &BTreeMap<Feed, Vec<String>>) -> Vec<Value> {
    let input = dir.join("replay-input");
    write_feeds(&input, feeds);
    let (out, dead) = (
        dir.join("replay-alerts.jsonl"),
        dir.join("replay-dead.jsonl"),
    );
    let status = crate::common::replay(&input, &library(), &out, &dead, KEY)
        .stdout(Stdio::null())
        .status()
        .expect("replay runs");
    assert!(status.success(), "replay failed");
    std::fs::read_to_string(&out)
        .expect("replay alerts")
        .lines()
        .map(|l| comparable(serde_json::from_str(l).expect("alert JSON")))
        .collect()
}

/// An alert without the field that depends on when it was emitted, and without the unit
/// `replay` routes it to (the Kafka service does not route alerts to the incident desk's
/// jurisdictions yet: issue 13 wires the desk into the service).
pub fn comparable(mut v: Value) -> Value {
    let o = v.as_object_mut().expect("alert object");
    for field in ["emitted_at", "unit", "unit_name"] {
        o.remove(field);
    }
    v
}

pub fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(Value::to_string);
    v
}

/// Starts the service on `config`.
pub fn spawn_service(config: &Path, extra: &[&str]) -> Child {
    spawn_service_logging(config, extra, "info")
}

/// Starts the service on `config` with `CITYBRAIN_LOG` set to `log`.
pub fn spawn_service_logging(config: &Path, extra: &[&str], log: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--rules")
        .arg(library())
        .args(extra)
        .env("CITYBRAIN_PSEUDONYM_KEY", KEY)
        .env("CITYBRAIN_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("citybrain starts")
}

/// A service process killed when dropped: a failing test leaves no instance running against
/// the shared broker.
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for the service to exit; returns its status and stderr. Kills it and fails after
/// the deadline.
pub fn wait_exit(mut child: Child) -> (ExitStatus, String) {
    let mut stderr = child.stderr.take().expect("stderr piped");
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        stderr.read_to_string(&mut err).expect("stderr");
        err
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            child.kill().expect("kill");
            child.wait().expect("reap");
            let err = reader.join().expect("stderr reader");
            panic!("service did not exit within {DEADLINE:?}: {err}");
        }
        // Polling for the exit with a deadline; the process has no other completion signal
        // that can be waited on with a timeout.
        std::thread::park_timeout(Duration::from_millis(20));
    };
    (status, reader.join().expect("stderr reader"))
}

/// `--exit-at-end` run to completion; asserts success, returns stderr.
pub fn run_to_end(config: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--exit-at-end"];
    args.extend_from_slice(extra);
    let (status, err) = wait_exit(spawn_service(config, &args));
    assert!(status.success(), "service failed: {err}");
    err
}

/// `state: at most N rows held` from the service's summary.
pub fn peak_state_rows(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("state: at most ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no state line in the summary: {stderr}"))
}

/// `read N records` from the service's summary.
pub fn records_read(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("read ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no summary in: {stderr}"))
}

pub fn publish_feeds(brokers: &str, topics: &Topics, feeds: &BTreeMap<Feed, Vec<String>>) {
    for (f, lines) in feeds {
        publish(brokers, &topics.feeds[f], lines);
    }
}

pub fn alerts_of(brokers: &str, topic: &str) -> Vec<Value> {
    read_all(brokers, topic)
        .into_iter()
        .map(|r| serde_json::from_str(&r.payload).expect("alert JSON"))
        .collect()
}

/// The sum over the feed topics (one partition each) of the group's committed offsets.
pub fn committed_total(brokers: &str, topics: &Topics) -> u64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &topics.group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics.feeds.values() {
        tpl.add_partition(t, 0);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => u64::try_from(o).expect("offset"),
            _ => 0,
        })
        .sum()
}

/// A GET over plain HTTP/1.1; the whole response.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

/// Asserts that `got` holds every alert of `expected` and nothing else, copies only as
/// re-deliveries (same id, same content).
pub fn assert_same_alerts(got: &[Value], expected: &[Value]) {
    let expected: BTreeMap<String, &Value> = expected
        .iter()
        .map(|a| (a["alert_id"].as_str().expect("id").to_string(), a))
        .collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for a in got {
        let a = comparable(a.clone());
        let id = a["alert_id"].as_str().expect("id").to_string();
        let Some(e) = expected.get(&id) else {
            panic!("an alert replay does not give: {a}");
        };
        assert_eq!(&a, *e, "alert {id} differs from replay's");
        seen.insert(id);
    }
    let missing: Vec<&String> = expected.keys().filter(|id| !seen.contains(*id)).collect();
    assert!(missing.is_empty(), "alerts lost: {missing:?}");
}

/// The group's committed offsets of every partition of the feed topics (`partitions` each).
pub fn committed_offsets(brokers: &str, topics: &Topics, partitions: i32) -> Positions {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &topics.group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics.feeds.values() {
        for p in 0..partitions {
            tpl.add_partition(t, p);
        }
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect()
}

/// Per partition (topic, partition), an offset.
pub type Positions = BTreeMap<(String, i32), i64>;

/// The value of `key=` in a log line (up to the next space).
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split_whitespace().next()
}

/// Positions as the service logs them (`topic/partition=offset,...`).
pub fn parse_positions(text: &str) -> Positions {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (tp, offset) = item.rsplit_once('=').expect("topic/partition=offset");
            let (topic, partition) = tp.rsplit_once('/').expect("topic/partition");
            (
                (topic.to_string(), partition.parse().expect("partition")),
                offset.parse().expect("offset"),
            )
        })
        .collect()
}

/// Publishes each feed's lines round-robin over `partitions` partitions of its topic (line
/// `i` to partition `i % partitions`, in order).
pub fn publish_split(
    brokers: &str,
    topics: &Topics,
    feeds: &BTreeMap<Feed, Vec<String>>,
    partitions: i32,
) {
    for (feed, lines) in feeds {
        for p in 0..partitions {
            let part: Vec<String> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| (*i as i32) % partitions == p)
                .map(|(_, l)| l.clone())
                .collect();
            publish_to(brokers, &topics.feeds[feed], p, &part);
        }
    }
}

/// The city's feeds, in the shipped catalog's order.
pub fn city_feeds() -> Vec<Feed> {
    citybrain_connectors::Catalog::city().tables().to_vec()
}

/// The city feed called `name`.
pub fn city(name: &str) -> Feed {
    citybrain_connectors::Catalog::city()
        .table(name)
        .expect("a city feed")
        .clone()
}
