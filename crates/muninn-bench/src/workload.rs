//! The events both workloads are made of, shared by both protocols (`native.rs` writes them as
//! native JSON, `otlp.rs` as OTLP protobuf): 20 event types on 8 streams (kafka and nats)
//! between 12 services. The reference workload gives each event 1–3 consumer spans in the
//! producer's trace; the random workload 0–5, each in a new trace of its own (linked to the
//! producer span) with probability 1/4. An event is drawn as its shape, its fresh ids and the
//! plan of its spans, always in the same order of random draws, so that one seed gives the
//! same events in both protocols, and the reference workload the same bytes as before the
//! random one existed (`golden.rs` checks it).

use std::ops::Range;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore};

/// Which events the benchmark sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Workload {
    /// 1–3 consumer spans per event, all in the producer's trace, as child spans of it.
    Reference,
    /// 0–5 consumer spans per event; each starts a new trace with a span link to the producer
    /// with probability 1/4; ids fully random (no bit fixed).
    Random,
}

/// Most consumer spans an event of the random workload has.
pub(crate) const MAX_RANDOM_CONSUMERS: usize = 5;
/// Most spans an event has, in either workload.
pub(crate) const MAX_SPANS: usize = 1 + MAX_RANDOM_CONSUMERS;
/// Span ids the reference workload draws per event, whatever its number of spans (kept so that
/// its random draws, and so its bytes, stay as they were).
const REFERENCE_SPAN_IDS: usize = 4;
/// In the random workload, a consumer span starts a new trace with probability 1 in this.
pub(crate) const NEW_TRACE_ONE_IN: u32 = 4;
/// A consumer span fails (status error) with probability 1 in this.
pub(crate) const FAILED_ONE_IN: i32 = 200;
pub(crate) const PRODUCER_DURATION_NANOS: Range<i64> = 100_000..3_000_000;
/// A consumer span starts this long after its producer span.
pub(crate) const CONSUMER_LAG_NANOS: Range<i64> = 2_000_000..800_000_000;
pub(crate) const CONSUMER_DURATION_NANOS: Range<i64> = 500_000..25_000_000;

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
    /// An event of the reference workload is consumed by the first 1–3 of these; in the random
    /// workload, consumer spans 4 and 5 are second deliveries to the first two.
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

/// Text widths of the per-event values.
pub(crate) const UUID_TEXT: usize = 36;
pub(crate) const MESSAGE_ID_HEX: usize = 24;

/// An event whose journey the query phase asks for, and what the journey must hold.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub event_id: String,
    /// The producer's trace, lowercase hex: what the trace-by-id queries ask for.
    pub trace_id: String,
    /// Hops: every span of the event carries its id.
    pub n_spans: usize,
    /// The producer's trace and one per consumer that started a new trace.
    pub n_traces: usize,
}

impl Sample {
    pub(crate) fn of(event_id: &[u8], trace_id: &[u8; 16], shape: EventShape) -> Sample {
        Sample {
            event_id: String::from_utf8_lossy(event_id).into_owned(),
            trace_id: String::from_utf8_lossy(&hex::<32>(trace_id)).into_owned(),
            n_spans: shape.n_spans(),
            n_traces: shape.n_traces(),
        }
    }
}

fn hex_into(destination: &mut [u8], source: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (index, byte) in source.iter().enumerate() {
        destination[index * 2] = DIGITS[(byte >> 4) as usize];
        destination[index * 2 + 1] = DIGITS[(byte & 0x0f) as usize];
    }
}

/// `source` as lowercase hex; `HEX` must be twice `source.len()`.
pub(crate) fn hex<const HEX: usize>(source: &[u8]) -> [u8; HEX] {
    let mut text = [0u8; HEX];
    hex_into(&mut text, source);
    text
}

/// Random bytes that are never all zero (all-zero trace and span ids are invalid), the last bit
/// set: the reference workload's ids.
pub(crate) fn random_id<const N: usize>(rng: &mut SmallRng) -> [u8; N] {
    let mut bytes = [0u8; N];
    rng.fill_bytes(&mut bytes);
    bytes[N - 1] |= 1;
    bytes
}

/// Uniformly random bytes, drawn again in the (2^-64 or less) case they are all zero: the
/// random workload's ids, as an OpenTelemetry SDK makes them.
fn random_nonzero_id<const N: usize>(rng: &mut SmallRng) -> [u8; N] {
    loop {
        let mut bytes = [0u8; N];
        rng.fill_bytes(&mut bytes);
        if bytes != [0u8; N] {
            return bytes;
        }
    }
}

pub(crate) fn random_hex<const N: usize, const HEX: usize>(rng: &mut SmallRng) -> [u8; HEX] {
    hex(&random_id::<N>(rng))
}

/// A UUIDv4 (122 random bits) as hyphenated lowercase text.
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

impl Workload {
    fn trace_id(self, rng: &mut SmallRng) -> [u8; 16] {
        match self {
            Workload::Reference => random_id(rng),
            Workload::Random => random_nonzero_id(rng),
        }
    }

    fn span_id(self, rng: &mut SmallRng) -> [u8; 8] {
        match self {
            Workload::Reference => random_id(rng),
            Workload::Random => random_nonzero_id(rng),
        }
    }
}

/// How many consumer spans an event has and which of them start a new trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventShape {
    n_consumers: u8,
    /// Bit `i` set: span `i` of the event (0 is the producer, never set) is in a new trace.
    new_traces: u8,
}

impl EventShape {
    /// The shape of the next event of a batch with room for `room` more spans (at least 1), so
    /// that the batch ends exactly full.
    pub(crate) fn draw(workload: Workload, rng: &mut SmallRng, room: usize) -> EventShape {
        match workload {
            Workload::Reference => EventShape {
                n_consumers: consumers_for(rng, room) as u8,
                new_traces: 0,
            },
            Workload::Random => {
                let n_consumers = rng.random_range(0..=MAX_RANDOM_CONSUMERS).min(room - 1);
                let mut new_traces = 0u8;
                for span_idx in 1..=n_consumers {
                    if rng.random_range(0..NEW_TRACE_ONE_IN) == 0 {
                        new_traces |= 1 << span_idx;
                    }
                }
                EventShape {
                    n_consumers: n_consumers as u8,
                    new_traces,
                }
            }
        }
    }

    pub(crate) fn n_spans(self) -> usize {
        1 + usize::from(self.n_consumers)
    }

    /// Whether span `span_idx` of the event (0 is the producer) starts a new trace, linked to
    /// the producer span instead of being its child.
    pub(crate) fn in_new_trace(self, span_idx: usize) -> bool {
        span_idx < 8 && self.new_traces & (1 << span_idx) != 0
    }

    pub(crate) fn n_traces(self) -> usize {
        1 + self.new_traces.count_ones() as usize
    }
}

/// How many consumers the next event of the reference workload gets so that the batch ends
/// exactly full: 1–3, never leaving room for exactly one span (its events need at least two).
fn consumers_for(rng: &mut SmallRng, room: usize) -> usize {
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

/// The fresh values of one event: what a copy of a template gets anew.
#[derive(Debug, Clone)]
pub(crate) struct EventIds {
    /// `traces[0]` is the producer's trace (and that of every consumer in it); `traces[i]` the
    /// new trace of span `i` when the shape says it starts one (unused otherwise).
    pub traces: [[u8; 16]; MAX_SPANS],
    pub span_ids: [[u8; 8]; MAX_SPANS],
    pub event_id: [u8; UUID_TEXT],
    pub message_id: [u8; MESSAGE_ID_HEX],
    pub start_nanos: i64,
}

impl EventIds {
    /// Draws, in this order: the trace id, the span ids (always 4 in the reference workload, as
    /// it always did), the event id, the message id, the producer's start in the `WINDOW_NANOS`
    /// before `now_nanos`, and then the trace ids of the consumers that start a new trace.
    pub(crate) fn draw(
        workload: Workload,
        rng: &mut SmallRng,
        now_nanos: i64,
        shape: EventShape,
    ) -> EventIds {
        let mut traces = [[0u8; 16]; MAX_SPANS];
        traces[0] = workload.trace_id(rng);
        let n_span_ids = match workload {
            Workload::Reference => REFERENCE_SPAN_IDS,
            Workload::Random => shape.n_spans(),
        };
        let mut span_ids = [[0u8; 8]; MAX_SPANS];
        for span_id in &mut span_ids[..n_span_ids] {
            *span_id = workload.span_id(rng);
        }
        let event_id = random_uuid(rng);
        let message_id = random_hex::<12, MESSAGE_ID_HEX>(rng);
        let start_nanos = now_nanos - rng.random_range(0..WINDOW_NANOS);
        for (span_idx, trace) in traces.iter_mut().enumerate().take(shape.n_spans()) {
            if shape.in_new_trace(span_idx) {
                *trace = workload.trace_id(rng);
            }
        }
        EventIds {
            traces,
            span_ids,
            event_id,
            message_id,
            start_nanos,
        }
    }

    /// The trace of span `span_idx`: a new one, or the producer's.
    pub(crate) fn trace_of(&self, shape: EventShape, span_idx: usize) -> &[u8; 16] {
        if shape.in_new_trace(span_idx) {
            &self.traces[span_idx]
        } else {
            &self.traces[0]
        }
    }
}

/// What differs between the spans of one event.
#[derive(Debug, Clone)]
pub(crate) struct SpanPlan {
    pub service_idx: usize,
    pub is_producer: bool,
    /// Start minus the producer's start.
    pub lag_nanos: i64,
    pub duration_nanos: i64,
    pub region: &'static str,
    pub client_version: &'static str,
    pub failed: bool,
}

/// Everything of an event but its fresh ids.
pub(crate) struct EventPlan {
    pub event_type: &'static EventTypeDef,
    pub stream: &'static StreamDef,
    pub partition: u32,
    pub tenant_tier: &'static str,
    /// The producer span first, then the consumer spans.
    pub spans: Vec<SpanPlan>,
}

impl EventPlan {
    pub(crate) fn is_kafka(&self) -> bool {
        self.stream.broker == "kafka"
    }
}

/// One event: its shape, fresh ids and plan.
pub(crate) struct Event {
    pub shape: EventShape,
    pub ids: EventIds,
    pub plan: EventPlan,
}

impl Event {
    /// The next event of a batch with room for `room` more spans: shape, ids, then plan.
    pub(crate) fn draw(
        workload: Workload,
        rng: &mut SmallRng,
        room: usize,
        now_nanos: i64,
    ) -> Event {
        let shape = EventShape::draw(workload, rng, room);
        let ids = EventIds::draw(workload, rng, now_nanos, shape);
        let plan = plan_event(rng, shape);
        Event { shape, ids, plan }
    }
}

/// Draws the event type, partition and tenant tier, then per span its timing, region, client
/// version and (consumers) status. Consumer span `n` goes to the event type's consumer
/// service `(n - 1) % 3`.
fn plan_event(rng: &mut SmallRng, shape: EventShape) -> EventPlan {
    let event_type = &EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())];
    let stream = &STREAMS[event_type.stream_idx];
    let partition = rng.random_range(0..KAFKA_PARTITIONS);
    let tenant_tier = TENANT_TIERS[rng.random_range(0..TENANT_TIERS.len())];
    let mut spans = Vec::with_capacity(shape.n_spans());
    spans.push(SpanPlan {
        service_idx: event_type.producer_idx,
        is_producer: true,
        lag_nanos: 0,
        duration_nanos: rng.random_range(PRODUCER_DURATION_NANOS),
        region: REGIONS[rng.random_range(0..REGIONS.len())],
        client_version: CLIENT_VERSIONS[rng.random_range(0..CLIENT_VERSIONS.len())],
        failed: false,
    });
    for consumer_idx in 0..usize::from(shape.n_consumers) {
        spans.push(SpanPlan {
            service_idx: event_type.consumer_idxs[consumer_idx % event_type.consumer_idxs.len()],
            is_producer: false,
            lag_nanos: rng.random_range(CONSUMER_LAG_NANOS),
            duration_nanos: rng.random_range(CONSUMER_DURATION_NANOS),
            region: REGIONS[rng.random_range(0..REGIONS.len())],
            client_version: CLIENT_VERSIONS[rng.random_range(0..CLIENT_VERSIONS.len())],
            failed: rng.random_range(0..FAILED_ONE_IN) == 0,
        });
    }
    EventPlan {
        event_type,
        stream,
        partition,
        tenant_tier,
        spans,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn random_shapes_fill_any_room_and_use_every_consumer_count() {
        let mut rng = SmallRng::seed_from_u64(5);
        let mut seen_consumers = [0usize; MAX_SPANS];
        let (mut n_consumers, mut n_new_traces) = (0usize, 0usize);
        for room in (1..=7).cycle().take(7_000) {
            let shape = EventShape::draw(Workload::Random, &mut rng, room);
            assert!(shape.n_spans() <= room);
            assert!(!shape.in_new_trace(0));
            seen_consumers[shape.n_spans() - 1] += 1;
            n_consumers += shape.n_spans() - 1;
            n_new_traces += shape.n_traces() - 1;
        }
        assert!(seen_consumers.iter().all(|&count| count > 0));
        let share = n_new_traces as f64 / n_consumers as f64;
        assert!((0.2..0.3).contains(&share), "new-trace share {share}");
    }

    #[test]
    fn reference_shapes_keep_two_to_four_spans_and_one_trace() {
        let mut rng = SmallRng::seed_from_u64(6);
        for room in [2, 3, 4, 5, 6, 100] {
            let shape = EventShape::draw(Workload::Reference, &mut rng, room);
            assert!((2..=4).contains(&shape.n_spans()));
            assert_ne!(room - shape.n_spans(), 1);
            assert_eq!(shape.n_traces(), 1);
        }
    }
}
