//! A finished span waiting for export, and its encoding in Muninn's native JSON ingest format.

use muninn_model::{SpanId, TraceId};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::route::RouteInner;

/// An attribute value; arrays and maps are not kept (as in Muninn's store).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::String(value.to_string())
    }
}
impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::String(value)
    }
}
impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}
impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Value::Int(i64::from(value))
    }
}
impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Value::Int(i64::from(value))
    }
}
impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}
impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::String(text) => serializer.serialize_str(text),
            Value::Int(number) => serializer.serialize_i64(*number),
            // JSON has no NaN or infinity; send them as text rather than fail the batch.
            Value::Float(number) if !number.is_finite() => {
                serializer.serialize_str(&number.to_string())
            }
            Value::Float(number) => serializer.serialize_f64(*number),
            Value::Bool(flag) => serializer.serialize_bool(*flag),
        }
    }
}

/// Bytes of text a [`Text`] keeps inline (so that a `Text` is 48 bytes).
const INLINE: usize = 46;

/// Text of a span kept inside its record when short (event ids are UUIDs, ULIDs…; schemas
/// are names), on the heap otherwise. A sampled span then allocates nothing more than its
/// record, and the export thread frees nothing another thread allocated: a free across
/// threads is what glibc's allocator does worst, and a traced service pays for it.
#[derive(Clone)]
pub(crate) enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    pub(crate) fn new(text: &str) -> Text {
        if text.len() > INLINE {
            return Text::Heap(text.into());
        }
        let mut bytes = [0u8; INLINE];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Text::Inline {
            len: text.len() as u8,
            bytes,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `&str`, so always UTF-8.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Heap(text) => text,
        }
    }

    /// Bytes held on the heap (none when inline).
    pub(crate) fn heap_len(&self) -> usize {
        match self {
            Text::Inline { .. } => 0,
            Text::Heap(text) => text.len(),
        }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), formatter)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Producer,
    Consumer,
}

pub(crate) struct Record {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub kind: Kind,
    /// Its route's [`RouteInner::id`].
    pub route: u32,
    pub event_id: Text,
    pub schema: Option<Text>,
    pub start_unix_nanos: i64,
    pub duration_nanos: i64,
    pub modified: bool,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    /// What few spans carry, boxed: the common span stays small to move into the queue.
    pub extras: Option<Box<Extras>>,
}

#[derive(Default)]
pub(crate) struct Extras {
    /// A consumed event's type, when it differs from its route's.
    pub event_type: Option<String>,
    pub error: Option<String>,
    pub message_id: Option<String>,
    pub attributes: Vec<(String, Value)>,
    pub links: Vec<(TraceId, SpanId)>,
}

impl Extras {
    fn estimated_bytes(&self) -> usize {
        let text = |value: &Option<String>| value.as_ref().map_or(0, String::len);
        std::mem::size_of::<Extras>()
            + text(&self.event_type)
            + text(&self.error)
            + text(&self.message_id)
            + self
                .attributes
                .iter()
                .map(|(key, value)| {
                    std::mem::size_of::<(String, Value)>()
                        + key.len()
                        + match value {
                            Value::String(text) => text.len(),
                            _ => 0,
                        }
                })
                .sum::<usize>()
            + self.links.len() * std::mem::size_of::<(TraceId, SpanId)>()
    }
}

impl Record {
    /// What this span holds in memory, counted against the queue's byte bound.
    pub(crate) fn estimated_bytes(&self) -> usize {
        std::mem::size_of::<Record>()
            + self.event_id.heap_len()
            + self.schema.as_ref().map_or(0, Text::heap_len)
            + self.extras.as_deref().map_or(0, Extras::estimated_bytes)
    }

    /// The span's extras, made on first use.
    pub(crate) fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }
}

/// The span as the collector's `POST /api/v1/spans` expects it.
pub(crate) struct Wire<'a> {
    pub record: &'a Record,
    pub route: &'a RouteInner,
    pub service: &'a str,
    pub resource: &'a [(String, Value)],
}

struct Attributes<'a>(&'a [(String, Value)]);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct WireLink {
    trace_id: String,
    span_id: String,
}

#[derive(Serialize)]
struct WireStatus<'a> {
    code: &'static str,
    message: &'a str,
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let record = self.record;
        let route = self.route;
        let extras = record.extras.as_deref();
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("trace_id", &record.trace_id.to_hex())?;
        map.serialize_entry("span_id", &record.span_id.to_hex())?;
        if let Some(parent) = record.parent {
            map.serialize_entry("parent_span_id", &parent.to_hex())?;
        }
        let (kind, verb) = match record.kind {
            Kind::Producer => ("producer", "publish"),
            Kind::Consumer => ("consumer", "process"),
        };
        map.serialize_entry("name", &format!("{verb} {}", route.stream))?;
        map.serialize_entry("kind", kind)?;
        map.serialize_entry("service", self.service)?;
        map.serialize_entry("resource", &Attributes(self.resource))?;
        map.serialize_entry("start_time_unix_nano", &record.start_unix_nanos)?;
        map.serialize_entry("duration_nano", &record.duration_nanos)?;
        if let Some(message) = extras.and_then(|extras| extras.error.as_ref()) {
            map.serialize_entry(
                "status",
                &WireStatus {
                    code: "error",
                    message,
                },
            )?;
        }
        let attributes = extras.map_or(&[][..], |extras| &extras.attributes[..]);
        if !attributes.is_empty() {
            map.serialize_entry("attributes", &Attributes(attributes))?;
        }
        let links = extras.map_or(&[][..], |extras| &extras.links[..]);
        if !links.is_empty() {
            let links: Vec<WireLink> = links
                .iter()
                .map(|(trace_id, span_id)| WireLink {
                    trace_id: trace_id.to_hex(),
                    span_id: span_id.to_hex(),
                })
                .collect();
            map.serialize_entry("links", &links)?;
        }
        map.serialize_entry("event_id", &record.event_id)?;
        let event_type = extras
            .and_then(|extras| extras.event_type.as_deref())
            .unwrap_or(&route.event_type);
        map.serialize_entry("event_type", event_type)?;
        if let Some(schema) = &record.schema {
            map.serialize_entry("schema", schema)?;
        }
        map.serialize_entry("stream", &route.stream)?;
        map.serialize_entry("broker", route.broker.as_str())?;
        if record.modified {
            map.serialize_entry("modified", &true)?;
        }
        if let Some(partition) = record.partition {
            map.serialize_entry("partition", &partition)?;
        }
        if let Some(offset) = record.offset {
            map.serialize_entry("offset", &offset)?;
        }
        if let Some(message_id) = extras.and_then(|extras| extras.message_id.as_ref()) {
            map.serialize_entry("message_id", message_id)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::{INLINE, Text};

    #[test]
    fn text_keeps_any_length_whole_inline_up_to_the_limit_and_on_the_heap_beyond() {
        let uuid = "0b3c9f1e-8a57-4c52-9d8e-5c1f0e2a7b64";
        let at_limit = "é".repeat(INLINE / 2);
        let past_limit = format!("{at_limit}x");
        for (text, inline) in [
            ("", true),
            (uuid, true),
            (at_limit.as_str(), true),
            (past_limit.as_str(), false),
        ] {
            let made = Text::new(text);
            assert_eq!(made.as_str(), text);
            assert_eq!(matches!(made, Text::Inline { .. }), inline, "{text:?}");
            assert_eq!(made.heap_len(), if inline { 0 } else { text.len() });
            assert_eq!(
                serde_json::to_string(&made).expect("json"),
                serde_json::to_string(text).expect("json")
            );
        }
    }
}
