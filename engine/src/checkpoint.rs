//! Checkpoints: the state of every rule, the event time of every partition and the input
//! positions, saved together at one point between batches, as Arrow IPC through
//! `object_store` (a local folder by default).
//!
//! ```text
//!  <store>/<group>/epoch-00000000000000000042-<writer>/state.arrows   every table of every
//!                                                                      rule, Arrow IPC streams
//!                                                                      one after the other
//!  <store>/<group>/epoch-00000000000000000042-<writer>/manifest.json  written last: the commit
//!                                                                      point (positions, clock,
//!                                                                      each table's byte range)
//! ```
//!
//! A checkpoint exists once its manifest does; [`CheckpointStore::latest`] is the one with the
//! highest epoch among them. The writer id (random per process) keeps two processes that
//! believe themselves active (one about to be fenced) from ever mixing their files; either
//! one's checkpoint is a consistent state with its own positions. Older checkpoints are pruned
//! after each new one, keeping [`CheckpointConfig::keep`].
//!
//! The checkpoint module knows nothing of window kinds: a rule's state is the list of
//! [`StateTable`]s its runner gave ([`citybrain_rules::RuleGraph::snapshot`]), each written as
//! it is with its own schema.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use bytes::Bytes;
use citybrain_connectors::PartitionId;
use citybrain_rules::{GraphSnapshot, RuleSnapshot, StateTable};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Format of the manifest; a reader refuses others.
const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const STATE: &str = "state.arrows";

/// Where checkpoints go and how often: the `[checkpoint]` table of the service's file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Where checkpoints are stored: a folder (created if missing), or `memory://` (nothing
    /// survives the process: benchmarks). Default `citybrain-checkpoints` in the working
    /// folder. Every instance of a group must see the same store (a shared volume) for a
    /// standby to take over from the last checkpoint. Checkpoints go below `<store>/<group>/`.
    pub store: String,
    /// How often a checkpoint is taken, milliseconds. Default 10,000: a crash re-reads at most
    /// ten seconds of input, and checkpointing stays a small share of the work.
    pub interval_ms: u64,
    /// How many complete checkpoints are kept (the newest). Default 3.
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            store: "citybrain-checkpoints".to_string(),
            interval_ms: 10_000,
            keep: 3,
        }
    }
}

impl CheckpointConfig {
    /// Every problem of the table, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.store.trim().is_empty() {
            out.push("checkpoint.store: must name a folder (or memory://)".to_string());
        }
        if self.interval_ms == 0 {
            out.push("checkpoint.interval_ms: must be at least 1".to_string());
        }
        if self.keep == 0 {
            out.push("checkpoint.keep: must be at least 1".to_string());
        }
        out
    }
}

/// One partition's position in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    topic: String,
    partition: i32,
    /// The next offset to read.
    offset: i64,
}

/// One partition's largest event time in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ClockEntry {
    table: String,
    partition: i32,
    max_ts: i64,
}

/// One table of a rule's state in a manifest: where its IPC stream lies in the state object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TableEntry {
    name: String,
    offset: u64,
    length: u64,
    rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RuleEntry {
    id: String,
    fingerprint: String,
    tables: Vec<TableEntry>,
}

/// The commit point of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    epoch: u64,
    writer: String,
    created_ms: i64,
    positions: Vec<Position>,
    clock: Vec<ClockEntry>,
    state: String,
    state_bytes: u64,
    rules: Vec<RuleEntry>,
}

/// Everything a checkpoint holds, in memory.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    /// Its epoch (increasing; a restored pipeline goes on from it).
    pub epoch: u64,
    /// Per partition, the next position to read.
    pub positions: BTreeMap<PartitionId, i64>,
    /// Per table and partition, the largest event time read.
    pub clock: Vec<(String, i32, i64)>,
    /// Every rule's state.
    pub graph: GraphSnapshot,
}

impl Checkpoint {
    /// Rows over every table of every rule.
    pub fn rows(&self) -> usize {
        self.graph
            .rules
            .iter()
            .flat_map(|r| &r.tables)
            .map(StateTable::num_rows)
            .sum()
    }
}

/// What [`CheckpointStore::save`] wrote.
#[derive(Debug, Clone, Copy)]
pub struct Saved {
    /// The epoch written.
    pub epoch: u64,
    /// Bytes of state.
    pub bytes: u64,
    /// Time to encode and write it, manifest included.
    pub took: Duration,
}

/// Checkpoints of one consumer group in an object store; see the module docs.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
    /// The local folder, when the store is one (files are synced to disk).
    local: Option<std::path::PathBuf>,
    prefix: StorePath,
    writer: String,
    keep: usize,
}

impl CheckpointStore {
    /// Opens (creating the folder of) the store `config` names, for group `group`.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when the folder cannot be created.
    pub fn open(config: &CheckpointConfig, group: &str) -> Result<Self> {
        let fail = |detail: String| Error::Checkpoint {
            action: format!("opening the checkpoint store {}", config.store),
            detail,
        };
        let (store, local): (Arc<dyn ObjectStore>, _) = if config.store == "memory://" {
            (Arc::new(object_store::memory::InMemory::new()), None)
        } else {
            let folder = std::path::PathBuf::from(
                config
                    .store
                    .strip_prefix("file://")
                    .unwrap_or(&config.store),
            );
            std::fs::create_dir_all(&folder).map_err(|e| fail(e.to_string()))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&folder)
                .map_err(|e| fail(e.to_string()))?
                .with_automatic_cleanup(true);
            let canonical = std::fs::canonicalize(&folder).map_err(|e| fail(e.to_string()))?;
            (Arc::new(fs), Some(canonical))
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let writer = format!(
            "{:08x}",
            (nanos as u64 ^ u64::from(std::process::id())) & 0xffff_ffff
        );
        Ok(Self {
            store,
            local,
            prefix: StorePath::from(sanitize(group).as_str()),
            writer,
            keep: config.keep.max(1),
        })
    }

    fn fail(action: &str, e: impl std::fmt::Display) -> Error {
        Error::Checkpoint {
            action: action.to_string(),
            detail: e.to_string(),
        }
    }

    /// The complete checkpoints (those with a manifest), oldest first: (epoch, writer folder).
    async fn complete(&self) -> Result<Vec<(u64, StorePath)>> {
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| Self::fail("listing checkpoints", e))?;
        let mut out = Vec::new();
        for meta in listed {
            if meta.location.filename() != Some(MANIFEST) {
                continue;
            }
            let parts: Vec<_> = meta.location.parts().collect();
            let Some(dir) = parts
                .len()
                .checked_sub(2)
                .map(|i| parts[i].as_ref().to_string())
            else {
                continue;
            };
            if let Some(epoch) = epoch_of(&dir) {
                out.push((epoch, self.prefix.clone().join(dir.as_str())));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The newest complete checkpoint, if any.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when the store cannot be read or the newest checkpoint is damaged
    /// (it names the object).
    pub async fn latest(&self) -> Result<Option<Checkpoint>> {
        let Some((_, dir)) = self.complete().await?.pop() else {
            return Ok(None);
        };
        self.load(&dir).await.map(Some)
    }

    async fn load(&self, dir: &StorePath) -> Result<Checkpoint> {
        let manifest_path = dir.clone().join(MANIFEST);
        let at = |what: &str| format!("reading {what} of checkpoint {dir}");
        let bytes = self
            .store
            .get(&manifest_path)
            .await
            .map_err(|e| Self::fail(&at("the manifest"), e))?
            .bytes()
            .await
            .map_err(|e| Self::fail(&at("the manifest"), e))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Self::fail(&at("the manifest"), e))?;
        if manifest.format != FORMAT {
            return Err(Self::fail(
                &at("the manifest"),
                format!("format {} (this build reads {FORMAT})", manifest.format),
            ));
        }
        let state = self
            .store
            .get(&dir.clone().join(manifest.state.as_str()))
            .await
            .map_err(|e| Self::fail(&at("the state"), e))?
            .bytes()
            .await
            .map_err(|e| Self::fail(&at("the state"), e))?;
        if state.len() as u64 != manifest.state_bytes {
            return Err(Self::fail(
                &at("the state"),
                format!(
                    "{} bytes, the manifest says {}",
                    state.len(),
                    manifest.state_bytes
                ),
            ));
        }
        let mut rules = Vec::with_capacity(manifest.rules.len());
        for rule in manifest.rules {
            let mut tables = Vec::with_capacity(rule.tables.len());
            for t in rule.tables {
                let range = usize::try_from(t.offset).unwrap_or(usize::MAX)
                    ..usize::try_from(t.offset.saturating_add(t.length)).unwrap_or(usize::MAX);
                let Some(slice) = state.get(range) else {
                    return Err(Self::fail(
                        &at("the state"),
                        format!("table {} of rule {} lies outside it", t.name, rule.id),
                    ));
                };
                tables.push(read_table(&t.name, state.slice_ref(slice)).map_err(|e| {
                    Self::fail(&at(&format!("table {} of rule {}", t.name, rule.id)), e)
                })?);
            }
            rules.push(RuleSnapshot {
                id: rule.id,
                fingerprint: rule.fingerprint,
                tables,
            });
        }
        Ok(Checkpoint {
            epoch: manifest.epoch,
            positions: manifest
                .positions
                .into_iter()
                .map(|p| ((Arc::from(p.topic.as_str()), p.partition), p.offset))
                .collect(),
            clock: manifest
                .clock
                .into_iter()
                .map(|c| (c.table, c.partition, c.max_ts))
                .collect(),
            graph: GraphSnapshot { rules },
        })
    }

    /// Writes `checkpoint`: the state first, the manifest last (the commit point); then prunes
    /// checkpoints beyond the newest [`CheckpointConfig::keep`].
    ///
    /// # Errors
    /// [`Error::Checkpoint`] naming the object that could not be written; the previous
    /// checkpoint stays the latest.
    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<Saved> {
        self.save_after(checkpoint, async { Ok(()) }).await
    }

    /// Like [`CheckpointStore::save`], but the manifest is written only once `durable`
    /// resolves (the outputs the state no longer holds are acknowledged), waited for while the
    /// state is written. A restore never skips an output that was not durable: its window is
    /// closed in the checkpoint.
    ///
    /// # Errors
    /// As [`CheckpointStore::save`], or `durable`'s error (then no manifest is written).
    pub async fn save_after(
        &self,
        checkpoint: &Checkpoint,
        durable: impl std::future::Future<Output = Result<()>>,
    ) -> Result<Saved> {
        let started = Instant::now();
        let dir = self
            .prefix
            .clone()
            .join(format!("epoch-{:020}-{}", checkpoint.epoch, self.writer).as_str());
        let (state, rules) = encode(&checkpoint.graph)?;
        let state_bytes = state.len() as u64;
        let manifest = Manifest {
            format: FORMAT,
            epoch: checkpoint.epoch,
            writer: self.writer.clone(),
            created_ms: chrono::Utc::now().timestamp_millis(),
            positions: checkpoint
                .positions
                .iter()
                .map(|((topic, partition), offset)| Position {
                    topic: topic.to_string(),
                    partition: *partition,
                    offset: *offset,
                })
                .collect(),
            clock: checkpoint
                .clock
                .iter()
                .map(|(table, partition, max_ts)| ClockEntry {
                    table: table.clone(),
                    partition: *partition,
                    max_ts: *max_ts,
                })
                .collect(),
            state: STATE.to_string(),
            state_bytes,
            rules,
        };
        let json =
            serde_json::to_vec(&manifest).map_err(|e| Self::fail("encoding a manifest", e))?;
        let state_path = dir.clone().join(STATE);
        tokio::try_join!(self.put(&state_path, state), durable)?;
        self.put(&dir.clone().join(MANIFEST), Bytes::from(json))
            .await?;
        if let Some(root) = &self.local {
            // The manifest's folder entry, so that the checkpoint survives a power loss too.
            let folder = root.join(dir.as_ref());
            sync_dir(&folder)
                .map_err(|e| Self::fail(&format!("syncing {}", folder.display()), e))?;
        }
        self.prune().await?;
        Ok(Saved {
            epoch: checkpoint.epoch,
            bytes: state_bytes,
            took: started.elapsed(),
        })
    }

    async fn put(&self, path: &StorePath, bytes: Bytes) -> Result<()> {
        self.store
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(|e| Self::fail(&format!("writing {path}"), e))?;
        if let Some(root) = &self.local {
            let file = root.join(path.as_ref());
            std::fs::File::open(&file)
                .and_then(|f| f.sync_all())
                .map_err(|e| Self::fail(&format!("syncing {}", file.display()), e))?;
        }
        Ok(())
    }

    /// Deletes every object of checkpoints older than the newest `keep` complete ones
    /// (unfinished ones included).
    async fn prune(&self) -> Result<()> {
        let complete = self.complete().await?;
        let Some(oldest_kept) = complete.len().checked_sub(self.keep).map(|i| complete[i].0) else {
            return Ok(());
        };
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| Self::fail("listing checkpoints", e))?;
        for meta in listed {
            let old = meta
                .location
                .parts()
                .find_map(|p| epoch_of(p.as_ref()))
                .is_some_and(|e| e < oldest_kept);
            if old {
                self.store
                    .delete(&meta.location)
                    .await
                    .map_err(|e| Self::fail(&format!("deleting {}", meta.location), e))?;
            }
        }
        Ok(())
    }
}

/// The epoch of a checkpoint folder named `epoch-<n>-<writer>`.
fn epoch_of(dir: &str) -> Option<u64> {
    dir.strip_prefix("epoch-")?.split('-').next()?.parse().ok()
}

/// A group id as a folder name: letters, digits, `.`, `_` and `-` kept, the rest `_`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        format!("group{s}")
    } else {
        s
    }
}

fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Every table of every rule as Arrow IPC streams one after the other, with where each lies.
fn encode(graph: &GraphSnapshot) -> Result<(Bytes, Vec<RuleEntry>)> {
    let mut out: Vec<u8> = Vec::new();
    let mut rules = Vec::with_capacity(graph.rules.len());
    for rule in &graph.rules {
        let mut tables = Vec::with_capacity(rule.tables.len());
        for t in &rule.tables {
            let offset = out.len() as u64;
            let fail = |e: arrow::error::ArrowError| Error::Checkpoint {
                action: format!("encoding table {} of rule {}", t.name, rule.id),
                detail: e.to_string(),
            };
            let mut writer = StreamWriter::try_new(&mut out, &t.schema).map_err(fail)?;
            for b in &t.batches {
                writer.write(b).map_err(fail)?;
            }
            writer.finish().map_err(fail)?;
            drop(writer);
            tables.push(TableEntry {
                name: t.name.clone(),
                offset,
                length: out.len() as u64 - offset,
                rows: t.num_rows() as u64,
            });
        }
        rules.push(RuleEntry {
            id: rule.id.clone(),
            fingerprint: rule.fingerprint.clone(),
            tables,
        });
    }
    Ok((Bytes::from(out), rules))
}

fn read_table(
    name: &str,
    bytes: Bytes,
) -> std::result::Result<StateTable, arrow::error::ArrowError> {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(StateTable {
        name: name.to_string(),
        schema,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn table(name: &str, rows: &[&[(i64, &str)]]) -> StateTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batches = rows
            .iter()
            .map(|r| {
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(Int64Array::from_iter_values(r.iter().map(|x| x.0))),
                        Arc::new(StringArray::from_iter_values(r.iter().map(|x| x.1))),
                    ],
                )
                .expect("batch")
            })
            .collect();
        StateTable {
            name: name.to_string(),
            schema,
            batches,
        }
    }

    fn checkpoint(epoch: u64) -> Checkpoint {
        Checkpoint {
            epoch,
            positions: [
                (("city.traffic".into(), 2), 41),
                (("city.police".into(), 0), 7),
            ]
            .into_iter()
            .collect(),
            clock: vec![("traffic".into(), 2, 1_000 + epoch as i64)],
            graph: GraphSnapshot {
                rules: vec![
                    RuleSnapshot {
                        id: "traffic/congestion".into(),
                        fingerprint: "ab".into(),
                        // Batch boundaries (an empty batch included) come back as written.
                        tables: vec![
                            table("state.raw.0", &[&[(1, "a"), (2, "b")], &[], &[(3, "c")]]),
                            table("clocks", &[]),
                        ],
                    },
                    RuleSnapshot {
                        id: "police/burst".into(),
                        fingerprint: "cd".into(),
                        tables: vec![table("counters", &[&[(epoch as i64, "x")]])],
                    },
                ],
            },
        }
    }

    fn same(a: &Checkpoint, b: &Checkpoint) {
        assert_eq!(a.epoch, b.epoch);
        assert_eq!(a.positions, b.positions);
        assert_eq!(a.clock, b.clock);
        assert_eq!(a.graph.rules.len(), b.graph.rules.len());
        for (x, y) in a.graph.rules.iter().zip(&b.graph.rules) {
            assert_eq!((&x.id, &x.fingerprint), (&y.id, &y.fingerprint));
            assert_eq!(x.tables.len(), y.tables.len());
            for (s, t) in x.tables.iter().zip(&y.tables) {
                assert_eq!(s.name, t.name);
                assert_eq!(s.schema, t.schema);
                assert_eq!(s.batches, t.batches);
            }
        }
    }

    #[tokio::test]
    async fn the_newest_complete_checkpoint_comes_back_as_written_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = CheckpointConfig {
            store: dir.path().join("ckpt").display().to_string(),
            interval_ms: 1000,
            keep: 2,
        };
        let store = CheckpointStore::open(&config, "city group/1").expect("store");
        assert!(store.latest().await.expect("empty store").is_none());
        for epoch in 1..=4 {
            store.save(&checkpoint(epoch)).await.expect("save");
        }
        let latest = store.latest().await.expect("read").expect("a checkpoint");
        same(&latest, &checkpoint(4));
        // Only the two newest remain.
        let kept: Vec<u64> = store
            .complete()
            .await
            .expect("list")
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        assert_eq!(kept, vec![3, 4]);
        // A checkpoint whose manifest was never written does not count.
        let unfinished = store
            .prefix
            .clone()
            .join("epoch-00000000000000000009-deadbeef");
        store
            .store
            .put(
                &unfinished.clone().join(STATE),
                PutPayload::from_static(b"partial"),
            )
            .await
            .expect("put");
        let latest = store.latest().await.expect("read").expect("a checkpoint");
        assert_eq!(latest.epoch, 4);
        // Another process opening the same store finds it.
        let other = CheckpointStore::open(&config, "city group/1").expect("store");
        same(
            &other.latest().await.expect("read").expect("a checkpoint"),
            &checkpoint(4),
        );
    }

    #[tokio::test]
    async fn a_damaged_checkpoint_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = CheckpointConfig {
            store: dir.path().display().to_string(),
            ..CheckpointConfig::default()
        };
        let store = CheckpointStore::open(&config, "g").expect("store");
        store.save(&checkpoint(1)).await.expect("save");
        let (_, folder) = store.complete().await.expect("list").pop().expect("one");
        store
            .store
            .put(
                &folder.clone().join(STATE),
                PutPayload::from_static(b"not arrow"),
            )
            .await
            .expect("overwrite");
        let err = store.latest().await.expect_err("damaged").to_string();
        assert!(err.contains("epoch-00000000000000000001"), "{err}");
    }
}
