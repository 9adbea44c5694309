//! Record batches read from a v1 or v2 `spans.parquet` back into what queries return: whole spans,
//! the (trace id, start) pairs of a search, and distinct operations.

use std::collections::HashSet;

use arrow::array::{
    Array, BooleanArray, DictionaryArray, FixedSizeBinaryArray, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Int32Type};
use muninn_model::{
    Attributes, Broker, EventColumns, Link, Resource, Span, SpanId, SpanKind, Status, StatusCode,
    Text, TraceId, empty_resource, new_resource,
};

use super::json::{attributes_from_json, links_from_json};
use super::{
    COLUMN_DURATION, COLUMN_EVENT_ID, COLUMN_EVENT_ID_TEXT, COLUMN_KIND, COLUMN_LINK_SPAN_IDS,
    COLUMN_LINK_TRACE_IDS, COLUMN_LINKS, COLUMN_NAME, COLUMN_PARENT_SPAN_ID, COLUMN_SERVICE,
    COLUMN_SPAN_ID, COLUMN_START_TIME, COLUMN_TRACE_ID,
};
use crate::block::format::SpanFields;
use crate::error::StoreError;
use crate::scan::Operation;

/// Reads a column as plain strings, whether it is stored as a dictionary or not.
fn string_column(batch: &RecordBatch, name: &str) -> Result<StringArray, StoreError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| StoreError::corrupt(format!("block has no column {name:?}")))?;
    let cast = arrow::compute::cast(column, &DataType::Utf8)
        .map_err(|error| StoreError::corrupt(format!("column {name:?}: {error}")))?;
    cast.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| StoreError::corrupt(format!("column {name:?} is not text")))
}

fn typed_column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, StoreError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            StoreError::corrupt(format!(
                "block column {name:?} is missing or has the wrong type"
            ))
        })
}

fn optional_string(array: &StringArray, row: usize) -> Option<Text> {
    (!array.is_null(row)).then(|| Text::from(array.value(row)))
}

/// A batch's event ids: v1's text column, or v2's 16-byte UUIDs and the text of other ids.
enum EventIdColumn {
    Text(StringArray),
    UuidOrText {
        uuids: FixedSizeBinaryArray,
        texts: StringArray,
    },
}

impl EventIdColumn {
    fn of(batch: &RecordBatch) -> Result<Self, StoreError> {
        if batch.column_by_name(COLUMN_EVENT_ID_TEXT).is_none() {
            return Ok(EventIdColumn::Text(string_column(batch, COLUMN_EVENT_ID)?));
        }
        Ok(EventIdColumn::UuidOrText {
            uuids: typed_column::<FixedSizeBinaryArray>(batch, COLUMN_EVENT_ID)?.clone(),
            texts: string_column(batch, COLUMN_EVENT_ID_TEXT)?,
        })
    }

    fn value(&self, row: usize) -> Option<Text> {
        match self {
            EventIdColumn::Text(texts) => optional_string(texts, row),
            EventIdColumn::UuidOrText { uuids, texts } => {
                if uuids.is_null(row) {
                    optional_string(texts, row)
                } else {
                    Some(uuid_text(uuids.value(row)))
                }
            }
        }
    }
}

/// A batch's links held as ids (`link_trace_ids` and `link_span_ids`, v2 since December 2026):
/// where a row's `link_span_ids` is not null, its links are the pairs of the two lists.
struct LinkIdColumns {
    trace_ids: ListArray,
    span_ids: ListArray,
}

impl LinkIdColumns {
    /// `None` for batches without `link_span_ids` (older blocks, v1): links are JSON there.
    fn of(batch: &RecordBatch) -> Result<Option<Self>, StoreError> {
        if batch.column_by_name(COLUMN_LINK_SPAN_IDS).is_none() {
            return Ok(None);
        }
        Ok(Some(LinkIdColumns {
            trace_ids: typed_column::<ListArray>(batch, COLUMN_LINK_TRACE_IDS)?.clone(),
            span_ids: typed_column::<ListArray>(batch, COLUMN_LINK_SPAN_IDS)?.clone(),
        }))
    }

    /// The links of `row` as ids; `None` where the row keeps them as JSON (or has none).
    fn links(&self, row: usize) -> Result<Option<Vec<Link>>, StoreError> {
        if self.span_ids.is_null(row) {
            return Ok(None);
        }
        let corrupt = || StoreError::corrupt("link_trace_ids and link_span_ids do not pair up");
        let trace_ids = self.trace_ids.value(row);
        let span_ids = self.span_ids.value(row);
        let (Some(trace_ids), Some(span_ids)) = (
            trace_ids.as_any().downcast_ref::<FixedSizeBinaryArray>(),
            span_ids.as_any().downcast_ref::<FixedSizeBinaryArray>(),
        ) else {
            return Err(corrupt());
        };
        if trace_ids.len() != span_ids.len() {
            return Err(corrupt());
        }
        (0..trace_ids.len())
            .map(|index| {
                Ok(Link {
                    trace_id: TraceId(trace_ids.value(index).try_into().map_err(|_| corrupt())?),
                    span_id: SpanId(span_ids.value(index).try_into().map_err(|_| corrupt())?),
                    attributes: Attributes::default(),
                })
            })
            .collect::<Result<Vec<Link>, StoreError>>()
            .map(Some)
    }
}

/// The canonical text of a UUID's bytes (lowercase, hyphenated).
fn uuid_text(bytes: &[u8]) -> Text {
    match <&[u8; 16]>::try_from(bytes) {
        Ok(bytes) => {
            Text::from(std::str::from_utf8(&canonical_uuid_text(bytes)).unwrap_or_default())
        }
        Err(_) => Text::default(),
    }
}

/// The canonical text of a UUID's 16 bytes (lowercase, hyphenated), as ASCII.
pub(in crate::block) fn canonical_uuid_text(bytes: &[u8; 16]) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 36];
    let mut at = 0;
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text[at] = b'-';
            at += 1;
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    text
}

/// `Some(column)` when `fields` reads it: `SpanFields::Outline` batches lack the others.
fn when_all<T>(
    fields: SpanFields,
    column: impl FnOnce() -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    match fields {
        SpanFields::All => column().map(Some),
        SpanFields::Outline => Ok(None),
    }
}

/// Text of an optional column that may be absent from the batch.
fn optional_text(array: Option<&StringArray>, row: usize) -> Option<Text> {
    array.and_then(|array| optional_string(array, row))
}

/// Turns a record batch of the columns `fields` reads back into spans (a field whose column
/// was not read is left empty).
pub(super) fn spans(batch: &RecordBatch, fields: SpanFields) -> Result<Vec<Span>, StoreError> {
    let trace_id = typed_column::<FixedSizeBinaryArray>(batch, COLUMN_TRACE_ID)?;
    let span_id = typed_column::<FixedSizeBinaryArray>(batch, COLUMN_SPAN_ID)?;
    let parent_span_id = typed_column::<FixedSizeBinaryArray>(batch, COLUMN_PARENT_SPAN_ID)?;
    let start_time = typed_column::<TimestampNanosecondArray>(batch, COLUMN_START_TIME)?;
    let service = string_column(batch, COLUMN_SERVICE)?;
    let name = string_column(batch, COLUMN_NAME)?;
    let kind = string_column(batch, COLUMN_KIND)?;
    let event_id = EventIdColumn::of(batch)?;
    let links = string_column(batch, COLUMN_LINKS)?;
    let link_ids = LinkIdColumns::of(batch)?;
    let duration = when_all(fields, || {
        typed_column::<Int64Array>(batch, COLUMN_DURATION)
    })?;
    let modified = when_all(fields, || typed_column::<BooleanArray>(batch, "modified"))?;
    let partition = when_all(fields, || typed_column::<Int32Array>(batch, "partition"))?;
    let offset = when_all(fields, || typed_column::<Int64Array>(batch, "offset"))?;
    let status_code = when_all(fields, || string_column(batch, "status_code"))?;
    let status_message = when_all(fields, || string_column(batch, "status_message"))?;
    let event_type = when_all(fields, || string_column(batch, "event_type"))?;
    let schema = when_all(fields, || string_column(batch, "schema"))?;
    let stream = when_all(fields, || string_column(batch, "stream"))?;
    let broker = when_all(fields, || string_column(batch, "broker"))?;
    let message_id = when_all(fields, || string_column(batch, "message_id"))?;
    let attributes = when_all(fields, || string_column(batch, "attributes"))?;
    let resource = when_all(fields, || string_column(batch, "resource"))?;
    let mut spans = Vec::with_capacity(batch.num_rows());
    // Rows sharing a resource (a service's, often on adjacent rows) share one list.
    let mut last_resource: Option<(&str, Resource)> = None;
    let fixed = |array: &FixedSizeBinaryArray, row: usize| -> Result<Vec<u8>, StoreError> {
        if array.is_null(row) {
            return Err(StoreError::corrupt("a required id column holds a null"));
        }
        Ok(array.value(row).to_vec())
    };
    for row in 0..batch.num_rows() {
        let trace_bytes: [u8; 16] = fixed(trace_id, row)?
            .try_into()
            .map_err(|_| StoreError::corrupt("trace_id is not 16 bytes"))?;
        let span_bytes: [u8; 8] = fixed(span_id, row)?
            .try_into()
            .map_err(|_| StoreError::corrupt("span_id is not 8 bytes"))?;
        let parent = if parent_span_id.is_null(row) {
            None
        } else {
            Some(SpanId(
                parent_span_id
                    .value(row)
                    .try_into()
                    .map_err(|_| StoreError::corrupt("parent is not 8 bytes"))?,
            ))
        };
        let parse_json = |array: Option<&StringArray>| -> Attributes {
            array.map_or_else(Attributes::default, |array| {
                attributes_from_json(array.value(row))
            })
        };
        spans.push(Span {
            trace_id: TraceId(trace_bytes),
            span_id: SpanId(span_bytes),
            parent_span_id: parent,
            name: Text::from(name.value(row)),
            kind: SpanKind::parse(kind.value(row)).unwrap_or(SpanKind::Internal),
            service: Text::from(service.value(row)),
            resource: match resource.as_ref() {
                None => empty_resource(),
                Some(array) => {
                    let text = array.value(row);
                    match &last_resource {
                        Some((last_text, shared)) if *last_text == text => shared.clone(),
                        _ => {
                            let shared = new_resource(attributes_from_json(text));
                            last_resource = Some((text, shared.clone()));
                            shared
                        }
                    }
                }
            },
            start_unix_nanos: start_time.value(row),
            duration_nanos: duration.map_or(0, |duration| duration.value(row)),
            status: Status {
                code: if status_code
                    .as_ref()
                    .is_some_and(|code| code.value(row) == "error")
                {
                    StatusCode::Error
                } else {
                    StatusCode::Ok
                },
                message: optional_text(status_message.as_ref(), row),
            },
            attributes: parse_json(attributes.as_ref()),
            links: match link_ids.as_ref().map(|ids| ids.links(row)).transpose()? {
                Some(Some(links)) => links,
                _ if links.is_null(row) => Vec::new(),
                _ => links_from_json(links.value(row)),
            },
            event: EventColumns {
                event_id: event_id.value(row),
                event_type: optional_text(event_type.as_ref(), row),
                schema: optional_text(schema.as_ref(), row),
                stream: optional_text(stream.as_ref(), row),
                broker: optional_text(broker.as_ref(), row).and_then(|text| Broker::parse(&text)),
                modified: modified.is_some_and(|modified| modified.value(row)),
                partition: partition
                    .filter(|partition| !partition.is_null(row))
                    .map(|partition| partition.value(row)),
                offset: offset
                    .filter(|offset| !offset.is_null(row))
                    .map(|offset| offset.value(row)),
                message_id: optional_text(message_id.as_ref(), row),
            },
        });
    }
    Ok(spans)
}

/// The trace id and start time of each row of a batch of those two columns.
pub(super) fn trace_starts(batch: &RecordBatch) -> Result<Vec<(TraceId, i64)>, StoreError> {
    let trace_ids = typed_column::<FixedSizeBinaryArray>(batch, COLUMN_TRACE_ID)?;
    let start_times = typed_column::<TimestampNanosecondArray>(batch, COLUMN_START_TIME)?;
    let mut starts = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let bytes: [u8; 16] = trace_ids
            .value(row)
            .try_into()
            .map_err(|_| StoreError::corrupt("trace_id is not 16 bytes"))?;
        starts.push((TraceId(bytes), start_times.value(row)));
    }
    Ok(starts)
}

/// The distinct (service, name, kind) of batches of those three columns, sorted.
pub(super) fn operations(batches: &[RecordBatch]) -> Result<Vec<Operation>, StoreError> {
    let mut distinct: HashSet<[String; 3]> = HashSet::new();
    for batch in batches {
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
    Ok(operations)
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
