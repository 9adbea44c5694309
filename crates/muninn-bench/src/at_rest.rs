//! The at-rest phase's figures, once everything is flushed: the bytes under `blocks/` per
//! span, the WAL left over and the whole data directory (`disk.rs`), the spans files column by
//! column (`columns.rs`), and the entropy floor of the workload beside them (`entropy.rs`).

use std::path::Path;

use crate::columns::SpansFiles;
use crate::disk::{self, DirSizes};
use crate::entropy::EntropyFloor;
use crate::report::{bytes, thousands};

/// What the at-rest phase measured.
pub(crate) struct AtRest {
    pub blocks: DirSizes,
    pub wal: DirSizes,
    pub whole: DirSizes,
    /// Bytes under `blocks/` per stored span.
    pub bytes_per_span: f64,
    pub floor: EntropyFloor,
}

/// Measures `data_dir` holding `n_spans` spans in `n_blocks` blocks of `stored_bytes` (the
/// blocks' metas) whose files are in `blocks_dir` (`blocks/`, or the local copies of blocks in an
/// object store), and prints the figures. Without local files (an object store, no copies),
/// the metas' bytes stand for the files and the columns are not broken down.
pub(crate) fn measure(
    data_dir: &Path,
    blocks_dir: &Path,
    n_spans: u64,
    (n_blocks, stored_bytes): (u64, u64),
    floor: EntropyFloor,
) -> anyhow::Result<AtRest> {
    let mut blocks = disk::dir_sizes(blocks_dir)?;
    if blocks.total == 0 && stored_bytes > 0 {
        println!(
            "(the blocks are in the object store without local copies: their metas' bytes below, \
             no breakdown by column)"
        );
        blocks.total = stored_bytes;
    }
    let wal = disk::dir_sizes(&data_dir.join("wal"))?;
    let whole = disk::dir_sizes(data_dir)?;
    let n_stored = n_spans.max(1);
    let bytes_per_span = blocks.total as f64 / n_stored as f64;
    println!(
        "bytes on disk per span: {bytes_per_span:.1} B/span ({} under {} for {} spans)",
        bytes(blocks.total),
        blocks_dir.display(),
        thousands(n_spans)
    );
    println!(
        "blocks/: {n_blocks} blocks, {} Parquet files {} ({:.1} B/span), roll-up files {} ({:.2} B/span), meta.json {}",
        blocks.n_parquet_files,
        bytes(blocks.parquet),
        blocks.parquet as f64 / n_stored as f64,
        bytes(blocks.rollup),
        blocks.rollup as f64 / n_stored as f64,
        bytes(blocks.meta)
    );
    println!("WAL remaining after flush: {}", bytes(wal.total));
    println!("data dir total: {}", bytes(whole.total));
    for line in SpansFiles::read(blocks_dir)?.table(n_spans) {
        println!("{line}");
    }
    for line in floor.describe(bytes_per_span) {
        println!("{line}");
    }
    Ok(AtRest {
        blocks,
        wal,
        whole,
        bytes_per_span,
        floor,
    })
}
