//! The archive's error type: a struct with a kind, the message naming the stream, partition or
//! object involved, and the error underneath when there is one.

use std::fmt;

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveErrorKind {
    /// The object store (local directory or S3) refused or failed a request.
    ObjectStore,
    /// An archive file or manifest does not have the expected format or version.
    Corrupt,
    /// The broker refused or failed a request.
    Broker,
    /// A request or setting is not usable (a bad range, filter, stream name).
    Invalid,
    /// Nothing is archived under what was asked for.
    NotFound,
}

/// An error from the archive.
#[derive(Debug)]
pub struct ArchiveError {
    pub kind: ArchiveErrorKind,
    pub message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ArchiveError {
    pub fn new(kind: ArchiveErrorKind, message: impl Into<String>) -> Self {
        ArchiveError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ArchiveError::new(ArchiveErrorKind::Invalid, message)
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        ArchiveError::new(ArchiveErrorKind::Corrupt, message)
    }

    pub(crate) fn with_source(
        kind: ArchiveErrorKind,
        context: impl fmt::Display,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ArchiveError {
            kind,
            message: format!("{context}: {error}"),
            source: Some(Box::new(error)),
        }
    }

    pub(crate) fn object_store(context: impl fmt::Display, error: object_store::Error) -> Self {
        ArchiveError::with_source(ArchiveErrorKind::ObjectStore, context, error)
    }

    /// Whether the object store said the object is not there.
    pub(crate) fn is_not_found(&self) -> bool {
        self.source
            .as_deref()
            .and_then(|source| source.downcast_ref::<object_store::Error>())
            .is_some_and(|error| matches!(error, object_store::Error::NotFound { .. }))
    }
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ArchiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|error| error as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;
