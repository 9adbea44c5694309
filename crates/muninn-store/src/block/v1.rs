//! Block format version 1: the Arrow schema of `spans.parquet`, and the conversions between
//! spans and Arrow record batches. Ids are fixed-size binary, times are UTC nanosecond
//! timestamps, attributes, resource and links are JSON text, so DuckDB, Spark or Trino read the
//! files without a Muninn-specific reader.

use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, FixedSizeBinaryArray, FixedSizeBinaryBuilder,
    Int32Array, Int32Builder, Int64Array, Int64Builder, ListBuilder, RecordBatch, StringArray,
    StringBuilder, StringDictionaryBuilder, TimestampNanosecondArray, TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use muninn_model::{
    AttributeValue, Attributes, Broker, EventColumns, Link, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId,
};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::StoreError;

pub(crate) const COLUMN_TRACE_ID: &str = "trace_id";
pub(crate) const COLUMN_EVENT_ID: &str = "event_id";
/// The distinct trace ids a span links to, with a bloom filter: what look-ups of the spans
/// linking to a trace read. Blocks written before it existed lack it (see `links.rs`).
pub(crate) const COLUMN_LINK_TRACE_IDS: &str = "link_trace_ids";

fn dictionary_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The schema of `spans.parquet`, version 1.
pub(crate) static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(COLUMN_TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("parent_span_id", DataType::FixedSizeBinary(8), true),
        Field::new(
            "start_time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("service", dictionary_utf8(), false),
        Field::new("name", dictionary_utf8(), false),
        Field::new("kind", dictionary_utf8(), false),
        Field::new("status_code", dictionary_utf8(), false),
        Field::new("status_message", DataType::Utf8, true),
        Field::new(COLUMN_EVENT_ID, DataType::Utf8, true),
        Field::new("event_type", dictionary_utf8(), true),
        Field::new("schema", dictionary_utf8(), true),
        Field::new("stream", dictionary_utf8(), true),
        Field::new("broker", dictionary_utf8(), true),
        Field::new("modified", DataType::Boolean, false),
        Field::new("partition", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
        Field::new("message_id", DataType::Utf8, true),
        Field::new("attributes", DataType::Utf8, false),
        Field::new("resource", dictionary_utf8(), false),
        Field::new("links", DataType::Utf8, true),
        Field::new(
            COLUMN_LINK_TRACE_IDS,
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::FixedSizeBinary(16),
                false,
            ))),
            true,
        ),
    ]))
});

/// Attributes as one JSON object, keys in the order they were received.
struct JsonAttributes<'a>(&'a Attributes);

impl Serialize for JsonAttributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .map(|(key, value)| (key, JsonAttributeValue(value))),
        )
    }
}

struct JsonAttributeValue<'a>(&'a AttributeValue);

impl Serialize for JsonAttributeValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttributeValue::String(text) => serializer.serialize_str(text),
            AttributeValue::Int(number) => serializer.serialize_i64(*number),
            // Non-finite floats become `null` and are not read back.
            AttributeValue::Float(number) => serializer.serialize_f64(*number),
            AttributeValue::Bool(flag) => serializer.serialize_bool(*flag),
        }
    }
}

#[derive(Serialize)]
struct JsonLink<'a> {
    trace_id: String,
    span_id: String,
    attributes: JsonAttributes<'a>,
}

#[derive(Deserialize)]
struct StoredLink {
    trace_id: String,
    span_id: String,
    attributes: Option<Box<RawValue>>,
}

/// A JSON object's members in document order, their values not yet parsed.
struct JsonObjectMembers(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for JsonObjectMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = JsonObjectMembers;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(JsonObjectMembers(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Encodes each distinct attribute list once per block: a service's spans share their
/// resource, and low-cardinality attributes repeat across many spans.
#[derive(Default)]
struct JsonCache<'a> {
    index: ahash::AHashMap<u64, Vec<(&'a Attributes, usize)>>,
    texts: Vec<String>,
}

impl<'a> JsonCache<'a> {
    /// Distinct lists kept before the cache starts over (bounds memory on unique attributes).
    const MAX_ENTRIES: usize = 65_536;

    fn text(&mut self, attributes: &'a Attributes) -> &str {
        use std::hash::{Hash, Hasher};
        let mut hasher = ahash::AHasher::default();
        for (key, value) in attributes {
            key.hash(&mut hasher);
            match value {
                AttributeValue::String(text) => (0u8, text).hash(&mut hasher),
                AttributeValue::Int(number) => (1u8, number).hash(&mut hasher),
                AttributeValue::Float(number) => (2u8, number.to_bits()).hash(&mut hasher),
                AttributeValue::Bool(flag) => (3u8, flag).hash(&mut hasher),
            }
        }
        let hash = hasher.finish();
        if self.texts.len() >= Self::MAX_ENTRIES {
            self.index.clear();
            self.texts.clear();
        }
        let bucket = self.index.entry(hash).or_default();
        let text_idx = match bucket.iter().find(|(cached, _)| *cached == attributes) {
            Some((_, text_idx)) => *text_idx,
            None => {
                self.texts.push(attributes_to_json(attributes));
                bucket.push((attributes, self.texts.len() - 1));
                self.texts.len() - 1
            }
        };
        &self.texts[text_idx]
    }
}

fn attributes_to_json(attributes: &Attributes) -> String {
    serde_json::to_string(&JsonAttributes(attributes)).unwrap_or_else(|_| "{}".to_string())
}

/// Reads what `attributes_to_json` wrote, keeping the order of the keys. Numbers are read from
/// their text: serde_json's own float parsing can be one unit in the last place off.
fn attributes_from_json(text: &str) -> Attributes {
    let Ok(JsonObjectMembers(members)) = serde_json::from_str(text) else {
        return Vec::new();
    };
    members
        .into_iter()
        .filter_map(|(key, value)| Some((key, attribute_value_from_json(value.get())?)))
        .collect()
}

fn attribute_value_from_json(text: &str) -> Option<AttributeValue> {
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str(text).ok().map(AttributeValue::String),
        b't' | b'f' => serde_json::from_str(text).ok().map(AttributeValue::Bool),
        b'-' | b'0'..=b'9' => match text.parse::<i64>() {
            Ok(integer) => Some(AttributeValue::Int(integer)),
            Err(_) => text.parse::<f64>().ok().map(AttributeValue::Float),
        },
        // `null` (a non-finite float), arrays and objects.
        _ => None,
    }
}

fn links_to_json(links: &[Link]) -> Option<String> {
    if links.is_empty() {
        return None;
    }
    let links: Vec<JsonLink<'_>> = links
        .iter()
        .map(|link| JsonLink {
            trace_id: link.trace_id.to_hex(),
            span_id: link.span_id.to_hex(),
            attributes: JsonAttributes(&link.attributes),
        })
        .collect();
    serde_json::to_string(&links).ok()
}

fn links_from_json(text: &str) -> Vec<Link> {
    let Ok(links) = serde_json::from_str::<Vec<Box<RawValue>>>(text) else {
        return Vec::new();
    };
    links
        .iter()
        .filter_map(|link| {
            let link: StoredLink = serde_json::from_str(link.get()).ok()?;
            Some(Link {
                trace_id: TraceId::from_hex(&link.trace_id).ok()?,
                span_id: SpanId::from_hex(&link.span_id).ok()?,
                attributes: link
                    .attributes
                    .map(|attributes| attributes_from_json(attributes.get()))
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Builds one record batch from spans, in the order given.
pub(crate) fn encode<'a>(spans: &[&'a Span]) -> Result<RecordBatch, StoreError> {
    let n_rows = spans.len();
    let mut attribute_texts = JsonCache::<'a>::default();
    let mut resource_texts = JsonCache::<'a>::default();
    let mut trace_id = FixedSizeBinaryBuilder::with_capacity(n_rows, 16);
    let mut span_id = FixedSizeBinaryBuilder::with_capacity(n_rows, 8);
    let mut parent_span_id = FixedSizeBinaryBuilder::with_capacity(n_rows, 8);
    let mut start_time = TimestampNanosecondBuilder::with_capacity(n_rows).with_timezone("UTC");
    let mut duration = Int64Builder::with_capacity(n_rows);
    let mut service = StringDictionaryBuilder::<Int32Type>::new();
    let mut name = StringDictionaryBuilder::<Int32Type>::new();
    let mut kind = StringDictionaryBuilder::<Int32Type>::new();
    let mut status_code = StringDictionaryBuilder::<Int32Type>::new();
    let mut status_message = StringBuilder::new();
    let mut event_id = StringBuilder::new();
    let mut event_type = StringDictionaryBuilder::<Int32Type>::new();
    let mut schema = StringDictionaryBuilder::<Int32Type>::new();
    let mut stream = StringDictionaryBuilder::<Int32Type>::new();
    let mut broker = StringDictionaryBuilder::<Int32Type>::new();
    let mut modified = BooleanBuilder::with_capacity(n_rows);
    let mut partition = Int32Builder::with_capacity(n_rows);
    let mut offset = Int64Builder::with_capacity(n_rows);
    let mut message_id = StringBuilder::new();
    let mut attributes = StringBuilder::new();
    let mut resource = StringDictionaryBuilder::<Int32Type>::new();
    let mut links = StringBuilder::new();
    let mut link_trace_ids = ListBuilder::new(FixedSizeBinaryBuilder::new(16)).with_field(
        Arc::new(Field::new("item", DataType::FixedSizeBinary(16), false)),
    );
    let arrow_error =
        |error: arrow::error::ArrowError| StoreError::corrupt(format!("building a block: {error}"));
    for span in spans {
        trace_id
            .append_value(span.trace_id.0)
            .map_err(arrow_error)?;
        span_id.append_value(span.span_id.0).map_err(arrow_error)?;
        match &span.parent_span_id {
            Some(parent) => parent_span_id.append_value(parent.0).map_err(arrow_error)?,
            None => parent_span_id.append_null(),
        }
        start_time.append_value(span.start_unix_nanos);
        duration.append_value(span.duration_nanos);
        service.append_value(&span.service);
        name.append_value(&span.name);
        kind.append_value(span.kind.as_str());
        status_code.append_value(span.status.code.as_str());
        status_message.append_option(span.status.message.as_deref());
        let event = &span.event;
        event_id.append_option(event.event_id.as_deref());
        event_type.append_option(event.event_type.as_deref());
        schema.append_option(event.schema.as_deref());
        stream.append_option(event.stream.as_deref());
        broker.append_option(event.broker.map(Broker::as_str));
        modified.append_value(event.modified);
        partition.append_option(event.partition);
        offset.append_option(event.offset);
        message_id.append_option(event.message_id.as_deref());
        attributes.append_value(attribute_texts.text(&span.attributes));
        resource.append_value(resource_texts.text(&span.resource));
        links.append_option(links_to_json(&span.links));
        if span.links.is_empty() {
            link_trace_ids.append_null();
        } else {
            let mut distinct: Vec<[u8; 16]> =
                span.links.iter().map(|link| link.trace_id.0).collect();
            distinct.sort_unstable();
            distinct.dedup();
            for linked in distinct {
                link_trace_ids
                    .values()
                    .append_value(linked)
                    .map_err(arrow_error)?;
            }
            link_trace_ids.append(true);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent_span_id.finish()),
        Arc::new(start_time.finish()),
        Arc::new(duration.finish()),
        Arc::new(service.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(status_code.finish()),
        Arc::new(status_message.finish()),
        Arc::new(event_id.finish()),
        Arc::new(event_type.finish()),
        Arc::new(schema.finish()),
        Arc::new(stream.finish()),
        Arc::new(broker.finish()),
        Arc::new(modified.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(message_id.finish()),
        Arc::new(attributes.finish()),
        Arc::new(resource.finish()),
        Arc::new(links.finish()),
        Arc::new(link_trace_ids.finish()),
    ];
    RecordBatch::try_new(SCHEMA.clone(), columns).map_err(arrow_error)
}

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

fn optional_string(array: &StringArray, row: usize) -> Option<String> {
    (!array.is_null(row)).then(|| array.value(row).to_string())
}

/// Turns a record batch of format v1 back into spans.
pub(crate) fn decode(batch: &RecordBatch) -> Result<Vec<Span>, StoreError> {
    let trace_id = typed_column::<FixedSizeBinaryArray>(batch, COLUMN_TRACE_ID)?;
    let span_id = typed_column::<FixedSizeBinaryArray>(batch, "span_id")?;
    let parent_span_id = typed_column::<FixedSizeBinaryArray>(batch, "parent_span_id")?;
    let start_time = typed_column::<TimestampNanosecondArray>(batch, "start_time")?;
    let duration = typed_column::<Int64Array>(batch, "duration_ns")?;
    let modified = typed_column::<BooleanArray>(batch, "modified")?;
    let partition = typed_column::<Int32Array>(batch, "partition")?;
    let offset = typed_column::<Int64Array>(batch, "offset")?;
    let service = string_column(batch, "service")?;
    let name = string_column(batch, "name")?;
    let kind = string_column(batch, "kind")?;
    let status_code = string_column(batch, "status_code")?;
    let status_message = string_column(batch, "status_message")?;
    let event_id = string_column(batch, COLUMN_EVENT_ID)?;
    let event_type = string_column(batch, "event_type")?;
    let schema = string_column(batch, "schema")?;
    let stream = string_column(batch, "stream")?;
    let broker = string_column(batch, "broker")?;
    let message_id = string_column(batch, "message_id")?;
    let attributes = string_column(batch, "attributes")?;
    let resource = string_column(batch, "resource")?;
    let links = string_column(batch, "links")?;
    let mut spans = Vec::with_capacity(batch.num_rows());
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
        let parse_json =
            |array: &StringArray| -> Attributes { attributes_from_json(array.value(row)) };
        spans.push(Span {
            trace_id: TraceId(trace_bytes),
            span_id: SpanId(span_bytes),
            parent_span_id: parent,
            name: name.value(row).to_string(),
            kind: SpanKind::parse(kind.value(row)).unwrap_or(SpanKind::Internal),
            service: service.value(row).to_string(),
            resource: parse_json(&resource),
            start_unix_nanos: start_time.value(row),
            duration_nanos: duration.value(row),
            status: Status {
                code: if status_code.value(row) == "error" {
                    StatusCode::Error
                } else {
                    StatusCode::Ok
                },
                message: optional_string(&status_message, row),
            },
            attributes: parse_json(&attributes),
            links: if links.is_null(row) {
                Vec::new()
            } else {
                links_from_json(links.value(row))
            },
            event: EventColumns {
                event_id: optional_string(&event_id, row),
                event_type: optional_string(&event_type, row),
                schema: optional_string(&schema, row),
                stream: optional_string(&stream, row),
                broker: optional_string(&broker, row).and_then(|text| Broker::parse(&text)),
                modified: modified.value(row),
                partition: (!partition.is_null(row)).then(|| partition.value(row)),
                offset: (!offset.is_null(row)).then(|| offset.value(row)),
                message_id: optional_string(&message_id, row),
            },
        });
    }
    Ok(spans)
}
