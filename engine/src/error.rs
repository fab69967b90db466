//! Errors of the engine, named after the failing part.

use std::path::PathBuf;

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What stopped a pipeline or the service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the input failed.
    #[error("reading input")]
    Source(#[source] citybrain_connectors::Error),
    /// Writing alerts or dead letters failed.
    #[error("writing output")]
    Sink(#[source] citybrain_connectors::Error),
    /// Committing consumed offsets failed.
    #[error("committing progress")]
    Commit(#[source] citybrain_connectors::Error),
    /// Writing or reading a checkpoint failed.
    #[error("checkpoint: {action}: {detail}")]
    Checkpoint { action: String, detail: String },
    /// Another instance of the group became the active one while this one ran.
    #[error(
        "another instance of the group took over (it claimed the control lease this one had let run out); this one stopped: restart it to stand by"
    )]
    Fenced,
    /// Loading or running a rule failed.
    #[error(transparent)]
    Rules(#[from] citybrain_rules::Error),
    /// The configuration file cannot be read (a user error).
    #[error("cannot read configuration {path}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The configuration is invalid (a user error); every problem is listed.
    #[error("invalid configuration:\n  {}", problems.join("\n  "))]
    Config { problems: Vec<String> },
    /// The incident desk failed: a jurisdictions, policy, calendar, access or actions file is
    /// invalid (every problem listed), or its outputs cannot be written.
    #[error(transparent)]
    Incidents(citybrain_ops::Error),
    /// The metrics endpoint cannot listen.
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        addr: String,
        source: std::io::Error,
    },
    /// The operations console cannot listen on the address given.
    #[error("cannot serve the console on {addr}")]
    Console {
        addr: String,
        source: std::io::Error,
    },
}
