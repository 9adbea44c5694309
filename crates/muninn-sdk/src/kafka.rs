//! Kafka adapter (feature `kafka`, rdkafka): a producer that records each send with its topic,
//! partition and offset and writes the event and trace headers, and the consumer-side call
//! that reads them back from a received message.

mod recycle;

use std::time::{Duration, Instant};

use rdkafka::client::{ClientContext, DefaultClientContext, OAuthToken};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage, Timestamp, ToBytes};
use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureRecord, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::statistics::Statistics;
use rdkafka::util::{AsyncRuntime, DefaultRuntime};

use tokio::sync::oneshot;

use self::recycle::Recycle;

use crate::propagation::{Extractor, Injector, SpanContext, named};
use crate::{Broker, EventSpan, Tracer};

/// Kafka headers being built for an outgoing record (rdkafka's `OwnedHeaders` is append-only).
#[derive(Default)]
pub struct KafkaHeadersWriter {
    headers: Option<OwnedHeaders>,
    /// Whether the record came with headers of its own, whose names can be anything.
    forwarded: bool,
    /// Hashes of the names this writer wrote itself, up to `WRITTEN` of them: a name that
    /// hashes to none of them was never written, so it needs no look-up through the headers.
    written: [u64; WRITTEN],
    written_len: usize,
}

/// How many written names a [`KafkaHeadersWriter`] remembers (the SDK writes at most six).
const WRITTEN: usize = 8;

/// FNV-1a of the ASCII-lowercased name: names compare case-insensitively.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl KafkaHeadersWriter {
    /// Starts from the record's own headers, if it has any.
    pub fn new(existing: Option<OwnedHeaders>) -> Self {
        KafkaHeadersWriter {
            forwarded: existing.as_ref().is_some_and(|headers| headers.count() > 0),
            headers: existing,
            ..KafkaHeadersWriter::default()
        }
    }

    pub fn into_headers(self) -> OwnedHeaders {
        self.headers.unwrap_or_default()
    }

    /// Whether a header named `key` may already be there (then the headers are searched).
    fn may_hold(&mut self, key: &str) -> bool {
        if self.forwarded || self.written_len == WRITTEN {
            return true;
        }
        let hash = name_hash(key);
        if self.written[..self.written_len].contains(&hash) {
            return true;
        }
        self.written[self.written_len] = hash;
        self.written_len += 1;
        false
    }
}

impl Injector for KafkaHeadersWriter {
    /// Replaces any header of the same name (compared case-insensitively): a record forwarded
    /// with the headers of the message it came from must not carry a stale `traceparent`
    /// ahead of the new one. `OwnedHeaders` is append-only, so a replacement copies the others.
    fn set(&mut self, key: &str, value: &str) {
        let mut headers = self
            .headers
            .take()
            .unwrap_or_else(|| OwnedHeaders::new_with_capacity(WRITTEN));
        if self.may_hold(key) {
            let present = (0..headers.count()).any(|index| {
                headers
                    .try_get(index)
                    .is_some_and(|header| header.key.eq_ignore_ascii_case(key))
            });
            if present {
                let mut kept = OwnedHeaders::new_with_capacity(headers.count());
                for header in (0..headers.count()).filter_map(|index| headers.try_get(index)) {
                    if !header.key.eq_ignore_ascii_case(key) {
                        kept = kept.insert(Header {
                            key: header.key,
                            value: header.value,
                        });
                    }
                }
                headers = kept;
            }
        }
        self.headers = Some(headers.insert(Header {
            key,
            value: Some(value),
        }));
    }
}

/// Read access to the headers of any received Kafka message (`BorrowedMessage`,
/// `OwnedMessage`); names compare case-insensitively, values must be UTF-8.
pub struct KafkaHeaders<'a, H: Headers + ?Sized>(pub Option<&'a H>);

impl<H: Headers + ?Sized> KafkaHeaders<'_, H> {
    /// Every header with a UTF-8 value, as (name, value), in record order.
    fn utf8(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.into_iter().flat_map(|headers| {
            (0..headers.count())
                .filter_map(|index| headers.try_get(index))
                .filter_map(|header| {
                    let value = std::str::from_utf8(header.value?).ok()?;
                    Some((header.key, value))
                })
        })
    }
}

impl<H: Headers + ?Sized> Extractor for KafkaHeaders<'_, H> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        named(self.utf8(), key).collect()
    }

    fn for_each_value<'s>(&'s self, key: &str, visit: &mut dyn FnMut(&'s str)) {
        named(self.utf8(), key).for_each(visit);
    }

    /// One pass over the record's headers (each read through librdkafka), instead of one per
    /// name extraction looks up.
    fn for_each_header<'s>(&'s self, visit: &mut dyn FnMut(&'s str, &'s str)) -> bool {
        self.utf8().for_each(|(name, value)| visit(name, value));
        true
    }
}

/// What identifies the event being sent.
#[derive(Debug, Clone, Copy)]
pub struct KafkaEvent<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub schema: Option<&'a str>,
}

/// A Kafka producer that traces what it sends: like rdkafka's `FutureProducer` (a thread of
/// its own polls for delivery reports, and [`TracedProducer::send`] resolves with the
/// record's partition and offset), plus the event's headers and trace context on every record
/// and a span per send.
///
/// It also hands each delivered record's headers back to the sending thread to be freed there
/// (see `kafka/recycle.rs`): on glibc, headers freed by librdkafka's polling thread cost the
/// sending thread more than writing them.
pub struct TracedProducer<C: ClientContext + 'static = DefaultClientContext> {
    producer: ThreadedProducer<TracedProducerContext<C>>,
    tracer: Tracer,
}

impl<C: ClientContext + 'static> Clone for TracedProducer<C> {
    fn clone(&self) -> Self {
        TracedProducer {
            producer: self.producer.clone(),
            tracer: self.tracer.clone(),
        }
    }
}

impl TracedProducer {
    /// Creates the producer from rdkafka's client configuration.
    pub fn new(config: &ClientConfig, tracer: Tracer) -> KafkaResult<Self> {
        TracedProducer::with_context(config, DefaultClientContext, tracer)
    }
}

impl<C: ClientContext + 'static> TracedProducer<C> {
    /// Creates the producer with a client context of your own (logging, statistics, OAuth).
    pub fn with_context(config: &ClientConfig, context: C, tracer: Tracer) -> KafkaResult<Self> {
        let producer = config.create_with_context(TracedProducerContext {
            wrapped: context,
            recycle: Recycle::new(),
        })?;
        Ok(TracedProducer { producer, tracer })
    }

    /// The producer itself, for everything else (flush, transactions, metadata…).
    pub fn inner(&self) -> &ThreadedProducer<TracedProducerContext<C>> {
        &self.producer
    }

    /// How many delivered records' header lists wait to be freed by the next sends (each send
    /// frees up to two; at most 1,024 wait, the rest are freed as they are delivered).
    pub fn headers_waiting(&self) -> usize {
        self.producer.context().recycle.waiting()
    }

    /// Sends `record` with the event's headers and trace context added to its own headers,
    /// and records the span with the partition and offset Kafka assigned (or the error).
    /// While librdkafka's queue is full it retries every 100 ms for up to `queue_timeout`, as
    /// `FutureProducer::send` does.
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        event: KafkaEvent<'_>,
        parent: Option<&SpanContext>,
        queue_timeout: Duration,
    ) -> OwnedDeliveryResult
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        // Before this record's headers are allocated, so that they reuse the freed memory.
        self.producer.context().recycle.free_some();
        let route = self
            .tracer
            .route(event.event_type, record.topic, Broker::Kafka);
        let mut writer = KafkaHeadersWriter::new(record.headers);
        let mut span =
            route.produce_with_headers(event.event_id, event.schema, parent, &mut writer);
        let (sender, delivered) = oneshot::channel();
        let mut base = BaseRecord {
            topic: record.topic,
            partition: record.partition,
            payload: record.payload,
            key: record.key,
            timestamp: record.timestamp,
            headers: Some(writer.into_headers()),
            delivery_opaque: Box::new(sender),
        };
        let started = Instant::now();
        let result = loop {
            match self.producer.send(base) {
                Ok(()) => match delivered.await {
                    Ok(result) => break result,
                    // librdkafka reports every record it accepted; only a producer torn down
                    // under the send ends here.
                    Err(_) => {
                        break Err((
                            KafkaError::Canceled,
                            OwnedMessage::new(
                                None,
                                None,
                                record.topic.to_owned(),
                                Timestamp::NotAvailable,
                                record.partition.unwrap_or(-1),
                                -1,
                                None,
                            ),
                        ));
                    }
                },
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused))
                    if started.elapsed() < queue_timeout =>
                {
                    base = refused;
                    DefaultRuntime::delay_for(QUEUE_FULL_RETRY).await;
                }
                Err((error, refused)) => break Err((error, unsent(refused))),
            }
        };
        match &result {
            Ok(delivery) => {
                span.partition(delivery.partition).offset(delivery.offset);
            }
            Err((error, _)) => {
                span.error(&error.to_string());
            }
        }
        span.end();
        result
    }
}

/// How long a send waits before retrying while librdkafka's queue is full (as rdkafka's
/// `FutureProducer` does).
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(100);

/// A record librdkafka refused, given back to the caller as an owned message.
fn unsent<K, P, D>(record: BaseRecord<'_, K, P, D>) -> OwnedMessage
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
    D: rdkafka::util::IntoOpaque,
{
    OwnedMessage::new(
        record.payload.map(|payload| payload.to_bytes().to_vec()),
        record.key.map(|key| key.to_bytes().to_vec()),
        record.topic.to_owned(),
        record
            .timestamp
            .map_or(Timestamp::NotAvailable, Timestamp::CreateTime),
        record.partition.unwrap_or(-1),
        -1,
        record.headers,
    )
}

/// The [`TracedProducer`]'s client context: yours, wrapped, plus what handles delivery reports.
pub struct TracedProducerContext<C> {
    wrapped: C,
    recycle: Recycle,
}

impl<C> TracedProducerContext<C> {
    /// The client context it wraps.
    pub fn wrapped(&self) -> &C {
        &self.wrapped
    }
}

impl<C: ClientContext + 'static> ClientContext for TracedProducerContext<C> {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = C::ENABLE_REFRESH_OAUTH_TOKEN;

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.wrapped.log(level, facility, message);
    }

    fn stats(&self, statistics: Statistics) {
        self.wrapped.stats(statistics);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.wrapped.stats_raw(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.wrapped.error(error, reason);
    }

    fn generate_oauth_token(
        &self,
        oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.wrapped.generate_oauth_token(oauthbearer_config)
    }
}

impl<C: ClientContext + 'static> ProducerContext for TracedProducerContext<C> {
    type DeliveryOpaque = Box<oneshot::Sender<OwnedDeliveryResult>>;

    /// On rdkafka's polling thread: resolves the send, and takes a delivered record's headers
    /// back for the sending thread to free.
    fn delivery(&self, report: &DeliveryResult<'_>, sender: Self::DeliveryOpaque) {
        let result = match report {
            Ok(message) => {
                self.recycle.take_back(message);
                Ok(Delivery {
                    partition: message.partition(),
                    offset: message.offset(),
                    timestamp: message.timestamp(),
                })
            }
            Err((error, message)) => Err((error.clone(), message.detach())),
        };
        // The send was dropped (cancelled): nobody waits for the result.
        let _ = sender.send(result);
    }
}

/// Records the consumption of a received Kafka message: the event id, type and schema and the
/// trace context come from its headers; topic, partition and offset from the message.
pub fn consume(tracer: &Tracer, message: &impl Message) -> EventSpan {
    let headers = KafkaHeaders(message.headers());
    let mut span = tracer.consume(message.topic(), Broker::Kafka, &headers);
    span.partition(message.partition()).offset(message.offset());
    span
}

/// Like [`consume`], but the span starts a new trace linked to the producer's.
pub fn consume_linked(tracer: &Tracer, message: &impl Message) -> EventSpan {
    let headers = KafkaHeaders(message.headers());
    let mut span = tracer.consume_linked(message.topic(), Broker::Kafka, &headers);
    span.partition(message.partition()).offset(message.offset());
    span
}

#[cfg(test)]
mod tests {
    use rdkafka::message::{Header, Headers, OwnedHeaders};

    use super::KafkaHeadersWriter;
    use crate::propagation::Injector;

    fn pairs(headers: &OwnedHeaders) -> Vec<(String, Option<Vec<u8>>)> {
        headers
            .iter()
            .map(|header| (header.key.to_string(), header.value.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn on_a_record_without_headers_a_name_set_again_in_other_case_is_replaced() {
        let mut writer = KafkaHeadersWriter::new(None);
        writer.set("muninn-event-id", "e-1");
        writer.set(
            "traceparent",
            "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01",
        );
        writer.set("Muninn-Event-Id", "e-2");
        let many: Vec<String> = (0..12).map(|n| format!("x-{n}")).collect();
        for name in &many {
            writer.set(name, "1");
        }
        // Past the names the writer remembers, it still finds a repeated one.
        writer.set("x-11", "2");
        writer.set("X-0", "2");
        let mut expected = vec![(
            "traceparent".to_string(),
            Some(b"00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01".to_vec()),
        )];
        expected.push(("Muninn-Event-Id".to_string(), Some(b"e-2".to_vec())));
        expected.extend((1..11).map(|n| (format!("x-{n}"), Some(b"1".to_vec()))));
        expected.push(("x-11".to_string(), Some(b"2".to_vec())));
        expected.push(("X-0".to_string(), Some(b"2".to_vec())));
        assert_eq!(pairs(&writer.into_headers()), expected);
    }

    #[test]
    fn a_header_set_again_replaces_the_forwarded_one_and_keeps_the_rest() {
        let forwarded = OwnedHeaders::new()
            .insert(Header {
                key: "TraceParent",
                value: Some("00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01"),
            })
            .insert(Header {
                key: "x-tenant",
                value: Some(&[0u8, 159, 146, 150][..]),
            })
            .insert(Header::<&str> {
                key: "x-null",
                value: None,
            });
        let mut writer = KafkaHeadersWriter::new(Some(forwarded));
        writer.set(
            "traceparent",
            "00-cccccccccccccccccccccccccccccccc-dddddddddddddddd-01",
        );
        writer.set("muninn-event-id", "e-1");
        writer.set("muninn-event-id", "e-2");
        let headers = writer.into_headers();
        assert_eq!(
            pairs(&headers),
            vec![
                ("x-tenant".to_string(), Some(vec![0u8, 159, 146, 150])),
                ("x-null".to_string(), None),
                (
                    "traceparent".to_string(),
                    Some(b"00-cccccccccccccccccccccccccccccccc-dddddddddddddddd-01".to_vec())
                ),
                ("muninn-event-id".to_string(), Some(b"e-2".to_vec())),
            ]
        );
    }
}
