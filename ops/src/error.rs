//! This crate's errors.

use std::path::PathBuf;

/// What went wrong in the incident desk and its files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file (jurisdictions, policy, calendar, access, actions, incident log) cannot be read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file is not valid: every problem, one per line, each naming file, line and field.
    #[error("{}", problems.join("\n"))]
    Invalid { problems: Vec<String> },
    /// An output (incident events, the incident table, CAP messages) cannot be written.
    #[error("cannot write {what}")]
    Write {
        what: String,
        source: Box<citybrain_connectors::Error>,
    },
    /// A Kafka client call failed (restoring from or reading the incident topics).
    #[error("kafka: {action}")]
    Kafka {
        action: String,
        source: Box<rdkafka::error::KafkaError>,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The text of the file at `path`, or [`Error::Read`] naming it.
pub(crate) fn read_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// `text` (the file `file`) parsed as TOML into `T`, or [`Error::Invalid`] naming file and line
/// of what the parser refused.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        Error::Invalid {
            problems: vec![format!("{file}:{line}: {}", e.message())],
        }
    })
}
