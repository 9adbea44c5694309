//! Compaction: the small blocks of an hourly partition (under `large_block_spans`, 2,000,000
//! spans) are merged into few large ones in the background (time-window compaction, as Tempo's
//! compactor does), up to `max_block_spans` a block, which makes a partition cheaper to store
//! (one file compresses better than many small ones) and to read (fewer footers, fewer bloom
//! filters, fewer files per look-up: a trace look-up probes one filter in each block's file).
//!
//! A compaction streams: each input block is read a row group at a time, the rows are merged
//! in (trace id, start, span id) order, and each output is written a row group at a time, so
//! memory holds one row group per input and the outputs' bytes, not the partition. Its CPU
//! share is bounded (`CompactionConfig::cpu_share`): after each row group it sleeps in
//! proportion to the time it worked, so ingest keeps its rate on a small machine. When
//! compactions wait behind the one running (a sustained ingest outruns a quarter of a core),
//! the share grows with them up to `CompactionConfig::max_cpu_share`, so the backlog stops
//! growing instead of leaving ever more blocks for look-ups to read.
//!
//! Commit rules (the same as a flush's, `recovery.rs` applies them on open):
//! - Only blocks whose flush is no longer in the WAL are compacted, so a block's flush siblings
//!   in other partitions never depend on it to count as committed.
//! - A compaction writes one block, whose `meta.json` lists the blocks it replaces
//!   (`compacted_from`) and is the compaction's commit point: on open, a committed compaction's
//!   inputs are deleted (if a crash left any), and an uncommitted one's files, having no meta,
//!   are deleted like any directory without one. So a crash at any point leaves either the
//!   inputs or the output visible, never both, never neither. (One output, not several: a
//!   later compaction may consume some outputs of an earlier one, and a group of outputs whose
//!   members disappear could no longer tell committed from interrupted.)
//! - The inputs are deleted only after the outputs are committed and have replaced them in the
//!   query path (a swap under the blocks' lock), and after `delete_grace`, so that reads that
//!   already hold an input finish.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use muninn_model::Span;
use object_store::ObjectStoreExt;

use super::recovery::cells_to_delta;
use super::retention::delete_prefix;
use super::{Shared, Store};
use crate::block::{
    self, BlockHandle, EncodedSpans, FormatVersion, NewBlock, SpansBytes, StoredCell, put_block,
};
use crate::error::StoreError;
use crate::rollup::{RollupDelta, merge_delta};
use crate::wal;

/// How compaction runs.
#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// Whether the store compacts in the background.
    pub enabled: bool,
    /// How often the background compaction looks for work.
    pub interval: Duration,
    /// A partition is compacted once it holds at least this many blocks that can be.
    pub min_blocks: usize,
    /// At most this many blocks go into one compaction (each holds one row group in memory).
    pub max_inputs: usize,
    /// Outputs hold about this many spans at most.
    pub max_block_spans: u64,
    /// Blocks of this many spans or more (or of half `max_block_spans`, if that is less) are
    /// left alone. 2,000,000 by default, so a flush's blocks (about 870,000 spans under
    /// sustained ingest) are merged; 500,000 leaves them as flushed: a sixth less CPU at 100M
    /// spans for the same Parquet bytes, but four times the blocks, each a read for a trace
    /// look-up (docs/compaction.md).
    pub large_block_spans: u64,
    /// The share of one core a compaction may use when it is the only one waiting, in (0, 1].
    pub cpu_share: f64,
    /// The most of one core compaction may use when it is behind: with `n` compactions
    /// planned and not yet run, the running one uses `cpu_share × n`, up to this.
    pub max_cpu_share: f64,
    /// How long replaced blocks stay readable for queries that already hold them.
    pub delete_grace: Duration,
}

impl CompactionConfig {
    /// The size from which a block is left as it is.
    fn left_alone_from(&self) -> u64 {
        self.large_block_spans.min(self.max_block_spans / 2)
    }
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            enabled: true,
            interval: Duration::from_secs(10),
            min_blocks: 2,
            max_inputs: 16,
            max_block_spans: 4_000_000,
            large_block_spans: 2_000_000,
            cpu_share: 0.25,
            max_cpu_share: 0.75,
            delete_grace: Duration::from_secs(30),
        }
    }
}

/// What compactions did since the store opened, for `StoreStats` (and `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct CompactionTotals {
    pub compactions: AtomicU64,
    /// Spans written by compactions (a span merged twice counts twice).
    pub spans: AtomicU64,
    /// Bytes of the blocks compactions wrote.
    pub bytes: AtomicU64,
}

/// What one compaction round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    pub n_compactions: usize,
    pub n_blocks_in: usize,
    pub n_blocks_out: usize,
    pub n_spans: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl CompactionConfig {
    /// The share of a core a compaction uses while `waiting` compactions (itself included)
    /// are planned and not yet run: `cpu_share` each, up to `max_cpu_share` (never below
    /// `cpu_share`).
    pub fn share_for_backlog(&self, waiting: usize) -> f64 {
        (self.cpu_share * waiting.max(1) as f64).min(self.max_cpu_share.max(self.cpu_share))
    }
}

impl Store {
    /// Compacts every partition that holds at least `min_blocks` blocks whose flush has left
    /// the WAL, `max_inputs` blocks at a time, and deletes what the compactions replaced once
    /// `delete_grace` has passed (at once when it is zero). Each compaction uses the share of
    /// a core that the backlog calls for (`CompactionConfig::share_for_backlog`).
    pub async fn compact(&self) -> Result<CompactionReport, StoreError> {
        self.refuse_if_read_only("compaction")?;
        self.compact_round(Round {
            all_settled: true,
            cpu_share: None,
        })
        .await
    }

    /// The background round: as `compact`, but a partition whose hour has not settled is
    /// compacted only by full compactions of flushed blocks (`plan`).
    pub(crate) async fn compact_in_background(&self) -> Result<CompactionReport, StoreError> {
        self.compact_round(Round {
            all_settled: false,
            cpu_share: None,
        })
        .await
    }

    /// `compact`, using at most `cpu_share` of a core whatever the backlog (the benchmark's
    /// rounds after ingest, when nothing else runs, use 1).
    pub async fn compact_with_cpu_share(
        &self,
        cpu_share: f64,
    ) -> Result<CompactionReport, StoreError> {
        self.compact_round(Round {
            all_settled: true,
            cpu_share: Some(cpu_share),
        })
        .await
    }

    async fn compact_round(&self, round: Round) -> Result<CompactionReport, StoreError> {
        let shared = &self.shared;
        let config = &shared.config.compaction;
        let mut report = CompactionReport::default();
        {
            let _compacting = shared.compaction_lock.lock().await;
            let Ok(version) = FormatVersion::writable(shared.config.block.format_version) else {
                return Ok(report);
            };
            if version == FormatVersion::V1 {
                // The v1 writer writes whole files only.
                return Ok(report);
            }
            let oldest_wal_seq = wal::list_segments(shared.fs.as_ref(), &shared.wal_dir)?
                .first()
                .map_or(u64::MAX, |segment| segment.first_seq);
            let blocks: Vec<Arc<BlockHandle>> = shared
                .blocks
                .read()
                .map(|blocks| blocks.clone())
                .unwrap_or_default();
            let now_unix_seconds = muninn_model::now_unix_nanos() / muninn_model::NANOS_PER_SECOND;
            let jobs = plan(&blocks, oldest_wal_seq, config, |partition| {
                round.all_settled || settled(partition, now_unix_seconds)
            });
            let n_jobs = jobs.len();
            for (n_done, inputs) in jobs.into_iter().enumerate() {
                let cpu_share = round
                    .cpu_share
                    .unwrap_or_else(|| config.share_for_backlog(n_jobs - n_done));
                let Some(outputs) = compact_blocks(shared, version, &inputs, cpu_share).await?
                else {
                    continue;
                };
                let n_spans = outputs
                    .iter()
                    .map(|handle| handle.meta.n_spans)
                    .sum::<u64>();
                let bytes_out = outputs
                    .iter()
                    .map(|handle| block_bytes(handle))
                    .sum::<u64>();
                report.n_compactions += 1;
                report.n_blocks_in += inputs.len();
                report.n_blocks_out += outputs.len();
                report.n_spans += n_spans;
                report.bytes_in += inputs.iter().map(|handle| block_bytes(handle)).sum::<u64>();
                report.bytes_out += bytes_out;
                let totals = &shared.compacted;
                totals.compactions.fetch_add(1, Ordering::Relaxed);
                totals.spans.fetch_add(n_spans, Ordering::Relaxed);
                totals.bytes.fetch_add(bytes_out, Ordering::Relaxed);
                // Each compaction's inputs go as soon as it is committed, not at the end of the
                // round: a round of several compactions at a small share takes minutes, and a
                // later one failing must not leave the earlier ones' inputs behind.
                retire(shared, inputs).await?;
                // The merge's row groups are freed; so are the inputs' filters and footers
                // once no read holds them.
                if let Some(release) = shared.config.release_memory {
                    release(shared.config.keep_resident_bytes());
                }
            }
        }
        Ok(report)
    }
}

/// Deletes the blocks a committed compaction replaced. They are out of the query path already;
/// reads that hold them get `delete_grace` to finish, in the background. (A crash before they
/// are deleted leaves them to recovery, which deletes the blocks a committed compaction
/// replaced.)
async fn retire(shared: &Shared, replaced: Vec<Arc<BlockHandle>>) -> Result<(), StoreError> {
    let grace = shared.config.compaction.delete_grace;
    if grace.is_zero() {
        for input in &replaced {
            delete_block(&shared.object_store, input).await?;
        }
        return Ok(());
    }
    let object_store = shared.object_store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        for input in &replaced {
            if let Err(error) = delete_block(&object_store, input).await {
                tracing::warn!(%error, block = %input.dir, "could not delete a block compaction replaced; the next start deletes it");
            }
        }
    });
    Ok(())
}

fn block_bytes(handle: &BlockHandle) -> u64 {
    handle.meta.spans_bytes + handle.meta.rollup_bytes
}

/// Deletes a block: its `meta.json` first, so that a crash in the middle leaves files that
/// recovery deletes as a directory without a meta, never a block with files missing.
async fn delete_block(
    object_store: &Arc<dyn object_store::ObjectStore>,
    handle: &BlockHandle,
) -> Result<(), StoreError> {
    let meta_path = handle.dir.clone().join("meta.json");
    match object_store.delete(&meta_path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(error) => return Err(StoreError::object_store(&meta_path, error)),
    }
    delete_prefix(object_store, &handle.dir).await
}

/// Which partitions a round compacts in full, and at what share of a core.
#[derive(Debug, Clone, Copy)]
struct Round {
    /// Every partition is compacted as if settled (an explicit round); otherwise only those
    /// whose hour ended `SETTLE_AFTER_SECONDS` ago are, and the others wait for full compactions.
    all_settled: bool,
    /// A fixed share of a core; `None`: the share the backlog calls for.
    cpu_share: Option<f64>,
}

/// How long after its hour ends a partition counts as settled: spans that arrive late still
/// land in it until then, so its small blocks are left to accumulate until it is.
const SETTLE_AFTER_SECONDS: i64 = 10 * 60;

/// Whether the partition that starts at `partition_unix_seconds` is settled at `now_unix_seconds`.
fn settled(partition_unix_seconds: i64, now_unix_seconds: i64) -> bool {
    partition_unix_seconds + block::PARTITION_SECONDS + SETTLE_AFTER_SECONDS <= now_unix_seconds
}

/// The compactions to run: per partition, the blocks that can be compacted (their flush has
/// left the WAL, they are small: under `CompactionConfig::left_alone_from`), oldest first, as many at a time as make an
/// output of at most `max_block_spans` from at most `max_inputs` blocks, when that is at least
/// `min_blocks` of them.
///
/// A partition that is not `settled` still takes flushes, so it is compacted only by full
/// compactions (`max_inputs` blocks, or as many as make an output of `max_block_spans`) of
/// blocks written by flushes: a partial output would be merged again with the next flushes'
/// blocks, and an output again with later ones, rewriting the same spans over and over (at
/// 100M spans of a sustained ingest, outputs of about 2M spans were being rewritten while
/// compaction fell ever further behind). Once settled, whatever is left is compacted. Large
/// blocks (`large_block_spans`, or half of `max_block_spans`), flushed or compacted, stay as
/// they are.
fn plan(
    blocks: &[Arc<BlockHandle>],
    oldest_wal_seq: u64,
    config: &CompactionConfig,
    settled: impl Fn(i64) -> bool,
) -> Vec<Vec<Arc<BlockHandle>>> {
    let mut by_partition: BTreeMap<i64, Vec<Arc<BlockHandle>>> = BTreeMap::new();
    for handle in blocks {
        let meta = &handle.meta;
        // A quarantined block is not read again, and stays as it was found.
        if meta.flush_seq < oldest_wal_seq
            && meta.n_spans < config.left_alone_from()
            && handle.quarantined().is_none()
        {
            by_partition
                .entry(meta.partition_unix_seconds)
                .or_default()
                .push(handle.clone());
        }
    }
    let max_inputs = config.max_inputs.max(2);
    let min_blocks = config.min_blocks.max(2);
    let mut jobs = Vec::new();
    for (partition, mut candidates) in by_partition {
        let settled = settled(partition);
        // An output is merged again only once its partition has settled, and, as every block,
        // only if it is small (`left_alone_from`, above): merging full sets' outputs of 2M+
        // spans again rewrote most of a sustained ingest twice (at 100M spans over OTLP, 1.93
        // spans written for each span ingested), for one block fewer in each few.
        candidates.retain(|handle| handle.meta.compacted_from.is_empty() || settled);
        candidates.sort_by_key(|handle| (handle.meta.min_time_unix_nanos, handle.meta.flush_seq));
        let mut job: Vec<Arc<BlockHandle>> = Vec::new();
        let mut job_spans = 0;
        for handle in candidates {
            let full =
                job.len() >= max_inputs || job_spans + handle.meta.n_spans > config.max_block_spans;
            if full {
                let done = std::mem::take(&mut job);
                if done.len() >= min_blocks {
                    jobs.push(done);
                }
                job_spans = 0;
            }
            job_spans += handle.meta.n_spans;
            job.push(handle);
        }
        // The last job is full only if no block more would fit; else it waits for settling.
        if job.len() >= min_blocks && (settled || job.len() >= max_inputs) {
            jobs.push(job);
        }
    }
    jobs
}

/// One input of a merge: a block read a few thousand rows at a time (`block::RowChunks`).
struct Cursor {
    handle: Arc<BlockHandle>,
    chunks: block::RowChunks,
    spans: std::vec::IntoIter<Span>,
    /// The next span of this input, not yet merged.
    peeked: Option<Span>,
}

/// The merge order: trace id, start, span id (the order blocks are written in).
type MergeKey = (u128, i64, u64);

fn merge_key(span: &Span) -> MergeKey {
    (
        u128::from_be_bytes(span.trace_id.0),
        span.start_unix_nanos,
        u64::from_be_bytes(span.span_id.0),
    )
}

impl Cursor {
    /// Moves to the next span, reading the next rows when these are used up.
    async fn advance(&mut self, shared: &Shared) -> Result<(), StoreError> {
        loop {
            if let Some(span) = self.spans.next() {
                self.peeked = Some(span);
                return Ok(());
            }
            let Some((row_group, rows)) =
                self.chunks.next(&self.handle, &shared.object_store).await?
            else {
                self.peeked = None;
                return Ok(());
            };
            let spans = self
                .handle
                .row_group_spans(&shared.object_store, row_group, rows)
                .await?;
            self.spans = spans.into_iter();
        }
    }
}

/// An output being written.
struct Output {
    writer: block::SpansWriter,
    n_spans: u64,
    min_time: i64,
    max_time: i64,
}

/// Merges `inputs` span by span (decoding each into a `Span` and encoding it again): for
/// inputs of a format the batch merge (`block::merge_v2`) does not read. `None` when they hold
/// no spans.
async fn merge_spans(
    shared: &Shared,
    version: FormatVersion,
    inputs: &[Arc<BlockHandle>],
    cpu_share: f64,
) -> Result<Option<EncodedSpans>, StoreError> {
    let options = &shared.config.block;
    let mut cursors = Vec::with_capacity(inputs.len());
    for handle in inputs {
        let mut cursor = Cursor {
            handle: handle.clone(),
            chunks: block::RowChunks::of(handle, &shared.object_store).await?,
            spans: Vec::new().into_iter(),
            peeked: None,
        };
        cursor.advance(shared).await?;
        cursors.push(cursor);
    }
    let mut heap: BinaryHeap<Reverse<(MergeKey, usize)>> = cursors
        .iter()
        .enumerate()
        .filter_map(|(index, cursor)| {
            cursor
                .peeked
                .as_ref()
                .map(|span| Reverse((merge_key(span), index)))
        })
        .collect();

    let mut output: Option<Output> = None;
    let mut row_group: Vec<Span> = Vec::with_capacity(options.row_group_rows);
    let mut step = Instant::now();
    loop {
        let next = heap.pop();
        if (row_group.len() >= options.row_group_rows || next.is_none()) && !row_group.is_empty() {
            let refs: Vec<&Span> = row_group.iter().collect();
            let current = match output.as_mut() {
                Some(current) => current,
                None => output.insert(Output {
                    writer: version
                        .spans_writer(&refs, options)
                        .ok_or_else(|| StoreError::corrupt("no streaming writer"))??,
                    n_spans: 0,
                    min_time: i64::MAX,
                    max_time: i64::MIN,
                }),
            };
            tokio::task::block_in_place(|| current.writer.write(&refs))?;
            current.n_spans += refs.len() as u64;
            current.min_time = refs
                .iter()
                .map(|span| span.start_unix_nanos)
                .fold(current.min_time, i64::min);
            current.max_time = refs
                .iter()
                .map(|span| span.end_unix_nanos())
                .fold(current.max_time, i64::max);
            row_group.clear();
            // Bounded CPU: sleep in proportion to the work just done.
            block::throttle(&mut step, cpu_share).await;
        }
        let Some(Reverse((_, index))) = next else {
            break;
        };
        let cursor = &mut cursors[index];
        if let Some(span) = cursor.peeked.take() {
            row_group.push(span);
        }
        cursor.advance(shared).await?;
        if let Some(span) = &cursor.peeked {
            heap.push(Reverse((merge_key(span), index)));
        }
    }
    Ok(match output {
        Some(done) => Some(EncodedSpans {
            bytes: SpansBytes::ToPut(tokio::task::block_in_place(|| done.writer.finish())?),
            n_spans: done.n_spans,
            min_time: Some(done.min_time),
            max_time: Some(done.max_time),
        }),
        None => None,
    })
}

/// Merges `inputs` into one new block, commits it, and swaps it into the query path.
/// Returns `None` (and deletes what it wrote) when an input left the query path meanwhile
/// (retention dropped its partition).
async fn compact_blocks(
    shared: &Shared,
    version: FormatVersion,
    inputs: &[Arc<BlockHandle>],
    cpu_share: f64,
) -> Result<Option<Vec<Arc<BlockHandle>>>, StoreError> {
    let options = &shared.config.block;
    let partition_unix_seconds = inputs[0].meta.partition_unix_seconds;
    let compaction_id = uuid::Uuid::new_v4().simple().to_string();
    let flush_seq = inputs
        .iter()
        .map(|handle| handle.meta.flush_seq)
        .max()
        .unwrap_or_default();
    let compacted_from: Vec<String> = inputs
        .iter()
        .map(|handle| handle.meta.block_id.clone())
        .collect();

    // Roll-up cells: the inputs' cells added up, all in the last output.
    let mut delta = RollupDelta::default();
    for input in inputs {
        merge_delta(
            &mut delta,
            cells_to_delta(input.read_rollup(&shared.object_store).await?),
        );
    }
    let mut cells: Vec<StoredCell> = delta
        .into_iter()
        .map(|((minute, key), cell)| StoredCell {
            minute,
            key,
            cell: cell.cell,
            first_span: cell.first_span.map(|first| *first),
        })
        .collect();
    cells.sort_by(|left, right| (left.minute, &left.key).cmp(&(right.minute, &right.key)));

    let block_id = block::new_block_id();
    let spans = if version == FormatVersion::V2
        && inputs
            .iter()
            .all(|input| input.meta.format_version == FormatVersion::V2.number())
    {
        // Streamed into the new block's directory: it becomes part of a block only when the
        // meta below is written.
        let path = block::spans_path(partition_unix_seconds, &block_id);
        block::merge_v2(&shared.object_store, inputs, options, cpu_share, &path).await?
    } else {
        merge_spans(shared, version, inputs, cpu_share).await?
    };
    // The one output's meta is the compaction's commit point.
    let meta = put_block(
        &shared.object_store,
        NewBlock {
            block_id,
            partition_unix_seconds,
            version,
            spans,
            cells,
            flush_seq,
            flush_id: compaction_id,
            flush_n_blocks: 1,
            compacted_from,
        },
    )
    .await?;
    let written = vec![BlockHandle::new(meta)];

    // Footers and bloom filters loaded before the swap, as a flush does: otherwise the first
    // look-up after a compaction opens each output (at 100M spans, 27 blocks and 239 MB of
    // filters took the first look-up 454 ms).
    let outputs: Vec<Arc<BlockHandle>> = written.into_iter().map(Arc::new).collect();
    for handle in &outputs {
        let room = shared.trace_filter_room(inputs);
        let _ = handle.warm(&shared.object_store, room).await;
    }
    // Swap: the outputs replace the inputs in one step, if every input is still there.
    let swapped = match shared.blocks.write() {
        Ok(mut blocks) => {
            let all_present = inputs
                .iter()
                .all(|input| blocks.iter().any(|handle| Arc::ptr_eq(handle, input)));
            if all_present {
                blocks.retain(|handle| !inputs.iter().any(|input| Arc::ptr_eq(handle, input)));
                blocks.extend(outputs.iter().cloned());
            }
            all_present
        }
        Err(_) => false,
    };
    shared.count_index_bytes();
    if !swapped {
        for handle in &outputs {
            delete_block(&shared.object_store, handle).await?;
        }
        return Ok(None);
    }
    Ok(Some(outputs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockMeta;

    const PARTITION: i64 = 1_764_000_000 / 3600 * 3600;

    /// A block of `PARTITION` with `n_spans` spans, the `number`th flushed (or, `compacted`,
    /// written by a compaction).
    fn block(number: u64, n_spans: u64, compacted: bool) -> Arc<BlockHandle> {
        Arc::new(BlockHandle::new(BlockMeta {
            format_version: 2,
            block_id: format!("block-{number}"),
            partition_unix_seconds: PARTITION,
            min_time_unix_nanos: (PARTITION + number as i64) * muninn_model::NANOS_PER_SECOND,
            max_time_unix_nanos: (PARTITION + number as i64) * muninn_model::NANOS_PER_SECOND,
            n_spans,
            spans_bytes: 1,
            rollup_bytes: 1,
            flush_seq: number,
            flush_id: format!("flush-{number}"),
            flush_n_blocks: 1,
            compacted_from: if compacted {
                vec!["an-input".into()]
            } else {
                Vec::new()
            },
            spans_crc32: None,
            rollup_crc32: None,
            rollup_zstd: false,
        }))
    }

    /// Flushes left alone from 500,000 spans, as a node set for CPU rather than for trace
    /// look-ups would have it.
    fn flushes_left_alone() -> CompactionConfig {
        CompactionConfig {
            large_block_spans: 500_000,
            ..CompactionConfig::default()
        }
    }

    /// The block numbers of each planned compaction.
    fn planned(blocks: &[Arc<BlockHandle>], settled: bool) -> Vec<Vec<String>> {
        plan(blocks, u64::MAX, &flushes_left_alone(), |_| settled)
            .iter()
            .map(|job| {
                job.iter()
                    .map(|handle| handle.meta.block_id.clone())
                    .collect()
            })
            .collect()
    }

    fn names(numbers: std::ops::RangeInclusive<u64>) -> Vec<String> {
        numbers.map(|number| format!("block-{number}")).collect()
    }

    #[test]
    fn a_partition_still_taking_flushes_waits_for_a_full_compaction() {
        let five: Vec<_> = (1..=5).map(|n| block(n, 200_000, false)).collect();
        assert!(planned(&five, false).is_empty());
        assert_eq!(planned(&five, true), vec![names(1..=5)]);
        // Sixteen inputs make a full compaction; the seventeenth waits for the next.
        let seventeen: Vec<_> = (1..=17).map(|n| block(n, 200_000, false)).collect();
        assert_eq!(planned(&seventeen, false), vec![names(1..=16)]);
        // So do as many as make an output of 4M spans (8 of 450,000; a ninth would pass it).
        let big: Vec<_> = (1..=10).map(|n| block(n, 450_000, false)).collect();
        assert_eq!(planned(&big, false), vec![names(1..=8)]);
        assert_eq!(planned(&big, true), vec![names(1..=8), names(9..=10)]);
    }

    #[test]
    fn an_output_is_merged_again_only_once_its_partition_has_settled() {
        let mut blocks = vec![block(1, 400_000, true)];
        blocks.extend((2..=17).map(|n| block(n, 100_000, false)));
        assert_eq!(planned(&blocks, false), vec![names(2..=17)]);
        // Settled, the output is an input again (the seventeenth block, alone, is no job).
        assert_eq!(planned(&blocks, true), vec![names(1..=16)]);
    }

    /// An output of 500,000 spans or more is never merged again, settled or not: its spans are
    /// written once by compaction. A flushed block that large (what a flush writes under
    /// sustained ingest) is never merged at all, and one just under it is.
    #[test]
    fn a_large_block_is_left_alone() {
        let mut blocks = vec![block(1, 500_000, true)];
        blocks.extend((2..=6).map(|n| block(n, 100_000, false)));
        assert!(planned(&blocks, false).is_empty());
        assert_eq!(planned(&blocks, true), vec![names(2..=6)]);
        let mut blocks = vec![block(1, 500_000, false)];
        blocks.extend((2..=6).map(|n| block(n, 100_000, false)));
        assert_eq!(planned(&blocks, true), vec![names(2..=6)]);
        blocks[0] = block(1, 499_999, false);
        assert_eq!(planned(&blocks, true), vec![names(1..=6)]);
        // With small outputs, half an output is large already.
        let config = CompactionConfig {
            max_block_spans: 400_000,
            ..flushes_left_alone()
        };
        blocks[0] = block(1, 200_000, false);
        let jobs = plan(&blocks, u64::MAX, &config, |_| true);
        let first: Vec<&str> = jobs[0]
            .iter()
            .map(|handle| &*handle.meta.block_id)
            .collect();
        assert_eq!(jobs.len(), 1);
        assert_eq!(first, ["block-2", "block-3", "block-4", "block-5"]);
    }

    /// By default, blocks of 2,000,000 spans (half an output) or more are left alone, and a
    /// flush's blocks are merged.
    #[test]
    fn by_default_a_flush_is_merged_and_half_an_output_left_alone() {
        let config = CompactionConfig::default();
        let mut blocks = vec![block(1, 2_000_000, false)];
        blocks.extend((2..=4).map(|n| block(n, 870_000, false)));
        let jobs = plan(&blocks, u64::MAX, &config, |_| true);
        let planned: Vec<Vec<&str>> = jobs
            .iter()
            .map(|job| job.iter().map(|handle| &*handle.meta.block_id).collect())
            .collect();
        assert_eq!(planned, [["block-2", "block-3", "block-4"]]);
        blocks[0] = block(1, 1_999_999, false);
        let jobs = plan(&blocks, u64::MAX, &config, |_| true);
        assert_eq!(jobs[0][0].meta.block_id, "block-1");
    }

    #[test]
    fn a_quarantined_block_is_never_an_input() {
        let blocks: Vec<_> = (1..=3).map(|n| block(n, 100_000, false)).collect();
        blocks[1].set_quarantined("spans.parquet fails its checksum".into());
        assert_eq!(
            planned(&blocks, true),
            vec![vec!["block-1".to_string(), "block-3".to_string()]]
        );
    }

    #[test]
    fn a_partition_settles_ten_minutes_after_its_hour() {
        let end = PARTITION + block::PARTITION_SECONDS;
        assert!(!settled(PARTITION, end));
        assert!(!settled(PARTITION, end + 599));
        assert!(settled(PARTITION, end + 600));
    }

    /// Alone, a compaction keeps to its quarter of a core; behind, each compaction waiting adds
    /// a quarter, up to three quarters; a cap set below the base share does not lower it.
    #[test]
    fn the_share_grows_with_the_backlog_up_to_its_cap() {
        let config = CompactionConfig::default();
        let shares: Vec<f64> = (0..=5)
            .map(|waiting| config.share_for_backlog(waiting))
            .collect();
        assert_eq!(shares, vec![0.25, 0.25, 0.5, 0.75, 0.75, 0.75]);
        let capped_low = CompactionConfig {
            max_cpu_share: 0.1,
            ..CompactionConfig::default()
        };
        assert_eq!(capped_low.share_for_backlog(4), 0.25);
    }
}
