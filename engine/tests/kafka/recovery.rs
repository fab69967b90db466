//! Bounded recovery: the service killed (SIGKILL) three times mid-stream restores its last
//! checkpoint each time, loses no alert, and re-reads only what it processed after that
//! checkpoint; the committed offsets are a checkpoint's.
//!
//! The feeds are published while the service runs, a slice at a time, as a live city's are:
//! the service can never read to the end ahead of the kill, however fast the machine.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use citybrain_connectors::Feed;

use crate::support::*;

/// Records per batch: also what one batch in flight can add to what a restart re-reads.
const BATCH: i64 = 100;
const PARTITIONS: i32 = 2;
/// The feeds are published in this many slices, each a stretch of every feed's records.
const SLICES: usize = 50;

/// Publishes the feeds slice by slice, every feed's records split over the partitions as
/// [`publish_split`] does, so each partition receives its records in event-time order.
struct Feeder<'a> {
    publisher: Publisher,
    topics: &'a Topics,
    feeds: &'a BTreeMap<Feed, Vec<String>>,
    /// Slices published so far.
    next: usize,
    /// Records published so far.
    published: i64,
    /// Records of the largest slice published.
    largest: i64,
}

impl Feeder<'_> {
    /// Publishes the next slice; false when every slice is out.
    fn publish_next(&mut self) -> bool {
        if self.next == SLICES {
            return false;
        }
        let before = self.published;
        for (feed, lines) in self.feeds {
            let range = lines.len() * self.next / SLICES..lines.len() * (self.next + 1) / SLICES;
            for p in 0..PARTITIONS {
                let part: Vec<String> = range
                    .clone()
                    .filter(|i| (*i as i32) % PARTITIONS == p)
                    .map(|i| lines[i].clone())
                    .collect();
                if !part.is_empty() {
                    self.publisher.send(&self.topics.feeds[feed], p, &part);
                    self.published += part.len() as i64;
                }
            }
        }
        self.publisher.flush();
        self.largest = self.largest.max(self.published - before);
        self.next += 1;
        true
    }
}

/// What one run of the service said, read from its log.
#[derive(Debug, Default)]
pub struct Run {
    /// The checkpoint it restored: epoch and positions.
    pub restored: Option<(u64, Positions)>,
    /// Checkpoints it took, in order: epoch and positions.
    pub checkpoints: Vec<(u64, Positions)>,
    /// Positions after the last batch it applied.
    pub applied: Positions,
}

impl Run {
    pub fn read(lines: &[String]) -> Self {
        let mut run = Self::default();
        let epoch = |l: &str| -> u64 {
            log_field(l, "epoch")
                .and_then(|e| e.parse().ok())
                .expect("an epoch")
        };
        let positions = |l: &str| parse_positions(log_field(l, "positions").unwrap_or_default());
        for l in lines {
            if l.contains(" restored checkpoint ") {
                run.restored = Some((epoch(l), positions(l)));
            } else if l.contains(": checkpoint ") {
                run.checkpoints.push((epoch(l), positions(l)));
            } else if l.contains(": applied ") {
                run.applied = positions(l);
            }
        }
        run
    }

    /// Records of `from` up to `to`, summed over partitions.
    pub fn between(from: &Positions, to: &Positions) -> i64 {
        to.iter()
            .map(|(tp, o)| o - from.get(tp).copied().unwrap_or(0))
            .sum()
    }

    /// The most records processed between two consecutive checkpoints (or the restored one
    /// and the first).
    pub fn largest_interval(&self) -> i64 {
        let mut previous = self
            .restored
            .as_ref()
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let mut largest = 0;
        for (_, p) in &self.checkpoints {
            largest = largest.max(Self::between(&previous, p));
            previous = p.clone();
        }
        largest
    }
}

/// What one checkpoint interval can hold: the most records a run processed between two
/// checkpoints, or a slice, whichever is more. The input comes a slice at a time and the kill
/// comes before the next slice once a checkpoint moved on, so what was processed after the
/// last checkpoint lies within one slice; an interval can hold less than that when the service
/// waited for input.
fn one_interval(run: &Run, feeder: &Feeder<'_>) -> i64 {
    run.largest_interval().max(feeder.largest)
}

#[test]
fn three_sigkills_lose_no_alert_and_each_restart_rereads_at_most_one_checkpoint_interval() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    // Five hours and a half of city through the whole library (its windows run to an hour).
    let feeds = simulated(&tmp.path().join("sim"), 20_000, 1.0);
    let expected = replay_alerts(tmp.path(), &feeds);
    assert!(expected.len() >= 10, "too few alerts to test with");
    let total: i64 = feeds.values().map(|l| l.len() as i64).sum();
    let mut topics = Topics::with_partitions(&brokers, "recovery", PARTITIONS);
    topics.checkpoint_ms = 300;
    let mut feeder = Feeder {
        publisher: Publisher::new(&brokers),
        topics: &topics,
        feeds: &feeds,
        next: 0,
        published: 0,
        largest: 0,
    };
    // Small fetches keep the service mid-stream long enough to be killed there.
    let config = topics.config_with(
        tmp.path(),
        &brokers,
        "",
        "\"queued.min.messages\" = \"200\"\n\"max.partition.fetch.bytes\" = \"20000\"\n",
        // No partition counts as idle between slices (a market partition can go several
        // slices without a record): event time is each partition's own, as in replay.
        "idle_timeout_ms = 3600000\n",
    );
    let batch = BATCH.to_string();
    let mut runs: Vec<Run> = Vec::new();
    for round in 0..3 {
        let mut child = Running(spawn_service_logging(
            &config,
            &["--batch-size", &batch],
            "info,citybrain_engine::pipeline=debug",
        ));
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().expect("log lock").push(l);
                }
            })
        };
        // Killed mid-stream: once it has taken a checkpoint that moved on, and processed
        // records since the last one. The next slice goes out whenever it has applied all
        // that is published, so it is never at the end of the input when the kill comes.
        let start = Instant::now();
        loop {
            let run = Run::read(&lines.lock().expect("log lock"));
            let mut previous = run.restored.clone().map(|(_, p)| p).unwrap_or_default();
            let mut moved = 0;
            for (_, p) in &run.checkpoints {
                moved += usize::from(Run::between(&previous, p) > 0);
                previous = p.clone();
            }
            if moved >= 1 && Run::between(&previous, &run.applied) > 0 {
                break;
            }
            if run.applied.values().sum::<i64>() == feeder.published {
                assert!(
                    feeder.publish_next(),
                    "round {round}: every slice published and processed before the kill"
                );
            }
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "round {round}: the service stopped on its own"
            );
            if start.elapsed() >= DEADLINE {
                let log = std::env::temp_dir().join(format!("citybrain-recovery-round{round}.log"));
                std::fs::write(&log, lines.lock().expect("log lock").join("\n")).expect("log");
                eprintln!("round {round}: its whole log is in {}", log.display());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "round {round}: not killed mid-stream before the deadline: {moved} checkpoints \
                 moved on, {} records processed of {total}, {} since the last checkpoint; \
                 its log ends:\n{}",
                run.applied.values().sum::<i64>(),
                Run::between(&previous, &run.applied),
                lines
                    .lock()
                    .expect("log lock")
                    .iter()
                    .rev()
                    .take(15)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::park_timeout(Duration::from_millis(10));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("log reader");
        let run = Run::read(&lines.lock().expect("log lock"));
        let processed: i64 = run.applied.values().sum();
        eprintln!(
            "round {round}: killed after {:?} with {processed} of {total} records processed, \
             {} checkpoints taken",
            start.elapsed(),
            run.checkpoints.len()
        );
        // The committed offsets are those of the last checkpoint taken (the one the log shows,
        // or one more when the kill fell between its commit and its log line).
        let committed = committed_offsets(&brokers, &topics, PARTITIONS);
        let (last_epoch, last) = run.checkpoints.last().expect("checkpoints").clone();
        let trail = Run::between(&committed, &run.applied);
        assert!(
            committed == last || Run::between(&last, &committed) > 0,
            "round {round}: committed {committed:?} is not the last checkpoint's {last:?} (epoch {last_epoch})"
        );
        let bound = one_interval(&run, &feeder);
        assert!(
            trail <= bound + BATCH,
            "round {round}: the committed offsets trail processing by {trail} records, more than \
             one checkpoint interval ({bound}) plus a batch"
        );
        runs.push(run);
    }
    while feeder.publish_next() {}
    let last = run_to_end(&config, &["--batch-size", &batch]);
    runs.push(Run::read(
        &last.lines().map(str::to_string).collect::<Vec<_>>(),
    ));
    for k in 1..runs.len() {
        let (killed, restarted) = (&runs[k - 1], &runs[k]);
        let (epoch, restored) = restarted.restored.clone().expect("a restored checkpoint");
        let last_epoch = killed.checkpoints.last().expect("checkpoints").0;
        assert!(
            epoch >= last_epoch,
            "restart {k} restored epoch {epoch}, older than the last one taken ({last_epoch})"
        );
        let reread = Run::between(&restored, &killed.applied);
        let interval = one_interval(killed, &feeder);
        eprintln!(
            "restart {k}: restored epoch {epoch}; re-read {reread} records (one checkpoint \
             interval: at most {interval} records, a batch {BATCH})"
        );
        assert!(
            (0..=interval + BATCH).contains(&reread),
            "restart {k} re-read {reread} records: more than one checkpoint interval \
             ({interval}) plus the batch in flight ({BATCH})"
        );
    }
    // No alert lost, none replay does not give, duplicates only as equal copies.
    assert_same_alerts(&alerts_of(&brokers, &topics.alerts), &expected);
}
