//! The row filters of v1 and v2 reads: which rows of the columns they name a query keeps, evaluated
//! on those columns alone before the rest of a row is decoded.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Datum, FixedSizeBinaryArray, Int64Array, ListArray, RecordBatch,
    Scalar, StringArray, TimestampNanosecondArray,
};
use arrow::buffer::BooleanBuffer;
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

/// Rows whose one column equals `scalar` (text: the event id of format 1).
pub(super) fn equals(leaf: usize, scalar: impl Datum + Send + 'static) -> Predicate {
    Predicate {
        leaves: vec![leaf],
        keep: Box::new(move |batch: RecordBatch| cmp::eq(batch.column(0), &scalar)),
    }
}

/// A set of 16-byte ids held as integers: a row's id is tested with integer comparisons, not a
/// call to `memcmp` or a hash of its bytes (most rows a look-up filters miss).
#[derive(Debug, Clone)]
pub(super) struct Ids16(Vec<u128>);

impl Ids16 {
    pub(super) fn new(ids: impl IntoIterator<Item = [u8; 16]>) -> Self {
        let mut ids: Vec<u128> = ids.into_iter().map(u128::from_ne_bytes).collect();
        ids.sort_unstable();
        ids.dedup();
        Self(ids)
    }

    #[inline]
    fn contains(&self, id: u128) -> bool {
        match self.0.as_slice() {
            [] => false,
            [only] => id == *only,
            ids if ids.len() <= 8 => ids.contains(&id),
            ids => ids.binary_search(&id).is_ok(),
        }
    }
}

/// Which rows of a 16-byte id column hold an id of `ids` (a null row does not).
fn rows_holding(column: &dyn Array, ids: &Ids16, name: &str) -> Result<BooleanArray, ArrowError> {
    let array = column
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .filter(|array| array.value_length() == 16)
        .ok_or_else(|| ArrowError::SchemaError(format!("{name} is not 16-byte binary")))?;
    Ok(matching_16(array, |id| ids.contains(id)))
}

/// The rows of a 16-byte binary array whose value passes `keep`; null rows are false.
fn matching_16(array: &FixedSizeBinaryArray, keep: impl Fn(u128) -> bool) -> BooleanArray {
    let data = array.value_data();
    let values = BooleanBuffer::collect_bool(array.len(), |row| {
        data.get(row * 16..row * 16 + 16)
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .is_some_and(|bytes| keep(u128::from_ne_bytes(bytes)))
    });
    let values = match array.nulls() {
        Some(nulls) => &values & nulls.inner(),
        None => values,
    };
    BooleanArray::new(values, None)
}

/// Rows whose 16-byte id column (`trace_id`, or `event_id` of format 2) is one of `ids`.
pub(super) fn id_in(leaf: usize, ids: Ids16, name: &'static str) -> Predicate {
    Predicate {
        leaves: vec![leaf],
        keep: Box::new(move |batch: RecordBatch| rows_holding(batch.column(0), &ids, name)),
    }
}

/// Rows whose trace id (a 16-byte column) is one of `traces`.
pub(super) fn trace_id_in(leaf: usize, traces: &HashSet<TraceId>) -> Predicate {
    id_in(
        leaf,
        Ids16::new(traces.iter().map(|trace_id| trace_id.0)),
        "trace_id",
    )
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
    uuids: Vec<[u8; 16]>,
    texts: HashSet<String>,
) -> Predicate {
    let uuids = Ids16::new(uuids);
    let mut leaves = vec![uuid_leaf, text_leaf];
    leaves.sort_unstable();
    Predicate {
        leaves,
        keep: Box::new(move |batch: RecordBatch| {
            let by_uuid = rows_holding(
                column(&batch, COLUMN_EVENT_ID)?.as_ref(),
                &uuids,
                "event_id",
            )?;
            if texts.is_empty() {
                return Ok(by_uuid);
            }
            let text = column(&batch, COLUMN_EVENT_ID_TEXT)?
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| predicate_error("event_id_text is not plain text"))?;
            let by_text = BooleanBuffer::collect_bool(batch.num_rows(), |row| {
                !text.is_null(row) && texts.contains(text.value(row))
            });
            Ok(BooleanArray::new(by_uuid.values() | &by_text, None))
        }),
    }
}

/// Rows whose `link_trace_ids` list holds one of `targets`.
pub(super) fn links_to(leaf: usize, targets: &HashSet<TraceId>) -> Predicate {
    let targets = Ids16::new(targets.iter().map(|trace_id| trace_id.0));
    Predicate {
        leaves: vec![leaf],
        keep: Box::new(move |batch: RecordBatch| linked_rows(&batch, &targets)),
    }
}

fn linked_rows(batch: &RecordBatch, targets: &Ids16) -> Result<BooleanArray, ArrowError> {
    let list = batch
        .column(0)
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| predicate_error("link_trace_ids is not a list"))?;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .filter(|values| values.value_length() == 16)
        .ok_or_else(|| predicate_error("link_trace_ids does not hold 16-byte ids"))?;
    // Which linked ids are sought, then which rows' ranges of them hold one.
    let linked = matching_16(values, |id| targets.contains(id));
    let offsets = list.value_offsets();
    let rows = BooleanBuffer::collect_bool(list.len(), |row| {
        let start = usize::try_from(offsets[row]).unwrap_or(0);
        let end = usize::try_from(offsets[row + 1])
            .unwrap_or(start)
            .min(linked.len());
        !list.is_null(row) && (start..end).any(|value| linked.value(value))
    });
    Ok(BooleanArray::new(rows, None))
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{FixedSizeBinaryBuilder, ListBuilder};
    use arrow::datatypes::{DataType, Field, Schema};

    fn id(byte: u8) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[0] = byte;
        id[15] = byte.wrapping_mul(7);
        id
    }

    fn ids(rows: &[Option<u8>]) -> FixedSizeBinaryArray {
        let mut builder = FixedSizeBinaryBuilder::new(16);
        for row in rows {
            match row {
                Some(byte) => builder.append_value(id(*byte)).unwrap(),
                None => builder.append_null(),
            }
        }
        builder.finish()
    }

    fn batch_of(name: &str, column: ArrayRef) -> RecordBatch {
        let schema = Schema::new(vec![Field::new(name, column.data_type().clone(), true)]);
        RecordBatch::try_new(Arc::new(schema), vec![column]).unwrap()
    }

    fn kept(predicate: &mut Predicate, batch: RecordBatch) -> Vec<bool> {
        let keep = (predicate.keep)(batch).unwrap();
        (0..keep.len())
            .map(|row| keep.is_valid(row) && keep.value(row))
            .collect()
    }

    #[test]
    fn id_columns_keep_the_rows_of_the_sought_ids_and_never_a_null_row() {
        // A null row's bytes are zeros in the buffer: the all-zero id sought matches the row that
        // holds it, not the null row.
        let column = ids(&[Some(1), None, Some(2), Some(0), Some(1)]);
        let mut one = id_in(0, Ids16::new([id(1)]), "trace_id");
        assert_eq!(
            kept(&mut one, batch_of("trace_id", Arc::new(column.clone()))),
            [true, false, false, false, true]
        );
        let mut zero = id_in(0, Ids16::new([[0u8; 16]]), "trace_id");
        assert_eq!(
            kept(&mut zero, batch_of("trace_id", Arc::new(column.clone()))),
            [false, false, false, true, false]
        );
        // Many ids are searched by halves; a sliced column starts at its first row.
        let many: Vec<[u8; 16]> = (2..40).map(id).collect();
        let mut many = id_in(0, Ids16::new(many), "trace_id");
        assert_eq!(
            kept(
                &mut many,
                batch_of("trace_id", Arc::new(column.slice(2, 3)))
            ),
            [true, false, false]
        );
        let traces: HashSet<TraceId> = [TraceId(id(2)), TraceId(id(9))].into();
        let mut traces = trace_id_in(0, &traces);
        assert_eq!(
            kept(&mut traces, batch_of("trace_id", Arc::new(column))),
            [false, false, true, false, false]
        );
    }

    #[test]
    fn a_column_of_another_width_is_named_in_the_error() {
        let mut builder = FixedSizeBinaryBuilder::new(8);
        builder.append_value([1u8; 8]).unwrap();
        let mut predicate = id_in(0, Ids16::new([id(1)]), "trace_id");
        let error = (predicate.keep)(batch_of("trace_id", Arc::new(builder.finish())))
            .unwrap_err()
            .to_string();
        assert!(error.contains("trace_id is not 16-byte binary"), "{error}");
    }

    #[test]
    fn event_ids_match_by_uuid_or_by_text() {
        let uuids = ids(&[Some(3), None, Some(4), None]);
        let texts = StringArray::from(vec![None, Some("order-7"), None, Some("order-8")]);
        let schema = Schema::new(vec![
            Field::new(COLUMN_EVENT_ID, DataType::FixedSizeBinary(16), true),
            Field::new(COLUMN_EVENT_ID_TEXT, DataType::Utf8, true),
        ]);
        let batch =
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(uuids), Arc::new(texts)]).unwrap();
        let mut both = uuid_or_text_in(0, 1, vec![id(4)], ["order-7".to_string()].into());
        assert_eq!(kept(&mut both, batch.clone()), [false, true, true, false]);
        let mut by_uuid = uuid_or_text_in(0, 1, vec![id(3), id(4)], HashSet::new());
        assert_eq!(kept(&mut by_uuid, batch), [true, false, true, false]);
    }

    #[test]
    fn links_keep_a_row_when_any_of_its_linked_traces_is_sought() {
        let mut builder = ListBuilder::new(FixedSizeBinaryBuilder::new(16));
        for row in [vec![], vec![id(1), id(5)], vec![id(2)], vec![id(6), id(7)]] {
            if row.is_empty() {
                builder.append_null();
                continue;
            }
            for linked in row {
                builder.values().append_value(linked).unwrap();
            }
            builder.append(true);
        }
        let list = builder.finish();
        let targets: HashSet<TraceId> = [TraceId(id(5)), TraceId(id(6))].into();
        let mut predicate = links_to(0, &targets);
        assert_eq!(
            kept(
                &mut predicate,
                batch_of("link_trace_ids", Arc::new(list.clone()))
            ),
            [false, true, false, true]
        );
        // A slice of the list reads its values through its own offsets.
        assert_eq!(
            kept(
                &mut predicate,
                batch_of("link_trace_ids", Arc::new(list.slice(2, 2)))
            ),
            [false, true]
        );
    }
}
