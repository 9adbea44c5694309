//! Blocks: immutable Parquet files of spans, one directory per block inside an hourly
//! partition, written through `object_store` so the same layout works on a local directory
//! or S3. A block becomes visible only when its `meta.json` exists; it is written last and
//! is the commit point.
//!
//! ```text
//! blocks/v1/dt=2026-11-22/hour=03/<block_id>/spans.parquet   (absent when a block only holds counts)
//!                                           /rollup.json     (roll-up cells of the block's minutes)
//!                                           /meta.json       (written last)
//! ```
//!
//! `blocks/v1/` is the version of this directory layout; each block's `meta.json` names the
//! format of its `spans.parquet` (`format_version`, 1 or 2), and blocks of both sit side by side.
//!
//! This module is what every format version shares; `format.rs` is how it reaches a version,
//! and each version is a module of its own (`v1/`, `v2/`) that owns its schema and writer
//! settings, over the read path and record batches they share (`columnar/`).

mod columnar;
pub(crate) use columnar::HeadColumns;
pub use columnar::IndexBytes;
mod footer_guard;
mod format;
mod hll;
mod merge;
mod reader;
mod upload;
mod v1;
mod v2;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use muninn_model::{NANOS_PER_SECOND, RollupKey, Span, TraceId};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

pub use format::SpanFields;
pub(crate) use format::{FormatVersion, SpanSelection};
use format::{SpansFile, open_spans_file};
pub(crate) use merge::{RowChunks, merge_v2, throttle};
pub(crate) use upload::UploadSink;
pub(crate) use v2::SpansWriter;

use crate::error::{StoreError, StoreErrorKind};
use crate::rollup::{FirstSpan, RollupCell};
use crate::scan::Operation;

/// The block format written by this version of Muninn unless configured otherwise
/// (`BlockWriteOptions::format_version`).
pub const BLOCK_FORMAT_VERSION: u32 = FormatVersion::WRITTEN.number();
pub(crate) const BLOCKS_PREFIX: &str = "blocks/v1";

/// Where the nodes of a cluster keep their blocks in a shared bucket: `nodes/<node>/blocks/…`
/// (`[storage] node`).
pub(crate) const NODES_PREFIX: &str = "nodes";

/// A block's `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub format_version: u32,
    pub block_id: String,
    /// Start of the block's hourly partition, unix seconds.
    pub partition_unix_seconds: i64,
    pub min_time_unix_nanos: i64,
    pub max_time_unix_nanos: i64,
    pub n_spans: u64,
    /// Size of `spans.parquet` in bytes (0 when there is no spans file).
    pub spans_bytes: u64,
    /// Size of `rollup.json` in bytes.
    pub rollup_bytes: u64,
    /// The last WAL sequence number of the flush this block came from.
    pub flush_seq: u64,
    /// The flush this block came from; all blocks of one flush share it.
    pub flush_id: String,
    /// How many blocks that flush wrote; a flush counts as committed when all are present.
    pub flush_n_blocks: u32,
    /// For a block written by compaction, the ids of the blocks it replaces (its `flush_id` is
    /// then the compaction's, shared by all its outputs). Absent from flushed blocks' metas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compacted_from: Vec<String>,
    /// CRC-32 (IEEE) of `spans.parquet`, checked by the scrubber (`engine/integrity.rs`).
    /// Absent from blocks written before it was kept, which are then not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans_crc32: Option<u32>,
    /// CRC-32 (IEEE) of the roll-up file, checked whenever it is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup_crc32: Option<u32>,
    /// The roll-up cells are in `rollup.json.zst` (their JSON, zstd-compressed: blocks written
    /// since December 2026), not in `rollup.json` (plain JSON). `rollup_bytes` and
    /// `rollup_crc32` are of the file as stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollup_zstd: bool,
}

impl BlockMeta {
    /// The name of the block's roll-up file.
    pub fn rollup_file(&self) -> &'static str {
        if self.rollup_zstd {
            ROLLUP_ZSTD_FILE
        } else {
            ROLLUP_JSON_FILE
        }
    }
}

/// A block's roll-up cells as JSON (blocks written before December 2026).
pub const ROLLUP_JSON_FILE: &str = "rollup.json";
/// A block's roll-up cells as zstd-compressed JSON.
pub const ROLLUP_ZSTD_FILE: &str = "rollup.json.zst";
/// The zstd level of `rollup.json.zst`: the cells repeat their keys' texts, which any level
/// takes out (at 10M spans of the random workload, 0.22 B a span as JSON).
const ROLLUP_ZSTD_LEVEL: i32 = 3;
/// The most a roll-up file may decompress to: a block's hour of cells is a few MiB.
const MAX_ROLLUP_JSON_BYTES: u64 = 1 << 30;

/// One roll-up cell as stored in `rollup.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredCell {
    pub minute: i64,
    #[serde(flatten)]
    pub key: RollupKey,
    #[serde(flatten)]
    pub cell: RollupCell,
    /// Who sent the cell's earliest span, for producer keys naming a schema (absent in blocks
    /// written before it was kept: readers then find it from the spans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_span: Option<FirstSpan>,
}

/// The length of a partition: blocks are partitioned by hour.
pub(crate) const PARTITION_SECONDS: i64 = 3600;

/// Hour partition start (unix seconds) of a time in unix nanoseconds.
pub(crate) fn partition_of(unix_nanos: i64) -> i64 {
    unix_nanos.div_euclid(PARTITION_SECONDS * NANOS_PER_SECOND) * PARTITION_SECONDS
}

/// `blocks/v1/dt=2026-11-22/hour=03`.
pub(crate) fn partition_path(partition_unix_seconds: i64) -> Path {
    let time = chrono::DateTime::from_timestamp(partition_unix_seconds, 0).unwrap_or_default();
    Path::from(format!(
        "{BLOCKS_PREFIX}/dt={}/hour={}",
        time.format("%Y-%m-%d"),
        time.format("%H")
    ))
}

fn block_path(partition_unix_seconds: i64, block_id: &str) -> Path {
    partition_path(partition_unix_seconds)
        .clone()
        .join(block_id)
}

/// Writer settings for `spans.parquet`.
#[derive(Debug, Clone)]
pub struct BlockWriteOptions {
    /// The format version new blocks are written in: 2 (the default) or 1.
    pub format_version: u32,
    pub row_group_rows: usize,
    /// The most rows a data page holds (format 2): smaller pages make look-ups decode less
    /// and files a little larger.
    pub page_rows: usize,
    pub zstd_level: i32,
    /// The false-positive rate of `trace_id`'s bloom filters (and of every bloom filter in
    /// format 1): a trace look-up checks only the row group of each block whose range of trace
    /// ids holds the trace.
    pub bloom_filter_fpp: f64,
    /// The false-positive rate of format 2's bloom filters of event ids and linked trace ids,
    /// which a look-up checks in every row group of every block: at 100M spans (1,540 row
    /// groups) a rate of 1% read about 15 row groups in vain for each id looked up.
    pub scattered_id_bloom_filter_fpp: f64,
}

impl Default for BlockWriteOptions {
    fn default() -> Self {
        BlockWriteOptions {
            format_version: BLOCK_FORMAT_VERSION,
            row_group_rows: 65_536,
            page_rows: 4096,
            zstd_level: 3,
            bloom_filter_fpp: 0.01,
            scattered_id_bloom_filter_fpp: 0.001,
        }
    }
}

/// What one block gets: its spans as the head's columns (rows in any order; the format sorts
/// them) and its roll-up cells.
pub(crate) struct BlockContents {
    pub partition_unix_seconds: i64,
    pub spans: Vec<arrow::array::RecordBatch>,
    pub cells: Vec<StoredCell>,
}

/// The head's columns of `spans`, in the format the flush writes them from.
pub(crate) fn head_columns(spans: &[Span]) -> Result<HeadColumns, StoreError> {
    v2::head_columns(spans)
}

/// The head's columns a WAL record holds as an Arrow IPC stream.
pub(crate) fn head_columns_from_ipc(bytes: &[u8]) -> Result<HeadColumns, StoreError> {
    v2::head_columns_from_ipc(bytes)
}

/// The distinct (service, name, kind) of batches of the head's columns, sorted.
pub(crate) fn operations_of(
    batches: &[arrow::array::RecordBatch],
) -> Result<Vec<Operation>, StoreError> {
    columnar::operations_of(batches)
}

/// Writes a block's files and then its `meta.json`. Returns the committed meta.
pub(crate) async fn write_block(
    store: &Arc<dyn ObjectStore>,
    contents: BlockContents,
    flush_seq: u64,
    flush_id: &str,
    flush_n_blocks: u32,
    options: &BlockWriteOptions,
) -> Result<BlockMeta, StoreError> {
    let version = FormatVersion::writable(options.format_version)?;
    let (n_spans, min_time, max_time) = columnar::time_range(&contents.spans)?;
    let spans = if n_spans == 0 {
        None
    } else {
        let options = options.clone();
        // Encoding is CPU work: keep it off the async workers.
        let bytes =
            tokio::task::block_in_place(|| version.encode_columns(&contents.spans, &options))?;
        Some(EncodedSpans {
            bytes: SpansBytes::ToPut(bytes),
            n_spans,
            min_time,
            max_time,
        })
    };
    put_block(
        store,
        NewBlock {
            block_id: new_block_id(),
            partition_unix_seconds: contents.partition_unix_seconds,
            version,
            spans,
            cells: contents.cells,
            flush_seq,
            flush_id: flush_id.to_string(),
            flush_n_blocks,
            compacted_from: Vec::new(),
        },
    )
    .await
}

/// A `spans.parquet`'s bytes: still to be put, or already uploaded to the block's directory
/// (compaction streams its output, `UploadSink`).
pub(crate) enum SpansBytes {
    ToPut(Vec<u8>),
    Uploaded { size: u64, crc32: u32 },
}

/// A new block's id.
pub(crate) fn new_block_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The path of the `spans.parquet` of block `block_id` in the partition starting at
/// `partition_unix_seconds`.
pub(crate) fn spans_path(partition_unix_seconds: i64, block_id: &str) -> Path {
    block_path(partition_unix_seconds, block_id).join("spans.parquet")
}

/// A `spans.parquet`, encoded, and what its meta says of it.
pub(crate) struct EncodedSpans {
    pub bytes: SpansBytes,
    pub n_spans: u64,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
}

/// Everything a new block is made of.
pub(crate) struct NewBlock {
    /// The block's id (`new_block_id`), known before its files are written.
    pub block_id: String,
    pub partition_unix_seconds: i64,
    pub version: FormatVersion,
    pub spans: Option<EncodedSpans>,
    pub cells: Vec<StoredCell>,
    pub flush_seq: u64,
    pub flush_id: String,
    pub flush_n_blocks: u32,
    pub compacted_from: Vec<String>,
}

/// Writes a new block's `spans.parquet` and `rollup.json`, then its `meta.json`, the commit
/// point. Returns the committed meta.
pub(crate) async fn put_block(
    store: &Arc<dyn ObjectStore>,
    block: NewBlock,
) -> Result<BlockMeta, StoreError> {
    let block_id = block.block_id;
    let dir = block_path(block.partition_unix_seconds, &block_id);
    let cell_min = block
        .cells
        .iter()
        .map(|cell| cell.minute * NANOS_PER_SECOND)
        .min();
    let cell_max = block
        .cells
        .iter()
        .map(|cell| cell.minute * NANOS_PER_SECOND)
        .max();
    let (mut n_spans, mut spans_bytes, mut min_time, mut max_time) = (0, 0, None, None);
    let mut spans_crc32 = None;
    if let Some(spans) = block.spans {
        n_spans = spans.n_spans;
        min_time = spans.min_time;
        max_time = spans.max_time;
        let (size, crc32) = match spans.bytes {
            SpansBytes::ToPut(bytes) => {
                let size = bytes.len() as u64;
                let crc32 = crc32fast::hash(&bytes);
                let path = dir.clone().join("spans.parquet");
                store
                    .put(&path, PutPayload::from(bytes))
                    .await
                    .map_err(|error| StoreError::object_store(&path, error))?;
                (size, crc32)
            }
            SpansBytes::Uploaded { size, crc32 } => (size, crc32),
        };
        spans_bytes = size;
        spans_crc32 = Some(crc32);
    }
    let rollup_json = serde_json::to_vec(&block.cells)
        .map_err(|error| StoreError::corrupt(format!("rollup json: {error}")))?;
    let rollup = zstd::bulk::compress(&rollup_json, ROLLUP_ZSTD_LEVEL)
        .map_err(|error| StoreError::corrupt(format!("compressing the roll-up cells: {error}")))?;
    drop(rollup_json);
    let rollup_bytes = rollup.len() as u64;
    let rollup_crc32 = Some(crc32fast::hash(&rollup));
    let rollup_path = dir.clone().join(ROLLUP_ZSTD_FILE);
    store
        .put(&rollup_path, PutPayload::from(rollup))
        .await
        .map_err(|error| StoreError::object_store(&rollup_path, error))?;
    let meta = BlockMeta {
        format_version: block.version.number(),
        block_id,
        partition_unix_seconds: block.partition_unix_seconds,
        min_time_unix_nanos: min_time
            .into_iter()
            .chain(cell_min)
            .min()
            .unwrap_or_default(),
        max_time_unix_nanos: max_time
            .into_iter()
            .chain(cell_max)
            .max()
            .unwrap_or_default(),
        n_spans,
        spans_bytes,
        rollup_bytes,
        flush_seq: block.flush_seq,
        flush_id: block.flush_id,
        flush_n_blocks: block.flush_n_blocks,
        compacted_from: block.compacted_from,
        spans_crc32,
        rollup_crc32,
        rollup_zstd: true,
    };
    let meta_path = dir.clone().join("meta.json");
    let meta_bytes = serde_json::to_vec_pretty(&meta)
        .map_err(|error| StoreError::corrupt(format!("meta json: {error}")))?;
    store
        .put(&meta_path, PutPayload::from(meta_bytes))
        .await
        .map_err(|error| StoreError::object_store(&meta_path, error))?;
    Ok(meta)
}

/// A committed block as the store knows it: its meta and, once opened, its spans file in the
/// block's format version (footer and bloom filters kept in memory, so id look-ups touch only
/// matching row groups).
pub(crate) struct BlockHandle {
    pub meta: BlockMeta,
    pub dir: Path,
    spans_file: OnceCell<Arc<SpansFile>>,
    /// The block's distinct (service, name, kind), read on first use and then kept.
    operations: OnceCell<Arc<Vec<Operation>>>,
    /// Why the block is out of the read path, once it is (`engine/integrity.rs`).
    quarantine: std::sync::OnceLock<String>,
    /// Set when a read found the file not as its format says: the scrubber verifies the
    /// block's checksum next.
    suspect: AtomicBool,
}

impl BlockHandle {
    pub(crate) fn new(meta: BlockMeta) -> Self {
        let dir = block_path(meta.partition_unix_seconds, &meta.block_id);
        BlockHandle {
            meta,
            dir,
            spans_file: OnceCell::new(),
            operations: OnceCell::new(),
            quarantine: std::sync::OnceLock::new(),
            suspect: AtomicBool::new(false),
        }
    }

    /// A block another node wrote, in `dir` (under that node's prefix).
    pub(crate) fn at(dir: Path, meta: BlockMeta) -> Self {
        BlockHandle {
            meta,
            dir,
            spans_file: OnceCell::new(),
            operations: OnceCell::new(),
            quarantine: std::sync::OnceLock::new(),
            suspect: AtomicBool::new(false),
        }
    }

    /// A block just written, whose distinct (service, name, kind) the writer knows.
    pub(crate) fn with_operations(meta: BlockMeta, operations: Vec<Operation>) -> Self {
        let handle = BlockHandle::new(meta);
        let _ = handle.operations.set(Arc::new(operations));
        handle
    }

    pub(crate) fn spans_path(&self) -> Path {
        self.dir.clone().join("spans.parquet")
    }

    /// Why the block is quarantined, when it is: its spans are no longer read.
    pub(crate) fn quarantined(&self) -> Option<&str> {
        self.quarantine.get().map(String::as_str)
    }

    /// Takes the block out of the read path; false when it already was.
    pub(crate) fn set_quarantined(&self, reason: String) -> bool {
        self.quarantine.set(reason).is_ok()
    }

    /// Whether a read found the file damaged since the last `take_suspect`.
    pub(crate) fn take_suspect(&self) -> bool {
        self.suspect.swap(false, Ordering::Relaxed)
    }

    /// Runs a read of the block's file. A panic in the Parquet decoder becomes a `Corrupt`
    /// error: parquet 59 indexes out of bounds on some damaged files (a page header claiming
    /// more bytes than its column chunk holds; `tests/block_reader.rs`), and a damaged block
    /// must cost one partial answer, not a compaction task or a reader thread. A read that
    /// found the file not as its format says makes the block suspect (an object store that did
    /// not answer does not), so that the scrubber checks it.
    async fn guarded<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = std::panic::AssertUnwindSafe(read)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(StoreError::corrupt(format!(
                    "{}: the Parquet decoder failed: {}",
                    self.spans_path(),
                    crate::error::panic_message(panic.as_ref())
                )))
            });
        if let Err(error) = &result
            && error.kind == StoreErrorKind::Corrupt
        {
            self.suspect.store(true, Ordering::Relaxed);
        }
        result
    }

    /// The block's spans file, opened on first use; `None` when the block holds only counts.
    /// A quarantined block's is an error that says so.
    async fn spans_file(
        &self,
        store: &Arc<dyn ObjectStore>,
    ) -> Result<Option<Arc<SpansFile>>, StoreError> {
        if let Some(reason) = self.quarantined() {
            return Err(StoreError::new(
                StoreErrorKind::Quarantined,
                format!("quarantined: {reason}"),
            ));
        }
        if self.meta.n_spans == 0 {
            return Ok(None);
        }
        let opened = self.spans_file.get_or_try_init(|| async {
            let reader =
                reader::ObjectReader::new(store.clone(), self.spans_path(), self.meta.spans_bytes);
            Ok(Arc::new(
                self.guarded(open_spans_file(&self.meta, reader)).await?,
            ))
        });
        opened.await.cloned().map(Some)
    }

    /// What the opened spans file keeps in memory (nothing before it is opened).
    pub(crate) fn index_bytes(&self) -> IndexBytes {
        self.spans_file
            .get()
            .map(|file| file.index_bytes())
            .unwrap_or_default()
    }

    /// Loads the footer and bloom filters now rather than on the first look-up: those of
    /// `link_trace_ids` too, which the file loads on its first link look-up otherwise (at 100M
    /// spans that made the first journey after a start or a flush take 85–146 ms). The
    /// `trace_id` filters are kept in memory too when they fit in `trace_filter_room` bytes
    /// (what the store's budget for them has left); otherwise they are probed in the file.
    pub(crate) async fn warm(
        &self,
        store: &Arc<dyn ObjectStore>,
        trace_filter_room: u64,
    ) -> Result<(), StoreError> {
        if let Some(file) = self.spans_file(store).await? {
            self.guarded(file.load_links()).await?;
            let wanted = file.trace_filter_bytes_in_file();
            if wanted > 0 && wanted <= trace_filter_room {
                self.guarded(file.keep_trace_filters()).await?;
            }
        }
        Ok(())
    }

    /// Every span in this block that `selection` selects.
    pub(crate) async fn spans(
        &self,
        store: &Arc<dyn ObjectStore>,
        selection: SpanSelection,
        fields: SpanFields,
        known_row_groups: Option<Vec<usize>>,
    ) -> Result<Vec<Span>, StoreError> {
        if selection.is_empty() {
            return Ok(Vec::new());
        }
        match self.spans_file(store).await? {
            Some(file) => {
                self.guarded(file.spans(selection, fields, known_row_groups))
                    .await
            }
            None => Ok(Vec::new()),
        }
    }

    /// The row groups of an opened block that may hold what `selection` selects, decided on
    /// the calling thread (a blocking one): bloom filters in memory checked, those in the file
    /// probed through `local` (the blocks' directory). `Some(vec![])` for a block with nothing
    /// to read; `None` where [`BlockHandle::spans`] has to decide (the block not opened yet,
    /// quarantined, on another object store, or a probe that failed).
    pub(crate) fn row_groups_now(
        &self,
        selection: &SpanSelection,
        local: Option<&dyn crate::fs::LocalReads>,
    ) -> Option<Vec<usize>> {
        self.row_groups_with(selection, |ranges| match local {
            Some(local) => local.read_ranges_here(&self.spans_path(), ranges),
            None => Err(std::io::Error::other("blocks are not in a local directory")),
        })
    }

    /// [`BlockHandle::row_groups_now`] where no file has to be read for it (bloom filters in
    /// memory, or nothing to decide), so that it may run on any thread; `None` where a filter
    /// in the file would have to be probed.
    pub(crate) fn row_groups_in_memory(
        &self,
        selection: &SpanSelection,
    ) -> Option<Option<Vec<usize>>> {
        let reads_a_file = std::cell::Cell::new(false);
        let answer = self.row_groups_with(selection, |_| {
            reads_a_file.set(true);
            Err(std::io::Error::other("decided in memory only"))
        });
        (!reads_a_file.get()).then_some(answer)
    }

    /// The row groups that may hold what `selection` selects, filters in the file probed
    /// through `read`.
    fn row_groups_with(
        &self,
        selection: &SpanSelection,
        read: impl FnOnce(&[std::ops::Range<u64>]) -> std::io::Result<Vec<Vec<u8>>>,
    ) -> Option<Vec<usize>> {
        if self.quarantined().is_some() {
            return None;
        }
        if self.meta.n_spans == 0 || selection.is_empty() {
            return Some(Vec::new());
        }
        self.spans_file.get()?.row_groups_now(selection, read)
    }

    /// How many row groups the block's spans file has (0 when it holds only counts).
    pub(crate) async fn n_row_groups(
        &self,
        store: &Arc<dyn ObjectStore>,
    ) -> Result<usize, StoreError> {
        Ok(match self.spans_file(store).await? {
            Some(file) => file.n_row_groups(),
            None => 0,
        })
    }

    /// How many rows one row group of the block's spans file has.
    pub(crate) async fn row_group_len(
        &self,
        store: &Arc<dyn ObjectStore>,
        row_group: usize,
    ) -> Result<usize, StoreError> {
        Ok(match self.spans_file(store).await? {
            Some(file) => file.row_group_len(row_group),
            None => 0,
        })
    }

    /// Rows `rows` of one row group as a record batch of every column, in file order.
    pub(crate) async fn row_group_rows(
        &self,
        store: &Arc<dyn ObjectStore>,
        row_group: usize,
        rows: std::ops::Range<usize>,
    ) -> Result<Option<arrow::array::RecordBatch>, StoreError> {
        match self.spans_file(store).await? {
            Some(file) => self
                .guarded(file.row_group_rows(row_group, rows))
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// The spans of rows `rows` of one row group, in file order (by trace id, then start).
    pub(crate) async fn row_group_spans(
        &self,
        store: &Arc<dyn ObjectStore>,
        row_group: usize,
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<Span>, StoreError> {
        match self.spans_file(store).await? {
            Some(file) => self.guarded(file.row_group_spans(row_group, rows)).await,
            None => Ok(Vec::new()),
        }
    }

    /// The trace id and start of every span in this block that matches `query`.
    pub(crate) async fn trace_starts(
        &self,
        store: &Arc<dyn ObjectStore>,
        query: &crate::scan::SpanQuery,
    ) -> Result<Vec<(TraceId, i64)>, StoreError> {
        match self.spans_file(store).await? {
            Some(file) => self.guarded(file.trace_starts(query)).await,
            None => Ok(Vec::new()),
        }
    }

    /// The distinct (service, name, kind) of this block, read on first use and then kept
    /// (blocks are immutable).
    pub(crate) async fn operations(
        &self,
        store: &Arc<dyn ObjectStore>,
    ) -> Result<Arc<Vec<Operation>>, StoreError> {
        self.operations
            .get_or_try_init(|| async {
                Ok(Arc::new(match self.spans_file(store).await? {
                    Some(file) => self.guarded(file.operations()).await?,
                    None => Vec::new(),
                }))
            })
            .await
            .cloned()
    }

    /// Reads this block's roll-up cells.
    pub(crate) async fn read_rollup(
        &self,
        store: &Arc<dyn ObjectStore>,
    ) -> Result<Vec<StoredCell>, StoreError> {
        let path = self.dir.clone().join(self.meta.rollup_file());
        let bytes = store
            .get(&path)
            .await
            .map_err(|error| StoreError::object_store(&path, error))?
            .bytes()
            .await
            .map_err(|error| StoreError::object_store(&path, error))?;
        if let Some(expected) = self.meta.rollup_crc32 {
            let found = crc32fast::hash(&bytes);
            if found != expected {
                return Err(StoreError::corrupt(format!(
                    "{path}: checksum mismatch (CRC-32 {found:08x}, its meta says {expected:08x})"
                )));
            }
        }
        if !self.meta.rollup_zstd {
            return serde_json::from_slice(&bytes)
                .map_err(|error| StoreError::corrupt(format!("{path}: {error}")));
        }
        let json = decompress_bounded(&bytes, MAX_ROLLUP_JSON_BYTES)
            .map_err(|error| StoreError::corrupt(format!("{path}: {error}")))?;
        serde_json::from_slice(&json)
            .map_err(|error| StoreError::corrupt(format!("{path}: {error}")))
    }
}

/// The zstd frames of `bytes` decompressed, refused past `limit` bytes.
fn decompress_bounded(bytes: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let decoder =
        zstd::stream::read::Decoder::new(bytes).map_err(|error| format!("not zstd: {error}"))?;
    let mut json = Vec::new();
    decoder
        .take(limit + 1)
        .read_to_end(&mut json)
        .map_err(|error| format!("not zstd: {error}"))?;
    if json.len() as u64 > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    Ok(json)
}

/// What the block-reader fuzz target reaches (`crate::fuzzing::block`).
pub(crate) mod fuzzing {
    use std::collections::HashSet;
    use std::sync::Arc;

    use muninn_model::TraceId;
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

    use super::{BlockHandle, BlockMeta, SpanFields, SpanSelection};
    use crate::scan::SpanQuery;

    /// Reads `file` as the `spans.parquet` of a block of `format_version` through every read
    /// the store makes of a block: a search of everything, look-ups by the trace, event and
    /// link ids found (or made-up ones), the trace starts, the operations, and each row group
    /// (at most 16). Returns the spans the search found; errors are fine, a panic is a bug.
    pub(crate) async fn read_block(format_version: u32, file: &[u8]) -> usize {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let handle = BlockHandle::new(BlockMeta {
            format_version,
            block_id: "fuzz".into(),
            partition_unix_seconds: 0,
            min_time_unix_nanos: 0,
            max_time_unix_nanos: 0,
            n_spans: 1,
            spans_bytes: file.len() as u64,
            rollup_bytes: 0,
            flush_seq: 1,
            flush_id: "fuzz".into(),
            flush_n_blocks: 1,
            compacted_from: Vec::new(),
            spans_crc32: None,
            rollup_crc32: None,
            rollup_zstd: false,
        });
        if store
            .put(&handle.spans_path(), PutPayload::from(file.to_vec()))
            .await
            .is_err()
        {
            return 0;
        }
        let everything = Arc::new(SpanQuery::new(i64::MIN, i64::MAX, 1000));
        let found = handle
            .spans(
                &store,
                SpanSelection::Matching(everything.clone()),
                SpanFields::All,
                None,
            )
            .await
            .unwrap_or_default();
        let mut traces: HashSet<TraceId> = found.iter().map(|span| span.trace_id).collect();
        traces.insert(TraceId([7; 16]));
        let mut events: HashSet<String> = found
            .iter()
            .filter_map(|span| span.event.event_id.as_deref().map(str::to_string))
            .collect();
        events.insert("0191e8c4-7d5e-7b1c-9a55-3c2f0e4d8a11".into());
        events.insert("order-1".into());
        let traces = Arc::new(traces);
        let mut selections = vec![
            SpanSelection::Traces(traces.clone()),
            SpanSelection::LinkingTo(traces.clone()),
            SpanSelection::Events(Arc::new(events.clone())),
        ];
        selections.extend(traces.iter().take(4).map(|id| SpanSelection::Trace(*id)));
        selections.extend(
            events
                .iter()
                .take(4)
                .map(|id| SpanSelection::Event(Arc::from(id.as_str()))),
        );
        for selection in selections {
            for fields in [SpanFields::All, SpanFields::Outline] {
                let _ = handle.spans(&store, selection.clone(), fields, None).await;
            }
        }
        let _ = handle.trace_starts(&store, &everything).await;
        let _ = handle.operations(&store).await;
        let row_groups = handle.n_row_groups(&store).await.unwrap_or(0);
        for row_group in 0..row_groups.min(16) {
            let rows = handle.row_group_len(&store, row_group).await.unwrap_or(0);
            let _ = handle.row_group_spans(&store, row_group, 0..rows).await;
            let _ = handle.row_group_rows(&store, row_group, 0..rows).await;
        }
        found.len()
    }
}

#[cfg(test)]
mod tests {
    use super::decompress_bounded;

    #[test]
    fn a_roll_up_file_decompresses_within_its_bound() {
        let json = br#"[{"minute":60,"spans":1}]"#.repeat(100);
        let file = zstd::bulk::compress(&json, super::ROLLUP_ZSTD_LEVEL).unwrap();
        assert!(file.len() < json.len() / 10);
        assert_eq!(decompress_bounded(&file, json.len() as u64).unwrap(), json);
        let refused = decompress_bounded(&file, json.len() as u64 - 1).unwrap_err();
        assert!(refused.contains("more than"), "{refused}");
        let not_zstd = decompress_bounded(b"[]", 1 << 20).unwrap_err();
        assert!(not_zstd.starts_with("not zstd"), "{not_zstd}");
    }
}
