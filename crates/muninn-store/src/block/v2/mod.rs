//! Block format version 2: the only code that knows its Arrow schema and its writer's
//! settings. Generic block code reaches it through `format.rs`: `encode_file` writes a
//! `spans.parquet`, and it is read as a [`columnar::SpansFile`] with UUID event ids as bytes.
//!
//! What changed from v1, each by measurement on the benchmark's spans (docs/storage.md): event
//! ids that are UUIDs are 16 bytes (others text in `event_id_text`), start times and durations
//! are byte-stream-split (their high bytes compress away), parent span ids are delta byte
//! arrays (a trace's consumers share their parent). Rows stay sorted by trace id, then start:
//! against service-then-time or event-type-then-time order it was the smallest and it is what
//! trace look-ups need. Since December 2026 links without attributes are held as ids
//! (`link_trace_ids` and `link_span_ids`) rather than JSON. Its golden data directories are
//! `tests/golden/v2*/`.
//!
//! `schema.rs` (columns), `encode.rs` (spans or the head's columns to a file, the writer's
//! settings); the read path is shared with v1 in `block/columnar/`. The head holds appended
//! spans in this format's columns (`head_columns`), so a flush of them only sorts and writes.

mod encode;
mod schema;

pub(crate) use encode::{SpansWriter, encode_columns, encode_file};

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use muninn_model::Span;

use crate::block::columnar::{self, EventIdLayout};
use crate::block::reader::ObjectReader;
use crate::error::StoreError;

/// The head's columns of `spans`: this format's schema, which the flush writes as it is.
pub(crate) fn head_columns(spans: &[Span]) -> Result<columnar::HeadColumns, StoreError> {
    columnar::HeadColumns::new(spans, &schema::SCHEMA)
}

/// The head's columns from a WAL record's IPC stream (`HeadColumns::write_ipc`), in this
/// format's schema (`conform`: a record an older build wrote may lack newer columns).
pub(crate) fn head_columns_from_ipc(bytes: &[u8]) -> Result<columnar::HeadColumns, StoreError> {
    let batch = conform(columnar::HeadColumns::read_ipc(bytes)?)?;
    columnar::HeadColumns::read(batch, bytes.len())
}

/// Opens a v2 `spans.parquet`: its footer and the bloom filters of trace and event ids.
pub(crate) async fn open(reader: ObjectReader) -> Result<columnar::SpansFile, StoreError> {
    columnar::SpansFile::open(reader, EventIdLayout::UuidOrText).await
}

/// A batch read from a v2 file in the current schema: columns an older v2 file lacks
/// (`link_span_ids`) are added as nulls, which is what they mean there (links are in `links`),
/// and columns an older file typed otherwise (`attributes` as plain text before it was
/// dictionary-encoded in Arrow too) are cast. Compaction merges old and new blocks into one
/// file this way.
pub(crate) fn conform(batch: RecordBatch) -> Result<RecordBatch, StoreError> {
    let matches = batch.num_columns() == schema::SCHEMA.fields().len()
        && batch
            .schema()
            .fields()
            .iter()
            .zip(schema::SCHEMA.fields())
            .all(|(field, wanted)| field.data_type() == wanted.data_type());
    if matches {
        return Ok(batch);
    }
    let columns = schema::SCHEMA
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => arrow::compute::cast(column, field.data_type()).map_err(|error| {
                StoreError::corrupt(format!("a v2 block's column {:?}: {error}", field.name()))
            }),
            None if field.is_nullable() => Ok(new_null_array(field.data_type(), batch.num_rows())),
            None => Err(StoreError::corrupt(format!(
                "a v2 block has no column {:?}",
                field.name()
            ))),
        })
        .collect::<Result<Vec<ArrayRef>, StoreError>>()?;
    RecordBatch::try_new(schema::SCHEMA.clone(), columns)
        .map_err(|error| StoreError::corrupt(format!("a v2 block's columns: {error}")))
}
