//! The JSON view of one span, shared by journeys and trace trees.

use muninn_model::{AttributeValue, Attributes, Span, format_rfc3339_nanos};
use serde::Serialize;
use serde_json::{Map, Value};

/// A span as the query API shows it: hex ids, RFC 3339 and nanosecond times, attribute maps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    pub start_time: String,
    pub start_time_unix_nano: i64,
    pub duration_ns: i64,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<&'static str>,
    pub modified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub attributes: Map<String, Value>,
    pub resource: Map<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Value>,
}

pub(crate) fn attributes_map(attributes: &Attributes) -> Map<String, Value> {
    attributes
        .iter()
        .map(|(key, value)| {
            let value = match value {
                AttributeValue::String(text) => Value::String(text.to_string()),
                AttributeValue::Int(number) => Value::from(*number),
                AttributeValue::Float(number) => Value::from(*number),
                AttributeValue::Bool(flag) => Value::Bool(*flag),
            };
            (key.to_string(), value)
        })
        .collect()
}

impl From<&Span> for SpanView {
    fn from(span: &Span) -> Self {
        let event = &span.event;
        SpanView {
            trace_id: span.trace_id.to_hex(),
            span_id: span.span_id.to_hex(),
            parent_span_id: span.parent_span_id.map(|parent| parent.to_hex()),
            service: span.service.to_string(),
            name: span.name.to_string(),
            kind: span.kind.as_str(),
            action: span.action().map(|action| action.as_str()),
            start_time: format_rfc3339_nanos(span.start_unix_nanos),
            start_time_unix_nano: span.start_unix_nanos,
            duration_ns: span.duration_nanos,
            status: span.status.code.as_str(),
            status_message: span.status.message.as_deref().map(str::to_string),
            event_id: event.event_id.as_deref().map(str::to_string),
            event_type: event.event_type.as_deref().map(str::to_string),
            schema: event.schema.as_deref().map(str::to_string),
            stream: event.stream.as_deref().map(str::to_string),
            broker: event.broker.map(|broker| broker.as_str()),
            modified: event.modified,
            partition: event.partition,
            offset: event.offset,
            message_id: event.message_id.as_deref().map(str::to_string),
            attributes: attributes_map(&span.attributes),
            resource: attributes_map(&span.resource),
            links: span
                .links
                .iter()
                .map(|link| {
                    serde_json::json!({
                        "trace_id": link.trace_id.to_hex(),
                        "span_id": link.span_id.to_hex(),
                        "attributes": attributes_map(&link.attributes),
                    })
                })
                .collect(),
        }
    }
}
