//! Errors of the engine, named after the failing part.

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What stopped a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the input failed.
    #[error("reading input")]
    Source(#[source] citybrain_connectors::Error),
    /// Writing alerts or dead letters failed.
    #[error("writing output")]
    Sink(#[source] citybrain_connectors::Error),
    /// Loading or running a rule failed.
    #[error(transparent)]
    Rules(#[from] citybrain_rules::Error),
}
