//! Retention: whole hourly partitions whose hour ended before `now - retention` are dropped,
//! blocks and roll-up cells alike. The blocks leave the query path first, then their files are
//! deleted (durably, on the local backend).

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::{RetentionReport, Store};
use crate::block::{self, BlockHandle};
use crate::error::StoreError;

impl Store {
    /// Drops every hourly partition that ends before `now - retention`.
    pub async fn enforce_retention(
        &self,
        now_unix_nanos: i64,
    ) -> Result<RetentionReport, StoreError> {
        let Some(retention) = self.shared.config.retention else {
            return Ok(RetentionReport::default());
        };
        let retention_nanos = i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX);
        // The first partition that still holds data younger than the cutoff.
        let keep_from = block::partition_of(now_unix_nanos.saturating_sub(retention_nanos));
        let shared = &self.shared;
        let expired: Vec<Arc<BlockHandle>> = match shared.blocks.write() {
            Ok(mut blocks) => {
                let (expired, kept) = blocks
                    .drain(..)
                    .partition(|handle| handle.meta.partition_unix_seconds < keep_from);
                *blocks = kept;
                expired
            }
            Err(_) => Vec::new(),
        };
        shared.count_index_bytes();
        if let Ok(mut rollups) = shared.rollups.write() {
            rollups.drop_before(keep_from);
        }
        let partitions: BTreeSet<i64> = expired
            .iter()
            .map(|handle| handle.meta.partition_unix_seconds)
            .collect();
        let mut report = RetentionReport {
            dropped_partitions: Vec::new(),
            dropped_blocks: expired.len(),
        };
        for partition in partitions {
            let prefix = block::partition_path(partition);
            delete_prefix(&shared.object_store, &prefix).await?;
            report.dropped_partitions.push(prefix.to_string());
        }
        Ok(report)
    }
}

/// Deletes every object under `prefix`.
pub(crate) async fn delete_prefix(
    object_store: &Arc<dyn ObjectStore>,
    prefix: &Path,
) -> Result<(), StoreError> {
    let objects: Vec<object_store::ObjectMeta> = object_store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|error| StoreError::object_store(prefix, error))?;
    for object in objects {
        match object_store.delete(&object.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(StoreError::object_store(&object.location, error)),
        }
    }
    Ok(())
}
