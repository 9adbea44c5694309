//! Opening a data directory: check its format marker, keep the blocks of complete flushes
//! (deleting those of a flush a crash interrupted), rebuild the roll-ups from them, and replay
//! the WAL records the blocks do not hold into a new head.
//!
//! Invariant: after recovery, every record ever acknowledged is either in a committed block
//! (its seq ≤ the highest committed `flush_seq`) or in the head; never in both, so roll-ups
//! count it once. A damaged WAL record in the middle of a segment is the one exception, and it
//! is reported (log, `StoreStats::wal_damaged_*`) and the segment copied to
//! `<data_dir>/wal-damaged/` for inspection.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path as FsPath;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::head::Head;
use super::integrity;
use super::retention::delete_prefix;
use super::wal_record;
use crate::block::{self, BlockHandle, BlockMeta, StoredCell};
use crate::error::{StoreError, StoreErrorKind};
use crate::fs::{self, FileSystem};
use crate::rollup::{DeltaCell, RollupDelta, Rollups};
use crate::wal::{self, Segment};

/// The data directory's format marker, `muninn.json`.
pub const DATA_FORMAT_VERSION: u32 = 1;

/// Where a copy of a WAL segment with damage in the middle is kept.
pub(crate) const DAMAGED_WAL_DIR: &str = "wal-damaged";

#[derive(Serialize, Deserialize)]
struct DataDirMarker {
    format_version: u32,
}

/// What opening found.
pub(crate) struct Recovered {
    pub blocks: Vec<Arc<BlockHandle>>,
    pub rollups: Rollups,
    pub head: Head,
    /// The sequence number of the next WAL record.
    pub next_seq: u64,
    pub damage: WalDamage,
    /// Block directories whose `meta.json` does not parse, each as `<directory>: <error>`:
    /// left in place for inspection (retention deletes them with their partition).
    pub unloadable: Vec<String>,
}

/// Damage found in the middle of WAL segments on open.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalDamage {
    pub regions: u64,
    pub bytes: u64,
    /// WAL records (acknowledged batches) the damaged regions held.
    pub records: u64,
}

/// Checks the data directory's marker, or writes it (durably) into a new directory.
pub(crate) fn check_or_write_marker(
    fs: &dyn FileSystem,
    data_dir: &FsPath,
) -> Result<(), StoreError> {
    let path = data_dir.join("muninn.json");
    match fs.read(&path) {
        Ok(bytes) => {
            let marker: DataDirMarker = serde_json::from_slice(&bytes)
                .map_err(|error| StoreError::corrupt(format!("{}: {error}", path.display())))?;
            if marker.format_version != DATA_FORMAT_VERSION {
                return Err(StoreError::corrupt(format!(
                    "{} has data format version {}, this muninn reads version {DATA_FORMAT_VERSION}",
                    data_dir.display(),
                    marker.format_version
                )));
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let bytes = serde_json::to_vec_pretty(&DataDirMarker {
                format_version: DATA_FORMAT_VERSION,
            })
            .map_err(|error| StoreError::corrupt(error.to_string()))?;
            fs::write_atomically(fs, &path, [bytes.as_slice()])
                .map_err(|error| StoreError::io(format!("writing {}", path.display()), error))
        }
        Err(error) => Err(StoreError::io(format!("reading {}", path.display()), error)),
    }
}

/// Loads blocks and roll-ups, then replays the WAL segments in `wal_dir` on top of them. A
/// read-only store (a query node) loads the committed blocks of every node instead.
pub(crate) async fn recover(
    fs: &Arc<dyn FileSystem>,
    object_store: &Arc<dyn ObjectStore>,
    data_dir: &FsPath,
    wal_dir: &FsPath,
    read_only: bool,
) -> Result<Recovered, StoreError> {
    let segments = wal::list_segments(fs.as_ref(), wal_dir)?;
    let oldest_wal_seq = segments.first().map(|segment| segment.first_seq);
    let mut unloadable = Vec::new();
    let (blocks, committed_seq) = if read_only {
        (load_cluster_blocks(object_store).await?, 0)
    } else {
        load_blocks(object_store, oldest_wal_seq, &mut unloadable).await?
    };
    let mut rollups = Rollups::default();
    for handle in &blocks {
        match handle.read_rollup(object_store).await {
            Ok(cells) => rollups.apply(&cells_to_delta(cells)),
            // A damaged roll-up file takes its block out: its cells cannot be trusted.
            Err(error) if error.kind == StoreErrorKind::Corrupt => {
                integrity::quarantine(object_store, handle, error.message, !read_only).await;
            }
            Err(error) => return Err(error),
        }
    }
    // Replay reads whole segments and decodes every record: keep it off the async workers.
    let fs = fs.clone();
    let data_dir = data_dir.to_path_buf();
    let (head, max_seq, damage, mut rollups) = tokio::task::spawn_blocking(move || {
        let (head, max_seq, damage) = replay_wal(
            fs.as_ref(),
            &data_dir,
            &segments,
            committed_seq,
            &mut rollups,
        )?;
        Ok::<_, StoreError>((head, max_seq, damage, rollups))
    })
    .await
    .map_err(|error| StoreError::io("replaying the WAL", std::io::Error::other(error)))??;
    // What was there before counted in the last process's counters; these count from here.
    rollups.reset_counters();
    Ok(Recovered {
        blocks,
        rollups,
        head,
        next_seq: max_seq + 1,
        damage,
        unloadable,
    })
}

/// Replays what the blocks do not hold (seq > `committed_seq`) into a head, applying it to
/// `rollups`; deletes segments the blocks fully cover (durable once `open` creates the next
/// segment, which syncs the WAL directory). Returns the head, the highest seq seen
/// and the damage found.
fn replay_wal(
    fs: &dyn FileSystem,
    data_dir: &FsPath,
    segments: &[Segment],
    committed_seq: u64,
    rollups: &mut Rollups,
) -> Result<(Head, u64, WalDamage), StoreError> {
    let mut head = Head::default();
    let mut max_seq = committed_seq;
    let mut damage = WalDamage::default();
    for (segment_idx, segment) in segments.iter().enumerate() {
        let covered_by_blocks = segments
            .get(segment_idx + 1)
            .is_some_and(|next| next.first_seq.saturating_sub(1) <= committed_seq);
        if covered_by_blocks {
            // Made durable by the directory sync that creating the next segment does.
            let _ = fs.remove_file(&segment.path);
            continue;
        }
        let replay = wal::replay_segment(fs, segment, |format, seq, payload| {
            max_seq = max_seq.max(seq);
            if seq <= committed_seq {
                return Ok(());
            }
            let (spans, delta) = wal_record::decode(format, payload).map_err(|error| {
                StoreError::corrupt(format!("{}: record {seq}: {error}", segment.path.display()))
            })?;
            rollups.apply(&delta);
            let n_bytes = spans.memory_bytes();
            head.insert(seq, spans, n_bytes, delta);
            Ok(())
        })?;
        if !replay.damage.is_empty() {
            report_damage(fs, data_dir, segment, &replay.damage, &mut damage);
        }
    }
    Ok((head, max_seq, damage))
}

/// Logs each damaged region, counts it, and keeps a copy of the segment for inspection.
fn report_damage(
    fs: &dyn FileSystem,
    data_dir: &FsPath,
    segment: &Segment,
    regions: &[wal::Damage],
    damage: &mut WalDamage,
) {
    for region in regions {
        damage.regions += 1;
        damage.bytes += region.bytes;
        damage.records += region.lost_seqs.end - region.lost_seqs.start;
        tracing::error!(
            segment = %segment.path.display(),
            offset = region.offset,
            bytes = region.bytes,
            lost_records = ?region.lost_seqs,
            "WAL segment damaged in the middle: skipped the damaged bytes and kept the intact records after them; the batches in the damaged region are lost"
        );
    }
    let copy_dir = data_dir.join(DAMAGED_WAL_DIR);
    let copied = fs::create_dir_all(fs, &copy_dir).and_then(|()| {
        let bytes = fs.read(&segment.path)?;
        let name = segment.path.file_name().unwrap_or_default();
        fs::write_atomically(fs, &copy_dir.join(name), [bytes.as_slice()])
    });
    match copied {
        Ok(()) => {
            tracing::error!(copy = %copy_dir.display(), "a copy of the damaged WAL segment is kept")
        }
        Err(error) => tracing::error!(%error, "could not keep a copy of the damaged WAL segment"),
    }
}

pub(super) fn cells_to_delta(cells: Vec<StoredCell>) -> RollupDelta {
    cells
        .into_iter()
        .map(|stored| {
            let cell = DeltaCell {
                cell: stored.cell,
                first_span: stored.first_span.map(Box::new),
            };
            ((stored.minute, stored.key), cell)
        })
        .collect()
}

/// Lists committed blocks; deletes blocks of unfinished flushes and directories without a meta.
/// A flush with blocks missing is unfinished only while the WAL still holds its records (the
/// WAL is trimmed only after every block of a flush is written); once the WAL no longer holds
/// them, retention dropped the flush's older partitions and its remaining blocks stay.
/// Blocks whose `meta.json` does not parse are left where they are and named in
/// `unloadable`.
pub(crate) async fn load_blocks(
    object_store: &Arc<dyn ObjectStore>,
    oldest_wal_seq: Option<u64>,
    unloadable: &mut Vec<String>,
) -> Result<(Vec<Arc<BlockHandle>>, u64), StoreError> {
    load_blocks_under(object_store, None, oldest_wal_seq, unloadable).await
}

/// The committed blocks of every node under `nodes/` (`[storage] node`), for a query node:
/// read only, so the blocks of a flush or compaction still in progress are left out, not
/// deleted, and nothing is written.
pub(crate) async fn load_cluster_blocks(
    object_store: &Arc<dyn ObjectStore>,
) -> Result<Vec<Arc<BlockHandle>>, StoreError> {
    let nodes_prefix = Path::from(block::NODES_PREFIX);
    let listed = object_store
        .list_with_delimiter(Some(&nodes_prefix))
        .await
        .map_err(|error| StoreError::object_store(&nodes_prefix, error))?;
    let mut blocks = Vec::new();
    for node in listed.common_prefixes {
        // Every flush counts as one still in progress unless all its blocks are there.
        let (found, _) =
            load_blocks_under(object_store, Some(&node), Some(0), &mut Vec::new()).await?;
        blocks.extend(found);
    }
    Ok(blocks)
}

/// `load_blocks` under `root` (a node's prefix); with a root, read only: nothing is deleted
/// and the handles name their blocks under it.
async fn load_blocks_under(
    object_store: &Arc<dyn ObjectStore>,
    root: Option<&Path>,
    oldest_wal_seq: Option<u64>,
    unloadable: &mut Vec<String>,
) -> Result<(Vec<Arc<BlockHandle>>, u64), StoreError> {
    let prefix = match root {
        Some(root) => Path::from(format!("{root}/{}", block::BLOCKS_PREFIX)),
        None => Path::from(block::BLOCKS_PREFIX),
    };
    let objects: Vec<object_store::ObjectMeta> = object_store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|error| StoreError::object_store(&prefix, error))?;
    let mut files_by_dir: BTreeMap<String, Vec<Path>> = BTreeMap::new();
    for object in &objects {
        let location = object.location.to_string();
        if let Some((dir, _)) = location.rsplit_once('/') {
            files_by_dir
                .entry(dir.to_string())
                .or_default()
                .push(object.location.clone());
        }
    }
    let mut metas: Vec<(String, BlockMeta, String)> = Vec::new();
    let mut orphans: Vec<String> = Vec::new();
    for (dir, files) in &files_by_dir {
        let Some(meta_path) = files
            .iter()
            .find(|path| path.filename() == Some("meta.json"))
        else {
            orphans.push(dir.clone());
            continue;
        };
        let bytes = object_store
            .get(meta_path)
            .await
            .map_err(|error| StoreError::object_store(meta_path, error))?
            .bytes()
            .await
            .map_err(|error| StoreError::object_store(meta_path, error))?;
        let meta: BlockMeta = match serde_json::from_slice(&bytes) {
            Ok(meta) => meta,
            Err(error) => {
                tracing::error!(block = %dir, %error, "a block's meta.json does not parse: the block is left out and left in place for inspection");
                unloadable.push(format!("{dir}: meta.json does not parse: {error}"));
                continue;
            }
        };
        block::FormatVersion::of(&meta, meta_path)?;
        let flush_id = meta.flush_id.clone();
        metas.push((dir.clone(), meta, flush_id));
    }
    let mut flush_sizes: HashMap<String, u32> = HashMap::new();
    for (_, _, flush_id) in &metas {
        *flush_sizes.entry(flush_id.clone()).or_default() += 1;
    }
    // Compactions: a committed one (every output present) replaces its inputs, whatever is
    // left of them; an uncommitted one's outputs are deleted, its inputs still stand.
    let mut replaced: HashSet<String> = HashSet::new();
    for (_, meta, flush_id) in &metas {
        if !meta.compacted_from.is_empty()
            && flush_sizes.get(flush_id).copied() == Some(meta.flush_n_blocks)
        {
            replaced.extend(meta.compacted_from.iter().cloned());
        }
    }
    let mut blocks = Vec::new();
    let mut committed_seq = 0;
    for (dir, meta, flush_id) in metas {
        let all_blocks_present = flush_sizes.get(&flush_id).copied() == Some(meta.flush_n_blocks);
        if replaced.contains(&meta.block_id) {
            tracing::info!(block = %dir, "deleting a block a committed compaction replaced");
            orphans.push(dir);
            continue;
        }
        if !meta.compacted_from.is_empty() && !all_blocks_present {
            tracing::warn!(block = %dir, "dropping an output of an unfinished compaction; the blocks it merged stay");
            orphans.push(dir);
            continue;
        }
        let wal_holds_flush = oldest_wal_seq.is_some_and(|first_seq| first_seq <= meta.flush_seq);
        if all_blocks_present || !wal_holds_flush {
            committed_seq = committed_seq.max(meta.flush_seq);
            let handle = match root {
                Some(_) => BlockHandle::at(Path::from(dir.as_str()), meta),
                None => BlockHandle::new(meta),
            };
            let marker = files_by_dir.get(&dir).and_then(|files| {
                files
                    .iter()
                    .find(|path| path.filename() == Some(integrity::QUARANTINE_FILE))
            });
            if let Some(marker) = marker {
                handle.set_quarantined(integrity::read_marker(object_store, marker).await);
            }
            blocks.push(Arc::new(handle));
        } else {
            tracing::warn!(block = %dir, "dropping a block of an unfinished flush; its data is replayed from the WAL");
            orphans.push(dir);
        }
    }
    if root.is_none() {
        for dir in orphans {
            delete_prefix(object_store, &Path::from(dir)).await?;
        }
    }
    Ok((blocks, committed_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Store;
    use crate::engine::testing::{DATA_DIR, event_span, open};
    use crate::fs::SimulatedFs;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    /// A crash after a flush committed its blocks but before it removed the WAL segment: the
    /// segment's records are in the blocks, so replay skips them (nothing counted twice) and
    /// deletes the segment.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_the_blocks_hold_are_not_replayed_and_their_segment_is_deleted() {
        let spans = vec![event_span(1, 0), event_span(2, 0), event_span(3, 1)];
        // A dry run finds the WAL removal's place among the flush's operations.
        let dry = SimulatedFs::new();
        let store = open(&dry).await;
        store.append(spans.clone(), Vec::new()).await.unwrap();
        let before_flush = dry.journal().len();
        store.flush().await.unwrap();
        let removal = dry.journal()[before_flush..]
            .iter()
            .position(|operation| operation.starts_with("remove /data/wal/"))
            .unwrap();

        let fs = SimulatedFs::new();
        let store = open(&fs).await;
        store.append(spans.clone(), Vec::new()).await.unwrap();
        fs.cut_power_after(removal as u64 + 1);
        assert!(
            store.flush().await.is_err(),
            "the power went out at the removal"
        );
        drop(store);
        let rebooted = fs.after_power_loss();
        let wal_dir = FsPath::new(DATA_DIR).join("wal");
        assert_eq!(wal::list_segments(&rebooted, &wal_dir).unwrap().len(), 2);

        let store = open(&rebooted).await;
        let stats = store.stats();
        assert_eq!((stats.block_spans, stats.head_spans), (3, 0));
        let rollup_spans: u64 = store.with_rollups(|rollups| {
            let mut total = 0;
            rollups.scan(i64::MIN, i64::MAX, |_, _, cell| total += cell.spans);
            total
        });
        assert_eq!(rollup_spans, 3, "each span counted once");
        assert_eq!(
            wal::list_segments(&rebooted.after_power_loss(), &wal_dir)
                .unwrap()
                .len(),
            1,
            "the covered segment is deleted, durably"
        );
    }

    /// A segment that reaches `wal_segment_bytes` is closed and the next started: a head
    /// spans several segments, a restart replays them all, and a flush deletes those it
    /// covers, keeping the one records go to.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_segment_is_closed_and_a_head_spans_several() {
        let fs = SimulatedFs::new();
        let mut config = super::super::StoreConfig::new(DATA_DIR);
        config.wal_segment_bytes = 4 << 10;
        let wal_dir = FsPath::new(DATA_DIR).join("wal");
        let store = Store::open_with_file_system(config.clone(), Arc::new(fs.clone()))
            .await
            .unwrap();
        let batch = crate::engine::head::tests::fleet_spans(40, 0);
        for _ in 0..5 {
            store.append(batch.clone(), Vec::new()).await.unwrap();
        }
        let segments = wal::list_segments(&fs, &wal_dir).unwrap();
        assert_eq!(segments.len(), 6, "each record of 40 spans fills a segment");
        drop(store);

        let rebooted = fs.after_power_loss();
        let store = Store::open_with_file_system(config, Arc::new(rebooted.clone()))
            .await
            .unwrap();
        assert_eq!(store.stats().head_spans, 200, "every segment is replayed");
        store.flush().await.unwrap();
        assert_eq!(store.stats().block_spans, 200);
        assert_eq!(
            wal::list_segments(&rebooted.after_power_loss(), &wal_dir)
                .unwrap()
                .len(),
            1,
            "the flush deleted every segment it covered, durably"
        );
    }

    fn meta(block_id: &str, flush_id: &str, flush_seq: u64, partition_hours: i64) -> BlockMeta {
        BlockMeta {
            format_version: block::BLOCK_FORMAT_VERSION,
            block_id: block_id.into(),
            partition_unix_seconds: partition_hours * 3600,
            min_time_unix_nanos: 0,
            max_time_unix_nanos: 0,
            n_spans: 0,
            spans_bytes: 0,
            rollup_bytes: 2,
            flush_seq,
            flush_id: flush_id.into(),
            flush_n_blocks: 2,
            compacted_from: Vec::new(),
            spans_crc32: None,
            rollup_crc32: None,
            rollup_zstd: false,
        }
    }

    async fn put_block(store: &Arc<dyn ObjectStore>, meta: &BlockMeta) {
        let handle = BlockHandle::new(meta.clone());
        for (name, bytes) in [
            ("rollup.json", b"[]".to_vec()),
            ("meta.json", serde_json::to_vec(meta).unwrap()),
        ] {
            store
                .put(&handle.dir.clone().join(name), PutPayload::from(bytes))
                .await
                .unwrap();
        }
    }

    /// The rule for a flush with a block missing: unfinished (deleted, replayed) while the WAL
    /// still holds its records; once the WAL is past it, retention dropped the missing block and
    /// the rest stays.
    #[tokio::test]
    async fn a_flush_with_a_block_missing_is_dropped_only_while_the_wal_holds_it() {
        for (oldest_wal_seq, kept) in [
            (Some(5), false),
            (Some(9), false),
            (Some(10), true),
            (None, true),
        ] {
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            put_block(&store, &meta("complete-a", "earlier", 4, 1)).await;
            put_block(&store, &meta("complete-b", "earlier", 4, 2)).await;
            put_block(&store, &meta("lonely", "later", 9, 3)).await;
            let (blocks, committed_seq) = load_blocks(&store, oldest_wal_seq, &mut Vec::new())
                .await
                .unwrap();
            let mut ids: Vec<&str> = blocks
                .iter()
                .map(|handle| handle.meta.block_id.as_str())
                .collect();
            ids.sort();
            let expected: &[&str] = if kept {
                &["complete-a", "complete-b", "lonely"]
            } else {
                &["complete-a", "complete-b"]
            };
            assert_eq!(ids, expected, "oldest WAL seq {oldest_wal_seq:?}");
            assert_eq!(committed_seq, if kept { 9 } else { 4 });
            let n_objects = store
                .list(None)
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .len();
            assert_eq!(
                n_objects,
                expected.len() * 2,
                "a dropped block's files are deleted"
            );
        }
    }
}
