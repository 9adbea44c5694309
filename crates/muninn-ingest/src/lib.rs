//! Muninn's ingest decoding: request bodies (JSON array or NDJSON, optionally gzip) to validated
//! spans and event-seen counts. Valid records are kept and each invalid one is reported with its
//! index, the offending field and the reason (OTLP's partial-success convention).
//!
//! No I/O and no HTTP here: the server hands in bytes and headers and maps errors to statuses.

mod body;
mod native;

pub use body::{IngestError, IngestErrorKind, decompress};
pub use native::{Decoded, Rejection, decode_counts, decode_spans};
