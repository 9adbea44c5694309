//! Flushing: the head is frozen (the WAL rotates at the same instant), written as one block
//! per hourly partition it touches, and only then are the WAL segments it covers deleted.
//!
//! Invariant (the order a power loss needs): every file of every block of a flush, and its
//! directory, is on stable storage (the object store's put returns only then; see
//! `fs::LocalDir`) before the WAL segments holding the same records are deleted. A flush that
//! fails leaves its frozen head in memory and its records in the WAL; the next flush retries it.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;
use muninn_model::{NANOS_PER_SECOND, TraceId};
use tokio::sync::oneshot;

use super::head::Head;
use super::retention::delete_prefix;
use super::wal_thread::WalCommand;
use super::{FlushReport, Shared, Store};
use crate::block::{self, BlockContents, BlockHandle, StoredCell};
use crate::error::{StoreError, StoreErrorKind};
use crate::fs::FileSystem;
use crate::wal;

impl Store {
    /// Writes everything in the head (and any earlier unfinished flush) to blocks. A failure
    /// is counted in `StoreStats::flush_failures` and kept as `flush_error` until a flush
    /// succeeds.
    pub async fn flush(&self) -> Result<FlushReport, StoreError> {
        self.refuse_if_read_only("flushing")?;
        let result = self.flush_heads().await;
        let shared = &self.shared;
        if result.is_err() {
            shared.flush_failures.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut last) = shared.flush_error.lock() {
            *last = result.as_ref().err().map(ToString::to_string);
        }
        result
    }

    async fn flush_heads(&self) -> Result<FlushReport, StoreError> {
        let shared = &self.shared;
        let _flushing = shared.flush_lock.lock().await;
        let (reply, answer) = oneshot::channel();
        self.wal_tx
            .send(WalCommand::Freeze { reply })
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "the store is closed"))?;
        answer
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "the store is closed"))??;
        let pending: Vec<Arc<Head>> = shared
            .flushing
            .read()
            .map(|list| list.clone())
            .unwrap_or_default();
        let mut report = FlushReport::default();
        for frozen in pending {
            let written = write_head(shared, &frozen).await?;
            report.n_blocks += written.len();
            report.n_spans += written
                .iter()
                .map(|handle| handle.meta.n_spans)
                .sum::<u64>();
            report.bytes += written
                .iter()
                .map(|handle| handle.meta.spans_bytes + handle.meta.rollup_bytes)
                .sum::<u64>();
            for handle in &written {
                let room = shared.trace_filter_room(&[]);
                let _ = handle.warm(&shared.object_store, room).await;
            }
            if let Ok(mut blocks) = shared.blocks.write() {
                blocks.extend(written);
            }
            shared.count_index_bytes();
            if let Ok(mut flushing) = shared.flushing.write() {
                flushing.retain(|head| !Arc::ptr_eq(head, &frozen));
            }
            shared
                .unflushed_spans
                .fetch_sub(frozen.n_spans as u64, Ordering::Relaxed);
            shared
                .unflushed_bytes
                .fetch_sub(frozen.n_bytes, Ordering::Relaxed);
            shared
                .flushing_bytes
                .fetch_sub(frozen.n_bytes, Ordering::Relaxed);
            shared.space_freed.notify_waiters();
            delete_segments_up_to(shared.fs.as_ref(), &shared.wal_dir, frozen.last_seq)?;
        }
        // The frozen heads written are gone (a query still reading one drops it when done).
        if report.n_spans > 0
            && let Some(release) = shared.config.release_memory
        {
            release(shared.config.keep_resident_bytes());
        }
        Ok(report)
    }
}

/// Writes one frozen head as one block per hourly partition. On failure the blocks already
/// written are deleted again so that a retry does not duplicate them.
async fn write_head(shared: &Shared, frozen: &Head) -> Result<Vec<Arc<BlockHandle>>, StoreError> {
    let mut partitions: BTreeMap<i64, (Vec<RecordBatch>, Vec<StoredCell>)> = BTreeMap::new();
    // Spans of traces the flush filter drops (tail sampling) stay out of the blocks; their
    // roll-up cells below are written all the same.
    let keep = shared.hooks.flush_filter();
    let keep = keep
        .as_deref()
        .map(|keep| keep as &dyn Fn(&TraceId) -> bool);
    for batch in &frozen.batches {
        for (partition, rows) in batch.by_partition(keep)? {
            partitions.entry(partition).or_default().0.push(rows);
        }
    }
    for ((minute, key), cell) in &frozen.delta {
        partitions
            .entry(block::partition_of(minute * NANOS_PER_SECOND))
            .or_default()
            .1
            .push(StoredCell {
                minute: *minute,
                key: key.clone(),
                cell: cell.cell,
                first_span: cell.first_span.as_deref().cloned(),
            });
    }
    let flush_id = uuid::Uuid::new_v4().simple().to_string();
    let n_blocks = partitions.len() as u32;
    let mut written: Vec<Arc<BlockHandle>> = Vec::new();
    for (partition_unix_seconds, (spans, mut cells)) in partitions {
        cells.sort_by(|left, right| (left.minute, &left.key).cmp(&(right.minute, &right.key)));
        // Known now from memory, so the first trace search or service list after this flush
        // does not read them back from the file.
        let operations = block::operations_of(&spans)?;
        let contents = BlockContents {
            partition_unix_seconds,
            spans,
            cells,
        };
        match block::write_block(
            &shared.object_store,
            contents,
            frozen.last_seq,
            &flush_id,
            n_blocks,
            &shared.config.block,
        )
        .await
        {
            Ok(meta) => written.push(Arc::new(BlockHandle::with_operations(meta, operations))),
            Err(error) => {
                for handle in &written {
                    let _ = delete_prefix(&shared.object_store, &handle.dir).await;
                }
                return Err(error);
            }
        }
    }
    Ok(written)
}

/// Deletes the WAL segments whose records all have seq ≤ `last_seq` (the segment after them
/// starts at or below `last_seq + 1`), and makes the deletions durable.
pub(crate) fn delete_segments_up_to(
    fs: &dyn FileSystem,
    wal_dir: &FsPath,
    last_seq: u64,
) -> Result<(), StoreError> {
    let segments = wal::list_segments(fs, wal_dir)?;
    let mut deleted_any = false;
    for pair in segments.windows(2) {
        if pair[1].first_seq.saturating_sub(1) <= last_seq {
            fs.remove_file(&pair[0].path).map_err(|error| {
                StoreError::io(format!("deleting {}", pair[0].path.display()), error)
            })?;
            deleted_any = true;
        }
    }
    if deleted_any {
        fs.sync_dir(wal_dir)
            .map_err(|error| StoreError::io(format!("syncing {}", wal_dir.display()), error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event_span, open};
    use crate::fs::SimulatedFs;

    /// The order a power loss needs, read off the file system's journal: every block file is
    /// synced before its rename, every rename and new directory is followed by a sync of its
    /// directory, and all of that happens before the first WAL segment is removed; the
    /// removal is synced too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_deleted_only_after_every_block_file_and_directory_is_durable() {
        let fs = SimulatedFs::new();
        let store = open(&fs).await;
        store
            .append(vec![event_span(1, 0), event_span(2, 2)], Vec::new())
            .await
            .unwrap();
        let start = fs.journal().len();
        assert_eq!(store.flush().await.unwrap().n_blocks, 2);
        let journal: Vec<String> = fs.journal().split_off(start);
        let position = |wanted: &str| {
            journal
                .iter()
                .position(|operation| operation == wanted)
                .unwrap_or_else(|| panic!("{wanted:?} is not in the journal:\n{journal:#?}"))
        };
        let wal_removal = journal
            .iter()
            .position(|operation| operation.starts_with("remove /data/wal/"))
            .expect("the flush removes the WAL segment it replaced");
        let mut n_commits = 0;
        for (idx, operation) in journal.iter().enumerate() {
            let directory_of = |path: &str| path.rsplit_once('/').map(|(dir, _)| dir.to_string());
            if let Some((temporary, target)) = operation
                .strip_prefix("rename ")
                .and_then(|paths| paths.split_once(" -> "))
            {
                n_commits += 1;
                let synced = position(&format!("sync {temporary}"));
                let dir_synced = idx
                    + journal[idx..]
                        .iter()
                        .position(|later| {
                            *later == format!("sync_dir {}", directory_of(target).unwrap())
                        })
                        .unwrap_or_else(|| panic!("no directory sync after {operation}"));
                assert!(synced < idx, "{temporary} is synced before its rename");
                assert!(
                    dir_synced < wal_removal,
                    "{target} is durable before the WAL goes"
                );
            }
            if let Some(dir) = operation.strip_prefix("mkdir ") {
                let parent = directory_of(dir).unwrap();
                let synced = idx
                    + journal[idx..]
                        .iter()
                        .position(|later| *later == format!("sync_dir {parent}"))
                        .unwrap_or_else(|| panic!("no sync of {parent} after {operation}"));
                assert!(synced < wal_removal, "{dir} is durable before the WAL goes");
            }
        }
        assert_eq!(n_commits, 6, "spans, roll-up and meta of two blocks");
        assert!(journal[wal_removal..].contains(&"sync_dir /data/wal".to_string()));
    }
}
