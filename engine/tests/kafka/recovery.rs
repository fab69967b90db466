//! Bounded recovery: the service killed (SIGKILL) three times mid-stream restores its last
//! checkpoint each time, loses no alert, and re-reads only what it processed after that
//! checkpoint; the committed offsets are a checkpoint's.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// Records per batch: also what one batch in flight can add to what a restart re-reads.
const BATCH: i64 = 100;
const PARTITIONS: i32 = 2;

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
    publish_split(&brokers, &topics, &feeds, PARTITIONS);
    // Small fetches keep the service mid-stream long enough to be killed there.
    let config = topics.config_with(
        tmp.path(),
        &brokers,
        "",
        "\"queued.min.messages\" = \"200\"\n\"max.partition.fetch.bytes\" = \"20000\"\n",
        "",
    );
    let batch = BATCH.to_string();
    let mut runs: Vec<Run> = Vec::new();
    for round in 0..3 {
        let mut child = spawn_service_logging(
            &config,
            &["--batch-size", &batch],
            "info,citybrain_engine::pipeline=debug",
        );
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
        // records since the last one (early: each round must leave input to the next).
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
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "round {round}: the service stopped on its own"
            );
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
        assert!(
            processed < total,
            "round {round}: killed after processing everything ({processed} of {total})"
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
        assert!(
            trail <= run.largest_interval() + BATCH,
            "round {round}: the committed offsets trail processing by {trail} records, more than \
             one checkpoint interval ({}) plus a batch",
            run.largest_interval()
        );
        runs.push(run);
    }
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
        let interval = killed.largest_interval();
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
