//! Every rule of the built-in library, tested with data files.
//!
//! For a rule `rules/library/<id>.sql` the folder `rules/tests/<id>/` holds crafted feed files
//! (`traffic.jsonl`, `police.jsonl`, ...) with events where the rule must fire and near misses
//! where it must not, a `README.md` saying which is which, and `expected.jsonl`: the alerts,
//! one per line, without `emitted_at` (the only field that changes between runs).
//!
//! The rule runs alone through the real `citybrain replay`. Set `CITYBRAIN_BLESS=1` to rewrite
//! `expected.jsonl` from the actual output after a deliberate change, then review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules")
}

fn alerts_without_emitted_at(path: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            v.as_object_mut()
                .expect("alert object")
                .remove("emitted_at");
            v.to_string()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_library_rule_fires_exactly_where_its_test_data_says() {
    let library = root().join("library");
    let sources = citybrain_rules::read_dir(&library).expect("library");
    assert!(!sources.is_empty(), "the library has rules");
    let bless = std::env::var_os("CITYBRAIN_BLESS").is_some();
    let mut missing = Vec::new();
    let mut failures = Vec::new();
    for src in &sources {
        let case = root().join("tests").join(&src.id);
        if !case.join("expected.jsonl").is_file() && !bless {
            missing.push(src.id.clone());
            continue;
        }
        let tmp = tempfile::tempdir().expect("temp dir");
        let rules = tmp.path().join("rules");
        let rule_file = rules.join(format!("{}.sql", src.id));
        std::fs::create_dir_all(rule_file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&rule_file, &src.text).expect("copy rule");
        let out_path = tmp.path().join("alerts.jsonl");
        let dead_path = tmp.path().join("dead.jsonl");
        let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
            .args(["replay", "--input"])
            .arg(&case)
            .arg("--rules")
            .arg(&rules)
            .arg("--out")
            .arg(&out_path)
            .arg("--dlq")
            .arg(&dead_path)
            .env("CITYBRAIN_PSEUDONYM_KEY", "library-test-key")
            .output()
            .expect("citybrain runs");
        assert!(
            out.status.success(),
            "{}: replay failed: {}",
            src.id,
            String::from_utf8_lossy(&out.stderr)
        );
        let dead = std::fs::read_to_string(&dead_path).unwrap_or_default();
        assert!(
            dead.is_empty(),
            "{}: test data has dead letters: {dead}",
            src.id
        );
        let actual = alerts_without_emitted_at(&out_path);
        if bless {
            let mut text = actual.join("\n");
            text.push('\n');
            std::fs::write(case.join("expected.jsonl"), text).expect("bless");
            continue;
        }
        let expected = alerts_without_emitted_at(&case.join("expected.jsonl"));
        if expected.is_empty() {
            failures.push(format!(
                "{}: expected.jsonl is empty: show where the rule fires",
                src.id
            ));
        } else if actual != expected {
            failures.push(format!(
                "{}: alerts differ\n  expected:\n    {}\n  actual:\n    {}",
                src.id,
                expected.join("\n    "),
                actual.join("\n    ")
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "rules without test data in rules/tests/<id>/: {missing:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
