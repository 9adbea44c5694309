//! The native JSON ingest format used by the Muninn SDK: one object per span (or count), in a
//! JSON array or as NDJSON. Field names follow OpenTelemetry where it has one; the
//! event-streaming columns are flat, top-level fields. Unknown fields are ignored.

use muninn_model::{
    Action, AttributeValue, Attributes, Broker, EventColumns, EventCount, FieldError, Limits, Link,
    Resource, Span, SpanId, SpanKind, Status, StatusCode, Text, TraceId, empty_resource,
    new_resource,
};
use serde::Deserialize;
use std::borrow::Cow;
use std::cell::RefCell;

use serde_json::value::RawValue;

use crate::body::{IngestError, IngestErrorKind};

/// One invalid record: its 0-based index in the batch, the field, and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub index: usize,
    pub field: String,
    pub reason: String,
}

/// The valid records of a batch and the rejections of the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    pub records: Vec<T>,
    pub rejected: Vec<Rejection>,
}

/// A number that may also arrive as a decimal string (JavaScript cannot hold 64-bit integers).
enum WireInteger {
    Number(i64),
    Text(String),
}

/// Read by its own visitor rather than as an untagged enum, which buffers every value to try
/// each variant in turn (two fields of every span).
impl<'de> Deserialize<'de> for WireInteger {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntegerVisitor;
        impl serde::de::Visitor<'_> for IntegerVisitor {
            type Value = WireInteger;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an integer, or an integer as a decimal string")
            }
            fn visit_i64<E>(self, number: i64) -> Result<WireInteger, E> {
                Ok(WireInteger::Number(number))
            }
            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<WireInteger, E> {
                i64::try_from(number).map(WireInteger::Number).map_err(|_| {
                    E::custom(format!("{number} does not fit a signed 64-bit integer"))
                })
            }
            fn visit_str<E>(self, text: &str) -> Result<WireInteger, E> {
                Ok(WireInteger::Text(text.to_string()))
            }
        }
        deserializer.deserialize_any(IntegerVisitor)
    }
}

impl WireInteger {
    fn value(&self, field: &str) -> Result<i64, FieldError> {
        match self {
            WireInteger::Number(number) => Ok(*number),
            WireInteger::Text(text) => text
                .parse()
                .map_err(|_| FieldError::new(field, format!("{text:?} is not an integer"))),
        }
    }
}

#[derive(Deserialize)]
struct WireStatus {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<Text>,
}

#[derive(Deserialize)]
struct WireLink<'a> {
    #[serde(borrow)]
    trace_id: Cow<'a, str>,
    #[serde(borrow)]
    span_id: Cow<'a, str>,
    #[serde(default)]
    attributes: Option<WireAttributes>,
}

/// Ids, kind and broker are borrowed from the body when they hold no escapes (they are parsed
/// right away, so an owned copy would be an allocation per field and span for nothing).
#[derive(Deserialize)]
struct WireSpan<'a> {
    #[serde(borrow)]
    trace_id: Cow<'a, str>,
    #[serde(borrow)]
    span_id: Cow<'a, str>,
    #[serde(default, borrow)]
    parent_span_id: Option<Cow<'a, str>>,
    name: Text,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    service: Text,
    #[serde(default)]
    resource: Option<WireAttributes>,
    start_time_unix_nano: WireInteger,
    #[serde(default)]
    duration_nano: Option<WireInteger>,
    #[serde(default)]
    end_time_unix_nano: Option<WireInteger>,
    #[serde(default)]
    status: Option<WireStatus>,
    #[serde(default)]
    attributes: Option<WireAttributes>,
    #[serde(default, borrow)]
    links: Option<Vec<WireLink<'a>>>,
    #[serde(default)]
    event_id: Option<Text>,
    #[serde(default)]
    event_type: Option<Text>,
    #[serde(default)]
    schema: Option<Text>,
    #[serde(default)]
    stream: Option<Text>,
    #[serde(default, borrow)]
    broker: Option<Cow<'a, str>>,
    #[serde(default)]
    modified: Option<bool>,
    #[serde(default)]
    partition: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    message_id: Option<Text>,
}

#[derive(Deserialize)]
struct WireCount {
    service: String,
    event_type: String,
    stream: String,
    broker: String,
    action: String,
    minute: i64,
    count: u64,
}

/// An attribute value as it arrived: a scalar, or something Muninn does not store.
enum WireValue {
    Scalar(AttributeValue),
    Unsupported,
}

/// An attribute key or tag name, read without a copy of its own when it is one of the long
/// keys of the conventions (`muninn_model::attribute_key`).
pub(crate) struct WireKey(pub(crate) Text);

impl<'de> Deserialize<'de> for WireKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<WireKey, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = WireKey;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<WireKey, E> {
                Ok(WireKey(muninn_model::attribute_key(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Attributes as a JSON object, read straight into a list in arrival order (no intermediate
/// map: this runs for every span at ingest). The first key whose value Muninn does not store
/// is kept, to name it in the rejection.
struct WireAttributes {
    entries: Attributes,
    unsupported: Option<Text>,
}

impl<'de> serde::Deserialize<'de> for WireValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> serde::de::Visitor<'de> for ValueVisitor {
            type Value = WireValue;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, text: &str) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(AttributeValue::String(Text::from(text))))
            }
            fn visit_string<E>(self, text: String) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(AttributeValue::String(Text::from(text))))
            }
            fn visit_bool<E>(self, flag: bool) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(AttributeValue::Bool(flag)))
            }
            fn visit_i64<E>(self, number: i64) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(AttributeValue::Int(number)))
            }
            fn visit_u64<E>(self, number: u64) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(match i64::try_from(number) {
                    Ok(integer) => AttributeValue::Int(integer),
                    Err(_) => AttributeValue::Float(number as f64),
                }))
            }
            fn visit_f64<E>(self, number: f64) -> Result<WireValue, E> {
                Ok(WireValue::Scalar(AttributeValue::Float(number)))
            }
            fn visit_unit<E>(self) -> Result<WireValue, E> {
                Ok(WireValue::Unsupported)
            }
            fn visit_none<E>(self) -> Result<WireValue, E> {
                Ok(WireValue::Unsupported)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<WireValue, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(WireValue::Unsupported)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WireValue, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(WireValue::Unsupported)
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for WireAttributes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> serde::de::Visitor<'de> for MapVisitor {
            type Value = WireAttributes;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an object of attributes")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WireAttributes, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8).min(128));
                let mut unsupported = None;
                while let Some((WireKey(key), value)) = map.next_entry::<WireKey, WireValue>()? {
                    match value {
                        WireValue::Scalar(value) => entries.push((key, value)),
                        WireValue::Unsupported => {
                            unsupported.get_or_insert(key);
                        }
                    }
                }
                Ok(WireAttributes {
                    entries,
                    unsupported,
                })
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

fn attributes(field: &str, object: Option<WireAttributes>) -> Result<Attributes, FieldError> {
    let Some(WireAttributes {
        entries,
        unsupported,
    }) = object
    else {
        return Ok(Vec::new());
    };
    match unsupported {
        None => Ok(entries),
        Some(key) => Err(FieldError::new(
            format!("{field}.{key}"),
            "must be a string, number or boolean (arrays, objects and null are not supported)",
        )),
    }
}

fn optional_id<T>(
    field: &str,
    text: Option<Cow<'_, str>>,
    parse: fn(&str) -> Result<T, muninn_model::IdError>,
) -> Result<Option<T>, FieldError> {
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => parse(text)
            .map(Some)
            .map_err(|error| FieldError::new(field, error.to_string())),
    }
}

fn non_empty(text: Option<Text>) -> Option<Text> {
    text.filter(|text| !text.is_empty())
}

impl WireSpan<'_> {
    /// `last` is the resource of the span decoded before: a run of spans with the same resource
    /// shares one list.
    fn into_span(self, last: &RefCell<Resource>) -> Result<Span, FieldError> {
        let trace_id = TraceId::from_hex(&self.trace_id)
            .map_err(|error| FieldError::new("trace_id", error.to_string()))?;
        let span_id = SpanId::from_hex(&self.span_id)
            .map_err(|error| FieldError::new("span_id", error.to_string()))?;
        let parent_span_id = optional_id("parent_span_id", self.parent_span_id, SpanId::from_hex)?;
        let kind = SpanKind::parse(&self.kind).ok_or_else(|| {
            FieldError::new(
                "kind",
                format!(
                    "{:?} is not one of producer, consumer, server, client, internal",
                    self.kind
                ),
            )
        })?;
        let start = self.start_time_unix_nano.value("start_time_unix_nano")?;
        let duration = match (self.duration_nano, self.end_time_unix_nano) {
            (Some(duration), _) => duration.value("duration_nano")?,
            (None, Some(end)) => end.value("end_time_unix_nano")?.saturating_sub(start),
            (None, None) => 0,
        };
        let status = match self.status {
            None => Status::default(),
            Some(status) => {
                let code = match status
                    .code
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    None | Some("ok") | Some("unset") | Some("") => StatusCode::Ok,
                    Some("error") => StatusCode::Error,
                    Some(other) => {
                        return Err(FieldError::new(
                            "status.code",
                            format!("{other:?} is not one of ok, error"),
                        ));
                    }
                };
                Status {
                    code,
                    message: non_empty(status.message),
                }
            }
        };
        let broker = match self.broker.filter(|text| !text.is_empty()) {
            None => None,
            Some(text) => Some(Broker::parse(&text).ok_or_else(|| {
                FieldError::new(
                    "broker",
                    format!("{text:?} is not one of kafka, nats, pulsar, kinesis, sqs, rabbitmq, redis, other"),
                )
            })?),
        };
        let partition =
            match self.partition {
                None => None,
                Some(partition) => Some(i32::try_from(partition).map_err(|_| {
                    FieldError::new("partition", "must fit a 32-bit signed integer")
                })?),
            };
        let mut links = Vec::new();
        for (index, link) in self.links.unwrap_or_default().into_iter().enumerate() {
            links.push(Link {
                trace_id: TraceId::from_hex(&link.trace_id).map_err(|error| {
                    FieldError::new(format!("links[{index}].trace_id"), error.to_string())
                })?,
                span_id: SpanId::from_hex(&link.span_id).map_err(|error| {
                    FieldError::new(format!("links[{index}].span_id"), error.to_string())
                })?,
                attributes: attributes(&format!("links[{index}].attributes"), link.attributes)?,
            });
        }
        Ok(Span {
            trace_id,
            span_id,
            parent_span_id,
            name: self.name,
            kind,
            service: self.service,
            resource: share_resource(attributes("resource", self.resource)?, last),
            start_unix_nanos: start,
            duration_nanos: duration,
            status,
            attributes: attributes("attributes", self.attributes)?,
            links,
            event: EventColumns {
                event_id: non_empty(self.event_id),
                event_type: non_empty(self.event_type),
                schema: non_empty(self.schema),
                stream: non_empty(self.stream),
                broker,
                modified: self.modified.unwrap_or(false),
                partition,
                offset: self.offset,
                message_id: non_empty(self.message_id),
            },
        })
    }
}

impl WireCount {
    fn into_count(self) -> Result<EventCount, FieldError> {
        let broker = Broker::parse(&self.broker).ok_or_else(|| {
            FieldError::new(
                "broker",
                format!(
                    "{:?} is not one of kafka, nats, pulsar, kinesis, sqs, rabbitmq, redis, other",
                    self.broker
                ),
            )
        })?;
        let action = Action::parse(&self.action).ok_or_else(|| {
            FieldError::new(
                "action",
                format!("{:?} is not one of produced, consumed", self.action),
            )
        })?;
        Ok(EventCount {
            service: self.service,
            event_type: self.event_type,
            stream: self.stream,
            broker,
            action,
            minute_unix_seconds: self.minute.div_euclid(60) * 60,
            count: self.count,
        })
    }
}

/// Splits a body into its records without decoding them: a JSON array, or one JSON value per
/// non-blank line (NDJSON). A syntax error refuses the whole body, naming line and column.
fn split_records(body: &[u8]) -> Result<Vec<&RawValue>, IngestError> {
    let text = std::str::from_utf8(body).map_err(|error| {
        let (line, column) = line_and_column(body, error.valid_up_to());
        malformed(
            format!("body is not valid UTF-8 at line {line}, column {column}"),
            line,
            column,
        )
    })?;
    let first = text.trim_start().as_bytes().first().copied();
    match first {
        None => Ok(Vec::new()),
        Some(b'[') => {
            serde_json::from_str::<Vec<&RawValue>>(text).map_err(|error| syntax_error(&error, 0))
        }
        Some(_) => {
            let mut records = Vec::new();
            for (line_idx, line) in text.split('\n').enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let record = serde_json::from_str::<&RawValue>(line)
                    .map_err(|error| syntax_error(&error, line_idx))?;
                records.push(record);
            }
            Ok(records)
        }
    }
}

fn line_and_column(body: &[u8], offset: usize) -> (usize, usize) {
    let before = &body[..offset.min(body.len())];
    let line = before.iter().filter(|byte| **byte == b'\n').count() + 1;
    let column = offset
        - before
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map(|position| position + 1)
            .unwrap_or(0)
        + 1;
    (line, column)
}

fn syntax_error(error: &serde_json::Error, line_offset: usize) -> IngestError {
    let line = error.line() + line_offset;
    let column = error.column();
    malformed(
        format!("malformed JSON at line {line}, column {column}: {error}"),
        line,
        column,
    )
}

fn malformed(message: String, line: usize, column: usize) -> IngestError {
    IngestError {
        kind: IngestErrorKind::Malformed,
        message,
        line: Some(line),
        column: Some(column),
    }
}

/// Decodes one record; a type error names the field path (`start_time_unix_nano`, `links[0].span_id`).
fn decode_record<'a, W: Deserialize<'a>>(raw: &'a RawValue) -> Result<W, FieldError> {
    // serde's derived structs also accept a JSON array of the fields in declaration order;
    // the format is objects only, so an array is refused here instead of decoded by position.
    if !raw.get().trim_start().starts_with('{') {
        return Err(FieldError::new("(record)", "must be a JSON object"));
    }
    match serde_json::from_str::<W>(raw.get()) {
        Ok(wire) => Ok(wire),
        Err(_) => {
            let mut deserializer = serde_json::Deserializer::from_str(raw.get());
            match serde_path_to_error::deserialize::<_, W>(&mut deserializer) {
                Ok(wire) => Ok(wire),
                Err(error) => {
                    let path = error.path().to_string();
                    let inner = error.into_inner();
                    let reason = inner.to_string();
                    let reason = reason
                        .split(" at line ")
                        .next()
                        .unwrap_or(&reason)
                        .to_string();
                    let field = if path == "." {
                        // serde reports a missing field at the record level; name the field.
                        reason
                            .strip_prefix("missing field `")
                            .and_then(|rest| rest.split('`').next())
                            .unwrap_or("(record)")
                            .to_string()
                    } else {
                        path
                    };
                    Err(FieldError::new(field, reason))
                }
            }
        }
    }
}

/// Splits a body into records and converts each (the Zipkin decoder shares this).
///
/// A JSON array whose records all decode (the common case: what the SDK sends) is decoded in
/// one pass; any other body is split into records first and each decoded alone, so that one
/// record's error rejects that record only and names its field.
pub(crate) fn decode_batch<'a, W: Deserialize<'a>, T>(
    body: &'a [u8],
    convert: impl Fn(W) -> Result<T, FieldError>,
) -> Result<Decoded<T>, IngestError> {
    if body.trim_ascii_start().first() == Some(&b'[')
        && let Some(decoded) = decode_array_in_one_pass(body, &convert)
    {
        return Ok(decoded);
    }
    let raw_records = split_records(body)?;
    let mut decoded = Decoded {
        records: Vec::with_capacity(raw_records.len()),
        rejected: Vec::new(),
    };
    for (index, raw) in raw_records.into_iter().enumerate() {
        match decode_record::<W>(raw).and_then(&convert) {
            Ok(record) => decoded.records.push(record),
            Err(error) => decoded.rejected.push(Rejection {
                index,
                field: error.field,
                reason: error.reason,
            }),
        }
    }
    Ok(decoded)
}

/// Decodes a JSON array of records in one pass, converting each as it is read; `None` as soon
/// as a record does not decode (or the body is not one well-formed array), for the caller to
/// split the body and decode it record by record. Converting alone never fails the pass: its
/// errors are the record's rejection either way.
fn decode_array_in_one_pass<'a, W: Deserialize<'a>, T>(
    body: &'a [u8],
    convert: &impl Fn(W) -> Result<T, FieldError>,
) -> Option<Decoded<T>> {
    struct Records<'c, W, T, C> {
        convert: &'c C,
        wire: std::marker::PhantomData<fn() -> (W, T)>,
    }
    impl<'de, W: Deserialize<'de>, T, C: Fn(W) -> Result<T, FieldError>> serde::de::Visitor<'de>
        for Records<'_, W, T, C>
    {
        type Value = Decoded<T>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("an array of records")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut decoded = Decoded {
                records: Vec::with_capacity(seq.size_hint().unwrap_or(0).min(65_536)),
                rejected: Vec::new(),
            };
            while let Some(ObjectOnly(wire)) = seq.next_element::<ObjectOnly<W>>()? {
                match (self.convert)(wire) {
                    Ok(record) => decoded.records.push(record),
                    Err(error) => decoded.rejected.push(Rejection {
                        index: decoded.records.len() + decoded.rejected.len(),
                        field: error.field,
                        reason: error.reason,
                    }),
                }
            }
            Ok(decoded)
        }
    }
    // The body is checked for UTF-8 once, as a whole, rather than string by string (6% of the
    // decoding); a body that is not UTF-8 is split and each record refused by its own error.
    let text = std::str::from_utf8(body).ok()?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut decoded = serde::Deserializer::deserialize_seq(
        &mut deserializer,
        Records {
            convert,
            wire: std::marker::PhantomData,
        },
    )
    .ok()?;
    deserializer.end().ok()?;
    // The records go to the head as they are: no room for records that never came (grown by
    // doubling, a batch of 1,000 spans had room for 1,024, and jemalloc rounded that up again:
    // 53 bytes a span that the head's count did not see). jemalloc shrinks in place.
    decoded.records.shrink_to_fit();
    Some(decoded)
}

/// A record that must be a JSON object: serde's derived structs also accept an array of the
/// fields in declaration order, which the format does not.
struct ObjectOnly<W>(W);

impl<'de, W: Deserialize<'de>> Deserialize<'de> for ObjectOnly<W> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<W>(std::marker::PhantomData<fn() -> W>);
        impl<'de, W: Deserialize<'de>> serde::de::Visitor<'de> for Object<W> {
            type Value = W;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<W, A::Error> {
                W::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Object(std::marker::PhantomData))
            .map(ObjectOnly)
    }
}

/// The resource of a span: the one before it when equal (a service's spans repeat theirs).
fn share_resource(list: Attributes, last: &RefCell<Resource>) -> Resource {
    let mut last = last.borrow_mut();
    if **last != list {
        *last = new_resource(list);
    }
    last.clone()
}

/// Decodes and validates a batch of spans.
pub fn decode_spans(
    body: &[u8],
    limits: &Limits,
    now_unix_nanos: i64,
) -> Result<Decoded<Span>, IngestError> {
    // What the SDK sends (an array of span objects, strings without escapes) is read by hand;
    // any other body by serde_json, which also names what is wrong with it.
    if let Some(wire) = std::str::from_utf8(body)
        .ok()
        .and_then(|text| scan::spans(text).ok())
    {
        let last = RefCell::new(empty_resource());
        return Ok(convert_all(wire, to_span(limits, now_unix_nanos, &last)));
    }
    decode_spans_by_serde(body, limits, now_unix_nanos)
}

/// A wire record to a validated span; `last` is the resource of the span before it.
fn to_span<'a>(
    limits: &'a Limits,
    now_unix_nanos: i64,
    last: &'a RefCell<Resource>,
) -> impl Fn(WireSpan) -> Result<Span, FieldError> + 'a {
    move |wire| {
        let span = wire.into_span(last)?;
        limits.check_span(&span, now_unix_nanos)?;
        Ok(span)
    }
}

/// `decode_spans` without the scan: serde_json alone.
fn decode_spans_by_serde(
    body: &[u8],
    limits: &Limits,
    now_unix_nanos: i64,
) -> Result<Decoded<Span>, IngestError> {
    let last = RefCell::new(empty_resource());
    decode_batch::<WireSpan, Span>(body, to_span(limits, now_unix_nanos, &last))
}

/// `fuzzing::native_spans`: the spans `decode_spans` keeps, after checking that serde_json
/// reads a body the scan read the same way.
pub(crate) fn scan_agrees_with_serde(body: &[u8], now_unix_nanos: i64) -> usize {
    let limits = Limits::default();
    let Ok(decoded) = decode_spans(body, &limits, now_unix_nanos) else {
        return 0;
    };
    if std::str::from_utf8(body).is_ok_and(|text| scan::spans(text).is_ok()) {
        assert_eq!(
            decode_spans_by_serde(body, &limits, now_unix_nanos)
                .ok()
                .as_ref(),
            Some(&decoded),
            "the scan and serde_json read {:?} differently",
            String::from_utf8_lossy(body)
        );
    }
    decoded.records.len()
}

/// Converts every record, each one that fails rejected by its index.
fn convert_all<W, T>(wire: Vec<W>, convert: impl Fn(W) -> Result<T, FieldError>) -> Decoded<T> {
    let mut decoded = Decoded {
        records: Vec::with_capacity(wire.len()),
        rejected: Vec::new(),
    };
    for (index, record) in wire.into_iter().enumerate() {
        match convert(record) {
            Ok(record) => decoded.records.push(record),
            Err(error) => decoded.rejected.push(Rejection {
                index,
                field: error.field,
                reason: error.reason,
            }),
        }
    }
    // No room for the rejected: the records go to the head as they are.
    decoded.records.shrink_to_fit();
    decoded
}

/// Decodes and validates a batch of event-seen counts.
pub fn decode_counts(
    body: &[u8],
    limits: &Limits,
    now_unix_nanos: i64,
) -> Result<Decoded<EventCount>, IngestError> {
    decode_batch::<WireCount, EventCount>(body, |wire| {
        let count = wire.into_count()?;
        limits.check_count(&count, now_unix_nanos)?;
        Ok(count)
    })
}

mod scan;

#[cfg(test)]
mod tests;
