//! Muninn's ingest decoding: request bodies (native JSON array or NDJSON, or OTLP traces in
//! protobuf or JSON; optionally gzip) to validated spans and event-seen counts. Valid records
//! are kept and each invalid one is reported with its index, the offending field and the
//! reason (OTLP's partial-success convention).
//!
//! No I/O and no HTTP here: the server hands in bytes and headers and maps errors to statuses.

mod body;
#[cfg(test)]
mod mutate;
mod native;
mod otlp;
mod zipkin;

pub use body::{IngestError, IngestErrorKind, decompress};
pub use native::{Decoded, Rejection, decode_counts, decode_spans};
pub use otlp::{
    BATCH_SPAN_ID_ATTRIBUTE, OtlpMapping, UNKNOWN_SERVICE, decode_otlp_json, decode_otlp_protobuf,
    derived_span_id, otlp_spans,
};
pub use zipkin::{ZIPKIN_UNKNOWN_NAME, decode_zipkin_spans};

/// Entry points of the fuzz targets in `fuzz/` (docs/security.md#fuzzing); not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes `body` as native spans (`decode_spans`, default limits, `now_unix_nanos`); when
    /// the hand-written scan reads it, decodes it by serde_json too and panics unless both give
    /// the same spans and rejections. Returns the spans kept.
    pub fn native_spans(body: &[u8], now_unix_nanos: i64) -> usize {
        crate::native::scan_agrees_with_serde(body, now_unix_nanos)
    }
}
