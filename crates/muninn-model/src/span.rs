//! The span record: OpenTelemetry's span shape plus typed event-streaming columns.

use serde::{Deserialize, Serialize};

use crate::ids::{SpanId, TraceId};

/// A span's text: up to 24 bytes held inline, longer on the heap. Names, services, event
/// types, schemas, streams, message ids and most attribute keys and values fit, so a decoded
/// span allocates for its event id (a UUID is 36 bytes), its attribute list and long values
/// only. Serialized as a plain string.
pub type Text = compact_str::CompactString;

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
    String(Text),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Attributes in the order they were received; keys are unique.
pub type Attributes = Vec<(Text, AttributeValue)>;

/// A span's resource attributes, shared by the spans of one resource: an OTLP request's
/// `resource_spans` entry gives the same list to each of its spans, and a block's row group to
/// each of its rows with the same resource. Serialized as the list itself.
pub type Resource = std::sync::Arc<Attributes>;

/// The empty resource, shared (no allocation for each span without one).
pub fn empty_resource() -> Resource {
    static EMPTY: std::sync::LazyLock<Resource> = std::sync::LazyLock::new(Resource::default);
    EMPTY.clone()
}

/// A resource of its own for `list`, or the shared empty one.
pub fn new_resource(list: Attributes) -> Resource {
    if list.is_empty() {
        empty_resource()
    } else {
        Resource::new(list)
    }
}

/// Keys of OpenTelemetry's semantic conventions longer than the 24 bytes a [`Text`] holds
/// inline, which the messaging spans Muninn takes carry on most spans.
const LONG_KNOWN_KEYS: &[&str] = &[
    "messaging.destination.partition.id",
    "messaging.destination.name",
    "messaging.destination.template",
    "messaging.destination.temporary",
    "messaging.destination.anonymous",
    "messaging.destination.subscription.name",
    "messaging.destination_publish.name",
    "messaging.consumer.group.name",
    "messaging.message.conversation_id",
    "messaging.message.body.size",
    "messaging.message.envelope.size",
    "messaging.batch.message_count",
    "messaging.kafka.message.key",
    "messaging.kafka.message.tombstone",
    "messaging.kafka.message.offset",
    "messaging.kafka.consumer.group",
    "messaging.kafka.destination.partition",
    "messaging.rabbitmq.destination.routing_key",
    "messaging.rabbitmq.message.delivery_tag",
    "messaging.rocketmq.message.keys",
    "messaging.rocketmq.message.tag",
    "messaging.rocketmq.client_group",
    "messaging.gcp_pubsub.message.ordering_key",
    "messaging.gcp_pubsub.message.ack_id",
    "messaging.servicebus.message.delivery_count",
    "messaging.servicebus.message.enqueued_time",
    "messaging.eventhubs.message.enqueued_time",
    "messaging.eventhubs.consumer.group",
    "deployment.environment.name",
    "process.runtime.description",
    "http.response.status_code",
    "http.request.method_original",
];

/// An attribute key as a [`Text`]: the long keys of the semantic conventions point at one
/// static copy instead of allocating for every span; any other key is copied (inline up to
/// 24 bytes).
pub fn attribute_key(key: &str) -> Text {
    if key.len() > 24
        && let Some(known) = LONG_KNOWN_KEYS.iter().find(|known| **known == key)
    {
        return Text::const_new(known);
    }
    Text::from(key)
}

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
    pub message: Option<Text>,
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
    pub event_id: Option<Text>,
    pub event_type: Option<Text>,
    /// Schema version or fingerprint of the payload.
    pub schema: Option<Text>,
    pub stream: Option<Text>,
    pub broker: Option<Broker>,
    /// A consumer that changed (re-serialized) the payload.
    pub modified: bool,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub message_id: Option<Text>,
}

/// One record: a span, modelled after OpenTelemetry's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: Text,
    pub kind: SpanKind,
    pub service: Text,
    /// Resource attributes: instance, host, version and the like.
    pub resource: Resource,
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
    /// vector capacities, each rounded up to the allocator's size class). What bounds on
    /// memory in bytes count.
    pub fn memory_bytes(&self) -> usize {
        fn text(text: &Option<Text>) -> usize {
            text.as_ref().map_or(0, heap)
        }
        // What a text holds on the heap: nothing when it is inline.
        fn heap(text: &Text) -> usize {
            if text.is_heap_allocated() {
                allocated_size(text.capacity())
            } else {
                0
            }
        }
        fn attributes(attributes: &Attributes) -> usize {
            allocated_size(attributes.capacity() * std::mem::size_of::<(Text, AttributeValue)>())
                + attributes
                    .iter()
                    .map(|(key, value)| {
                        heap(key)
                            + match value {
                                AttributeValue::String(text) => heap(text),
                                _ => 0,
                            }
                    })
                    .sum::<usize>()
        }
        let event = &self.event;
        std::mem::size_of::<Span>()
            + heap(&self.name)
            + heap(&self.service)
            // Counted in full for each span that shares it: an upper bound.
            + attributes(&self.resource)
            + attributes(&self.attributes)
            + text(&self.status.message)
            + allocated_size(self.links.capacity() * std::mem::size_of::<Link>())
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

/// The bytes an allocator hands out for a request of `n` bytes, by jemalloc's size classes
/// (the binaries' allocator): 8, then multiples of 16 up to 128, then four classes between
/// each power of two and the next; 0 for no allocation.
pub fn allocated_size(n: usize) -> usize {
    match n {
        0 => 0,
        1..=8 => 8,
        9..=128 => n.div_ceil(16) * 16,
        _ => {
            // The smallest power of two holding n is 2^k; the classes below it are 2^(k-3) apart.
            let k = usize::BITS - (n - 1).leading_zeros();
            let step = 1usize << (k - 3);
            n.div_ceil(step) * step
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_counted_by_jemallocs_size_classes() {
        let cases = [
            (0, 0),
            (1, 8),
            (8, 8),
            (9, 16),
            (36, 48),
            (128, 128),
            (129, 160),
            (256, 256),
            (257, 320),
            (1000, 1024),
            (1025, 1280),
        ];
        for (requested, handed_out) in cases {
            assert_eq!(allocated_size(requested), handed_out, "{requested} bytes");
        }
    }

    #[test]
    fn a_span_counts_its_strings_as_allocated() {
        let mut span = Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([1; 8]),
            parent_span_id: None,
            name: Text::with_capacity(36),
            kind: SpanKind::Producer,
            service: Text::default(),
            resource: empty_resource(),
            start_unix_nanos: 0,
            duration_nanos: 0,
            status: Status::default(),
            attributes: Vec::new(),
            links: Vec::new(),
            event: EventColumns::default(),
        };
        let bare = std::mem::size_of::<Span>();
        assert_eq!(span.memory_bytes(), bare + 48);
        span.event.event_id = Some("6f1c0a52-8a8e-4d3b-9f53-0f3c2b9f1a11".into());
        assert_eq!(span.memory_bytes(), bare + 48 + 48);
        // Texts of up to 24 bytes are inline: they take nothing more.
        span.event.message_id = Some("1faeef7fd96beb13f5060ca5".into());
        span.service = "inventory".into();
        assert_eq!(span.memory_bytes(), bare + 48 + 48);
        // A long key of the conventions points at its static copy; another long key is counted.
        span.attributes = Vec::with_capacity(2);
        let attributes = allocated_size(2 * std::mem::size_of::<(Text, AttributeValue)>());
        span.attributes.push((
            attribute_key("messaging.destination.partition.id"),
            AttributeValue::Int(3),
        ));
        assert_eq!(span.memory_bytes(), bare + 48 + 48 + attributes);
        span.attributes.push((
            attribute_key("messaging.destination.partition.ids"),
            AttributeValue::Int(3),
        ));
        assert_eq!(span.memory_bytes(), bare + 48 + 48 + attributes + 48);
    }

    #[test]
    fn known_long_keys_are_shared_and_every_key_reads_back_as_sent() {
        for key in LONG_KNOWN_KEYS {
            assert!(key.len() > 24, "{key} would be inline anyway");
            let text = attribute_key(key);
            assert_eq!(text, *key);
            assert!(!text.is_heap_allocated(), "{key}");
        }
        for key in [
            "",
            "a",
            "messaging.system",
            "messaging.destination.partition.idx",
        ] {
            assert_eq!(attribute_key(key), key);
        }
    }
}
