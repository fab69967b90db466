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
pub struct JsonlSink {
    target: Target,
}

enum Target {
    File {
        path: PathBuf,
        writer: BufWriter<File>,
    },
    Stdout(BufWriter<Stdout>),
}

impl JsonlSink {
    /// Creates (or truncates) the file at `path`, creating its parent directory if missing.
    ///
    /// # Errors
    ///
    /// [`Error::CreateDir`] or [`Error::CreateFile`] naming the path.
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let file = File::create(path).map_err(|source| Error::CreateFile {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            target: Target::File {
                path: path.to_path_buf(),
                writer: BufWriter::with_capacity(BUFFER, file),
            },
        })
    }

    /// Opens the file at `path` for appending (creating it and its parent directory if
    /// missing): a log kept across runs.
    ///
    /// # Errors
    ///
    /// [`Error::CreateDir`] or [`Error::CreateFile`] naming the path.
    pub fn append(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
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
            Target::File { path, writer } => {
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
            Target::File { path, writer } => writer
                .flush()
                .and_then(|()| writer.get_ref().sync_data())
                .map_err(|source| Error::FlushFile {
                    path: path.clone(),
                    source,
                }),
            Target::Stdout(writer) => writer
                .flush()
                .map_err(|source| Error::WriteStdout { source }),
        }
    }
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
