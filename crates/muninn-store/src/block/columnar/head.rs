//! Spans in memory as the columns a block is written from: each appended batch of the head is
//! held as one record batch of the written format's schema (built once, when it is appended),
//! searched with the same row filters as a block's row groups, decoded back into spans only
//! for the rows a query selects, and handed to the flush as columns, which sorts and writes
//! them without rebuilding rows.

use arrow::array::{
    Array, FixedSizeBinaryArray, RecordBatch, TimestampNanosecondArray, UInt32Array,
};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::SchemaRef;
use muninn_model::{Span, TraceId};

use super::predicate::{self, Ids16, Leaves, Predicate};
use super::{
    COLUMN_DURATION, COLUMN_EVENT_ID, COLUMN_EVENT_ID_TEXT, COLUMN_KIND, COLUMN_LINK_TRACE_IDS,
    COLUMN_NAME, COLUMN_SERVICE, COLUMN_START_TIME, COLUMN_TRACE_ID, EventIdLayout, decode,
    encode_batch,
};
use crate::block::format::{SpanFields, SpanSelection};
use crate::error::StoreError;
use crate::scan::{Operation, SpanQuery};

mod record;

/// One appended batch's spans as columns, in the order they arrived.
#[derive(Debug, Clone)]
pub(crate) struct HeadColumns {
    batch: RecordBatch,
    leaves: HeadLeaves,
    /// The memory the columns hold: their buffers' capacities when built here, the IPC
    /// messages' bodies their arrays share when read from a WAL record.
    memory: u64,
}

/// Where a head batch's row filters find their columns: a column's place in the schema (the
/// written format's columns are flat, so a column is one Parquet leaf, at the same place).
#[derive(Debug, Clone, Copy)]
struct HeadLeaves {
    leaves: Leaves,
    event_id_text: usize,
    link_trace_ids: usize,
}

fn column_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(format!("spans in memory: {error}"))
}

impl HeadLeaves {
    fn of(schema: &SchemaRef) -> Result<Self, StoreError> {
        let at = |name: &str| schema.index_of(name).map_err(column_error);
        Ok(HeadLeaves {
            leaves: Leaves {
                trace_id: at(COLUMN_TRACE_ID)?,
                event_id: at(COLUMN_EVENT_ID)?,
                start_time: at(COLUMN_START_TIME)?,
                duration: at(COLUMN_DURATION)?,
                service: at(COLUMN_SERVICE)?,
                name: at(COLUMN_NAME)?,
                kind: at(COLUMN_KIND)?,
            },
            event_id_text: at(COLUMN_EVENT_ID_TEXT)?,
            link_trace_ids: at(COLUMN_LINK_TRACE_IDS)?,
        })
    }

    /// The row filter of `selection`, as a block's read builds it for a row group.
    fn predicate(&self, selection: &SpanSelection) -> Predicate {
        let leaves = &self.leaves;
        match selection {
            SpanSelection::Trace(trace_id) => {
                predicate::id_in(leaves.trace_id, Ids16::new([trace_id.0]), "trace_id")
            }
            SpanSelection::Traces(traces) => predicate::trace_id_in(leaves.trace_id, traces),
            SpanSelection::Event(event_id) => self.events(std::iter::once(&**event_id)),
            SpanSelection::Events(event_ids) => self.events(event_ids.iter().map(String::as_str)),
            SpanSelection::LinkingTo(targets) => predicate::links_to(self.link_trace_ids, targets),
            SpanSelection::Matching(query) => predicate::search(leaves, query),
        }
    }

    fn events<'a>(&self, event_ids: impl Iterator<Item = &'a str>) -> Predicate {
        let (uuids, texts) = super::file::split_event_ids(event_ids);
        predicate::uuid_or_text_in(self.leaves.event_id, self.event_id_text, uuids, texts)
    }
}

impl HeadColumns {
    /// Builds the columns of `spans` in `schema` (the written format's, with event ids as
    /// 16-byte UUIDs or text).
    pub(crate) fn new(spans: &[Span], schema: &SchemaRef) -> Result<Self, StoreError> {
        let rows: Vec<&Span> = spans.iter().collect();
        let batch = encode_batch(&rows, schema, EventIdLayout::UuidOrText)?;
        // Kept for minutes: the room the builders took ahead is handed back.
        let (schema, mut columns, _) = batch.into_parts();
        for column in &mut columns {
            column.shrink_to_fit();
        }
        let leaves = HeadLeaves::of(&schema)?;
        let batch = RecordBatch::try_new(schema, columns).map_err(column_error)?;
        let memory = batch.get_array_memory_size() as u64;
        Ok(HeadColumns {
            batch,
            leaves,
            memory,
        })
    }

    /// The record batch, for a flush.
    pub(crate) fn into_batch(self) -> RecordBatch {
        self.batch
    }

    pub(crate) fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// The memory the columns hold.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.memory
    }

    /// Every span, in the order they arrived.
    pub(crate) fn spans(&self) -> Result<Vec<Span>, StoreError> {
        decode::spans(&self.batch, SpanFields::All)
    }

    /// The rows `predicate` keeps, or `None` when it keeps none.
    fn rows(&self, mut predicate: Predicate) -> Result<Option<RecordBatch>, StoreError> {
        let mut leaves = predicate.leaves.clone();
        leaves.sort_unstable();
        leaves.dedup();
        let columns = self.batch.project(&leaves).map_err(column_error)?;
        let keep = (predicate.keep)(columns).map_err(column_error)?;
        if keep.true_count() == 0 {
            return Ok(None);
        }
        if keep.true_count() == keep.len() {
            return Ok(Some(self.batch.clone()));
        }
        filter_record_batch(&self.batch, &keep)
            .map(Some)
            .map_err(column_error)
    }

    /// The spans `selection` selects, whole (memory holds every field), in arrival order.
    pub(crate) fn select(&self, selection: &SpanSelection) -> Result<Vec<Span>, StoreError> {
        let predicate = self.leaves.predicate(selection);
        match self.rows(predicate)? {
            Some(rows) => decode::spans(&rows, SpanFields::All),
            None => Ok(Vec::new()),
        }
    }

    /// The trace id and start of every span that matches `query`'s columns.
    pub(crate) fn trace_starts(
        &self,
        query: &SpanQuery,
    ) -> Result<Vec<(TraceId, i64)>, StoreError> {
        let predicate = predicate::search(&self.leaves.leaves, query);
        match self.rows(predicate)? {
            Some(rows) => decode::trace_starts(&rows),
            None => Ok(Vec::new()),
        }
    }

    /// The distinct (service, name, kind) of the spans that start in `[from, to)`.
    pub(crate) fn operations(
        &self,
        from_unix_nanos: i64,
        to_unix_nanos: i64,
    ) -> Result<Vec<Operation>, StoreError> {
        let query = SpanQuery::new(from_unix_nanos, to_unix_nanos, 0);
        let predicate = predicate::search(&self.leaves.leaves, &query);
        match self.rows(predicate)? {
            Some(rows) => decode::operations(&[rows]),
            None => Ok(Vec::new()),
        }
    }

    /// The rows to write into each hourly partition (`partition_of` a row's start) among those
    /// `keep` keeps (all without it): the whole batch when every row goes to one partition.
    pub(crate) fn by_partition(
        &self,
        partition_of: impl Fn(i64) -> i64,
        keep: Option<&dyn Fn(&TraceId) -> bool>,
    ) -> Result<Vec<(i64, RecordBatch)>, StoreError> {
        let starts = typed::<TimestampNanosecondArray>(&self.batch, COLUMN_START_TIME)?;
        let trace_ids = typed::<FixedSizeBinaryArray>(&self.batch, COLUMN_TRACE_ID)?;
        let mut rows: Vec<(i64, u32)> = Vec::with_capacity(self.len());
        for row in 0..self.len() {
            if let Some(keep) = keep {
                let trace_id = <[u8; 16]>::try_from(trace_ids.value(row))
                    .map_err(|_| column_error("a trace id is not 16 bytes"))?;
                if !keep(&TraceId(trace_id)) {
                    continue;
                }
            }
            rows.push((partition_of(starts.value(row)), row as u32));
        }
        if rows.len() == self.len() && rows.windows(2).all(|pair| pair[0].0 == pair[1].0) {
            return Ok(rows
                .first()
                .map(|(partition, _)| vec![(*partition, self.batch.clone())])
                .unwrap_or_default());
        }
        rows.sort_unstable();
        let mut parts = Vec::new();
        for group in rows.chunk_by(|left, right| left.0 == right.0) {
            let indices = UInt32Array::from_iter_values(group.iter().map(|(_, row)| *row));
            let part = take_record_batch(&self.batch, &indices).map_err(column_error)?;
            parts.push((group[0].0, part));
        }
        Ok(parts)
    }
}

fn typed<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, StoreError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<T>())
        .ok_or_else(|| column_error(format!("column {name:?} is missing or of another type")))
}

/// The spans of batches of head columns, for a format that is written from rows (v1).
pub(crate) fn spans_of(batches: &[RecordBatch]) -> Result<Vec<Span>, StoreError> {
    let mut spans = Vec::new();
    for batch in batches {
        spans.extend(decode::spans(batch, SpanFields::All)?);
    }
    Ok(spans)
}

/// The distinct (service, name, kind) of batches of head columns, sorted.
pub(crate) fn operations_of(batches: &[RecordBatch]) -> Result<Vec<Operation>, StoreError> {
    decode::operations(batches)
}

/// The number of rows, first start and last end of batches of head columns.
pub(crate) fn time_range(
    batches: &[RecordBatch],
) -> Result<(u64, Option<i64>, Option<i64>), StoreError> {
    let mut n_rows = 0;
    let mut min_start: Option<i64> = None;
    let mut max_end: Option<i64> = None;
    for batch in batches {
        let starts = typed::<TimestampNanosecondArray>(batch, COLUMN_START_TIME)?;
        let durations = typed::<arrow::array::Int64Array>(batch, COLUMN_DURATION)?;
        n_rows += batch.num_rows() as u64;
        for (start, duration) in starts.values().iter().zip(durations.values().iter()) {
            min_start = Some(min_start.map_or(*start, |min| min.min(*start)));
            let end = start.saturating_add(*duration);
            max_end = Some(max_end.map_or(end, |max| max.max(end)));
        }
    }
    Ok((n_rows, min_start, max_end))
}
