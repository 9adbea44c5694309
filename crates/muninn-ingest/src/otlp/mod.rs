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

mod columns;
mod wire;

use columns::*;

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
mod tests;
