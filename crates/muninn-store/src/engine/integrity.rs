//! Block integrity: each block's `meta.json` carries the CRC-32 of its `spans.parquet` and
//! `rollup.json`; the scrubber reads every block's spans file in the background (at open, then
//! every `ScrubConfig::interval`, at `bytes_per_second`) and checks it, and a block a read
//! found damaged is checked at once. A block that fails is quarantined: out of the read path
//! (answers that needed it are partial and say so), left in place for inspection with a
//! `quarantine.json` beside its files, reported in the log and in `StoreStats`, and deleted by
//! retention with its partition. Its roll-up cells stay when `rollup.json` passes its own
//! checksum: the counts of what was received stay true.
//!
//! Only a checksum mismatch, a missing file, or a JSON file that does not parse quarantines a
//! block; an object store that does not answer never does (the check is retried).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::{Shared, Store, StoreRole};
use crate::block::BlockHandle;
use crate::error::StoreError;

/// The file that marks a quarantined block, beside its other files.
pub(crate) const QUARANTINE_FILE: &str = "quarantine.json";

/// How the scrubber checks blocks.
#[derive(Debug, Clone)]
pub struct ScrubConfig {
    /// How often every block is checked again after the pass at open; `None`: no passes (a
    /// block a read found damaged is still checked).
    pub interval: Option<Duration>,
    /// The most a pass reads per second, so that it does not take the disk from ingest.
    pub bytes_per_second: u64,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        ScrubConfig {
            interval: Some(Duration::from_secs(24 * 3600)),
            bytes_per_second: 32 << 20,
        }
    }
}

/// What the scrubber did since the store opened.
#[derive(Debug, Default)]
pub(crate) struct ScrubTotals {
    pub blocks: AtomicU64,
    pub bytes: AtomicU64,
}

/// `quarantine.json`.
#[derive(Debug, Serialize, Deserialize)]
struct QuarantineMarker {
    reason: String,
    quarantined_at: String,
}

/// Takes `handle` out of the read path for `reason`, logs it and, on a store that writes,
/// leaves `quarantine.json` in its directory so that the next open knows without checking.
pub(crate) async fn quarantine(
    object_store: &Arc<dyn ObjectStore>,
    handle: &BlockHandle,
    reason: String,
    write_marker: bool,
) {
    if !handle.set_quarantined(reason.clone()) {
        return;
    }
    tracing::error!(block = %handle.dir, %reason, "block quarantined: its spans are no longer read; answers that need it say they are partial; its files stay for inspection");
    if !write_marker {
        return;
    }
    let marker = QuarantineMarker {
        reason,
        quarantined_at: chrono::Utc::now().to_rfc3339(),
    };
    let path = handle.dir.clone().join(QUARANTINE_FILE);
    let bytes = serde_json::to_vec_pretty(&marker).unwrap_or_default();
    if let Err(error) = object_store.put(&path, PutPayload::from(bytes)).await {
        tracing::error!(%path, %error, "could not write the quarantine marker; the block is checked again at the next open");
    }
}

/// The reason a block's `quarantine.json` gives.
pub(crate) async fn read_marker(object_store: &Arc<dyn ObjectStore>, path: &Path) -> String {
    let bytes = match object_store.get(path).await {
        Ok(got) => got.bytes().await.ok(),
        Err(_) => None,
    };
    bytes
        .and_then(|bytes| serde_json::from_slice::<QuarantineMarker>(&bytes).ok())
        .map(|marker| format!("{} (since {})", marker.reason, marker.quarantined_at))
        .unwrap_or_else(|| format!("{path} is there"))
}

/// Keeps a pass's reads under a byte rate.
struct Pacer {
    bytes_per_second: u64,
    started: Instant,
    bytes: u64,
}

impl Pacer {
    fn new(bytes_per_second: u64) -> Self {
        Pacer {
            bytes_per_second: bytes_per_second.max(1),
            started: Instant::now(),
            bytes: 0,
        }
    }

    async fn read(&mut self, bytes: u64) {
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
}

/// Reads `handle`'s spans file and checks its size and CRC-32 against its meta. `Ok(Some)`:
/// the reason the block fails; `Ok(None)`: it passes (or has no checksum to check); `Err`: the
/// object store did not answer, so nothing is known.
async fn verify(
    object_store: &Arc<dyn ObjectStore>,
    handle: &BlockHandle,
    pacer: &mut Pacer,
    totals: &ScrubTotals,
) -> Result<Option<String>, StoreError> {
    let meta = &handle.meta;
    let Some(expected) = meta.spans_crc32 else {
        return Ok(None);
    };
    if meta.n_spans == 0 {
        return Ok(None);
    }
    let path = handle.spans_path();
    let got = match object_store.get(&path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => {
            return Ok(Some("spans.parquet is missing".into()));
        }
        Err(error) => return Err(StoreError::object_store(&path, error)),
    };
    let mut stream = got.into_stream();
    let mut hasher = crc32fast::Hasher::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| StoreError::object_store(&path, error))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        totals
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        pacer.read(chunk.len() as u64).await;
    }
    totals.blocks.fetch_add(1, Ordering::Relaxed);
    if size != meta.spans_bytes {
        return Ok(Some(format!(
            "spans.parquet has {size} bytes, its meta says {}",
            meta.spans_bytes
        )));
    }
    let found = hasher.finalize();
    if found != expected {
        return Ok(Some(format!(
            "spans.parquet fails its checksum (CRC-32 {found:08x}, its meta says {expected:08x})"
        )));
    }
    Ok(None)
}

/// Checks `handle` and quarantines it when it fails; true when it did.
async fn check(shared: &Shared, handle: &BlockHandle, pacer: &mut Pacer) -> bool {
    match verify(&shared.object_store, handle, pacer, &shared.scrubbed).await {
        // A block that compaction or retention took out meanwhile is gone, not damaged.
        Ok(Some(_)) if !listed(shared, handle) => false,
        Ok(Some(reason)) => {
            let write_marker = shared.config.role == StoreRole::ReadWrite;
            quarantine(&shared.object_store, handle, reason, write_marker).await;
            true
        }
        Ok(None) => false,
        Err(error) => {
            tracing::warn!(block = %handle.dir, %error, "could not check the block; it is checked again later");
            false
        }
    }
}

/// Whether `handle` is still among the store's blocks.
fn listed(shared: &Shared, handle: &BlockHandle) -> bool {
    shared
        .blocks
        .read()
        .map(|list| {
            list.iter()
                .any(|other| std::ptr::eq(other.as_ref(), handle))
        })
        .unwrap_or(false)
}

impl Store {
    /// Runs the scrubber until the store's maintenance stops it: checks the blocks reads
    /// found damaged every second, and every block at open and every `scrub.interval`.
    pub(crate) async fn scrub_forever(&self) {
        let shared = &self.shared;
        let config = shared.config.scrub.clone();
        let mut next_pass = config.interval.map(|_| Instant::now());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let blocks = self.readable_blocks();
            let mut pacer = Pacer::new(config.bytes_per_second);
            for handle in blocks.iter().filter(|handle| handle.take_suspect()) {
                check(shared, handle, &mut pacer).await;
            }
            if let (Some(due), Some(interval)) = (next_pass, config.interval)
                && Instant::now() >= due
            {
                self.scrub_pass(&mut pacer).await;
                next_pass = Some(Instant::now() + interval);
            }
        }
    }

    /// Checks every readable block once, oldest first; the number quarantined.
    pub async fn scrub(&self) -> usize {
        let mut pacer = Pacer::new(self.shared.config.scrub.bytes_per_second);
        self.scrub_pass(&mut pacer).await
    }

    async fn scrub_pass(&self, pacer: &mut Pacer) -> usize {
        let mut blocks = self.readable_blocks();
        blocks.sort_by_key(|handle| handle.meta.min_time_unix_nanos);
        let mut quarantined = 0;
        for handle in blocks {
            // A block compaction or retention removed meanwhile is not checked.
            if listed(&self.shared, &handle) && check(&self.shared, &handle, pacer).await {
                quarantined += 1;
            }
        }
        quarantined
    }

    fn readable_blocks(&self) -> Vec<Arc<BlockHandle>> {
        self.shared
            .blocks
            .read()
            .map(|list| {
                list.iter()
                    .filter(|handle| handle.quarantined().is_none())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The quarantined blocks, each as `<directory>: <reason>`, sorted.
    pub fn quarantined_blocks(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .shared
            .blocks
            .read()
            .map(|list| {
                list.iter()
                    .filter_map(|handle| {
                        handle
                            .quarantined()
                            .map(|reason| format!("{}: {reason}", handle.dir))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.extend(self.shared.unloadable_blocks.iter().cloned());
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    use muninn_model::TraceId;

    use super::*;
    use crate::block;
    use crate::engine::StoreConfig;
    use crate::engine::testing::{DATA_DIR, event_span, open};
    use crate::fs::SimulatedFs;

    /// A store with two blocks: trace 1's, then trace 2's.
    async fn two_blocks(fs: &SimulatedFs) -> (Store, Vec<Arc<BlockHandle>>) {
        let store = open(fs).await;
        flush_two_blocks(&store).await;
        let mut blocks = store.shared.blocks.read().unwrap().clone();
        blocks.sort_by_key(|handle| handle.meta.flush_seq);
        assert_eq!(blocks.len(), 2);
        (store, blocks)
    }

    /// Trace 1's span flushed into a block, then trace 2's into another.
    async fn flush_two_blocks(store: &Store) {
        for trace in [1, 2] {
            store
                .append(vec![event_span(trace, 0)], Vec::new())
                .await
                .unwrap();
            store.flush().await.unwrap();
        }
    }

    /// Replaces `name` in `handle`'s directory with what `damage` makes of it.
    async fn damage(
        store: &Store,
        handle: &BlockHandle,
        name: &str,
        damage: impl FnOnce(&mut Vec<u8>),
    ) {
        let object_store = &store.shared.object_store;
        let path = handle.dir.clone().join(name);
        let mut bytes = object_store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        damage(&mut bytes);
        object_store
            .put(&path, PutPayload::from(bytes))
            .await
            .unwrap();
    }

    fn spans_counted(store: &Store) -> u64 {
        store.with_rollups(|rollups| {
            let mut total = 0;
            rollups.scan(i64::MIN, i64::MAX, |_, _, cell| total += cell.spans);
            total
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flipped_byte_is_caught_by_the_scrub_and_the_block_stays_out_after_a_restart() {
        let fs = SimulatedFs::new();
        let (store, blocks) = two_blocks(&fs).await;
        assert_eq!(store.scrub().await, 0, "intact blocks pass");
        damage(&store, &blocks[0], "spans.parquet", |bytes| {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
        })
        .await;
        assert_eq!(store.scrub().await, 1);
        let stats = store.stats();
        assert_eq!(stats.quarantined_blocks, 1);
        assert_eq!(stats.scrubbed_blocks, 4, "two passes of two blocks");
        let quarantined = store.quarantined_blocks();
        assert!(
            quarantined[0].contains("fails its checksum"),
            "{quarantined:?}"
        );

        let lost = store.spans_by_trace_id(TraceId([1; 16])).await;
        assert!(lost.spans.is_empty());
        assert_eq!(
            lost.unreadable_blocks.len(),
            1,
            "the answer says it is partial"
        );
        assert!(
            lost.unreadable_blocks[0].contains("quarantined"),
            "{lost:?}"
        );
        let found = store.spans_by_trace_id(TraceId([2; 16])).await;
        assert_eq!(found.spans.len(), 1);
        assert!(
            found.unreadable_blocks.is_empty()
                || found.unreadable_blocks[0].contains("quarantined")
        );
        assert_eq!(
            spans_counted(&store),
            2,
            "what was received is still counted"
        );
        drop(store);

        let reopened = open(&fs).await;
        assert_eq!(
            reopened.quarantined_blocks().len(),
            1,
            "the marker keeps it out without a check"
        );
        assert!(reopened.quarantined_blocks()[0].contains("fails its checksum"));
        assert_eq!(reopened.stats().scrubbed_blocks, 0);
        assert_eq!(
            reopened
                .spans_by_trace_id(TraceId([2; 16]))
                .await
                .spans
                .len(),
            1
        );
        assert_eq!(spans_counted(&reopened), 2);
        let marker = blocks[0].dir.clone().join(QUARANTINE_FILE);
        assert!(reopened.shared.object_store.head(&marker).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_that_finds_damage_gets_the_block_checked_at_once() {
        let fs = SimulatedFs::new();
        let config = StoreConfig {
            scrub: ScrubConfig {
                interval: None,
                ..ScrubConfig::default()
            },
            ..StoreConfig::new(DATA_DIR)
        };
        let store = Store::open_with_file_system(config, Arc::new(fs.clone()))
            .await
            .unwrap();
        flush_two_blocks(&store).await;
        let scrubber = {
            let store = store.clone();
            tokio::spawn(async move { store.scrub_forever().await })
        };
        let mut blocks = store.shared.blocks.read().unwrap().clone();
        blocks.sort_by_key(|handle| handle.meta.flush_seq);
        // Ones in every byte (the flush keeps the footer it wrote in memory, so the damage is
        // found in the filters and pages: ones make each filter say yes and each page fail).
        damage(&store, &blocks[0], "spans.parquet", |bytes| {
            bytes.fill(0xff);
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(store.quarantined_blocks().is_empty(), "no pass runs");
        let read = store.spans_by_trace_id(TraceId([1; 16])).await;
        assert_eq!(read.unreadable_blocks.len(), 1, "{read:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.quarantined_blocks().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(store.quarantined_blocks().len(), 1);
        assert_eq!(
            store.stats().scrubbed_blocks,
            1,
            "only the suspect was read"
        );
        scrubber.abort();
    }

    /// A block that compaction or retention took out while it was being checked is gone, not
    /// damaged: it is not quarantined.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_block_deleted_while_it_is_checked_is_not_quarantined() {
        let fs = SimulatedFs::new();
        let (store, blocks) = two_blocks(&fs).await;
        store
            .shared
            .blocks
            .write()
            .unwrap()
            .retain(|handle| !Arc::ptr_eq(handle, &blocks[0]));
        let path = blocks[0].spans_path();
        store.shared.object_store.delete(&path).await.unwrap();
        let mut pacer = Pacer::new(u64::MAX);
        assert!(!check(&store.shared, &blocks[0], &mut pacer).await);
        assert!(blocks[0].quarantined().is_none());
        // Still listed, the same missing file is damage.
        store.shared.blocks.write().unwrap().push(blocks[0].clone());
        assert!(check(&store.shared, &blocks[0], &mut pacer).await);
        assert_eq!(blocks[0].quarantined(), Some("spans.parquet is missing"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_rollup_or_meta_does_not_stop_the_open() {
        let fs = SimulatedFs::new();
        let (store, blocks) = two_blocks(&fs).await;
        // Still zstd of JSON, with one count changed: only the checksum tells.
        damage(&store, &blocks[0], block::ROLLUP_ZSTD_FILE, |bytes| {
            let json = zstd::stream::decode_all(&bytes[..]).unwrap();
            let text = String::from_utf8(json).unwrap();
            let changed = text.replacen("\"spans\":1", "\"spans\":7", 1);
            assert_ne!(changed, text);
            *bytes = zstd::bulk::compress(changed.as_bytes(), 3).unwrap();
        })
        .await;
        damage(&store, &blocks[1], "meta.json", |bytes| {
            bytes.truncate(bytes.len() / 2);
        })
        .await;
        drop(store);

        let reopened = open(&fs).await;
        let quarantined = reopened.quarantined_blocks();
        assert_eq!(quarantined.len(), 2, "{quarantined:?}");
        assert!(
            quarantined
                .iter()
                .any(|reason| reason.contains("rollup.json.zst: checksum mismatch")),
            "{quarantined:?}"
        );
        assert!(
            quarantined
                .iter()
                .any(|reason| reason.contains("meta.json does not parse")),
            "{quarantined:?}"
        );
        assert_eq!(spans_counted(&reopened), 0, "no damaged cell is counted");
        let left = blocks[1].dir.clone().join("spans.parquet");
        assert!(
            reopened.shared.object_store.head(&left).await.is_ok(),
            "the block that did not load is left for inspection"
        );
    }
}
