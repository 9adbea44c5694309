//! The head's columns in a WAL record (an Arrow IPC stream of the batch), and what recovery
//! needs of them without decoding spans: their roll-up cells and their ids.

use std::collections::HashMap;
use std::io::Cursor;

use arrow::array::{
    Array, BooleanArray, DictionaryArray, FixedSizeBinaryArray, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::Int32Type;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use muninn_model::{Action, Broker, RollupKey, SpanId, SpanKind, TraceId};

use super::super::decode::canonical_uuid_text;
use super::super::json::attributes_from_json;
use super::super::{
    COLUMN_EVENT_ID, COLUMN_EVENT_ID_TEXT, COLUMN_KIND, COLUMN_SERVICE, COLUMN_SPAN_ID,
    COLUMN_START_TIME, COLUMN_TRACE_ID,
};
use super::{HeadColumns, HeadLeaves, column_error, typed};
use crate::error::StoreError;
use crate::rollup::{self, DeltaCell, FirstSpan, RollupCell, RollupDelta};

/// A text column of the head, dictionary-encoded: its keys and its values.
struct Dictionary<'a> {
    keys: &'a DictionaryArray<Int32Type>,
    values: &'a StringArray,
}

impl<'a> Dictionary<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> Result<Self, StoreError> {
        let keys = typed::<DictionaryArray<Int32Type>>(batch, name)?;
        let values = keys
            .values()
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| column_error(format!("the values of column {name:?} are not text")))?;
        Ok(Dictionary { keys, values })
    }

    /// The row's key into the values, or `None` for a null.
    fn key(&self, row: usize) -> Option<usize> {
        let key = self.keys.keys();
        (!key.is_null(row)).then(|| key.value(row) as usize)
    }

    /// The text of a key `key` returned ("" for none).
    fn text(&self, key: Option<usize>) -> Result<&'a str, StoreError> {
        match key {
            None => Ok(""),
            Some(key) if key < self.values.len() => Ok(self.values.value(key)),
            Some(key) => Err(column_error(format!(
                "a dictionary key {key} past its {} values",
                self.values.len()
            ))),
        }
    }
}

/// A row's roll-up key before its texts are looked up: its minute and dictionary keys.
type RowKey = (
    i64,
    usize,
    usize,
    Option<usize>,
    Option<usize>,
    Option<usize>,
    Action,
    bool,
);

impl HeadColumns {
    /// Appends the columns to `out` as an Arrow IPC stream: the schema, the dictionaries and
    /// the batch.
    pub(crate) fn write_ipc(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let mut writer = StreamWriter::try_new(out, &self.batch.schema()).map_err(column_error)?;
        writer.write(&self.batch).map_err(column_error)?;
        writer.finish().map_err(column_error)
    }

    /// The record batch of an IPC stream `write_ipc` wrote, as it was written: `conform`
    /// brings it to the schema the head holds.
    pub(crate) fn read_ipc(bytes: &[u8]) -> Result<RecordBatch, StoreError> {
        let mut reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(column_error)?;
        let batch = reader
            .next()
            .ok_or_else(|| column_error("an IPC stream without a record batch"))?
            .map_err(column_error)?;
        if reader.next().is_some() {
            return Err(column_error("an IPC stream of more than one record batch"));
        }
        Ok(batch)
    }

    /// Columns of a batch read from `ipc_bytes` (and brought to the head's schema): their
    /// arrays share the buffers the IPC reader allocated, about as many bytes as it read.
    pub(crate) fn read(batch: RecordBatch, ipc_bytes: usize) -> Result<Self, StoreError> {
        let leaves = HeadLeaves::of(&batch.schema())?;
        Ok(HeadColumns {
            batch,
            leaves,
            memory: ipc_bytes as u64,
        })
    }

    /// Calls `visit` with each row's trace id.
    pub(crate) fn for_each_trace_id(
        &self,
        mut visit: impl FnMut(&TraceId),
    ) -> Result<(), StoreError> {
        let trace_ids = typed::<FixedSizeBinaryArray>(&self.batch, COLUMN_TRACE_ID)?;
        for row in 0..trace_ids.len() {
            let bytes = <[u8; 16]>::try_from(trace_ids.value(row))
                .map_err(|_| column_error("a trace id is not 16 bytes"))?;
            visit(&TraceId(bytes));
        }
        Ok(())
    }

    /// Calls `visit` with the text of each row's event id, for the rows that have one (UUIDs
    /// in their canonical text, as they arrived).
    pub(crate) fn for_each_event_id(&self, mut visit: impl FnMut(&str)) -> Result<(), StoreError> {
        let uuids = typed::<FixedSizeBinaryArray>(&self.batch, COLUMN_EVENT_ID)?;
        let texts = typed::<StringArray>(&self.batch, COLUMN_EVENT_ID_TEXT)?;
        for row in 0..self.len() {
            if !uuids.is_null(row) {
                let bytes = <&[u8; 16]>::try_from(uuids.value(row))
                    .map_err(|_| column_error("an event id UUID is not 16 bytes"))?;
                let canonical = canonical_uuid_text(bytes);
                let text = std::str::from_utf8(&canonical)
                    .map_err(|_| column_error("a UUID's text is not UTF-8"))?;
                visit(text);
            } else if !texts.is_null(row) {
                visit(texts.value(row));
            }
        }
        Ok(())
    }

    /// The roll-up cells of the spans: what `rollup::batch_delta` makes of them (without
    /// counts), read from the columns. Rows are grouped by their dictionary keys, so each
    /// distinct text is read once, and only the earliest span of a producer cell naming a
    /// schema has its resource parsed (for `FirstSpan`).
    pub(crate) fn rollup_delta(&self) -> Result<RollupDelta, StoreError> {
        let batch = &self.batch;
        let kind = Dictionary::of(batch, COLUMN_KIND)?;
        let service = Dictionary::of(batch, COLUMN_SERVICE)?;
        let stream = Dictionary::of(batch, "stream")?;
        let broker = Dictionary::of(batch, "broker")?;
        let event_type = Dictionary::of(batch, "event_type")?;
        let schema = Dictionary::of(batch, "schema")?;
        let resource = Dictionary::of(batch, "resource")?;
        let modified = typed::<BooleanArray>(batch, "modified")?;
        let starts = typed::<TimestampNanosecondArray>(batch, COLUMN_START_TIME)?;
        let trace_ids = typed::<FixedSizeBinaryArray>(batch, COLUMN_TRACE_ID)?;
        let span_ids = typed::<FixedSizeBinaryArray>(batch, COLUMN_SPAN_ID)?;
        let actions: Vec<Option<Action>> = kind
            .values
            .iter()
            .map(|text| text.and_then(SpanKind::parse).and_then(SpanKind::action))
            .collect();
        let schema_named: Vec<bool> = schema
            .values
            .iter()
            .map(|text| text.is_some_and(|text| !text.is_empty()))
            .collect();
        let order = |row: usize| (starts.value(row), trace_ids.value(row), span_ids.value(row));
        let mut cells: HashMap<RowKey, (RollupCell, Option<usize>), ahash::RandomState> =
            HashMap::default();
        for row in 0..batch.num_rows() {
            let Some(action) = kind
                .key(row)
                .and_then(|key| actions.get(key).copied().flatten())
            else {
                continue;
            };
            let Some(stream_key) = stream.key(row) else {
                continue;
            };
            let Some(service_key) = service.key(row) else {
                return Err(column_error("a null in the column \"service\""));
            };
            let at = starts.value(row);
            let schema_key = schema.key(row);
            let names_schema = schema_key.is_some_and(|key| schema_named.get(key) == Some(&true));
            let first = (action == Action::Produced && names_schema).then_some(row);
            let key = (
                rollup::minute_of(at),
                service_key,
                stream_key,
                broker.key(row),
                event_type.key(row),
                schema_key,
                action,
                modified.value(row),
            );
            let cell = RollupCell {
                spans: 1,
                seen: 0,
                first_unix_nanos: at,
                last_unix_nanos: at,
            };
            cells
                .entry(key)
                .and_modify(|(existing, earliest)| {
                    existing.spans += 1;
                    existing.first_unix_nanos = existing.first_unix_nanos.min(at);
                    existing.last_unix_nanos = existing.last_unix_nanos.max(at);
                    if let (Some(row), Some(current)) = (first, earliest.as_mut())
                        && order(row) < order(*current)
                    {
                        *current = row;
                    }
                })
                .or_insert((cell, first));
        }
        let mut delta = RollupDelta::with_capacity(cells.len());
        // Each distinct key is built once; its copies share nothing on the heap.
        let mut keys: HashMap<_, RollupKey, ahash::RandomState> = HashMap::default();
        for (
            (minute, service_key, stream_key, broker_key, type_key, schema_key, action, changed),
            (cell, first),
        ) in cells
        {
            let key = match keys.entry((
                service_key,
                stream_key,
                broker_key,
                type_key,
                schema_key,
                action,
                changed,
            )) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.get().clone(),
                std::collections::hash_map::Entry::Vacant(entry) => entry
                    .insert(RollupKey {
                        service: service.text(Some(service_key))?.into(),
                        stream: stream.text(Some(stream_key))?.into(),
                        broker: broker_key
                            .map(|key| broker.text(Some(key)))
                            .transpose()?
                            .and_then(Broker::parse)
                            .unwrap_or(Broker::Other),
                        event_type: event_type.text(type_key)?.into(),
                        schema: schema.text(schema_key)?.into(),
                        action,
                        modified: changed,
                    })
                    .clone(),
            };
            let first_span = match first {
                Some(row) => Some(Box::new(first_span(
                    row, &resource, starts, trace_ids, span_ids,
                )?)),
                None => None,
            };
            rollup::merge_into(&mut delta, minute, key, &DeltaCell { cell, first_span });
        }
        Ok(delta)
    }
}

/// Who sent the span of `row`.
fn first_span(
    row: usize,
    resource: &Dictionary<'_>,
    starts: &TimestampNanosecondArray,
    trace_ids: &FixedSizeBinaryArray,
    span_ids: &FixedSizeBinaryArray,
) -> Result<FirstSpan, StoreError> {
    let trace_id = <[u8; 16]>::try_from(trace_ids.value(row))
        .map_err(|_| column_error("a trace id is not 16 bytes"))?;
    let span_id = <[u8; 8]>::try_from(span_ids.value(row))
        .map_err(|_| column_error("a span id is not 8 bytes"))?;
    let attributes = attributes_from_json(resource.text(resource.key(row))?);
    Ok(FirstSpan::sent(
        starts.value(row),
        TraceId(trace_id),
        SpanId(span_id),
        &attributes,
    ))
}
