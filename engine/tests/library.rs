//! Every rule of the built-in library, tested with data files.
//!
//! For a rule `rules/library/<id>.sql` the folder `rules/tests/<id>/` holds crafted feed files
//! (`traffic.jsonl`, `police.jsonl`, ...) with events where the rule must fire and near misses
//! where it must not, a `README.md` saying which is which, and `expected.jsonl`: the alerts,
//! one per line, without `emitted_at` (the only field that changes between runs).
//!
//! The rule runs through the real `citybrain replay`, alone except for the library's views
//! (`-- emit: view`), which are copied next to it so that chained rules read them as in
//! production; views raise no alerts, so the alerts are the rule's own. A view under test runs
//! with its header switched to `-- emit: alert`, so its rows are compared as alerts (a copy of it
//! as a view is kept too, in case another view reads it). Set `CITYBRAIN_BLESS=1` to rewrite
//! `expected.jsonl` from the actual output after a deliberate change, then review the diff.

mod common;

use std::path::{Path, PathBuf};

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

/// The header lines of a rule: the comment (and blank) lines before the query.
fn header_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

/// The index of the `-- emit: view` header line, if the rule is a view.
fn view_header_line(text: &str) -> Option<usize> {
    header_lines(text)
        .find(|(_, l)| {
            let body = l.trim_start().trim_start_matches('-');
            body.split_once(':').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("emit") && v.trim().eq_ignore_ascii_case("view")
            })
        })
        .map(|(i, _)| i)
}

/// A view's text with its header switched to `-- emit: alert`, so its rows become alerts.
fn as_alert(text: &str) -> String {
    let Some(at) = view_header_line(text) else {
        return text.to_string();
    };
    let mut out: Vec<&str> = text.lines().collect();
    out[at] = "-- emit: alert";
    let mut out = out.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn write_rule(dir: &Path, id: &str, text: &str) {
    let file = dir.join(format!("{id}.sql"));
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, text).expect("copy rule");
}

#[test]
fn views_are_recognised_and_switched_to_alerts() {
    let view = "-- title: t\n-- severity: info\n--  Emit : VIEW\nSELECT 1 -- emit: view\n";
    assert_eq!(view_header_line(view), Some(2));
    assert_eq!(
        as_alert(view),
        "-- title: t\n-- severity: info\n-- emit: alert\nSELECT 1 -- emit: view\n"
    );
    let alert = "-- title: t\n-- severity: info\nSELECT 1\n-- emit: view\n";
    assert_eq!(view_header_line(alert), None);
    assert_eq!(as_alert(alert), alert);
}

#[test]
fn every_library_rule_fires_exactly_where_its_test_data_says() {
    let library = root().join("library");
    let sources = citybrain_rules::read_dir(&library).expect("library");
    assert!(!sources.is_empty(), "the library has rules");
    let bless = std::env::var_os("CITYBRAIN_BLESS").is_some();
    let mut missing = Vec::new();
    let mut failures = Vec::new();
    let views: Vec<_> = sources
        .iter()
        .filter(|s| view_header_line(&s.text).is_some())
        .collect();
    for src in &sources {
        let case = root().join("tests").join(&src.id);
        if !case.join("expected.jsonl").is_file() && !bless {
            missing.push(src.id.clone());
            continue;
        }
        let tmp = tempfile::tempdir().expect("temp dir");
        let rules = tmp.path().join("rules");
        for view in views.iter().filter(|v| v.id != src.id) {
            write_rule(&rules, &view.id, &view.text);
        }
        if view_header_line(&src.text).is_some() {
            // The rule under test as an alert under its own id, and as a view (same file name,
            // so same view name) in a folder of its own for any view that reads it.
            write_rule(&rules, &src.id, &as_alert(&src.text));
            write_rule(&rules.join("view-under-test"), &src.id, &src.text);
        } else {
            write_rule(&rules, &src.id, &src.text);
        }
        let out_path = tmp.path().join("alerts.jsonl");
        let dead_path = tmp.path().join("dead.jsonl");
        let out = common::replay(&case, &rules, &out_path, &dead_path, "library-test-key")
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
