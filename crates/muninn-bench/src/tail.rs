//! `--tail-sampling`: the memory of the server's tail sampler per buffered trace and per
//! remembered decision, measured in this process on traces shaped like the reference workload
//! (a producer and 1–3 consumers of one event, ids unique), and its CPU cost per span.
//!
//! Two figures each: the bytes the sampler's tables hold (from their capacities, which is what
//! `GET /api/v1/sampling/tail` reports as `memory_bytes`), and the growth of this process's
//! RSS, which adds the allocator's overhead. Nothing else allocates while it is measured: the
//! spans are built into one reused buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use muninn_model::{
    AttributeValue, Broker, EventColumns, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};
use muninn_server::{Clock, TailSampler, TailSamplingConfig};
use rand::{Rng, SeedableRng};

use crate::report::thousands;
use crate::system;

/// A clock the measurement moves by hand, so that no decision happens until it says so.
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

const SERVICES: [&str; 12] = [
    "checkout",
    "billing",
    "inventory",
    "shipping",
    "notifier",
    "customers",
    "audit",
    "pricing",
    "fraud",
    "search",
    "ledger",
    "loyalty",
];
const STREAMS: [&str; 8] = [
    "orders",
    "payments",
    "inventory",
    "shipments",
    "notifications",
    "customers",
    "audit",
    "pricing",
];

/// The spans of trace `number` into `out`: one produce and 1–3 consumes of one event.
fn trace_spans(number: u64, rng: &mut rand::rngs::StdRng, out: &mut Vec<Span>) {
    let trace_id =
        TraceId((u128::from(number) << 64 | u128::from(rng.random::<u64>())).to_be_bytes());
    let event_type_idx = (number % 20) as usize;
    let stream = STREAMS[event_type_idx % STREAMS.len()];
    let event = EventColumns {
        event_id: Some(format!("{:032x}", rng.random::<u128>()).into()),
        event_type: Some(format!("event.type.{event_type_idx}").into()),
        schema: Some("v1".into()),
        stream: Some(stream.into()),
        broker: Some(Broker::Kafka),
        modified: false,
        partition: Some((number % 12) as i32),
        offset: Some(number as i64),
        message_id: None,
    };
    let start = 1_800_000_000_000_000_000 + number as i64 * 1_000;
    let producer = Span {
        trace_id,
        span_id: SpanId((number << 2 | 1).to_be_bytes()),
        parent_span_id: None,
        name: "publish".into(),
        kind: SpanKind::Producer,
        service: SERVICES[event_type_idx % SERVICES.len()].into(),
        resource: muninn_model::empty_resource(),
        start_unix_nanos: start,
        duration_nanos: 1_000_000,
        status: Status::default(),
        attributes: vec![("retry".into(), AttributeValue::Bool(false))],
        links: Vec::new(),
        event,
    };
    let n_consumers = 1 + rng.random_range(0..3u64);
    for consumer_idx in 0..n_consumers {
        let mut consumer = producer.clone();
        consumer.span_id = SpanId((number << 2 | (consumer_idx + 2)).to_be_bytes());
        consumer.parent_span_id = Some(producer.span_id);
        consumer.kind = SpanKind::Consumer;
        consumer.name = "consume".into();
        consumer.service =
            SERVICES[(event_type_idx + 1 + consumer_idx as usize) % SERVICES.len()].into();
        consumer.start_unix_nanos = start + rng.random_range(2_000_000..800_000_000);
        consumer.duration_nanos = rng.random_range(500_000..25_000_000);
        if rng.random_range(0..200) == 0 {
            consumer.status.code = StatusCode::Error;
        }
        out.push(consumer);
    }
    out.push(producer);
}

/// Runs the measurement on `n_traces` traces and prints the figures.
pub(crate) fn run(n_traces: usize, seed: u64) -> anyhow::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let clock = Arc::new(ManualClock(AtomicU64::new(0)));
    let config = TailSamplingConfig {
        decision_wait: Duration::from_secs(10),
        max_buffered_traces: n_traces,
        decision_memory: Duration::from_secs(3600),
        max_decisions: n_traces,
        sample_rate_ppm: 100_000,
        ..TailSamplingConfig::default()
    };
    let mut batch: Vec<Span> = Vec::with_capacity(4 * 1000);
    // Warm the buffer and the allocator's arenas before the baseline.
    for number in 0..1000 {
        trace_spans(u64::MAX - number, &mut rng, &mut batch);
    }
    batch.clear();
    let rss_before = system::rss_bytes();
    let sampler = TailSampler::new(config, clock.clone());

    let mut n_spans = 0u64;
    let mut observing = Duration::ZERO;
    let mut number = 0u64;
    while (number as usize) < n_traces {
        batch.clear();
        let end = (number + 1000).min(n_traces as u64);
        while number < end {
            trace_spans(number, &mut rng, &mut batch);
            number += 1;
        }
        n_spans += batch.len() as u64;
        let started = Instant::now();
        sampler.observe(&batch);
        observing += started.elapsed();
    }
    let (buffered, accounted) = sampler.buffered();
    let rss_buffered = system::rss_bytes();

    // Every trace decided: the summaries go, the decisions stay (for late spans and the flush).
    clock.0.store(60_000, Ordering::Relaxed);
    let started = Instant::now();
    sampler.decide_due_now();
    let deciding = started.elapsed();
    let (left, accounted_decided) = sampler.buffered();
    let rss_decided = system::rss_bytes();

    let per = |bytes: u64, count: usize| bytes as f64 / count.max(1) as f64;
    println!("tail sampling: memory and CPU of the sampler (`--tail-sampling`, seed {seed})");
    println!(
        "  traces buffered            {} ({} spans, {:.2} spans a trace), {} left after the window",
        thousands(buffered as u64),
        thousands(n_spans),
        n_spans as f64 / n_traces.max(1) as f64,
        left
    );
    println!(
        "  bytes per buffered trace   {:.1} accounted (tables' capacities), {:.1} RSS growth",
        per(accounted as u64, buffered),
        per(rss_buffered.saturating_sub(rss_before), buffered)
    );
    println!(
        "  bytes per remembered decision {:.1} accounted, {:.1} RSS (growth over the baseline, buffers freed)",
        per(accounted_decided as u64, n_traces),
        per(rss_decided.saturating_sub(rss_before), n_traces)
    );
    println!(
        "  observe                    {:.0} ns a span ({} spans/s on one thread)",
        observing.as_nanos() as f64 / n_spans.max(1) as f64,
        thousands((n_spans as f64 / observing.as_secs_f64().max(1e-9)) as u64)
    );
    println!(
        "  decide                     {:.0} ns a trace",
        deciding.as_nanos() as f64 / n_traces.max(1) as f64
    );
    Ok(())
}
