//! The row filters of v1 and v2 reads: which rows of the columns they name a query keeps, evaluated
//! on those columns alone before the rest of a row is decoded.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Datum, FixedSizeBinaryArray, Int64Array, ListArray, RecordBatch,
    Scalar, StringArray, TimestampNanosecondArray,
};
use arrow::compute::kernels::cmp;
use arrow::error::ArrowError;
use muninn_model::TraceId;

use super::json::link_text_needle;
use super::{
    COLUMN_DURATION, COLUMN_EVENT_ID, COLUMN_EVENT_ID_TEXT, COLUMN_NAME, COLUMN_SERVICE,
    COLUMN_START_TIME,
};
use crate::scan::SpanQuery;

/// The rows to keep of a batch holding the predicate's columns, in schema order.
pub(super) type KeepRows =
    Box<dyn FnMut(RecordBatch) -> Result<BooleanArray, ArrowError> + Send + 'static>;

/// A row filter: the leaf columns it reads and which rows it keeps.
pub(super) struct Predicate {
    pub leaves: Vec<usize>,
    pub keep: KeepRows,
}

/// Leaf indices of the columns that reads filter on or project, resolved once per file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Leaves {
    pub trace_id: usize,
    pub event_id: usize,
    pub start_time: usize,
    pub duration: usize,
    pub service: usize,
    pub name: usize,
    pub kind: usize,
}

fn predicate_error(message: &str) -> ArrowError {
    ArrowError::InvalidArgumentError(message.to_string())
}

/// Rows whose one column equals `scalar`.
pub(super) fn equals(leaf: usize, scalar: impl Datum + Send + 'static) -> Predicate {
    Predicate {
        leaves: vec![leaf],
        keep: Box::new(move |batch: RecordBatch| cmp::eq(batch.column(0), &scalar)),
    }
}

/// Rows whose trace id (a 16-byte column) is one of `traces`.
pub(super) fn trace_id_in(leaf: usize, traces: Arc<HashSet<TraceId>>) -> Predicate {
    // A sorted list searched by halves: no hashing of every row's id (most rows miss).
    let mut sorted: Vec<[u8; 16]> = traces.iter().map(|trace_id| trace_id.0).collect();
    sorted.sort_unstable();
    Predicate {
        leaves: vec![leaf],
        keep: Box::new(move |batch: RecordBatch| {
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
                                .is_ok_and(|bytes| sorted.binary_search(&bytes).is_ok()),
                    )
                })
                .collect())
        }),
    }
}

/// Rows whose text column (not a dictionary) holds one of `texts`.
pub(super) fn text_in(leaf: usize, texts: Arc<HashSet<String>>) -> Predicate {
    Predicate {
        leaves: vec![leaf],
        keep: Box::new(move |batch: RecordBatch| {
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| predicate_error("the column is not plain text"))?;
            Ok(column
                .iter()
                .map(|value| Some(value.is_some_and(|text| texts.contains(text))))
                .collect())
        }),
    }
}

/// Rows whose 16-byte `event_id` is one of `uuids` or whose `event_id_text` is one of `texts`
/// (v2's two event id columns).
pub(super) fn uuid_or_text_in(
    uuid_leaf: usize,
    text_leaf: usize,
    mut uuids: Vec<[u8; 16]>,
    texts: HashSet<String>,
) -> Predicate {
    uuids.sort_unstable();
    let mut leaves = vec![uuid_leaf, text_leaf];
    leaves.sort_unstable();
    Predicate {
        leaves,
        keep: Box::new(move |batch: RecordBatch| {
            let bytes = column(&batch, COLUMN_EVENT_ID)?
                .as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .ok_or_else(|| predicate_error("event_id is not fixed-size binary"))?;
            let text = column(&batch, COLUMN_EVENT_ID_TEXT)?
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| predicate_error("event_id_text is not plain text"))?;
            Ok((0..batch.num_rows())
                .map(|row| {
                    let by_uuid = !uuids.is_empty()
                        && !bytes.is_null(row)
                        && <[u8; 16]>::try_from(bytes.value(row))
                            .is_ok_and(|id| uuids.binary_search(&id).is_ok());
                    let by_text =
                        !texts.is_empty() && !text.is_null(row) && texts.contains(text.value(row));
                    Some(by_uuid || by_text)
                })
                .collect())
        }),
    }
}

/// Rows whose `link_trace_ids` list holds one of `targets`.
pub(super) fn links_to(leaf: usize, targets: Arc<HashSet<TraceId>>) -> Predicate {
    Predicate {
        leaves: vec![leaf],
        keep: Box::new(move |batch: RecordBatch| linked_rows(&batch, &targets)),
    }
}

fn linked_rows(
    batch: &RecordBatch,
    targets: &HashSet<TraceId>,
) -> Result<BooleanArray, ArrowError> {
    let list = batch
        .column(0)
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| predicate_error("link_trace_ids is not a list"))?;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .ok_or_else(|| predicate_error("link_trace_ids does not hold 16-byte ids"))?;
    let offsets = list.value_offsets();
    Ok((0..list.len())
        .map(|row| {
            if list.is_null(row) {
                return Some(false);
            }
            let start = usize::try_from(offsets[row]).unwrap_or(0);
            let end = usize::try_from(offsets[row + 1]).unwrap_or(start);
            Some((start..end.min(values.len())).any(|value_idx| {
                <[u8; 16]>::try_from(values.value(value_idx))
                    .is_ok_and(|id| targets.contains(&TraceId(id)))
            }))
        })
        .collect())
}

/// Rows whose `links` JSON text mentions one of `targets`: a text match, for blocks written
/// before `link_trace_ids`; the caller checks the decoded spans again.
pub(super) fn links_text_mentions(leaf: usize, targets: &HashSet<TraceId>) -> Predicate {
    let needles: Vec<String> = targets.iter().copied().map(link_text_needle).collect();
    Predicate {
        leaves: vec![leaf],
        keep: Box::new(move |batch: RecordBatch| {
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| predicate_error("links is not text"))?;
            Ok(column
                .iter()
                .map(|value| {
                    Some(
                        value
                            .is_some_and(|text| needles.iter().any(|needle| text.contains(needle))),
                    )
                })
                .collect())
        }),
    }
}

/// Rows that match a search's time range and the column predicates it sets (service, name,
/// duration); only the columns it needs are read.
pub(super) fn search(leaves: &Leaves, query: &SpanQuery) -> Predicate {
    let mut columns = vec![leaves.start_time];
    if query.service.is_some() {
        columns.push(leaves.service);
    }
    if query.name.is_some() {
        columns.push(leaves.name);
    }
    if query.min_duration_nanos.is_some() || query.max_duration_nanos.is_some() {
        columns.push(leaves.duration);
    }
    let query = query.clone();
    Predicate {
        leaves: columns,
        keep: Box::new(move |batch: RecordBatch| search_rows(&query, &batch)),
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("block has no column {name:?}")))
}

fn and(left: BooleanArray, right: &BooleanArray) -> Result<BooleanArray, ArrowError> {
    arrow::compute::and(&left, right)
}

fn search_rows(query: &SpanQuery, batch: &RecordBatch) -> Result<BooleanArray, ArrowError> {
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
