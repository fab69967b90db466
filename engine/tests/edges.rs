//! Issue 11's edges, driven through the `citybrain` binary as a user would: a wrong clock, a
//! careless `--out`, keys, NaN results.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, SecondsFormat, Utc};
use citybrain_connectors::{CityConfig, Feed, Pseudonymizer, write_feed_files};
use serde_json::Value;

const KEY: &str = "edges-test-key-0123456789abcdef";
const HEADER: &str = "-- title: test\n-- severity: info\n";

fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/library")
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// A replay's alerts (without `emitted_at`, sorted) and dead letters as (reason, record),
/// sorted; panics when it fails.
fn replay(input: &Path, out_dir: &Path) -> (Vec<Value>, Vec<(String, String)>, String) {
    let (out, dead) = (out_dir.join("alerts.jsonl"), out_dir.join("dead.jsonl"));
    let run = common::replay(input, &library(), &out, &dead, KEY)
        .output()
        .expect("replay runs");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut alerts: Vec<Value> = lines_of(&out)
        .into_iter()
        .map(|mut a| {
            a.as_object_mut().expect("alert").remove("emitted_at");
            a
        })
        .collect();
    alerts.sort_by_key(Value::to_string);
    let mut letters: Vec<(String, String)> = lines_of(&dead)
        .into_iter()
        .map(|d| {
            (
                d["reason"].as_str().expect("reason").to_string(),
                d["record"].as_str().expect("record").to_string(),
            )
        })
        .collect();
    letters.sort();
    (alerts, letters, stdout)
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("in range")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ts_of(record: &Value) -> i64 {
    match &record["ts"] {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .expect("RFC 3339")
            .timestamp_millis(),
        v => v.as_i64().expect("epoch ms"),
    }
}

/// 9999-12-31T23:59:59Z, the latest time RFC 3339 can write.
const YEAR_9999_MS: i64 = 253_402_300_799_000;

/// Issue 11: one traffic record dated an hour (or eight, or year 9999) ahead made half of the
/// later records late and lost alerts. Now it is a `future` dead letter and nothing else
/// changes: the same alerts, the same other dead letters, wherever it sits (first of its file
/// included) and in whichever feed (a sparse one too).
#[test]
fn one_poisoned_clock_changes_no_other_records_fate_in_a_replay() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let clean = tmp.path().join("clean");
    write_feed_files(
        &clean,
        CityConfig {
            seed: 11,
            events_per_sim_second: 10.0,
            ..CityConfig::default()
        },
        12_000,
    )
    .expect("simulate");
    let (want_alerts, want_dead, _) = replay(&clean, &tmp.path().join("clean-out"));
    assert!(
        want_alerts.len() >= 10,
        "the data should make rules fire: {}",
        want_alerts.len()
    );
    let feeds: BTreeMap<Feed, Vec<String>> = city_feeds()
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(clean.join(format!("{}.jsonl", f.name())))
                .expect("feed file");
            (f.clone(), text.lines().map(str::to_string).collect())
        })
        .collect();
    let mut case = 0;
    for (feed, at) in [
        (city("traffic"), 0),
        (city("traffic"), feeds[&city("traffic")].len() / 2),
        (city("police"), 0),
    ] {
        for ahead in ["1h", "8h", "9999"] {
            case += 1;
            let mut record: Value = serde_json::from_str(&feeds[&feed][at]).expect("record JSON");
            let ts = ts_of(&record);
            let poisoned = match ahead {
                "1h" => ts + 3_600_000,
                "8h" => ts + 8 * 3_600_000,
                _ => YEAR_9999_MS,
            };
            record["ts"] = Value::String(rfc3339(poisoned));
            record["event_id"] = Value::String(format!("poisoned-{case}"));
            let poison = record.to_string();
            let input = tmp.path().join(format!("case-{case}"));
            std::fs::create_dir_all(&input).expect("mkdir");
            for (f, lines) in &feeds {
                let mut lines = lines.clone();
                if *f == feed {
                    lines.insert(at, poison.clone());
                }
                std::fs::write(
                    input.join(format!("{}.jsonl", f.name())),
                    lines.join("\n") + "\n",
                )
                .expect("write feed");
            }
            let (alerts, dead, stdout) = replay(&input, &tmp.path().join(format!("out-{case}")));
            let context = format!("{feed} record {at}, {ahead} ahead");
            let mut want = want_dead.clone();
            want.push(("future".to_string(), poison.clone()));
            want.sort();
            assert_eq!(dead, want, "{context}: dead letters");
            assert_eq!(alerts.len(), want_alerts.len(), "{context}: alert count");
            assert_eq!(alerts, want_alerts, "{context}: alerts");
            assert!(
                stdout.contains("future events (dated too far ahead): 1"),
                "{context}: summary\n{stdout}"
            );
        }
    }
}

fn citybrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(args)
        .env("CITYBRAIN_PSEUDONYM_KEY", KEY)
        .env_remove("CITYBRAIN_PSEUDONYM_KEY_FILE")
        .output()
        .expect("citybrain runs")
}

fn traffic(id: &str, ts: &str, speed: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","ts":"{ts}","lat":30.25,"lon":120.17,"sensor_id":"S1","road_id":"R1","speed_kmh":{speed},"vehicle_count":4,"occupancy":0.2,"plate":"浙A12345","kind":"flow"}}"#
    )
}

/// Issue 11: `--out` naming an input emptied it before it was read (exit 0), and `--out`
/// equal to `--dlq` interleaved and lost dead letters. Both are refused, nothing touched.
#[test]
fn outputs_that_would_clobber_inputs_or_each_other_are_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let feed = input.join("traffic.jsonl");
    let text = traffic("t-1", "2026-03-02T08:00:00Z", "30") + "\n";
    std::fs::write(&feed, &text).expect("write");
    let rule = tmp.path().join("rule.sql");
    std::fs::write(&rule, format!("{HEADER}SELECT event_id FROM traffic\n")).expect("write rule");
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let spelled = input.join("../in/traffic.jsonl");
    let elsewhere = tmp.path().join("dead.jsonl");
    for (out, dlq, names) in [
        (p(&spelled), p(&elsewhere), "--out"),
        (p(&tmp.path().join("a.jsonl")), p(&feed), "--dlq"),
        (p(&tmp.path().join("a.jsonl")), p(&rule), "--dlq"),
        (p(&elsewhere), p(&tmp.path().join("./dead.jsonl")), "--dlq"),
    ] {
        let run = citybrain(&[
            "replay",
            "--input",
            &p(&input),
            "--rules",
            &p(&rule),
            "--out",
            &out,
            "--dlq",
            &dlq,
        ]);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{out} {dlq} accepted");
        assert!(err.contains(names), "{err}");
        assert_eq!(std::fs::read_to_string(&feed).expect("read"), text);
        assert!(!elsewhere.exists(), "nothing written");
    }
    // Distinct files: fine, and an old output file is replaced whole at the end.
    let out = tmp.path().join("alerts.jsonl");
    std::fs::write(&out, "stale\n").expect("write");
    let run = citybrain(&[
        "replay",
        "--input",
        &p(&input),
        "--rules",
        &p(&rule),
        "--out",
        &p(&out),
        "--dlq",
        &p(&elsewhere),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let alerts = lines_of(&out);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["data"]["event_id"], "t-1");
}

/// Issue 11: `run` truncated its dead-letter file at every start.
#[test]
fn run_appends_to_its_dead_letter_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dlq = tmp.path().join("dead.jsonl");
    std::fs::write(&dlq, "{\"reason\":\"earlier run\"}\n").expect("write");
    let run = citybrain(&[
        "run",
        "--events",
        "300",
        "--rate",
        "1000000",
        "--dlq",
        dlq.to_str().expect("utf-8"),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&dlq).expect("read");
    assert!(text.starts_with("{\"reason\":\"earlier run\"}\n"), "{text}");
}

/// Issue 11: NaN and infinite results were written as `null`.
#[test]
fn nan_and_infinite_results_are_strings() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(
        input.join("traffic.jsonl"),
        traffic("t-1", "2026-03-02T08:00:00Z", "30") + "\n",
    )
    .expect("write");
    let rule = tmp.path().join("ratios.sql");
    std::fs::write(
        &rule,
        HEADER.to_string()
            + "SELECT event_id, speed_kmh / 0.0 AS up, -speed_kmh / 0.0 AS down, \
         (speed_kmh - speed_kmh) / 0.0 AS nothing, speed_kmh / 2.0 AS half FROM traffic\n",
    )
    .expect("write rule");
    let (out, dead) = (
        tmp.path().join("alerts.jsonl"),
        tmp.path().join("dead.jsonl"),
    );
    let run = common::replay(&input, &rule, &out, &dead, KEY)
        .stdout(Stdio::null())
        .output()
        .expect("replay runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let alerts = lines_of(&out);
    assert_eq!(alerts.len(), 1);
    let data = &alerts[0]["data"];
    assert_eq!(data["up"], "Infinity");
    assert_eq!(data["down"], "-Infinity");
    assert_eq!(data["nothing"], "NaN");
    assert_eq!(data["half"], 15.0);
}

/// Issue 11: `run --brokers` only warned without a key and `--pseudonym-key` showed in `ps`.
/// Now the Kafka service refuses the public development key unless told it is a throwaway
/// setup, and a key file works everywhere.
#[test]
fn the_kafka_service_refuses_to_run_without_a_key_and_key_files_work() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        // Nothing listens on port 9: the refusal must come before any connection attempt.
        .args(["run", "--brokers", "127.0.0.1:9", "--exit-at-end"])
        .env_remove("CITYBRAIN_PSEUDONYM_KEY")
        .env_remove("CITYBRAIN_PSEUDONYM_KEY_FILE")
        .env("CITYBRAIN_LOG", "warn")
        .output()
        .expect("citybrain runs");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{err}");
    assert!(err.contains("--pseudonym-key-file"), "{err}");
    assert!(err.contains("--insecure-dev-key"), "{err}");

    // A key file (with a trailing newline, as editors and `openssl rand -hex` write it).
    let key_file = tmp.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).expect("write key");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(
        input.join("traffic.jsonl"),
        traffic("t-1", "2026-03-02T08:00:00Z", "30") + "\n",
    )
    .expect("write");
    let rule = tmp.path().join("plates.sql");
    std::fs::write(&rule, format!("{HEADER}SELECT plate FROM traffic\n")).expect("write rule");
    let (out, dead) = (
        tmp.path().join("alerts.jsonl"),
        tmp.path().join("dead.jsonl"),
    );
    let run = common::replay(&input, &rule, &out, &dead, "not this one")
        .arg("--pseudonym-key-file")
        .arg(&key_file)
        .stdout(Stdio::null())
        .output()
        .expect("replay runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let alerts = lines_of(&out);
    assert_eq!(
        alerts[0]["data"]["plate"],
        Pseudonymizer::new(KEY.as_bytes()).pseudonymize("浙A12345")
    );
}

/// Issue 11: without a broker the Kafka client logged ~900 ERROR lines in 50 s. Now one clear
/// error names the broker, and its repeats stay at debug level (a summary once a minute).
#[test]
fn an_unreachable_broker_is_one_clear_error_not_a_flood() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().expect("temp dir");
    let key_file = tmp.path().join("key");
    std::fs::write(&key_file, KEY).expect("write key");
    // Nothing listens on port 9 (discard): every connection attempt is refused at once.
    let mut child = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(["run", "--brokers", "127.0.0.1:9", "--metrics-listen", ""])
        .arg("--pseudonym-key-file")
        .arg(&key_file)
        .env("CITYBRAIN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("citybrain starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // Wait for the first report of the unreachable broker...
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.iter().any(|l: &String| l.contains("127.0.0.1:9")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("no error naming the broker: {lines:#?}"),
        }
    }
    // ...then watch a few seconds of retries (librdkafka retries within milliseconds at first).
    let watch_until = Instant::now() + Duration::from_secs(4);
    while let Ok(line) = rx.recv_timeout(watch_until.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let errors: Vec<&String> = lines.iter().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.len() <= 2,
        "{} error lines in a few seconds: {errors:#?}",
        errors.len()
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("cannot reach the Kafka broker(s) 127.0.0.1:9")),
        "{errors:#?}"
    );
}

/// The city's feeds, in the shipped catalog's order.
fn city_feeds() -> Vec<Feed> {
    citybrain_connectors::Catalog::city().tables().to_vec()
}

/// The city feed called `name`.
fn city(name: &str) -> Feed {
    citybrain_connectors::Catalog::city()
        .table(name)
        .expect("a city feed")
        .clone()
}
