//! Search reads of one block: the spans that start in a time range and pass the column
//! predicates a search can push down (service, name, duration), read with a Parquet row filter
//! so that only matching rows are decoded — and, when nothing else is asked, only their trace
//! id and start time. Also the block's distinct (service, name, kind), read once and kept.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, FixedSizeBinaryArray, Int64Array, RecordBatch,
    Scalar, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Int32Type};
use arrow::error::ArrowError;
use futures::TryStreamExt;
use muninn_model::{Span, SpanKind, TraceId};
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};

use super::{BlockHandle, v1};
use crate::error::StoreError;
use crate::scan::{Operation, SpanQuery};

const COLUMN_START_TIME: &str = "start_time";
const COLUMN_DURATION: &str = "duration_ns";
const COLUMN_SERVICE: &str = "service";
const COLUMN_NAME: &str = "name";
const COLUMN_KIND: &str = "kind";

/// What a block scan returns: whole spans when the caller filters them further, or only the
/// trace id and start time of each matching row.
pub(crate) enum ScannedRows {
    Spans(Vec<Span>),
    Starts(Vec<(TraceId, i64)>),
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("block has no column {name:?}")))
}

fn and(left: BooleanArray, right: &BooleanArray) -> Result<BooleanArray, ArrowError> {
    arrow::compute::and(&left, right)
}

/// The row predicate of a query over the columns it names (`start_time` always).
fn row_predicate(query: &SpanQuery, batch: &RecordBatch) -> Result<BooleanArray, ArrowError> {
    use arrow::compute::kernels::cmp;
    let start = column(batch, COLUMN_START_TIME)?;
    let timestamp =
        |value: i64| Scalar::new(TimestampNanosecondArray::from(vec![value]).with_timezone("UTC"));
    let mut keep = cmp::gt_eq(start, &timestamp(query.from_unix_nanos))?;
    keep = and(keep, &cmp::lt(start, &timestamp(query.to_unix_nanos))?)?;
    if let Some(service) = &query.service {
        let scalar = StringArray::new_scalar(service.as_str());
        keep = and(keep, &cmp::eq(column(batch, COLUMN_SERVICE)?, &scalar)?)?;
    }
    if let Some(name) = &query.name {
        let scalar = StringArray::new_scalar(name.as_str());
        keep = and(keep, &cmp::eq(column(batch, COLUMN_NAME)?, &scalar)?)?;
    }
    if let Some(min) = query.min_duration_nanos {
        let scalar = Int64Array::new_scalar(min);
        keep = and(keep, &cmp::gt_eq(column(batch, COLUMN_DURATION)?, &scalar)?)?;
    }
    if let Some(max) = query.max_duration_nanos {
        let scalar = Int64Array::new_scalar(max);
        keep = and(keep, &cmp::lt_eq(column(batch, COLUMN_DURATION)?, &scalar)?)?;
    }
    Ok(keep)
}

/// Distinct values of three dictionary (or plain text) columns, row by row.
fn distinct_triples(
    batch: &RecordBatch,
    names: [&str; 3],
) -> Result<HashSet<[String; 3]>, StoreError> {
    let dictionary_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut dictionaries = Vec::with_capacity(3);
    for name in names {
        let array = batch
            .column_by_name(name)
            .ok_or_else(|| StoreError::corrupt(format!("block has no column {name:?}")))?;
        let cast = arrow::compute::cast(array, &dictionary_type)
            .map_err(|error| StoreError::corrupt(format!("column {name:?}: {error}")))?;
        let dictionary = cast
            .as_any()
            .downcast_ref::<DictionaryArray<Int32Type>>()
            .cloned()
            .ok_or_else(|| StoreError::corrupt(format!("column {name:?} is not text")))?;
        let values = dictionary
            .values()
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| StoreError::corrupt(format!("column {name:?} is not text")))?;
        dictionaries.push((dictionary, values));
    }
    // Key triples first (cheap integers), strings once per distinct triple.
    let mut keys: HashSet<[Option<i32>; 3]> = HashSet::new();
    for row in 0..batch.num_rows() {
        let key = |index: usize| {
            let (dictionary, _) = &dictionaries[index];
            (!dictionary.is_null(row)).then(|| dictionary.keys().value(row))
        };
        keys.insert([key(0), key(1), key(2)]);
    }
    let text = |index: usize, key: Option<i32>| -> String {
        let (_, values) = &dictionaries[index];
        match key.and_then(|key| usize::try_from(key).ok()) {
            Some(key) if key < values.len() => values.value(key).to_string(),
            _ => String::new(),
        }
    };
    Ok(keys
        .into_iter()
        .map(|[first, second, third]| [text(0, first), text(1, second), text(2, third)])
        .collect())
}

impl BlockHandle {
    /// The rows of this block that match `query`'s time range and pushed-down predicates.
    /// With `whole_spans` they are decoded into spans (for a further filter); otherwise only
    /// their trace ids and start times are read.
    pub(crate) async fn scan(
        &self,
        store: &Arc<dyn ObjectStore>,
        query: &SpanQuery,
        whole_spans: bool,
    ) -> Result<ScannedRows, StoreError> {
        if self.meta.n_spans == 0 {
            return Ok(if whole_spans {
                ScannedRows::Spans(Vec::new())
            } else {
                ScannedRows::Starts(Vec::new())
            });
        }
        let filters = self.filters(store).await?;
        let path = self.spans_path();
        let parquet_error =
            |error: parquet::errors::ParquetError| StoreError::corrupt(format!("{path}: {error}"));
        let schema = filters.metadata.parquet_schema();
        let column_idx = |name: &str| {
            schema
                .columns()
                .iter()
                .position(|column| column.name() == name)
                .ok_or_else(|| StoreError::corrupt(format!("{path}: no column {name:?}")))
        };
        let mut predicate_columns = vec![column_idx(COLUMN_START_TIME)?];
        if query.service.is_some() {
            predicate_columns.push(column_idx(COLUMN_SERVICE)?);
        }
        if query.name.is_some() {
            predicate_columns.push(column_idx(COLUMN_NAME)?);
        }
        if query.min_duration_nanos.is_some() || query.max_duration_nanos.is_some() {
            predicate_columns.push(column_idx(COLUMN_DURATION)?);
        }
        let predicate_mask = ProjectionMask::leaves(schema, predicate_columns);
        let predicate_query = query.clone();
        let predicate = ArrowPredicateFn::new(predicate_mask, move |batch: RecordBatch| {
            row_predicate(&predicate_query, &batch)
        });
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.reader(store),
            filters.metadata.clone(),
        )
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
        if !whole_spans {
            let projection = ProjectionMask::leaves(
                schema,
                [
                    column_idx(v1::COLUMN_TRACE_ID)?,
                    column_idx(COLUMN_START_TIME)?,
                ],
            );
            builder = builder.with_projection(projection);
        }
        let stream = builder.build().map_err(parquet_error)?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(parquet_error)?;
        if whole_spans {
            let mut spans = Vec::new();
            for batch in &batches {
                spans.extend(v1::decode(batch)?);
            }
            return Ok(ScannedRows::Spans(spans));
        }
        let mut starts = Vec::new();
        for batch in &batches {
            let trace_ids = batch
                .column_by_name(v1::COLUMN_TRACE_ID)
                .and_then(|column| column.as_any().downcast_ref::<FixedSizeBinaryArray>())
                .ok_or_else(|| StoreError::corrupt(format!("{path}: trace_id is unreadable")))?;
            let start_times = batch
                .column_by_name(COLUMN_START_TIME)
                .and_then(|column| column.as_any().downcast_ref::<TimestampNanosecondArray>())
                .ok_or_else(|| StoreError::corrupt(format!("{path}: start_time is unreadable")))?;
            for row in 0..batch.num_rows() {
                let bytes: [u8; 16] = trace_ids.value(row).try_into().map_err(|_| {
                    StoreError::corrupt(format!("{path}: trace_id is not 16 bytes"))
                })?;
                starts.push((TraceId(bytes), start_times.value(row)));
            }
        }
        Ok(ScannedRows::Starts(starts))
    }

    /// Every span of this block whose trace is one of `traces`: the row groups whose bloom
    /// filter may hold one of them, filtered on the trace id column before decoding.
    pub(crate) async fn spans_of_traces(
        &self,
        store: &Arc<dyn ObjectStore>,
        traces: &Arc<HashSet<TraceId>>,
    ) -> Result<Vec<Span>, StoreError> {
        if self.meta.n_spans == 0 || traces.is_empty() {
            return Ok(Vec::new());
        }
        let filters = self.filters(store).await?;
        let candidates: Vec<usize> = filters
            .trace_id
            .iter()
            .enumerate()
            .filter(|(_, bloom)| match bloom {
                None => true,
                Some(bloom) => traces.iter().any(|trace_id| bloom.check(&trace_id.0[..])),
            })
            .map(|(row_group_idx, _)| row_group_idx)
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.spans_path();
        let parquet_error =
            |error: parquet::errors::ParquetError| StoreError::corrupt(format!("{path}: {error}"));
        let mask = ProjectionMask::leaves(
            filters.metadata.parquet_schema(),
            [filters.trace_column_idx],
        );
        let wanted = traces.clone();
        let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .ok_or_else(|| {
                    ArrowError::SchemaError("trace_id is not fixed-size binary".into())
                })?;
            Ok((0..ids.len())
                .map(|row| {
                    Some(
                        !ids.is_null(row)
                            && <[u8; 16]>::try_from(ids.value(row))
                                .is_ok_and(|bytes| wanted.contains(&TraceId(bytes))),
                    )
                })
                .collect::<BooleanArray>())
        });
        let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.reader(store),
            filters.metadata.clone(),
        )
        .with_row_groups(candidates)
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
        .build()
        .map_err(parquet_error)?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(parquet_error)?;
        let mut spans = Vec::new();
        for batch in &batches {
            spans.extend(v1::decode(batch)?);
        }
        Ok(spans)
    }

    /// The distinct (service, name, kind) of this block, read on first use and then kept
    /// (blocks are immutable).
    pub(crate) async fn operations(
        &self,
        store: &Arc<dyn ObjectStore>,
    ) -> Result<Arc<Vec<Operation>>, StoreError> {
        self.operations
            .get_or_try_init(|| async {
                if self.meta.n_spans == 0 {
                    return Ok(Arc::new(Vec::new()));
                }
                let filters = self.filters(store).await?;
                let path = self.spans_path();
                let parquet_error = |error: parquet::errors::ParquetError| {
                    StoreError::corrupt(format!("{path}: {error}"))
                };
                let schema = filters.metadata.parquet_schema();
                let leaves: Vec<usize> = schema
                    .columns()
                    .iter()
                    .enumerate()
                    .filter(|(_, column)| {
                        [COLUMN_SERVICE, COLUMN_NAME, COLUMN_KIND].contains(&column.name())
                    })
                    .map(|(column_idx, _)| column_idx)
                    .collect();
                let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(
                    self.reader(store),
                    filters.metadata.clone(),
                )
                .with_projection(ProjectionMask::leaves(schema, leaves))
                .build()
                .map_err(parquet_error)?;
                let batches: Vec<RecordBatch> =
                    stream.try_collect().await.map_err(parquet_error)?;
                let mut distinct: HashSet<[String; 3]> = HashSet::new();
                for batch in &batches {
                    distinct.extend(distinct_triples(
                        batch,
                        [COLUMN_SERVICE, COLUMN_NAME, COLUMN_KIND],
                    )?);
                }
                let mut operations: Vec<Operation> = distinct
                    .into_iter()
                    .map(|[service, name, kind]| Operation {
                        service,
                        name,
                        kind: SpanKind::parse(&kind).unwrap_or(SpanKind::Internal),
                    })
                    .collect();
                operations.sort();
                Ok(Arc::new(operations))
            })
            .await
            .cloned()
    }
}
