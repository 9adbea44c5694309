//! The Arrow schema of a v2 `spans.parquet`. As v1 (ids fixed-size binary, times UTC nanosecond
//! timestamps, attributes, resource and links JSON text, so that DuckDB, Spark or Trino read
//! the files without a Muninn-specific reader), but event ids that are UUIDs in canonical text
//! are 16 bytes in `event_id` and every other event id is text in `event_id_text`; links without
//! attributes are the ids of `link_trace_ids` and `link_span_ids`, `links` JSON only otherwise.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::block::columnar::{
    COLUMN_DURATION, COLUMN_EVENT_ID, COLUMN_EVENT_ID_TEXT, COLUMN_KIND, COLUMN_LINK_SPAN_IDS,
    COLUMN_LINK_TRACE_IDS, COLUMN_LINKS, COLUMN_NAME, COLUMN_PARENT_SPAN_ID, COLUMN_SERVICE,
    COLUMN_SPAN_ID, COLUMN_START_TIME, COLUMN_TRACE_ID, dictionary_utf8, link_span_id_item,
    link_trace_id_item,
};

/// The schema of `spans.parquet`, version 2.
pub(super) static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(COLUMN_TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new(COLUMN_SPAN_ID, DataType::FixedSizeBinary(8), false),
        Field::new(COLUMN_PARENT_SPAN_ID, DataType::FixedSizeBinary(8), true),
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
        Field::new(COLUMN_EVENT_ID, DataType::FixedSizeBinary(16), true),
        Field::new(COLUMN_EVENT_ID_TEXT, DataType::Utf8, true),
        Field::new("event_type", dictionary_utf8(), true),
        Field::new("schema", dictionary_utf8(), true),
        Field::new("stream", dictionary_utf8(), true),
        Field::new("broker", dictionary_utf8(), true),
        Field::new("modified", DataType::Boolean, false),
        Field::new("partition", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
        Field::new("message_id", DataType::Utf8, true),
        Field::new("attributes", dictionary_utf8(), false),
        Field::new("resource", dictionary_utf8(), false),
        Field::new(COLUMN_LINKS, DataType::Utf8, true),
        Field::new(
            COLUMN_LINK_TRACE_IDS,
            DataType::List(link_trace_id_item()),
            true,
        ),
        Field::new(
            COLUMN_LINK_SPAN_IDS,
            DataType::List(link_span_id_item()),
            true,
        ),
    ]))
});
