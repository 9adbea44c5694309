//! Unit tests of `sampler`.

use super::*;
use muninn_model::{EventColumns, SpanId, Status};
use std::time::Duration;

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn trace(number: u64) -> TraceId {
    let mut bytes = [7u8; 16];
    bytes[8..].copy_from_slice(&number.to_be_bytes());
    TraceId(bytes)
}

fn span(trace_number: u64, span_number: u64, kind: SpanKind) -> Span {
    Span {
        trace_id: trace(trace_number),
        span_id: SpanId((span_number | 1 << 40).to_be_bytes()),
        parent_span_id: None,
        name: "consume order.created".into(),
        kind,
        service: "billing".into(),
        resource: muninn_model::empty_resource(),
        start_unix_nanos: 1_000_000_000,
        duration_nanos: 1_000_000,
        status: Status::default(),
        attributes: Vec::new(),
        links: Vec::new(),
        event: EventColumns {
            event_id: Some(format!("evt-{trace_number}").into()),
            stream: Some("orders".into()),
            ..EventColumns::default()
        },
    }
}

fn sampler(config: TailSamplingConfig) -> (TailSampler, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock(AtomicU64::new(0)));
    (TailSampler::new(config, clock.clone()), clock)
}

#[test]
fn a_trace_is_decided_after_its_window_and_late_spans_follow_the_decision() {
    let (sampler, clock) = sampler(TailSamplingConfig {
        sample_rate_ppm: 0,
        ..TailSamplingConfig::default()
    });
    sampler.observe(&[span(1, 1, SpanKind::Producer)]);
    clock.0.store(9_999, Ordering::Relaxed);
    sampler.decide_due_now();
    assert_eq!(
        sampler.stats().buffered_traces,
        1,
        "still inside the window"
    );
    assert!(
        sampler.keep_at_flush(&trace(1)),
        "undecided traces are kept"
    );
    clock.0.store(10_000, Ordering::Relaxed);
    sampler.decide_due_now();
    assert!(!sampler.keep_at_flush(&trace(1)));
    // A late error does not reopen the trace: it follows the drop.
    let mut late = span(1, 2, SpanKind::Consumer);
    late.status.code = StatusCode::Error;
    sampler.observe(&[late]);
    let stats = sampler.stats();
    assert_eq!((stats.late_spans_dropped, stats.buffered_traces), (1, 0));
    assert!(!sampler.keep_at_flush(&trace(1)));
    // After `decision_memory` the decision is forgotten (and the trace would be kept).
    clock.0.store(10_000 + 15 * 60 * 1000, Ordering::Relaxed);
    sampler.decide_due_now();
    assert!(sampler.keep_at_flush(&trace(1)));
    assert_eq!(sampler.stats().remembered_decisions, 0);
}

#[test]
fn a_repeated_consumer_hop_or_an_attempt_attribute_is_a_retry() {
    let (sampler, clock) = sampler(TailSamplingConfig {
        sample_rate_ppm: 0,
        ..TailSamplingConfig::default()
    });
    sampler.observe(&[
        span(1, 1, SpanKind::Consumer),
        span(1, 2, SpanKind::Consumer),
        span(2, 1, SpanKind::Consumer),
    ]);
    let mut with_attempt = span(3, 1, SpanKind::Consumer);
    with_attempt
        .attributes
        .push(("retry.attempt".into(), AttributeValue::Int(3)));
    sampler.observe(&[with_attempt]);
    clock.0.store(60_000, Ordering::Relaxed);
    sampler.decide_due_now();
    assert!(sampler.keep_at_flush(&trace(1)));
    assert!(!sampler.keep_at_flush(&trace(2)));
    assert!(sampler.keep_at_flush(&trace(3)));
}

#[test]
fn a_summary_stays_small() {
    // What the benchmark's bytes per buffered trace are made of; a regression guard.
    assert_eq!(std::mem::size_of::<Summary>(), 64);
}

#[test]
fn consumer_keys_spill_past_the_inline_slots_and_stay_bounded() {
    let mut keys = ConsumerKeys::default();
    for key in 0..100u32 {
        assert!(!keys.insert(key + 10), "{key} is new");
    }
    assert!(keys.insert(10), "inline");
    assert!(keys.insert(30), "spilled");
    assert!(!keys.insert(99), "past the bound: not remembered");
    let mut fresh = ConsumerKeys::default();
    assert!(!fresh.insert(0) && fresh.insert(1), "0 is stored as 1");
}

#[test]
fn remembered_decisions_are_bounded_oldest_first() {
    let (sampler, clock) = sampler(TailSamplingConfig {
        sample_rate_ppm: 0,
        max_decisions: 3,
        decision_wait: Duration::from_millis(1),
        ..TailSamplingConfig::default()
    });
    for number in 1..=5 {
        sampler.observe(&[span(number, 1, SpanKind::Producer)]);
        clock.0.fetch_add(10, Ordering::Relaxed);
    }
    sampler.decide_due_now();
    assert_eq!(sampler.stats().remembered_decisions, 3);
    assert!(sampler.keep_at_flush(&trace(1)), "forgotten: fails open");
    assert!(!sampler.keep_at_flush(&trace(5)));
}
