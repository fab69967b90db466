//! The command line as users drive it: late data, `rules check`, the demo.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn citybrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(args)
        .env("CITYBRAIN_PSEUDONYM_KEY", "cli-test-key")
        .output()
        .expect("citybrain runs")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn traffic(id: &str, ts: &str, road: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","ts":"{ts}","lat":30.25,"lon":120.17,"sensor_id":"S1","road_id":"{road}","speed_kmh":30,"vehicle_count":4,"occupancy":0.2,"plate":null,"kind":"flow"}}"#
    )
}

const PER_MINUTE: &str = "-- title: Readings per road per minute\n-- severity: info\n\
SELECT road_id, window_start, window_end, COUNT(*) AS readings\n\
FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '1' MINUTE))\n\
GROUP BY road_id, window_start, window_end\n";

#[test]
fn late_events_go_to_the_dead_letter_file_and_do_not_change_emitted_windows() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let lines = [
        traffic("a1", "2026-03-02T08:00:10Z", "R1"),
        traffic("a2", "2026-03-02T08:00:50Z", "R1"),
        // Disorder within the 5 s bound: on time.
        traffic("a3", "2026-03-02T08:00:47Z", "R1"),
        // Moves the watermark to 08:01:05, past the end of the 08:00 window.
        traffic("a4", "2026-03-02T08:01:10+00:00", "R1"),
        // Behind the watermark, for the already emitted 08:00 window: late.
        traffic("late", "2026-03-02T16:00:30+08:00", "R1"),
        traffic("a5", "2026-03-02T08:01:20Z", "R2"),
    ];
    write(
        &tmp.path().join("in/traffic.jsonl"),
        &(lines.join("\n") + "\n"),
    );
    write(&tmp.path().join("rules/per_minute.sql"), PER_MINUTE);
    let out = citybrain(&[
        "replay",
        "--input",
        tmp.path().join("in").to_str().unwrap(),
        "--rules",
        tmp.path().join("rules").to_str().unwrap(),
        "--out",
        tmp.path().join("alerts.jsonl").to_str().unwrap(),
        "--dlq",
        tmp.path().join("dead.jsonl").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dead: Vec<Value> = std::fs::read_to_string(tmp.path().join("dead.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        dead.len(),
        1,
        "exactly the late event is dead-lettered: {dead:?}"
    );
    assert_eq!(dead[0]["reason"], "late");
    assert_eq!(dead[0]["rules"], serde_json::json!(["per_minute"]));
    assert_eq!(dead[0]["origin"]["line"], 5);
    assert!(
        dead[0]["record"]
            .as_str()
            .unwrap()
            .contains(r#""event_id":"late""#)
    );

    let mut alerts: Vec<(String, String, i64)> =
        std::fs::read_to_string(tmp.path().join("alerts.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|a| {
                (
                    a["window_start"].as_str().unwrap().to_string(),
                    a["data"]["road_id"].as_str().unwrap().to_string(),
                    a["data"]["readings"].as_i64().unwrap(),
                )
            })
            .collect();
    alerts.sort();
    assert_eq!(
        alerts,
        vec![
            ("2026-03-02T08:00:00.000Z".to_string(), "R1".to_string(), 3),
            ("2026-03-02T08:01:00.000Z".to_string(), "R1".to_string(), 1),
            ("2026-03-02T08:01:00.000Z".to_string(), "R2".to_string(), 1),
        ]
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("late events: 1"),
        "summary counts late events:\n{stdout}"
    );
}

#[test]
fn rules_check_reports_every_problem_with_file_and_line() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("rules");
    write(&dir.join("traffic/ok.sql"), PER_MINUTE);
    write(
        &dir.join("traffic/typo.sql"),
        "-- title: Slow roads\n-- severity: high\nSELECT road_id, window_start, window_end\n\
         FROM TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '5' MINUTES))\n\
         WHERE sped_kmh < 10\nGROUP BY road_id, window_start, window_end\n",
    );
    write(
        &dir.join("police/syntax.sql"),
        "-- title: Broken\n-- severity: low\nSELECT category,\nFROM police WHERE\n",
    );
    write(
        &dir.join("market/feed.sql"),
        "-- title: Unknown feed\n-- severity: low\nSELECT COUNT(*) AS n, window_start, window_end\n\
         FROM TABLE(TUMBLE(TABLE markt, DESCRIPTOR(ts), INTERVAL '1' HOUR))\n\
         GROUP BY window_start, window_end\n",
    );
    let out = citybrain(&["rules", "check", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code 1 on problems:\n{stderr}"
    );
    let typo = dir.join("traffic/typo.sql");
    assert!(
        stderr.contains(&format!("{}:5:7:", typo.display())) && stderr.contains("speed_kmh"),
        "unknown column named at its line and column with a suggestion:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:4:", dir.join("police/syntax.sql").display())),
        "syntax error at its line:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:4:", dir.join("market/feed.sql").display()))
            && stderr.contains("did you mean `market`"),
        "unknown feed with a suggestion:\n{stderr}"
    );
    assert!(
        stderr.contains("3 problem(s) in 3 of 4 rule file(s)"),
        "{stderr}"
    );

    let out = citybrain(&[
        "rules",
        "check",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../rules/library")
            .to_str()
            .unwrap(),
    ]);
    assert!(
        out.status.success(),
        "the built-in library is valid:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_demo_prints_readable_alerts() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .current_dir(tmp.path())
        .args([
            "run", "--events", "40000", "--rate", "1000000", "--speed", "3600",
        ])
        .env_remove("CITYBRAIN_PSEUDONYM_KEY")
        .output()
        .expect("citybrain runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let alert_lines: Vec<&str> = stdout.lines().filter(|l| l.contains('/')).collect();
    assert!(
        !alert_lines.is_empty(),
        "the demo prints alerts:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("development key"),
        "running without a key warns loudly:\n{stderr}"
    );
}

#[test]
fn rules_reading_each_other_in_a_cycle_are_rejected_naming_the_cycle() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let view = |name: &str, reads: &str| {
        format!(
            "-- title: {name}\n-- severity: info\n-- emit: view\n\
             SELECT window_start, window_end, window_time, COUNT(*) AS n\n\
             FROM TABLE(TUMBLE(TABLE {reads}, DESCRIPTOR(window_time), INTERVAL '1' HOUR))\n\
             GROUP BY window_start, window_end, window_time\n"
        )
    };
    write(&tmp.path().join("a/first.sql"), &view("first", "second"));
    write(&tmp.path().join("b/second.sql"), &view("second", "first"));
    let out = citybrain(&["rules", "check", tmp.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "first.sql:1:1: rules read each other in a cycle: a/first → b/second → a/first"
        ) || err.contains(
            "second.sql:1:1: rules read each other in a cycle: b/second → a/first → b/second"
        ),
        "{err}"
    );
}

/// Lines of a child's output, read on a thread so a test can wait for one with a deadline.
fn lines_of(r: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `citybrain run` of the simulator through the rules in `rules`, watched for changes, alerts
/// as JSON lines: the process, and its stdout and stderr lines as they come.
fn live_run(
    rules: &Path,
    dead: &Path,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args([
            "run", "--json", "--rate", "2000", "--speed", "60", "--rules",
        ])
        .arg(rules)
        .args(["--dlq"])
        .arg(dead)
        .env("CITYBRAIN_PSEUDONYM_KEY", "cli-test-key")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("citybrain runs");
    let out = lines_of(child.stdout.take().expect("stdout"));
    let err = lines_of(child.stderr.take().expect("stderr"));
    (child, out, err)
}

/// Whether a line of `run --json` output is an alert of rule `id`.
fn rule_is(id: &'static str) -> impl Fn(&str) -> bool {
    move |l: &str| serde_json::from_str::<Value>(l).is_ok_and(|v| v["rule"] == id)
}

/// Waits (at most a minute) for a line satisfying `want`; every line seen goes to `seen`.
fn wait_for(
    rx: &std::sync::mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    want: impl Fn(&str) -> bool,
) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = want(&line);
                seen.push(line);
                if hit {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn run_picks_up_a_new_rule_without_restart_and_reports_a_broken_one() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let rules = tmp.path().join("rules");
    let per_event = |title: &str| {
        format!(
            "-- title: {title}\n-- severity: info\n\
             SELECT event_id, road_id FROM traffic WHERE kind = 'flow'\n"
        )
    };
    write(&rules.join("first.sql"), &per_event("first"));
    let (mut child, out, err) = live_run(&rules, &tmp.path().join("dead.jsonl"));
    let (mut seen, mut logs) = (Vec::new(), Vec::new());
    let first_runs = wait_for(&out, &mut seen, rule_is("first"));
    // A new rule and a broken one are dropped into the folder of the running engine.
    write(&rules.join("second.sql"), &per_event("second"));
    write(
        &rules.join("broken.sql"),
        "-- title: broken\n-- severity: info\nSELECT no_such_column FROM traffic\n",
    );
    let second_runs = wait_for(&out, &mut seen, rule_is("second"));
    let first_still_runs = wait_for(&out, &mut seen, rule_is("first"));
    let reported = wait_for(&err, &mut logs, |l| {
        l.contains("rule change rejected") && l.contains("broken.sql:3:8")
    });
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(first_runs, "the first rule alerts: {seen:?}");
    assert!(second_runs, "the added rule alerts without a restart");
    assert!(first_still_runs, "the other rules keep running");
    assert!(
        reported,
        "the broken rule is reported with its position: {logs:?}"
    );
}

/// Rule files that used to crash or block the engine: `WITH RECURSIVE` (a panic), a window
/// every millisecond over a day, a self `CROSS JOIN`, an `AND` chain of 3,000 terms (a stack
/// overflow), a binary file and a link loop (which stopped the folder's reading).
fn dangerous_rules(dir: &Path) {
    const H: &str = "-- title: dangerous\n-- severity: info\n";
    write(
        &dir.join("recursive.sql"),
        &format!(
            "{H}WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3)\nSELECT n FROM r\n"
        ),
    );
    write(
        &dir.join("hop.sql"),
        &format!(
            "{H}SELECT road_id, window_start, window_end, COUNT(*) AS n\n\
             FROM TABLE(HOP(TABLE traffic, DESCRIPTOR(ts), INTERVAL '1' MILLISECOND, INTERVAL '1' DAY))\n\
             GROUP BY road_id, window_start, window_end\n"
        ),
    );
    let w = "TABLE(TUMBLE(TABLE traffic, DESCRIPTOR(ts), INTERVAL '10' MINUTES))";
    write(
        &dir.join("cross.sql"),
        &format!(
            "{H}SELECT a.event_id, b.event_id AS other, a.window_start, a.window_end\n\
             FROM {w} a\nCROSS JOIN {w} b\n"
        ),
    );
    let terms: Vec<String> = (0..3_000).map(|i| format!("speed_kmh > {i}")).collect();
    write(
        &dir.join("deep.sql"),
        &format!(
            "{H}SELECT event_id FROM traffic\nWHERE {}\n",
            terms.join(" AND ")
        ),
    );
    std::fs::write(dir.join("binary.sql"), b"SQLite format 3\0\x10\x00\x01\x01").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink(".", dir.join("loop")).expect("symlink");
}

#[test]
fn rules_check_reports_every_dangerous_rule_and_file_at_its_position() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("rules");
    write(&dir.join("ok.sql"), PER_MINUTE);
    dangerous_rules(&dir);
    let out = citybrain(&["rules", "check", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code 1:\n{stderr}");
    let at = |file: &str, pos: &str, text: &str| {
        let want = format!("{}:{pos}: {text}", dir.join(file).display());
        assert!(stderr.contains(&want), "want `{want}` in:\n{stderr}");
    };
    at("recursive.sql", "3:1", "WITH RECURSIVE is not supported");
    at(
        "hop.sql",
        "4:73",
        "HOP 1d every 1ms puts every row in 86400000 windows",
    );
    at("cross.sql", "5:1", "this inner join matches rows on no key");
    at(
        "deep.sql",
        "4:57709",
        "the rule nests more than 200 levels deep here",
    );
    at(
        "binary.sql",
        "1:16",
        "a binary file (a NUL byte), not SQL text",
    );
    #[cfg(unix)]
    {
        at("loop", "1:1", "leads to");
        assert!(
            stderr.contains("6 problem(s) in 6 of 7 rule file(s)"),
            "every file once, every problem:\n{stderr}"
        );
    }
}

#[test]
fn replay_refuses_a_deeply_nested_rule_with_a_message_not_an_abort() {
    let tmp = tempfile::tempdir().expect("temp dir");
    write(
        &tmp.path().join("in/traffic.jsonl"),
        &(traffic("a1", "2026-03-02T08:00:10Z", "R1") + "\n"),
    );
    let rules = tmp.path().join("rules");
    dangerous_rules(&rules);
    let out = citybrain(&[
        "replay",
        "--input",
        tmp.path().join("in").to_str().unwrap(),
        "--rules",
        rules.join("deep.sql").to_str().unwrap(),
        "--out",
        tmp.path().join("alerts.jsonl").to_str().unwrap(),
        "--dlq",
        tmp.path().join("dead.jsonl").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an error, not a crash:\n{stderr}"
    );
    assert!(
        stderr.contains("deep.sql:4:") && stderr.contains("nests more than 200 levels"),
        "{stderr}"
    );
}

#[test]
fn run_reports_dangerous_rules_dropped_into_its_folder_and_keeps_reloading() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let rules = tmp.path().join("rules");
    let per_event = |title: &str| {
        format!(
            "-- title: {title}\n-- severity: info\n\
             SELECT event_id, road_id FROM traffic WHERE kind = 'flow'\n"
        )
    };
    write(&rules.join("first.sql"), &per_event("first"));
    let (mut child, out, err) = live_run(&rules, &tmp.path().join("dead.jsonl"));
    let (mut seen, mut logs) = (Vec::new(), Vec::new());
    let first_runs = wait_for(&out, &mut seen, rule_is("first"));
    dangerous_rules(&rules);
    let reported = wait_for(&err, &mut logs, |l| {
        l.contains("rule change rejected") && l.contains("recursive.sql:3:1")
    });
    // Later changes are still taken: the folder is still watched and read.
    write(&rules.join("second.sql"), &per_event("second"));
    let second_runs = wait_for(&out, &mut seen, rule_is("second"));
    let status = child.try_wait().expect("try_wait");
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(first_runs, "the first rule alerts: {seen:?}");
    assert!(reported, "the recursive rule is reported: {logs:?}");
    assert_eq!(status, None, "the engine is still running: {logs:?}");
    assert!(second_runs, "a rule added after them still loads: {logs:?}");
    let logs = logs.join("\n");
    for file in [
        "hop.sql:4:73",
        "cross.sql:5:1",
        "deep.sql:4:",
        "binary.sql:1:16",
    ] {
        assert!(logs.contains(file), "{file} reported:\n{logs}");
    }
}

/// The Nexmark expectations in `rules/tests/nexmark/` were made by Flink from exactly the files
/// `simulate --nexmark --events 2000 --sim-rate 50 --seed 42` writes: a change to the generator
/// must come with new expectations (rules/tests/nexmark/README.md says how).
#[test]
fn simulate_nexmark_writes_the_set_flinks_expectations_were_made_from() {
    use sha2::Digest;
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("nexmark");
    let run = citybrain(&[
        "simulate",
        "--nexmark",
        "--out",
        out.to_str().expect("utf-8"),
        "--events",
        "2000",
        "--sim-rate",
        "50",
        "--seed",
        "42",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let sums = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/tests/nexmark/data.sha256");
    let sums = std::fs::read_to_string(&sums).expect("data.sha256");
    let mut files = 0;
    for line in sums.lines() {
        let (want, file) = line.split_once("  ").expect("sha256sum format");
        let bytes = std::fs::read(out.join(file)).expect(file);
        let got: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            got, want,
            "{file} differs from the set the Nexmark expectations were made from"
        );
        files += 1;
    }
    assert_eq!(files, 3, "person, auction and bid");
}

fn police(id: &str, ts: &str, category: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","ts":"{ts}","lat":30.25,"lon":120.17,"incident_id":"I-{id}","category":"{category}","priority":3,"reporter_phone":"13500000000"}}"#
    )
}

/// Alerts of a replay: (rule, alert_id, the alert without `alert_id` and `emitted_at`),
/// sorted.
fn replayed_alerts(tmp: &Path, batch_size: &str) -> Vec<(String, String, String)> {
    let out_path = tmp.join(format!("alerts-{batch_size}.jsonl"));
    let out = citybrain(&[
        "replay",
        "--input",
        tmp.join("in").to_str().unwrap(),
        "--rules",
        tmp.join("rules").to_str().unwrap(),
        "--out",
        out_path.to_str().unwrap(),
        "--dlq",
        tmp.join("dead.jsonl").to_str().unwrap(),
        "--batch-size",
        batch_size,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut alerts: Vec<(String, String, String)> = std::fs::read_to_string(&out_path)
        .expect("alerts")
        .lines()
        .map(|l| {
            let mut a: Value = serde_json::from_str(l).expect("json");
            let o = a.as_object_mut().expect("object");
            let id = o.remove("alert_id").expect("alert_id");
            // When emitted, in wall-clock: it depends on how input is batched; nothing else
            // does (not even the event time of rows that select no time column).
            o.remove("emitted_at");
            (
                o["rule"].as_str().expect("rule").to_string(),
                id.as_str().expect("id").to_string(),
                a.to_string(),
            )
        })
        .collect();
    alerts.sort();
    alerts
}

#[test]
fn alert_ids_tell_apart_the_rows_of_one_event_and_reused_event_ids_and_survive_a_replay() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut traffic_lines = Vec::new();
    for i in 0..20 {
        let ts = format!("2026-03-02T08:{:02}:{:02}Z", i / 4, (i * 13) % 60);
        traffic_lines.push(traffic(&format!("t{i}"), &ts, &format!("R{}", i % 3)));
    }
    // Two records reusing one event_id (a sensor's counter reset), on other roads.
    traffic_lines.push(traffic("t3", "2026-03-02T08:07:00Z", "R7"));
    traffic_lines.push(traffic("t3", "2026-03-02T08:08:00Z", "R8"));
    write(
        &tmp.path().join("in/traffic.jsonl"),
        &(traffic_lines.join("\n") + "\n"),
    );
    // Three police reports of other kinds in the same cell and 10 minutes.
    let police_lines = [
        police("p1", "2026-03-02T08:01:00Z", "fight"),
        police("p2", "2026-03-02T08:02:00Z", "theft"),
        police("p3", "2026-03-02T08:03:00Z", "noise"),
        // Moves the police watermark past the first window.
        police("p4", "2026-03-02T08:30:00Z", "noise"),
    ];
    write(
        &tmp.path().join("in/police.jsonl"),
        &(police_lines.join("\n") + "\n"),
    );
    let rules = tmp.path().join("rules");
    const H: &str = "-- severity: info\n";
    // Several rows per event: one per element.
    write(
        &rules.join("unnest.sql"),
        &format!(
            "-- title: unnest\n{H}SELECT event_id, road_id, \
             unnest(make_array('north', 'south', 'east')) AS side FROM traffic\n"
        ),
    );
    // One traffic event joined with each police report of its cell: the police side selects
    // no event_id, so only the traffic event's reaches the result.
    let w = |t: &str| format!("TABLE(TUMBLE(TABLE {t}, DESCRIPTOR(ts), INTERVAL '10' MINUTES))");
    write(
        &rules.join("join.sql"),
        &format!(
            "-- title: join\n{H}SELECT L.event_id, L.road_id, L.window_start, L.window_end, R.category\n\
             FROM (SELECT event_id, road_id, h3_cell(lat, lon, 8) AS cell, window_start, window_end FROM {}) L\n\
             JOIN (SELECT category, h3_cell(lat, lon, 8) AS cell, window_start, window_end FROM {}) R\n\
             ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.cell = R.cell\n",
            w("traffic"),
            w("police")
        ),
    );
    write(
        &rules.join("per_event.sql"),
        &format!("-- title: per event\n{H}SELECT event_id, road_id FROM traffic\n"),
    );
    let alerts = replayed_alerts(tmp.path(), "8192");
    for rule in ["unnest", "join", "per_event"] {
        let of_rule: Vec<&(String, String, String)> =
            alerts.iter().filter(|a| a.0 == rule).collect();
        let ids: std::collections::BTreeSet<&str> = of_rule.iter().map(|a| a.1.as_str()).collect();
        let contents: std::collections::BTreeSet<&str> =
            of_rule.iter().map(|a| a.2.as_str()).collect();
        assert!(!of_rule.is_empty(), "{rule} alerts");
        assert_eq!(
            contents.len(),
            of_rule.len(),
            "{rule}: every alert differs from every other"
        );
        assert_eq!(
            ids.len(),
            of_rule.len(),
            "{rule}: no two different alerts share an id: {of_rule:#?}"
        );
    }
    assert_eq!(alerts.iter().filter(|a| a.0 == "unnest").count(), 66);
    assert_eq!(alerts.iter().filter(|a| a.0 == "per_event").count(), 22);
    assert!(alerts.iter().filter(|a| a.0 == "join").count() >= 3 * 5);
    // A replay (in batches of one record, so every emission is cut otherwise) gives every
    // alert the id it had.
    assert_eq!(replayed_alerts(tmp.path(), "1"), alerts);
}

/// Rules that fail while running: an integer division by zero (on the one record with no
/// vehicles) and a regular expression too large to compile.
const DIVIDES: &str = "-- title: divides\n-- severity: info\n\
SELECT event_id, 100 / vehicle_count AS share\n\
FROM traffic\n";
const REGEX: &str = "-- title: regex\n-- severity: info\n\
SELECT event_id\nFROM traffic\n\
WHERE regexp_like(road_id, '((a{1000}){1000}){1000}')\n";

fn replay_folder(tmp: &Path, rules: &[(&str, &str)]) -> (Output, Vec<Value>, Vec<Value>) {
    let dir = tmp.join(format!("rules{}", rules.len()));
    for (name, text) in rules {
        write(&dir.join(name), text);
    }
    let (alerts, dead) = (tmp.join("alerts.jsonl"), tmp.join("dead.jsonl"));
    let out = citybrain(&[
        "replay",
        "--input",
        tmp.join("in").to_str().unwrap(),
        "--rules",
        dir.to_str().unwrap(),
        "--out",
        alerts.to_str().unwrap(),
        "--dlq",
        dead.to_str().unwrap(),
    ]);
    let read = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    (out, read(&alerts), read(&dead))
}

#[test]
fn replay_stops_a_rule_failing_at_run_time_alone_and_dead_letters_why() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = (0..40)
        .map(|i| {
            let line = traffic(
                &format!("e{i}"),
                &format!("2026-03-02T08:{:02}:{:02}Z", i / 4, (i % 4) * 15),
                if i % 3 == 0 { "R1" } else { "R2" },
            );
            if i == 17 {
                line.replace(r#""vehicle_count":4"#, r#""vehicle_count":0"#)
            } else {
                line
            }
        })
        .collect();
    write(
        &tmp.path().join("in/traffic.jsonl"),
        &(lines.join("\n") + "\n"),
    );
    let (out, alone, none) = replay_folder(tmp.path(), &[("per_minute.sql", PER_MINUTE)]);
    assert!(out.status.success());
    assert!(none.is_empty());
    let (out, with, dead) = replay_folder(
        tmp.path(),
        &[
            ("per_minute.sql", PER_MINUTE),
            ("divides.sql", DIVIDES),
            ("regex.sql", REGEX),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay ends normally: {stderr}");

    let ids = |alerts: &[Value], rule: &str| -> Vec<String> {
        let mut ids: Vec<String> = alerts
            .iter()
            .filter(|a| a["rule"] == rule)
            .map(|a| a["alert_id"].as_str().expect("id").to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(alone.len(), 20, "2 roads in 10 minutes");
    assert_eq!(
        ids(&with, "per_minute"),
        ids(&alone, "per_minute"),
        "the other rule gives every alert it gives alone"
    );
    assert!(
        ids(&with, "divides").len() < 40,
        "the dividing rule stopped at the record without vehicles"
    );

    let failed: Vec<&Value> = dead
        .iter()
        .filter(|d| d["reason"] == "rule_failed")
        .collect();
    assert_eq!(failed.len(), 2, "one dead letter per failed rule: {dead:?}");
    for (rule, why) in [("divides", "divide by zero"), ("regex", "regex")] {
        let letter = failed
            .iter()
            .find(|d| d["rules"] == serde_json::json!([rule]))
            .unwrap_or_else(|| panic!("{rule} dead-lettered: {failed:?}"));
        let at = letter["at"].as_str().expect("at");
        assert!(at.ends_with(&format!("{rule}.sql:3")), "{at}");
        let detail = letter["detail"].as_str().expect("detail").to_lowercase();
        assert!(detail.contains(why), "{rule}: {detail}");
        assert_eq!(letter["feed"], "traffic");
        assert!(
            letter["batch_starts_at"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("traffic.jsonl")),
            "{letter}"
        );
        assert!(
            stderr.contains(&format!("{rule}.sql:3")) && stderr.contains("rule failed"),
            "logged with the rule's file and line: {stderr}"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rules stopped after failing") && stdout.contains("divides"),
        "the summary names the stopped rules:\n{stdout}"
    );
}

#[test]
fn run_stops_a_failing_rule_dropped_into_its_folder_and_runs_it_again_once_fixed() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let rules = tmp.path().join("rules");
    let dead = tmp.path().join("dead.jsonl");
    let per_event = |title: &str, select: &str| {
        format!(
            "-- title: {title}\n-- severity: info\n\
             SELECT event_id, {select}\nFROM traffic WHERE kind = 'flow'\n"
        )
    };
    write(&rules.join("first.sql"), &per_event("first", "road_id"));
    let (mut child, out, err) = live_run(&rules, &dead);
    let (mut seen, mut logs) = (Vec::new(), Vec::new());
    let first_runs = wait_for(&out, &mut seen, rule_is("first"));
    // Every non-null count minus itself is zero: the first batch stops the rule.
    write(
        &rules.join("divides.sql"),
        &per_event("divides", "100 / (vehicle_count - vehicle_count) AS share"),
    );
    let reported = wait_for(&err, &mut logs, |l| {
        l.contains("rule failed") && l.contains("divides.sql:3")
    });
    let first_still_runs = wait_for(&out, &mut seen, rule_is("first"));
    let status = child.try_wait().expect("try_wait");
    // Fixed in the folder, it runs again.
    write(
        &rules.join("divides.sql"),
        &per_event(
            "divides",
            "100 / NULLIF(vehicle_count - vehicle_count, 0) AS share, 'fixed' AS version",
        ),
    );
    let back = wait_for(&out, &mut seen, |l| {
        serde_json::from_str::<Value>(l)
            .is_ok_and(|v| v["rule"] == "divides" && v["data"]["version"] == "fixed")
    });
    let alive = child.try_wait().expect("try_wait");
    // Ctrl-C: the engine stops gracefully, flushing its sinks.
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    // Returns when stderr closes, as the engine exits (or after its deadline).
    wait_for(&err, &mut logs, |_| false);
    child.wait().expect("wait");
    let letters = std::fs::read_to_string(&dead).unwrap_or_default();
    assert!(interrupted, "SIGINT sent");
    assert!(first_runs, "the first rule alerts: {seen:?}");
    assert!(
        reported,
        "the failure is logged with file and line: {logs:?}"
    );
    assert_eq!(status, None, "the engine goes on: {logs:?}");
    assert!(first_still_runs, "the other rule goes on");
    assert!(back, "the fixed rule alerts again: {logs:?}");
    assert_eq!(alive, None, "still running");
    assert!(
        letters
            .lines()
            .any(|l| l.contains(r#""reason":"rule_failed""#) && l.contains("divides")),
        "a rule_failed dead letter: {letters}"
    );
}
