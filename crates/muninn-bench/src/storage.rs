//! `--storage`: the blocks in an object store (or another directory) instead of the data
//! directory, where the at-rest phase finds their files, and what the queries read from the
//! object store and from the local copies.

use std::path::{Path, PathBuf};

use muninn_store::TierStats;
use muninn_store::location::{BlockStorage, Location, S3Settings};

use crate::report::{bytes, thousands};

/// The store's block storage for `--storage URL` (S3 set up by the `AWS_*` variables) with
/// `cache_mib` of local copies; `None` without the flag.
pub(crate) fn blocks(url: Option<&str>, cache_mib: u64) -> anyhow::Result<Option<BlockStorage>> {
    let Some(url) = url else {
        return Ok(None);
    };
    let location =
        Location::parse(url).map_err(|error| anyhow::anyhow!("--storage: {}", error.message))?;
    Ok(Some(BlockStorage {
        cache_max_bytes: cache_mib << 20,
        ..BlockStorage::new(location, S3Settings::from_environment())
    }))
}

/// Where the block files are measured: `blocks/` of the data directory or of the other
/// directory; for S3, the local copies (or nothing, and then the blocks' metas are used).
pub(crate) fn blocks_dir(storage: Option<&BlockStorage>, data_dir: &Path) -> PathBuf {
    match storage.map(|storage| &storage.location) {
        None => data_dir.join("blocks"),
        Some(Location::Local(dir)) => dir.join("blocks"),
        Some(Location::S3 { .. }) => data_dir.join("cache").join("blocks"),
    }
}

/// The object store's reads during the queries, per query, beside the local copies'.
pub(crate) fn print_query_reads(before: &TierStats, after: &TierStats, n_queries: u64) {
    let n_queries = n_queries.max(1);
    let reads = after.remote_reads - before.remote_reads;
    let remote_bytes = after.remote_read_bytes - before.remote_read_bytes;
    println!(
        "object store during the queries: {} reads of {} ({:.1} reads, {} a query), {} reads \
         from the local copies (cache {} of {})",
        thousands(reads),
        bytes(remote_bytes),
        reads as f64 / n_queries as f64,
        bytes(remote_bytes / n_queries),
        thousands(after.cache_hits - before.cache_hits),
        bytes(after.cache_bytes),
        bytes(after.cache_max_bytes)
    );
}
