//! The incident desk end to end: the rule library on a simulated city through `citybrain
//! replay --incidents --actions`, checked against the deadlines themselves.
//!
//! A first replay opens the incidents; a scripted actions file then acknowledges some halfway
//! to their deadline, some exactly at it, handles and closes some, returns some to the centre,
//! leaves the rest alone, and carries three bad actions. The replay with the actions must:
//! escalate every incident exactly at its deadline in event time (0 ms off) and never
//! otherwise, stop escalating an acknowledged incident for acknowledgement, dead-letter the bad
//! actions with a reason, and give byte-identical incident events when run twice.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const KEY: &str = "incident-test-key";

fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/library")
}

fn citybrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_citybrain"))
}

fn run(mut c: Command) -> String {
    let out = c.output().expect("run citybrain");
    assert!(
        out.status.success(),
        "{:?} failed:\n{}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A time: RFC 3339 text, or epoch milliseconds (the feeds' `ts`).
fn ms(v: &Value) -> i64 {
    if let Some(n) = v.as_i64() {
        return n;
    }
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("time: {v}")))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .timestamp_millis()
}

fn rfc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The CAP 1.2 schema: `$CITYBRAIN_CAP_XSD` (scripts/test.sh sets it from
/// scripts/cap-schema.sh), else where that script caches it.
fn cap_schema() -> PathBuf {
    let path = std::env::var_os("CITYBRAIN_CAP_XSD").map_or_else(
        || {
            Path::new(&std::env::var_os("HOME").expect("HOME"))
                .join(".cache/citybrain/cap/CAP-v1.2-schema.xsd")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no CAP 1.2 schema at {}: run scripts/cap-schema.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// `citybrain replay` of the city through the library into `out/`, with `actions`.
fn replay(city: &Path, out: &Path, actions: Option<&Path>) -> PathBuf {
    std::fs::create_dir_all(out).expect("out dir");
    let events = out.join("incidents.jsonl");
    let mut c = common::replay(
        city,
        &library(),
        &out.join("alerts.jsonl"),
        &out.join("dead.jsonl"),
        KEY,
    );
    c.arg("--incidents").arg(&events);
    c.arg("--cap").arg(out.join("cap"));
    if let Some(a) = actions {
        c.arg("--actions").arg(a);
    }
    run(c);
    events
}

/// The events of each incident, in log order.
fn by_incident(events: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut out: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in events {
        out.entry(e["incident_id"].as_str().expect("id").to_string())
            .or_default()
            .push(e);
    }
    out
}

#[test]
fn incidents_escalate_exactly_at_their_deadlines_and_replay_identically() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let city = tmp.path().join("city");
    // About three simulated hours: enough for every level of the chain to run out.
    run({
        let mut c = citybrain();
        c.args([
            "simulate",
            "--events",
            "36000",
            "--seed",
            "7",
            "--sim-rate",
            "3.5",
            "--out",
        ])
        .arg(&city);
        c
    });
    let first = lines(&replay(&city, &tmp.path().join("first"), None));
    let opened: Vec<&Value> = first.iter().filter(|e| e["type"] == "opened").collect();
    assert!(opened.len() >= 40, "only {} incidents", opened.len());

    // The script.
    let mut actions = Vec::new();
    let act = |id: &Value, action: &str, unit: &Value, at: i64| json!({"incident_id": id, "action": action, "unit": unit, "at": rfc(at)});
    let mut acked_halfway = 0;
    for (i, e) in opened.iter().enumerate() {
        let (id, unit, at, due) = (
            &e["incident_id"],
            &e["unit"],
            ms(&e["at"]),
            ms(&e["due_at"]),
        );
        match i % 4 {
            0 => {
                let ack = at + (due - at) / 2;
                actions.push(act(id, "ack", unit, ack));
                actions.push(act(id, "handled", unit, ack + 60_000));
                actions.push(act(id, "verify_ok", &json!("330100000000"), ack + 120_000));
                acked_halfway += 1;
            }
            1 => actions.push(act(id, "ack", unit, due)),
            2 => {}
            _ if unit == "330100000000" => {}
            _ => {
                let mut comment = act(id, "comment", &json!("330100000000"), at + 60_000);
                comment["comment"] = json!("watching it");
                actions.push(comment);
                actions.push(act(id, "return", unit, at + 120_000));
            }
        }
    }
    // Three bad ones: a unit outside the incident's jurisdiction, an incident that does not
    // exist, and a line that is not an action at all.
    let first_id = &opened[0]["incident_id"];
    let stranger = if opened[0]["unit"]
        .as_str()
        .is_some_and(|u| u.starts_with("330105"))
    {
        "330108001001"
    } else {
        "330105001001"
    };
    actions.push(act(
        first_id,
        "comment",
        &json!(stranger),
        ms(&opened[0]["at"]) + 1000,
    ));
    actions.push(act(
        &json!("no-such-incident"),
        "ack",
        &json!("330100000000"),
        ms(&opened[0]["at"]),
    ));
    let mut text: String = actions.iter().map(|a| format!("{a}\n")).collect();
    text.push_str("{\"incident_id\": \"x\", \"action\": \"fly\"}\n");
    let script = tmp.path().join("actions.jsonl");
    std::fs::write(&script, text).expect("actions");

    let events_path = replay(&city, &tmp.path().join("second"), Some(&script));
    let again = replay(&city, &tmp.path().join("third"), Some(&script));
    assert!(
        std::fs::read(&events_path).expect("events") == std::fs::read(&again).expect("events"),
        "two replays give byte-identical incident events"
    );
    let events = lines(&events_path);

    let max_ts = ["traffic", "police", "emergency", "market"]
        .iter()
        .flat_map(|f| lines(&city.join(format!("{f}.jsonl"))))
        .map(|r| ms(&r["ts"]))
        .max()
        .expect("events");
    let last_action = actions.iter().map(|a| ms(&a["at"])).max().expect("actions");
    let final_clock = max_ts.max(last_action);

    let (mut escalations, mut on_time_acks) = (0, 0);
    for (id, evs) in by_incident(&events) {
        // Alerts (`updated`) may land between a deadline and its firing; every other event
        // follows the deadline before it.
        let changes: Vec<&&Value> = evs.iter().filter(|e| e["type"] != "updated").collect();
        let mut acked = false;
        for w in changes.windows(2) {
            let (before, after) = (w[0], w[1]);
            let armed = !matches!(before["state"].as_str(), Some("closed" | "voided"))
                && before["type"] != "overdue"
                && !before["due_at"].is_null();
            let kind = after["type"].as_str().expect("type");
            if matches!(kind, "escalated" | "overdue") {
                assert!(
                    armed,
                    "{id}: {kind} without a deadline: {before} then {after}"
                );
                assert_eq!(
                    ms(&after["at"]),
                    ms(&before["due_at"]),
                    "{id}: {kind} at its deadline, 0 ms off"
                );
                if kind == "escalated" {
                    escalations += 1;
                    assert!(
                        !(acked && after["duty"] == "ack"),
                        "{id}: escalated for acknowledgement after it was acknowledged"
                    );
                }
            } else if armed {
                assert!(
                    ms(&after["at"]) <= ms(&before["due_at"]),
                    "{id}: {kind} at {} after the deadline {} passed without firing",
                    after["at"],
                    before["due_at"]
                );
            }
            match kind {
                "acknowledged" => {
                    acked = true;
                    if after["at"] == before["due_at"] {
                        on_time_acks += 1;
                    }
                }
                "returned" | "dispatched" => acked = false,
                _ => {}
            }
        }
        let last = changes.last().expect("events");
        if !matches!(last["state"].as_str(), Some("closed" | "voided")) && last["type"] != "overdue"
        {
            assert!(
                ms(&last["due_at"]) > final_clock,
                "{id}: deadline {} passed by the end ({}) without firing",
                last["due_at"],
                rfc(final_clock)
            );
        }
    }
    let count = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert!(escalations >= 10, "{escalations} escalations");
    assert!(
        count("overdue") >= 1,
        "some reached the city and ran out there"
    );
    assert_eq!(
        count("closed"),
        acked_halfway,
        "every scripted check closed its incident"
    );
    assert!(
        on_time_acks >= 10,
        "acknowledged exactly at the deadline: in time ({on_time_acks})"
    );
    assert!(count("returned") >= 10 && count("commented") >= 10);
    // The bad actions: dead letters with a reason, nothing changed.
    let dead: Vec<Value> = lines(&tmp.path().join("second/dead.jsonl"))
        .into_iter()
        .filter(|d| d.get("action").is_some())
        .collect();
    let reasons: Vec<&str> = dead.iter().filter_map(|d| d["reason"].as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("outside unit")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("no incident no-such-incident")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("not an action")),
        "{reasons:?}"
    );
    assert!(
        !events.iter().any(|e| e["actor"] == json!(stranger)),
        "the stranger's action changed nothing"
    );

    // Every incident as CAP 1.2: valid against OASIS's schema, one Alert per incident, an
    // Update referencing the earlier messages for each change, Exercise in a replay.
    let mut files: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("second/cap"))
        .expect("cap folder")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let xsd = cap_schema();
    for chunk in files.chunks(200) {
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&xsd)
            .args(chunk)
            .output()
            .expect("xmllint (scripts/cap-schema.sh installs it)");
        assert!(
            out.status.success(),
            "CAP messages invalid:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let xml: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("cap file"))
        .collect();
    let with = |needle: &str| xml.iter().filter(|x| x.contains(needle)).count();
    assert_eq!(with("<msgType>Alert</msgType>"), count("opened"));
    assert_eq!(with("<msgType>Cancel</msgType>"), count("voided"));
    assert!(with("<msgType>Update</msgType>") >= escalations + count("closed"));
    assert_eq!(with("<status>Exercise</status>"), files.len());
    assert_eq!(
        with("<polygon>"),
        files.len(),
        "every incident here has a cell"
    );
    let update = xml
        .iter()
        .find(|x| x.contains("<msgType>Update</msgType>"))
        .expect("an update");
    let incident = update
        .split("<incidents>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("incidents element");
    assert!(
        update.contains(&format!(
            "<references>citybrain@330100000000,citybrain.330100000000.{incident}."
        )),
        "an update references the incident's alert: {update}"
    );

    // Indicators from the log.
    let report = run({
        let mut c = citybrain();
        c.args(["incidents", "report", "--json", "--events"])
            .arg(&events_path);
        c
    });
    let rows: Vec<Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect();
    let city_total = |field: &str| -> u64 {
        rows.iter()
            .filter(|r| r["unit"] == "330100000000")
            .filter_map(|r| r[field].as_u64())
            .sum()
    };
    assert_eq!(city_total("opened"), count("opened") as u64);
    assert_eq!(city_total("closed"), count("closed") as u64);
    assert_eq!(city_total("escalated"), count("escalated") as u64);
}
