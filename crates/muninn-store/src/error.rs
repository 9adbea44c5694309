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
    /// This store only reads (a query node): writes go to the ingest nodes.
    ReadOnly,
    /// The WAL cannot be written now (a full disk, a failing one): nothing of the batch was
    /// acknowledged; the store tries the WAL again by itself, so retry shortly.
    Unavailable,
    /// A block failed its checksum (or its files could not be decoded) and was taken out of
    /// the read path (`engine/integrity.rs`): answers that needed it are partial.
    Quarantined,
    /// Not done within the query's time limit (`time_limit.rs`): the answer is partial.
    TimedOut,
}

/// An error from the store, with a message naming the file or object involved, and the
/// error underneath when there is one (`source()`).
#[derive(Debug)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }
    pub(crate) fn io(context: impl fmt::Display, error: std::io::Error) -> Self {
        let message = format!("{context}: {error}");
        StoreError {
            source: Some(Box::new(error)),
            ..StoreError::new(StoreErrorKind::Io, message)
        }
    }
    pub(crate) fn object_store(context: impl fmt::Display, error: object_store::Error) -> Self {
        let message = format!("{context}: {error}");
        StoreError {
            source: Some(Box::new(error)),
            ..StoreError::new(StoreErrorKind::ObjectStore, message)
        }
    }

    /// The operating system's error kind when a local file operation failed (a full disk is
    /// `StorageFull`, a read-only one `ReadOnlyFilesystem`), found through the sources.
    pub fn io_error_kind(&self) -> Option<std::io::ErrorKind> {
        let mut source = self
            .source
            .as_deref()
            .map(|error| error as &(dyn std::error::Error + 'static));
        while let Some(error) = source {
            if let Some(io_error) = error.downcast_ref::<std::io::Error>() {
                return Some(io_error.kind());
            }
            source = error.source();
        }
        None
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

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|error| error as &(dyn std::error::Error + 'static))
    }
}

/// The message a caught panic carries ("a panic" when it carries none), for the error that
/// stands in for it.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_keeps_its_kind_also_through_the_object_store() {
        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
        let error = StoreError::io("writing wal/1.wal", full);
        assert_eq!(error.io_error_kind(), Some(std::io::ErrorKind::StorageFull));
        assert_eq!(error.message, "writing wal/1.wal: no space left on device");
        let read_only = object_store::Error::Generic {
            store: "LocalDir",
            source: Box::new(std::io::Error::new(
                std::io::ErrorKind::ReadOnlyFilesystem,
                "read-only file system",
            )),
        };
        let error = StoreError::object_store("blocks/v1/x/meta.json", read_only);
        assert_eq!(
            error.io_error_kind(),
            Some(std::io::ErrorKind::ReadOnlyFilesystem)
        );
        assert_eq!(StoreError::corrupt("bad").io_error_kind(), None);
    }
}
