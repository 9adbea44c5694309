//! A query node's store (`StoreRole::ReadOnly`): it reads the committed blocks of every node
//! under `nodes/` of a shared bucket, lists them again every `refresh_every` (new flushes and
//! compactions appear, replaced blocks go), and rebuilds the roll-ups from the blocks' cells so
//! that lineage, catalog and throughput add up every node's spans as one node's would.

use std::collections::HashMap;
use std::sync::Arc;

use object_store::path::Path;

use super::recovery::{self, cells_to_delta};
use super::{Store, StoreRole};
use crate::block::BlockHandle;
use crate::error::StoreError;
use crate::rollup::Rollups;

impl Store {
    /// Whether this is a query node's store.
    pub fn is_read_only(&self) -> bool {
        matches!(self.shared.config.role, StoreRole::ReadOnly { .. })
    }

    /// A query node: lists the nodes' committed blocks again and, when the set changed, takes
    /// it (blocks still there keep what they have opened) with roll-ups rebuilt from it.
    /// Returns whether anything changed; a read-write store never changes here.
    pub async fn refresh_cluster(&self) -> Result<bool, StoreError> {
        if !self.is_read_only() {
            return Ok(false);
        }
        let shared = &self.shared;
        let found = recovery::load_cluster_blocks(&shared.object_store).await?;
        let current: HashMap<Path, Arc<BlockHandle>> = shared
            .blocks
            .read()
            .map(|blocks| {
                blocks
                    .iter()
                    .map(|handle| (handle.dir.clone(), handle.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let unchanged = found.len() == current.len()
            && found.iter().all(|handle| current.contains_key(&handle.dir));
        if unchanged {
            self.copy_newest_blocks().await;
            return Ok(false);
        }
        let mut blocks = Vec::with_capacity(found.len());
        let mut rollups = Rollups::default();
        for handle in found {
            let handle = match current.get(&handle.dir) {
                Some(opened) => opened.clone(),
                None => {
                    let _ = handle.warm(&shared.object_store).await;
                    handle
                }
            };
            let cells = handle.read_rollup(&shared.object_store).await?;
            rollups.apply(&cells_to_delta(cells));
            blocks.push(handle);
        }
        if let Ok(mut slot) = shared.blocks.write() {
            *slot = blocks;
        }
        if let Ok(mut slot) = shared.rollups.write() {
            *slot = rollups;
        }
        shared.count_index_bytes();
        self.copy_newest_blocks().await;
        Ok(true)
    }

    /// Copies the newest blocks into the local tier, newest partition first, up to its bound
    /// and at most `COPY_PER_REFRESH` bytes a refresh (so that listing stays prompt).
    async fn copy_newest_blocks(&self) {
        let Some(tiered) = self
            .shared
            .tiers
            .lock()
            .ok()
            .and_then(|tiers| tiers.clone())
        else {
            return;
        };
        let mut dirs: Vec<(i64, Path)> = self
            .shared
            .blocks
            .read()
            .map(|blocks| {
                blocks
                    .iter()
                    .map(|handle| (handle.meta.partition_unix_seconds, handle.dir.clone()))
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort_by(|left, right| right.cmp(left));
        let mut copied = 0;
        for (_, dir) in dirs {
            for file in ["meta.json", "rollup.json", "spans.parquet"] {
                match tiered.prefetch(&dir.clone().join(file)).await {
                    Ok(bytes) => copied += bytes,
                    Err(error) => {
                        tracing::warn!(%error, "copying a block to local disk; it is read from the object store");
                        return;
                    }
                }
            }
            if copied >= COPY_PER_REFRESH {
                return;
            }
        }
    }
}

/// The most a refresh copies of the newest blocks to local disk.
const COPY_PER_REFRESH: u64 = 512 << 20;
