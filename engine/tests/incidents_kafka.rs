//! The incident desk on Kafka against a real Kafka-protocol broker (tansu, started by
//! `scripts/kafka-dev.sh up`; address in `CITYBRAIN_TEST_BROKERS`): 1,000 incidents and 500
//! actions through three SIGKILLs of the service. Nothing may be lost (every incident opened,
//! every action applied) and nothing doubled (one `opened` per incident, one escalation per
//! level, one application per action), because the state is rebuilt from the events topic.
//!
//! Without a broker the test fails, unless `CITYBRAIN_SKIP_KAFKA_TESTS=1` says to skip it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::{Value, json};

// The Kafka tests' helpers (broker address, unique names, publishing), shared with
// tests/kafka/; this test keeps its own binary so it does not run beside them on the broker.
mod common;
#[path = "kafka/support.rs"]
mod support;
use support::{DEADLINE, Running, brokers, publish, read_all, unique};

const INCIDENTS: usize = 1000;

fn create_topics(brokers: &str, names: &[&str], compacted: &[&str]) {
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            let t = NewTopic::new(n, 1, TopicReplication::Fixed(1));
            if compacted.contains(n) {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    for r in futures::executor::block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics")
    {
        r.unwrap_or_else(|(topic, e)| panic!("creating topic {topic}: {e:?}"));
    }
}

fn events(brokers: &str, topic: &str) -> Vec<Value> {
    read_all(brokers, topic)
        .into_iter()
        .map(|r| serde_json::from_str(&r.payload).unwrap_or_else(|e| panic!("{}: {e}", r.payload)))
        .collect()
}

/// The feed's pace between two chunks (a rate, not a stand-in for synchronisation).
#[allow(clippy::disallowed_methods)]
fn pace(d: Duration) {
    std::thread::sleep(d);
}

/// The service under test, SIGKILLed when dropped (a failing test leaves no process behind).
fn spawn_service(config: &Path, rules: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(["run", "--console", "off", "--batch-size", "20", "--config"])
        .arg(config)
        .arg("--rules")
        .arg(rules)
        .env("CITYBRAIN_PSEUDONYM_KEY", "incident-kafka-test")
        .env(
            "CITYBRAIN_LOG",
            std::env::var("INC_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("citybrain starts");
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("ERROR") || line.contains("WARN") || line.contains("restored") {
                eprintln!("service: {line}");
            }
        }
    });
    Running(child)
}

/// Reads the events topic as it grows.
struct Tail {
    consumer: BaseConsumer,
    events: Vec<Value>,
}

impl Tail {
    fn new(brokers: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", unique("tail"))
            .set("enable.auto.commit", "false")
            // Not 10 ms as the service's: a tail polling the broker 100 times a second slows
            // tansu's group coordinator down for everyone.
            .set("fetch.wait.max.ms", "250")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&tpl).expect("assign");
        Self {
            consumer,
            events: Vec::new(),
        }
    }

    /// Reads everything written so far (the topic's current end).
    fn catch_up(&mut self, topic: &str) {
        let (_, high) = self
            .consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(10))
            .expect("watermarks");
        let high = usize::try_from(high).expect("offset");
        self.until("the end of the topic", |e| e.len() >= high);
    }

    /// Reads until `done` holds (or the deadline passes).
    fn until(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let start = Instant::now();
        while !done(&self.events) {
            assert!(
                start.elapsed() < DEADLINE,
                "waiting for {what}: {} events, {} opened",
                self.events.len(),
                self.events.iter().filter(|e| e["type"] == "opened").count()
            );
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    let p = m.payload_view::<str>().and_then(Result::ok).unwrap_or("");
                    self.events
                        .push(serde_json::from_str(p).unwrap_or_else(|e| panic!("{p}: {e}")));
                }
                Some(Err(e)) => panic!("reading events: {e}"),
                None => {}
            }
        }
    }
}

/// Actions (as JSON lines) on the opened incidents of `events` not acted on yet, until `sent`
/// holds `total` ids: even ones acknowledge (by the unit holding it when it opened), odd ones
/// comment (by the centre).
fn act_on(events: &[Value], sent: &mut Vec<String>, total: usize) -> Vec<String> {
    let mut out = Vec::new();
    for e in events
        .iter()
        .filter(|e| e["type"] == "opened")
        .skip(sent.len())
    {
        if sent.len() == total {
            break;
        }
        let n = sent.len();
        let id = format!("action-{n}");
        let action = if n.is_multiple_of(2) {
            json!({"incident_id": e["incident_id"], "action": "ack", "unit": e["unit"], "at": e["at"], "action_id": id})
        } else {
            json!({"incident_id": e["incident_id"], "action": "comment", "unit": "330100000000", "at": e["at"], "comment": "seen", "action_id": id})
        };
        out.push(action.to_string());
        sent.push(id);
    }
    out
}

#[test]
fn sigkill_three_times_loses_no_incident_or_action_and_doubles_no_escalation() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let (police, alerts, dlq, events_topic, table, actions, group) = (
        unique("inc-police"),
        unique("inc-alerts"),
        unique("inc-dlq"),
        unique("inc-events"),
        unique("inc-table"),
        unique("inc-actions"),
        unique("inc-group"),
    );
    // The catalog's other tables get empty topics of their own: the service reads every table,
    // and the shared default topics may hold other tests' events.
    let (traffic, emergency, market) = (
        unique("inc-traffic"),
        unique("inc-emergency"),
        unique("inc-market"),
    );
    create_topics(
        &brokers,
        &[
            &police,
            &traffic,
            &emergency,
            &market,
            &alerts,
            &dlq,
            &events_topic,
            &table,
            &actions,
        ],
        &[&table],
    );
    // One incident per police report (a per-event rule keyed by the event id).
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("report.sql"),
        "-- title: Police report\n-- severity: high\n-- location: lat, lon\nSELECT event_id, lat, lon, ts FROM police\n",
    )
    .expect("rule");
    // 1,000 reports 36 s apart (10 hours of event time: every deadline of the chain passes
    // while the service runs), spread over the sample city.
    let start_ms: i64 = 1_772_431_200_000;
    let lines: Vec<String> = (0..INCIDENTS)
        .map(|i| {
            let (x, y) = ((i * 37 % 100) as f64 / 100.0, (i * 61 % 100) as f64 / 100.0);
            json!({
                "event_id": format!("p-{i:05}"),
                "ts": start_ms + i as i64 * 36_000,
                "lat": 30.195 + 0.11 * y,
                "lon": 120.105 + 0.13 * x,
                "category": "theft",
                "priority": 3,
            })
            .to_string()
        })
        .collect();
    // The reports arrive as a live feed, 20 every half second (25 s in all; pacing the feed,
    // not waiting for anything), so that the kills below land while the service is reading.
    let feed = {
        let (brokers, police) = (brokers.clone(), police.clone());
        std::thread::spawn(move || {
            for chunk in lines.chunks(20) {
                publish(&brokers, &police, chunk);
                pace(Duration::from_millis(500));
            }
        })
    };
    let checkpoints = tmp.path().join("checkpoints").display().to_string();
    let config = tmp.path().join("service.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\nalert_topic = \"{alerts}\"\ndlq_topic = \"{dlq}\"\n\
             [kafka.topics]\npolice = \"{police}\"\ntraffic = \"{traffic}\"\nemergency = \"{emergency}\"\nmarket = \"{market}\"\n\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"10\"\n\"session.timeout.ms\" = \"6000\"\n\
             \"heartbeat.interval.ms\" = \"1000\"\n\"max.poll.interval.ms\" = \"10000\"\n\
             [kafka.producer_properties]\n\"linger.ms\" = \"1\"\n\
             [engine]\ncommit_interval_ms = 50\n[metrics]\nlisten = \"\"\n\
             [checkpoint]\nstore = \"{checkpoints}\"\n\
             [incidents]\nevents_topic = \"{events_topic}\"\ntable_topic = \"{table}\"\nactions_topic = \"{actions}\"\nclock = \"event\"\n"
        ),
    )
    .expect("config");

    let opened = |e: &[Value]| e.iter().filter(|e| e["type"] == "opened").count();
    let mut sent: Vec<String> = Vec::new();
    let mut tail = Tail::new(&brokers, &events_topic);
    let mut killed_mid_stream = 0;
    for _ in 0..3 {
        let mut child = spawn_service(&config, &rules);
        // Killed once it has written new events since the last kill.
        let target = tail.events.len() + 150;
        tail.until("progress", |e| e.len() >= target || opened(e) == INCIDENTS);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        // Everything the killed service made durable (the tail lags behind the service).
        tail.catch_up(&events_topic);
        eprintln!(
            "killed at {} events, {} opened ({target} wanted)",
            tail.events.len(),
            opened(&tail.events)
        );
        if opened(&tail.events) < INCIDENTS {
            killed_mid_stream += 1;
        }
        // Actions on incidents the desk has opened so far (acknowledgements by the unit
        // holding it when it opened, comments by the centre), each with its own id: some are
        // applied before the next kill, some after.
        publish(&brokers, &actions, &act_on(&tail.events, &mut sent, 500));
    }
    feed.join().expect("feed");
    assert!(
        killed_mid_stream >= 2,
        "killed mid-stream only {killed_mid_stream} times"
    );
    // The last run goes to the end: every incident opened, the rest of the 500 actions, every
    // action applied.
    let mut child = spawn_service(&config, &rules);
    tail.until("every incident", |e| opened(e) == INCIDENTS);
    publish(&brokers, &actions, &act_on(&tail.events, &mut sent, 500));
    assert_eq!(sent.len(), 500);
    tail.until("every action", |e| {
        let applied: BTreeSet<&str> = e.iter().filter_map(|e| e["action_id"].as_str()).collect();
        opened(e) == INCIDENTS && sent.iter().all(|id| applied.contains(id.as_str()))
    });
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    child.wait().expect("reap");

    let all = events(&brokers, &events_topic);
    let mut by_incident: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for e in &all {
        by_incident
            .entry(e["incident_id"].as_str().expect("id"))
            .or_default()
            .push(e);
    }
    assert_eq!(by_incident.len(), INCIDENTS, "no incident lost, none extra");
    let seqs: BTreeSet<u64> = all.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs.len(), all.len(), "no event written twice");
    let mut escalations = 0;
    for (id, evs) in &by_incident {
        let count = |t: &str| evs.iter().filter(|e| e["type"] == t).count();
        assert_eq!(count("opened"), 1, "{id} opened once");
        let levels: Vec<&str> = evs
            .iter()
            .filter(|e| e["type"] == "escalated")
            .filter_map(|e| e["level"].as_str())
            .collect();
        let distinct: BTreeSet<&&str> = levels.iter().collect();
        assert_eq!(
            distinct.len(),
            levels.len(),
            "{id}: an escalation emitted twice: {levels:?}"
        );
        assert!(count("overdue") <= 1, "{id}: overdue twice");
        escalations += levels.len();
    }
    assert!(
        escalations > INCIDENTS,
        "deadlines passed during the run: {escalations} escalations"
    );
    for id in &sent {
        let n = all.iter().filter(|e| e["action_id"] == json!(id)).count();
        assert_eq!(n, 1, "action {id} applied {n} times");
    }
    // The compacted table: the latest state of every incident.
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("table"))
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&table, 0, Offset::Beginning)
        .expect("partition");
    reader.assign(&tpl).expect("assign");
    let start = Instant::now();
    while keys.len() < INCIDENTS {
        assert!(
            start.elapsed() < DEADLINE,
            "the table holds {} incidents",
            keys.len()
        );
        if let Some(m) = reader.poll(Duration::from_millis(50)) {
            let m = m.expect("table record");
            keys.insert(
                m.key_view::<str>()
                    .and_then(Result::ok)
                    .expect("key")
                    .to_string(),
            );
        }
    }
    // Nothing was refused: no action dead-lettered.
    let dead: Vec<String> = read_all(&brokers, &dlq)
        .into_iter()
        .map(|r| r.payload)
        .collect();
    assert!(dead.is_empty(), "dead letters: {dead:?}");
}
