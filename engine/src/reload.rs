//! Live rule changes for `citybrain run`: the rules folder is watched while the engine runs.
//!
//! ```text
//!  rules/ ── poll every second: changed? ── compile_each ──▶ Vec<CompiledRule> ──▶ Pipeline
//!                                              │ broken file: its problems are logged and
//!                                              │ its previous version (if any) is kept
//! ```
//!
//! Polling the files' contents (not change notifications) keeps this the same on every
//! platform and filesystem, including bind mounts in containers; a second of delay is
//! nothing next to the windows rules run over.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use citybrain_rules::{Catalog, CompiledRule, RuleSource, compile_each, read_dir};
use tokio::sync::mpsc;

/// Watches a rules folder and sends every new valid set of rules.
#[derive(Debug)]
pub struct RuleWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuleWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuleWatcher {
    /// Starts watching `dir` (whose rules `running` are loaded now) every `interval`; the
    /// receiver gets each new set of rules, in dependency order.
    pub fn spawn(
        dir: PathBuf,
        catalog: Catalog,
        running: Vec<RuleSource>,
        interval: Duration,
    ) -> (Self, mpsc::Receiver<Vec<CompiledRule>>) {
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            let mut good: BTreeMap<String, RuleSource> =
                running.into_iter().map(|s| (s.id.clone(), s)).collect();
            let mut seen = fingerprint(good.values());
            loop {
                tokio::time::sleep(interval).await;
                let sources = match read_dir(&dir) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the rules folder; rules unchanged");
                        continue;
                    }
                };
                let now = fingerprint(sources.iter());
                if now == seen {
                    continue;
                }
                seen = now;
                let (rules, problems) = compile_each(&sources, &catalog).await;
                let rules = if problems.is_empty() {
                    good = sources.into_iter().map(|s| (s.id.clone(), s)).collect();
                    rules
                } else {
                    for p in &problems {
                        tracing::error!(problem = %p, "rule change rejected");
                    }
                    // Keep the previous version of each broken file, take every other change.
                    let broken: Vec<&PathBuf> = problems.iter().map(|p| &p.file).collect();
                    let merged: Vec<RuleSource> = sources
                        .iter()
                        .filter_map(|s| {
                            if broken.contains(&&s.path) {
                                good.get(&s.id).cloned()
                            } else {
                                Some(s.clone())
                            }
                        })
                        .collect();
                    let (rules, still) = compile_each(&merged, &catalog).await;
                    for p in &still {
                        tracing::error!(problem = %p, "rule dropped: it depends on a broken rule");
                    }
                    good = merged
                        .into_iter()
                        .filter(|s| !still.iter().any(|p| p.file == s.path))
                        .map(|s| (s.id.clone(), s))
                        .collect();
                    rules
                };
                if tx.send(rules).await.is_err() {
                    return;
                }
            }
        });
        (Self { task }, rx)
    }
}

fn fingerprint<'a>(sources: impl Iterator<Item = &'a RuleSource>) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = sources.map(|s| (s.id.clone(), s.text.clone())).collect();
    all.sort();
    all
}
