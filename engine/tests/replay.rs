//! End to end through the real `citybrain` binary: `replay` over simulator feeds with injected
//! malformed records must give, for every rule of the library, exactly the rows of the same SQL
//! run as one batch query; the dead-letter file must hold exactly the malformed records; no raw
//! personal value may reach alerts or logs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use bytes::Bytes;
use citybrain_connectors::{
    CityConfig, Decoder, Feed, Origin, Pseudonymizer, RawBatch, RawRecord, write_feed_files,
};
use citybrain_engine::{alert, city_catalog};
use serde_json::Value;

const KEY: &str = "replay-test-key";

fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/library")
}

/// `citybrain replay` of `input` through the rule library.
fn replay(input: &Path, alerts: &Path, dead: &Path, batch_size: usize) -> Output {
    common::replay(input, &library(), alerts, dead, KEY)
        .arg("--batch-size")
        .arg(batch_size.to_string())
        .env("CITYBRAIN_LOG", "info")
        .output()
        .expect("citybrain runs")
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Malformed records of every kind the standard names, inserted at fixed places.
fn malformed_lines(feed: Feed) -> Vec<String> {
    let f = feed.name();
    vec![
        "this is not json".to_string(),
        "[1, 2, 3]".to_string(),
        format!(r#"{{"event_id":"{f}-bad-1","lat":30.2,"lon":120.1}}"#),
        format!(r#"{{"event_id":"{f}-bad-2","ts":"yesterday","lat":30.2,"lon":120.1}}"#),
        format!(r#"{{"event_id":"{f}-bad-3","ts":1772431200000,"lat":"north","lon":120.1}}"#),
        format!(r#"{{"event_id":7,"ts":1772431200000,"lat":30.2,"lon":120.1}}"#),
        format!(r#"{{"event_id":"{f}-bad-4","ts":1772431200000.5,"lat":30.2,"lon":120.1}}"#),
    ]
}

/// Inserts the malformed lines every `every` lines; returns (file line number, text) of each.
fn inject(path: &Path, bad: &[String], every: usize) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(path).expect("feed file");
    let mut out = String::new();
    let mut injected = Vec::new();
    let mut line_no = 0u64;
    let mut bad_iter = bad.iter();
    for (i, line) in text.lines().enumerate() {
        if i % every == every / 2
            && let Some(b) = bad_iter.next()
        {
            line_no += 1;
            injected.push((line_no, b.clone()));
            out.push_str(b);
            out.push('\n');
        }
        line_no += 1;
        out.push_str(line);
        out.push('\n');
    }
    for b in bad_iter {
        line_no += 1;
        injected.push((line_no, b.clone()));
        out.push_str(b);
        out.push('\n');
    }
    std::fs::write(path, out).expect("rewrite feed file");
    injected
}

/// Every event of a feed file, decoded with the test key, skipping malformed lines.
fn decode_file(path: &Path, feed: Feed) -> Vec<arrow::array::RecordBatch> {
    let text = std::fs::read(path).expect("feed file");
    let records: Vec<RawRecord> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| RawRecord {
            payload: Bytes::copy_from_slice(l),
            origin: Origin::Simulator { seq: i as u64 },
        })
        .collect();
    let mut decoder = Decoder::new(feed.clone(), Arc::new(Pseudonymizer::new(KEY.as_bytes())));
    let decoded = decoder.decode(&RawBatch { feed, records });
    vec![decoded.batch]
}

/// Every raw personal value in the input files.
fn personal_values(input: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for feed in city_feeds() {
        let path = input.join(format!("{}.jsonl", feed.name()));
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            for field in feed.personal_columns() {
                if let Some(Value::String(s)) = o.get(field) {
                    out.insert(s.clone());
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn replay_equals_batch_evaluation_and_dead_letters_hold_exactly_the_malformed() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let input = tmp.path().join("feeds");
    let counts = write_feed_files(
        &input,
        CityConfig {
            seed: 20_260_302,
            ..CityConfig::default()
        },
        60_000,
    )
    .expect("simulate");
    let mut injected: BTreeMap<(String, u64), String> = BTreeMap::new();
    for feed in city_feeds() {
        let path = input.join(format!("{}.jsonl", feed.name()));
        let every = (counts.get(&feed) as usize / 8).max(2);
        for (line, text) in inject(&path, &malformed_lines(feed.clone()), every) {
            injected.insert((path.display().to_string(), line), text);
        }
    }

    let alerts_path = tmp.path().join("out/alerts.jsonl");
    let dlq_path = tmp.path().join("out/dead.jsonl");
    let out = replay(&input, &alerts_path, &dlq_path, 1000);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "replay failed:\n{stdout}\n{stderr}");

    // Dead letters: exactly the injected records, each with its file and line.
    let dead = read_jsonl(&dlq_path);
    let got: BTreeMap<(String, u64), String> = dead
        .iter()
        .map(|d| {
            assert_eq!(d["reason"], "malformed", "unexpected dead letter {d}");
            (
                (
                    d["origin"]["file"]
                        .as_str()
                        .expect("file origin")
                        .to_string(),
                    d["origin"]["line"].as_u64().expect("line origin"),
                ),
                d["record"].as_str().expect("raw record").to_string(),
            )
        })
        .collect();
    assert_eq!(
        got, injected,
        "dead letters differ from the injected records"
    );
    assert!(
        stdout.contains("malformed"),
        "summary names malformed counts:\n{stdout}"
    );

    // Every rule's alerts equal the batch evaluation of its SQL, row for row.
    let alerts = read_jsonl(&alerts_path);
    let mut catalog = city_catalog();
    let mut tables: Vec<(String, Vec<arrow::array::RecordBatch>)> = city_feeds()
        .iter()
        .map(|f| {
            (
                f.name().to_string(),
                decode_file(&input.join(format!("{}.jsonl", f.name())), f.clone()),
            )
        })
        .collect();
    let mut fired = 0;
    let sources = citybrain_rules::read_dir(&library()).expect("library");
    let rules = citybrain_rules::compile_all(&sources, &catalog)
        .await
        .unwrap_or_else(|e| panic!("library invalid: {e}"));
    for rule in rules {
        let src = sources
            .iter()
            .find(|s| s.id == rule.meta.id)
            .expect("compiled from a source");
        let borrowed: Vec<(&str, Vec<arrow::array::RecordBatch>)> = tables
            .iter()
            .map(|(n, b)| (n.as_str(), b.clone()))
            .collect();
        let expected_batches = citybrain_rules::batch::evaluate(src, &catalog, &borrowed)
            .await
            .expect("batch evaluation");
        if rule.meta.emit == citybrain_rules::Emit::View {
            // The view's batch result is the table its readers' batch queries read.
            let view: Vec<arrow::array::RecordBatch> = expected_batches
                .iter()
                .map(|b| {
                    b.project(&(0..rule.data_columns).collect::<Vec<_>>())
                        .expect("selected columns")
                })
                .collect();
            let schema = view
                .first()
                .map_or_else(|| rule.view_schema(), |b| b.schema());
            catalog = catalog.with_table(
                rule.meta.view_name(),
                schema,
                rule.view_time_column().expect("a view has a time column"),
            );
            tables.push((rule.meta.view_name().to_string(), view));
            continue;
        }
        let mut expected: Vec<String> = alert::rows_json(&expected_batches, rule.data_columns)
            .into_iter()
            .map(|m| Value::Object(m).to_string())
            .collect();
        let mut streamed: Vec<String> = alerts
            .iter()
            .filter(|a| a["rule"] == src.id.as_str())
            .map(|a| a["data"].to_string())
            .collect();
        expected.sort();
        streamed.sort();
        assert_eq!(
            streamed, expected,
            "rule {}: streaming alerts differ from the batch query",
            rule.meta.id
        );
        fired += usize::from(!streamed.is_empty());
        let ids: BTreeSet<&str> = alerts
            .iter()
            .filter(|a| a["rule"] == src.id.as_str())
            .map(|a| a["alert_id"].as_str().expect("alert_id"))
            .collect();
        assert_eq!(
            ids.len(),
            streamed.len(),
            "rule {}: alert ids are unique",
            src.id
        );
    }
    assert!(
        fired >= 3,
        "the simulated city fires several rules, fired {fired}"
    );

    // No raw personal value in alerts or logs.
    let alerts_text = std::fs::read_to_string(&alerts_path).expect("alerts");
    let personal = personal_values(&input);
    assert!(personal.len() > 100, "the simulator fills personal fields");
    for v in &personal {
        for (what, text) in [
            ("alerts", &alerts_text),
            ("stdout", &stdout),
            ("stderr", &stderr),
        ] {
            assert!(
                !text.contains(v.as_str()),
                "raw personal value {v:?} found in {what}"
            );
        }
    }
}

#[tokio::test]
async fn replay_is_deterministic_across_batch_sizes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let input = tmp.path().join("feeds");
    write_feed_files(&input, CityConfig::default(), 20_000).expect("simulate");
    let mut runs = Vec::new();
    for batch in [7, 4096] {
        let out_path = tmp.path().join(format!("alerts-{batch}.jsonl"));
        let out = replay(&input, &out_path, &tmp.path().join("dead.jsonl"), batch);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut alerts: Vec<(String, String)> = read_jsonl(&out_path)
            .iter()
            .map(|a| (a["alert_id"].to_string(), a["data"].to_string()))
            .collect();
        alerts.sort();
        runs.push(alerts);
    }
    assert!(!runs[0].is_empty(), "the simulated city produces alerts");
    assert_eq!(
        runs[0], runs[1],
        "same alerts (and ids) whatever the batch size"
    );
}

/// The city's feeds, in the shipped catalog's order.
fn city_feeds() -> Vec<Feed> {
    citybrain_connectors::Catalog::city().tables().to_vec()
}
