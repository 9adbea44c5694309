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
mod wal;

pub use block::{BLOCK_FORMAT_VERSION, BlockMeta, BlockWriteOptions, IndexBytes, SpanFields};
pub use engine::cluster::{HeadFetcher, HeadRecord, HeadRecords};
pub use engine::{
    CompactionConfig, CompactionReport, DATA_FORMAT_VERSION, DEFAULT_MEMORY_LIMIT_BYTES,
    FlushReport, Lookup, RetentionReport, Store, StoreConfig, StoreRole, StoreStats,
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
