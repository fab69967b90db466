//! Feed topics with several partitions read at different speeds: each partition's records
//! advance its own watermark, a feed's watermark is the minimum over its partitions, and
//! alignment pauses a partition far ahead of the others.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Instant;

use citybrain_connectors::Feed;
use serde_json::Value;

use crate::support::*;

const PARTITIONS: i32 = 3;

/// The partition a keyless record goes to, spread as a standard client's partitioner spreads
/// them (here by a hash of the record, so that the test is repeatable).
fn partition_of(line: &str) -> i32 {
    let h = line.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    i32::try_from(h % PARTITIONS.unsigned_abs() as u64).expect("small")
}

/// Publishes every feed partition by partition: all of partition 0 of every feed, then all of
/// partition 1, then all of partition 2 (each partition in the feed's order).
fn publish_partition_by_partition(
    brokers: &str,
    topics: &Topics,
    feeds: &BTreeMap<Feed, Vec<String>>,
) {
    for p in 0..PARTITIONS {
        for (feed, lines) in feeds {
            let part: Vec<String> = lines
                .iter()
                .filter(|l| partition_of(l) == p)
                .cloned()
                .collect();
            publish_to(brokers, &topics.feeds[feed], p, &part);
        }
    }
}

/// Late dead letters on `topic`.
fn late_letters(brokers: &str, topic: &str) -> usize {
    read_all(brokers, topic)
        .iter()
        .filter(|d| d.headers.get("citybrain.reason").map(String::as_str) == Some("late"))
        .count()
}

/// `events` simulated events at `sim_rate` per simulated second, and `citybrain replay`'s
/// alerts over them (which the data must give without late records).
fn city(
    dir: &std::path::Path,
    events: u64,
    sim_rate: f64,
) -> (BTreeMap<Feed, Vec<String>>, Vec<Value>) {
    let feeds = simulated(&dir.join("sim"), events, sim_rate);
    let expected = replay_alerts(dir, &feeds);
    let replay_late = std::fs::read_to_string(dir.join("replay-dead.jsonl"))
        .expect("replay dead letters")
        .lines()
        .filter(|l| l.contains(r#""reason":"late""#))
        .count();
    assert_eq!(
        replay_late, 0,
        "the test data has no late records in a replay"
    );
    assert!(
        expected.len() >= 10,
        "too few alerts to compare: {}",
        expected.len()
    );
    (feeds, expected)
}

#[test]
fn partitions_read_partition_by_partition_and_a_restart_give_the_replays_alerts_and_no_late_record()
{
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    // 100 minutes of city.
    let (feeds, expected) = city(tmp.path(), 12_000, 2.0);
    let topics = Topics::with_partitions(&brokers, "skew", PARTITIONS);
    publish_partition_by_partition(&brokers, &topics, &feeds);
    // Small fetches keep the first run mid-stream when it is stopped.
    let config = topics.config_with(
        tmp.path(),
        &brokers,
        "",
        "\"queued.min.messages\" = \"200\"\n\"max.partition.fetch.bytes\" = \"20000\"\n",
        "",
    );
    // First run: stopped (SIGTERM) once it has produced alerts.
    let mut child = spawn_service(&config, &["--batch-size", "300"]);
    let stderr = child.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let start = Instant::now();
    let probe = Probe::new(&brokers);
    while probe.high(&topics.alerts) == 0 {
        assert!(start.elapsed() < DEADLINE, "no alert before the deadline");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the service stopped on its own"
        );
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    let first = log.join().expect("log");
    assert!(exit.success(), "first run: {first}");
    let read_first = records_read(&first);
    let total: u64 = feeds.values().map(|l| l.len() as u64).sum();
    assert!(
        read_first < total,
        "the first run should stop mid-stream (read {read_first} of {total})"
    );
    // Second run: to the end.
    run_to_end(&config, &["--batch-size", "300"]);

    assert_same_alerts(&alerts_of(&brokers, &topics.alerts), &expected);
    assert_eq!(late_letters(&brokers, &topics.dlq), 0, "no record was late");
}

#[test]
fn without_alignment_one_partition_is_read_far_ahead_of_the_others_and_its_windows_held_open() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    // 100 minutes of city.
    let (feeds, expected) = city(tmp.path(), 12_000, 2.0);
    let mut peak = BTreeMap::new();
    for alignment in [true, false] {
        let topics = Topics::with_partitions(
            &brokers,
            if alignment { "aligned" } else { "unaligned" },
            PARTITIONS,
        );
        publish_partition_by_partition(&brokers, &topics, &feeds);
        let config = topics.config_with(
            tmp.path(),
            &brokers,
            "",
            "",
            &format!("watermark_alignment = {alignment}\nmax_watermark_drift_ms = 60000\n"),
        );
        let err = run_to_end(&config, &["--batch-size", "100"]);
        // Alignment changes how the input is read and what is held, never the results.
        assert_same_alerts(&alerts_of(&brokers, &topics.alerts), &expected);
        assert_eq!(late_letters(&brokers, &topics.dlq), 0, "no record was late");
        peak.insert(alignment, peak_state_rows(&err));
    }
    // Without alignment the consumer reads partition 0's whole backlog before the others
    // (librdkafka hands over each partition's fetched records in turn): every window stays
    // open until partitions 1 and 2 catch up, so the rules hold the state of all of it.
    eprintln!("peak rows held: {peak:?}");
    assert!(
        peak[&false] > 2 * peak[&true],
        "without alignment, windows are held open while one partition runs ahead: peak rows {peak:?}"
    );
}
