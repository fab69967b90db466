//! The event-time guard: records dated too far ahead never reach a watermark.
//!
//! A feed's watermark follows the largest event time seen, so one record from a sensor whose
//! clock is an hour (or a year) ahead would close every open window at once and make what
//! follows late. [`EventTimeGuard`] sits between decoding and the rules and sets such records
//! aside as dead letters with reason `future`.
//!
//! ```text
//!  Decoded ──▶ EventTimeGuard::screen ──▶ rows for the rules (their times within the bound)
//!                │ ahead of the wall clock (live) or of their source (any run)
//!                ▼
//!              DeadLetter { reason: Future }      held: a replay's undecided tail, until the
//!                                                 next batch of its feed or the end of input
//! ```
//!
//! **The rule.** Each source (a file, a Kafka partition, the simulator) keeps the largest event
//! time it has delivered so far (its *clock*; records set aside never move it). A record is
//! *suspicious* when its time is more than the bound ahead of its source's clock, or when it is
//! the first of its source. A suspicious record is decided by the records of its source that
//! come after it: accepted when most of the next [`VOTERS`] are no more than the bound before it
//! (the feed really moved on: a gap in the data, a sparse feed), set aside as `future` when
//! most are further behind (it alone is ahead). In live runs (`run`, the Kafka service) a record
//! more than the bound ahead of the wall clock is set aside outright.
//!
//! Why not a median of recent times: a sparse feed (a police report every 20 minutes) is always
//! "ahead" of its own recent median, and after a real gap every record would be; the largest
//! accepted time with a vote of what follows needs no tuning to the feed's rate, and one
//! poisoned record, even the very first, never moves it.
//!
//! **Deciding needs what follows.** In a replay a suspicious record too close to the end of its
//! batch to be decided is held, with the records of its source after it, and put in front of
//! its feed's next batch (rows keep their order; the feed's watermark only waits). At the end of
//! input ([`EventTimeGuard::release`]) a held record is decided by the records after it, and
//! accepted when none follow: nothing is left for it to make late. Live runs never hold: an
//! undecided record at the end of a batch is decided by the records after it in the batch, and
//! with none it is kept unless it is further ahead of its source than [`STEP_FACTOR`] of the
//! source's usual steps (a dense feed never jumps an hour; a sparse one may). The wall clock
//! bounds what is kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, TimestampMillisecondArray};
use arrow::compute::{concat_batches, filter_record_batch};

use super::Decoded;
use crate::feed::Feed;
use crate::record::{DeadLetter, DeadReason, Origin, RawBatch, RawRecord};

/// Default bound: how far ahead of its reference an event time may be, milliseconds (10
/// minutes: clocks of working sensors drift by seconds, and batching producers send minutes
/// late, never ahead).
pub const DEFAULT_MAX_FUTURE_MS: i64 = 10 * 60 * 1000;

/// How many of the records after a suspicious one decide it (a strict majority of them).
pub const VOTERS: usize = 4;

/// Records after a suspicious one looked at for voters of its source (a batch mixing sources,
/// Kafka partitions of one topic, interleaves them).
const LOOK_AHEAD: usize = 64;

/// In a live run, a suspicious record with no record of its source after it in its batch is set
/// aside when it is further ahead of its source than this many of the source's usual steps (and
/// the bound): a dense feed does not jump an hour between two records, a sparse one may.
const STEP_FACTOR: f64 = 8.0;

/// What the guard knows of one source's time.
#[derive(Debug, Clone, Copy, Default)]
struct Clock {
    /// The largest event time accepted.
    latest: Option<i64>,
    /// How far the source usually moves on from one record that advances it to the next, ms
    /// (an exponentially weighted mean; 0 until known).
    step: f64,
}

impl Clock {
    fn accept(&mut self, t: i64) {
        match self.latest {
            Some(c) if t > c => {
                #[allow(clippy::cast_precision_loss)] // a step is far below 2^53 ms
                let gap = (t - c) as f64;
                self.step = if self.step == 0.0 {
                    gap
                } else {
                    0.9 * self.step + 0.1 * gap
                };
                self.latest = Some(t);
            }
            Some(_) => {}
            None => self.latest = Some(t),
        }
    }

    /// Whether `t` is further ahead than a dense source's steps explain.
    fn jumps(&self, t: i64, bound: i64) -> bool {
        #[allow(clippy::cast_precision_loss)]
        let ahead = |c: i64| t.saturating_sub(c) as f64;
        match self.latest {
            #[allow(clippy::cast_precision_loss)]
            Some(c) if self.step > 0.0 => ahead(c) > (STEP_FACTOR * self.step).max(bound as f64),
            _ => false,
        }
    }
}

/// Settings of the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// How far ahead an event time may be, milliseconds; default [`DEFAULT_MAX_FUTURE_MS`].
    pub max_future_ms: i64,
    /// A live run: the wall clock is a reference too, and nothing is held.
    pub live: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_future_ms: DEFAULT_MAX_FUTURE_MS,
            live: false,
        }
    }
}

/// Where records come from, as the guard tells sources apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum SourceId {
    File(Arc<str>),
    Kafka(Arc<str>, i32),
    Simulator,
}

impl SourceId {
    /// Whether `origin` is of this source (without building its id).
    fn matches(&self, origin: &Origin) -> bool {
        match (self, origin) {
            (SourceId::File(a), Origin::File { path, .. }) => Arc::ptr_eq(a, path) || a == path,
            (
                SourceId::Kafka(a, p),
                Origin::Kafka {
                    topic, partition, ..
                },
            ) => p == partition && (Arc::ptr_eq(a, topic) || a == topic),
            (SourceId::Simulator, Origin::Simulator { .. }) => true,
            _ => false,
        }
    }

    fn of(origin: &Origin) -> Self {
        match origin {
            Origin::File { path, .. } => SourceId::File(Arc::clone(path)),
            Origin::Kafka {
                topic, partition, ..
            } => SourceId::Kafka(Arc::clone(topic), *partition),
            Origin::Simulator { .. } => SourceId::Simulator,
        }
    }
}

/// Records held back in a replay until what follows them is known.
struct Held {
    records: Vec<RawRecord>,
    batch: RecordBatch,
}

/// Sets aside records dated too far ahead; see the module docs.
pub struct EventTimeGuard {
    config: GuardConfig,
    /// The largest event time each source delivered, by feed and source.
    clocks: HashMap<(Feed, SourceId), Clock>,
    /// Sources whose first `future` record was logged.
    logged: HashSet<(Feed, SourceId)>,
    held: BTreeMap<Feed, Held>,
}

impl std::fmt::Debug for EventTimeGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventTimeGuard")
            .field("config", &self.config)
            .field("sources", &self.clocks.len())
            .field(
                "held",
                &self.held.values().map(|h| h.records.len()).sum::<usize>(),
            )
            .finish()
    }
}

/// What became of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Future(Why),
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Ahead of the wall clock (ms).
    Wall(i64),
    /// Ahead of its source's clock (`None`: the source's first record) and of what follows.
    Source(Option<i64>),
}

impl EventTimeGuard {
    /// A guard with no history.
    pub fn new(config: GuardConfig) -> Self {
        Self {
            config,
            clocks: HashMap::new(),
            logged: HashSet::new(),
            held: BTreeMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> GuardConfig {
        self.config
    }

    /// Screens one decoded batch of `raw`: rows dated too far ahead leave `decoded.batch` (and
    /// `decoded.rows`) for `decoded.dead` with [`DeadReason::Future`]. `now_ms` is the wall
    /// clock (epoch ms), used in live runs.
    ///
    /// In a replay, records held from an earlier batch of the same feed are put in front of
    /// `raw` and `decoded` first, and an undecided tail is taken out of both (`raw` loses its
    /// records from the first held one on; dead letters among them stay in `decoded.dead`).
    pub fn screen(&mut self, raw: &mut RawBatch, decoded: &mut Decoded, now_ms: i64) {
        if let Some(held) = self.held.remove(&raw.feed) {
            prepend(held, raw, decoded);
        }
        self.decide(raw, decoded, now_ms, false);
    }

    /// At the end of input: the held records, decided with what is known (each by the held
    /// records after it; accepted when none follow), as batches to run like any other.
    pub fn release(&mut self, now_ms: i64) -> Vec<(RawBatch, Decoded)> {
        let held = std::mem::take(&mut self.held);
        held.into_iter()
            .map(|(feed, h)| {
                let mut raw = RawBatch {
                    feed,
                    records: h.records,
                };
                let rows = (0..raw.records.len())
                    .map(|i| u32::try_from(i).expect("a batch holds fewer than 2^32 records"))
                    .collect();
                let mut decoded = Decoded {
                    batch: h.batch,
                    rows,
                    dead: Vec::new(),
                };
                self.decide(&mut raw, &mut decoded, now_ms, true);
                (raw, decoded)
            })
            .collect()
    }

    /// Whether records are held (a replay's undecided tails).
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    fn decide(&mut self, raw: &mut RawBatch, decoded: &mut Decoded, now_ms: i64, at_end: bool) {
        let n = decoded.batch.num_rows();
        let Some(ts) = decoded
            .batch
            .columns()
            .get(raw.feed.time_index())
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
            .cloned()
        else {
            return;
        };
        let bound = self.config.max_future_ms;
        let wall_limit = self.config.live.then(|| now_ms.saturating_add(bound));
        let origins: Vec<&Origin> = decoded
            .rows
            .iter()
            .map(|&r| &raw.records[r as usize].origin)
            .collect();
        // Fates are written down only once a row is not simply kept (the usual batch).
        let mut fates: Option<Vec<Fate>> = None;
        let mut current: Option<(SourceId, Clock)> = None;
        let mut hold_from = None;
        for row in 0..n {
            let t = ts.value(row);
            // Runs of one source share its clock; switch (and store) only when it changes.
            if !current
                .as_ref()
                .is_some_and(|(s, _)| s.matches(origins[row]))
            {
                if let Some((s, c)) = current.take() {
                    self.clocks.insert((raw.feed.clone(), s), c);
                }
                let source = SourceId::of(origins[row]);
                let clock = self
                    .clocks
                    .get(&(raw.feed.clone(), source.clone()))
                    .copied()
                    .unwrap_or_default();
                current = Some((source, clock));
            }
            let (source, clock) = current.as_mut().expect("set above");
            let fate = if wall_limit.is_some_and(|limit| t > limit) {
                Fate::Future(Why::Wall(now_ms))
            } else if clock.latest.is_some_and(|c| t <= c.saturating_add(bound)) {
                Fate::Keep
            } else {
                self.vote(&ts, &origins, row, source, at_end, *clock)
            };
            match fate {
                Fate::Keep => clock.accept(t),
                Fate::Hold => {
                    hold_from = Some(row);
                    break;
                }
                Fate::Future(_) => {}
            }
            if fate != Fate::Keep || fates.is_some() {
                fates
                    .get_or_insert_with(|| vec![Fate::Keep; row])
                    .push(fate);
            }
        }
        if let Some((s, c)) = current {
            self.clocks.insert((raw.feed.clone(), s), c);
        }
        if fates.is_none() && hold_from.is_none() {
            return;
        }
        let mut fates = fates.unwrap_or_default();
        fates.resize(hold_from.unwrap_or(n), Fate::Keep);
        fates.resize(n, Fate::Hold);
        self.apply(raw, decoded, &fates, &ts);
    }

    /// Decides the suspicious record at `row` by the records of its source after it.
    fn vote(
        &self,
        ts: &TimestampMillisecondArray,
        origins: &[&Origin],
        row: usize,
        source: &SourceId,
        at_end: bool,
        clock: Clock,
    ) -> Fate {
        let t = ts.value(row);
        let bound = self.config.max_future_ms;
        let floor = t.saturating_sub(bound);
        let (mut follow, mut behind) = (0, 0);
        let end = ts.len().min(row + 1 + LOOK_AHEAD);
        let mut only_source = true;
        for (later, origin) in origins.iter().enumerate().take(end).skip(row + 1) {
            if !source.matches(origin) {
                only_source = false;
                continue;
            }
            if ts.value(later) >= floor {
                follow += 1;
            } else {
                behind += 1;
            }
            // A strict majority of VOTERS either way decides.
            if 2 * follow > VOTERS {
                return Fate::Keep;
            }
            if 2 * behind >= VOTERS {
                return Fate::Future(Why::Source(clock.latest));
            }
        }
        let decided_by_what_is_known = self.config.live || at_end || !only_source;
        if !decided_by_what_is_known {
            return Fate::Hold;
        }
        if behind > follow
            || (self.config.live && follow == 0 && behind == 0 && clock.jumps(t, bound))
        {
            Fate::Future(Why::Source(clock.latest))
        } else {
            Fate::Keep
        }
    }

    /// Takes future rows out as dead letters and held rows out into `self.held`.
    fn apply(
        &mut self,
        raw: &mut RawBatch,
        decoded: &mut Decoded,
        fates: &[Fate],
        ts: &TimestampMillisecondArray,
    ) {
        let feed = raw.feed.clone();
        let keep: BooleanArray = fates.iter().map(|f| Some(*f == Fate::Keep)).collect();
        let hold: BooleanArray = fates.iter().map(|f| Some(*f == Fate::Hold)).collect();
        let held_batch = filter_record_batch(&decoded.batch, &hold).expect("mask fits the batch");
        let kept_batch = filter_record_batch(&decoded.batch, &keep).expect("mask fits the batch");
        let mut rows = Vec::with_capacity(kept_batch.num_rows());
        let mut held_records = Vec::new();
        let mut first_held = None;
        for (row, fate) in fates.iter().enumerate() {
            let index = decoded.rows[row];
            let record = &raw.records[index as usize];
            match fate {
                Fate::Keep => rows.push(index),
                Fate::Hold => {
                    first_held.get_or_insert(index as usize);
                    held_records.push(record.clone());
                }
                Fate::Future(why) => {
                    let detail = self.describe(ts.value(row), *why);
                    let source = SourceId::of(&record.origin);
                    if self.logged.insert((feed.clone(), source)) {
                        tracing::warn!(
                            feed = feed.name(),
                            source = %record.origin.source(),
                            detail,
                            "a record dated ahead was set aside as `future` (logged once per \
                             source; counted in citybrain_future_total)"
                        );
                    }
                    decoded.dead.push(DeadLetter {
                        feed: feed.clone(),
                        origin: record.origin.clone(),
                        payload: record.payload.clone(),
                        reason: DeadReason::Future(detail),
                    });
                }
            }
        }
        if let Some(first) = first_held {
            raw.records.truncate(first);
            self.held.insert(
                feed,
                Held {
                    records: held_records,
                    batch: held_batch,
                },
            );
        }
        decoded.batch = kept_batch;
        decoded.rows = rows;
    }

    fn describe(&self, t: i64, why: Why) -> String {
        let bound = human_duration(self.config.max_future_ms);
        match why {
            Why::Wall(now) => format!(
                "event time {} is more than {bound} ahead of the wall clock ({})",
                rfc3339(t),
                rfc3339(now)
            ),
            Why::Source(Some(clock)) => format!(
                "event time {} is more than {bound} ahead of its source (latest {}) and of the \
                 records after it",
                rfc3339(t),
                rfc3339(clock)
            ),
            Why::Source(None) => format!(
                "event time {} is more than {bound} ahead of the records of its source after it",
                rfc3339(t)
            ),
        }
    }
}

/// Puts `held` in front of `raw` and `decoded`.
fn prepend(held: Held, raw: &mut RawBatch, decoded: &mut Decoded) {
    let h = held.records.len();
    let shift = u32::try_from(h).expect("a batch holds fewer than 2^32 records");
    let batch = concat_batches(&decoded.batch.schema(), [&held.batch, &decoded.batch])
        .expect("held rows have their feed's schema");
    let mut records = held.records;
    records.append(&mut raw.records);
    raw.records = records;
    let rows = (0..shift)
        .chain(decoded.rows.iter().map(|r| r + shift))
        .collect();
    decoded.batch = batch;
    decoded.rows = rows;
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// `10m`, `90s`, `1h30m`, `250ms`.
fn human_duration(ms: i64) -> String {
    if ms % 1000 != 0 || ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    let mut out = String::new();
    for (v, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::decode::Decoder;
    use crate::privacy::Pseudonymizer;
    use bytes::Bytes;

    fn city(name: &str) -> Feed {
        Catalog::city().table(name).expect("a city feed").clone()
    }

    const MIN: i64 = 60_000;
    const T0: i64 = 1_772_431_200_000;

    fn batch(feed: Feed, path: &str, first_line: u64, times: &[i64]) -> (RawBatch, Decoded) {
        let records = times
            .iter()
            .enumerate()
            .map(|(i, t)| RawRecord {
                payload: Bytes::from(format!(
                    r#"{{"event_id":"e{}","ts":{t},"lat":1,"lon":1}}"#,
                    first_line + i as u64
                )),
                origin: Origin::File {
                    path: path.into(),
                    line: first_line + i as u64,
                },
            })
            .collect();
        let raw = RawBatch {
            feed: feed.clone(),
            records,
        };
        let decoded = Decoder::new(feed, Arc::new(Pseudonymizer::new(b"k"))).decode(&raw);
        (raw, decoded)
    }

    fn kept(decoded: &Decoded) -> Vec<i64> {
        let ts = decoded
            .batch
            .column_by_name("ts")
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
            .expect("ts");
        (0..ts.len()).map(|i| ts.value(i)).collect()
    }

    fn future(decoded: &Decoded) -> Vec<u64> {
        decoded
            .dead
            .iter()
            .filter(|d| matches!(d.reason, DeadReason::Future(_)))
            .map(|d| match d.origin {
                Origin::File { line, .. } => line,
                _ => panic!("file origin"),
            })
            .collect()
    }

    fn screen(guard: &mut EventTimeGuard, times: &[i64], first_line: u64) -> Decoded {
        let (mut raw, mut decoded) = batch(city("traffic"), "t.jsonl", first_line, times);
        guard.screen(&mut raw, &mut decoded, T0);
        decoded
    }

    #[test]
    fn one_record_ahead_is_set_aside_wherever_it_is() {
        for ahead in [61 * MIN, 8 * 60 * MIN, 253_402_300_799_000 - T0] {
            for at in [0, 1, 5, 9] {
                let mut times: Vec<i64> = (0..10).map(|i| T0 + i * 1000).collect();
                times[at] += ahead;
                let mut guard = EventTimeGuard::new(GuardConfig::default());
                let d = screen(&mut guard, &times, 1);
                let mut want = times.clone();
                want.remove(at);
                if at == 9 {
                    // The last of the batch waits for what follows.
                    assert!(future(&d).is_empty());
                    assert_eq!(kept(&d), want);
                    assert!(guard.is_holding());
                    let d = screen(&mut guard, &[T0 + 10_000, T0 + 11_000], 11);
                    assert_eq!(future(&d), [10]);
                    assert_eq!(kept(&d), [T0 + 10_000, T0 + 11_000]);
                } else {
                    assert_eq!(future(&d), [at as u64 + 1], "ahead {ahead} at {at}");
                    assert_eq!(kept(&d), want);
                }
            }
        }
    }

    #[test]
    fn gaps_and_sparse_feeds_are_kept() {
        let mut guard = EventTimeGuard::new(GuardConfig::default());
        // A sparse feed: every 20 minutes, a 3-hour gap, then on; in batches of three.
        let times: Vec<i64> = (0..6)
            .map(|i| T0 + i * 20 * MIN)
            .chain((0..6).map(|i| T0 + 5 * 60 * MIN + i * 20 * MIN))
            .collect();
        let mut all = Vec::new();
        for (n, chunk) in times.chunks(3).enumerate() {
            let d = screen(&mut guard, chunk, 1 + 3 * n as u64);
            assert!(future(&d).is_empty(), "{:?}", d.dead);
            all.extend(kept(&d));
        }
        for (raw, d) in guard.release(T0) {
            assert_eq!(raw.feed.name(), "traffic");
            assert!(future(&d).is_empty());
            all.extend(kept(&d));
        }
        assert_eq!(all, times, "every record once, in order");
    }

    #[test]
    fn a_lone_last_record_is_released_at_the_end() {
        let mut guard = EventTimeGuard::new(GuardConfig::default());
        let d = screen(&mut guard, &[T0, T0 + 1000, T0 + 2000, T0 + 90 * MIN], 1);
        assert_eq!(kept(&d), [T0, T0 + 1000, T0 + 2000]);
        let released = guard.release(T0);
        assert_eq!(released.len(), 1);
        assert_eq!(kept(&released[0].1), [T0 + 90 * MIN]);
        assert!(!guard.is_holding());
    }

    #[test]
    fn a_burst_of_two_from_one_wrong_clock_is_set_aside() {
        let mut guard = EventTimeGuard::new(GuardConfig::default());
        let mut times: Vec<i64> = (0..12).map(|i| T0 + i * 1000).collect();
        times[3] += 60 * MIN;
        times[4] += 60 * MIN;
        let d = screen(&mut guard, &times, 1);
        assert_eq!(future(&d), [4, 5]);
        let d = screen(&mut guard, &[T0 + 12_000], 13);
        assert_eq!(kept(&d), [T0 + 12_000], "the clock did not move");
    }

    #[test]
    fn live_runs_compare_with_the_wall_clock_and_never_hold() {
        let mut guard = EventTimeGuard::new(GuardConfig {
            live: true,
            ..GuardConfig::default()
        });
        // Now is T0: 11 minutes ahead of it is future even if everything after agrees.
        let d = screen(
            &mut guard,
            &[T0 - MIN, T0 + 11 * MIN, T0 + 11 * MIN, T0 + 11 * MIN],
            1,
        );
        assert_eq!(future(&d), [2, 3, 4]);
        // A lone record at the end of a batch, within the wall clock's bound: kept.
        let d = screen(&mut guard, &[T0 + 9 * MIN], 5);
        assert_eq!(kept(&d), [T0 + 9 * MIN]);
        assert!(!guard.is_holding());
        // Backlog (hours old): one record an hour ahead of its neighbours still goes.
        let old = T0 - 10 * 60 * MIN;
        let mut guard = EventTimeGuard::new(GuardConfig {
            live: true,
            ..GuardConfig::default()
        });
        let d = screen(
            &mut guard,
            &[old + 60 * MIN, old, old + 1, old + 2, old + 3],
            1,
        );
        assert_eq!(future(&d), [1]);
    }

    /// Live, on a backlog (the wall clock far ahead): a record an hour ahead at the end of its
    /// batch, with nothing after it, goes when its source is dense and stays when it is sparse.
    #[test]
    fn live_tails_are_judged_by_the_sources_usual_step() {
        let old = T0 - 24 * 60 * MIN;
        let live = GuardConfig {
            live: true,
            ..GuardConfig::default()
        };
        let mut dense = EventTimeGuard::new(live);
        let times: Vec<i64> = (0..20).map(|i| old + i * 100).collect();
        assert!(future(&screen(&mut dense, &times, 1)).is_empty());
        let d = screen(&mut dense, &[old + 2_000, old + 60 * MIN], 21);
        assert_eq!(future(&d), [22]);
        let mut sparse = EventTimeGuard::new(live);
        let times: Vec<i64> = (0..6).map(|i| old + i * 20 * MIN).collect();
        assert!(future(&screen(&mut sparse, &times, 1)).is_empty());
        let d = screen(&mut sparse, &[old + 6 * 20 * MIN + 40 * MIN], 7);
        assert!(future(&d).is_empty(), "a sparse feed's gap is kept");
    }

    #[test]
    fn sources_have_their_own_clocks() {
        let mut guard = EventTimeGuard::new(GuardConfig::default());
        let (mut raw, mut d) = batch(city("police"), "a.jsonl", 1, &[T0, T0 + 1, T0 + 2, T0 + 3]);
        guard.screen(&mut raw, &mut d, T0);
        // Another file of the same feed, 3 hours later: its own first records decide.
        let later = T0 + 180 * MIN;
        let (mut raw, mut d) = batch(
            city("police"),
            "b.jsonl",
            1,
            &[later, later + 1, later + 2, later + 3],
        );
        guard.screen(&mut raw, &mut d, T0);
        assert_eq!(d.batch.num_rows(), 4, "{:?}", d.dead);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(600_000), "10m");
        assert_eq!(human_duration(5_400_000), "1h30m");
        assert_eq!(human_duration(250), "250ms");
    }
}
