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
        Ok(true)
    }
}
