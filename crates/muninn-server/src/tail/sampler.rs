//! The tail sampler's state: a small summary per trace waiting for its decision (never the
//! spans, which the store already holds durably), the decisions taken (remembered for a while,
//! bounded, so that late spans follow them and a flush can leave dropped traces out), and the
//! counters behind `/metrics` and `GET /api/v1/sampling/tail`.
//!
//! Time comes from a `Clock`, so tests can drive the decision window without sleeping.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use muninn_model::sampling::is_sampled;
use muninn_model::{AttributeValue, Span, SpanKind, StatusCode, TraceId};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::config::TailSamplingConfig;

/// Milliseconds since some fixed point; only differences matter.
pub trait Clock: Send + Sync {
    fn now_millis(&self) -> u64;
}

/// The monotonic clock of the process.
pub struct SystemClock(Instant);

impl SystemClock {
    pub fn new() -> Self {
        SystemClock(Instant::now())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Why a trace was kept or dropped; the `reason` label of `muninn_tail_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Error,
    Retry,
    SlowTrace,
    SlowSpan,
    Service,
    EventType,
    /// The probabilistic rest: kept when the trace id is sampled at `sample_rate`, else dropped.
    Probabilistic,
}

impl Reason {
    const ALL: [Reason; 7] = [
        Reason::Error,
        Reason::Retry,
        Reason::SlowTrace,
        Reason::SlowSpan,
        Reason::Service,
        Reason::EventType,
        Reason::Probabilistic,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Reason::Error => "error",
            Reason::Retry => "retry",
            Reason::SlowTrace => "slow_trace",
            Reason::SlowSpan => "slow_span",
            Reason::Service => "service",
            Reason::EventType => "event_type",
            Reason::Probabilistic => "probabilistic",
        }
    }
}

const FLAG_ERROR: u8 = 1;
const FLAG_SERVICE: u8 = 2;
const FLAG_EVENT_TYPE: u8 = 4;

/// Distinct consumer hops remembered per trace to notice a repeated one (a retry): the first
/// few inline, the rest (up to the maximum) in a spill list allocated only for larger traces.
const INLINE_CONSUMER_KEYS: usize = 4;
const MAX_CONSUMER_KEYS: usize = 64;

/// Fingerprints of (service, stream, event id, name) of a trace's consumer spans; 0 marks an
/// empty inline slot (a fingerprint of 0 is stored as 1). 24 bytes, so a summary is 64.
#[derive(Default)]
struct ConsumerKeys {
    inline: [u32; INLINE_CONSUMER_KEYS],
    spill: Option<Box<[u32; MAX_CONSUMER_KEYS - INLINE_CONSUMER_KEYS]>>,
}

impl ConsumerKeys {
    /// Records `key`; true when it was already there (the same hop again: a retry).
    fn insert(&mut self, key: u32) -> bool {
        let key = key.max(1);
        if self.inline.contains(&key)
            || self
                .spill
                .as_ref()
                .is_some_and(|spill| spill.contains(&key))
        {
            return true;
        }
        let slot = match self.inline.iter_mut().find(|slot| **slot == 0) {
            Some(slot) => Some(slot),
            None => self
                .spill
                .get_or_insert_with(|| Box::new([0; MAX_CONSUMER_KEYS - INLINE_CONSUMER_KEYS]))
                .iter_mut()
                .find(|slot| **slot == 0),
        };
        // Past the bound the key is not remembered.
        if let Some(slot) = slot {
            *slot = key;
        }
        false
    }

    fn heap_bytes(&self) -> usize {
        self.spill
            .as_ref()
            .map_or(0, |spill| std::mem::size_of_val(spill.as_ref()))
    }
}

/// What the policies need to know about one trace waiting for its decision. The services and
/// event types kept at 100% are matched as spans arrive, so only a flag is kept.
struct Summary {
    first_seen_millis: u64,
    min_start: i64,
    max_end: i64,
    max_span_duration: i64,
    n_spans: u32,
    max_attempt: u8,
    flags: u8,
    consumer_keys: ConsumerKeys,
}

#[derive(Clone, Copy)]
struct Decided {
    keep: bool,
    at_millis: u64,
}

#[derive(Default)]
struct State {
    pending: HashMap<TraceId, Summary>,
    /// Traces in the order they were first seen; entries of traces decided early are skipped.
    pending_order: VecDeque<(u64, TraceId)>,
    decided: HashMap<TraceId, Decided>,
    decided_order: VecDeque<(u64, TraceId)>,
    buffered_peak: usize,
}

/// Gives memory back after a burst: a table or queue holding under a quarter of its capacity
/// shrinks to twice its length (amortised: it grew at least that much since).
fn release_spare_capacity(state: &mut State) {
    const MIN_CAPACITY: usize = 1024;
    let oversized = |len: usize, capacity: usize| capacity > MIN_CAPACITY && len < capacity / 4;
    if oversized(state.pending.len(), state.pending.capacity()) {
        state.pending.shrink_to(state.pending.len() * 2);
    }
    if oversized(state.pending_order.len(), state.pending_order.capacity()) {
        state.pending_order.shrink_to(state.pending_order.len() * 2);
    }
    if oversized(state.decided.len(), state.decided.capacity()) {
        state.decided.shrink_to(state.decided.len() * 2);
    }
    if oversized(state.decided_order.len(), state.decided_order.capacity()) {
        state.decided_order.shrink_to(state.decided_order.len() * 2);
    }
}

/// The Prometheus side of the sampler, registered in the server's registry.
#[derive(Default)]
pub(crate) struct TailMetrics {
    decisions: Family<Vec<(String, String)>, Counter>,
    early_decisions: Counter,
    buffered_traces: Gauge,
    remembered_decisions: Gauge,
    late_spans: Family<Vec<(String, String)>, Counter>,
    flush_dropped_spans: Counter,
    flush_undecided_spans: Counter,
    spans_observed: Counter,
}

fn decision_label(keep: bool) -> &'static str {
    if keep { "keep" } else { "drop" }
}

fn decision_labels(keep: bool, reason: Reason) -> Vec<(String, String)> {
    vec![
        ("decision".into(), decision_label(keep).into()),
        ("reason".into(), reason.as_str().into()),
    ]
}

impl TailMetrics {
    fn new() -> Self {
        let metrics = TailMetrics::default();
        // Every possible series is exported from the start, as 0.
        for reason in Reason::ALL {
            let _ = metrics
                .decisions
                .get_or_create(&decision_labels(true, reason));
        }
        let _ = metrics
            .decisions
            .get_or_create(&decision_labels(false, Reason::Probabilistic));
        for keep in [true, false] {
            let _ = metrics
                .late_spans
                .get_or_create(&vec![("decision".into(), decision_label(keep).into())]);
        }
        metrics
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "tail_decisions",
            "Tail-sampling decisions by decision (keep, drop) and reason",
            self.decisions.clone(),
        );
        registry.register(
            "tail_early_decisions",
            "Traces decided before their decision window ended because the buffer was full",
            self.early_decisions.clone(),
        );
        registry.register(
            "tail_buffered_traces",
            "Traces waiting for a tail-sampling decision",
            self.buffered_traces.clone(),
        );
        registry.register(
            "tail_remembered_decisions",
            "Tail-sampling decisions remembered for late spans and the flush",
            self.remembered_decisions.clone(),
        );
        registry.register(
            "tail_late_spans",
            "Spans that arrived after their trace was decided, by the decision they followed",
            self.late_spans.clone(),
        );
        registry.register(
            "tail_flush_dropped_spans",
            "Spans left out of blocks because their trace was dropped",
            self.flush_dropped_spans.clone(),
        );
        registry.register(
            "tail_flush_undecided_spans",
            "Spans written to blocks before their trace was decided (kept: fail-open)",
            self.flush_undecided_spans.clone(),
        );
        registry.register(
            "tail_observed_spans",
            "Spans seen by the tail sampler",
            self.spans_observed.clone(),
        );
    }
}

/// One line of the decision counts.
#[derive(Debug, Serialize)]
pub(crate) struct DecisionCount {
    decision: &'static str,
    reason: &'static str,
    traces: u64,
}

/// Live numbers for `GET /api/v1/sampling/tail`.
#[derive(Debug, Serialize)]
pub(crate) struct TailStats {
    pub buffered_traces: usize,
    /// The most traces ever waiting at once; never above `max_buffered_traces`.
    pub buffered_traces_peak: usize,
    /// Memory held by the waiting summaries and the remembered decisions (their tables'
    /// capacities, not counting the allocator's own overhead).
    pub memory_bytes: usize,
    pub remembered_decisions: usize,
    pub spans_observed: u64,
    pub kept_traces: u64,
    pub dropped_traces: u64,
    pub early_decisions: u64,
    pub decisions: Vec<DecisionCount>,
    pub late_spans_kept: u64,
    pub late_spans_dropped: u64,
    pub flush_dropped_spans: u64,
    pub flush_undecided_spans: u64,
}

/// The tail sampler. Cheap to share: everything is behind one mutex held for one batch.
pub struct TailSampler {
    config: TailSamplingConfig,
    services: HashSet<String>,
    event_types: HashSet<String>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    pub(crate) metrics: TailMetrics,
    /// Mirrors of two counters read by the flush filter on every span, without the lock.
    flush_dropped: AtomicU64,
    flush_undecided: AtomicU64,
}

/// Reads `retry.attempt` (or `messaging.retry.attempt`), an integer or integer text.
fn attempt_attribute(span: &Span) -> Option<u32> {
    span.attributes
        .iter()
        .find(|(key, _)| key == "retry.attempt" || key == "messaging.retry.attempt")
        .and_then(|(_, value)| match value {
            AttributeValue::Int(number) => u32::try_from(*number).ok(),
            AttributeValue::String(text) => text.trim().parse().ok(),
            _ => None,
        })
}

fn consumer_key(span: &Span) -> Option<u32> {
    let event_id = span.event.event_id.as_deref()?;
    let mut bytes = Vec::with_capacity(span.service.len() + span.name.len() + event_id.len() + 64);
    for part in [
        span.service.as_bytes(),
        span.event.stream.as_deref().unwrap_or_default().as_bytes(),
        event_id.as_bytes(),
        span.name.as_bytes(),
    ] {
        bytes.extend_from_slice(part);
        bytes.push(0xff);
    }
    Some(xxhash_rust::xxh3::xxh3_64(&bytes) as u32)
}

impl TailSampler {
    pub fn new(config: TailSamplingConfig, clock: Arc<dyn Clock>) -> Self {
        TailSampler {
            services: config.services.iter().cloned().collect(),
            event_types: config.event_types.iter().cloned().collect(),
            config,
            clock,
            state: Mutex::new(State::default()),
            metrics: TailMetrics::new(),
            flush_dropped: AtomicU64::new(0),
            flush_undecided: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &TailSamplingConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes in the spans of one append: late spans follow their trace's decision; the others
    /// update their trace's summary. The oldest traces are decided early when the buffer is full.
    pub fn observe(&self, spans: &[Span]) {
        let now = self.clock.now_millis();
        let mut state = self.lock();
        self.decide_due(&mut state, now);
        self.metrics.spans_observed.inc_by(spans.len() as u64);
        for span in spans {
            if let Some(decided) = state.decided.get(&span.trace_id) {
                self.metrics
                    .late_spans
                    .get_or_create(&vec![(
                        "decision".into(),
                        decision_label(decided.keep).into(),
                    )])
                    .inc();
                continue;
            }
            if !state.pending.contains_key(&span.trace_id) {
                // Room first, so the buffer never holds more than its bound.
                while state.pending.len() >= self.config.max_buffered_traces {
                    if !self.decide_oldest(&mut state, now, true) {
                        break;
                    }
                }
                state.pending_order.push_back((now, span.trace_id));
            }
            let summary = match state.pending.entry(span.trace_id) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => entry.insert(Summary {
                    first_seen_millis: now,
                    min_start: span.start_unix_nanos,
                    max_end: span.end_unix_nanos(),
                    max_span_duration: 0,
                    n_spans: 0,
                    max_attempt: 1,
                    flags: 0,
                    consumer_keys: ConsumerKeys::default(),
                }),
            };
            self.update(summary, span);
        }
        state.buffered_peak = state.buffered_peak.max(state.pending.len());
        self.publish_gauges(&state);
    }

    fn update(&self, summary: &mut Summary, span: &Span) {
        summary.n_spans = summary.n_spans.saturating_add(1);
        summary.min_start = summary.min_start.min(span.start_unix_nanos);
        summary.max_end = summary.max_end.max(span.end_unix_nanos());
        summary.max_span_duration = summary.max_span_duration.max(span.duration_nanos);
        if span.status.code == StatusCode::Error {
            summary.flags |= FLAG_ERROR;
        }
        if !self.services.is_empty() && self.services.contains(span.service.as_str()) {
            summary.flags |= FLAG_SERVICE;
        }
        if let Some(event_type) = &span.event.event_type
            && self.event_types.contains(event_type.as_str())
        {
            summary.flags |= FLAG_EVENT_TYPE;
        }
        if span.kind == SpanKind::Consumer {
            if let Some(attempt) = attempt_attribute(span) {
                let attempt = u8::try_from(attempt).unwrap_or(u8::MAX);
                summary.max_attempt = summary.max_attempt.max(attempt);
            }
            if let Some(key) = consumer_key(span)
                && summary.consumer_keys.insert(key)
            {
                summary.max_attempt = summary.max_attempt.max(2);
            }
        }
    }

    /// The policies, in order; the first that keeps the trace names the reason.
    fn policy(&self, trace_id: &TraceId, summary: &Summary) -> (bool, Reason) {
        let config = &self.config;
        let nanos =
            |duration: std::time::Duration| i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        if config.keep_errors && summary.flags & FLAG_ERROR != 0 {
            return (true, Reason::Error);
        }
        if config.keep_retries && summary.max_attempt > 1 {
            return (true, Reason::Retry);
        }
        if let Some(threshold) = config.slow_trace
            && summary.max_end.saturating_sub(summary.min_start) > nanos(threshold)
        {
            return (true, Reason::SlowTrace);
        }
        if let Some(threshold) = config.slow_span
            && summary.max_span_duration > nanos(threshold)
        {
            return (true, Reason::SlowSpan);
        }
        if summary.flags & FLAG_SERVICE != 0 {
            return (true, Reason::Service);
        }
        if summary.flags & FLAG_EVENT_TYPE != 0 {
            return (true, Reason::EventType);
        }
        let sampled = is_sampled(trace_id.to_hex().as_bytes(), config.sample_rate_ppm);
        (sampled, Reason::Probabilistic)
    }

    /// Decides every trace whose window has ended; called on every batch and by the ticker.
    pub fn decide_due_now(&self) {
        let now = self.clock.now_millis();
        let mut state = self.lock();
        self.decide_due(&mut state, now);
        self.publish_gauges(&state);
    }

    fn decide_due(&self, state: &mut State, now: u64) {
        let wait = u64::try_from(self.config.decision_wait.as_millis()).unwrap_or(u64::MAX);
        while let Some(&(first_seen, _)) = state.pending_order.front() {
            if first_seen.saturating_add(wait) > now {
                break;
            }
            self.decide_oldest(state, now, false);
        }
        self.forget_old_decisions(state, now);
        release_spare_capacity(state);
    }

    /// Decides the trace at the front of the order (skipping entries already decided early);
    /// false when nothing was waiting.
    fn decide_oldest(&self, state: &mut State, now: u64, early: bool) -> bool {
        while let Some((first_seen, trace_id)) = state.pending_order.pop_front() {
            let current = state
                .pending
                .get(&trace_id)
                .is_some_and(|summary| summary.first_seen_millis == first_seen);
            if !current {
                continue;
            }
            let Some(summary) = state.pending.remove(&trace_id) else {
                continue;
            };
            let (keep, reason) = self.policy(&trace_id, &summary);
            self.metrics
                .decisions
                .get_or_create(&decision_labels(keep, reason))
                .inc();
            if early {
                self.metrics.early_decisions.inc();
            }
            state.decided.insert(
                trace_id,
                Decided {
                    keep,
                    at_millis: now,
                },
            );
            state.decided_order.push_back((now, trace_id));
            self.forget_old_decisions(state, now);
            return true;
        }
        false
    }

    fn forget_old_decisions(&self, state: &mut State, now: u64) {
        let memory = u64::try_from(self.config.decision_memory.as_millis()).unwrap_or(u64::MAX);
        while let Some(&(at, trace_id)) = state.decided_order.front() {
            let too_many = state.decided_order.len() > self.config.max_decisions;
            if !too_many && at.saturating_add(memory) > now {
                break;
            }
            state.decided_order.pop_front();
            if state
                .decided
                .get(&trace_id)
                .is_some_and(|decided| decided.at_millis == at)
            {
                state.decided.remove(&trace_id);
            }
        }
    }

    fn publish_gauges(&self, state: &State) {
        let as_i64 = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.metrics
            .buffered_traces
            .set(as_i64(state.pending.len()));
        self.metrics
            .remembered_decisions
            .set(as_i64(state.decided.len()));
    }

    /// The flush filter: `false` only for a trace decided "drop". Undecided traces are written
    /// (fail-open) and counted.
    pub fn keep_at_flush(&self, trace_id: &TraceId) -> bool {
        let state = self.lock();
        match state.decided.get(trace_id) {
            Some(decided) if !decided.keep => {
                self.flush_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Some(_) => true,
            None => {
                if state.pending.contains_key(trace_id) {
                    self.flush_undecided.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
        }
    }

    /// Moves the flush counts into their Prometheus counters (the filter runs once per span
    /// and only touches atomics).
    fn sync_flush_counters(&self) {
        let dropped = self.flush_dropped.swap(0, Ordering::Relaxed);
        self.metrics.flush_dropped_spans.inc_by(dropped);
        let undecided = self.flush_undecided.swap(0, Ordering::Relaxed);
        self.metrics.flush_undecided_spans.inc_by(undecided);
    }

    /// Memory held by the state's tables, from their capacities.
    fn memory_bytes(state: &State) -> usize {
        use std::mem::size_of;
        // hashbrown: one control byte per bucket (plus a group's worth), buckets ≥ capacity.
        let table = |capacity: usize, entry: usize| {
            let buckets = if capacity == 0 {
                0
            } else {
                (capacity * 8 / 7).next_power_of_two()
            };
            buckets * (entry + 1) + if buckets > 0 { 16 } else { 0 }
        };
        let keys: usize = state
            .pending
            .values()
            .map(|summary| summary.consumer_keys.heap_bytes())
            .sum();
        table(state.pending.capacity(), size_of::<(TraceId, Summary)>())
            + keys
            + state.pending_order.capacity() * size_of::<(u64, TraceId)>()
            + table(state.decided.capacity(), size_of::<(TraceId, Decided)>())
            + state.decided_order.capacity() * size_of::<(u64, TraceId)>()
    }

    /// How many traces wait for a decision, and the bytes the sampler's tables hold for them
    /// and for the remembered decisions (for the benchmark).
    pub fn buffered(&self) -> (usize, usize) {
        let state = self.lock();
        (state.pending.len(), Self::memory_bytes(&state))
    }

    pub(crate) fn stats(&self) -> TailStats {
        self.sync_flush_counters();
        let state = self.lock();
        let mut decisions: Vec<DecisionCount> = Vec::new();
        let (mut kept_traces, mut dropped_traces) = (0, 0);
        for keep in [true, false] {
            for reason in Reason::ALL {
                if !keep && reason != Reason::Probabilistic {
                    continue;
                }
                let traces = self
                    .metrics
                    .decisions
                    .get_or_create(&decision_labels(keep, reason))
                    .get();
                if keep {
                    kept_traces += traces;
                } else {
                    dropped_traces += traces;
                }
                decisions.push(DecisionCount {
                    decision: decision_label(keep),
                    reason: reason.as_str(),
                    traces,
                });
            }
        }
        let late = |keep: bool| {
            self.metrics
                .late_spans
                .get_or_create(&vec![("decision".into(), decision_label(keep).into())])
                .get()
        };
        TailStats {
            buffered_traces: state.pending.len(),
            buffered_traces_peak: state.buffered_peak,
            memory_bytes: Self::memory_bytes(&state),
            remembered_decisions: state.decided.len(),
            spans_observed: self.metrics.spans_observed.get(),
            kept_traces,
            dropped_traces,
            early_decisions: self.metrics.early_decisions.get(),
            decisions,
            late_spans_kept: late(true),
            late_spans_dropped: late(false),
            flush_dropped_spans: self.metrics.flush_dropped_spans.get(),
            flush_undecided_spans: self.metrics.flush_undecided_spans.get(),
        }
    }

    /// Refreshes what `/metrics` shows that is not counted as it happens.
    pub(crate) fn before_scrape(&self) {
        self.sync_flush_counters();
    }
}

#[cfg(test)]
mod tests;
