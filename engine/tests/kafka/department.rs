//! A department's feed declared in one DDL file (`engine/tests/department/grid.sql`: a nested
//! `ROW`, an `ARRAY`, a `[personal]` phone), read by the Kafka service from its topic with no
//! code change: the same alerts as `replay` of the same records, the malformed one in the
//! dead-letter topic with its topic, partition and offset.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use serde_json::Value;

use super::support::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/department")
        .join(name)
}

#[test]
fn a_department_feed_declared_in_ddl_is_read_from_kafka() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    let (topic, alerts, dlq, group) = (
        unique("grid"),
        unique("grid-alerts"),
        unique("grid-dlq"),
        unique("grid-group"),
    );
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = [&topic, &alerts, &dlq]
        .into_iter()
        .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1)))
        .collect();
    for r in futures::executor::block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e:?}"));
    }
    let records: Vec<String> = std::fs::read_to_string(fixture("grid_reports.jsonl"))
        .expect("data")
        .lines()
        .map(str::to_string)
        .collect();
    publish(&brokers, &topic, &records);
    // The catalog's topic is `city.grid`; the test's own topic stands in for it.
    let config = tmp.path().join("service.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\nalert_topic = \"{alerts}\"\n\
             dlq_topic = \"{dlq}\"\n[kafka.topics]\ngrid_reports = \"{topic}\"\n\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"10\"\n\
             [kafka.producer_properties]\n\"linger.ms\" = \"1\"\n\
             [engine]\ncommit_interval_ms = 50\n[metrics]\nlisten = \"\"\n\
             [checkpoint]\nstore = \"{}\"\n",
            tmp.path().join("checkpoints").display()
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--rules")
        .arg(fixture("rules"))
        .arg("--feeds")
        .arg(fixture("grid.sql"))
        .arg("--exit-at-end")
        .env("CITYBRAIN_PSEUDONYM_KEY", KEY)
        .env("CITYBRAIN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("citybrain starts");
    let (status, err) = wait_exit(child);
    assert!(status.success(), "service failed: {err}");

    // The oracle: replay of the same records.
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::copy(
        fixture("grid_reports.jsonl"),
        input.join("grid_reports.jsonl"),
    )
    .expect("copy");
    let out = tmp.path().join("replay.jsonl");
    let done = crate::common::replay(
        &input,
        &fixture("rules"),
        &out,
        &tmp.path().join("dead.jsonl"),
        KEY,
    )
    .arg("--feeds")
    .arg(fixture("grid.sql"))
    .output()
    .expect("replay runs");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // Replay routes alerts to a unit of the sample city (`unit`, `unit_name`); the Kafka service
    // leaves that to the incident desk: compare the rest.
    let unrouted = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("unit");
            o.remove("unit_name");
        }
        v
    };
    let want: Vec<Value> = std::fs::read_to_string(&out)
        .expect("alerts")
        .lines()
        .map(|l| unrouted(comparable(serde_json::from_str(l).expect("alert"))))
        .collect();
    let got: Vec<Value> = alerts_of(&brokers, &alerts)
        .into_iter()
        .map(|v| unrouted(comparable(v)))
        .collect();
    assert_eq!(want.len(), 2, "{want:?}");
    assert_eq!(sorted(got), sorted(want));
    let dead = read_all(&brokers, &dlq);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].headers["__connect.errors.topic"], topic);
    assert_eq!(dead[0].headers["__connect.errors.offset"], "5");
    assert_eq!(dead[0].headers["citybrain.feed"], "grid_reports");
}
