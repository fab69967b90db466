//! `citybrain ingest` against the broker: several processes in one consumer group over feed
//! topics of four partitions, one SIGKILLed mid-stream. The standard topics must hold every
//! valid input record at least once, exactly as the decoder standardises it (pseudonyms
//! included), and nothing else; every malformed record must be on the dead-letter topic with
//! its origin; the group must end with every raw partition committed to its end.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use citybrain_connectors::{Decoder, Feed, Origin, Pseudonymizer, RawBatch, RawRecord};
use citybrain_engine::ingest::standard_json;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::support::*;

const PARTITIONS: i32 = 4;

fn create_topics(brokers: &str, names: &[String], partitions: i32) {
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = futures::executor::block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics");
    for r in results {
        r.unwrap_or_else(|(topic, e)| panic!("creating topic {topic}: {e:?}"));
    }
}

/// The standard record of every valid input line, by (feed, event_id), as the decoder with
/// the test key makes it; and how many lines it rejects.
fn expected_standard(
    feeds: &BTreeMap<Feed, Vec<String>>,
) -> (BTreeMap<(Feed, String), String>, usize) {
    let p = Arc::new(Pseudonymizer::new(KEY.as_bytes()));
    let mut out = BTreeMap::new();
    let mut bad = 0;
    for (feed, lines) in feeds {
        let mut decoder = Decoder::new(feed.clone(), Arc::clone(&p));
        let raw = RawBatch {
            feed: feed.clone(),
            records: lines
                .iter()
                .enumerate()
                .map(|(i, l)| RawRecord {
                    payload: Bytes::copy_from_slice(l.as_bytes()),
                    origin: Origin::Simulator { seq: i as u64 },
                })
                .collect(),
        };
        let decoded = decoder.decode(&raw);
        bad += decoded.dead.len();
        for row in 0..decoded.batch.num_rows() {
            let (key, json) = standard_json(&decoded.batch, feed, row);
            assert!(
                out.insert((feed.clone(), key.clone()), json).is_none(),
                "the test input reuses event_id {key}"
            );
        }
    }
    (out, bad)
}

fn write_config(dir: &Path, brokers: &str, topics: &Topics) -> PathBuf {
    let mut text = format!(
        "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{}\"\ndlq_topic = \"{}\"\n[kafka.topics]\n",
        topics.group, topics.dlq
    );
    for (f, t) in &topics.feeds {
        text.push_str(&format!("{} = \"{t}\"\n", f.name()));
    }
    // A killed member leaves the group after 6 s (librdkafka's default is 45 s); small fetches
    // keep the processes mid-stream long enough for the kill to land there.
    text.push_str(
        "[kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"10\"\n\
         \"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n\
         \"queued.min.messages\" = \"200\"\n\"max.partition.fetch.bytes\" = \"20000\"\n\
         [kafka.producer_properties]\n\"linger.ms\" = \"1\"\n\
         [ingest]\nbatch_size = 100\ncommit_interval_ms = 50\n",
    );
    let path = dir.join("ingest.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// An ingest process whose stderr is collected as it comes.
struct Ingest {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Ingest {
    fn spawn(config: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_citybrain"))
            .arg("ingest")
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("CITYBRAIN_PSEUDONYM_KEY", KEY)
            .env("CITYBRAIN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("citybrain ingest starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        Self {
            child,
            log,
            reader: Some(reader),
        }
    }

    fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    fn sigterm_and_wait(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let start = Instant::now();
        let exit = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if start.elapsed() > DEADLINE {
                self.child.kill().expect("kill");
                panic!("ingest did not stop after SIGTERM: {}", self.log());
            }
            // Polling for the exit with a deadline; a child has no waitable exit with timeout.
            std::thread::park_timeout(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            r.join().expect("stderr reader");
        }
        let log = self.log();
        assert!(
            exit.success(),
            "SIGTERM must end with exit 0: {exit:?}\n{log}"
        );
        log
    }
}

impl Drop for Ingest {
    /// A failing test leaves no process behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads every partition of some topics from the start, keeping what it read.
struct TopicReader {
    consumer: BaseConsumer,
    got: Vec<(String, Option<String>, String)>,
}

impl TopicReader {
    fn new(brokers: &str, topics: &[String], partitions: i32) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", unique("std-reader"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for t in topics {
            for p in 0..partitions {
                tpl.add_partition_offset(t, p, Offset::Beginning)
                    .expect("partition");
            }
        }
        consumer.assign(&tpl).expect("assign");
        Self {
            consumer,
            got: Vec::new(),
        }
    }

    /// Reads until `done` holds of everything read; false when the deadline passed first.
    /// `done` is asked whenever the reader has caught up (no message at hand).
    fn read_until(&mut self, done: impl Fn(&[(String, Option<String>, String)]) -> bool) -> bool {
        let start = Instant::now();
        loop {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => self.got.push((
                    m.topic().to_string(),
                    m.key_view::<str>().and_then(Result::ok).map(str::to_string),
                    m.payload_view::<str>()
                        .and_then(Result::ok)
                        .unwrap_or("")
                        .to_string(),
                )),
                Some(Err(e)) => panic!("reading: {e}"),
                None if done(&self.got) => return true,
                None if start.elapsed() > DEADLINE => return false,
                None => {}
            }
        }
    }

    /// Reads everything up to the topics' current ends.
    fn read_to_end(&mut self, topics: &[String], partitions: i32) {
        let total: i64 = topics
            .iter()
            .map(|t| {
                (0..partitions)
                    .map(|p| {
                        self.consumer
                            .fetch_watermarks(t, p, Duration::from_secs(30))
                            .expect("watermarks")
                            .1
                    })
                    .sum::<i64>()
            })
            .sum();
        let total = usize::try_from(total).expect("count");
        assert!(
            self.read_until(|got| got.len() >= total),
            "the standard topics not read to their end before the deadline"
        );
    }
}

#[test]
fn ingest_group_with_a_sigkill_keeps_every_valid_record_and_nothing_else() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut feeds = simulated(&tmp.path().join("sim"), 16_000, 10.0);
    // Malformed records spread over two feeds and several partitions.
    let bad = [
        "this is not json".to_string(),
        r#"{"event_id":"bad-no-ts","lat":30.2,"lon":120.1}"#.to_string(),
        r#"{"event_id":"bad-lat","ts":1700000000000,"lat":300.0,"lon":120.1}"#.to_string(),
    ];
    for feed in [city("traffic"), city("police")] {
        let lines = feeds.get_mut(&feed).expect("feed");
        for (i, b) in bad.iter().enumerate() {
            lines.insert(lines.len() / 4 * (i + 1) + i, b.clone());
        }
    }
    let (expected, bad_count) = expected_standard(&feeds);
    assert_eq!(
        bad_count,
        2 * bad.len(),
        "the decoder rejects exactly the bad lines"
    );

    let topics = Topics::with_partitions(&brokers, "ingest", PARTITIONS);
    let std_topics: BTreeMap<Feed, String> = topics
        .feeds
        .iter()
        .map(|(f, t)| (f.clone(), format!("{t}.std")))
        .collect();
    let std_names: Vec<String> = std_topics.values().cloned().collect();
    create_topics(&brokers, &std_names, PARTITIONS);
    let feed_of_std: BTreeMap<String, Feed> = std_topics
        .iter()
        .map(|(f, t)| (t.clone(), f.clone()))
        .collect();

    // Each feed's lines round-robin over its partitions, in two halves; the offset of every
    // bad line is known (fresh topics start at 0).
    let mut per_partition: BTreeMap<(Feed, i32), Vec<String>> = BTreeMap::new();
    let mut halves: [BTreeMap<(Feed, i32), Vec<String>>; 2] = Default::default();
    let mut bad_at: BTreeSet<(String, i32, i64, String)> = BTreeSet::new();
    for (feed, lines) in &feeds {
        for (i, line) in lines.iter().enumerate() {
            let p = i32::try_from(i).expect("index") % PARTITIONS;
            let list = per_partition.entry((feed.clone(), p)).or_default();
            if bad.contains(line) {
                bad_at.insert((
                    topics.feeds[feed].clone(),
                    p,
                    list.len() as i64,
                    line.clone(),
                ));
            }
            list.push(line.clone());
            halves[usize::from(i >= lines.len() / 2)]
                .entry((feed.clone(), p))
                .or_default()
                .push(line.clone());
        }
    }
    let publish_half = |half: &BTreeMap<(Feed, i32), Vec<String>>| {
        for ((feed, p), lines) in half {
            publish_to(&brokers, &topics.feeds[feed], *p, lines);
        }
    };
    publish_half(&halves[0]);

    let config = write_config(tmp.path(), &brokers, &topics);
    let mut group: Vec<Ingest> = (0..3).map(|_| Ingest::spawn(&config, &[])).collect();

    // Kill the first process once it holds partitions and the group has produced standard
    // records, then publish the second half: the stream goes on after the kill.
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("probe");
    let std_high = || -> i64 {
        std_names
            .iter()
            .flat_map(|t| (0..PARTITIONS).map(move |p| (t, p)))
            .map(|(t, p)| {
                probe
                    .fetch_watermarks(t, p, Duration::from_secs(30))
                    .expect("watermarks")
                    .1
            })
            .sum()
    };
    let start = Instant::now();
    while !(group[0].log().contains("assigned") && std_high() > 0) {
        assert!(
            group[0].child.try_wait().expect("try_wait").is_none(),
            "ingest exited early: {}",
            group[0].log()
        );
        assert!(
            start.elapsed() < DEADLINE,
            "no progress: {}",
            group[0].log()
        );
        // Polling interval of a condition checked against the broker, not a synchronisation.
        std::thread::park_timeout(Duration::from_millis(10));
    }
    let revokes =
        |g: &[Ingest]| -> usize { g.iter().map(|i| i.log().matches("revoked").count()).sum() };
    let mut victim = group.remove(0);
    let revoked_before = revokes(&group);
    victim.child.kill().expect("SIGKILL");
    victim.child.wait().expect("reap");
    drop(victim);
    let produced_at_kill = std_high();
    publish_half(&halves[1]);

    // The broker expires the killed member after the session timeout and rebalances. tansu
    // 0.6 (unlike Apache Kafka) hands the killed member's partitions to nobody in that
    // rebalance (the member that stays keeps its own), so the survivors stop (leaving the
    // group cleanly, committing what they delivered) and two fresh processes take over, as
    // restarted instances would: everything not committed, the killed member's partitions
    // included, is read again.
    let start = Instant::now();
    while revokes(&group) == revoked_before {
        assert!(
            start.elapsed() < DEADLINE,
            "the killed member was never expired"
        );
        // Polling interval of a condition in the survivors' logs, not a synchronisation.
        std::thread::park_timeout(Duration::from_millis(20));
    }
    let mut summaries: Vec<String> = group.drain(..).map(Ingest::sigterm_and_wait).collect();
    group.extend((0..2).map(|_| Ingest::spawn(&config, &["--metrics-listen", "127.0.0.1:0"])));

    // Every valid record reaches its standard topic.
    let mut reader = TopicReader::new(&brokers, &std_names, PARTITIONS);
    let logs = || {
        group
            .iter()
            .map(|g| format!("--- ingest process:\n{}", g.log()))
            .collect::<String>()
    };
    let all_there = reader.read_until(|got| {
        let seen: BTreeSet<(Feed, &str)> = got
            .iter()
            .filter_map(|(t, k, _)| Some((feed_of_std[t].clone(), k.as_deref()?)))
            .collect();
        expected
            .keys()
            .all(|(f, id)| seen.contains(&(f.clone(), id.as_str())))
    });
    if !all_there {
        let seen: BTreeSet<(Feed, &str)> = reader
            .got
            .iter()
            .filter_map(|(t, k, _)| Some((feed_of_std[t].clone(), k.as_deref()?)))
            .collect();
        let mut missing: BTreeMap<(Feed, i32), usize> = BTreeMap::new();
        for ((feed, p), lines) in &per_partition {
            for l in lines {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                if let Some(id) = v["event_id"].as_str()
                    && expected.contains_key(&(feed.clone(), id.to_string()))
                    && !seen.contains(&(feed.clone(), id))
                {
                    *missing.entry((feed.clone(), *p)).or_default() += 1;
                }
            }
        }
        panic!(
            "valid records missing from the standard topics after {DEADLINE:?} ({} read); \
             missing per (feed, raw partition): {missing:?}; committed: {:?}\n{}",
            reader.got.len(),
            committed_offsets(&brokers, &topics, PARTITIONS),
            logs()
        );
    }
    // Every bad record reaches the dead-letter topic.
    let mut dead = TopicReader::new(&brokers, std::slice::from_ref(&topics.dlq), 1);
    assert!(
        dead.read_until(|got| got.len() >= bad_at.len()),
        "dead letters missing after {DEADLINE:?}\n{}",
        logs()
    );
    // Each instance serves /metrics: standard records counted per table, the lag of each
    // partition it holds. (Not asserted: lag 0 at the end. KafkaSource reports a partition's
    // lag from its own last read position, which goes stale when the partition comes back to
    // it after another instance read it further; seen once under load.)
    for g in &group {
        let addr = metrics_addr(g);
        let start = Instant::now();
        loop {
            let m = http_get(&addr, "/metrics");
            if m.contains("citybrain_events_in_total{feed=\"traffic\"}")
                && m.contains("citybrain_consumer_lag{")
                && m.contains("citybrain_outputs_in_flight")
            {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "/metrics of an ingest instance lacks its counts:\n{m}"
            );
            // Polling interval of the endpoint (statistics refresh every second).
            std::thread::park_timeout(Duration::from_millis(200));
        }
    }

    // Every process stops cleanly on SIGTERM and commits what it delivered.
    summaries.extend(group.into_iter().map(Ingest::sigterm_and_wait));
    for log in &summaries {
        assert!(log.contains("ingest: read"), "no summary: {log}");
    }

    // Nothing else: each standard record is the standardised form of a valid input record,
    // keyed by its event_id, on its feed's topic (re-deliveries are identical copies).
    reader.read_to_end(&std_names, PARTITIONS);
    let mut copies: BTreeMap<(Feed, String), usize> = BTreeMap::new();
    for (topic, key, payload) in &reader.got {
        let feed = feed_of_std[topic].clone();
        let key = key
            .clone()
            .unwrap_or_else(|| panic!("unkeyed record {payload}"));
        let want = expected
            .get(&(feed.clone(), key.clone()))
            .unwrap_or_else(|| panic!("{topic} holds a record that is no valid input: {payload}"));
        assert_eq!(
            payload, want,
            "record {key} of {topic} differs from its standard form"
        );
        *copies.entry((feed, key)).or_default() += 1;
    }
    assert_eq!(copies.len(), expected.len());
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    eprintln!(
        "ingest test: {} valid records, {} on the standard topics ({duplicates} re-delivered), \
         {produced_at_kill} produced when one of 3 processes was killed",
        expected.len(),
        reader.got.len()
    );

    // Dead letters: each bad record, from where it was published, and nothing else.
    let letters = read_all(&brokers, &topics.dlq);
    let got: BTreeSet<(String, i32, i64, String)> = letters
        .iter()
        .map(|d| {
            assert_eq!(d.headers["citybrain.reason"], "malformed");
            let v: serde_json::Value = serde_json::from_str(&d.payload).expect("dead letter JSON");
            assert_eq!(v["origin"]["topic"], d.headers["__connect.errors.topic"]);
            (
                d.headers["__connect.errors.topic"].clone(),
                d.headers["__connect.errors.partition"]
                    .parse()
                    .expect("partition"),
                d.headers["__connect.errors.offset"]
                    .parse()
                    .expect("offset"),
                v["record"].as_str().expect("record").to_string(),
            )
        })
        .collect();
    assert_eq!(got, bad_at, "dead letters differ from the bad input");

    // The group committed every raw partition to its end, the killed member's included.
    let committed = committed_offsets(&brokers, &topics, PARTITIONS);
    for (feed, topic) in &topics.feeds {
        for p in 0..PARTITIONS {
            let end = per_partition[&(feed.clone(), p)].len() as i64;
            assert_eq!(
                committed.get(&(topic.clone(), p)).copied(),
                Some(end),
                "{}/{p} not committed to its end",
                feed.name()
            );
        }
    }
}

/// The address an instance serves /metrics on, from its log.
fn metrics_addr(g: &Ingest) -> String {
    let start = Instant::now();
    loop {
        if let Some(addr) = g
            .log()
            .lines()
            .find(|l| l.contains("serving Prometheus metrics"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|r| r.split_whitespace().next())
        {
            return addr.to_string();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no metrics address: {}",
            g.log()
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Mistakes are refused before anything connects: every configuration problem at once, and
/// no publishing of pseudonyms made with the public development key.
#[test]
fn ingest_refuses_bad_configuration_and_the_development_key() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = tmp.path().join("bad.toml");
    std::fs::write(
        &config,
        "[kafka]\nbrokers = \"nohost\"\n[kafka.topics]\ntraffic = \"city.traffic\"\n\
         [ingest]\ncommit_interval_ms = 0\n[ingest.std_topics]\ntraffic = \"citybrain.dlq\"\n",
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(["ingest", "--config"])
        .arg(&config)
        .env("CITYBRAIN_PSEUDONYM_KEY", KEY)
        .env_remove("CITYBRAIN_BROKERS")
        .output()
        .expect("citybrain runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for problem in [
        "kafka.brokers: `nohost` is not HOST:PORT",
        "ingest.std_topics.traffic: `citybrain.dlq` is also kafka.dlq_topic",
        "ingest.commit_interval_ms: must be at least 1",
    ] {
        assert!(err.contains(problem), "missing {problem:?} in {err}");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(["ingest", "--brokers", "127.0.0.1:1"])
        .env_remove("CITYBRAIN_PSEUDONYM_KEY")
        .env_remove("CITYBRAIN_PSEUDONYM_KEY_FILE")
        .env_remove("CITYBRAIN_INGEST_CONFIG")
        .output()
        .expect("citybrain runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no pseudonymisation key"), "{err}");
}
