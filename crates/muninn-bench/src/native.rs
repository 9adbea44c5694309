//! The workloads as native JSON for `POST /api/v1/spans`: batches of exactly `n` spans, each
//! either built in full or patched from a template, a copy with fresh ids and times written in
//! place at remembered positions, which is cheap enough to run beside the senders.

use std::io::Write;

use rand::Rng;
use rand::rngs::SmallRng;

use crate::workload::{
    Event, EventIds, EventShape, MAX_SPANS, MESSAGE_ID_HEX, SERVICES, Sample, UUID_TEXT, Workload,
    hex,
};

/// Widths of the patched fields, which a template rewrites in place.
const TRACE_HEX: usize = 32;
const SPAN_HEX: usize = 16;
/// Unix nanoseconds between 2001 and 2286 have 19 digits.
const TIME_DIGITS: usize = 19;

/// A field of a template that gets a fresh value per copy.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The event's n-th trace id (`EventIds::traces`: 0 is the producer's).
    Trace(u8),
    /// The span id of the event's n-th span (0 is the producer, which is also the parent of
    /// every consumer in its trace and the target of every other consumer's link).
    SpanId(u8),
    EventId,
    MessageId,
    /// The start time of the n-th span: the producer's new start plus the template's lag.
    Start(u8),
}

#[derive(Debug, Clone)]
struct TemplateEvent {
    shape: EventShape,
    /// Start of each span minus the start of the producer span.
    lags_nanos: [i64; MAX_SPANS],
    /// End (exclusive) of this event's slots in `Template::slots`.
    slots_end: u32,
}

/// A built batch with the positions of every per-event unique field.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub body: bytes::Bytes,
    pub n_spans: usize,
    workload: Workload,
    events: Vec<TemplateEvent>,
    slots: Vec<(u32, Slot)>,
}

/// One batch as JSON, with the event sampled for the journey queries and its template.
pub(crate) struct Built {
    pub template: Template,
    pub sample: Sample,
}

fn fixed_digits(destination: &mut [u8], mut value: u64) {
    for digit in destination.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
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
        let _ = write!(self.out, "{value}");
    }
}

/// Writes the spans of `event`. A consumer in the producer's trace has the producer as its
/// parent; a consumer in a new trace has no parent and a span link to the producer span.
fn write_event(writer: &mut Writer, event: &Event, offset: i64) -> TemplateEvent {
    let Event { shape, ids, plan } = event;
    let stream = plan.stream;
    let is_kafka = plan.is_kafka();
    let mut lags_nanos = [0i64; MAX_SPANS];
    for (span_idx, span) in plan.spans.iter().enumerate() {
        lags_nanos[span_idx] = span.lag_nanos;
        let in_new_trace = shape.in_new_trace(span_idx);
        let trace_slot = if in_new_trace { span_idx as u8 } else { 0 };
        if writer.out.len() > 1 {
            writer.text(",");
        }
        writer.text("{\"trace_id\":\"");
        writer.slot(
            &hex::<TRACE_HEX>(ids.trace_of(*shape, span_idx)),
            Slot::Trace(trace_slot),
        );
        writer.text("\",\"span_id\":\"");
        writer.slot(
            &hex::<SPAN_HEX>(&ids.span_ids[span_idx]),
            Slot::SpanId(span_idx as u8),
        );
        if !span.is_producer && !in_new_trace {
            writer.text("\",\"parent_span_id\":\"");
            writer.slot(&hex::<SPAN_HEX>(&ids.span_ids[0]), Slot::SpanId(0));
        }
        writer.text("\",\"name\":\"");
        writer.text(if span.is_producer {
            stream.publish_name
        } else {
            stream.process_name
        });
        writer.text(if span.is_producer {
            "\",\"kind\":\"producer\",\"service\":\""
        } else {
            "\",\"kind\":\"consumer\",\"service\":\""
        });
        writer.text(SERVICES[span.service_idx]);
        writer.text("\",\"start_time_unix_nano\":");
        let mut start = [0u8; TIME_DIGITS];
        fixed_digits(&mut start, (ids.start_nanos + span.lag_nanos) as u64);
        writer.slot(&start, Slot::Start(span_idx as u8));
        writer.text(",\"duration_nano\":");
        writer.number(span.duration_nanos);
        if span.failed {
            writer.text(",\"status\":{\"code\":\"error\",\"message\":\"handler timed out\"}");
        }
        if in_new_trace {
            writer.text(",\"links\":[{\"trace_id\":\"");
            writer.slot(&hex::<TRACE_HEX>(&ids.traces[0]), Slot::Trace(0));
            writer.text("\",\"span_id\":\"");
            writer.slot(&hex::<SPAN_HEX>(&ids.span_ids[0]), Slot::SpanId(0));
            writer.text("\"}]");
        }
        writer.text(",\"event_id\":\"");
        writer.slot(&ids.event_id, Slot::EventId);
        writer.text("\",\"event_type\":\"");
        writer.text(plan.event_type.name);
        writer.text("\",\"schema\":\"");
        writer.text(plan.event_type.schema);
        writer.text("\",\"stream\":\"");
        writer.text(stream.name);
        writer.text("\",\"broker\":\"");
        writer.text(stream.broker);
        writer.text("\"");
        if is_kafka {
            writer.text(",\"partition\":");
            writer.number(i64::from(plan.partition));
            writer.text(",\"offset\":");
            writer.number(offset);
        }
        writer.text(",\"message_id\":\"");
        writer.slot(&ids.message_id, Slot::MessageId);
        writer.text("\",\"attributes\":{\"cloud.region\":\"");
        writer.text(span.region);
        writer.text("\",\"tenant.tier\":\"");
        writer.text(plan.tenant_tier);
        writer.text("\",\"client.version\":\"");
        writer.text(span.client_version);
        writer.text("\",\"retry\":false,");
        if is_kafka {
            writer.text("\"messaging.destination.partition.id\":\"");
            writer.number(i64::from(plan.partition));
            writer.text("\"}}");
        } else {
            writer.text("\"messaging.nats.stream\":\"");
            writer.text(stream.name);
            writer.text("\"}}");
        }
    }
    TemplateEvent {
        shape: *shape,
        lags_nanos,
        slots_end: writer.slots.len() as u32,
    }
}

/// Builds a batch of exactly `n_spans` spans (at least 2), events placed in the
/// `WINDOW_NANOS` before `now_nanos`.
pub(crate) fn build_batch(
    workload: Workload,
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
    let mut event_ids: Vec<([u8; UUID_TEXT], [u8; 16], EventShape)> =
        Vec::with_capacity(n_spans / 2);
    let mut room = n_spans;
    while room > 0 {
        let event = Event::draw(workload, rng, room, now_nanos);
        let written = write_event(&mut writer, &event, first_offset + events.len() as i64);
        room -= event.shape.n_spans();
        event_ids.push((event.ids.event_id, event.ids.traces[0], event.shape));
        events.push(written);
    }
    writer.out.push(b']');
    let (event_id, trace_id, shape) = event_ids[rng.random_range(0..event_ids.len())];
    Built {
        template: Template {
            body: bytes::Bytes::from(writer.out),
            n_spans,
            workload,
            events,
            slots: writer.slots,
        },
        sample: Sample::of(&event_id, &trace_id, shape),
    }
}

/// A copy of `template` with fresh trace, span, event and message ids and fresh start times
/// (same lags), so every span is new; structure, names and attributes repeat. A consumer in a
/// new trace gets a fresh trace id of its own, and its link the producer's new ids.
pub(crate) fn patch(template: &Template, rng: &mut SmallRng, now_nanos: i64) -> (Vec<u8>, Sample) {
    let mut body = template.body.to_vec();
    let sampled_event_idx = rng.random_range(0..template.events.len());
    let mut sample = None;
    let mut slot_start = 0usize;
    for (event_idx, event) in template.events.iter().enumerate() {
        let ids = EventIds::draw(template.workload, rng, now_nanos, event.shape);
        let slots_end = event.slots_end as usize;
        for &(position, slot) in &template.slots[slot_start..slots_end] {
            let position = position as usize;
            match slot {
                Slot::Trace(trace_idx) => body[position..position + TRACE_HEX]
                    .copy_from_slice(&hex::<TRACE_HEX>(&ids.traces[usize::from(trace_idx)])),
                Slot::SpanId(span_idx) => body[position..position + SPAN_HEX]
                    .copy_from_slice(&hex::<SPAN_HEX>(&ids.span_ids[usize::from(span_idx)])),
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
            sample = Some(Sample::of(&ids.event_id, &ids.traces[0], event.shape));
        }
    }
    let sample = sample.unwrap_or_else(|| Sample {
        event_id: String::new(),
        trace_id: String::new(),
        n_spans: 0,
        n_traces: 0,
    });
    (body, sample)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use rand::SeedableRng;

    use super::*;

    const NOW: i64 = 1_795_000_000_000_000_000;

    #[derive(serde::Deserialize)]
    struct WireLink {
        trace_id: String,
        span_id: String,
    }

    #[derive(serde::Deserialize)]
    struct WireSpan {
        trace_id: String,
        span_id: String,
        parent_span_id: Option<String>,
        kind: String,
        start_time_unix_nano: i64,
        event_id: String,
        #[serde(default)]
        links: Vec<WireLink>,
    }

    fn spans(body: &[u8]) -> Vec<WireSpan> {
        serde_json::from_slice(body).expect("a batch is a JSON array of spans")
    }

    /// Every consumer either is a child of its event's producer in the producer's trace, or is
    /// in another trace, without a parent, linked to the producer; returns the traces of each
    /// event.
    fn check_links(spans: &[WireSpan]) -> HashMap<String, HashSet<String>> {
        let producers: HashMap<&str, &WireSpan> = spans
            .iter()
            .filter(|span| span.kind == "producer")
            .map(|span| (span.event_id.as_str(), span))
            .collect();
        let mut traces: HashMap<String, HashSet<String>> = HashMap::new();
        for span in spans {
            traces
                .entry(span.event_id.clone())
                .or_default()
                .insert(span.trace_id.clone());
            if span.kind != "consumer" {
                assert!(span.links.is_empty() && span.parent_span_id.is_none());
                continue;
            }
            let producer = producers[span.event_id.as_str()];
            if span.trace_id == producer.trace_id {
                assert_eq!(
                    span.parent_span_id.as_deref(),
                    Some(producer.span_id.as_str())
                );
                assert!(span.links.is_empty());
            } else {
                assert_eq!(span.parent_span_id, None);
                assert_eq!(span.links.len(), 1);
                assert_eq!(span.links[0].trace_id, producer.trace_id);
                assert_eq!(span.links[0].span_id, producer.span_id);
            }
        }
        traces
    }

    #[test]
    fn a_batch_is_exactly_full_and_events_share_trace_and_event_id() {
        let mut rng = SmallRng::seed_from_u64(7);
        for n_spans in [2, 3, 4, 5, 7, 1000] {
            let built = build_batch(Workload::Reference, &mut rng, n_spans, 0, NOW);
            let spans = spans(&built.template.body);
            assert_eq!(spans.len(), n_spans);
            let traces = check_links(&spans);
            assert!(traces.values().all(|traces| traces.len() == 1));
            let sampled = spans
                .iter()
                .filter(|span| span.event_id == built.sample.event_id)
                .count();
            assert_eq!(sampled, built.sample.n_spans);
            assert_eq!(built.sample.n_traces, 1);
        }
    }

    #[test]
    fn a_random_batch_is_exactly_full_and_links_point_at_the_producer_of_the_same_event() {
        let mut rng = SmallRng::seed_from_u64(8);
        for n_spans in [2, 3, 4, 5, 7, 1000] {
            let built = build_batch(Workload::Random, &mut rng, n_spans, 0, NOW);
            let spans = spans(&built.template.body);
            assert_eq!(spans.len(), n_spans);
            let traces = check_links(&spans);
            let sampled = spans
                .iter()
                .filter(|span| span.event_id == built.sample.event_id)
                .count();
            assert_eq!(sampled, built.sample.n_spans);
            assert_eq!(traces[&built.sample.event_id].len(), built.sample.n_traces);
        }
        // In a large batch: lone producers, events of six spans, and consumers in new traces.
        let built = build_batch(Workload::Random, &mut rng, 1000, 0, NOW);
        let spans = spans(&built.template.body);
        let mut spans_per_event: HashMap<&str, usize> = HashMap::new();
        for span in &spans {
            *spans_per_event.entry(span.event_id.as_str()).or_default() += 1;
        }
        assert!(spans_per_event.values().any(|&count| count == 1));
        assert!(spans_per_event.values().any(|&count| count == MAX_SPANS));
        assert!(spans.iter().any(|span| !span.links.is_empty()));
        let n_traces: HashSet<&str> = spans.iter().map(|span| span.trace_id.as_str()).collect();
        assert!(n_traces.len() > spans_per_event.len());
    }

    #[test]
    fn a_patched_copy_has_new_ids_and_the_same_lags() {
        for workload in [Workload::Reference, Workload::Random] {
            let mut rng = SmallRng::seed_from_u64(11);
            let built = build_batch(workload, &mut rng, 1000, 0, NOW);
            let (body, sample) = patch(&built.template, &mut rng, NOW + 1);
            let original = spans(&built.template.body);
            let copy = spans(&body);
            assert_eq!(copy.len(), original.len());
            let old_ids: HashSet<&str> = original
                .iter()
                .flat_map(|span| [span.trace_id.as_str(), span.span_id.as_str()])
                .collect();
            let mut seen = HashSet::new();
            for (before, after) in original.iter().zip(&copy) {
                assert_ne!(before.trace_id, after.trace_id);
                assert_ne!(before.event_id, after.event_id);
                assert!(!old_ids.contains(after.trace_id.as_str()));
                assert!(!old_ids.contains(after.span_id.as_str()));
                assert_eq!(before.links.len(), after.links.len());
                assert_eq!(
                    before.parent_span_id.is_some(),
                    after.parent_span_id.is_some()
                );
                assert!(seen.insert((after.trace_id.clone(), after.span_id.clone())));
                assert!(after.start_time_unix_nano <= NOW + 1 + 800_000_000);
            }
            let traces = check_links(&copy);
            for pair in original.windows(2).zip(copy.windows(2)) {
                if pair.0[0].event_id == pair.0[1].event_id {
                    let lag_before =
                        pair.0[1].start_time_unix_nano - pair.0[0].start_time_unix_nano;
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
            assert_eq!(traces[&sample.event_id].len(), sample.n_traces);
        }
    }
}
