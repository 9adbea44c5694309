//! The span record: OpenTelemetry's span shape plus typed event-streaming columns.

use serde::{Deserialize, Serialize};

use crate::ids::{SpanId, TraceId};

/// What a span did. `Producer` means an event was produced, `Consumer` that one was consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SpanKind {
    Producer,
    Consumer,
    Server,
    Client,
    Internal,
}

impl SpanKind {
    pub const ALL: [SpanKind; 5] = [
        SpanKind::Producer,
        SpanKind::Consumer,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Internal => "internal",
        }
    }

    pub fn parse(text: &str) -> Option<SpanKind> {
        SpanKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
    }

    /// The event action of this span kind, if it is an event-streaming span.
    pub fn action(self) -> Option<Action> {
        match self {
            SpanKind::Producer => Some(Action::Produced),
            SpanKind::Consumer => Some(Action::Consumed),
            _ => None,
        }
    }
}

/// Whether a service produced or consumed an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    Produced,
    Consumed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Produced => "produced",
            Action::Consumed => "consumed",
        }
    }

    /// Accepts `produced`/`consumed` and the kind names `producer`/`consumer`.
    pub fn parse(text: &str) -> Option<Action> {
        match text.to_ascii_lowercase().as_str() {
            "produced" | "producer" | "produce" => Some(Action::Produced),
            "consumed" | "consumer" | "consume" => Some(Action::Consumed),
            _ => None,
        }
    }
}

/// The broker kind carrying a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Broker {
    Kafka,
    Nats,
    Pulsar,
    Kinesis,
    Sqs,
    Rabbitmq,
    Redis,
    Other,
}

impl Broker {
    pub const ALL: [Broker; 8] = [
        Broker::Kafka,
        Broker::Nats,
        Broker::Pulsar,
        Broker::Kinesis,
        Broker::Sqs,
        Broker::Rabbitmq,
        Broker::Redis,
        Broker::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Broker::Kafka => "kafka",
            Broker::Nats => "nats",
            Broker::Pulsar => "pulsar",
            Broker::Kinesis => "kinesis",
            Broker::Sqs => "sqs",
            Broker::Rabbitmq => "rabbitmq",
            Broker::Redis => "redis",
            Broker::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Broker> {
        Broker::ALL
            .into_iter()
            .find(|broker| broker.as_str().eq_ignore_ascii_case(text))
    }
}

/// A typed attribute value, as in OpenTelemetry (arrays are not kept as such).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AttributeValue {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Attributes in the order they were received; keys are unique.
pub type Attributes = Vec<(String, AttributeValue)>;

/// Whether the span succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StatusCode {
    Ok,
    Error,
}

impl StatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// A span's outcome: `ok`, or `error` with an optional message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub code: StatusCode,
    pub message: Option<String>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            code: StatusCode::Ok,
            message: None,
        }
    }
}

/// A link to another span, possibly in another trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub attributes: Attributes,
}

/// The event-streaming columns. All empty for a plain request span.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventColumns {
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// Schema version or fingerprint of the payload.
    pub schema: Option<String>,
    pub stream: Option<String>,
    pub broker: Option<Broker>,
    /// A consumer that changed (re-serialized) the payload.
    pub modified: bool,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub message_id: Option<String>,
}

/// One record: a span, modelled after OpenTelemetry's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub service: String,
    /// Resource attributes: instance, host, version and the like.
    pub resource: Attributes,
    pub start_unix_nanos: i64,
    pub duration_nanos: i64,
    pub status: Status,
    pub attributes: Attributes,
    pub links: Vec<Link>,
    pub event: EventColumns,
}

impl Span {
    /// Produced for a producer span, consumed for a consumer span, none otherwise.
    pub fn action(&self) -> Option<Action> {
        self.kind.action()
    }

    pub fn end_unix_nanos(&self) -> i64 {
        self.start_unix_nanos.saturating_add(self.duration_nanos)
    }

    /// The memory this span holds: the struct and everything it owns on the heap (string and
    /// vector capacities). What bounds on memory in bytes count.
    pub fn memory_bytes(&self) -> usize {
        fn text(text: &Option<String>) -> usize {
            text.as_ref().map_or(0, String::capacity)
        }
        fn attributes(attributes: &Attributes) -> usize {
            attributes.capacity() * std::mem::size_of::<(String, AttributeValue)>()
                + attributes
                    .iter()
                    .map(|(key, value)| {
                        key.capacity()
                            + match value {
                                AttributeValue::String(text) => text.capacity(),
                                _ => 0,
                            }
                    })
                    .sum::<usize>()
        }
        let event = &self.event;
        std::mem::size_of::<Span>()
            + self.name.capacity()
            + self.service.capacity()
            + attributes(&self.resource)
            + attributes(&self.attributes)
            + text(&self.status.message)
            + self.links.capacity() * std::mem::size_of::<Link>()
            + self
                .links
                .iter()
                .map(|link| attributes(&link.attributes))
                .sum::<usize>()
            + text(&event.event_id)
            + text(&event.event_type)
            + text(&event.schema)
            + text(&event.stream)
            + text(&event.message_id)
    }
}
