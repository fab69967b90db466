//! JSON-lines sinks: a file, or standard output for people watching alerts.

use std::fs::File;
use std::io::{BufWriter, Stdout, Write};
use std::path::{Path, PathBuf};

use crate::sink::{Sink, SinkRecord};
use crate::{Error, Result};

/// Buffer size of file sinks: alerts and dead letters are small, this holds thousands.
const BUFFER: usize = 256 * 1024;

/// Writes each record's payload as one line; key and headers are not written.
///
/// Writes are buffered; [`Sink::flush`] writes the buffer and, for files, fsyncs. The stdout
/// variant flushes after every `write` so that alert lines appear at once.
///
/// A file made by [`JsonlSink::create`] is written under a temporary name next to its path and
/// moved to the path at the first flush (a replay's end): until then a file already at the path
/// is untouched, so a run that fails (or reads the file it was told to write) destroys
/// nothing, and a reader never sees half an output. Later writes go on in the same file.
/// [`JsonlSink::append`] adds to the end of an existing file instead.
pub struct JsonlSink {
    target: Target,
}

enum Target {
    File {
        path: PathBuf,
        writer: BufWriter<File>,
        /// The temporary name written under until the first flush moves it to `path`.
        pending: Option<PathBuf>,
    },
    Stdout(BufWriter<Stdout>),
}

impl JsonlSink {
    /// A new file for `path` (replacing any file there at the first flush; see the type's
    /// docs), creating its parent directory if missing.
    ///
    /// # Errors
    ///
    /// [`Error::CreateDir`] or [`Error::CreateFile`] naming the path.
    pub fn create(path: &Path) -> Result<Self> {
        create_parent(path)?;
        let name = path
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let temporary = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let file = File::create(&temporary).map_err(|source| Error::CreateFile {
            path: temporary.clone(),
            source,
        })?;
        Ok(Self {
            target: Target::File {
                path: path.to_path_buf(),
                writer: BufWriter::with_capacity(BUFFER, file),
                pending: Some(temporary),
            },
        })
    }

    /// Appends to the file at `path` (created, with its parent directory, if missing): what
    /// was there stays, e.g. the dead letters of earlier runs.
    ///
    /// # Errors
    ///
    /// [`Error::CreateDir`] or [`Error::CreateFile`] naming the path.
    pub fn append(path: &Path) -> Result<Self> {
        create_parent(path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::CreateFile {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            target: Target::File {
                path: path.to_path_buf(),
                writer: BufWriter::with_capacity(BUFFER, file),
                pending: None,
            },
        })
    }

    /// A sink printing one line per record on standard output.
    pub fn stdout() -> Self {
        Self {
            target: Target::Stdout(BufWriter::new(std::io::stdout())),
        }
    }

    fn write_lines(&mut self, records: &[SinkRecord]) -> Result<()> {
        match &mut self.target {
            Target::File { path, writer, .. } => {
                write_lines(writer, records).map_err(|source| Error::WriteFile {
                    path: path.clone(),
                    source,
                })
            }
            Target::Stdout(writer) => write_lines(writer, records)
                .and_then(|()| writer.flush())
                .map_err(|source| Error::WriteStdout { source }),
        }
    }

    fn flush_sync(&mut self) -> Result<()> {
        match &mut self.target {
            Target::File {
                path,
                writer,
                pending,
            } => {
                writer
                    .flush()
                    .and_then(|()| writer.get_ref().sync_data())
                    .map_err(|source| Error::FlushFile {
                        path: pending.clone().unwrap_or_else(|| path.clone()),
                        source,
                    })?;
                if let Some(temporary) = pending.take() {
                    std::fs::rename(&temporary, &*path).map_err(|source| Error::RenameFile {
                        from: temporary,
                        to: path.clone(),
                        source,
                    })?;
                }
                Ok(())
            }
            Target::Stdout(writer) => writer
                .flush()
                .map_err(|source| Error::WriteStdout { source }),
        }
    }
}

impl Drop for JsonlSink {
    /// A file never flushed (a run that failed) leaves no temporary file behind.
    fn drop(&mut self) {
        if let Target::File {
            pending: Some(temporary),
            ..
        } = &self.target
        {
            let _ = std::fs::remove_file(temporary);
        }
    }
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

fn write_lines(writer: &mut impl Write, records: &[SinkRecord]) -> std::io::Result<()> {
    for record in records {
        debug_assert!(
            !record.payload.contains('\n'),
            "sink payloads are single-line JSON"
        );
        writer.write_all(record.payload.as_bytes())?;
        writer.write_all(b"\n")?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Sink for JsonlSink {
    /// Buffered blocking writes; only a full buffer touches the disk.
    async fn write(&mut self, records: &[SinkRecord]) -> Result<()> {
        self.write_lines(records)
    }

    async fn flush(&mut self) -> Result<()> {
        self.flush_sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_line_per_payload_and_creates_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/alerts.jsonl");
        let mut sink = JsonlSink::create(&path).expect("create");
        let records = [
            SinkRecord::new(r#"{"rule":"a"}"#),
            SinkRecord {
                key: Some("k".into()),
                payload: r#"{"rule":"b"}"#.into(),
                headers: vec![("h".into(), "v".into())],
            },
        ];
        sink.write_lines(&records).expect("write");
        sink.flush_sync().expect("flush");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert_eq!(text, "{\"rule\":\"a\"}\n{\"rule\":\"b\"}\n");
    }

    #[test]
    fn a_file_replaces_the_old_one_only_when_flushed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alerts.jsonl");
        std::fs::write(&path, "old\n").expect("write");
        let mut sink = JsonlSink::create(&path).expect("create");
        sink.write_lines(&[SinkRecord::new("new")]).expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old\n");
        sink.flush_sync().expect("flush");
        sink.write_lines(&[SinkRecord::new("more")]).expect("write");
        sink.flush_sync().expect("flush");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\nmore\n");
        drop(sink);
        // A sink dropped before its first flush leaves the old file and no temporary one.
        let sink = JsonlSink::create(&path).expect("create");
        drop(sink);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\nmore\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["alerts.jsonl"]);
    }

    #[test]
    fn append_keeps_what_was_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dead.jsonl");
        std::fs::write(&path, "earlier\n").expect("write");
        let mut sink = JsonlSink::append(&path).expect("append");
        sink.write_lines(&[SinkRecord::new("later")])
            .expect("write");
        sink.flush_sync().expect("flush");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "earlier\nlater\n"
        );
    }

    #[test]
    fn create_names_the_path_on_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").expect("write");
        let err = match JsonlSink::create(&blocker.join("x.jsonl")) {
            Err(e) => e,
            Ok(_) => panic!("a file cannot be a directory"),
        };
        assert!(err.to_string().contains("file"), "{err}");
    }
}
