//! The Kafka service against a real Kafka-protocol broker on 127.0.0.1 (tansu, started by
//! `scripts/kafka-dev.sh up`; address in `CITYBRAIN_TEST_BROKERS`, default 127.0.0.1:19092).
//!
//! Each test uses its own topics and consumer group, so the tests run in parallel. Feeds are
//! published by this test's own producer (a client separate from citybrain) and alerts read
//! back with a plain consumer; `citybrain replay` over the same events is the oracle.
//!
//! Without a broker the tests fail, unless `CITYBRAIN_SKIP_KAFKA_TESTS=1` says to skip them.

#[path = "../common/mod.rs"]
mod common;
mod department;
mod ingest;
mod isolation;
mod recovery;
mod skew;
mod standby;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Instant;

use citybrain_connectors::{CityConfig, Feed, write_feed_files};
use serde_json::Value;

use support::*;

#[test]
fn round_trip_equals_replay_and_malformed_reach_the_dead_letter_topic() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut feeds = simulated(&tmp.path().join("sim"), 12_000, 10.0);
    // Malformed records in the middle of two feeds: the engine must go on past them.
    let bad = [
        "this is not json".to_string(),
        r#"{"event_id":"t-bad","lat":30.2,"lon":120.1}"#.to_string(),
    ];
    let mut bad_positions: BTreeSet<(Feed, i64)> = BTreeSet::new();
    for feed in [city("traffic"), city("police")] {
        let lines = feeds.get_mut(&feed).expect("feed");
        for (i, b) in bad.iter().enumerate() {
            let at = lines.len() / 3 * (i + 1);
            lines.insert(at, b.clone());
            bad_positions.insert((feed.clone(), at as i64));
        }
    }
    let expected = sorted(replay_alerts(tmp.path(), &feeds));
    assert!(
        expected.len() >= 5,
        "the test data should make several rules fire, got {}",
        expected.len()
    );
    let topics = Topics::new(&brokers, "roundtrip");
    publish_feeds(&brokers, &topics, &feeds);
    let config = topics.config(tmp.path(), &brokers, "");
    run_to_end(&config, &["--batch-size", "500"]);

    let got = sorted(
        alerts_of(&brokers, &topics.alerts)
            .into_iter()
            .map(comparable)
            .collect(),
    );
    assert_eq!(got.len(), expected.len(), "alert count differs from replay");
    assert_eq!(got, expected, "alerts differ from replay");

    // Every malformed record, and nothing else, on the dead-letter topic with its origin.
    let dead = read_all(&brokers, &topics.dlq);
    let got: BTreeSet<(Feed, i64)> = dead
        .iter()
        .map(|d| {
            let topic = &d.headers["__connect.errors.topic"];
            let feed = topics
                .feeds
                .iter()
                .find(|(_, t)| *t == topic)
                .unwrap_or_else(|| panic!("dead letter from unknown topic {topic}"))
                .0
                .clone();
            assert_eq!(d.headers["__connect.errors.partition"], "0");
            assert_eq!(d.headers["citybrain.reason"], "malformed");
            assert_eq!(d.headers["citybrain.feed"], feed.name());
            assert!(!d.headers["__connect.errors.exception.message"].is_empty());
            let v: Value = serde_json::from_str(&d.payload).expect("dead letter JSON");
            assert_eq!(v["origin"]["topic"], topic.as_str());
            let offset: i64 = d.headers["__connect.errors.offset"]
                .parse()
                .expect("offset");
            assert_eq!(v["origin"]["offset"], offset);
            assert_eq!(
                v["record"].as_str(),
                Some(feeds[&feed][offset as usize].as_str()),
                "the dead letter keeps the record as published"
            );
            (feed, offset)
        })
        .collect();
    assert_eq!(got, bad_positions);
    assert_eq!(
        dead.len(),
        bad_positions.len(),
        "each malformed record once"
    );
}

#[test]
fn group_restart_resumes_from_committed_offsets() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let feeds = simulated(&tmp.path().join("sim"), 4_000, 10.0);
    let topics = Topics::new(&brokers, "resume");
    let config = topics.config(tmp.path(), &brokers, "");
    let (first, second): (BTreeMap<_, _>, BTreeMap<_, _>) = (
        feeds
            .iter()
            .map(|(f, l)| (f.clone(), l[..l.len() / 2].to_vec()))
            .collect(),
        feeds
            .iter()
            .map(|(f, l)| (f.clone(), l[l.len() / 2..].to_vec()))
            .collect(),
    );
    let count = |m: &BTreeMap<Feed, Vec<String>>| m.values().map(Vec::len).sum::<usize>() as u64;
    publish_feeds(&brokers, &topics, &first);
    assert_eq!(records_read(&run_to_end(&config, &[])), count(&first));
    publish_feeds(&brokers, &topics, &second);
    assert_eq!(
        records_read(&run_to_end(&config, &[])),
        count(&second),
        "the restarted group reads only what it had not committed"
    );
    assert_eq!(
        records_read(&run_to_end(&config, &[])),
        0,
        "nothing left after a complete run"
    );
}

#[test]
fn sigterm_delivers_commits_and_exits_zero_while_metrics_are_served() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    // 50 simulated minutes: traffic windows (5 and 10 minutes) close, so progress commits.
    let feeds = simulated(&tmp.path().join("sim"), 6_000, 2.0);
    let topics = Topics::new(&brokers, "term");
    publish(
        &brokers,
        &topics.feeds[&city("police")],
        &["not json".to_string()],
    );
    publish_feeds(&brokers, &topics, &feeds);
    let config = topics.config(tmp.path(), &brokers, "127.0.0.1:0");
    // Small batches: a chunk per 100 records, so closed windows release early chunks.
    let mut child = spawn_service(&config, &["--batch-size", "100"]);
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("stderr line");
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // The metrics address from the log.
    let addr = loop {
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("the service logs its metrics address");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().expect("addr").to_string();
        }
    };
    // Keeps running past the malformed record: every event is counted, the dead letter sent.
    let total: u64 = feeds.values().map(|l| l.len() as u64).sum();
    let start = Instant::now();
    let probe = Probe::new(&brokers);
    let metrics = loop {
        let m = http_get(&addr, "/metrics");
        let events: f64 = m
            .lines()
            .filter(|l| l.starts_with("citybrain_events_in_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if events as u64 == total && probe.high(&topics.dlq) == 1 {
            break m;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "service did not read all events: {m}"
        );
    };
    for name in [
        "citybrain_events_in_total{feed=\"traffic\"}",
        "citybrain_malformed_total{feed=\"police\"} 1",
        "citybrain_alerts_total{rule=",
        "citybrain_batch_records",
        "citybrain_alert_latency_seconds{quantile=\"0.99\"}",
        "citybrain_rule_state_rows{rule=\"traffic/congestion\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    assert!(http_get(&addr, "/other").starts_with("HTTP/1.1 404"));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    let log = log.join().expect("log thread");
    assert!(
        exit.success(),
        "SIGTERM must end with exit 0: {exit:?}\n{log}"
    );
    assert!(log.contains("shutdown requested"), "{log}");
    // Progress was committed before exiting (closed windows), and a restart of the group
    // reads exactly what lies past the committed offsets.
    let committed = committed_total(&brokers, &topics);
    assert!(
        committed > 0,
        "a graceful stop commits durable progress:\n{log}"
    );
    let rest = records_read(&run_to_end(&config, &[]));
    assert_eq!(
        rest,
        total + 1 - committed,
        "restart resumes at the committed offsets"
    );
}

/// Issue 11: on Kafka, one record dated ahead froze a window (and commits) or made later records
/// late. Live runs compare event time with the wall clock: the city below is simulated up to a
/// few minutes ago, and records an hour, eight hours and (as the very first record of its
/// partition) 7,900 years ahead become `future` dead letters while every alert equals the clean
/// replay's.
#[test]
fn poisoned_clocks_on_kafka_change_no_other_records_fate() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    // 12,000 events at 10 per simulated second: 20 simulated minutes ending 5 minutes ago.
    let now = chrono::Utc::now().timestamp_millis();
    let dir = tmp.path().join("sim");
    write_feed_files(
        &dir,
        CityConfig {
            seed: 4,
            events_per_sim_second: 10.0,
            start_ms: now - 25 * 60_000,
            ..CityConfig::default()
        },
        12_000,
    )
    .expect("simulate");
    let clean: BTreeMap<Feed, Vec<String>> = city_feeds()
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(dir.join(format!("{}.jsonl", f.name()))).expect("feed");
            (f.clone(), text.lines().map(str::to_string).collect())
        })
        .collect();
    let expected = sorted(replay_alerts(tmp.path(), &clean));
    assert!(expected.len() >= 5, "too few alerts: {}", expected.len());

    let mut feeds = clean.clone();
    let poison = |line: &str, id: &str, ts: String| {
        let mut v: Value = serde_json::from_str(line).expect("record");
        v["event_id"] = Value::String(id.to_string());
        v["ts"] = Value::String(ts);
        v.to_string()
    };
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("in range")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let traffic = feeds.get_mut(&city("traffic")).expect("traffic");
    let middle = traffic.len() / 2;
    let hour = poison(&traffic[middle], "poison-1h", at(now + 3_600_000));
    let eight = poison(&traffic[middle], "poison-8h", at(now + 8 * 3_600_000));
    traffic.insert(middle, hour.clone());
    traffic.insert(middle + 100, eight.clone());
    let police = feeds.get_mut(&city("police")).expect("police");
    let first = poison(
        &police[0],
        "poison-9999",
        "9999-12-31T23:59:59Z".to_string(),
    );
    police.insert(0, first.clone());

    let topics = Topics::new(&brokers, "poison");
    publish_feeds(&brokers, &topics, &feeds);
    let config = topics.config(tmp.path(), &brokers, "");
    let log = run_to_end(&config, &["--batch-size", "500"]);
    let got = sorted(
        alerts_of(&brokers, &topics.alerts)
            .into_iter()
            .map(comparable)
            .collect(),
    );
    assert_eq!(got.len(), expected.len(), "alert count differs from replay");
    assert_eq!(got, expected, "alerts differ from the clean replay");
    let dead: BTreeMap<String, String> = read_all(&brokers, &topics.dlq)
        .into_iter()
        .map(|d| (d.payload, d.headers["citybrain.reason"].clone()))
        .map(|(payload, reason)| {
            let v: Value = serde_json::from_str(&payload).expect("dead letter JSON");
            (v["record"].as_str().expect("record").to_string(), reason)
        })
        .collect();
    let want: BTreeMap<String, String> = [hour, eight, first]
        .into_iter()
        .map(|r| (r, "future".to_string()))
        .collect();
    assert_eq!(dead, want, "exactly the poisoned records, as future");
    assert!(log.contains("set aside as `future`"), "logged: {log}");
}
