//! Block format version 1: the only code that knows its Arrow schema and its writer's
//! settings. Generic block code reaches it through `format.rs`: `encode_file` writes a
//! `spans.parquet`, and it is read as a [`columnar::SpansFile`] with event ids as text.
//!
//! Two variants of v1 are in the field: blocks with the `link_trace_ids` column (and its bloom
//! filters), and blocks written before it was added in place, whose links are found through
//! their `links` JSON text, every row group read. Both have a golden data directory under
//! `tests/golden/`.
//!
//! `schema.rs` (columns), `encode.rs` (spans to a file, the writer's settings); the read path
//! is shared with v2 in `block/columnar/`.

mod encode;
mod schema;

pub(crate) use encode::encode_file;

use crate::block::columnar::{self, EventIdLayout};
use crate::block::reader::ObjectReader;
use crate::error::StoreError;

/// Opens a v1 `spans.parquet`: its footer and the bloom filters of trace and event ids.
pub(crate) async fn open(reader: ObjectReader) -> Result<columnar::SpansFile, StoreError> {
    columnar::SpansFile::open(reader, EventIdLayout::Text).await
}
