//! A span's tags as the tracing ecosystem expects them (Jaeger's typed tags, Zipkin's string
//! tags): its own attributes, then what Muninn keeps in dedicated columns under the
//! OpenTelemetry semantic-convention keys (`span.kind`, `messaging.system`,
//! `messaging.destination.name`, `cloudevents.event_type`…). An attribute that already has
//! one of those keys wins, so spans that arrived with these tags read back unchanged.

use muninn_model::{Action, AttributeValue, Attributes, Span, StatusCode};

/// Whose conventions the tags follow: they differ only in the `error` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagStyle {
    /// `error: true` (a boolean), as Jaeger's UI expects.
    Jaeger,
    /// `error: "<status message>"` (or `"true"` without one), as Zipkin's convention is.
    Zipkin,
}

/// `messaging.operation.type` of an event span (OpenTelemetry messaging conventions).
fn operation_type(action: Action) -> &'static str {
    match action {
        Action::Produced => "send",
        Action::Consumed => "process",
    }
}

/// The span's tags: attributes in arrival order, then the derived ones not already present.
pub(crate) fn span_tags(span: &Span, style: TagStyle) -> Attributes {
    let mut tags: Attributes = span.attributes.clone();
    fn push_absent(tags: &mut Attributes, key: &str, value: AttributeValue) {
        if !tags.iter().any(|(existing, _)| existing == key) {
            tags.push((key.into(), value));
        }
    }
    let text = |value: &str| AttributeValue::String(value.into());
    push_absent(&mut tags, "span.kind", text(span.kind.as_str()));
    if span.status.code == StatusCode::Error {
        let message = span.status.message.as_deref();
        match style {
            // Jaeger UI marks a span failed by the boolean, so it replaces an `error`
            // attribute (a Zipkin reporter's message, which is the status message too).
            TagStyle::Jaeger => {
                tags.retain(|(key, _)| key != "error");
                tags.push(("error".into(), AttributeValue::Bool(true)));
            }
            TagStyle::Zipkin => push_absent(&mut tags, "error", text(message.unwrap_or("true"))),
        }
        push_absent(&mut tags, "otel.status_code", text("ERROR"));
        if let Some(message) = message {
            push_absent(&mut tags, "otel.status_description", text(message));
        }
    }
    let event = &span.event;
    if let Some(broker) = event.broker {
        push_absent(&mut tags, "messaging.system", text(broker.as_str()));
    }
    if let Some(stream) = &event.stream {
        push_absent(&mut tags, "messaging.destination.name", text(stream));
    }
    if let Some(action) = span.action()
        && (event.stream.is_some() || event.event_id.is_some())
    {
        push_absent(
            &mut tags,
            "messaging.operation.type",
            text(operation_type(action)),
        );
    }
    if let Some(message_id) = event.message_id.as_ref().or(event.event_id.as_ref()) {
        push_absent(&mut tags, "messaging.message.id", text(message_id));
    }
    if let Some(event_id) = &event.event_id {
        push_absent(&mut tags, "cloudevents.event_id", text(event_id));
    }
    if let Some(event_type) = &event.event_type {
        push_absent(&mut tags, "cloudevents.event_type", text(event_type));
    }
    if let Some(schema) = &event.schema {
        push_absent(&mut tags, "muninn.event.schema", text(schema));
    }
    if let Some(partition) = event.partition {
        push_absent(
            &mut tags,
            "messaging.destination.partition.id",
            text(&partition.to_string()),
        );
    }
    if let Some(offset) = event.offset {
        push_absent(
            &mut tags,
            "messaging.kafka.offset",
            AttributeValue::Int(offset),
        );
    }
    if event.modified {
        push_absent(
            &mut tags,
            "muninn.event.modified",
            AttributeValue::Bool(true),
        );
    }
    tags
}

/// A tag value as text: what Zipkin shows and what tag searches compare with.
pub(crate) fn tag_text(value: &AttributeValue) -> String {
    match value {
        AttributeValue::String(text) => text.to_string(),
        AttributeValue::Int(number) => number.to_string(),
        AttributeValue::Float(number) => number.to_string(),
        AttributeValue::Bool(flag) => flag.to_string(),
    }
}

/// The remote service of a span as Zipkin shows it: the `peer.service` attribute, or the
/// broker of an event span.
pub(crate) fn remote_service(span: &Span) -> Option<String> {
    let peer = span.attributes.iter().find_map(|(key, value)| match value {
        AttributeValue::String(text) if key == "peer.service" && !text.is_empty() => {
            Some(text.to_string())
        }
        _ => None,
    });
    peer.or_else(|| {
        span.action()
            .and(span.event.broker)
            .map(|broker| broker.as_str().to_string())
    })
}
