//! OTLP traces to Muninn spans: an `ExportTraceServiceRequest` (protobuf, or OTLP/JSON with hex
//! ids) becomes validated `Span`s, with OpenTelemetry's messaging semantic conventions read
//! into the event-streaming columns. Each invalid span is rejected on its own, naming where it
//! sits in the request (OTLP's partial success); a batch receive span becomes one consumed
//! record per linked message, so lineage and journeys see every message.
//!
//! The mapping, in order of precedence where several attributes feed one column:
//!
//! | column | from |
//! |---|---|
//! | `service` | resource `service.name` (`unknown_service` when absent, as OpenTelemetry says) |
//! | `kind` | span kind `PRODUCER`/`CONSUMER`; else `messaging.operation.type` (or the older `messaging.operation`): `publish`, `send`, `create` → producer, `receive`, `process`, `deliver` → consumer; else the span kind |
//! | `broker` | `messaging.system`: `kafka`, `nats`, `pulsar`, `aws_sqs`/`sqs`, `rabbitmq`, `redis`, `aws_kinesis`/`kinesis`, anything else `other` (the attribute is then kept) |
//! | `stream` | `messaging.destination.name`, `messaging.destination` |
//! | `event_id` | the configured event id attribute, `cloudevents.event_id`, `messaging.message.id` |
//! | `event_type` | the configured event type attribute, `cloudevents.event_type` |
//! | `schema` | `cloudevents.event_dataschema` |
//! | `message_id` | `messaging.message.id` |
//! | `partition` | `messaging.kafka.destination.partition`, `messaging.destination.partition.id` (when a whole number) |
//! | `offset` | `messaging.kafka.message.offset`, `messaging.kafka.offset` |
//!
//! Attributes read into a column are not kept as attributes (an attribute that loses to a more
//! precedent one is); all others are, arrays and maps as JSON text, bytes as hex. The status is
//! kept (`error` with its message; `ok` otherwise); span events, trace state, flags and the
//! instrumentation scope are dropped; links are kept.
//!
//! A consumer span that has no event id of its own but links carrying one
//! (`messaging.message.id`, `cloudevents.event_id` or the configured attribute) is a batch
//! receive: it becomes one record per such link, each with that link (and its attributes read
//! into the columns, overriding the span's), the span's other attributes, and the links without
//! an id on the first record. The first record keeps the span id; the others get a derived one,
//! the first 8 bytes (big-endian) of XXH3-64 over the span id followed by the link's index as a
//! little-endian `u32` (`1` if that is all zeros), and an attribute `muninn.batch_span_id` with
//! the original span id, so the same request always gives the same records.
//!
//! Protobuf bodies are read by `wire.rs`, which borrows from the body; OTLP/JSON goes through
//! `opentelemetry-proto`'s serde types. Both hand the mapping the same borrowed view of a span
//! (`SpanInput`), so they map alike.

use muninn_model::{
    AttributeValue, Attributes, Broker, EventColumns, FieldError, Limits, Link, Resource, Span,
    SpanId, SpanKind, Status, StatusCode, Text, TraceId, attribute_key, empty_resource,
    new_resource,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span as OtlpSpan, span, status};

use crate::body::{IngestError, IngestErrorKind};
use crate::native::{Decoded, Rejection};

mod wire;

/// The service of spans whose resource has no `service.name`, as OpenTelemetry specifies.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The attribute derived records of a batch receive carry, with the original span id.
pub const BATCH_SPAN_ID_ATTRIBUTE: &str = "muninn.batch_span_id";

/// Where to find an event's type and id beyond the semantic conventions; each configured
/// attribute takes precedence over the conventional ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpMapping {
    /// An attribute holding the event type, like `event.type`.
    pub event_type_attribute: Option<String>,
    /// An attribute holding the event id, like `event.id`.
    pub event_id_attribute: Option<String>,
}

/// Decodes an OTLP/HTTP protobuf body (`application/x-protobuf`, also the OTLP/gRPC message)
/// and maps its spans.
pub fn decode_otlp_protobuf(
    body: &[u8],
    mapping: &OtlpMapping,
    limits: &Limits,
    now_unix_nanos: i64,
) -> Result<Decoded<Span>, IngestError> {
    let mut mapper = Mapper::new(mapping, limits, now_unix_nanos, body.len() / 256);
    wire::read_request(body, &mut mapper).map_err(|wire::WireError(reason)| {
        IngestError::new(
            IngestErrorKind::Malformed,
            format!("body is not a protobuf ExportTraceServiceRequest: {reason}"),
        )
    })?;
    Ok(mapper.decoded)
}

/// Decodes an OTLP/JSON body (`application/json`: lowerCamelCase keys, hex ids, integer enums,
/// 64-bit integers as numbers or strings, unknown fields ignored) and maps its spans.
pub fn decode_otlp_json(
    body: &[u8],
    mapping: &OtlpMapping,
    limits: &Limits,
    now_unix_nanos: i64,
) -> Result<Decoded<Span>, IngestError> {
    let request: ExportTraceServiceRequest = serde_json::from_slice(body).map_err(|error| {
        let (line, column) = (error.line(), error.column());
        IngestError {
            kind: IngestErrorKind::Malformed,
            message: format!(
                "body is not an OTLP/JSON ExportTraceServiceRequest (line {line}, column {column}): {error}"
            ),
            line: Some(line),
            column: Some(column),
        }
    })?;
    Ok(otlp_spans(request, mapping, limits, now_unix_nanos))
}

/// Maps and validates the spans of a decoded request. A rejection's `index` counts spans across
/// the whole request in order, and its `field` starts with the span's place in it
/// (`resource_spans[0].scope_spans[1].spans[2].trace_id`); at most one rejection per span.
pub fn otlp_spans(
    request: ExportTraceServiceRequest,
    mapping: &OtlpMapping,
    limits: &Limits,
    now_unix_nanos: i64,
) -> Decoded<Span> {
    let n_spans = request
        .resource_spans
        .iter()
        .flat_map(|resource_spans| &resource_spans.scope_spans)
        .map(|scope_spans| scope_spans.spans.len())
        .sum();
    let mut mapper = Mapper::new(mapping, limits, now_unix_nanos, n_spans);
    for (resource_idx, resource_spans) in request.resource_spans.iter().enumerate() {
        let attributes = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .filter_map(attribute_ref)
            .collect();
        wire::Visitor::resource(&mut mapper, attributes);
        for (scope_idx, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
            for (span_idx, otlp_span) in scope_spans.spans.iter().enumerate() {
                wire::Visitor::span(
                    &mut mapper,
                    span_input(otlp_span),
                    resource_idx,
                    scope_idx,
                    span_idx,
                );
            }
        }
    }
    mapper.decoded
}

/// An attribute value as read, borrowed from the request where it can be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Bytes(&'a [u8]),
    /// An array or a map, already as JSON text.
    Json(String),
}

/// An attribute's key and value, borrowed.
pub(crate) type AttrRef<'a> = (&'a str, ValueRef<'a>);

/// What the mapping needs of one OTLP span, borrowed from the request.
pub(crate) struct SpanInput<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: &'a str,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<AttrRef<'a>>,
    pub links: Vec<LinkInput<'a>>,
    /// `(code, message)`, when the span has a status.
    pub status: Option<(i32, &'a str)>,
}

/// What the mapping needs of one OTLP link.
pub(crate) struct LinkInput<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub attributes: Vec<AttrRef<'a>>,
}

impl ValueRef<'_> {
    /// The value Muninn stores: non-finite numbers and bytes (hex) become text.
    fn into_owned(self) -> AttributeValue {
        match self {
            ValueRef::Str(text) => AttributeValue::String(Text::from(text)),
            ValueRef::Int(number) => AttributeValue::Int(number),
            ValueRef::Float(number) if number.is_finite() => AttributeValue::Float(number),
            ValueRef::Float(number) => AttributeValue::String(Text::from(number.to_string())),
            ValueRef::Bool(flag) => AttributeValue::Bool(flag),
            ValueRef::Bytes(bytes) => AttributeValue::String(Text::from(hex(bytes))),
            ValueRef::Json(text) => AttributeValue::String(Text::from(text)),
        }
    }
}

/// A scalar inside an array or map value, as JSON (bytes as hex strings, non-finite numbers
/// as strings).
pub(crate) fn json_of_values(value: &ValueRef<'_>) -> serde_json::Value {
    match value {
        ValueRef::Str(text) => serde_json::Value::from(*text),
        ValueRef::Int(number) => serde_json::Value::from(*number),
        ValueRef::Float(number) => serde_json::Number::from_f64(*number)
            .map_or_else(|| number.to_string().into(), serde_json::Value::Number),
        ValueRef::Bool(flag) => serde_json::Value::from(*flag),
        ValueRef::Bytes(bytes) => serde_json::Value::from(hex(bytes)),
        ValueRef::Json(text) => serde_json::Value::from(text.as_str()),
    }
}

/// A prost attribute as the mapping reads it; `None` when it has no value.
fn attribute_ref(key_value: &KeyValue) -> Option<AttrRef<'_>> {
    Some((
        key_value.key.as_str(),
        value_ref(key_value.value.as_ref()?.value.as_ref()?)?,
    ))
}

fn value_ref(value: &any_value::Value) -> Option<ValueRef<'_>> {
    use any_value::Value;
    Some(match value {
        Value::StringValue(text) => ValueRef::Str(text),
        Value::BoolValue(flag) => ValueRef::Bool(*flag),
        Value::IntValue(number) => ValueRef::Int(*number),
        Value::DoubleValue(number) => ValueRef::Float(*number),
        Value::BytesValue(bytes) => ValueRef::Bytes(bytes),
        Value::ArrayValue(_) | Value::KvlistValue(_) => {
            ValueRef::Json(json_of(Some(value)).to_string())
        }
        Value::StringValueStrindex(_) => return None,
    })
}

/// A prost value, arrays and maps included, as JSON.
fn json_of(value: Option<&any_value::Value>) -> serde_json::Value {
    use any_value::Value;
    match value {
        None | Some(Value::StringValueStrindex(_)) => serde_json::Value::Null,
        Some(Value::ArrayValue(array)) => serde_json::Value::Array(
            array
                .values
                .iter()
                .map(|item| json_of(item.value.as_ref()))
                .collect(),
        ),
        Some(Value::KvlistValue(list)) => serde_json::Value::Object(
            list.values
                .iter()
                .map(|entry| {
                    let value = entry.value.as_ref().and_then(|value| value.value.as_ref());
                    (entry.key.clone(), json_of(value))
                })
                .collect(),
        ),
        Some(scalar) => value_ref(scalar)
            .map(|value| json_of_values(&value))
            .unwrap_or(serde_json::Value::Null),
    }
}

/// A prost span as the mapping reads it.
fn span_input(otlp_span: &OtlpSpan) -> SpanInput<'_> {
    SpanInput {
        trace_id: &otlp_span.trace_id,
        span_id: &otlp_span.span_id,
        parent_span_id: &otlp_span.parent_span_id,
        name: &otlp_span.name,
        kind: otlp_span.kind,
        start_time_unix_nano: otlp_span.start_time_unix_nano,
        end_time_unix_nano: otlp_span.end_time_unix_nano,
        attributes: otlp_span
            .attributes
            .iter()
            .filter_map(attribute_ref)
            .collect(),
        links: otlp_span
            .links
            .iter()
            .map(|link| LinkInput {
                trace_id: &link.trace_id,
                span_id: &link.span_id,
                attributes: link.attributes.iter().filter_map(attribute_ref).collect(),
            })
            .collect(),
        status: otlp_span
            .status
            .as_ref()
            .map(|status| (status.code, status.message.as_str())),
    }
}

/// Maps the spans of one request as a reader hands them over.
struct Mapper<'m> {
    context: Context<'m>,
    decoded: Decoded<Span>,
    index: usize,
    service: Text,
    resource: Resource,
}

impl<'m> Mapper<'m> {
    fn new(
        mapping: &'m OtlpMapping,
        limits: &'m Limits,
        now_unix_nanos: i64,
        expected_spans: usize,
    ) -> Mapper<'m> {
        Mapper {
            context: Context {
                mapping,
                limits,
                now_unix_nanos,
            },
            decoded: Decoded {
                records: Vec::with_capacity(expected_spans),
                rejected: Vec::new(),
            },
            index: 0,
            service: Text::from(UNKNOWN_SERVICE),
            resource: empty_resource(),
        }
    }
}

impl wire::Visitor for Mapper<'_> {
    fn resource(&mut self, attributes: Vec<AttrRef<'_>>) {
        let (service, resource) = service_and_resource(attributes);
        self.service = service;
        self.resource = new_resource(resource);
    }

    fn span(
        &mut self,
        span: SpanInput<'_>,
        resource_idx: usize,
        scope_idx: usize,
        span_idx: usize,
    ) {
        let first_record = self.decoded.records.len();
        if let Err(error) = self.context.map_span(
            span,
            &self.service,
            &self.resource,
            &mut self.decoded.records,
        ) {
            self.decoded.records.truncate(first_record);
            let field = if error.about_resource {
                format!("resource_spans[{resource_idx}].{}", error.field)
            } else {
                format!(
                    "resource_spans[{resource_idx}].scope_spans[{scope_idx}].spans[{span_idx}].{}",
                    error.field
                )
            };
            self.decoded.rejected.push(Rejection {
                index: self.index,
                field,
                reason: error.reason,
            });
        }
        self.index += 1;
    }
}

/// A span refused: the field as named in OTLP, relative to the span or (for resource
/// attributes) to its `resource_spans` entry.
struct SpanError {
    about_resource: bool,
    field: String,
    reason: String,
}

impl SpanError {
    fn span(field: impl Into<String>, reason: impl Into<String>) -> SpanError {
        SpanError {
            about_resource: false,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

fn service_and_resource(attributes: Vec<AttrRef<'_>>) -> (Text, Attributes) {
    let mut service = None;
    let mut resource = Vec::with_capacity(attributes.len());
    for (key, value) in attributes {
        if key == "service.name" && service.is_none() {
            match scalar_text(&value) {
                Some(text) if !text.is_empty() => service = Some(text),
                Some(_) => {}
                None => resource.push((attribute_key(key), value.into_owned())),
            }
        } else {
            resource.push((attribute_key(key), value.into_owned()));
        }
    }
    (
        service.unwrap_or_else(|| Text::from(UNKNOWN_SERVICE)),
        resource,
    )
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// A scalar as text (ids sometimes arrive as numbers); `None` for anything else.
fn scalar_text(value: &ValueRef<'_>) -> Option<Text> {
    match value {
        ValueRef::Str(text) => Some(Text::from(*text)),
        ValueRef::Int(number) => Some(Text::from(number.to_string())),
        _ => None,
    }
}

/// A whole number from an integer or a decimal string (`messaging.destination.partition.id`).
fn whole_number(value: &ValueRef<'_>) -> Option<i64> {
    match value {
        ValueRef::Int(number) => Some(*number),
        ValueRef::Str(text) => text.parse().ok(),
        _ => None,
    }
}

fn broker_of(system: &str) -> Broker {
    match system.to_ascii_lowercase().as_str() {
        "kafka" => Broker::Kafka,
        "nats" => Broker::Nats,
        "pulsar" => Broker::Pulsar,
        "aws_sqs" | "sqs" => Broker::Sqs,
        "rabbitmq" => Broker::Rabbitmq,
        "redis" => Broker::Redis,
        "aws_kinesis" | "aws.kinesis" | "kinesis" => Broker::Kinesis,
        _ => Broker::Other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Produce,
    Consume,
}

fn direction_of(operation: &ValueRef<'_>) -> Option<Direction> {
    let ValueRef::Str(operation) = operation else {
        return None;
    };
    match operation.to_ascii_lowercase().as_str() {
        "publish" | "send" | "create" => Some(Direction::Produce),
        "receive" | "process" | "deliver" => Some(Direction::Consume),
        _ => None,
    }
}

/// The columns fed by attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    EventId,
    EventType,
    Schema,
    Stream,
    MessageId,
    Partition,
    Offset,
}

const N_COLUMNS: usize = 7;

/// An attribute's name as reported in errors, without an allocation per span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyName {
    Fixed(&'static str),
    ConfiguredEventType,
    ConfiguredEventId,
}

/// What an attribute means to Muninn.
enum Role {
    Keep,
    /// Feeds a column; a lower precedence number wins.
    Column(Column, u8, KeyName),
    System,
    Operation(u8),
}

fn role_of(key: &str, mapping: &OtlpMapping) -> Role {
    if mapping.event_type_attribute.as_deref() == Some(key) {
        return Role::Column(Column::EventType, 0, KeyName::ConfiguredEventType);
    }
    if mapping.event_id_attribute.as_deref() == Some(key) {
        return Role::Column(Column::EventId, 0, KeyName::ConfiguredEventId);
    }
    // Every conventional key below starts with `messaging.` or `cloudevents.`; most attributes
    // do not, and are kept after one comparison.
    if !key.starts_with("messaging.") && !key.starts_with("cloudevents.") {
        return Role::Keep;
    }
    let (column, precedence, name) = match key {
        "cloudevents.event_id" => (Column::EventId, 1, "cloudevents.event_id"),
        "cloudevents.event_type" => (Column::EventType, 1, "cloudevents.event_type"),
        "cloudevents.event_dataschema" => (Column::Schema, 0, "cloudevents.event_dataschema"),
        "messaging.destination.name" => (Column::Stream, 0, "messaging.destination.name"),
        "messaging.destination" => (Column::Stream, 1, "messaging.destination"),
        "messaging.message.id" => (Column::MessageId, 0, "messaging.message.id"),
        "messaging.kafka.destination.partition" => (
            Column::Partition,
            0,
            "messaging.kafka.destination.partition",
        ),
        "messaging.destination.partition.id" => {
            (Column::Partition, 1, "messaging.destination.partition.id")
        }
        "messaging.kafka.message.offset" => (Column::Offset, 0, "messaging.kafka.message.offset"),
        "messaging.kafka.offset" => (Column::Offset, 1, "messaging.kafka.offset"),
        "messaging.system" => return Role::System,
        "messaging.operation.type" => return Role::Operation(0),
        "messaging.operation" => return Role::Operation(1),
        _ => return Role::Keep,
    };
    Role::Column(column, precedence, KeyName::Fixed(name))
}

fn is_event_id_key(key: &str, mapping: &OtlpMapping) -> bool {
    matches!(
        role_of(key, mapping),
        Role::Column(Column::EventId | Column::MessageId, _, _)
    )
}

/// The attribute that filled a column: its name, and the link it was on (batch receives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Origin {
    key: KeyName,
    link: Option<usize>,
}

/// One column's winning attribute so far.
#[derive(Clone)]
struct Slot<'a> {
    precedence: u8,
    origin: Origin,
    key: &'a str,
    value: ValueRef<'a>,
}

/// The event columns read from one attribute list (a span's or a link's).
#[derive(Default)]
struct Columns<'a> {
    slots: [Option<Slot<'a>>; N_COLUMNS],
    broker: Option<Broker>,
    operation: Option<(u8, Direction)>,
}

impl<'a> Columns<'a> {
    /// Reads the attributes that feed columns out of `attributes`, keeping the others (and
    /// those that lose to a more precedent attribute) in order. `link` tags the origins.
    fn read(
        attributes: Vec<AttrRef<'a>>,
        mapping: &OtlpMapping,
        link: Option<usize>,
    ) -> (Columns<'a>, Attributes) {
        let mut columns = Columns::default();
        let mut kept = Vec::with_capacity(attributes.len());
        for (key, value) in attributes {
            match role_of(key, mapping) {
                Role::Keep => kept.push((attribute_key(key), value.into_owned())),
                Role::System => {
                    let broker = match &value {
                        ValueRef::Str(system) => broker_of(system),
                        _ => Broker::Other,
                    };
                    columns.broker = Some(broker);
                    if broker == Broker::Other {
                        kept.push((attribute_key(key), value.into_owned()));
                    }
                }
                Role::Operation(precedence) => {
                    if let Some(direction) = direction_of(&value)
                        && columns
                            .operation
                            .is_none_or(|(existing, _)| precedence < existing)
                    {
                        columns.operation = Some((precedence, direction));
                    }
                    kept.push((attribute_key(key), value.into_owned()));
                }
                Role::Column(column, precedence, name) => {
                    let usable = match column {
                        Column::Partition => whole_number(&value)
                            .is_some_and(|number| i32::try_from(number).is_ok_and(|n| n >= 0)),
                        Column::Offset => whole_number(&value).is_some_and(|number| number >= 0),
                        _ => match &value {
                            ValueRef::Str(text) => !text.is_empty(),
                            ValueRef::Int(_) => true,
                            _ => false,
                        },
                    };
                    let slot = &mut columns.slots[column as usize];
                    if !usable
                        || slot
                            .as_ref()
                            .is_some_and(|slot| slot.precedence <= precedence)
                    {
                        kept.push((attribute_key(key), value.into_owned()));
                        continue;
                    }
                    let winner = Slot {
                        precedence,
                        origin: Origin { key: name, link },
                        key,
                        value,
                    };
                    if let Some(loser) = slot.replace(winner) {
                        kept.push((attribute_key(loser.key), loser.value.into_owned()));
                    }
                }
            }
        }
        (columns, kept)
    }

    fn has(&self, column: Column) -> bool {
        self.slots[column as usize].is_some()
    }

    /// `other`'s columns where it has them (a link's over its span's).
    fn overlaid_by(&self, other: Columns<'a>) -> Columns<'a> {
        let mut merged = Columns {
            slots: Default::default(),
            broker: other.broker.or(self.broker),
            operation: other.operation.or(self.operation),
        };
        for (index, (mine, theirs)) in self.slots.iter().zip(other.slots).enumerate() {
            merged.slots[index] = theirs.or_else(|| mine.clone());
        }
        merged
    }

    /// The event columns, and where each came from (for error messages).
    fn into_event(self) -> (EventColumns, [Option<Origin>; N_COLUMNS]) {
        let mut origins = [None; N_COLUMNS];
        let mut texts: [Option<Text>; N_COLUMNS] = Default::default();
        let mut numbers: [Option<i64>; N_COLUMNS] = [None; N_COLUMNS];
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            origins[index] = Some(slot.origin);
            if index == Column::Partition as usize || index == Column::Offset as usize {
                numbers[index] = whole_number(&slot.value);
            } else {
                texts[index] = scalar_text(&slot.value);
            }
        }
        let [event_id, event_type, schema, stream, message_id, _, _] = texts;
        let event_id = match event_id {
            Some(event_id) => Some(event_id),
            None => {
                origins[Column::EventId as usize] = origins[Column::MessageId as usize];
                message_id.clone()
            }
        };
        let event = EventColumns {
            event_id,
            event_type,
            schema,
            stream,
            broker: self.broker,
            modified: false,
            partition: numbers[Column::Partition as usize]
                .and_then(|number| i32::try_from(number).ok()),
            offset: numbers[Column::Offset as usize],
            message_id,
        };
        (event, origins)
    }
}

fn trace_id(bytes: &[u8], field: &str) -> Result<TraceId, SpanError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| {
        SpanError::span(
            field,
            format!(
                "must be 16 bytes (32 hex characters in OTLP/JSON), got {}",
                bytes.len()
            ),
        )
    })?;
    if bytes == [0; 16] {
        return Err(SpanError::span(field, "must not be all zeros"));
    }
    Ok(TraceId(bytes))
}

fn span_id(bytes: &[u8], field: &str) -> Result<SpanId, SpanError> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        SpanError::span(
            field,
            format!(
                "must be 8 bytes (16 hex characters in OTLP/JSON), got {}",
                bytes.len()
            ),
        )
    })?;
    if bytes == [0; 8] {
        return Err(SpanError::span(field, "must not be all zeros"));
    }
    Ok(SpanId(bytes))
}

fn unix_nanos(value: u64, field: &str) -> Result<i64, SpanError> {
    i64::try_from(value).map_err(|_| {
        SpanError::span(
            field,
            format!("{value} is beyond the year 2262; send nanoseconds since 1970"),
        )
    })
}

/// The span id of the record for link `link_idx` of batch span `span_id` (see the module docs).
pub fn derived_span_id(span_id: SpanId, link_idx: usize) -> SpanId {
    let mut input = [0u8; 12];
    input[..8].copy_from_slice(&span_id.0);
    input[8..].copy_from_slice(&u32::try_from(link_idx).unwrap_or(u32::MAX).to_le_bytes());
    let bytes = xxhash_rust::xxh3::xxh3_64(&input).to_be_bytes();
    if bytes == [0; 8] {
        SpanId([0, 0, 0, 0, 0, 0, 0, 1])
    } else {
        SpanId(bytes)
    }
}

/// What every span of a request is mapped with.
struct Context<'a> {
    mapping: &'a OtlpMapping,
    limits: &'a Limits,
    now_unix_nanos: i64,
}

/// A record being built and where its links came from (for error messages).
struct Draft {
    span: Span,
    link_origins: Vec<usize>,
    origins: [Option<Origin>; N_COLUMNS],
}

impl Context<'_> {
    /// Maps one OTLP span to one record (or one per message of a batch receive) and validates
    /// them, appending to `records`; on an error, what it appended is for the caller to drop.
    fn map_span(
        &self,
        input: SpanInput<'_>,
        service: &str,
        resource: &Resource,
        records: &mut Vec<Span>,
    ) -> Result<(), SpanError> {
        let trace = trace_id(input.trace_id, "trace_id")?;
        let id = span_id(input.span_id, "span_id")?;
        let parent_span_id = if input.parent_span_id.is_empty() {
            None
        } else {
            Some(span_id(input.parent_span_id, "parent_span_id")?)
        };
        let start = unix_nanos(input.start_time_unix_nano, "start_time_unix_nano")?;
        let end = unix_nanos(input.end_time_unix_nano, "end_time_unix_nano")?;
        if end < start {
            return Err(SpanError::span(
                "end_time_unix_nano",
                format!("{end} is before start_time_unix_nano {start}"),
            ));
        }
        let status = match input.status {
            Some((code, message)) if code == status::StatusCode::Error as i32 => Status {
                code: StatusCode::Error,
                message: (!message.is_empty()).then(|| Text::from(message)),
            },
            _ => Status::default(),
        };
        let (columns, attributes) = Columns::read(input.attributes, self.mapping, None);
        let kind = match span::SpanKind::try_from(input.kind) {
            Ok(span::SpanKind::Producer) => SpanKind::Producer,
            Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
            other => match columns.operation.map(|(_, direction)| direction) {
                Some(Direction::Produce) => SpanKind::Producer,
                Some(Direction::Consume) => SpanKind::Consumer,
                None => match other {
                    Ok(span::SpanKind::Server) => SpanKind::Server,
                    Ok(span::SpanKind::Client) => SpanKind::Client,
                    _ => SpanKind::Internal,
                },
            },
        };
        // Links with their attributes still borrowed: a batch receive reads them into columns.
        let mut links = Vec::with_capacity(input.links.len());
        for (link_idx, link) in input.links.into_iter().enumerate() {
            let ids = (
                trace_id(link.trace_id, &format!("links[{link_idx}].trace_id"))?,
                span_id(link.span_id, &format!("links[{link_idx}].span_id"))?,
            );
            links.push((ids, link.attributes));
        }
        let carries_id = |attributes: &[AttrRef<'_>]| {
            attributes
                .iter()
                .any(|(key, _)| is_event_id_key(key, self.mapping))
        };
        let is_batch_receive = kind == SpanKind::Consumer
            && !columns.has(Column::EventId)
            && !columns.has(Column::MessageId)
            && links.iter().any(|(_, attributes)| carries_id(attributes));
        let owned_link =
            |(trace_id, span_id): (TraceId, SpanId), attributes: Vec<AttrRef<'_>>| Link {
                trace_id,
                span_id,
                attributes: attributes
                    .into_iter()
                    .map(|(key, value)| (attribute_key(key), value.into_owned()))
                    .collect(),
            };
        let template = Span {
            trace_id: trace,
            span_id: id,
            parent_span_id,
            name: Text::from(input.name),
            kind,
            service: Text::from(service),
            resource: resource.clone(),
            start_unix_nanos: start,
            duration_nanos: end - start,
            status,
            attributes,
            links: Vec::new(),
            event: EventColumns::default(),
        };
        if !is_batch_receive {
            let (event, origins) = columns.into_event();
            let draft = Draft {
                span: Span {
                    links: links
                        .into_iter()
                        .map(|(ids, attributes)| owned_link(ids, attributes))
                        .collect(),
                    event,
                    ..template
                },
                link_origins: Vec::new(),
                origins,
            };
            records.push(self.validated(draft)?);
            return Ok(());
        }
        let mut unlinked = Vec::new();
        let mut unlinked_origins = Vec::new();
        let mut drafts: Vec<Draft> = Vec::new();
        for (link_idx, ((link_trace_id, link_span_id), attributes)) in links.into_iter().enumerate()
        {
            if !carries_id(&attributes) {
                unlinked.push(owned_link((link_trace_id, link_span_id), attributes));
                unlinked_origins.push(link_idx);
                continue;
            }
            let (link_columns, kept) = Columns::read(attributes, self.mapping, Some(link_idx));
            let (event, origins) = columns.overlaid_by(link_columns).into_event();
            let mut span = Span {
                links: vec![Link {
                    trace_id: link_trace_id,
                    span_id: link_span_id,
                    attributes: kept,
                }],
                event,
                ..template.clone()
            };
            if !drafts.is_empty() {
                span.span_id = derived_span_id(id, link_idx);
                span.attributes.push((
                    Text::from(BATCH_SPAN_ID_ATTRIBUTE),
                    AttributeValue::String(Text::from(id.to_hex())),
                ));
            }
            drafts.push(Draft {
                span,
                link_origins: vec![link_idx],
                origins,
            });
        }
        if let Some(first_draft) = drafts.first_mut() {
            first_draft.span.links.append(&mut unlinked);
            first_draft.link_origins.append(&mut unlinked_origins);
        }
        for draft in drafts {
            let span = self.validated(draft)?;
            records.push(span);
        }
        Ok(())
    }

    /// Checks a record against the limits, naming the offending OTLP field on failure.
    fn validated(&self, draft: Draft) -> Result<Span, SpanError> {
        match self.limits.check_span(&draft.span, self.now_unix_nanos) {
            Ok(()) => Ok(draft.span),
            Err(error) => Err(self.otlp_field(&draft, error)),
        }
    }

    /// Muninn's field name of a validation error → the OTLP field it came from.
    fn otlp_field(&self, draft: &Draft, error: FieldError) -> SpanError {
        let FieldError { field, reason } = error;
        let column = match field.as_str() {
            "event_id" => Some(Column::EventId),
            "event_type" => Some(Column::EventType),
            "schema" => Some(Column::Schema),
            "stream" => Some(Column::Stream),
            "message_id" => Some(Column::MessageId),
            "partition" => Some(Column::Partition),
            "offset" => Some(Column::Offset),
            _ => None,
        };
        if let Some(origin) = column.and_then(|column| draft.origins[column as usize]) {
            let key = match origin.key {
                KeyName::Fixed(name) => name,
                KeyName::ConfiguredEventType => self
                    .mapping
                    .event_type_attribute
                    .as_deref()
                    .unwrap_or_default(),
                KeyName::ConfiguredEventId => self
                    .mapping
                    .event_id_attribute
                    .as_deref()
                    .unwrap_or_default(),
            };
            let field = match origin.link {
                None => format!("attributes[{key}]"),
                Some(link_idx) => format!("links[{link_idx}].attributes[{key}]"),
            };
            return SpanError::span(field, reason);
        }
        if field == "service" {
            return SpanError {
                about_resource: true,
                field: "resource.attributes[service.name]".to_string(),
                reason,
            };
        }
        if field == "duration_nano" {
            return SpanError::span("end_time_unix_nano", reason);
        }
        if field == "resource" {
            return SpanError {
                about_resource: true,
                field: "resource.attributes".to_string(),
                reason,
            };
        }
        if let Some(rest) = field.strip_prefix("resource[") {
            return SpanError {
                about_resource: true,
                field: attribute_field("resource.attributes", rest, &draft.span.resource),
                reason,
            };
        }
        if let Some(rest) = field.strip_prefix("attributes[") {
            return SpanError::span(
                attribute_field("attributes", rest, &draft.span.attributes),
                reason,
            );
        }
        if let Some(rest) = field.strip_prefix("links[")
            && let Some((link_idx, rest)) = rest.split_once("].attributes[")
            && let Ok(link_idx) = link_idx.parse::<usize>()
            && let Some(link) = draft.span.links.get(link_idx)
        {
            let original = draft
                .link_origins
                .get(link_idx)
                .copied()
                .unwrap_or(link_idx);
            return SpanError::span(
                attribute_field(
                    &format!("links[{original}].attributes"),
                    rest,
                    &link.attributes,
                ),
                reason,
            );
        }
        SpanError::span(field, reason)
    }
}

/// `3].value` of `attributes[3].value` → `attributes[http.url]` when the key is short enough to
/// name, else the index as it was.
fn attribute_field(prefix: &str, rest: &str, attributes: &Attributes) -> String {
    let index = rest
        .split_once(']')
        .and_then(|(index, _)| index.parse::<usize>().ok());
    match index.and_then(|index| attributes.get(index)) {
        Some((key, _)) if !key.is_empty() && key.len() <= 64 => format!("{prefix}[{key}]"),
        _ => format!("{prefix}[{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status as OtlpStatus};
    use prost::Message;

    const NOW: i64 = 1_795_000_000_000_000_000;
    const TRACE: [u8; 16] = [0x4b; 16];

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_string())),
            }),
            ..Default::default()
        }
    }

    fn int(key: &str, value: i64) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(value)),
            }),
            ..Default::default()
        }
    }

    fn otlp_span(id: u8, kind: span::SpanKind, attributes: Vec<KeyValue>) -> OtlpSpan {
        OtlpSpan {
            trace_id: TRACE.to_vec(),
            span_id: vec![id; 8],
            name: format!("span {id}"),
            kind: kind as i32,
            start_time_unix_nano: (NOW - 1_000_000_000) as u64,
            end_time_unix_nano: (NOW - 999_000_000) as u64,
            attributes,
            ..Default::default()
        }
    }

    fn request(resource: Vec<KeyValue>, spans: Vec<OtlpSpan>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn map(request: ExportTraceServiceRequest, mapping: &OtlpMapping) -> Decoded<Span> {
        otlp_spans(request, mapping, &Limits::default(), NOW)
    }

    fn keys(attributes: &Attributes) -> Vec<&str> {
        attributes.iter().map(|(key, _)| key.as_str()).collect()
    }

    #[test]
    fn messaging_conventions_fill_the_event_columns() {
        let producer = otlp_span(
            1,
            span::SpanKind::Producer,
            vec![
                text("messaging.system", "kafka"),
                text("messaging.destination.name", "orders"),
                text("messaging.operation.type", "send"),
                text("messaging.message.id", "m-1"),
                text("cloudevents.event_id", "e-1"),
                text("cloudevents.event_type", "order.created"),
                text("cloudevents.event_dataschema", "order.v1"),
                int("messaging.kafka.destination.partition", 3),
                int("messaging.kafka.message.offset", 42),
                text("region", "eu"),
            ],
        );
        let decoded = map(
            request(
                vec![text("service.name", "checkout"), text("host.name", "web-1")],
                vec![producer],
            ),
            &OtlpMapping::default(),
        );
        assert_eq!(decoded.rejected, Vec::new());
        let span = &decoded.records[0];
        assert_eq!(span.service, "checkout");
        assert_eq!(keys(&span.resource), ["host.name"]);
        assert_eq!(span.kind, SpanKind::Producer);
        assert_eq!(
            span.event,
            EventColumns {
                event_id: Some("e-1".into()),
                event_type: Some("order.created".into()),
                schema: Some("order.v1".into()),
                stream: Some("orders".into()),
                broker: Some(Broker::Kafka),
                modified: false,
                partition: Some(3),
                offset: Some(42),
                message_id: Some("m-1".into()),
            }
        );
        assert_eq!(
            keys(&span.attributes),
            ["messaging.operation.type", "region"]
        );
        assert_eq!(span.duration_nanos, 1_000_000);
    }

    #[test]
    fn the_operation_type_decides_the_kind_of_client_and_internal_spans() {
        let spans = [
            ("publish", span::SpanKind::Client, SpanKind::Producer),
            ("create", span::SpanKind::Internal, SpanKind::Producer),
            ("receive", span::SpanKind::Client, SpanKind::Consumer),
            ("process", span::SpanKind::Unspecified, SpanKind::Consumer),
            ("settle", span::SpanKind::Client, SpanKind::Client),
            ("receive", span::SpanKind::Producer, SpanKind::Producer),
        ];
        for (operation, otlp_kind, expected) in spans {
            let span = otlp_span(
                1,
                otlp_kind,
                vec![text("messaging.operation.type", operation)],
            );
            let decoded = map(request(Vec::new(), vec![span]), &OtlpMapping::default());
            assert_eq!(
                decoded.records[0].kind, expected,
                "{operation} {otlp_kind:?}"
            );
            assert_eq!(decoded.records[0].service, UNKNOWN_SERVICE);
        }
    }

    #[test]
    fn configured_attributes_win_and_losers_stay_attributes() {
        let mapping = OtlpMapping {
            event_type_attribute: Some("event.type".into()),
            event_id_attribute: Some("event.id".into()),
        };
        let span = otlp_span(
            1,
            span::SpanKind::Consumer,
            vec![
                text("cloudevents.event_type", "ce.type"),
                text("event.type", "order.paid"),
                text("messaging.message.id", "m-9"),
                int("event.id", 77),
                text("messaging.system", "servicebus"),
                text("messaging.destination.partition.id", "shard-1"),
            ],
        );
        let decoded = map(request(Vec::new(), vec![span]), &mapping);
        let span = &decoded.records[0];
        assert_eq!(span.event.event_type.as_deref(), Some("order.paid"));
        assert_eq!(span.event.event_id.as_deref(), Some("77"));
        assert_eq!(span.event.message_id.as_deref(), Some("m-9"));
        assert_eq!(span.event.broker, Some(Broker::Other));
        assert_eq!(span.event.partition, None);
        assert_eq!(
            keys(&span.attributes),
            [
                "cloudevents.event_type",
                "messaging.system",
                "messaging.destination.partition.id"
            ]
        );
    }

    #[test]
    fn a_batch_receive_becomes_one_record_per_linked_message() {
        let link = |id: u8, message: Option<&str>| span::Link {
            trace_id: vec![id; 16],
            span_id: vec![id; 8],
            attributes: message
                .map(|message| vec![text("messaging.message.id", message), int("n", 1)])
                .unwrap_or_default(),
            ..Default::default()
        };
        let mut batch = otlp_span(
            9,
            span::SpanKind::Consumer,
            vec![
                text("messaging.system", "nats"),
                text("messaging.destination.name", "orders"),
                text("messaging.operation.type", "receive"),
            ],
        );
        batch.links = vec![link(1, Some("m-1")), link(2, None), link(3, Some("m-3"))];
        let decoded = map(
            request(Vec::new(), vec![batch.clone()]),
            &OtlpMapping::default(),
        );
        assert_eq!(decoded.rejected, Vec::new());
        let records = &decoded.records;
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].span_id, SpanId([9; 8]));
        assert_eq!(records[1].span_id, derived_span_id(SpanId([9; 8]), 2));
        assert_ne!(records[1].span_id, records[0].span_id);
        for (record, message) in records.iter().zip(["m-1", "m-3"]) {
            assert_eq!(record.event.event_id.as_deref(), Some(message));
            assert_eq!(record.event.stream.as_deref(), Some("orders"));
            assert_eq!(record.kind, SpanKind::Consumer);
        }
        assert_eq!(
            records[0].links.len(),
            2,
            "the link without an id goes first"
        );
        assert_eq!(keys(&records[0].links[0].attributes), ["n"]);
        assert_eq!(records[1].links[0].span_id, SpanId([3; 8]));
        assert_eq!(
            records[1].attributes.last(),
            Some(&(
                BATCH_SPAN_ID_ATTRIBUTE.into(),
                AttributeValue::String("0909090909090909".into())
            ))
        );
        // Deterministic: the same request gives the same records.
        let again = map(request(Vec::new(), vec![batch]), &OtlpMapping::default());
        assert_eq!(again.records, decoded.records);
    }

    #[test]
    fn invalid_spans_are_rejected_alone_naming_the_otlp_field() {
        let good = otlp_span(1, span::SpanKind::Internal, Vec::new());
        let mut short_id = otlp_span(2, span::SpanKind::Internal, Vec::new());
        short_id.trace_id = vec![1, 2, 3];
        let long_stream = otlp_span(
            3,
            span::SpanKind::Producer,
            vec![text("messaging.destination.name", &"s".repeat(600))],
        );
        let mut backwards = otlp_span(4, span::SpanKind::Internal, Vec::new());
        backwards.end_time_unix_nano = 5;
        let long_value = otlp_span(
            5,
            span::SpanKind::Internal,
            vec![text("url", &"u".repeat(5000))],
        );
        let decoded = map(
            request(
                Vec::new(),
                vec![good, short_id, long_stream, backwards, long_value],
            ),
            &OtlpMapping::default(),
        );
        assert_eq!(decoded.records.len(), 1);
        let fields: Vec<(usize, &str)> = decoded
            .rejected
            .iter()
            .map(|rejection| (rejection.index, rejection.field.as_str()))
            .collect();
        let at = "resource_spans[0].scope_spans[0].spans";
        assert_eq!(
            fields,
            [
                (1, format!("{at}[1].trace_id").as_str()),
                (
                    2,
                    format!("{at}[2].attributes[messaging.destination.name]").as_str()
                ),
                (3, format!("{at}[3].end_time_unix_nano").as_str()),
                (4, format!("{at}[4].attributes[url]").as_str()),
            ]
        );
        assert!(decoded.rejected[0].reason.contains("16 bytes"));
    }

    #[test]
    fn values_of_every_type_are_kept() {
        use any_value::Value;
        let value = |value| AnyValue { value: Some(value) };
        let attributes = vec![
            KeyValue {
                key: "list".into(),
                value: Some(value(Value::ArrayValue(
                    opentelemetry_proto::tonic::common::v1::ArrayValue {
                        values: vec![
                            value(Value::StringValue("a".into())),
                            value(Value::IntValue(2)),
                        ],
                    },
                ))),
                ..Default::default()
            },
            KeyValue {
                key: "bytes".into(),
                value: Some(value(Value::BytesValue(vec![0xca, 0xfe]))),
                ..Default::default()
            },
            KeyValue {
                key: "nan".into(),
                value: Some(value(Value::DoubleValue(f64::NAN))),
                ..Default::default()
            },
            KeyValue {
                key: "empty".into(),
                value: None,
                ..Default::default()
            },
        ];
        let decoded = map(
            request(
                Vec::new(),
                vec![otlp_span(1, span::SpanKind::Server, attributes)],
            ),
            &OtlpMapping::default(),
        );
        let span = &decoded.records[0];
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(
            span.attributes,
            vec![
                ("list".into(), AttributeValue::String(r#"["a",2]"#.into())),
                ("bytes".into(), AttributeValue::String("cafe".into())),
                ("nan".into(), AttributeValue::String("NaN".into())),
            ]
        );
    }

    #[test]
    fn json_reads_hex_ids_string_integers_and_ignores_unknown_fields() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}}]},
            "scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"4B4B4B4B4B4B4B4B4B4B4B4B4B4B4B4B","spanId":"0102030405060708",
            "name":"process orders","kind":5,"startTimeUnixNano":"1794999999000000000","endTimeUnixNano":1794999999500000000,
            "attributes":[{"key":"messaging.destination.name","value":{"stringValue":"orders"}},
                          {"key":"messaging.kafka.message.offset","value":{"intValue":"17"}}],
            "status":{"code":2,"message":"boom"},"surprise":{"nested":[1]}}]}]}]}"#;
        let decoded =
            decode_otlp_json(body, &OtlpMapping::default(), &Limits::default(), NOW).unwrap();
        assert_eq!(decoded.rejected, Vec::new());
        let span = &decoded.records[0];
        assert_eq!(span.trace_id, TraceId(TRACE));
        assert_eq!(span.span_id.to_hex(), "0102030405060708");
        assert_eq!(span.kind, SpanKind::Consumer);
        assert_eq!(span.event.offset, Some(17));
        assert_eq!(span.status.code, StatusCode::Error);
        assert_eq!(span.duration_nanos, 500_000_000);
        let error = decode_otlp_json(
            b"{\"resourceSpans\": [",
            &OtlpMapping::default(),
            &Limits::default(),
            NOW,
        )
        .unwrap_err();
        assert_eq!(error.kind, IngestErrorKind::Malformed);
        assert_eq!(error.line, Some(1));
    }

    #[test]
    fn protobuf_round_trips_and_garbage_is_refused() {
        let request = request(
            vec![text("service.name", "checkout")],
            vec![otlp_span(1, span::SpanKind::Producer, Vec::new())],
        );
        let decoded = decode_otlp_protobuf(
            &request.encode_to_vec(),
            &OtlpMapping::default(),
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(decoded.records.len(), 1);
        let error = decode_otlp_protobuf(
            b"\x0a\xff\xff\xff\xff\x0f",
            &OtlpMapping::default(),
            &Limits::default(),
            NOW,
        )
        .unwrap_err();
        assert_eq!(error.kind, IngestErrorKind::Malformed);
    }

    /// Decodes with prost and maps the owned request (the OTLP/JSON path), to hold the borrowing
    /// reader against.
    fn with_prost(body: &[u8]) -> Option<Decoded<Span>> {
        let request = ExportTraceServiceRequest::decode(body).ok()?;
        Some(otlp_spans(request, &mapping(), &Limits::default(), NOW))
    }

    fn with_wire(body: &[u8]) -> Result<Decoded<Span>, IngestError> {
        decode_otlp_protobuf(body, &mapping(), &Limits::default(), NOW)
    }

    fn mapping() -> OtlpMapping {
        OtlpMapping {
            event_type_attribute: Some("event.type".into()),
            event_id_attribute: None,
        }
    }

    /// A request with every kind of value, nesting, links, statuses and a batch receive.
    fn everything() -> ExportTraceServiceRequest {
        use any_value::Value;
        let value = |value| Some(AnyValue { value: Some(value) });
        let array = |values: Vec<Value>| {
            Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: values
                    .into_iter()
                    .map(|value| AnyValue { value: Some(value) })
                    .collect(),
            })
        };
        let map = Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList {
            values: vec![
                KeyValue {
                    key: "inner".into(),
                    value: value(array(vec![
                        Value::IntValue(1),
                        Value::DoubleValue(f64::INFINITY),
                    ])),
                    ..Default::default()
                },
                KeyValue {
                    key: "nothing".into(),
                    value: None,
                    ..Default::default()
                },
            ],
        });
        let mut producer = otlp_span(
            1,
            span::SpanKind::Producer,
            vec![
                text("messaging.system", "pulsar"),
                text("messaging.destination.name", "orders"),
                text("event.type", "order.created"),
                int("messaging.destination.partition.id", 4),
                KeyValue {
                    key: "list".into(),
                    value: value(array(vec![
                        Value::StringValue("a".into()),
                        Value::BoolValue(true),
                        Value::BytesValue(vec![1, 255]),
                        map.clone(),
                    ])),
                    ..Default::default()
                },
                KeyValue {
                    key: "ratio".into(),
                    value: value(Value::DoubleValue(0.25)),
                    ..Default::default()
                },
                KeyValue {
                    key: "nan".into(),
                    value: value(Value::DoubleValue(f64::NAN)),
                    ..Default::default()
                },
                KeyValue {
                    key: "map".into(),
                    value: value(map),
                    ..Default::default()
                },
            ],
        );
        producer.status = Some(OtlpStatus {
            message: "broken".into(),
            code: status::StatusCode::Error as i32,
        });
        producer.parent_span_id = vec![7; 8];
        let mut batch = otlp_span(
            2,
            span::SpanKind::Client,
            vec![text("messaging.operation.type", "receive")],
        );
        batch.links = (0..3)
            .map(|index| span::Link {
                trace_id: vec![index + 1; 16],
                span_id: vec![index + 1; 8],
                attributes: if index == 1 {
                    vec![text("reason", "retry")]
                } else {
                    vec![
                        text("messaging.message.id", &format!("m-{index}")),
                        int("n", 1),
                    ]
                },
                ..Default::default()
            })
            .collect();
        let mut second = request(
            vec![text("service.name", "billing")],
            vec![batch, otlp_span(3, span::SpanKind::Server, Vec::new())],
        );
        let mut first = request(
            vec![text("service.name", "checkout"), int("pid", 42)],
            vec![producer],
        );
        first.resource_spans.append(&mut second.resource_spans);
        first
    }

    #[test]
    fn the_borrowing_reader_reads_what_prost_reads() {
        let body = everything().encode_to_vec();
        let expected = with_prost(&body).unwrap();
        assert_eq!(expected.records.len(), 4, "{:?}", expected.rejected);
        assert_eq!(with_wire(&body).unwrap(), expected);
        let list = &expected.records[0]
            .attributes
            .iter()
            .find(|(key, _)| key == "list")
            .unwrap()
            .1;
        assert_eq!(
            list,
            &AttributeValue::String(
                r#"["a",true,"01ff",{"inner":[1,"inf"],"nothing":null}]"#.into()
            )
        );
        assert_eq!(expected.records[0].event.partition, Some(4));
        assert_eq!(expected.records[0].event.broker, Some(Broker::Pulsar));
        assert_eq!(expected.records[1].kind, SpanKind::Consumer);
    }

    /// Protobuf's rules for repeated occurrences: singular fields keep the last, repeated ones
    /// and messages merge; unknown fields, groups included, are skipped.
    #[test]
    fn repeated_and_unknown_fields_are_read_as_prost_reads_them() {
        fn field(number: u32, wire_type: u8, payload: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            prost::encoding::encode_varint(u64::from(number << 3 | u32::from(wire_type)), &mut out);
            if wire_type == 2 {
                prost::encoding::encode_varint(payload.len() as u64, &mut out);
            }
            out.extend_from_slice(payload);
            out
        }
        let mut span_bytes =
            otlp_span(1, span::SpanKind::Producer, vec![text("a", "1")]).encode_to_vec();
        // A second trace id (last wins), a second name, another attribute, two statuses, an
        // unknown varint and an unknown group.
        span_bytes.extend(field(1, 2, &[9; 16]));
        span_bytes.extend(field(5, 2, b"renamed"));
        span_bytes.extend(field(9, 2, &text("b", "2").encode_to_vec()));
        span_bytes.extend(field(
            15,
            2,
            &OtlpStatus {
                message: "first".into(),
                code: 2,
            }
            .encode_to_vec(),
        ));
        span_bytes.extend(field(
            15,
            2,
            &OtlpStatus {
                message: String::new(),
                code: 0,
            }
            .encode_to_vec(),
        ));
        span_bytes.extend(field(15, 2, &field(2, 2, b"second")));
        span_bytes.extend(field(77, 0, &[5]));
        let mut group = field(78, 3, &[]);
        group.extend(field(1, 0, &[1]));
        group.extend(field(78, 4, &[]));
        span_bytes.extend(group.clone());
        // An AnyValue whose array value comes in two parts, which merge.
        let two_arrays = {
            let item = |text: &str| {
                field(
                    1,
                    2,
                    &AnyValue {
                        value: Some(any_value::Value::StringValue(text.into())),
                    }
                    .encode_to_vec(),
                )
            };
            let mut any = field(5, 2, &item("x"));
            any.extend(field(5, 2, &item("y")));
            let mut key_value = field(1, 2, b"merged");
            key_value.extend(field(2, 2, &any));
            key_value
        };
        span_bytes.extend(field(9, 2, &two_arrays));
        let scope = field(2, 2, &span_bytes);
        let mut resource_spans = field(2, 2, &scope);
        // The resource after the spans, in two parts.
        resource_spans.extend(field(
            1,
            2,
            &field(1, 2, &text("service.name", "late").encode_to_vec()),
        ));
        resource_spans.extend(field(
            1,
            2,
            &field(1, 2, &text("zone", "b").encode_to_vec()),
        ));
        let mut body = field(1, 2, &resource_spans);
        body.extend(group);
        let expected = with_prost(&body).expect("prost reads it");
        assert_eq!(with_wire(&body).unwrap(), expected);
        let span = &expected.records[0];
        assert_eq!(span.trace_id, TraceId([9; 16]));
        assert_eq!(span.name, "renamed");
        assert_eq!(span.service, "late");
        assert_eq!(span.status.message.as_deref(), Some("second"));
        assert_eq!(keys(&span.attributes), ["a", "b", "merged"]);
        assert_eq!(
            span.attributes[2].1,
            AttributeValue::String(r#"["x","y"]"#.into())
        );
    }

    /// Mutated bodies: whatever prost reads, the borrowing reader reads the same; neither panics.
    #[test]
    fn mutated_bodies_read_the_same_with_prost_and_the_borrowing_reader() {
        let original = everything().encode_to_vec();
        let mut n_read_by_prost = 0;
        for body in crate::mutate::mutations(
            &original,
            0x2545_f491_4f6c_dd1d,
            0x9e37_79b9_7f4a_7c15,
            20_000,
            3,
        ) {
            let wire = with_wire(&body);
            if let Some(expected) = with_prost(&body) {
                n_read_by_prost += 1;
                assert_eq!(wire.as_ref().ok(), Some(&expected), "body {body:?}");
            }
        }
        assert!(
            n_read_by_prost > 1000,
            "only {n_read_by_prost} mutated bodies decoded"
        );
    }

    /// Mutated protobuf bodies never panic, and every span kept passes validation.
    #[test]
    fn mutated_protobuf_never_panics() {
        let link = span::Link {
            trace_id: vec![7; 16],
            span_id: vec![7; 8],
            attributes: vec![text("messaging.message.id", "m-1")],
            ..Default::default()
        };
        let mut consumer = otlp_span(
            2,
            span::SpanKind::Consumer,
            vec![text("messaging.destination.name", "orders")],
        );
        consumer.links = vec![link.clone(), link];
        let original = request(
            vec![text("service.name", "checkout")],
            vec![
                otlp_span(
                    1,
                    span::SpanKind::Producer,
                    vec![text("cloudevents.event_id", "e")],
                ),
                consumer,
            ],
        )
        .encode_to_vec();
        let limits = Limits::default();
        for body in crate::mutate::mutations(
            &original,
            0x9e37_79b9_7f4a_7c15,
            0x2545_f491_4f6c_dd1d,
            5000,
            4,
        ) {
            if let Ok(decoded) = decode_otlp_protobuf(&body, &OtlpMapping::default(), &limits, NOW)
            {
                for span in &decoded.records {
                    assert!(limits.check_span(span, NOW).is_ok());
                }
            }
        }
    }
}
