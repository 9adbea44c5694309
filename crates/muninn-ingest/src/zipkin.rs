//! Zipkin v2 JSON spans (what `POST /api/v2/spans` receives from Zipkin reporters: Brave,
//! py_zipkin, zipkin-js, OpenTelemetry's Zipkin exporter) to validated Muninn spans.
//!
//! | Muninn | Zipkin |
//! |---|---|
//! | `trace_id` | `traceId`, 1 to 32 hex characters (a 64-bit id gets 16 leading zeros) |
//! | `span_id`, `parent_span_id` | `id`, `parentId`, 1 to 16 hex characters; a `SERVER` span with `shared: true` (it shares its id with the client span) gets the id with its highest bit flipped, and the client's id as parent |
//! | `name` | `name` (`unknown` when absent or empty) |
//! | `kind` | `kind`: `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER`; absent → `internal` |
//! | start, duration | `timestamp`, `duration`: microseconds → nanoseconds (`timestamp` required) |
//! | `service` | `localEndpoint.serviceName` (required) |
//! | `resource` | `localEndpoint.ipv4`/`ipv6` → `net.host.ip`, `port` → `net.host.port` |
//! | `attributes` | every tag, unchanged; `remoteEndpoint.serviceName` → `peer.service`, its `ipv4`/`ipv6` → `net.peer.ip`, `port` → `net.peer.port` (unless a tag has the key) |
//! | `status` | `error` if an `error` tag is present, its value the message (unless empty or `true`) |
//!
//! PRODUCER and CONSUMER spans also fill the event columns from their tags (the tags stay as
//! attributes too, so searches by the original tags keep working):
//!
//! | column | from, first present wins |
//! |---|---|
//! | `broker` | tag `messaging.system`, else `remoteEndpoint.serviceName`: `kafka`, `nats`, `pulsar`, `sqs`/`aws_sqs`, `rabbitmq`, `redis`, `kinesis`/`aws_kinesis`, anything else `other` |
//! | `stream` | `messaging.destination.name`, `messaging.destination`, `kafka.topic` |
//! | `event_id` | `cloudevents.event_id`, `messaging.message.id`, `message.id` |
//! | `event_type` | `cloudevents.event_type`, `event.type` |
//! | `schema` | `cloudevents.event_dataschema` |
//!
//! Annotations and `debug` are not kept. Unknown members are ignored.

use std::borrow::Cow;

use muninn_model::{
    AttributeValue, Attributes, Broker, EventColumns, FieldError, Limits, Span, SpanId, SpanKind,
    Status, StatusCode, Text, TraceId,
};
use serde::Deserialize;

use crate::body::IngestError;
use crate::native::{Decoded, decode_batch};

/// The span name given to a Zipkin span without one (Muninn requires a name).
pub const ZIPKIN_UNKNOWN_NAME: &str = "unknown";

/// Microseconds, as an integer or (some reporters) a float.
enum WireMicros {
    Integer(i64),
    Float(f64),
}

/// Read by a visitor, not as an untagged enum (which buffers each value to try the variants).
impl<'de> Deserialize<'de> for WireMicros {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MicrosVisitor;
        impl serde::de::Visitor<'_> for MicrosVisitor {
            type Value = WireMicros;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("microseconds as a number")
            }
            fn visit_i64<E>(self, micros: i64) -> Result<WireMicros, E> {
                Ok(WireMicros::Integer(micros))
            }
            fn visit_u64<E>(self, micros: u64) -> Result<WireMicros, E> {
                Ok(i64::try_from(micros)
                    .map_or(WireMicros::Float(micros as f64), WireMicros::Integer))
            }
            fn visit_f64<E>(self, micros: f64) -> Result<WireMicros, E> {
                Ok(WireMicros::Float(micros))
            }
        }
        deserializer.deserialize_any(MicrosVisitor)
    }
}

impl WireMicros {
    fn nanos(&self, field: &str) -> Result<i64, FieldError> {
        let micros = match self {
            WireMicros::Integer(micros) => *micros,
            WireMicros::Float(micros) if micros.is_finite() => micros.round() as i64,
            WireMicros::Float(_) => {
                return Err(FieldError::new(
                    field,
                    "must be a finite number of microseconds",
                ));
            }
        };
        micros
            .checked_mul(1000)
            .ok_or_else(|| FieldError::new(field, format!("{micros} microseconds is out of range")))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEndpoint {
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    ipv4: Option<String>,
    #[serde(default)]
    ipv6: Option<String>,
    #[serde(default)]
    port: Option<i64>,
}

/// A tag value: Zipkin's are strings; numbers and booleans are taken as they are.
enum WireTag {
    Text(Text),
    Integer(i64),
    Float(f64),
    Flag(bool),
}

/// Read by a visitor, not as an untagged enum (which buffers each value to try the variants).
impl<'de> Deserialize<'de> for WireTag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagVisitor;
        impl serde::de::Visitor<'_> for TagVisitor {
            type Value = WireTag;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, text: &str) -> Result<WireTag, E> {
                Ok(WireTag::Text(Text::from(text)))
            }
            fn visit_string<E>(self, text: String) -> Result<WireTag, E> {
                Ok(WireTag::Text(Text::from(text)))
            }
            fn visit_i64<E>(self, number: i64) -> Result<WireTag, E> {
                Ok(WireTag::Integer(number))
            }
            fn visit_u64<E>(self, number: u64) -> Result<WireTag, E> {
                Ok(i64::try_from(number).map_or(WireTag::Float(number as f64), WireTag::Integer))
            }
            fn visit_f64<E>(self, number: f64) -> Result<WireTag, E> {
                Ok(WireTag::Float(number))
            }
            fn visit_bool<E>(self, flag: bool) -> Result<WireTag, E> {
                Ok(WireTag::Flag(flag))
            }
        }
        deserializer.deserialize_any(TagVisitor)
    }
}

impl WireTag {
    fn into_value(self) -> AttributeValue {
        match self {
            WireTag::Text(text) => AttributeValue::String(text),
            WireTag::Integer(number) => AttributeValue::Int(number),
            WireTag::Float(number) => AttributeValue::Float(number),
            WireTag::Flag(flag) => AttributeValue::Bool(flag),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireZipkinSpan<'a> {
    #[serde(borrow)]
    trace_id: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<WireMicros>,
    #[serde(default)]
    duration: Option<WireMicros>,
    #[serde(default)]
    local_endpoint: Option<WireEndpoint>,
    #[serde(default)]
    remote_endpoint: Option<WireEndpoint>,
    /// Tags in arrival order (a JSON object; serde_json keeps member order for a Vec of pairs
    /// only through a map visitor, so a map is read and its order kept by `WireTags`).
    #[serde(default)]
    tags: Option<WireTags>,
    #[serde(default)]
    shared: Option<bool>,
}

/// Tags as a list in document order.
struct WireTags(Vec<(Text, Option<WireTag>)>);

impl<'de> Deserialize<'de> for WireTags {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagsVisitor;
        impl<'de> serde::de::Visitor<'de> for TagsVisitor {
            type Value = WireTags;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an object of string tags")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WireTags, A::Error> {
                let mut tags = Vec::new();
                while let Some(crate::native::WireKey(key)) =
                    map.next_key::<crate::native::WireKey>()?
                {
                    let value = map.next_value::<Option<WireTag>>().map_err(|_| {
                        serde::de::Error::custom(format!(
                            "tag {key:?} must be a string (numbers and booleans are accepted)"
                        ))
                    })?;
                    tags.push((key, value));
                }
                Ok(WireTags(tags))
            }
        }
        deserializer.deserialize_map(TagsVisitor)
    }
}

fn parse_kind(text: &str) -> Result<SpanKind, FieldError> {
    match text.to_ascii_uppercase().as_str() {
        "CLIENT" => Ok(SpanKind::Client),
        "SERVER" => Ok(SpanKind::Server),
        "PRODUCER" => Ok(SpanKind::Producer),
        "CONSUMER" => Ok(SpanKind::Consumer),
        _ => Err(FieldError::new(
            "kind",
            format!("{text:?} is not one of CLIENT, SERVER, PRODUCER, CONSUMER (or absent)"),
        )),
    }
}

/// The broker named by `messaging.system` or a remote service name.
fn broker_of(name: &str) -> Broker {
    match name.to_ascii_lowercase().as_str() {
        "aws_sqs" | "aws.sqs" => Broker::Sqs,
        "aws_kinesis" | "aws.kinesis" => Broker::Kinesis,
        other => Broker::parse(other).unwrap_or(Broker::Other),
    }
}

fn text_of<'a>(attributes: &'a Attributes, key: &str) -> Option<&'a str> {
    attributes.iter().find_map(|(name, value)| match value {
        AttributeValue::String(text) if name == key && !text.is_empty() => Some(text.as_str()),
        _ => None,
    })
}

/// The first of `keys` that a tag holds, with the key it came from.
fn first_of(attributes: &Attributes, keys: &[&'static str]) -> Option<(Text, &'static str)> {
    keys.iter()
        .find_map(|key| text_of(attributes, key).map(|text| (Text::from(text), *key)))
}

/// Where each event column came from, so that a validation error names the Zipkin input.
#[derive(Default)]
struct Origins {
    event_id: Option<&'static str>,
    event_type: Option<&'static str>,
    schema: Option<&'static str>,
    stream: Option<&'static str>,
}

fn event_columns(
    attributes: &Attributes,
    remote_service: Option<&str>,
    origins: &mut Origins,
) -> EventColumns {
    let broker = text_of(attributes, "messaging.system")
        .or(remote_service)
        .map(broker_of);
    let column = |keys: &[&'static str], origin: &mut Option<&'static str>| {
        first_of(attributes, keys).map(|(value, key)| {
            *origin = Some(key);
            value
        })
    };
    EventColumns {
        event_id: column(
            &["cloudevents.event_id", "messaging.message.id", "message.id"],
            &mut origins.event_id,
        ),
        event_type: column(
            &["cloudevents.event_type", "event.type"],
            &mut origins.event_type,
        ),
        schema: column(&["cloudevents.event_dataschema"], &mut origins.schema),
        stream: column(
            &[
                "messaging.destination.name",
                "messaging.destination",
                "kafka.topic",
            ],
            &mut origins.stream,
        ),
        broker,
        ..EventColumns::default()
    }
}

fn push_absent(attributes: &mut Attributes, key: &str, value: AttributeValue) {
    if !attributes.iter().any(|(name, _)| name == key) {
        attributes.push((Text::from(key), value));
    }
}

/// `net.host.*` / `net.peer.*` attributes of an endpoint's address.
fn address_attributes(endpoint: &WireEndpoint, prefix: &str, into: &mut Attributes) {
    if let Some(ip) = endpoint
        .ipv4
        .as_ref()
        .or(endpoint.ipv6.as_ref())
        .filter(|ip| !ip.is_empty())
    {
        push_absent(
            into,
            &format!("{prefix}.ip"),
            AttributeValue::String(Text::from(ip.as_str())),
        );
    }
    if let Some(port) = endpoint.port.filter(|port| *port > 0) {
        push_absent(into, &format!("{prefix}.port"), AttributeValue::Int(port));
    }
}

impl WireZipkinSpan<'_> {
    fn into_span(self, origins: &mut Origins) -> Result<Span, FieldError> {
        let id_error = |field: &str| {
            let field = field.to_string();
            move |error: muninn_model::IdError| {
                let reason = match error {
                    muninn_model::IdError::Length { expected, got } => {
                        format!("must be 1 to {expected} hex characters, got {got}")
                    }
                    other => other.to_string(),
                };
                FieldError::new(field.clone(), reason)
            }
        };
        let trace_id = TraceId::from_short_hex(&self.trace_id).map_err(id_error("traceId"))?;
        let span_id = SpanId::from_short_hex(&self.id).map_err(id_error("id"))?;
        let parent_span_id = match self.parent_id.as_deref() {
            None | Some("") => None,
            Some(text) => Some(SpanId::from_short_hex(text).map_err(id_error("parentId"))?),
        };
        let kind = match self.kind.as_deref() {
            None | Some("") => SpanKind::Internal,
            Some(text) => parse_kind(text)?,
        };
        // The server half of a span shared with its client (Zipkin's RPC model, `shared`)
        // becomes the client's child, so that the two do not collapse into one span.
        let (span_id, parent_span_id) = if self.shared == Some(true) && kind == SpanKind::Server {
            (shared_server_id(span_id), Some(span_id))
        } else {
            (span_id, parent_span_id)
        };
        let start = self
            .timestamp
            .ok_or_else(|| {
                FieldError::new(
                    "timestamp",
                    "is required: the start in microseconds since the unix epoch",
                )
            })?
            .nanos("timestamp")?;
        let duration = match &self.duration {
            None => 0,
            Some(duration) => duration.nanos("duration")?,
        };
        let local = self.local_endpoint;
        let service = local
            .as_ref()
            .and_then(|endpoint| endpoint.service_name.clone())
            .filter(|service| !service.is_empty())
            .ok_or_else(|| {
                FieldError::new(
                    "localEndpoint.serviceName",
                    "is required: Muninn files every span under its service",
                )
            })?;
        let mut resource = Vec::new();
        if let Some(local) = &local {
            address_attributes(local, "net.host", &mut resource);
        }
        let mut attributes: Attributes = Vec::new();
        for (key, value) in self.tags.map(|tags| tags.0).unwrap_or_default() {
            if let Some(value) = value {
                attributes.push((key, value.into_value()));
            }
        }
        let remote_service = self
            .remote_endpoint
            .as_ref()
            .and_then(|endpoint| endpoint.service_name.clone())
            .filter(|name| !name.is_empty());
        if let Some(remote) = &self.remote_endpoint {
            if let Some(name) = &remote_service {
                push_absent(
                    &mut attributes,
                    "peer.service",
                    AttributeValue::String(Text::from(name.as_str())),
                );
            }
            address_attributes(remote, "net.peer", &mut attributes);
        }
        let status = match attributes.iter().find(|(key, _)| key == "error") {
            None => Status::default(),
            Some((_, value)) => {
                let message = match value {
                    AttributeValue::String(text) if !text.is_empty() && text != "true" => {
                        Some(text.clone())
                    }
                    _ => None,
                };
                Status {
                    code: StatusCode::Error,
                    message,
                }
            }
        };
        let event = if kind.action().is_some() {
            event_columns(&attributes, remote_service.as_deref(), origins)
        } else {
            EventColumns::default()
        };
        Ok(Span {
            trace_id,
            span_id,
            parent_span_id,
            name: self
                .name
                .filter(|name| !name.is_empty())
                .map_or_else(|| Text::from(ZIPKIN_UNKNOWN_NAME), Text::from),
            kind,
            service: Text::from(service),
            resource: muninn_model::new_resource(resource),
            start_unix_nanos: start,
            duration_nanos: duration,
            status,
            attributes,
            links: Vec::new(),
            event,
        })
    }
}

/// The id of the server half of a shared span: the client's id with its highest bit flipped
/// (another bit when that would be all zeros).
fn shared_server_id(client: SpanId) -> SpanId {
    let mut bytes = client.0;
    bytes[0] ^= 0x80;
    if bytes.iter().all(|byte| *byte == 0) {
        bytes[7] = 1;
    }
    SpanId(bytes)
}

/// Renames a validation error's field from Muninn's names to the Zipkin input it came from.
fn zipkin_field(error: FieldError, span: &Span, origins: &Origins) -> FieldError {
    let tag_key = |index: &str| -> Option<String> {
        let index: usize = index.parse().ok()?;
        span.attributes
            .get(index)
            .map(|(key, _)| format!("tags.{key}"))
    };
    let field = match error.field.as_str() {
        "start_time_unix_nano" => "timestamp".to_string(),
        "duration_nano" => "duration".to_string(),
        "service" => "localEndpoint.serviceName".to_string(),
        "attributes" => "tags".to_string(),
        "resource" => "localEndpoint".to_string(),
        "event_id" => origins
            .event_id
            .map_or("tags".into(), |key| format!("tags.{key}")),
        "event_type" => origins
            .event_type
            .map_or("tags".into(), |key| format!("tags.{key}")),
        "schema" => origins
            .schema
            .map_or("tags".into(), |key| format!("tags.{key}")),
        "stream" => origins
            .stream
            .map_or("tags".into(), |key| format!("tags.{key}")),
        other => match other
            .strip_prefix("attributes[")
            .and_then(|rest| rest.split_once(']'))
        {
            Some((index, _)) => tag_key(index).unwrap_or_else(|| "tags".to_string()),
            None if other.starts_with("resource[") => "localEndpoint".to_string(),
            None => other.to_string(),
        },
    };
    FieldError {
        field,
        reason: error.reason,
    }
}

/// Decodes and validates a Zipkin v2 JSON body (an array of spans; NDJSON is accepted too).
/// A syntax error refuses the body with its line and column; an invalid span is rejected with
/// its index and the Zipkin field (`traceId`, `timestamp`, `localEndpoint.serviceName`,
/// `tags.<key>`), and the others are kept.
pub fn decode_zipkin_spans(
    body: &[u8],
    limits: &Limits,
    now_unix_nanos: i64,
) -> Result<Decoded<Span>, IngestError> {
    decode_batch::<WireZipkinSpan, Span>(body, |wire| {
        let mut origins = Origins::default();
        let span = wire.into_span(&mut origins)?;
        limits
            .check_span(&span, now_unix_nanos)
            .map_err(|error| zipkin_field(error, &span, &origins))?;
        Ok(span)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000_000_000_000;
    const NOW_MICROS: i64 = NOW / 1000;

    fn decode(body: &str) -> Decoded<Span> {
        decode_zipkin_spans(body.as_bytes(), &Limits::default(), NOW).unwrap()
    }

    #[test]
    fn a_kafka_producer_span_fills_the_event_columns() {
        let body = format!(
            r#"[{{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0020000000000001",
               "name":"send","kind":"PRODUCER","timestamp":{NOW_MICROS},"duration":1500,
               "localEndpoint":{{"serviceName":"checkout","ipv4":"10.0.0.7","port":8080}},
               "remoteEndpoint":{{"serviceName":"kafka"}},
               "tags":{{"kafka.topic":"orders","cloudevents.event_type":"order.created","message.id":"e-1","http.status_code":"200"}},
               "annotations":[{{"timestamp":{NOW_MICROS},"value":"ws"}}],"debug":false,"surprise":1}}]"#
        );
        let decoded = decode(&body);
        assert_eq!(decoded.rejected, Vec::new());
        let span = &decoded.records[0];
        assert_eq!(span.trace_id.to_hex(), "0000000000000000463ac35c9f6413ad");
        assert_eq!(
            span.parent_span_id.map(|id| id.to_hex()).as_deref(),
            Some("0020000000000001")
        );
        assert_eq!(span.kind, SpanKind::Producer);
        assert_eq!(span.start_unix_nanos, NOW);
        assert_eq!(span.duration_nanos, 1_500_000);
        assert_eq!(span.service, "checkout");
        assert_eq!(span.event.broker, Some(Broker::Kafka));
        assert_eq!(span.event.stream.as_deref(), Some("orders"));
        assert_eq!(span.event.event_id.as_deref(), Some("e-1"));
        assert_eq!(span.event.event_type.as_deref(), Some("order.created"));
        // Tags stay, in order; the remote endpoint is added.
        let keys: Vec<&str> = span
            .attributes
            .iter()
            .map(|(key, _)| key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "kafka.topic",
                "cloudevents.event_type",
                "message.id",
                "http.status_code",
                "peer.service"
            ]
        );
        assert_eq!(
            *span.resource,
            vec![
                (
                    "net.host.ip".into(),
                    AttributeValue::String("10.0.0.7".into())
                ),
                ("net.host.port".into(), AttributeValue::Int(8080)),
            ]
        );
    }

    #[test]
    fn request_spans_keep_messaging_tags_as_attributes_only() {
        let body = format!(
            r#"[{{"traceId":"463ac35c9f6413ad463ac35c9f6413ad","id":"1","name":"get","kind":"client",
                "timestamp":{NOW_MICROS},"localEndpoint":{{"serviceName":"web"}},
                "tags":{{"kafka.topic":"orders","error":"connection refused"}}}}]"#
        );
        let span = &decode(&body).records[0];
        assert_eq!(span.kind, SpanKind::Client);
        assert_eq!(span.event, EventColumns::default());
        assert_eq!(span.status.code, StatusCode::Error);
        assert_eq!(span.status.message.as_deref(), Some("connection refused"));
        assert_eq!(span.span_id.to_hex(), "0000000000000001");
    }

    #[test]
    fn invalid_spans_are_rejected_by_zipkin_field_and_the_rest_kept() {
        let good = format!(
            r#"{{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","timestamp":{NOW_MICROS},"localEndpoint":{{"serviceName":"web"}}}}"#
        );
        let cases = [
            (good.replace("463ac35c9f6413ad", "xyz"), "traceId"),
            (good.replace("a2fb4a1d1a96d312", "a2fb4a1d1a96d3120"), "id"),
            (
                good.replace(&format!(r#""timestamp":{NOW_MICROS},"#), ""),
                "timestamp",
            ),
            (good.replace(&NOW_MICROS.to_string(), "1"), "timestamp"),
            (
                good.replace(r#""serviceName":"web""#, r#""ipv4":"1.2.3.4""#),
                "localEndpoint.serviceName",
            ),
            (good.replace(r#""id""#, r#""kind":"SIDEWAYS","id""#), "kind"),
            (
                good.replace(r#""id""#, r#""tags":{"a":{"b":1}},"id""#),
                "tags.a",
            ),
            (good.replace(r#""id""#, r#""duration":-5,"id""#), "duration"),
            (
                good.replace(
                    r#""id""#,
                    &format!(r#""tags":{{"big":"{}"}},"id""#, "x".repeat(5000)),
                ),
                "tags.big",
            ),
        ];
        let body = format!(
            "[{good},{}]",
            cases
                .iter()
                .map(|(span, _)| span.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        let decoded = decode(&body);
        assert_eq!(decoded.records.len(), 1);
        let fields: Vec<(usize, &str)> = decoded
            .rejected
            .iter()
            .map(|rejection| (rejection.index, rejection.field.as_str()))
            .collect();
        let expected: Vec<(usize, &str)> = cases
            .iter()
            .enumerate()
            .map(|(index, (_, field))| (index + 1, *field))
            .collect();
        assert_eq!(fields, expected, "{:?}", decoded.rejected);
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let error =
            decode_zipkin_spans(b"[\n{\"traceId\": }]", &Limits::default(), NOW).unwrap_err();
        assert_eq!(error.kind, crate::IngestErrorKind::Malformed);
        assert_eq!((error.line, error.column), (Some(2), Some(13)));
    }

    #[test]
    fn the_server_half_of_a_shared_span_becomes_the_clients_child() {
        let half = |kind: &str, shared: bool| {
            format!(
                r#"{{"traceId":"1","id":"0123456789abcdef","parentId":"1111111111111111","kind":"{kind}","shared":{shared},"timestamp":{NOW_MICROS},"localEndpoint":{{"serviceName":"{kind}"}}}}"#
            )
        };
        let decoded = decode(&format!(
            "[{},{}]",
            half("CLIENT", false),
            half("SERVER", true)
        ));
        let ids: Vec<(String, Option<String>)> = decoded
            .records
            .iter()
            .map(|span| {
                (
                    span.span_id.to_hex(),
                    span.parent_span_id.map(|id| id.to_hex()),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                (
                    "0123456789abcdef".to_string(),
                    Some("1111111111111111".to_string())
                ),
                (
                    "8123456789abcdef".to_string(),
                    Some("0123456789abcdef".to_string())
                ),
            ]
        );
        assert_eq!(
            shared_server_id(SpanId([0x80, 0, 0, 0, 0, 0, 0, 0])).to_hex(),
            "0000000000000001"
        );
    }

    #[test]
    fn unknown_brokers_are_other_and_known_aliases_are_read() {
        let span = |system: &str| {
            format!(
                r#"{{"traceId":"1","id":"1","kind":"CONSUMER","timestamp":{NOW_MICROS},"localEndpoint":{{"serviceName":"s"}},"tags":{{"messaging.system":"{system}","messaging.destination.name":"q"}}}}"#
            )
        };
        let decoded = decode(&format!(
            "[{},{},{}]",
            span("aws_sqs"),
            span("RabbitMQ"),
            span("carrier-pigeon")
        ));
        let brokers: Vec<Option<Broker>> = decoded
            .records
            .iter()
            .map(|span| span.event.broker)
            .collect();
        assert_eq!(
            brokers,
            [
                Some(Broker::Sqs),
                Some(Broker::Rabbitmq),
                Some(Broker::Other)
            ]
        );
    }
}
