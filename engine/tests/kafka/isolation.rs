//! A rule failing at run time on Kafka (an integer division by zero) is stopped alone: the
//! service reads to the end and exits 0 (no crash loop), the other rule's alerts are those
//! replay gives without the failing rule, and the failure is a `rule_failed` dead letter on the
//! dead-letter topic.

use std::process::{Command, Stdio};

use serde_json::Value;

use super::support::*;

const EVENTS: &str = "-- title: events\n-- severity: info\n\
    SELECT event_id, road_id FROM traffic WHERE kind = 'flow'\n";
/// Every non-null count minus itself is zero.
const DIVIDES: &str = "-- title: divides\n-- severity: info\n\
    SELECT event_id, 100 / (vehicle_count - vehicle_count) AS share\nFROM traffic\n";

#[test]
fn a_rule_failing_on_kafka_stops_alone_and_the_service_goes_on() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let feeds = simulated(&tmp.path().join("sim"), 3_000, 10.0);
    let (good, both) = (tmp.path().join("good"), tmp.path().join("both"));
    for (dir, rules) in [(&good, &[EVENTS][..]), (&both, &[EVENTS, DIVIDES][..])] {
        std::fs::create_dir_all(dir).expect("mkdir");
        for (i, text) in rules.iter().enumerate() {
            let name = if i == 0 { "events.sql" } else { "divides.sql" };
            std::fs::write(dir.join(name), text).expect("rule");
        }
    }
    // The oracle: replay of the same records with the good rule alone.
    let input = tmp.path().join("input");
    write_feeds(&input, &feeds);
    let out = tmp.path().join("replay.jsonl");
    let done = crate::common::replay(&input, &good, &out, &tmp.path().join("d.jsonl"), KEY)
        .stdout(Stdio::null())
        .status()
        .expect("replay runs");
    assert!(done.success());
    let mut want: Vec<String> = std::fs::read_to_string(&out)
        .expect("alerts")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("alert")["alert_id"].to_string())
        .collect();
    want.sort();
    assert!(want.len() > 100, "{}", want.len());

    let topics = Topics::new(&brokers, "isolation");
    publish_feeds(&brokers, &topics, &feeds);
    let config = topics.config(tmp.path(), &brokers, "");
    let child = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--rules")
        .arg(&both)
        .arg("--exit-at-end")
        .env("CITYBRAIN_PSEUDONYM_KEY", KEY)
        .env("CITYBRAIN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("citybrain starts");
    let (status, err) = wait_exit(child);
    assert!(status.success(), "the service goes on to the end: {err}");
    assert!(
        err.contains("rule failed") && err.contains("divides.sql:3"),
        "logged with file and line: {err}"
    );

    let alerts = alerts_of(&brokers, &topics.alerts);
    let mut got: Vec<String> = alerts
        .iter()
        .filter(|a| a["rule"] == "events")
        .map(|a| a["alert_id"].to_string())
        .collect();
    got.sort();
    assert_eq!(got, want, "the other rule's alerts, every one");
    let failed: Vec<_> = read_all(&brokers, &topics.dlq)
        .into_iter()
        .filter(|d| d.headers.get("citybrain.reason").map(String::as_str) == Some("rule_failed"))
        .collect();
    assert_eq!(failed.len(), 1, "one dead letter for the one failure");
    assert_eq!(failed[0].headers["citybrain.rules"], "divides");
    let v: Value = serde_json::from_str(&failed[0].payload).expect("JSON");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.to_lowercase().contains("divide by zero")),
        "{v}"
    );
}
