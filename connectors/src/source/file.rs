//! Reading feed files: for each table of the catalog, `DIR/<table>.jsonl` (or the table's
//! `'path'`, relative to `DIR`), one JSON event a line.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::catalog::{Catalog, file_of};
use crate::decode::TimePeek;
use crate::feed::Feed;
use crate::record::{Origin, RawBatch, RawRecord};
use crate::source::{Progress, Source};
use crate::{Error, Result};

/// Default most records per batch: large enough to amortise per-batch costs in the engine,
/// small enough (a few MB of JSON) to keep latency and memory per batch low.
pub const DEFAULT_MAX_BATCH: usize = 8192;

/// Bytes read from a file at a time; lines are sliced out of this shared buffer.
const CHUNK: usize = 1 << 20;

/// How far, in event time, a batch may run past the oldest next record of the other feeds.
/// A minute keeps batches whole: a dense feed is not cut at every record of a sparse one
/// (which then arrives after the batch it falls in, a few seconds of event time late), two
/// equally dense feeds take turns in full batches, and a sparse feed closes at most a
/// minute's worth of its windows at once.
const MERGE_SLACK_MS: i64 = 60_000;

/// Records of each feed read ahead to order the feeds: a feed's place in the merge is the
/// earliest event time of its next this many records, so one record with a clock ahead (a year,
/// say) does not hold its whole feed back to the end of the replay while the others run on.
const HEAD_RECORDS: usize = 3;

/// The UTF-8 byte order mark some editors and Windows tools put at the start of a text file.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// A batch looks at its event time at most every this many lines (reading a time costs about
/// as much as splitting the line), and more often as it nears its limit (`look_stride`).
const TIME_CHECK_EVERY: usize = 32;

/// Reads the feed files of a directory, merged by event time, as a live stream would deliver
/// them.
///
/// Each batch holds records of one feed, in file order, with [`Origin::File`] (1-based line
/// numbers). It is taken from the feed whose next records are oldest (the earliest time of its
/// next [`HEAD_RECORDS`]), and ends after `max_batch` records or once its event time passes the
/// other feeds' next records by more than [`MERGE_SLACK_MS`]. A sparse feed therefore arrives
/// beside the dense one instead of all at once, and the windows it closes close one at a time,
/// as they would live. The event time is only peeked at (the value of the table's event-time
/// column); a record without a readable one at the head of its feed counts as oldest, and
/// decoding decides its fate. The order within a feed never changes.
///
/// Blank and whitespace-only lines are skipped; `\r\n` line ends, a last line without a
/// newline and a UTF-8 byte order mark at the start of a file are accepted.
pub struct FileSource {
    readers: Vec<FeedReader>,
    max_batch: usize,
    total_bytes: u64,
}

impl FileSource {
    /// Opens the file of every table of `catalog` present in `dir` ([`file_of`]). Batches hold
    /// at most `max_batch` records (at least 1; [`DEFAULT_MAX_BATCH`] is a good value).
    ///
    /// # Errors
    ///
    /// [`Error::NoFeedFiles`] if `dir` holds none of the feed files, [`Error::OpenFile`] if one
    /// cannot be opened.
    pub fn open(catalog: &Catalog, dir: &Path, max_batch: usize) -> Result<FileSource> {
        let mut readers = Vec::new();
        let mut total_bytes = 0;
        for feed in catalog.tables() {
            let path = file_of(feed, dir);
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::OpenFile { path, source }),
            };
            total_bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
            readers.push(FeedReader::new(feed.clone(), path, file));
        }
        if readers.is_empty() {
            return Err(Error::NoFeedFiles {
                dir: dir.to_path_buf(),
                expected: catalog
                    .tables()
                    .iter()
                    .map(|t| file_of(t, Path::new("")).display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        tracing::debug!(
            dir = %dir.display(),
            feeds = readers.len(),
            total_bytes,
            "opened feed files"
        );
        Ok(FileSource {
            readers,
            max_batch: max_batch.max(1),
            total_bytes,
        })
    }

    /// The feeds found, in the catalog's order.
    pub fn feeds(&self) -> Vec<Feed> {
        self.readers.iter().map(|r| r.feed.clone()).collect()
    }

    /// The feed files read, in the catalog's order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.readers.iter().map(|r| r.path.clone()).collect()
    }

    /// The next batch, read synchronously.
    fn read_batch(&mut self) -> Result<Option<RawBatch>> {
        // The feed whose next record is oldest (records without a time first; ties go to
        // the first feed).
        let mut pick: Option<(usize, i64)> = None;
        for (index, reader) in self.readers.iter_mut().enumerate() {
            if let Some(time) = reader.peek()? {
                let time = time.unwrap_or(i64::MIN);
                if pick.is_none_or(|(_, oldest)| time < oldest) {
                    pick = Some((index, time));
                }
            }
        }
        let Some((index, _)) = pick else {
            return Ok(None);
        };
        let limit = self
            .readers
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .filter_map(|(_, reader)| reader.head_time())
            .min()
            .map(|time| time.saturating_add(MERGE_SLACK_MS));

        let reader = &mut self.readers[index];
        let mut records = Vec::with_capacity(self.max_batch.min(1024));
        // The position and time of the last line whose time was read.
        let mut last_look = None;
        if let Some((record, time)) = reader.ahead.pop_front() {
            last_look = time.map(|t| (0, t));
            records.push(record);
        }
        let mut next_look = records.len();
        while records.len() < self.max_batch {
            let Some((record, known)) = reader.next_record()? else {
                break;
            };
            let position = records.len();
            if let Some(limit) = limit
                && position >= next_look
            {
                match known.unwrap_or_else(|| reader.time.peek(&record.payload)) {
                    Some(time) if time > limit => {
                        reader.ahead.push_front((record, Some(time)));
                        break;
                    }
                    Some(time) => {
                        next_look = position + look_stride(last_look, position, time, limit);
                        last_look = Some((position, time));
                    }
                    None => next_look = position + 1,
                }
            }
            records.push(record);
        }
        Ok(Some(RawBatch {
            feed: reader.feed.clone(),
            records,
        }))
    }
}

/// Lines until the next look at a batch's event time: half the lines the pace since the last
/// look (`last`, a position and a time) predicts before the time passes `limit`, from 1 to
/// [`TIME_CHECK_EVERY`]. A dense feed far from its limit is looked at every
/// [`TIME_CHECK_EVERY`] lines, a sparse one or one near its limit at every line.
fn look_stride(last: Option<(usize, i64)>, position: usize, time: i64, limit: i64) -> usize {
    let Some((then_position, then)) = last else {
        return 1;
    };
    let lines = i64::try_from(position - then_position).unwrap_or(i64::MAX);
    let elapsed = time.saturating_sub(then);
    if elapsed <= 0 {
        return 1;
    }
    let predicted = limit.saturating_sub(time).saturating_mul(lines) / elapsed;
    usize::try_from(predicted / 2).map_or(1, |n| n.clamp(1, TIME_CHECK_EVERY))
}

#[async_trait::async_trait]
impl Source for FileSource {
    /// Reads with blocking file I/O in large chunks (local files: short, bounded waits).
    async fn next_batch(&mut self) -> Result<Option<RawBatch>> {
        self.read_batch()
    }

    fn progress(&self) -> Option<Progress> {
        Some(Progress {
            done_bytes: self.readers.iter().map(|r| r.read_bytes).sum(),
            total_bytes: Some(self.total_bytes),
        })
    }
}

/// Splits one feed file into lines.
struct FeedReader {
    feed: Feed,
    /// Reads a record's event time without decoding it.
    time: TimePeek,
    path: PathBuf,
    origin_path: Arc<str>,
    file: File,
    /// Bytes read but not yet consumed start at `pos`.
    buf: Bytes,
    pos: usize,
    /// Number of the last line consumed.
    line: u64,
    eof: bool,
    /// The next records (at most [`HEAD_RECORDS`] once [`FeedReader::peek`] ran), read ahead
    /// to learn their event times, with those times.
    ahead: VecDeque<(RawRecord, Option<i64>)>,
    read_bytes: u64,
}

impl FeedReader {
    fn new(feed: Feed, path: PathBuf, file: File) -> Self {
        let origin_path = Arc::from(path.display().to_string());
        Self {
            time: TimePeek::of(&feed),
            feed,
            path,
            origin_path,
            file,
            buf: Bytes::new(),
            pos: 0,
            line: 0,
            eof: false,
            ahead: VecDeque::with_capacity(HEAD_RECORDS),
            read_bytes: 0,
        }
    }

    /// The feed's place in the merge, reading up to [`HEAD_RECORDS`] ahead: `None` at the end
    /// of the file, `Some(None)` when the next record has no readable time, else
    /// `Some(Some(`[`FeedReader::head_time`]`))`.
    fn peek(&mut self) -> Result<Option<Option<i64>>> {
        while self.ahead.len() < HEAD_RECORDS
            && let Some(record) = self.next_line()?
        {
            let time = self.time.peek(&record.payload);
            self.ahead.push_back((record, time));
        }
        Ok(match self.ahead.front() {
            None => None,
            Some((_, None)) => Some(None),
            Some(_) => Some(self.head_time()),
        })
    }

    /// The earliest event time of the records read ahead, when any has a readable one.
    fn head_time(&self) -> Option<i64> {
        self.ahead.iter().filter_map(|(_, time)| *time).min()
    }

    /// The next record, from those read ahead (with its time) or from the file (time unknown).
    fn next_record(&mut self) -> Result<Option<(RawRecord, Option<Option<i64>>)>> {
        if let Some((record, time)) = self.ahead.pop_front() {
            return Ok(Some((record, Some(time))));
        }
        Ok(self.next_line()?.map(|record| (record, None)))
    }

    /// The next non-blank line as a record, `None` at end of file.
    fn next_line(&mut self) -> Result<Option<RawRecord>> {
        loop {
            let rest = &self.buf[self.pos..];
            let end = match memchr::memchr(b'\n', rest) {
                Some(n) => self.pos + n,
                None if self.eof && !rest.is_empty() => self.buf.len(),
                None if self.eof => return Ok(None),
                None => {
                    self.refill()?;
                    continue;
                }
            };
            let mut start = self.pos;
            self.pos = (end + 1).min(self.buf.len());
            self.line += 1;
            if self.line == 1 && self.buf[start..end].starts_with(BOM) {
                start += BOM.len();
            }
            let mut line_end = end;
            if line_end > start && self.buf[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            let line = &self.buf[start..line_end];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(RawRecord {
                payload: self.buf.slice(start..line_end),
                origin: Origin::File {
                    path: Arc::clone(&self.origin_path),
                    line: self.line,
                },
            }));
        }
    }

    /// Reads the next chunk after the unconsumed rest of the buffer.
    fn refill(&mut self) -> Result<()> {
        let rest = &self.buf[self.pos..];
        let mut next = BytesMut::with_capacity(CHUNK.max(rest.len() * 2));
        next.extend_from_slice(rest);
        let filled = next.len();
        next.resize(next.capacity(), 0);
        let n = loop {
            match self.file.read(&mut next[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::ReadFile {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        };
        next.truncate(filled + n);
        self.eof = n == 0;
        self.read_bytes += n as u64;
        self.buf = next.freeze();
        self.pos = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city(name: &str) -> Feed {
        Catalog::city().table(name).expect("a city feed").clone()
    }

    fn peek_event_time(payload: &[u8]) -> Option<i64> {
        TimePeek::of(&city("traffic")).peek(payload)
    }

    fn lines(batch: &RawBatch) -> Vec<(String, u64)> {
        batch
            .records
            .iter()
            .map(|r| {
                let Origin::File { line, .. } = r.origin else {
                    panic!("file origin expected, got {:?}", r.origin)
                };
                (String::from_utf8(r.payload.to_vec()).expect("utf-8"), line)
            })
            .collect()
    }

    fn read_all(source: &mut FileSource) -> Vec<RawBatch> {
        let mut out = Vec::new();
        while let Some(batch) = source.read_batch().expect("read") {
            out.push(batch);
        }
        assert!(source.read_batch().expect("read").is_none(), "stays ended");
        out
    }

    #[test]
    fn line_numbers_crlf_blank_lines_and_missing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("police.jsonl"),
            "{\"a\":1}\r\n\n   \r\n{\"a\":2}\n\t\n{\"a\":3}",
        )
        .expect("write");
        let mut source = FileSource::open(&Catalog::city(), dir.path(), 10).expect("open");
        assert_eq!(source.feeds(), [city("police")]);
        let batches = read_all(&mut source);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].feed, city("police"));
        assert_eq!(
            lines(&batches[0]),
            [
                ("{\"a\":1}".to_owned(), 1),
                ("{\"a\":2}".to_owned(), 4),
                ("{\"a\":3}".to_owned(), 6)
            ]
        );
        let Origin::File { path, .. } = &batches[0].records[0].origin else {
            panic!("file origin expected")
        };
        assert!(path.ends_with("police.jsonl"), "{path}");
        let progress = source.progress().expect("progress");
        assert_eq!(Some(progress.done_bytes), progress.total_bytes);
    }

    /// A feed file with one line per event time (milliseconds), `"n"` its 1-based number.
    fn timed(times: impl IntoIterator<Item = i64>) -> String {
        times
            .into_iter()
            .enumerate()
            .map(|(i, ts)| format!("{{\"n\":{},\"ts\":{ts}}}\n", i + 1))
            .collect()
    }

    #[test]
    fn feeds_are_merged_by_event_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A dense feed every second for 2,000 s, and a sparse one.
        let spacing = 1_000;
        let police_times = [100_000, 500_000, 900_000];
        std::fs::write(
            dir.path().join("traffic.jsonl"),
            timed((0..2_000).map(|i| i * spacing)),
        )
        .expect("write");
        std::fs::write(dir.path().join("police.jsonl"), timed(police_times)).expect("write");
        let mut source = FileSource::open(&Catalog::city(), dir.path(), 10_000).expect("open");
        let batches = read_all(&mut source);

        // Every line once, each feed in file order.
        let order: Vec<(Feed, i64)> = batches
            .iter()
            .flat_map(|b| {
                b.records.iter().map(|r| {
                    let time = peek_event_time(&r.payload).expect("timed line");
                    (b.feed.clone(), time)
                })
            })
            .collect();
        for (feed, count) in [(city("traffic"), 2_000), (city("police"), 3)] {
            let times: Vec<i64> = order
                .iter()
                .filter(|(f, _)| *f == feed)
                .map(|(_, t)| *t)
                .collect();
            assert_eq!(times.len(), count, "{feed:?}");
            assert!(times.is_sorted(), "{feed:?} in file order");
        }
        // Each police report comes after the traffic before it, give or take the slack and
        // the lines between two looks at the time, and before the traffic after it.
        let overshoot = MERGE_SLACK_MS + TIME_CHECK_EVERY as i64 * spacing;
        for (at, (feed, police)) in order.iter().enumerate() {
            if *feed != city("police") {
                continue;
            }
            let (before, after) = order.split_at(at);
            assert!(
                before.iter().all(|(_, t)| *t <= police + overshoot),
                "traffic far ahead of the report at {police} ms"
            );
            assert!(
                after.iter().all(|(_, t)| *t >= *police),
                "older traffic after the report at {police} ms"
            );
        }
        // The dense feed is cut only where a sparse record comes between.
        assert!(
            batches.len() <= 2 * police_times.len() + 1,
            "{}",
            batches.len()
        );
    }

    #[test]
    fn records_without_a_time_come_first_in_batches_of_max_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let numbered = |n: usize| {
            (1..=n)
                .map(|i| format!("{{\"n\":{i}}}\n"))
                .collect::<String>()
        };
        std::fs::write(dir.path().join("traffic.jsonl"), timed([5, 6, 7])).expect("write");
        std::fs::write(dir.path().join("market.jsonl"), numbered(3)).expect("write");
        std::fs::write(dir.path().join("emergency.jsonl"), "").expect("write");
        let mut source = FileSource::open(&Catalog::city(), dir.path(), 2).expect("open");
        let batches = read_all(&mut source);
        let shape: Vec<(Feed, Vec<u64>)> = batches
            .iter()
            .map(|b| {
                (
                    b.feed.clone(),
                    lines(b).into_iter().map(|(_, l)| l).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (city("market"), vec![1, 2]),
                (city("market"), vec![3]),
                (city("traffic"), vec![1, 2]),
                (city("traffic"), vec![3]),
            ]
        );
    }

    /// Issue 11: a byte order mark turned a file's first valid record into a dead letter.
    #[test]
    fn a_byte_order_mark_starts_no_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("market.jsonl"),
            b"\xef\xbb\xbf{\"a\":1}\r\n{\"a\":2}\n\xef\xbb\xbf{\"a\":3}\n",
        )
        .expect("write");
        let mut source = FileSource::open(&Catalog::city(), dir.path(), 10).expect("open");
        let got = lines(&read_all(&mut source)[0]);
        // Only at the start of the file: elsewhere it is the record's own (malformed) bytes.
        assert_eq!(
            got,
            [
                ("{\"a\":1}".to_owned(), 1),
                ("{\"a\":2}".to_owned(), 2),
                ("\u{feff}{\"a\":3}".to_owned(), 3)
            ]
        );
        std::fs::write(dir.path().join("market.jsonl"), b"\xef\xbb\xbf").expect("write");
        let mut source = FileSource::open(&Catalog::city(), dir.path(), 10).expect("open");
        assert!(
            read_all(&mut source).is_empty(),
            "a lone mark is a blank file"
        );
    }

    /// One record with a wrong clock at the head of a feed (a year ahead) neither holds its
    /// feed back to the end nor lets the other feed run past the rest of it.
    #[test]
    fn one_wrong_clock_does_not_reorder_the_merge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let year = 365 * 86_400_000;
        std::fs::write(
            dir.path().join("traffic.jsonl"),
            timed((0..600).map(|i| i * 1_000)),
        )
        .expect("write");
        std::fs::write(
            dir.path().join("police.jsonl"),
            timed([year, 100_000, 300_000, 500_000]),
        )
        .expect("write");
        let mut source = FileSource::open(&Catalog::city(), dir.path(), 10_000).expect("open");
        let order: Vec<(Feed, i64)> = read_all(&mut source)
            .iter()
            .flat_map(|b| {
                b.records.iter().map(|r| {
                    (
                        b.feed.clone(),
                        peek_event_time(&r.payload).expect("timed line"),
                    )
                })
            })
            .collect();
        let overshoot = MERGE_SLACK_MS + TIME_CHECK_EVERY as i64 * 1_000;
        for police in [100_000, 300_000, 500_000] {
            let at = order
                .iter()
                .position(|x| *x == (city("police"), police))
                .expect("report read");
            let (before, after) = order.split_at(at);
            assert!(
                before
                    .iter()
                    .all(|(f, t)| *f == city("police") || *t <= police + overshoot),
                "traffic far ahead of the report at {police} ms"
            );
            assert!(
                after.iter().all(|(_, t)| *t >= police),
                "older traffic after the report at {police} ms"
            );
        }
    }

    #[test]
    fn lines_spanning_chunks_are_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(CHUNK * 2 + 17));
        let text = format!("{long}\n{{\"n\":2}}\n{long}");
        std::fs::write(dir.path().join("traffic.jsonl"), &text).expect("write");
        let mut source = FileSource::open(&Catalog::city(), dir.path(), 100).expect("open");
        let batches = read_all(&mut source);
        let got = lines(&batches[0]);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (long.clone(), 1));
        assert_eq!(got[1], ("{\"n\":2}".to_owned(), 2));
        assert_eq!(got[2], (long, 3));
    }

    #[test]
    fn no_feed_file_is_an_error_naming_dir_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("other.jsonl"), "{}\n").expect("write");
        let err = match FileSource::open(&Catalog::city(), dir.path(), 10) {
            Err(e) => e,
            Ok(_) => panic!("open should fail without feed files"),
        };
        let text = err.to_string();
        assert!(matches!(err, Error::NoFeedFiles { .. }), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains("traffic.jsonl"), "{text}");
    }
}
