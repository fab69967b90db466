//! A department joins with one DDL file: `engine/tests/department/grid.sql` declares urban
//! management's grid reports (a nested `ROW` for the place, an `ARRAY` of tags, a `[personal]`
//! phone, an `[id]` column), which no Rust code of citybrain names. Its rules and data were
//! written for this test; `rules check` and `replay` take them through `--feeds` alone. The
//! same feed over Kafka (a real broker) is `engine/tests/kafka/department.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const KEY: &str = "department-test-key";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/department")
        .join(name)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn rules_check_reads_the_department_catalog() {
    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(["rules", "check"])
        .arg(fixture("rules"))
        .arg("--feeds")
        .arg(fixture("grid.sql"))
        .output()
        .expect("citybrain runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("garbage_pileup"), "{stdout}");
    assert!(stdout.contains("blocked_lane"), "{stdout}");
    // Without the department's catalog the table does not exist: the check says so.
    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(["rules", "check"])
        .arg(fixture("rules"))
        .output()
        .expect("citybrain runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("grid_reports"), "{text}");
}

#[test]
fn replay_runs_the_department_feed_with_nested_fields() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::copy(
        fixture("grid_reports.jsonl"),
        input.join("grid_reports.jsonl"),
    )
    .expect("copy data");
    let (alerts, dead) = (
        tmp.path().join("alerts.jsonl"),
        tmp.path().join("dead.jsonl"),
    );
    let out = common::replay(&input, &fixture("rules"), &alerts, &dead, KEY)
        .arg("--feeds")
        .arg(fixture("grid.sql"))
        .output()
        .expect("citybrain runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = lines(&alerts);
    let of = |rule: &str| -> Vec<&Value> { alerts.iter().filter(|a| a["rule"] == rule).collect() };
    // G-001, G-002 and G-005 in Xihu between 08:00 and 08:10 (G-006's tags are not an array: a
    // dead letter; Shangcheng has two; G-008 is in the next window).
    let pileup = of("garbage_pileup");
    assert_eq!(pileup.len(), 1, "{alerts:?}");
    let data = &pileup[0]["data"];
    assert_eq!(data["district"], "Xihu");
    assert_eq!(data["reports"], 3);
    assert_eq!(data["window_start"], "2026-03-02T08:00:00.000Z");
    let blocked = of("blocked_lane");
    assert_eq!(blocked.len(), 1, "{alerts:?}");
    let data = &blocked[0]["data"];
    assert_eq!(data["report_id"], "G-005");
    assert_eq!(data["street"], "Jiaogong Rd");
    // An ARRAY column comes out as a JSON array.
    assert_eq!(data["tags"], serde_json::json!(["garbage", "blocked"]));
    // The [personal] phone left the decoder as a pseudonym.
    let phone = data["reporter_phone"].as_str().expect("a pseudonym");
    assert!(!phone.is_empty() && phone != "13900000005", "{phone}");
    let text = std::fs::read_to_string(tmp.path().join("alerts.jsonl")).expect("alerts");
    assert!(
        !text.contains("1390000000"),
        "a raw phone number in the alerts"
    );
    // The one malformed record, with its reason and origin.
    let dead = lines(&dead);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["reason"], "malformed");
    assert_eq!(dead[0]["feed"], "grid_reports");
    assert_eq!(dead[0]["origin"]["line"], 6);
    let detail = dead[0]["detail"].as_str().expect("detail");
    assert!(detail.contains("tags"), "{detail}");
}
