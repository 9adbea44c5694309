//! The Arrow schema of a v1 `spans.parquet` and the names of the columns that reads filter
//! on. Ids are fixed-size binary, times UTC nanosecond timestamps, and attributes, resource
//! and links JSON text, so that DuckDB, Spark or Trino read the files without a
//! Muninn-specific reader.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::schema::types::ColumnPath;

pub(super) const COLUMN_TRACE_ID: &str = "trace_id";
pub(super) const COLUMN_EVENT_ID: &str = "event_id";
pub(super) const COLUMN_START_TIME: &str = "start_time";
pub(super) const COLUMN_DURATION: &str = "duration_ns";
pub(super) const COLUMN_SERVICE: &str = "service";
pub(super) const COLUMN_NAME: &str = "name";
pub(super) const COLUMN_KIND: &str = "kind";
/// Links as JSON text; the only record of links in blocks written before `link_trace_ids`.
pub(super) const COLUMN_LINKS: &str = "links";
/// The distinct trace ids a span links to, with a bloom filter: what look-ups of the spans
/// linking to a trace read. Added to v1 in place: older v1 blocks lack it.
pub(super) const COLUMN_LINK_TRACE_IDS: &str = "link_trace_ids";

fn dictionary_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The item field of `link_trace_ids`, a list of 16-byte ids.
pub(super) fn link_trace_id_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::FixedSizeBinary(16), false))
}

/// The Parquet leaf of `link_trace_ids`, for the writer's settings.
pub(super) fn link_trace_ids_leaf_path() -> ColumnPath {
    ColumnPath::new(vec![
        COLUMN_LINK_TRACE_IDS.to_string(),
        "list".to_string(),
        "item".to_string(),
    ])
}

/// The schema of `spans.parquet`, version 1, as the writer writes it now.
pub(super) static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(COLUMN_TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("parent_span_id", DataType::FixedSizeBinary(8), true),
        Field::new(
            COLUMN_START_TIME,
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new(COLUMN_DURATION, DataType::Int64, false),
        Field::new(COLUMN_SERVICE, dictionary_utf8(), false),
        Field::new(COLUMN_NAME, dictionary_utf8(), false),
        Field::new(COLUMN_KIND, dictionary_utf8(), false),
        Field::new("status_code", dictionary_utf8(), false),
        Field::new("status_message", DataType::Utf8, true),
        Field::new(COLUMN_EVENT_ID, DataType::Utf8, true),
        Field::new("event_type", dictionary_utf8(), true),
        Field::new("schema", dictionary_utf8(), true),
        Field::new("stream", dictionary_utf8(), true),
        Field::new("broker", dictionary_utf8(), true),
        Field::new("modified", DataType::Boolean, false),
        Field::new("partition", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
        Field::new("message_id", DataType::Utf8, true),
        Field::new("attributes", DataType::Utf8, false),
        Field::new("resource", dictionary_utf8(), false),
        Field::new(COLUMN_LINKS, DataType::Utf8, true),
        Field::new(
            COLUMN_LINK_TRACE_IDS,
            DataType::List(link_trace_id_item()),
            true,
        ),
    ]))
});
