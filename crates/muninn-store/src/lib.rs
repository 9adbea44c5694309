//! Muninn's embedded store: a write-ahead log for durability, an in-memory head for what is
//! recent, immutable Parquet blocks in hourly partitions on object storage, and roll-ups kept
//! at ingest time for lineage, catalog and throughput.

mod block;
mod engine;
mod error;
mod fs;
mod hooks;
pub mod location;
mod lookup_many;
mod rollup;
mod scan;
mod time_limit;
mod wal;

/// Entry points of the fuzz targets in `fuzz/` (docs/security.md#fuzzing); not an API.
#[doc(hidden)]
pub mod fuzzing {
    use std::path::Path;

    use crate::engine::fuzzing::decode_wal_record;

    /// Replays `bytes` as a WAL segment as recovery does: intact records decoded, damaged
    /// regions skipped, a torn tail dropped; the spans its records held. Errors are fine; a
    /// panic is a bug.
    pub fn wal_segment(bytes: &[u8]) -> usize {
        let mut spans = 0;
        let _ = crate::wal::replay_bytes(bytes, 1, Path::new("fuzz.wal"), |_, _, payload| {
            spans += decode_wal_record(payload);
            Ok(())
        });
        spans
    }

    /// Decodes `payload` as one WAL record's batch and builds the head batch and roll-up delta
    /// from it, as recovery does with an intact record; the spans it held (0 when it does not
    /// decode).
    pub fn wal_record(payload: &[u8]) -> usize {
        decode_wal_record(payload)
    }

    /// Reads `bytes` as a block's `spans.parquet` through every read the store makes of a block
    /// (searches, look-ups by id, row groups, operations), from an in-memory object store. The
    /// first byte picks the format version its meta claims (odd: 1, even: 2). Returns the
    /// spans a search of everything found. Errors are fine; a panic is a bug.
    pub fn block(bytes: &[u8]) -> usize {
        let Some((&version, file)) = bytes.split_first() else {
            return 0;
        };
        let format_version = if version & 1 == 1 { 1 } else { 2 };
        static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        let runtime = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime")
        });
        runtime.block_on(crate::block::fuzzing::read_block(format_version, file))
    }
}

pub use block::{BLOCK_FORMAT_VERSION, BlockMeta, BlockWriteOptions, IndexBytes, SpanFields};
pub use engine::cluster::{HeadFetcher, HeadRecord, HeadRecords};
pub use engine::{
    CompactionConfig, CompactionReport, DATA_FORMAT_VERSION, DEFAULT_MEMORY_LIMIT_BYTES,
    FlushReport, Lookup, RetentionReport, ScrubConfig, Store, StoreConfig, StoreRole, StoreStats,
    head_memory_bytes,
};
pub use error::{StoreError, StoreErrorKind};
#[cfg(feature = "fault-injection")]
pub use fs::SimulatedFs;
pub use fs::{
    DirEntry, FileSystem, LocalDir, OsFileSystem, TierStats, WriteFile,
    create_dir_all as create_dir_all_durably, remove_temporary_files,
    write_atomically as write_file_atomically,
};
pub use hooks::{AppendObserver, FlushFilter};
pub use rollup::{FirstSpan, RollupCell, RollupEdge, Rollups};
pub use scan::{Operation, OperationCatalog, SpanFilter, SpanQuery, TraceHit, TraceSearch};
pub use time_limit::TimeLimit;
