//! The store's error type: a struct with a kind, so callers can map kinds (to HTTP statuses)
//! without matching on messages.

use std::fmt;

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Reading or writing local files (the write-ahead log, the data directory).
    Io,
    /// The object store refused or failed a request.
    ObjectStore,
    /// A file on disk does not have the expected format or version.
    Corrupt,
    /// The store is shutting down and takes no more writes.
    Closed,
    /// Too much is waiting to be written to blocks; try again shortly.
    Overloaded,
    /// The configuration is not usable.
    Config,
}

/// An error from the store, with a message naming the file or object involved.
#[derive(Debug)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }
    pub(crate) fn io(context: impl fmt::Display, error: std::io::Error) -> Self {
        StoreError::new(StoreErrorKind::Io, format!("{context}: {error}"))
    }
    pub(crate) fn object_store(context: impl fmt::Display, error: object_store::Error) -> Self {
        StoreError::new(StoreErrorKind::ObjectStore, format!("{context}: {error}"))
    }
    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        StoreError::new(StoreErrorKind::Corrupt, message)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}
