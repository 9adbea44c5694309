//! The reference workload: events on 8 streams (kafka and nats) of 20 event types between 12
//! services, each event one producer span and 1–3 consumer spans in one trace, written as
//! native-JSON batches for `POST /api/v1/spans`. A batch is either built in full or patched
//! from a template with fresh ids and times, which is cheap enough to run beside the senders.

use rand::rngs::SmallRng;
use rand::{Rng, RngCore};

/// Producer start times are spread over this window before the moment of generation.
pub(crate) const WINDOW_NANOS: i64 = 30 * 60 * 1_000_000_000;

pub(crate) const SERVICES: [&str; 12] = [
    "checkout",
    "orders",
    "payments",
    "inventory",
    "shipping",
    "notifications",
    "billing",
    "fraud-detection",
    "analytics",
    "search-indexer",
    "email",
    "loyalty",
];

pub(crate) struct StreamDef {
    pub name: &'static str,
    pub broker: &'static str,
    pub publish_name: &'static str,
    pub process_name: &'static str,
}

const fn stream(
    name: &'static str,
    broker: &'static str,
    publish_name: &'static str,
    process_name: &'static str,
) -> StreamDef {
    StreamDef {
        name,
        broker,
        publish_name,
        process_name,
    }
}

pub(crate) const STREAMS: [StreamDef; 8] = [
    stream("orders", "kafka", "publish orders", "process orders"),
    stream("payments", "kafka", "publish payments", "process payments"),
    stream(
        "inventory",
        "kafka",
        "publish inventory",
        "process inventory",
    ),
    stream(
        "shipments",
        "kafka",
        "publish shipments",
        "process shipments",
    ),
    stream(
        "notifications",
        "nats",
        "publish notifications",
        "process notifications",
    ),
    stream(
        "customers",
        "nats",
        "publish customers",
        "process customers",
    ),
    stream("audit", "nats", "publish audit", "process audit"),
    stream("pricing", "nats", "publish pricing", "process pricing"),
];

/// Kafka topics have this many partitions.
pub(crate) const KAFKA_PARTITIONS: u32 = 12;

pub(crate) struct EventTypeDef {
    pub name: &'static str,
    pub schema: &'static str,
    pub stream_idx: usize,
    pub producer_idx: usize,
    /// An event is consumed by the first 1–3 of these.
    pub consumer_idxs: [usize; 3],
}

const fn event_type(
    name: &'static str,
    schema: &'static str,
    stream_idx: usize,
    producer_idx: usize,
    consumer_idxs: [usize; 3],
) -> EventTypeDef {
    EventTypeDef {
        name,
        schema,
        stream_idx,
        producer_idx,
        consumer_idxs,
    }
}

pub(crate) const EVENT_TYPES: [EventTypeDef; 20] = [
    event_type("order.created", "v3", 0, 0, [1, 3, 8]),
    event_type("order.updated", "v3", 0, 1, [4, 8, 9]),
    event_type("order.cancelled", "v2", 0, 1, [3, 2, 5]),
    event_type("order.fulfilled", "v1", 0, 1, [6, 11, 5]),
    event_type("payment.authorized", "v2", 1, 2, [1, 7, 8]),
    event_type("payment.captured", "v2", 1, 2, [6, 1, 11]),
    event_type("payment.failed", "v1", 1, 2, [1, 5, 7]),
    event_type("payment.refunded", "v1", 1, 2, [6, 8, 10]),
    event_type("inventory.reserved", "v4", 2, 3, [1, 8, 9]),
    event_type("inventory.released", "v4", 2, 3, [1, 8, 9]),
    event_type("stock.low", "v1", 2, 3, [5, 8, 10]),
    event_type("shipment.created", "v2", 3, 4, [1, 5, 8]),
    event_type("shipment.delivered", "v2", 3, 4, [1, 11, 10]),
    event_type("notification.requested", "v1", 4, 1, [5, 10, 8]),
    event_type("notification.sent", "v1", 4, 5, [8, 11, 10]),
    event_type("customer.registered", "v5", 5, 0, [11, 10, 7]),
    event_type("customer.updated", "v5", 5, 0, [9, 6, 11]),
    event_type("audit.recorded", "v1", 6, 7, [8, 6, 9]),
    event_type("price.changed", "v3", 7, 3, [9, 0, 8]),
    event_type("promotion.started", "v1", 7, 11, [0, 10, 9]),
];

pub(crate) const REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"];
pub(crate) const TENANT_TIERS: [&str; 3] = ["free", "pro", "enterprise"];
pub(crate) const CLIENT_VERSIONS: [&str; 5] = ["1.8.2", "1.9.0", "2.0.1", "2.1.0", "2.1.3"];

/// Widths of the patched fields, which a template rewrites in place.
const TRACE_HEX: usize = 32;
const SPAN_HEX: usize = 16;
const UUID_TEXT: usize = 36;
const MESSAGE_ID_HEX: usize = 24;
/// Unix nanoseconds between 2001 and 2286 have 19 digits.
const TIME_DIGITS: usize = 19;

/// An event whose journey the query phase asks for, and how many hops it must have.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub event_id: String,
    pub n_spans: usize,
}

/// A field of a template that gets a fresh value per copy.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Trace,
    /// The span id of the event's n-th span (0 is the producer, which is also every
    /// consumer's parent).
    SpanId(u8),
    EventId,
    MessageId,
    /// The start time of the n-th span: the producer's new start plus the template's lag.
    Start(u8),
}

#[derive(Debug, Clone)]
struct TemplateEvent {
    n_spans: u8,
    /// Start of each span minus the start of the producer span.
    lags_nanos: [i64; 4],
    /// End (exclusive) of this event's slots in `Template::slots`.
    slots_end: u32,
}

/// A built batch with the positions of every per-event unique field.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub body: bytes::Bytes,
    pub n_spans: usize,
    events: Vec<TemplateEvent>,
    slots: Vec<(u32, Slot)>,
}

impl Template {
    /// Drops the slot positions of a batch that will not serve as a template (saves memory).
    pub(crate) fn forget_slots(&mut self) {
        self.events = Vec::new();
        self.slots = Vec::new();
    }
}

/// One batch as JSON, with the event sampled for the journey queries and its template.
pub(crate) struct Built {
    pub template: Template,
    pub sample: Sample,
}

fn hex_into(destination: &mut [u8], source: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (index, byte) in source.iter().enumerate() {
        destination[index * 2] = DIGITS[(byte >> 4) as usize];
        destination[index * 2 + 1] = DIGITS[(byte & 0x0f) as usize];
    }
}

/// Random bytes that are never all zero (all-zero trace and span ids are invalid).
pub(crate) fn random_id<const N: usize>(rng: &mut SmallRng) -> [u8; N] {
    let mut bytes = [0u8; N];
    rng.fill_bytes(&mut bytes);
    bytes[N - 1] |= 1;
    bytes
}

pub(crate) fn random_hex<const N: usize, const HEX: usize>(rng: &mut SmallRng) -> [u8; HEX] {
    let mut text = [0u8; HEX];
    hex_into(&mut text, &random_id::<N>(rng));
    text
}

pub(crate) fn random_uuid(rng: &mut SmallRng) -> [u8; UUID_TEXT] {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    let mut text = [0u8; UUID_TEXT];
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut text);
    text
}

fn fixed_digits(destination: &mut [u8], mut value: u64) {
    for digit in destination.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The fresh per-event values of one event.
struct EventIds {
    trace: [u8; TRACE_HEX],
    span_ids: [[u8; SPAN_HEX]; 4],
    event_id: [u8; UUID_TEXT],
    message_id: [u8; MESSAGE_ID_HEX],
    start_nanos: i64,
}

impl EventIds {
    fn random(rng: &mut SmallRng, now_nanos: i64) -> EventIds {
        EventIds {
            trace: random_hex::<16, TRACE_HEX>(rng),
            span_ids: std::array::from_fn(|_| random_hex::<8, SPAN_HEX>(rng)),
            event_id: random_uuid(rng),
            message_id: random_hex::<12, MESSAGE_ID_HEX>(rng),
            start_nanos: now_nanos - rng.random_range(0..WINDOW_NANOS),
        }
    }
}

struct Writer {
    out: Vec<u8>,
    slots: Vec<(u32, Slot)>,
}

impl Writer {
    fn text(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    fn slot(&mut self, value: &[u8], slot: Slot) {
        self.slots.push((self.out.len() as u32, slot));
        self.out.extend_from_slice(value);
    }

    fn number(&mut self, value: i64) {
        use std::io::Write;
        let _ = write!(self.out, "{value}");
    }
}

/// What differs between the spans of one event.
struct SpanPlan {
    service: &'static str,
    is_producer: bool,
    lag_nanos: i64,
    duration_nanos: i64,
    region: &'static str,
    client_version: &'static str,
    failed: bool,
}

fn write_event(
    writer: &mut Writer,
    rng: &mut SmallRng,
    ids: &EventIds,
    n_consumers: usize,
    offset: i64,
) -> TemplateEvent {
    let event_type = &EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())];
    let stream = &STREAMS[event_type.stream_idx];
    let is_kafka = stream.broker == "kafka";
    let partition = rng.random_range(0..KAFKA_PARTITIONS);
    let tenant_tier = TENANT_TIERS[rng.random_range(0..TENANT_TIERS.len())];
    let mut plans = Vec::with_capacity(1 + n_consumers);
    plans.push(SpanPlan {
        service: SERVICES[event_type.producer_idx],
        is_producer: true,
        lag_nanos: 0,
        duration_nanos: rng.random_range(100_000..3_000_000),
        region: REGIONS[rng.random_range(0..REGIONS.len())],
        client_version: CLIENT_VERSIONS[rng.random_range(0..CLIENT_VERSIONS.len())],
        failed: false,
    });
    for consumer_idx in &event_type.consumer_idxs[..n_consumers] {
        plans.push(SpanPlan {
            service: SERVICES[*consumer_idx],
            is_producer: false,
            lag_nanos: rng.random_range(2_000_000..800_000_000),
            duration_nanos: rng.random_range(500_000..25_000_000),
            region: REGIONS[rng.random_range(0..REGIONS.len())],
            client_version: CLIENT_VERSIONS[rng.random_range(0..CLIENT_VERSIONS.len())],
            failed: rng.random_range(0..200) == 0,
        });
    }
    let mut lags_nanos = [0i64; 4];
    for (span_idx, plan) in plans.iter().enumerate() {
        lags_nanos[span_idx] = plan.lag_nanos;
        if writer.out.len() > 1 {
            writer.text(",");
        }
        writer.text("{\"trace_id\":\"");
        writer.slot(&ids.trace, Slot::Trace);
        writer.text("\",\"span_id\":\"");
        writer.slot(&ids.span_ids[span_idx], Slot::SpanId(span_idx as u8));
        if !plan.is_producer {
            writer.text("\",\"parent_span_id\":\"");
            writer.slot(&ids.span_ids[0], Slot::SpanId(0));
        }
        writer.text("\",\"name\":\"");
        writer.text(if plan.is_producer {
            stream.publish_name
        } else {
            stream.process_name
        });
        writer.text(if plan.is_producer {
            "\",\"kind\":\"producer\",\"service\":\""
        } else {
            "\",\"kind\":\"consumer\",\"service\":\""
        });
        writer.text(plan.service);
        writer.text("\",\"start_time_unix_nano\":");
        let mut start = [0u8; TIME_DIGITS];
        fixed_digits(&mut start, (ids.start_nanos + plan.lag_nanos) as u64);
        writer.slot(&start, Slot::Start(span_idx as u8));
        writer.text(",\"duration_nano\":");
        writer.number(plan.duration_nanos);
        if plan.failed {
            writer.text(",\"status\":{\"code\":\"error\",\"message\":\"handler timed out\"}");
        }
        writer.text(",\"event_id\":\"");
        writer.slot(&ids.event_id, Slot::EventId);
        writer.text("\",\"event_type\":\"");
        writer.text(event_type.name);
        writer.text("\",\"schema\":\"");
        writer.text(event_type.schema);
        writer.text("\",\"stream\":\"");
        writer.text(stream.name);
        writer.text("\",\"broker\":\"");
        writer.text(stream.broker);
        writer.text("\"");
        if is_kafka {
            writer.text(",\"partition\":");
            writer.number(i64::from(partition));
            writer.text(",\"offset\":");
            writer.number(offset);
        }
        writer.text(",\"message_id\":\"");
        writer.slot(&ids.message_id, Slot::MessageId);
        writer.text("\",\"attributes\":{\"cloud.region\":\"");
        writer.text(plan.region);
        writer.text("\",\"tenant.tier\":\"");
        writer.text(tenant_tier);
        writer.text("\",\"client.version\":\"");
        writer.text(plan.client_version);
        writer.text("\",\"retry\":false,");
        if is_kafka {
            writer.text("\"messaging.destination.partition.id\":\"");
            writer.number(i64::from(partition));
            writer.text("\"}}");
        } else {
            writer.text("\"messaging.nats.stream\":\"");
            writer.text(stream.name);
            writer.text("\"}}");
        }
    }
    TemplateEvent {
        n_spans: plans.len() as u8,
        lags_nanos,
        slots_end: writer.slots.len() as u32,
    }
}

/// How many consumers the next event gets so that the batch ends exactly full: 1–3, never
/// leaving room for exactly one span (an event needs at least two).
pub(crate) fn consumers_for(rng: &mut SmallRng, room: usize) -> usize {
    let mut n_consumers = rng.random_range(1..=3usize).min(room - 1);
    if room - (1 + n_consumers) == 1 {
        n_consumers = if n_consumers < 3 {
            n_consumers + 1
        } else {
            n_consumers - 1
        };
    }
    n_consumers
}

/// Builds a batch of exactly `n_spans` spans (at least 2), events placed in the
/// `WINDOW_NANOS` before `now_nanos`.
pub(crate) fn build_batch(
    rng: &mut SmallRng,
    n_spans: usize,
    first_offset: i64,
    now_nanos: i64,
) -> Built {
    assert!(
        n_spans >= 2,
        "a batch holds at least one event of two spans"
    );
    let mut writer = Writer {
        out: Vec::with_capacity(n_spans * 620 + 2),
        slots: Vec::with_capacity(n_spans * 6),
    };
    writer.out.push(b'[');
    let mut events = Vec::with_capacity(n_spans / 2);
    let mut event_ids: Vec<([u8; UUID_TEXT], usize)> = Vec::with_capacity(n_spans / 2);
    let mut room = n_spans;
    while room > 0 {
        let n_consumers = consumers_for(rng, room);
        let ids = EventIds::random(rng, now_nanos);
        let event = write_event(
            &mut writer,
            rng,
            &ids,
            n_consumers,
            first_offset + events.len() as i64,
        );
        room -= usize::from(event.n_spans);
        event_ids.push((ids.event_id, usize::from(event.n_spans)));
        events.push(event);
    }
    writer.out.push(b']');
    let (event_id, n_sampled) = event_ids[rng.random_range(0..event_ids.len())];
    Built {
        template: Template {
            body: bytes::Bytes::from(writer.out),
            n_spans,
            events,
            slots: writer.slots,
        },
        sample: Sample {
            event_id: String::from_utf8_lossy(&event_id).into_owned(),
            n_spans: n_sampled,
        },
    }
}

/// A copy of `template` with fresh trace, span, event and message ids and fresh start times
/// (same lags), so every span is new; structure, names and attributes repeat.
pub(crate) fn patch(template: &Template, rng: &mut SmallRng, now_nanos: i64) -> (Vec<u8>, Sample) {
    let mut body = template.body.to_vec();
    let sampled_event_idx = rng.random_range(0..template.events.len());
    let mut sample = None;
    let mut slot_start = 0usize;
    for (event_idx, event) in template.events.iter().enumerate() {
        let ids = EventIds::random(rng, now_nanos);
        let slots_end = event.slots_end as usize;
        for &(position, slot) in &template.slots[slot_start..slots_end] {
            let position = position as usize;
            match slot {
                Slot::Trace => body[position..position + TRACE_HEX].copy_from_slice(&ids.trace),
                Slot::SpanId(span_idx) => body[position..position + SPAN_HEX]
                    .copy_from_slice(&ids.span_ids[usize::from(span_idx)]),
                Slot::EventId => {
                    body[position..position + UUID_TEXT].copy_from_slice(&ids.event_id)
                }
                Slot::MessageId => {
                    body[position..position + MESSAGE_ID_HEX].copy_from_slice(&ids.message_id)
                }
                Slot::Start(span_idx) => fixed_digits(
                    &mut body[position..position + TIME_DIGITS],
                    (ids.start_nanos + event.lags_nanos[usize::from(span_idx)]) as u64,
                ),
            }
        }
        slot_start = slots_end;
        if event_idx == sampled_event_idx {
            sample = Some(Sample {
                event_id: String::from_utf8_lossy(&ids.event_id).into_owned(),
                n_spans: usize::from(event.n_spans),
            });
        }
    }
    let sample = sample.unwrap_or_else(|| Sample {
        event_id: String::new(),
        n_spans: 0,
    });
    (body, sample)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const NOW: i64 = 1_795_000_000_000_000_000;

    #[derive(serde::Deserialize)]
    struct WireSpan {
        trace_id: String,
        span_id: String,
        parent_span_id: Option<String>,
        kind: String,
        start_time_unix_nano: i64,
        event_id: String,
    }

    fn spans(body: &[u8]) -> Vec<WireSpan> {
        serde_json::from_slice(body).expect("a batch is a JSON array of spans")
    }

    #[test]
    fn a_batch_is_exactly_full_and_events_share_trace_and_event_id() {
        let mut rng = SmallRng::seed_from_u64(7);
        for n_spans in [2, 3, 4, 5, 7, 1000] {
            let built = build_batch(&mut rng, n_spans, 0, NOW);
            let spans = spans(&built.template.body);
            assert_eq!(spans.len(), n_spans);
            let producers: Vec<&WireSpan> = spans
                .iter()
                .filter(|span| span.kind == "producer")
                .collect();
            for consumer in spans.iter().filter(|span| span.kind == "consumer") {
                let producer = producers
                    .iter()
                    .find(|producer| producer.event_id == consumer.event_id)
                    .unwrap();
                assert_eq!(consumer.trace_id, producer.trace_id);
                assert_eq!(
                    consumer.parent_span_id.as_deref(),
                    Some(producer.span_id.as_str())
                );
            }
            let sampled = spans
                .iter()
                .filter(|span| span.event_id == built.sample.event_id)
                .count();
            assert_eq!(sampled, built.sample.n_spans);
        }
    }

    #[test]
    fn a_patched_copy_has_new_ids_and_the_same_lags() {
        let mut rng = SmallRng::seed_from_u64(11);
        let built = build_batch(&mut rng, 1000, 0, NOW);
        let (body, sample) = patch(&built.template, &mut rng, NOW + 1);
        let original = spans(&built.template.body);
        let copy = spans(&body);
        assert_eq!(copy.len(), original.len());
        let mut seen = std::collections::HashSet::new();
        for (before, after) in original.iter().zip(&copy) {
            assert_ne!(before.trace_id, after.trace_id);
            assert_ne!(before.event_id, after.event_id);
            assert!(seen.insert((after.trace_id.clone(), after.span_id.clone())));
            assert!(after.start_time_unix_nano <= NOW + 1 + 800_000_000);
        }
        for pair in original.windows(2).zip(copy.windows(2)) {
            if pair.0[0].event_id == pair.0[1].event_id {
                let lag_before = pair.0[1].start_time_unix_nano - pair.0[0].start_time_unix_nano;
                let lag_after = pair.1[1].start_time_unix_nano - pair.1[0].start_time_unix_nano;
                assert_eq!(lag_before, lag_after);
            }
        }
        assert_eq!(
            copy.iter()
                .filter(|span| span.event_id == sample.event_id)
                .count(),
            sample.n_spans
        );
    }
}
