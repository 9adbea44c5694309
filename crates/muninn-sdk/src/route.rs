//! Routes (event type × stream × broker, with their counters and live sampling rate) and the
//! spans recorded on them: the calls a service makes where it produces or consumes an event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

const NANOS_PER_MINUTE: i64 = 60_000_000_000;

use muninn_model::sampling::{RATE_PPM_MAX, is_sampled};
use muninn_model::{Broker, SpanId, TraceId};

use crate::clock::{self, Stamp};
use crate::counter::MinuteCounter;
use crate::propagation::{self, Extractor, Headers, Injector, SpanContext, TraceState};
use crate::record::{Extras, Kind, Record, Text, Value};
use crate::tracer::Inner;

/// Most attributes one span keeps; later ones are dropped (the collector refuses more).
const MAX_ATTRIBUTES: usize = 64;
/// Event type recorded when a consumed message carries none.
pub const UNKNOWN_EVENT_TYPE: &str = "unknown";

pub(crate) struct RouteInner {
    /// Its index among the tracer's routes (see `Registry::by_id`).
    pub id: u32,
    pub event_type: String,
    pub stream: String,
    pub broker: Broker,
    pub produced: MinuteCounter,
    pub consumed: MinuteCounter,
    /// The current sampling rate for this event type, updated by the config refresher.
    pub rate_ppm: AtomicU32,
}

impl RouteInner {
    pub(crate) fn new(
        id: u32,
        event_type: &str,
        stream: &str,
        broker: Broker,
        rate_ppm: u32,
    ) -> Self {
        RouteInner {
            id,
            event_type: event_type.to_string(),
            stream: stream.to_string(),
            broker,
            produced: MinuteCounter::new(),
            consumed: MinuteCounter::new(),
            rate_ppm: AtomicU32::new(rate_ppm),
        }
    }
}

/// Where events of one type flow: an event type on a stream of a broker. Get it once with
/// [`crate::Tracer::route`] and keep it (cloning is cheap); each call on it counts the event
/// and, if the event is sampled, records a span.
#[derive(Clone)]
pub struct Route {
    pub(crate) tracer: Arc<Inner>,
    pub(crate) inner: Arc<RouteInner>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Route")
            .field("event_type", &self.inner.event_type)
            .field("stream", &self.inner.stream)
            .field("broker", &self.inner.broker)
            .finish()
    }
}

/// The wall clock's minute index (unix seconds / 60).
pub(crate) fn current_minute() -> i64 {
    clock::wall_nanos().div_euclid(NANOS_PER_MINUTE)
}

/// A random trace id. The full range is drawn (a bounded range costs a rejection loop on
/// every call) and the one invalid value, all zeros, is replaced.
fn random_trace_id() -> TraceId {
    let id = (u128::from(fastrand::u64(..)) << 64) | u128::from(fastrand::u64(..));
    TraceId(id.max(1).to_be_bytes())
}

/// A random span id, never all zeros (as [`random_trace_id`]).
fn random_span_id() -> SpanId {
    SpanId(fastrand::u64(..).max(1).to_be_bytes())
}

impl Route {
    pub fn event_type(&self) -> &str {
        &self.inner.event_type
    }

    pub fn stream(&self) -> &str {
        &self.inner.stream
    }

    pub fn broker(&self) -> Broker {
        self.inner.broker
    }

    /// Whether to trace `event_id`: by its hash and the route's rate, or by the upstream
    /// decision when one came and the tracer honours it.
    #[inline]
    fn decide(&self, event_id: &[u8], upstream: Option<bool>) -> bool {
        if self.tracer.options.honour_upstream_sampled
            && let Some(sampled) = upstream
        {
            return sampled;
        }
        let rate = self.inner.rate_ppm.load(Ordering::Relaxed);
        match rate {
            0 => false,
            RATE_PPM_MAX.. => true,
            _ => is_sampled(event_id, rate),
        }
    }

    /// Records the production of event `event_id` as the root of a new trace.
    pub fn produce(&self, event_id: &str) -> EventSpan {
        self.produce_in(event_id, None)
    }

    /// Records the production of event `event_id`; with `parent`, the span joins its trace
    /// (for example the trace of the event being consumed).
    pub fn produce_in(&self, event_id: &str, parent: Option<&SpanContext>) -> EventSpan {
        let sampled = self.decide(event_id.as_bytes(), parent.map(|parent| parent.sampled));
        let start = self.count(&self.inner.produced, sampled);
        // A trace this SDK starts has a random id throughout: W3C Level 2's `random` flag.
        let (trace_id, parent_id, random, trace_state) = match parent {
            Some(parent) => (
                parent.trace_id,
                Some(parent.span_id),
                parent.random,
                parent.trace_state.clone(),
            ),
            None => (random_trace_id(), None, true, TraceState::default()),
        };
        let context = SpanContext {
            trace_id,
            span_id: random_span_id(),
            sampled,
            random,
            trace_state,
        };
        self.start(Kind::Producer, event_id, start, context, parent_id, None)
    }

    /// Produces `event_id` and writes its metadata and trace context into `carrier`, the
    /// outgoing message's headers.
    pub fn produce_with_headers(
        &self,
        event_id: &str,
        schema: Option<&str>,
        parent: Option<&SpanContext>,
        carrier: &mut impl Injector,
    ) -> EventSpan {
        let mut span = self.produce_in(event_id, parent);
        if let Some(schema) = schema {
            span.schema(schema);
        }
        self.inject_event(event_id, schema, carrier);
        span.inject(carrier);
        span
    }

    /// Writes the event's id, type and schema headers (see `docs/propagation.md`), so that
    /// consumers and ferrying services need not deserialize the payload.
    pub fn inject_event(&self, event_id: &str, schema: Option<&str>, carrier: &mut impl Injector) {
        propagation::inject_event(event_id, &self.inner.event_type, schema, carrier);
    }

    /// Records the consumption of the message whose headers are `carrier`: the event id, type
    /// and schema come from the headers, and the span continues the trace they carry (or
    /// starts a new one when they carry none or an invalid one).
    pub fn consume(&self, carrier: &impl Extractor) -> EventSpan {
        Headers::read(carrier, |headers| self.consume_headers(headers, false))
    }

    /// Like [`Route::consume`], but the span starts a new trace with a link to the producer's
    /// span (batch consumers, stateful joins). Muninn still joins both traces by event id.
    pub fn consume_linked(&self, carrier: &impl Extractor) -> EventSpan {
        Headers::read(carrier, |headers| self.consume_headers(headers, true))
    }

    /// Reads what the decision needs (the trace context and the event id), counts the event,
    /// and reads the event type and schema only for a span that will be recorded.
    pub(crate) fn consume_headers<C: Extractor + ?Sized>(
        &self,
        headers: &Headers<'_, C>,
        new_trace: bool,
    ) -> EventSpan {
        // Reasons for ignoring a header are for `propagation::extract`'s callers; here they
        // are dropped. The event id is read first, so that the context need not be kept
        // aside across the call.
        let mut invalid = None;
        let event_id = headers.event_id(&mut invalid).unwrap_or_default();
        let upstream = headers.trace_context(&mut invalid);
        let mut link = None;
        let (trace_id, parent_id, random, trace_state, upstream_trace) = match upstream.context {
            Some(context) if !new_trace => (
                context.trace_id,
                Some(context.span_id),
                context.random,
                context.trace_state,
                Some(context.trace_id),
            ),
            Some(context) => {
                link = Some((context.trace_id, context.span_id));
                let trace_id = random_trace_id();
                (
                    trace_id,
                    None,
                    true,
                    TraceState::default(),
                    Some(context.trace_id),
                )
            }
            None => (random_trace_id(), None, true, TraceState::default(), None),
        };
        // Without an event id the decision follows the trace (the upstream one when it came,
        // else the new one), so that a trace stays whole.
        let sampled = if event_id.is_empty() {
            let trace = propagation::trace_id_hex(&upstream_trace.unwrap_or(trace_id));
            self.decide(&trace, upstream.upstream_sampled)
        } else {
            self.decide(event_id.as_bytes(), upstream.upstream_sampled)
        };
        let start = self.count(&self.inner.consumed, sampled);
        let context = SpanContext {
            trace_id,
            span_id: random_span_id(),
            sampled,
            random,
            trace_state,
        };
        if !sampled {
            return self.unrecorded::<false>(context);
        }
        let event_type = headers
            .event_type(&mut invalid)
            .filter(|event_type| *event_type != self.inner.event_type);
        let schema = headers.schema(&mut invalid);
        self.start_owned(
            Kind::Consumer,
            event_id,
            event_type,
            schema,
            start,
            context,
            parent_id,
            link,
        )
    }

    /// Counts one event; a sampled one in the minute its span starts (returned).
    #[inline(always)]
    fn count(&self, counter: &MinuteCounter, sampled: bool) -> Stamp {
        if sampled {
            let start = clock::now();
            counter.add(start.unix_nanos.div_euclid(NANOS_PER_MINUTE));
            start
        } else {
            counter.add(self.tracer.current_minute.load(Ordering::Relaxed));
            Stamp::default()
        }
    }

    #[inline(always)]
    fn start(
        &self,
        kind: Kind,
        event_id: &str,
        start: Stamp,
        context: SpanContext,
        parent: Option<SpanId>,
        link: Option<(TraceId, SpanId)>,
    ) -> EventSpan {
        if !context.sampled {
            return self.unrecorded::<false>(context);
        }
        self.start_owned(kind, event_id, None, None, start, context, parent, link)
    }

    /// A span that records nothing, its context flagged `SAMPLED`. The context is rebuilt
    /// field by field with the flag a constant: moving it whole copies the flag's byte with a
    /// wide load right after that byte was stored, a store-forwarding stall that cost about a
    /// fifth of an unsampled call.
    #[inline(always)]
    fn unrecorded<const SAMPLED: bool>(&self, context: SpanContext) -> EventSpan {
        let SpanContext {
            trace_id,
            span_id,
            random,
            trace_state,
            ..
        } = context;
        EventSpan {
            context: SpanContext {
                trace_id,
                span_id,
                sampled: SAMPLED,
                random,
                trace_state,
            },
            formats: self.tracer.inject_mask,
            pending: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_owned(
        &self,
        kind: Kind,
        event_id: &str,
        event_type: Option<&str>,
        schema: Option<&str>,
        start: Stamp,
        context: SpanContext,
        parent: Option<SpanId>,
        link: Option<(TraceId, SpanId)>,
    ) -> EventSpan {
        if !context.sampled {
            return self.unrecorded::<false>(context);
        }
        if self.tracer.queue.is_full() {
            // The span would be refused at its end: count the drop now and skip building it.
            // The context stays sampled, so downstream services still trace the event.
            self.tracer
                .queue
                .dropped_full
                .fetch_add(1, Ordering::Relaxed);
            return self.unrecorded::<true>(context);
        }
        let extras = (event_type.is_some() || link.is_some()).then(|| {
            Box::new(Extras {
                event_type: event_type.map(str::to_owned),
                links: link.into_iter().collect(),
                ..Extras::default()
            })
        });
        let record = Record {
            trace_id: context.trace_id,
            span_id: context.span_id,
            parent,
            kind,
            route: self.inner.id,
            event_id: Text::new(event_id),
            schema: schema.map(Text::new),
            start_unix_nanos: start.unix_nanos,
            duration_nanos: 0,
            modified: false,
            partition: None,
            offset: None,
            extras,
        };
        EventSpan {
            context,
            formats: self.tracer.inject_mask,
            pending: Some(Box::new(Pending {
                tracer: self.tracer.clone(),
                start,
                record,
            })),
        }
    }
}

struct Pending {
    tracer: Arc<Inner>,
    start: Stamp,
    record: Record,
}

/// One produce or consume in progress. Set what you learn (partition, offset, errors, whether
/// a consumer modified the event), then [`EventSpan::end`] it, or let it drop, which ends it
/// too. Unsampled spans carry only their context and cost nothing to end.
pub struct EventSpan {
    context: SpanContext,
    /// The tracer's inject formats as a bit set (no reference to the tracer when unsampled).
    formats: u8,
    /// Boxed, so that an unsampled span (most of them) stays small to return and move.
    pending: Option<Box<Pending>>,
}

impl EventSpan {
    /// Whether this span will be exported.
    pub fn is_sampled(&self) -> bool {
        self.context.sampled
    }

    /// The span's context: pass it as the parent of what this span causes downstream.
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// Writes trace context (in the tracer's configured formats) into outgoing headers. Event
    /// metadata headers are written by [`Route::inject_event`]; [`Route::produce_with_headers`]
    /// does both.
    pub fn inject(&self, carrier: &mut impl Injector) {
        let (formats, n) = crate::tracer::formats_from_mask(self.formats);
        propagation::inject(&self.context, &formats[..n], carrier);
    }

    fn record(&mut self) -> Option<&mut Record> {
        self.pending.as_mut().map(|pending| &mut pending.record)
    }

    /// The event's schema (for example `order.created/v2`).
    pub fn schema(&mut self, schema: &str) -> &mut Self {
        if let Some(record) = self.record() {
            record.schema = Some(Text::new(schema));
        }
        self
    }

    pub fn partition(&mut self, partition: i32) -> &mut Self {
        if let Some(record) = self.record() {
            record.partition = Some(partition);
        }
        self
    }

    pub fn offset(&mut self, offset: i64) -> &mut Self {
        if let Some(record) = self.record() {
            record.offset = Some(offset);
        }
        self
    }

    /// The broker's own id of the message (JetStream sequence, SQS message id…).
    pub fn message_id(&mut self, message_id: &str) -> &mut Self {
        if let Some(record) = self.record() {
            record.extras().message_id = Some(message_id.to_string());
        }
        self
    }

    /// Marks that this consumer changed the event (re-serialized a different payload), as
    /// opposed to only reading or ferrying it.
    pub fn modified(&mut self) -> &mut Self {
        if let Some(record) = self.record() {
            record.modified = true;
        }
        self
    }

    /// Marks the span as failed, with a message.
    pub fn error(&mut self, message: &str) -> &mut Self {
        if let Some(record) = self.record() {
            record.extras().error = Some(message.to_string());
        }
        self
    }

    /// Adds an attribute (at most 64 per span; later ones are ignored).
    pub fn attribute(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        if let Some(record) = self.record() {
            let attributes = &mut record.extras().attributes;
            if attributes.len() < MAX_ATTRIBUTES {
                attributes.push((key.to_string(), value.into()));
            }
        }
        self
    }

    /// Links this span to another span (another trace this work continues).
    pub fn link(&mut self, context: &SpanContext) -> &mut Self {
        if let Some(record) = self.record() {
            record
                .extras()
                .links
                .push((context.trace_id, context.span_id));
        }
        self
    }

    /// Ends the span now and hands it to the exporter (never blocks).
    #[inline]
    pub fn end(self) {
        // Ended here rather than by `Drop`, so that the caller runs no drop glue after it.
        // Keep this in step with the fields: the pending record and a non-empty `tracestate`
        // are the only parts that own memory.
        let mut span = std::mem::ManuallyDrop::new(self);
        span.finish();
        drop(std::mem::take(&mut span.context.trace_state));
    }

    /// Inlined, so that ending an unsampled span is one test where the span is, not a call
    /// with a copy of it.
    #[inline]
    fn finish(&mut self) {
        if let Some(pending) = self.pending.take() {
            Self::enqueue(pending);
        }
    }

    #[inline(never)]
    #[allow(
        clippy::boxed_local,
        reason = "taking the box, not the span moved out of it, saves two copies of the record"
    )]
    fn enqueue(mut pending: Box<Pending>) {
        pending.record.duration_nanos = clock::since(pending.start);
        let Pending { tracer, record, .. } = *pending;
        tracer.enqueue(record);
    }
}

impl Drop for EventSpan {
    #[inline]
    fn drop(&mut self) {
        self.finish();
    }
}

impl std::fmt::Debug for EventSpan {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EventSpan")
            .field("context", &self.context)
            .field("sampled", &self.context.sampled)
            .finish()
    }
}
