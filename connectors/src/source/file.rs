//! Reading feed files: `DIR/{traffic,police,emergency,market}.jsonl`, one JSON event a line.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::feed::Feed;
use crate::record::{Origin, RawBatch, RawRecord};
use crate::source::{Progress, Source};
use crate::{Error, Result};

/// Default most records per batch: large enough to amortise per-batch costs in the engine,
/// small enough (a few MB of JSON) to keep latency and memory per batch low.
pub const DEFAULT_MAX_BATCH: usize = 8192;

/// Bytes read from a file at a time; lines are sliced out of this shared buffer.
const CHUNK: usize = 1 << 20;

/// Reads the feed files of a directory, cycling round-robin between feeds batch by batch.
///
/// Each feed's records come in file order with [`Origin::File`] (1-based line numbers).
/// Blank and whitespace-only lines are skipped; `\r\n` line ends and a last line without a
/// newline are accepted.
pub struct FileSource {
    readers: Vec<FeedReader>,
    /// Index in `readers` of the feed to read next.
    next: usize,
    max_batch: usize,
    total_bytes: u64,
}

impl FileSource {
    /// Opens every feed file present in `dir`. Batches hold at most `max_batch` records
    /// (at least 1; [`DEFAULT_MAX_BATCH`] is a good value).
    ///
    /// # Errors
    ///
    /// [`Error::NoFeedFiles`] if `dir` holds none of the feed files, [`Error::OpenFile`] if one
    /// cannot be opened.
    pub fn open(dir: &Path, max_batch: usize) -> Result<FileSource> {
        let mut readers = Vec::new();
        let mut total_bytes = 0;
        for feed in Feed::ALL {
            let path = dir.join(format!("{}.jsonl", feed.name()));
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::OpenFile { path, source }),
            };
            total_bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
            readers.push(FeedReader::new(feed, path, file));
        }
        if readers.is_empty() {
            return Err(Error::NoFeedFiles {
                dir: dir.to_path_buf(),
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
            next: 0,
            max_batch: max_batch.max(1),
            total_bytes,
        })
    }

    /// The feeds found, in read order.
    pub fn feeds(&self) -> Vec<Feed> {
        self.readers.iter().map(|r| r.feed).collect()
    }

    /// The next batch, read synchronously.
    fn read_batch(&mut self) -> Result<Option<RawBatch>> {
        for _ in 0..self.readers.len() {
            let index = self.next;
            self.next = (self.next + 1) % self.readers.len();
            let reader = &mut self.readers[index];
            if reader.finished {
                continue;
            }
            let mut records = Vec::with_capacity(self.max_batch.min(1024));
            while records.len() < self.max_batch {
                match reader.next_line()? {
                    Some(record) => records.push(record),
                    None => {
                        reader.finished = true;
                        break;
                    }
                }
            }
            if !records.is_empty() {
                return Ok(Some(RawBatch {
                    feed: reader.feed,
                    records,
                }));
            }
        }
        Ok(None)
    }
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
    path: PathBuf,
    origin_path: Arc<str>,
    file: File,
    /// Bytes read but not yet consumed start at `pos`.
    buf: Bytes,
    pos: usize,
    /// Number of the last line consumed.
    line: u64,
    eof: bool,
    finished: bool,
    read_bytes: u64,
}

impl FeedReader {
    fn new(feed: Feed, path: PathBuf, file: File) -> Self {
        let origin_path = Arc::from(path.display().to_string());
        Self {
            feed,
            path,
            origin_path,
            file,
            buf: Bytes::new(),
            pos: 0,
            line: 0,
            eof: false,
            finished: false,
            read_bytes: 0,
        }
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
            let start = self.pos;
            self.pos = (end + 1).min(self.buf.len());
            self.line += 1;
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
        let mut source = FileSource::open(dir.path(), 10).expect("open");
        assert_eq!(source.feeds(), [Feed::Police]);
        let batches = read_all(&mut source);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].feed, Feed::Police);
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

    #[test]
    fn batches_round_robin_between_feeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let numbered = |n: usize| {
            (1..=n)
                .map(|i| format!("{{\"n\":{i}}}\n"))
                .collect::<String>()
        };
        std::fs::write(dir.path().join("traffic.jsonl"), numbered(5)).expect("write");
        std::fs::write(dir.path().join("market.jsonl"), numbered(2)).expect("write");
        std::fs::write(dir.path().join("emergency.jsonl"), "").expect("write");
        let mut source = FileSource::open(dir.path(), 2).expect("open");
        let batches = read_all(&mut source);
        let shape: Vec<(Feed, Vec<u64>)> = batches
            .iter()
            .map(|b| (b.feed, lines(b).into_iter().map(|(_, l)| l).collect()))
            .collect();
        assert_eq!(
            shape,
            [
                (Feed::Traffic, vec![1, 2]),
                (Feed::Market, vec![1, 2]),
                (Feed::Traffic, vec![3, 4]),
                (Feed::Traffic, vec![5]),
            ]
        );
    }

    #[test]
    fn lines_spanning_chunks_are_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(CHUNK * 2 + 17));
        let text = format!("{long}\n{{\"n\":2}}\n{long}");
        std::fs::write(dir.path().join("traffic.jsonl"), &text).expect("write");
        let mut source = FileSource::open(dir.path(), 100).expect("open");
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
        let err = match FileSource::open(dir.path(), 10) {
            Err(e) => e,
            Ok(_) => panic!("open should fail without feed files"),
        };
        let text = err.to_string();
        assert!(matches!(err, Error::NoFeedFiles { .. }), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains("traffic.jsonl"), "{text}");
    }
}
