//! Compaction's merge of v2 blocks, on Arrow record batches: each input is read 8,192 rows at a
//! time as a batch, rows are merged in (trace id, start, span id) order by their keys alone, and
//! each output row group is gathered from the inputs' batches in one `interleave` per column and
//! written as it is. No span is decoded into a `Span`, so a merge costs a fraction of decoding
//! and encoding every span (blocks of other versions go through that slower path in
//! `engine/compaction.rs`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, FixedSizeBinaryArray, RecordBatch, TimestampNanosecondArray};
use arrow::compute::interleave_record_batch;
use object_store::ObjectStore;
use object_store::path::Path;

use super::columnar::{COLUMN_SPAN_ID, COLUMN_START_TIME, COLUMN_TRACE_ID};
use super::{BlockHandle, BlockWriteOptions, EncodedSpans, SpansBytes, UploadSink, v2};
use crate::error::StoreError;

/// The merge order: trace id, start, span id (the order blocks are written in).
type MergeKey = (u128, i64, u64);

/// The merge keys of a batch's rows.
fn keys_of(batch: &RecordBatch) -> Result<Vec<MergeKey>, StoreError> {
    let fixed = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|column| column.as_any().downcast_ref::<FixedSizeBinaryArray>())
            .ok_or_else(|| StoreError::corrupt(format!("block column {name:?} is not fixed-size")))
    };
    let trace_ids = fixed(COLUMN_TRACE_ID)?;
    let span_ids = fixed(COLUMN_SPAN_ID)?;
    let starts = batch
        .column_by_name(COLUMN_START_TIME)
        .and_then(|column| column.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| StoreError::corrupt("block column start_time is not a timestamp"))?;
    (0..batch.num_rows())
        .map(|row| {
            let trace = <[u8; 16]>::try_from(trace_ids.value(row))
                .map_err(|_| StoreError::corrupt("trace_id is not 16 bytes"))?;
            let span = <[u8; 8]>::try_from(span_ids.value(row))
                .map_err(|_| StoreError::corrupt("span_id is not 8 bytes"))?;
            Ok((
                u128::from_be_bytes(trace),
                starts.value(row),
                u64::from_be_bytes(span),
            ))
        })
        .collect()
}

/// Rows a merge reads of an input at a time: two pages of 4,096. A whole row group a time, 16
/// inputs held up to 32 row groups of 65,536 decoded rows between two output row groups, about
/// half a gigabyte (and a gigabyte decoded into spans, in the merge of format 1 blocks).
const CHUNK_ROWS: usize = 8_192;

/// Where a merge is in reading one input: its rows in file order, `CHUNK_ROWS` at a time,
/// never across a row group.
pub(crate) struct RowChunks {
    n_row_groups: usize,
    next_row_group: usize,
    /// The rows of the row group being read, and the first of them not yet read.
    row_group_len: usize,
    next_row_in_group: usize,
}

impl RowChunks {
    pub(crate) async fn of(
        handle: &BlockHandle,
        store: &Arc<dyn ObjectStore>,
    ) -> Result<RowChunks, StoreError> {
        Ok(RowChunks {
            n_row_groups: handle.n_row_groups(store).await?,
            next_row_group: 0,
            row_group_len: 0,
            next_row_in_group: 0,
        })
    }

    /// The next rows to read, as a row group and a range of its rows; `None` when every row
    /// was read.
    pub(crate) async fn next(
        &mut self,
        handle: &BlockHandle,
        store: &Arc<dyn ObjectStore>,
    ) -> Result<Option<(usize, Range<usize>)>, StoreError> {
        while self.next_row_in_group >= self.row_group_len {
            if self.next_row_group >= self.n_row_groups {
                return Ok(None);
            }
            self.row_group_len = handle.row_group_len(store, self.next_row_group).await?;
            self.next_row_in_group = 0;
            self.next_row_group += 1;
        }
        let first = self.next_row_in_group;
        let end = (first + CHUNK_ROWS).min(self.row_group_len);
        self.next_row_in_group = end;
        Ok(Some((self.next_row_group - 1, first..end)))
    }
}

/// One input: a block read `CHUNK_ROWS` rows at a time.
struct Input {
    handle: Arc<BlockHandle>,
    chunks: RowChunks,
    /// The current batch's index in the merge's sources, its keys, and the next row.
    source: usize,
    keys: Vec<MergeKey>,
    row: usize,
}

/// Merges the spans of v2 `inputs` into one v2 `spans.parquet` at `path`, uploaded as it is
/// written (memory holds two batches of 8,192 rows per input, the output row group and an upload
/// part, not the file), using at most `cpu_share` of a core (it sleeps after each row group in proportion
/// to the time it worked). `None` when the inputs hold no spans (nothing is written).
pub(crate) async fn merge_v2(
    store: &Arc<dyn ObjectStore>,
    inputs: &[Arc<BlockHandle>],
    options: &BlockWriteOptions,
    cpu_share: f64,
    path: &Path,
) -> Result<Option<EncodedSpans>, StoreError> {
    // Every batch rows are taken from since the last output row group.
    let mut sources: Vec<RecordBatch> = Vec::new();
    let mut cursors: Vec<Input> = Vec::with_capacity(inputs.len());
    for handle in inputs {
        let mut input = Input {
            handle: handle.clone(),
            chunks: RowChunks::of(handle, store).await?,
            source: 0,
            keys: Vec::new(),
            row: 0,
        };
        load_next(store, &mut input, &mut sources).await?;
        cursors.push(input);
    }
    let mut heap: BinaryHeap<Reverse<(MergeKey, usize)>> = cursors
        .iter()
        .enumerate()
        .filter_map(|(index, input)| input.keys.get(input.row).map(|key| Reverse((*key, index))))
        .collect();

    let mut writer: Option<v2::SpansWriter<UploadSink>> = None;
    // The upload the writer takes when it is made (with the first output row group).
    let mut sink: Option<UploadSink> = None;
    let (mut n_spans, mut min_time, mut max_time) = (0u64, i64::MAX, i64::MIN);
    let mut indices: Vec<(usize, usize)> = Vec::with_capacity(options.row_group_rows);
    let mut step = Instant::now();
    loop {
        let next = heap.pop();
        if !indices.is_empty() && (indices.len() >= options.row_group_rows || next.is_none()) {
            if writer.is_none() {
                sink = Some(UploadSink::start(store, path).await?);
            }
            emit(
                &mut sink,
                &mut writer,
                &sources,
                &mut indices,
                options,
                (&mut n_spans, &mut max_time),
            )?;
            // Only the batches the inputs are reading are still needed.
            compact_sources(&mut sources, &mut cursors);
            throttle(&mut step, cpu_share).await;
        }
        let Some(Reverse((key, index))) = next else {
            break;
        };
        let input = &mut cursors[index];
        indices.push((input.source, input.row));
        min_time = min_time.min(key.1);
        input.row += 1;
        if input.row >= input.keys.len() {
            // The batch this row came from stays in `sources` until the next emit.
            load_next(store, input, &mut sources).await?;
        }
        if let Some(key) = input.keys.get(input.row) {
            heap.push(Reverse((*key, index)));
        }
    }
    let Some(writer) = writer else {
        return Ok(None);
    };
    let sink = tokio::task::block_in_place(|| writer.finish())?;
    let (size, crc32) = sink.finish().await?;
    Ok(Some(EncodedSpans {
        bytes: SpansBytes::Uploaded { size, crc32 },
        n_spans,
        min_time: Some(min_time),
        max_time: Some(max_time),
    }))
}

/// Reads an input's next rows (the rest of its row group, or of the next one, up to
/// `CHUNK_ROWS`) into `sources`.
async fn load_next(
    store: &Arc<dyn ObjectStore>,
    input: &mut Input,
    sources: &mut Vec<RecordBatch>,
) -> Result<(), StoreError> {
    input.keys.clear();
    input.row = 0;
    while input.keys.is_empty() {
        let Some((row_group, rows)) = input.chunks.next(&input.handle, store).await? else {
            return Ok(());
        };
        let batch = input.handle.row_group_rows(store, row_group, rows).await?;
        if let Some(batch) = batch {
            let batch = v2::conform(batch)?;
            input.keys = keys_of(&batch)?;
            input.source = sources.len();
            sources.push(batch);
        }
    }
    Ok(())
}

/// Keeps only the batches the cursors are reading, renumbered.
fn compact_sources(sources: &mut Vec<RecordBatch>, cursors: &mut [Input]) {
    let mut kept = Vec::with_capacity(cursors.len());
    for input in cursors.iter_mut() {
        if input.keys.is_empty() {
            continue;
        }
        kept.push(sources[input.source].clone());
        input.source = kept.len() - 1;
    }
    *sources = kept;
}

/// Gathers the pending rows into one batch and writes it as a row group (the first into a
/// writer made on `sink`).
fn emit(
    sink: &mut Option<UploadSink>,
    writer: &mut Option<v2::SpansWriter<UploadSink>>,
    sources: &[RecordBatch],
    indices: &mut Vec<(usize, usize)>,
    options: &BlockWriteOptions,
    (n_spans, max_time): (&mut u64, &mut i64),
) -> Result<(), StoreError> {
    let arrow_error =
        |error: arrow::error::ArrowError| StoreError::corrupt(format!("merging blocks: {error}"));
    let refs: Vec<&RecordBatch> = sources.iter().collect();
    let batch = interleave_record_batch(&refs, indices).map_err(arrow_error)?;
    indices.clear();
    let ends = end_times(&batch)?;
    *max_time = ends.into_iter().fold(*max_time, i64::max);
    *n_spans += batch.num_rows() as u64;
    tokio::task::block_in_place(|| {
        let current = match writer.as_mut() {
            Some(current) => current,
            None => {
                let sink = sink
                    .take()
                    .ok_or_else(|| StoreError::corrupt("merging blocks: no upload to write to"))?;
                writer.insert(v2::SpansWriter::for_batches(&batch, options, sink)?)
            }
        };
        current.write_batch(&batch)
    })
}

/// Each row's end (start + duration).
fn end_times(batch: &RecordBatch) -> Result<Vec<i64>, StoreError> {
    let starts = batch
        .column_by_name(COLUMN_START_TIME)
        .and_then(|column| column.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| StoreError::corrupt("block column start_time is not a timestamp"))?;
    let durations = batch
        .column_by_name(super::columnar::COLUMN_DURATION)
        .and_then(|column| column.as_any().downcast_ref::<arrow::array::Int64Array>())
        .ok_or_else(|| StoreError::corrupt("block column duration_ns is not an integer"))?;
    Ok((0..batch.num_rows())
        .map(|row| starts.value(row).saturating_add(durations.value(row)))
        .collect())
}

/// Sleeps in proportion to the work done since `step`, so that the merge uses at most
/// `cpu_share` of a core.
pub(crate) async fn throttle(step: &mut Instant, cpu_share: f64) {
    let share = cpu_share.clamp(0.01, 1.0);
    if share < 1.0 {
        let worked: Duration = step.elapsed();
        tokio::time::sleep(worked.mul_f64((1.0 - share) / share)).await;
    }
    *step = Instant::now();
}
