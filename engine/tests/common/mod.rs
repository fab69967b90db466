//! What several integration tests share.

use std::path::Path;
use std::process::Command;

/// `citybrain replay` of the feed files in `input` through `rules` (a folder or one file),
/// alerts to `out` and dead letters to `dlq`, pseudonymising with `key`. Callers add flags and
/// choose how to run it.
pub fn replay(input: &Path, rules: &Path, out: &Path, dlq: &Path, key: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_citybrain"));
    command
        .arg("replay")
        .arg("--input")
        .arg(input)
        .arg("--rules")
        .arg(rules)
        .arg("--out")
        .arg(out)
        .arg("--dlq")
        .arg(dlq)
        .env("CITYBRAIN_PSEUDONYM_KEY", key);
    command
}
