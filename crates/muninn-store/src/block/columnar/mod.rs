//! What block formats v1 and v2 share: both are one `spans.parquet` of a row per span with the
//! same column names, read through the same path. `read.rs` (row groups, a row filter, a
//! projection), `predicate.rs` (the row filters), `json.rs` (attributes and links as JSON
//! text), `decode.rs` (batches back to spans, search hits and operations), `file.rs` (an
//! opened file and the reads every version answers) and `head.rs` (the head's batches, held as
//! the same columns and searched with the same row filters) are written once; what differs
//! between the versions — the Arrow schema, the writer's encodings and how event ids are
//! stored — lives in `v1/` and `v2/`, and reaches this code as an [`EventIdLayout`].

mod decode;
mod encode;
mod file;
mod filter;
mod head;
pub(super) mod json;
mod memory;
mod predicate;
mod read;

pub(super) use encode::{
    dictionary_utf8, encode_batch, link_span_id_item, link_span_ids_leaf_path, link_trace_id_item,
    link_trace_ids_leaf_path, row_order,
};
pub(super) use file::{EventIdLayout, SpansFile, canonical_uuid};
pub(crate) use head::HeadColumns;
pub(super) use head::{operations_of, spans_of, time_range};
pub use memory::IndexBytes;

pub(super) const COLUMN_TRACE_ID: &str = "trace_id";
pub(super) const COLUMN_SPAN_ID: &str = "span_id";
pub(super) const COLUMN_PARENT_SPAN_ID: &str = "parent_span_id";
pub(super) const COLUMN_EVENT_ID: &str = "event_id";
/// v2 only: event ids that are not UUIDs in their canonical text, as text.
pub(super) const COLUMN_EVENT_ID_TEXT: &str = "event_id_text";
pub(super) const COLUMN_START_TIME: &str = "start_time";
pub(super) const COLUMN_DURATION: &str = "duration_ns";
pub(super) const COLUMN_SERVICE: &str = "service";
pub(super) const COLUMN_NAME: &str = "name";
pub(super) const COLUMN_KIND: &str = "kind";
/// Links as JSON text; the only record of links in v1 blocks written before `link_trace_ids`.
pub(super) const COLUMN_LINKS: &str = "links";
/// The distinct trace ids a span links to, with a bloom filter: what look-ups of the spans
/// linking to a trace read. Added to v1 in place: older v1 blocks lack it.
pub(super) const COLUMN_LINK_TRACE_IDS: &str = "link_trace_ids";
/// v2 blocks written since December 2026: the span ids of a span's links, one per id of
/// `link_trace_ids` in the same order, where those two lists are the links whole (no link has
/// attributes, and the linked trace ids are distinct and ascending); `links` is null then.
/// Null where `links` holds the links, and absent from older blocks, which hold links in
/// `links` alone.
pub(super) const COLUMN_LINK_SPAN_IDS: &str = "link_span_ids";
