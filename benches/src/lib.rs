//! Shared parts of the citybrain benchmarks: simulated input in memory, rule loading, a sink
//! that only counts, and process measurements (CPU seconds, peak RSS).
//!
//! The criterion benches in `benches/` (decode, rules, pipeline) and the end-to-end bench binary
//! `citybrain-bench` (`src/bin/citybrain-bench.rs`, driven by `scripts/bench.sh`) use these;
//! BENCHMARKS.md says what each measures and how to run it. [`drain`] is the consume-only
//! Kafka baseline of `scripts/bench-kafka.sh` (`citybrain-bench drain`).

pub mod checkpoint;
pub mod drain;
pub mod publish;

use std::path::Path;

use anyhow::bail;
use bytes::Bytes;
use citybrain_connectors::{
    Catalog, CityConfig, CitySimulator, Feed, Origin, RawBatch, RawRecord, Sink, SinkRecord,
};
use citybrain_rules::RuleSource;

/// The pseudonymisation key of every benchmark (the key does not change the cost).
pub const BENCH_KEY: &[u8] = b"citybrain-bench-key";

/// The first `events` events of the simulated city `cfg`, cut into raw batches of at most
/// `batch` records of one feed, as the simulator source hands them out (a feed's batch is
/// handed out when full; the rest at the end). Built outside any timed loop.
pub fn simulated_batches(cfg: CityConfig, events: u64, batch: usize) -> Vec<RawBatch> {
    cut_batches(cfg, events, batch, None)
}

/// The first `events` events of the simulated city `cfg`, cut as a source polling every feed
/// hands them out: each feed's batch is handed out when it holds `batch` records, and after
/// every `batch` events in all, whatever each other feed holds by then (in the city
/// catalog's order). Sparse feeds so arrive in small batches beside the dense traffic feed and keep up
/// with its event time, as a rule reading several feeds (a join) needs to close windows while
/// the stream runs. Built outside any timed loop.
pub fn simulated_batches_interleaved(cfg: CityConfig, events: u64, batch: usize) -> Vec<RawBatch> {
    cut_batches(cfg, events, batch, Some(batch))
}

/// [`simulated_batches`], and with `flush_every` also every pending record after each
/// `flush_every` events.
fn cut_batches(
    cfg: CityConfig,
    events: u64,
    batch: usize,
    flush_every: Option<usize>,
) -> Vec<RawBatch> {
    let batch = batch.max(1);
    let flush_every = flush_every.map(|n| n.max(1) as u64);
    let mut sim = CitySimulator::new(cfg);
    let feeds: Vec<Feed> = Catalog::city().tables().to_vec();
    let mut pending: Vec<Vec<RawRecord>> = vec![Vec::new(); feeds.len()];
    let mut out = Vec::new();
    let mut line = Vec::with_capacity(512);
    for seq in 0..events {
        line.clear();
        let feed = sim.next_event(&mut line).clone();
        let slot = &mut pending[feed_index(&feeds, &feed)];
        slot.push(RawRecord {
            payload: Bytes::copy_from_slice(&line),
            origin: Origin::Simulator { seq },
        });
        if slot.len() == batch {
            out.push(RawBatch {
                feed,
                records: std::mem::take(slot),
            });
        }
        if flush_every.is_some_and(|n| (seq + 1).is_multiple_of(n)) {
            flush(&feeds, &mut pending, &mut out);
        }
    }
    flush(&feeds, &mut pending, &mut out);
    out
}

/// Hands out every feed's pending records, in the city catalog's order.
fn flush(feeds: &[Feed], pending: &mut [Vec<RawRecord>], out: &mut Vec<RawBatch>) {
    for (feed, slot) in feeds.iter().zip(pending) {
        let records = std::mem::take(slot);
        if !records.is_empty() {
            out.push(RawBatch {
                feed: feed.clone(),
                records,
            });
        }
    }
}

fn feed_index(feeds: &[Feed], feed: &Feed) -> usize {
    feeds
        .iter()
        .position(|f| f == feed)
        .expect("the simulator writes the city catalog's feeds")
}

/// The rules at `path`: every `*.sql` below it when it is a folder, else the one file (its id
/// is the file name without `.sql`).
///
/// # Errors
/// When the path cannot be read or holds no rule.
pub fn rule_sources(path: &Path) -> anyhow::Result<Vec<RuleSource>> {
    let sources = citybrain_rules::read_dir(path)?;
    if sources.is_empty() {
        bail!("no .sql rules at {}", path.display());
    }
    Ok(sources)
}

/// Plans every rule in `sources` against the city catalog, views before their readers.
///
/// # Errors
/// Every planning problem, one per line.
pub async fn compile_all(
    sources: &[RuleSource],
) -> anyhow::Result<Vec<citybrain_rules::CompiledRule>> {
    Ok(citybrain_rules::compile_all(sources, &citybrain_engine::city_catalog()).await?)
}

/// A sink that keeps nothing and counts what it is given.
#[derive(Debug, Default)]
pub struct CountingSink {
    /// Records written so far.
    pub records: u64,
}

#[async_trait::async_trait]
impl Sink for CountingSink {
    async fn write(&mut self, records: &[SinkRecord]) -> citybrain_connectors::Result<()> {
        self.records += records.len() as u64;
        Ok(())
    }

    async fn flush(&mut self) -> citybrain_connectors::Result<()> {
        Ok(())
    }
}

/// CPU seconds (user + system) used by this process so far, from `/proc/self/stat`
/// (resolution one clock tick, 10 ms on Linux). `None` where there is no `/proc`.
pub fn cpu_seconds() -> Option<f64> {
    // The kernel's USER_HZ, fixed at 100 on every Linux architecture we run on.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3; utime and
    // stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Peak resident set size of this process in bytes (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_every_event_once_per_feed() {
        let batches = simulated_batches(CityConfig::default(), 5_000, 1_000);
        let total: usize = batches.iter().map(|b| b.records.len()).sum();
        assert_eq!(total, 5_000);
        assert!(batches.iter().all(|b| b.records.len() <= 1_000));
        assert!(batches.iter().any(|b| b.feed.name() == "traffic"));
    }

    #[test]
    fn interleaved_batches_keep_every_feed_in_step() {
        // Sparse readings, so that 5,000 events span over 15 simulated minutes and hold police
        // reports.
        let city = CityConfig {
            events_per_sim_second: 5.0,
            ..CityConfig::default()
        };
        let batches = simulated_batches_interleaved(city, 5_000, 1_000);
        let total: usize = batches.iter().map(|b| b.records.len()).sum();
        assert_eq!(total, 5_000);
        // No record is handed out more than 1,000 events away from where it was simulated.
        let records = batches.iter().flat_map(|b| &b.records);
        for (position, r) in records.enumerate() {
            let Origin::Simulator { seq } = r.origin else {
                panic!("simulated records have a sequence number")
            };
            assert!(
                seq.abs_diff(position as u64) < 1_000,
                "record {seq} at {position}"
            );
        }
        assert!(batches.iter().any(|b| b.feed.name() == "police"));
    }

    #[test]
    fn process_measurements_are_read() {
        if Path::new("/proc/self/stat").exists() {
            assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        }
    }
}
