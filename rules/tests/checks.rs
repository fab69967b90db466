//! What planning refuses before a rule can hurt the engine, and how rule files that are no
//! rules are read: every problem at its file, line and column, never a panic or a stack
//! overflow, and the other files still load.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use citybrain_rules::{Catalog, Problem, RuleSource, compile, compile_each, read_dir};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn catalog() -> Catalog {
    Catalog::new()
        .with_table("t", schema(), "ts")
        .with_table("u", schema(), "ts")
}

const HEADER: &str = "-- title: t\n-- severity: info\n";

async fn problems(sql: &str) -> Vec<Problem> {
    match compile(
        &RuleSource::inline("r", &format!("{HEADER}{sql}")),
        &catalog(),
    )
    .await
    {
        Ok(_) => Vec::new(),
        Err(p) => p,
    }
}

/// The one problem of `sql`, as `line:column: message`.
async fn problem(sql: &str) -> String {
    let p = problems(sql).await;
    assert_eq!(p.len(), 1, "one problem expected: {p:?}");
    format!("{}:{}: {}", p[0].line, p[0].column, p[0].message)
}

fn and_chain(terms: usize) -> String {
    let terms: Vec<String> = (0..terms).map(|i| format!("v > {i}")).collect();
    format!("SELECT event_id FROM t WHERE {}", terms.join(" AND "))
}

#[tokio::test]
async fn with_recursive_is_refused_at_its_with_not_a_panic() {
    let p = problem("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3)\nSELECT n FROM r").await;
    assert!(p.starts_with("3:1: WITH RECURSIVE is not supported"), "{p}");
    // Also inside a subquery, and over a feed.
    let p = problem(
        "SELECT event_id FROM (\n  WITH RECURSIVE r AS (SELECT event_id, ts FROM t UNION ALL \
         SELECT event_id, ts FROM r) SELECT * FROM r)",
    )
    .await;
    assert!(p.starts_with("4:3: WITH RECURSIVE"), "{p}");
}

#[tokio::test]
async fn windows_that_would_grow_without_end_are_refused_at_their_size() {
    let p = problem(
        "SELECT k, window_start, window_end, COUNT(*) AS n\n\
         FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MILLISECOND, INTERVAL '1' DAY))\n\
         GROUP BY k, window_start, window_end",
    )
    .await;
    assert!(
        p.starts_with("4:67: HOP 1d every 1ms puts every row in 86400000 windows"),
        "{p}"
    );
    let p = problem(
        "SELECT k, window_start, window_end, COUNT(*) AS n\n\
         FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '1' DAY))\n\
         GROUP BY k, window_start, window_end",
    )
    .await;
    assert!(
        p.contains("puts every row in 86400 windows (size / step)"),
        "{p}"
    );
    let p = problem(
        "SELECT k, window_start, window_end, COUNT(*) AS n\n\
         FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '8' DAY))\n\
         GROUP BY k, window_start, window_end",
    )
    .await;
    assert!(
        p.starts_with("4:44: a TUMBLE window of 8d is longer than the longest allowed, 7d"),
        "{p}"
    );
    // At the limits: a 1-hour window every second, a week.
    for ok in [
        "HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '1' HOUR)",
        "TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '7' DAY)",
        "SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '7' DAY)",
    ] {
        let sql = format!(
            "SELECT k, window_start, window_end, COUNT(*) AS n FROM TABLE({ok}) \
             GROUP BY k, window_start, window_end"
        );
        assert_eq!(problems(&sql).await, Vec::new(), "{ok}");
    }
}

#[tokio::test]
async fn joins_on_no_key_are_refused_at_the_join() {
    let window =
        |t: &str| format!("TABLE(TUMBLE(TABLE {t}, DESCRIPTOR(ts), INTERVAL '10' MINUTES))");
    // The self CROSS JOIN of the issue: every pair of rows of a 10-minute window.
    let p = problem(&format!(
        "SELECT a.event_id, b.event_id AS other, a.window_start, a.window_end\n\
         FROM {} a\nCROSS JOIN {} b",
        window("t"),
        window("t")
    ))
    .await;
    assert!(
        p.starts_with("5:1: this inner join matches rows on no key"),
        "{p}"
    );
    // Joined on the window alone: the same.
    let p = problem(&format!(
        "SELECT a.event_id, b.event_id AS other FROM {} a JOIN {} b\n\
         ON a.window_start = b.window_start AND a.window_end = b.window_end",
        window("t"),
        window("u")
    ))
    .await;
    assert!(p.contains("this inner join matches rows on no key"), "{p}");
    // An interval join bounded in time but on no key.
    let p = problem(
        "SELECT a.event_id, b.event_id AS other FROM t a, u b\n\
         WHERE b.ts BETWEEN a.ts AND a.ts + INTERVAL '10' MINUTES",
    )
    .await;
    assert!(p.contains("matches rows on no key"), "{p}");
    // With a key, and semi/anti joins (at most one row per row), they plan.
    for sql in [
        format!(
            "SELECT a.event_id, b.event_id AS other FROM {} a JOIN {} b\n\
             ON a.window_start = b.window_start AND a.window_end = b.window_end AND a.k = b.k",
            window("t"),
            window("u")
        ),
        format!(
            "SELECT a.event_id, a.window_start FROM {} a WHERE EXISTS (SELECT * FROM {} b \
             WHERE a.window_start = b.window_start AND a.window_end = b.window_end)",
            window("t"),
            window("u")
        ),
        "SELECT a.event_id, b.event_id AS other FROM t a, u b WHERE a.k = b.k \
         AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '10' MINUTES"
            .to_string(),
    ] {
        assert_eq!(problems(&sql).await, Vec::new(), "{sql}");
    }
}

#[test]
fn a_long_and_chain_is_refused_without_overflowing_a_small_stack() {
    // 2 MiB: the stack of a tokio worker, where the live reload plans rules. Today 3,000 terms
    // overflow the stack (an abort), in `rules check`, `replay` and `run`.
    let found = on_small_stack(|| {
        let mut out = Vec::new();
        for terms in [3_000, 50_000] {
            let p = futures::executor::block_on(problems(&and_chain(terms)));
            out.push(p);
        }
        out
    });
    for p in found {
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, 3);
        assert!(
            p[0].message
                .starts_with("the rule nests more than 200 levels deep here"),
            "{p:?}"
        );
        // The position is the term where the nesting passes the limit: near the end of the
        // line, as the chain nests from its last term.
        assert!(p[0].column > 100, "{p:?}");
    }
}

#[test]
fn a_rule_at_the_nesting_limit_plans_on_a_small_stack() {
    let planned = on_small_stack(|| futures::executor::block_on(problems(&and_chain(190))));
    assert_eq!(planned, Vec::new());
}

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no panic")
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

const GOOD: &str = "-- title: good\n-- severity: info\nSELECT event_id FROM t WHERE v > 1\n";

#[tokio::test]
async fn files_that_are_no_rules_are_reported_with_a_position_and_the_rest_load() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    write(&dir.join("a/good.sql"), GOOD.as_bytes());
    // Latin-1 text: é as one byte, on line 3.
    write(
        &dir.join("latin1.sql"),
        b"-- title: caf\xc3\xa9\n-- severity: info\nSELECT 'caf\xe9' AS x, event_id FROM t\n",
    );
    write(
        &dir.join("binary.sql"),
        b"SQLite format 3\0\x10\x00\x01\x01",
    );
    // A byte-order mark, as some editors write, is no problem.
    write(&dir.join("bom.sql"), format!("\u{feff}{GOOD}").as_bytes());
    #[cfg(unix)]
    std::os::unix::fs::symlink(".", dir.join("a/loop")).expect("symlink");
    let sources = read_dir(dir).expect("the folder reads");
    let ids: Vec<&str> = sources.iter().map(|s| s.id.as_str()).collect();
    // Each rule once, however the link loops (today 41 times: once per level until ELOOP).
    #[cfg(unix)]
    assert_eq!(ids, ["a/good", "a/loop", "binary", "bom", "latin1"]);
    let (rules, problems) = compile_each(&sources, &catalog()).await;
    let planned: Vec<&str> = rules.iter().map(|r| r.meta.id.as_str()).collect();
    assert_eq!(planned, ["a/good", "bom"]);
    let text: Vec<String> = problems
        .iter()
        .map(|p| {
            format!(
                "{}:{}:{}: {}",
                p.file.strip_prefix(dir).expect("below dir").display(),
                p.line,
                p.column,
                p.message
            )
        })
        .collect();
    assert!(
        text.iter().any(|t| t.starts_with(
            "latin1.sql:3:12: not UTF-8 text: byte 0xe9 here; save the rule as UTF-8"
        )),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("binary.sql:1:16: a binary file (a NUL byte)")),
        "{text:#?}"
    );
    #[cfg(unix)]
    assert!(
        text.iter()
            .any(|t| t.starts_with("a/loop:1:1: leads to") && t.contains("already read")),
        "{text:#?}"
    );
}

#[tokio::test]
async fn an_oversized_file_is_a_problem_not_a_read() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let big = format!("{GOOD}{}", "-- padding\n".repeat(100_000));
    write(&tmp.path().join("big.sql"), big.as_bytes());
    let sources = read_dir(tmp.path()).expect("reads");
    let (_, problems) = compile_each(&sources, &catalog()).await;
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].message.contains("must be under 1048576 bytes"),
        "{problems:?}"
    );
}
