//! Standby and failover: several instances of one group share a checkpoint store; Kafka's
//! assignment of the one-partition control topic makes one of them active. When it dies or
//! stops, a standby takes over from its last checkpoint; no alert is lost.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::recovery::Run;
use crate::support::*;

const PARTITIONS: i32 = 2;
const ACTIVE: &str = "active: restored and reading";
const STANDING_BY: &str = "standing by until this instance is the active one";

/// One `citybrain run` process and the lines of its log.
struct Instance {
    name: &'static str,
    child: Running,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Instance {
    fn spawn(name: &'static str, config: &Path, extra: &[&str]) -> Self {
        let mut child = Running(spawn_service_logging(
            config,
            extra,
            "info,citybrain_engine::pipeline=debug",
        ));
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().expect("log lock").push(l);
                }
            })
        };
        Self {
            name,
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().expect("log lock").clone()
    }

    fn said(&self, needle: &str) -> bool {
        self.log().iter().any(|l| l.contains(needle))
    }

    fn run(&self) -> Run {
        Run::read(&self.log())
    }

    /// Waits until `done` holds of this instance (polling its log), failing if it exits first.
    fn wait_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !done(self) {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "{} exited ({status}) before: {what}\n{}",
                    self.name,
                    self.log().join("\n")
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{}: not before the deadline: {what}; its log:\n{}",
                self.name,
                self.log().join("\n")
            );
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }

    /// Checkpoints taken that moved on from the one before (or the one restored).
    fn progressing_checkpoints(&self) -> usize {
        let run = self.run();
        let mut previous = run.restored.map(|(_, p)| p).unwrap_or_default();
        let mut moved = 0;
        for (_, p) in &run.checkpoints {
            moved += usize::from(Run::between(&previous, p) > 0);
            previous = p.clone();
        }
        moved
    }

    fn kill(mut self) -> Run {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
        self.finish().1
    }

    fn terminate(mut self) -> (ExitStatus, Run) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let status = self.child.wait().expect("wait");
        let (_, run) = self.finish();
        (status, run)
    }

    fn wait_exit(mut self) -> (ExitStatus, Run) {
        let status = self.child.wait().expect("wait");
        self.finish();
        if !status.success() {
            eprintln!(
                "{} exited {status}; its log:\n{}",
                self.name,
                self.log().join("\n")
            );
        }
        (status, Run::read(&self.log()))
    }

    fn finish(&mut self) -> (Vec<String>, Run) {
        if let Some(r) = self.reader.take() {
            r.join().expect("log reader");
        }
        let log = self.log();
        let run = Run::read(&log);
        (log, run)
    }
}

/// A city with every feed over `PARTITIONS` partitions, replay's alerts for it, and a config
/// whose control lease runs out `session_ms` after a dead holder's last mark.
fn setup(
    dir: &Path,
    brokers: &str,
    name: &str,
    session_ms: u64,
) -> (Topics, std::path::PathBuf, Vec<serde_json::Value>, i64) {
    // Enough input that the active instance is still mid-stream when killed on a quiet machine.
    let feeds = simulated(&dir.join("sim"), 40_000, 1.0);
    let total = feeds.values().map(|l| l.len() as i64).sum();
    let expected = replay_alerts(dir, &feeds);
    assert!(expected.len() >= 10, "too few alerts to test with");
    let mut topics = Topics::with_partitions(brokers, name, PARTITIONS);
    topics.checkpoint_ms = 300;
    topics.session_ms = session_ms;
    publish_split(brokers, &topics, &feeds, PARTITIONS);
    // Small fetches keep the active instance mid-stream long enough to be stopped there.
    let consumer = "\"queued.min.messages\" = \"200\"\n\"max.partition.fetch.bytes\" = \"20000\"\n";
    let config = topics.config_with(dir, brokers, "", consumer, "");
    (topics, config, expected, total)
}

/// The standby restored a checkpoint at least as new as the last one `previous` took.
fn assert_took_over_from(previous: &Run, next: &Run, who: &str) {
    let (epoch, _) = next
        .restored
        .clone()
        .unwrap_or_else(|| panic!("{who} restored no checkpoint"));
    let last = previous.checkpoints.last().expect("checkpoints").0;
    assert!(
        epoch >= last,
        "{who} restored epoch {epoch}, older than the last one taken before ({last})"
    );
}

#[test]
fn a_standby_takes_over_from_the_last_checkpoint_when_the_active_instance_is_killed() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    // Not shorter: tansu, busy with two tests' traffic, missed 3 s heartbeats in CI.
    let session_ms = 10_000;
    let (topics, config, expected, total) = setup(tmp.path(), &brokers, "standby", session_ms);
    let mut a = Instance::spawn("a", &config, &["--batch-size", "100"]);
    a.wait_until("a is active", |i| i.said(ACTIVE));
    let mut b = Instance::spawn("b", &config, &["--batch-size", "100", "--exit-at-end"]);
    b.wait_until("b stands by", |i| i.said(STANDING_BY));
    // A stays active while B stands by and keeps checkpointing.
    let before = a.progressing_checkpoints();
    a.wait_until("a checkpoints twice more while b stands by", |i| {
        i.progressing_checkpoints() >= before + 2
    });
    assert!(!b.said(ACTIVE), "b became active while a was");
    let a_run = a.kill();
    let killed = Instant::now();
    let processed: i64 = a_run.applied.values().sum();
    assert!(
        processed < total,
        "a was killed after processing everything ({processed} of {total})"
    );
    b.wait_until("b takes over", |i| i.said(ACTIVE));
    let takeover = killed.elapsed();
    let (status, b_run) = b.wait_exit();
    assert!(status.success(), "b failed");
    assert_took_over_from(&a_run, &b_run, "b");
    eprintln!(
        "a killed after {processed} records; b took over {:.1} s later (session timeout {:.1} s)",
        takeover.as_secs_f64(),
        session_ms as f64 / 1000.0
    );
    assert_same_alerts(&alerts_of(&brokers, &topics.alerts), &expected);
}

#[test]
fn of_three_instances_a_graceful_stop_hands_over_at_once_to_one_standby() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().expect("temp dir");
    // Long enough that a handover faster than it can only come from leaving the group.
    let session_ms = 10_000;
    let (topics, config, expected, _) = setup(tmp.path(), &brokers, "standby3", session_ms);
    let extra = ["--batch-size", "100", "--exit-at-end"];
    let mut a = Instance::spawn("a", &config, &extra[..2]);
    a.wait_until("a is active", |i| i.said(ACTIVE));
    let mut b = Instance::spawn("b", &config, &extra);
    let mut c = Instance::spawn("c", &config, &extra);
    b.wait_until("b stands by", |i| i.said(STANDING_BY));
    c.wait_until("c stands by", |i| i.said(STANDING_BY));
    let before = a.progressing_checkpoints();
    a.wait_until("a checkpoints twice more", |i| {
        i.progressing_checkpoints() >= before + 2
    });
    assert!(!b.said(ACTIVE) && !c.said(ACTIVE), "two active instances");

    // SIGTERM: a takes a last checkpoint, leaves the group, and one standby takes over at once.
    let (status, a_run) = a.terminate();
    let stopped = Instant::now();
    assert!(status.success(), "a's graceful stop failed");
    let start = Instant::now();
    let (next, last) = loop {
        match (b.said(ACTIVE), c.said(ACTIVE)) {
            (true, false) => break (b, c),
            (false, true) => break (c, b),
            (true, true) => panic!("b and c both active"),
            (false, false) => {}
        }
        assert!(start.elapsed() < DEADLINE, "no standby took over");
        std::thread::park_timeout(Duration::from_millis(20));
    };
    let handover = stopped.elapsed();
    assert!(
        handover < Duration::from_millis(session_ms),
        "the handover took {handover:?}, as long as a crash's (session timeout {session_ms} ms)"
    );
    // The third, still standing by, stops gracefully (leaving the group moves nothing from the
    // active one); the new active instance reads to the end from a's last checkpoint. (A
    // crash's handover is the two-instance test's.)
    assert!(!last.said(ACTIVE), "two active instances");
    let (status, _) = last.terminate();
    assert!(status.success(), "the standby's graceful stop failed");
    let (status, next_run) = next.wait_exit();
    assert!(status.success(), "the new active instance failed");
    assert_took_over_from(&a_run, &next_run, "the new active instance");
    eprintln!(
        "graceful handover {:.1} s; a stopped after {} records",
        handover.as_secs_f64(),
        a_run.applied.values().sum::<i64>()
    );
    assert_same_alerts(&alerts_of(&brokers, &topics.alerts), &expected);
}
