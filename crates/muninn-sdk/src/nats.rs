//! NATS JetStream adapter (feature `nats`, async-nats): a publisher that records each publish
//! with the stream sequence the server acknowledged and writes the event and trace headers,
//! and the consumer-side call that reads them back. The subject is Muninn's stream name on
//! both sides (OpenTelemetry's `messaging.destination.name` for NATS).

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishError, publish::PublishAck};
use bytes::Bytes;

use crate::propagation::{Extractor, Injector, SpanContext, named};
use crate::{Broker, EventSpan, Tracer};

/// NATS headers being written; names are inserted as given (lowercase), replacing any value.
pub struct NatsHeadersWriter<'a>(pub &'a mut HeaderMap);

impl Injector for NatsHeadersWriter<'_> {
    fn set(&mut self, key: &str, value: &str) {
        // Invalid names or values (control characters) are skipped rather than panicking.
        if let (Ok(name), Ok(value)) = (
            key.parse::<async_nats::header::HeaderName>(),
            value.parse::<async_nats::HeaderValue>(),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Read access to a received message's headers; names compare case-insensitively.
pub struct NatsHeaders<'a>(pub Option<&'a HeaderMap>);

impl NatsHeaders<'_> {
    /// Every header value with its name, in the map's order.
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.into_iter().flat_map(|headers| {
            headers.iter().flat_map(|(name, values)| {
                let name: &str = name.as_ref();
                values.iter().map(move |value| (name, value.as_str()))
            })
        })
    }
}

impl Extractor for NatsHeaders<'_> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        named(self.pairs(), key).collect()
    }

    fn for_each_value<'s>(&'s self, key: &str, visit: &mut dyn FnMut(&'s str)) {
        named(self.pairs(), key).for_each(visit);
    }

    fn for_each_header<'s>(&'s self, visit: &mut dyn FnMut(&'s str, &'s str)) -> bool {
        self.pairs().for_each(|(name, value)| visit(name, value));
        true
    }
}

/// What identifies the event being published.
#[derive(Debug, Clone, Copy)]
pub struct NatsEvent<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub schema: Option<&'a str>,
}

/// A JetStream context that traces what it publishes.
#[derive(Clone)]
pub struct TracedJetStream {
    context: jetstream::Context,
    tracer: Tracer,
}

impl TracedJetStream {
    pub fn new(context: jetstream::Context, tracer: Tracer) -> Self {
        TracedJetStream { context, tracer }
    }

    /// The wrapped context, for everything else (streams, consumers, key-value…).
    pub fn inner(&self) -> &jetstream::Context {
        &self.context
    }

    /// Publishes `payload` to `subject` with the event's headers and trace context added to
    /// `headers`, waits for the server's acknowledgement, and records the span with the stream
    /// sequence as offset and message id (or the error).
    pub async fn publish(
        &self,
        subject: &str,
        mut headers: HeaderMap,
        payload: Bytes,
        event: NatsEvent<'_>,
        parent: Option<&SpanContext>,
    ) -> Result<PublishAck, PublishError> {
        let route = self.tracer.route(event.event_type, subject, Broker::Nats);
        let mut span = route.produce_with_headers(
            event.event_id,
            event.schema,
            parent,
            &mut NatsHeadersWriter(&mut headers),
        );
        let result = match self
            .context
            .publish_with_headers(subject.to_string(), headers, payload)
            .await
        {
            Ok(ack) => ack.await,
            Err(error) => Err(error),
        };
        match &result {
            Ok(ack) => {
                let sequence = i64::try_from(ack.sequence).unwrap_or(i64::MAX);
                span.offset(sequence)
                    .message_id(&format!("{}:{}", ack.stream, ack.sequence));
            }
            Err(error) => {
                span.error(&error.to_string());
            }
        }
        span.end();
        result
    }
}

fn started(span: &mut EventSpan, message: &jetstream::Message) {
    if let Ok(info) = message.info() {
        let sequence = i64::try_from(info.stream_sequence).unwrap_or(i64::MAX);
        span.offset(sequence)
            .message_id(&format!("{}:{}", info.stream, info.stream_sequence));
        if info.delivered > 1 {
            span.attribute("messaging.nats.delivered", info.delivered);
        }
    }
}

/// Records the consumption of a JetStream message: event id, type, schema and trace context
/// from its headers; subject, stream sequence and delivery count from the message.
pub fn consume(tracer: &Tracer, message: &jetstream::Message) -> EventSpan {
    let headers = NatsHeaders(message.headers.as_ref());
    let mut span = tracer.consume(message.subject.as_str(), Broker::Nats, &headers);
    started(&mut span, message);
    span
}

/// Like [`consume`], but the span starts a new trace linked to the producer's.
pub fn consume_linked(tracer: &Tracer, message: &jetstream::Message) -> EventSpan {
    let headers = NatsHeaders(message.headers.as_ref());
    let mut span = tracer.consume_linked(message.subject.as_str(), Broker::Nats, &headers);
    started(&mut span, message);
    span
}
