//! Spans to a v2 `spans.parquet`: the writer's settings (zstd, row groups, page statistics,
//! bloom filters sized for the ids of each row group, an encoding per column chosen by
//! measurement) over the record batches v1 and v2 share. What this file writes is what the
//! golden v2 directory holds: a change here is a format change.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{
    Array, DictionaryArray, FixedSizeBinaryArray, ListArray, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt32Array,
};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::Int32Type;
use muninn_model::Span;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::schema::SCHEMA;
use crate::block::BlockWriteOptions;
use crate::block::columnar::{
    self, COLUMN_DURATION, COLUMN_EVENT_ID, COLUMN_EVENT_ID_TEXT, COLUMN_KIND,
    COLUMN_LINK_TRACE_IDS, COLUMN_LINKS, COLUMN_NAME, COLUMN_PARENT_SPAN_ID, COLUMN_SERVICE,
    COLUMN_SPAN_ID, COLUMN_START_TIME, COLUMN_TRACE_ID, EventIdLayout, canonical_uuid,
    link_span_ids_leaf_path, link_trace_ids_leaf_path,
};
use crate::block::hll::DistinctEstimate;
use crate::error::StoreError;

/// Distinct ids of a file's spans, for sizing its bloom filters.
struct DistinctIds {
    traces: usize,
    uuid_events: usize,
    text_events: usize,
    linked_traces: usize,
}

impl DistinctIds {
    /// The distinct ids of a batch of this format's columns, its rows sorted by trace id.
    fn of_batch(batch: &RecordBatch) -> Result<Self, StoreError> {
        let trace_ids = fixed_column(batch, COLUMN_TRACE_ID)?;
        let traces = (1..trace_ids.len())
            .filter(|&row| trace_ids.value(row) != trace_ids.value(row - 1))
            .count()
            + 1;
        Self::with_traces(batch, traces)
    }

    /// The distinct ids of a batch of this format's columns in any order, `traces` of them
    /// counted already.
    fn with_traces(batch: &RecordBatch, traces: usize) -> Result<Self, StoreError> {
        let uuid_events = distinct(fixed_column(batch, COLUMN_EVENT_ID)?.iter().flatten());
        let text_events = batch
            .column_by_name(COLUMN_EVENT_ID_TEXT)
            .and_then(|column| column.as_any().downcast_ref::<StringArray>())
            .map_or(0, |texts| distinct(texts.iter().flatten()));
        let linked_traces = batch
            .column_by_name(COLUMN_LINK_TRACE_IDS)
            .and_then(|column| column.as_any().downcast_ref::<ListArray>())
            .and_then(|lists| {
                lists
                    .values()
                    .as_any()
                    .downcast_ref::<FixedSizeBinaryArray>()
                    .map(|values| distinct(values.iter().flatten()))
            })
            .unwrap_or(0);
        Ok(DistinctIds {
            traces,
            uuid_events,
            text_events,
            linked_traces,
        })
    }

    fn of(spans: &[&Span]) -> Self {
        // Rows are sorted by trace id, so equal trace ids are adjacent.
        let traces = spans
            .windows(2)
            .filter(|pair| pair[0].trace_id != pair[1].trace_id)
            .count()
            + 1;
        let mut uuid_events = DistinctEstimate::default();
        let mut text_events = DistinctEstimate::default();
        for event_id in spans
            .iter()
            .filter_map(|span| span.event.event_id.as_deref())
        {
            match canonical_uuid(event_id) {
                Some(bytes) => uuid_events.insert(&bytes[..]),
                None => text_events.insert(event_id.as_bytes()),
            }
        }
        let linked_traces = distinct(
            spans
                .iter()
                .flat_map(|span| span.links.iter().map(|link| &link.trace_id.0)),
        );
        DistinctIds {
            traces,
            uuid_events: uuid_events.count(),
            text_events: text_events.count(),
            linked_traces,
        }
    }
}

/// A fixed-size binary column of a batch of this format.
fn fixed_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a FixedSizeBinaryArray, StoreError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .ok_or_else(|| StoreError::corrupt(format!("column {name:?} is not fixed-size")))
}

/// The estimated number of distinct values of `values`.
fn distinct<T: AsRef<[u8]>>(values: impl Iterator<Item = T>) -> usize {
    let mut estimate = DistinctEstimate::default();
    for value in values {
        estimate.insert(value.as_ref());
    }
    estimate.count()
}

impl DistinctIds {
    /// The distinct ids to size one row group's bloom filters for, when `self` was counted on
    /// `n_spans` spans and row groups hold `row_group_rows`: spread evenly, a quarter of
    /// headroom, at least 16. A `sample` smaller than a row group stands for full ones.
    fn per_row_group(&self, n_spans: usize, row_group_rows: usize, sample: bool) -> DistinctIds {
        let n_row_groups = n_spans.div_ceil(row_group_rows).max(1);
        let scale = |count: usize| {
            let per = if sample && n_spans < row_group_rows {
                (count as u128 * row_group_rows as u128).div_ceil(n_spans.max(1) as u128) as usize
            } else {
                count.div_ceil(n_row_groups)
            };
            (per * 5 / 4).max(16)
        };
        DistinctIds {
            traces: scale(self.traces),
            uuid_events: scale(self.uuid_events),
            text_events: scale(self.text_events),
            linked_traces: scale(self.linked_traces),
        }
    }
}

/// The writer's settings, with bloom filters sized for `per_row_group` distinct ids.
fn properties(
    per_row_group: &DistinctIds,
    options: &BlockWriteOptions,
) -> Result<WriterProperties, StoreError> {
    let level = ZstdLevel::try_new(options.zstd_level)
        .map_err(|error| StoreError::corrupt(format!("zstd level: {error}")))?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(options.row_group_rows))
        // Pages of at most `page_rows` rows: a look-up decompresses only the pages holding
        // its rows (the offset index locates them), not the whole row group's column.
        .set_data_page_row_count_limit(options.page_rows)
        .set_write_batch_size(options.page_rows.min(1024))
        // Statistics per row group for every column; per page (the column index) for
        // `trace_id` alone, which is sorted within a row group, so a trace look-up decodes
        // only the pages whose range holds its trace. Page statistics of the other columns
        // would only take memory in every open block.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from(COLUMN_TRACE_ID), EnabledStatistics::Page)
        .set_created_by(format!(
            "muninn {} (block format v2)",
            env!("CARGO_PKG_VERSION")
        ));
    // No statistics at all where a row group's smallest and largest value prune nothing: random
    // ids (found through bloom filters), JSON and free text. Computing them compared every
    // value with the row group's extremes (about 2% of the server's CPU at 3M spans of the
    // random workload) for footers nothing read.
    for path in [
        ColumnPath::from(COLUMN_SPAN_ID),
        ColumnPath::from(COLUMN_PARENT_SPAN_ID),
        ColumnPath::from(COLUMN_EVENT_ID),
        ColumnPath::from(COLUMN_EVENT_ID_TEXT),
        ColumnPath::from("status_message"),
        ColumnPath::from("message_id"),
        ColumnPath::from("attributes"),
        ColumnPath::from("resource"),
        ColumnPath::from(COLUMN_LINKS),
        link_trace_ids_leaf_path(),
        link_span_ids_leaf_path(),
    ] {
        builder = builder.set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    let scattered = options.scattered_id_bloom_filter_fpp;
    for (path, n_distinct, fpp) in [
        (
            ColumnPath::from(COLUMN_TRACE_ID),
            per_row_group.traces,
            options.bloom_filter_fpp,
        ),
        (
            ColumnPath::from(COLUMN_EVENT_ID),
            per_row_group.uuid_events,
            scattered,
        ),
        (
            ColumnPath::from(COLUMN_EVENT_ID_TEXT),
            per_row_group.text_events,
            scattered,
        ),
        (
            link_trace_ids_leaf_path(),
            per_row_group.linked_traces,
            scattered,
        ),
    ] {
        builder = builder
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path.clone(), fpp)
            .set_column_bloom_filter_max_ndv(path, n_distinct as u64);
    }
    // Measured on the benchmark's spans (docs/storage.md): times and durations split into
    // byte streams (5.2 and 3.2 bytes a span, against 6.7 and 3.6 plain); parent span ids as
    // delta byte arrays (a trace's consumers repeat their parent: 3.2 against 5.4). Offsets
    // stay plain (delta binary packing measured larger, 1.5 against 1.0).
    for (column, encoding) in [
        (COLUMN_START_TIME, Some(Encoding::BYTE_STREAM_SPLIT)),
        (COLUMN_DURATION, Some(Encoding::BYTE_STREAM_SPLIT)),
        (COLUMN_PARENT_SPAN_ID, Some(Encoding::DELTA_BYTE_ARRAY)),
        (COLUMN_SPAN_ID, None),
        ("message_id", None),
        ("status_message", None),
        ("offset", None),
        (COLUMN_LINKS, None),
    ] {
        let path = ColumnPath::from(column);
        builder = builder.set_column_dictionary_enabled(path.clone(), false);
        if let Some(encoding) = encoding {
            builder = builder.set_column_encoding(path, encoding);
        }
    }
    // Zstd gains nothing on random span ids and linked trace ids, and under 1.4× on the
    // dictionary-encoded columns; left uncompressed, a read of them creates no zstd context
    // and decompresses nothing (measured at 4M spans of the random workload: trace by id p99
    // 30.4 → 26.0 ms, server CPU 8.18 → 7.95 µs a span while ingesting, at rest +0.4 B a span).
    for column in [
        COLUMN_SPAN_ID,
        COLUMN_SERVICE,
        COLUMN_NAME,
        COLUMN_KIND,
        "status_code",
        "event_type",
        "schema",
        "stream",
        "broker",
        "partition",
        "resource",
    ] {
        builder =
            builder.set_column_compression(ColumnPath::from(column), Compression::UNCOMPRESSED);
    }
    // Linked span ids: random, as span ids (a dictionary of random values only grows).
    builder = builder
        .set_column_dictionary_enabled(link_span_ids_leaf_path(), false)
        .set_column_compression(link_span_ids_leaf_path(), Compression::UNCOMPRESSED)
        .set_column_compression(link_trace_ids_leaf_path(), Compression::UNCOMPRESSED);
    Ok(builder.build())
}

fn parquet_error(error: parquet::errors::ParquetError) -> StoreError {
    StoreError::corrupt(format!("writing parquet: {error}"))
}

/// A `spans.parquet` written a row group at a time from spans already in order (compaction's
/// merge), with bloom filters sized from the first row group's ids, into `W`: bytes in memory,
/// or an upload that takes them a part at a time (`block::UploadSink`).
pub(crate) struct SpansWriter<W: Write + Send = Vec<u8>> {
    writer: ArrowWriter<W>,
    row_group_rows: usize,
}

impl SpansWriter<Vec<u8>> {
    /// A writer into memory whose bloom filters are sized for row groups like `sample`.
    pub(crate) fn new(sample: &[&Span], options: &BlockWriteOptions) -> Result<Self, StoreError> {
        let per_row_group =
            DistinctIds::of(sample).per_row_group(sample.len(), options.row_group_rows, true);
        Self::with_blooms_for(
            &per_row_group,
            options,
            Vec::with_capacity(options.row_group_rows * 40),
        )
    }
}

impl<W: Write + Send> SpansWriter<W> {
    /// A writer into `sink` whose bloom filters are sized for row groups like `sample` (a
    /// merged batch).
    pub(crate) fn for_batches(
        sample: &RecordBatch,
        options: &BlockWriteOptions,
        sink: W,
    ) -> Result<Self, StoreError> {
        let per_row_group = DistinctIds::of_batch(sample)?.per_row_group(
            sample.num_rows(),
            options.row_group_rows,
            true,
        );
        Self::with_blooms_for(&per_row_group, options, sink)
    }

    /// A writer into `sink` whose bloom filters are sized for `per_row_group` distinct ids.
    fn with_blooms_for(
        per_row_group: &DistinctIds,
        options: &BlockWriteOptions,
        sink: W,
    ) -> Result<Self, StoreError> {
        let writer = ArrowWriter::try_new(
            sink,
            SCHEMA.clone(),
            Some(properties(per_row_group, options)?),
        )
        .map_err(parquet_error)?;
        Ok(SpansWriter {
            writer,
            row_group_rows: options.row_group_rows,
        })
    }

    /// Appends a batch of this format's columns whose rows sort after every row written so
    /// far.
    pub(crate) fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        // The file's schema, whatever metadata the batch's carries.
        let batch = RecordBatch::try_new(SCHEMA.clone(), batch.columns().to_vec())
            .map_err(|error| StoreError::corrupt(format!("a merged batch: {error}")))?;
        self.writer.write(&batch).map_err(parquet_error)
    }

    /// Appends spans that sort after every span written so far.
    pub(crate) fn write(&mut self, spans: &[&Span]) -> Result<(), StoreError> {
        for chunk in spans.chunks(self.row_group_rows) {
            let batch = columnar::encode_batch(chunk, &SCHEMA, EventIdLayout::UuidOrText)?;
            self.writer.write(&batch).map_err(parquet_error)?;
        }
        Ok(())
    }

    /// Closes the file and returns its sink (for a `Vec<u8>`, the file's bytes).
    pub(crate) fn finish(self) -> Result<W, StoreError> {
        self.writer.into_inner().map_err(parquet_error)
    }
}

/// Encodes spans, in the order they arrived, as one Parquet file whose rows are sorted by trace
/// id, then start time, then span id.
pub(crate) fn encode_file(
    spans: &[&Span],
    options: &BlockWriteOptions,
) -> Result<Vec<u8>, StoreError> {
    let arrived = columnar::encode_batch(spans, &SCHEMA, EventIdLayout::UuidOrText)?;
    write_sorted(&arrived, options)
}

/// Encodes batches of this format's columns (the head's, as appended), rows in any order, as
/// one Parquet file whose rows are sorted by trace id, then start time, then span id.
pub(crate) fn encode_columns(
    batches: &[RecordBatch],
    options: &BlockWriteOptions,
) -> Result<Vec<u8>, StoreError> {
    let arrived = match batches {
        [only] => only.clone(),
        _ => distinct_dictionaries(concat_batches(&SCHEMA, batches).map_err(|error| {
            StoreError::corrupt(format!("joining the head's columns: {error}"))
        })?)?,
    };
    write_sorted(&arrived, options)
}

/// `batch` with the values of each text dictionary column made distinct, keys pointing to
/// them. Joining the head's batches appends their dictionaries one after another (Arrow merges
/// them only when they hold more values than rows), so a value is repeated once a batch;
/// Parquet's writer maps a dictionary's values to its own once per row group only when the
/// dictionary is no larger than the rows it writes, and otherwise looks up every row's text.
fn distinct_dictionaries(batch: RecordBatch) -> Result<RecordBatch, StoreError> {
    let error = |error: arrow::error::ArrowError| {
        StoreError::corrupt(format!("merging the head's dictionaries: {error}"))
    };
    let mut columns = batch.columns().to_vec();
    for column in columns.iter_mut() {
        let Some(dictionary) = column.as_any().downcast_ref::<DictionaryArray<Int32Type>>() else {
            continue;
        };
        let Some(values) = dictionary.values().as_any().downcast_ref::<StringArray>() else {
            continue;
        };
        if values.null_count() > 0 {
            continue;
        }
        let mut index: ahash::AHashMap<&str, i32> = ahash::AHashMap::new();
        let mut remap = Vec::with_capacity(values.len());
        for value in values.iter().flatten() {
            let next = i32::try_from(index.len()).map_err(|_| {
                StoreError::corrupt("more than 2^31 distinct values in one dictionary")
            })?;
            remap.push(*index.entry(value).or_insert(next));
        }
        if index.len() == values.len() {
            continue;
        }
        let mut distinct: Vec<(&str, i32)> = index.into_iter().collect();
        distinct.sort_unstable_by_key(|(_, key)| *key);
        let distinct = StringArray::from_iter_values(distinct.into_iter().map(|(value, _)| value));
        // A null row's key may be anything: it keeps its place, pointing at the first value.
        let keys = dictionary
            .keys()
            .unary::<_, Int32Type>(|key| remap.get(key as usize).copied().unwrap_or(0));
        *column = Arc::new(DictionaryArray::try_new(keys, Arc::new(distinct)).map_err(error)?);
    }
    RecordBatch::try_new(batch.schema(), columns).map_err(error)
}

/// Writes the rows of `arrived` sorted by trace id, then start time, then span id.
///
/// The columns stay in the order the spans arrived, which is the order their memory was
/// allocated in, and only they are put in order (a sort of small keys, then a gather per row
/// group): sorting the spans first and reading them in trace order chased about fifteen
/// pointers a span across the whole head, a cache miss each, and cost more than the encoding.
fn write_sorted(arrived: &RecordBatch, options: &BlockWriteOptions) -> Result<Vec<u8>, StoreError> {
    let n_rows = arrived.num_rows();
    let trace_ids = fixed_column(arrived, COLUMN_TRACE_ID)?;
    let span_ids = fixed_column(arrived, COLUMN_SPAN_ID)?;
    let starts = arrived
        .column_by_name(COLUMN_START_TIME)
        .and_then(|column| column.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| StoreError::corrupt("column \"start_time\" is not a timestamp"))?;
    let mut keys: Vec<((u128, i64, u64), u32)> = Vec::with_capacity(n_rows);
    for row in 0..n_rows {
        let trace_id = <[u8; 16]>::try_from(trace_ids.value(row))
            .map_err(|_| StoreError::corrupt("a trace id is not 16 bytes"))?;
        let span_id = <[u8; 8]>::try_from(span_ids.value(row))
            .map_err(|_| StoreError::corrupt("a span id is not 8 bytes"))?;
        let row = u32::try_from(row)
            .map_err(|_| StoreError::corrupt("more than 2^32 spans in one block"))?;
        // Integer keys compare without a call to memcmp (ids are big-endian, so the order is
        // their bytes' order).
        let key = (
            u128::from_be_bytes(trace_id),
            starts.value(row as usize),
            u64::from_be_bytes(span_id),
        );
        keys.push((key, row));
    }
    keys.sort_unstable();
    let traces = keys
        .windows(2)
        .filter(|pair| pair[0].0.0 != pair[1].0.0)
        .count()
        + 1;
    let order = UInt32Array::from_iter_values(keys.iter().map(|(_, row)| *row));
    drop(keys);
    let per_row_group = DistinctIds::with_traces(arrived, traces)?.per_row_group(
        n_rows,
        options.row_group_rows,
        false,
    );
    let mut buffer = Vec::with_capacity(n_rows * 32);
    let mut writer = ArrowWriter::try_new(
        &mut buffer,
        SCHEMA.clone(),
        Some(properties(&per_row_group, options)?),
    )
    .map_err(parquet_error)?;
    let mut offset = 0;
    while offset < order.len() {
        let n_rows = options.row_group_rows.min(order.len() - offset);
        let rows = order.slice(offset, n_rows);
        let batch = take_record_batch(arrived, &rows)
            .map_err(|error| StoreError::corrupt(format!("ordering a block's rows: {error}")))?;
        writer.write(&batch).map_err(parquet_error)?;
        offset += n_rows;
    }
    writer.close().map_err(parquet_error)?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int32Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// Two batches' dictionaries joined hold each value once after `distinct_dictionaries`,
    /// and every row, null rows included, reads the same text as before.
    #[test]
    fn joined_dictionaries_hold_each_value_once() {
        let field = Field::new(
            "service",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        );
        let schema = Arc::new(Schema::new(vec![field]));
        let batch = |keys: Vec<Option<i32>>, values: Vec<&str>| {
            let dictionary = DictionaryArray::try_new(
                Int32Array::from(keys),
                Arc::new(StringArray::from(values)),
            )
            .unwrap();
            RecordBatch::try_new(schema.clone(), vec![Arc::new(dictionary)]).unwrap()
        };
        let first = batch(
            vec![Some(0), Some(1), None, Some(0)],
            vec!["orders", "billing"],
        );
        let second = batch(
            vec![Some(1), Some(0), Some(2)],
            vec!["billing", "orders", "audit"],
        );
        let joined = concat_batches(&schema, [&first, &second]).unwrap();
        let texts = |batch: &RecordBatch| -> Vec<Option<String>> {
            let dictionary = batch.column(0).as_dictionary::<Int32Type>();
            let values = dictionary.values().as_string::<i32>();
            dictionary
                .keys()
                .iter()
                .map(|key| key.map(|key| values.value(key as usize).to_string()))
                .collect()
        };
        let before = texts(&joined);
        assert_eq!(
            joined.column(0).as_dictionary::<Int32Type>().values().len(),
            5
        );
        let distinct = distinct_dictionaries(joined).unwrap();
        let values = distinct
            .column(0)
            .as_dictionary::<Int32Type>()
            .values()
            .clone();
        assert_eq!(
            values
                .as_string::<i32>()
                .iter()
                .flatten()
                .collect::<Vec<_>>(),
            ["orders", "billing", "audit"]
        );
        assert_eq!(texts(&distinct), before);
        assert_eq!(before[2], None);
    }
}
