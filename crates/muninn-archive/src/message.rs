//! One archived message, as the broker handed it out: payload, key and headers byte for byte,
//! where it sat (stream, partition, offset), the broker's timestamp, and what the producer said
//! about the event (`muninn-event-*`, CloudEvents) and its trace (`traceparent`, `b3`).

use muninn_sdk::propagation::{self, Extractor};
use serde::{Deserialize, Serialize};

/// Which broker a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceBroker {
    Kafka,
    Nats,
}

impl SourceBroker {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceBroker::Kafka => "kafka",
            SourceBroker::Nats => "nats",
        }
    }

    pub fn parse(text: &str) -> Option<SourceBroker> {
        match text {
            "kafka" => Some(SourceBroker::Kafka),
            "nats" => Some(SourceBroker::Nats),
            _ => None,
        }
    }
}

/// What a message's timestamp means (Kafka's timestamp type; JetStream's is the time the
/// server stored the message, like Kafka's log-append time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it stored the message.
    LogAppendTime,
    /// The message had no timestamp; the archive holds the time the recorder received it.
    NotAvailable,
}

impl TimestampType {
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "create_time",
            TimestampType::LogAppendTime => "log_append_time",
            TimestampType::NotAvailable => "not_available",
        }
    }

    pub fn parse(text: &str) -> Option<TimestampType> {
        match text {
            "create_time" => Some(TimestampType::CreateTime),
            "log_append_time" => Some(TimestampType::LogAppendTime),
            "not_available" => Some(TimestampType::NotAvailable),
            _ => None,
        }
    }
}

/// One header: a name and a value that may be absent (Kafka allows null values) and need not
/// be UTF-8. Order and duplicates are kept as the broker gave them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub value: Option<Vec<u8>>,
}

/// One archived message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub broker: SourceBroker,
    /// The Kafka topic or the JetStream stream.
    pub stream: String,
    /// The NATS subject the message was published on; `None` for Kafka.
    pub subject: Option<String>,
    /// The Kafka partition; 0 for JetStream.
    pub partition: i32,
    /// The Kafka offset or the JetStream stream sequence.
    pub offset: i64,
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    pub payload: Option<Vec<u8>>,
    /// From the producer's headers, when present and valid.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub event_schema: Option<String>,
    /// 32 lowercase hex digits, from `traceparent` or `b3`, when present and valid.
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

impl Message {
    /// A message with the producer-side fields (event id, type, schema, trace and span id)
    /// read from its headers.
    #[allow(clippy::too_many_arguments)]
    pub fn from_broker(
        broker: SourceBroker,
        stream: String,
        subject: Option<String>,
        partition: i32,
        offset: i64,
        timestamp_ms: i64,
        timestamp_type: TimestampType,
        key: Option<Vec<u8>>,
        headers: Vec<Header>,
        payload: Option<Vec<u8>>,
    ) -> Message {
        let extracted = propagation::extract(&HeaderList(&headers));
        let (trace_id, span_id) = match extracted.context {
            Some(context) => (
                Some(context.trace_id.to_string()),
                Some(context.span_id.to_string()),
            ),
            None => (None, None),
        };
        Message {
            broker,
            stream,
            subject,
            partition,
            offset,
            timestamp_ms,
            timestamp_type,
            key,
            headers,
            payload,
            event_id: extracted.event.event_id,
            event_type: extracted.event.event_type,
            event_schema: extracted.event.schema,
            trace_id,
            span_id,
        }
    }

    /// Bytes the message takes on the wire, roughly: key, payload and headers.
    pub fn size_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|header| header.name.len() + header.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }

    /// The first header named `name` (ASCII case ignored).
    pub fn header(&self, name: &str) -> Option<&Header> {
        self.headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
    }
}

/// Headers as a propagation carrier: values that are not UTF-8 are invisible to it.
pub struct HeaderList<'a>(pub &'a [Header]);

impl HeaderList<'_> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter_map(|header| {
            let value = std::str::from_utf8(header.value.as_deref()?).ok()?;
            Some((header.name.as_str(), value))
        })
    }
}

impl Extractor for HeaderList<'_> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.pairs()
            .filter(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
            .collect()
    }

    fn for_each_header<'s>(&'s self, visit: &mut dyn FnMut(&'s str, &'s str)) -> bool {
        for (name, value) in self.pairs() {
            visit(name, value);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: Option<&[u8]>) -> Header {
        Header {
            name: name.to_owned(),
            value: value.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn event_and_trace_fields_come_from_the_headers_and_binary_headers_are_kept() {
        let headers = vec![
            header("bin", Some(&[0, 159, 146, 150])),
            header(
                "traceparent",
                Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
            header("muninn-event-id", Some(b"e-1")),
            header("muninn-event-type", Some(b"order.created")),
            header("muninn-event-schema", Some(b"v3")),
            header("null", None),
            header("bin", Some(&[1])),
        ];
        let message = Message::from_broker(
            SourceBroker::Kafka,
            "orders".into(),
            None,
            3,
            42,
            1_700_000_000_000,
            TimestampType::CreateTime,
            Some(b"k".to_vec()),
            headers.clone(),
            Some(vec![0xff; 3]),
        );
        assert_eq!(message.event_id.as_deref(), Some("e-1"));
        assert_eq!(message.event_type.as_deref(), Some("order.created"));
        assert_eq!(message.event_schema.as_deref(), Some("v3"));
        assert_eq!(
            message.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(message.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(message.headers, headers, "order, duplicates, nulls kept");
    }
}
