//! Nexmark through citybrain: each query of `rules/tests/nexmark/<q>/query.sql`, as Flink runs
//! it over `feeds/nexmark.sql`, runs through the real `citybrain replay --feeds
//! feeds/nexmark.sql` on the committed 2,000-event set (`simulate --nexmark --events 2000
//! --sim-rate 50 --seed 42`, pinned by `data.sha256` and `engine/tests/cli.rs`), and must give
//! the multiset of rows Apache Flink 2.3 gave (`flink_expected.jsonl`, written by
//! `scripts/flink/nexmark.py golden`, never by hand). The query files run unchanged: no header,
//! Flink's identifiers (`dateTime`, `bidTimeType`) as Flink has them.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/rows.rs"]
mod rows;
use rows::read_rows;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_nexmark_query_gives_flinks_rows() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("nexmark");
    let made = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(["simulate", "--nexmark", "--out"])
        .arg(&data)
        .args(["--events", "2000", "--sim-rate", "50", "--seed", "42"])
        .output()
        .expect("citybrain runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cases = root().join("rules/tests/nexmark");
    let mut names: Vec<String> = std::fs::read_dir(&cases)
        .expect("rules/tests/nexmark exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("query.sql").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 11,
        "the Nexmark queries are present: {names:?}"
    );
    let mut failures = Vec::new();
    for name in &names {
        let case = cases.join(name);
        let out_path = tmp.path().join(format!("{name}.jsonl"));
        let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
            .arg("replay")
            .arg("--feeds")
            .arg(root().join("feeds/nexmark.sql"))
            .arg("--input")
            .arg(&data)
            .arg("--rules")
            .arg(case.join("query.sql"))
            .arg("--out")
            .arg(&out_path)
            .arg("--dlq")
            .arg(tmp.path().join(format!("{name}.dead.jsonl")))
            .env("CITYBRAIN_PSEUDONYM_KEY", "nexmark-key")
            .output()
            .expect("citybrain runs");
        if !out.status.success() {
            failures.push(format!(
                "{name}: replay failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let actual = read_rows(&out_path, Some("data"));
        let expected = read_rows(&case.join("flink_expected.jsonl"), None);
        if actual != expected {
            let only = |a: &[String], b: &[String]| -> Vec<String> {
                a.iter()
                    .filter(|r| !b.contains(r))
                    .take(5)
                    .cloned()
                    .collect()
            };
            failures.push(format!(
                "{name}: {} rows, Flink {}\n  only citybrain (first 5):\n    {}\n  only Flink (first 5):\n    {}",
                actual.len(),
                expected.len(),
                only(&actual, &expected).join("\n    "),
                only(&expected, &actual).join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A whole Flink SQL script, as Flink's SQL client runs it (the tables' DDL, a sink table, then
/// `INSERT INTO` the sink), is the catalog and the rule at once: `replay --rules SCRIPT` with
/// no `--feeds` gives Flink's rows.
#[test]
fn a_flink_script_runs_unchanged_as_catalog_and_rules() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("nexmark");
    let made = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(["simulate", "--nexmark", "--out"])
        .arg(&data)
        .args(["--events", "2000", "--sim-rate", "50", "--seed", "42"])
        .output()
        .expect("citybrain runs");
    assert!(made.status.success());
    let case = root().join("rules/tests/nexmark/q5");
    let script = format!(
        "{}\nCREATE TABLE nexmark_q5 (auction BIGINT, num BIGINT) WITH ('connector' = 'blackhole');\n\n\
         INSERT INTO nexmark_q5\n{};\n",
        std::fs::read_to_string(root().join("feeds/nexmark.sql")).expect("catalog"),
        std::fs::read_to_string(case.join("query.sql"))
            .expect("query")
            .trim_end()
            .trim_end_matches(';')
    );
    let rules = tmp.path().join("q5_script.sql");
    std::fs::write(&rules, script).expect("script");
    let out_path = tmp.path().join("alerts.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .arg("replay")
        .arg("--input")
        .arg(&data)
        .arg("--rules")
        .arg(&rules)
        .arg("--out")
        .arg(&out_path)
        .arg("--dlq")
        .arg(tmp.path().join("dead.jsonl"))
        .env("CITYBRAIN_PSEUDONYM_KEY", "nexmark-key")
        .output()
        .expect("citybrain runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let actual = read_rows(&out_path, Some("data"));
    let expected = read_rows(&case.join("flink_expected.jsonl"), None);
    assert!(!expected.is_empty());
    assert_eq!(actual, expected);
}
