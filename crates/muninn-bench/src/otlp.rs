//! The workloads as OTLP (`--protocol otlp`): the same events, streams, services and timing as
//! `native.rs` (both draw them from `workload.rs`), written as protobuf
//! `ExportTraceServiceRequest`s for `POST /v1/traces`, the way an OpenTelemetry SDK
//! instrumented with the messaging semantic conventions would send them. Each batch holds one
//! `ResourceSpans` per service (with `service.name`, `service.version` and two
//! `telemetry.sdk.*` attributes); each span carries 12–13 attributes: `messaging.system`,
//! `messaging.destination.name`, `messaging.operation.type`, `messaging.message.id`,
//! `cloudevents.event_id`, `cloudevents.event_type`, `cloudevents.event_dataschema`, the Kafka
//! partition and offset (Kafka) or `messaging.nats.stream` (NATS), and `cloud.region`,
//! `tenant.tier`, `client.version`, `retry`. A consumer in a new trace (random workload) has a
//! span link (`Span.links`) to its producer span instead of a parent. A copy of a template gets
//! fresh ids and times in place and is encoded again.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use rand::Rng;
use rand::rngs::SmallRng;

use crate::workload::{Event, EventIds, EventShape, SERVICES, Sample, Workload};

/// Where the per-event values sit in every span's attributes.
const MESSAGE_ID_ATTRIBUTE: usize = 3;
const EVENT_ID_ATTRIBUTE: usize = 4;

/// One span of an event: its place in the request and its start minus the producer's.
#[derive(Debug, Clone, Copy)]
struct SpanRef {
    resource_idx: usize,
    span_idx: usize,
    lag_nanos: i64,
}

/// The spans of one event and its shape (which consumers are in a new trace).
#[derive(Debug, Clone)]
struct TemplateEvent {
    shape: EventShape,
    spans: Vec<SpanRef>,
}

/// A built batch with where each event's spans are, so a copy can get fresh ids.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub body: bytes::Bytes,
    pub n_spans: usize,
    workload: Workload,
    request: ExportTraceServiceRequest,
    events: Vec<TemplateEvent>,
}

/// One batch as protobuf, with the event sampled for the journey queries.
pub(crate) struct Built {
    pub template: Template,
    pub sample: Sample,
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn flag(key: &str, value: bool) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(value)),
        }),
        ..Default::default()
    }
}

/// Writes the ids and times of `ids` into the spans of one event: a consumer in the
/// producer's trace gets the producer as its parent; a consumer in a new trace gets its own
/// trace id, no parent, and one span link to the producer span (`Span.links`).
fn stamp(request: &mut ExportTraceServiceRequest, event: &TemplateEvent, ids: &EventIds) {
    let message_id = String::from_utf8_lossy(&ids.message_id).into_owned();
    let event_id = String::from_utf8_lossy(&ids.event_id).into_owned();
    for (position, span_ref) in event.spans.iter().enumerate() {
        let span = &mut request.resource_spans[span_ref.resource_idx].scope_spans[0].spans
            [span_ref.span_idx];
        let duration = span.end_time_unix_nano - span.start_time_unix_nano;
        span.trace_id = ids.trace_of(event.shape, position).to_vec();
        span.span_id = ids.span_ids[position].to_vec();
        if event.shape.in_new_trace(position) {
            span.parent_span_id = Vec::new();
            span.links = vec![span::Link {
                trace_id: ids.traces[0].to_vec(),
                span_id: ids.span_ids[0].to_vec(),
                ..Default::default()
            }];
        } else if position > 0 {
            span.parent_span_id = ids.span_ids[0].to_vec();
        }
        span.start_time_unix_nano = (ids.start_nanos + span_ref.lag_nanos) as u64;
        span.end_time_unix_nano = span.start_time_unix_nano + duration;
        for (index, value) in [
            (MESSAGE_ID_ATTRIBUTE, &message_id),
            (EVENT_ID_ATTRIBUTE, &event_id),
        ] {
            span.attributes[index].value = Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.clone())),
            });
        }
    }
}

/// Builds a batch of exactly `n_spans` spans (at least 2) of the same events as
/// `native::build_batch` draws for the same seed.
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
    // Spans by service first; each event remembers (service, index) of its spans, the service
    // in `resource_idx` until the resources are known.
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut events: Vec<TemplateEvent> = Vec::with_capacity(n_spans / 2);
    let mut all_ids = Vec::with_capacity(n_spans / 2);
    let mut room = n_spans;
    while room > 0 {
        let Event { shape, ids, plan } = Event::draw(workload, rng, room, now_nanos);
        let offset = first_offset + events.len() as i64;
        let stream = plan.stream;
        let is_kafka = plan.is_kafka();
        let mut spans_of_event = Vec::with_capacity(plan.spans.len());
        for planned in &plan.spans {
            let is_producer = planned.is_producer;
            let mut attributes = vec![
                text("messaging.system", stream.broker),
                text("messaging.destination.name", stream.name),
                text(
                    "messaging.operation.type",
                    if is_producer { "send" } else { "process" },
                ),
                text("messaging.message.id", ""),
                text("cloudevents.event_id", ""),
                text("cloudevents.event_type", plan.event_type.name),
                text("cloudevents.event_dataschema", plan.event_type.schema),
            ];
            if is_kafka {
                attributes.push(int(
                    "messaging.kafka.destination.partition",
                    i64::from(plan.partition),
                ));
                attributes.push(int("messaging.kafka.message.offset", offset));
            } else {
                attributes.push(text("messaging.nats.stream", stream.name));
            }
            attributes.extend([
                text("cloud.region", planned.region),
                text("tenant.tier", plan.tenant_tier),
                text("client.version", planned.client_version),
                flag("retry", false),
            ]);
            let span = Span {
                name: if is_producer {
                    stream.publish_name
                } else {
                    stream.process_name
                }
                .to_string(),
                kind: if is_producer {
                    span::SpanKind::Producer
                } else {
                    span::SpanKind::Consumer
                } as i32,
                start_time_unix_nano: 0,
                end_time_unix_nano: planned.duration_nanos as u64,
                attributes,
                status: planned.failed.then(|| Status {
                    message: "handler timed out".to_string(),
                    code: opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32,
                }),
                ..Default::default()
            };
            let service_idx = planned.service_idx;
            spans_of_event.push(SpanRef {
                resource_idx: service_idx,
                span_idx: by_service[service_idx].len(),
                lag_nanos: planned.lag_nanos,
            });
            by_service[service_idx].push(span);
        }
        room -= spans_of_event.len();
        events.push(TemplateEvent {
            shape,
            spans: spans_of_event,
        });
        all_ids.push(ids);
    }
    let mut resource_of_service = vec![usize::MAX; SERVICES.len()];
    let mut request = ExportTraceServiceRequest::default();
    for (service_idx, spans) in by_service.into_iter().enumerate() {
        if spans.is_empty() {
            continue;
        }
        resource_of_service[service_idx] = request.resource_spans.len();
        request.resource_spans.push(ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", SERVICES[service_idx]),
                    text("service.version", "1.4.2"),
                    text("telemetry.sdk.language", "rust"),
                    text("telemetry.sdk.name", "opentelemetry"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    for span_ref in events.iter_mut().flat_map(|event| event.spans.iter_mut()) {
        span_ref.resource_idx = resource_of_service[span_ref.resource_idx];
    }
    for (event, ids) in events.iter().zip(&all_ids) {
        stamp(&mut request, event, ids);
    }
    let sampled = rng.random_range(0..events.len());
    let sample = Sample::of(
        &all_ids[sampled].event_id,
        &all_ids[sampled].traces[0],
        events[sampled].shape,
    );
    Built {
        template: Template {
            body: bytes::Bytes::from(request.encode_to_vec()),
            n_spans,
            workload,
            request,
            events,
        },
        sample,
    }
}

/// A copy of `template` with fresh trace, span, event and message ids and start times (same
/// lags and durations), encoded; the template keeps the new values.
pub(crate) fn patch(
    template: &mut Template,
    rng: &mut SmallRng,
    now_nanos: i64,
) -> (Vec<u8>, Sample) {
    let sampled = rng.random_range(0..template.events.len());
    let mut sample = Sample {
        event_id: String::new(),
        trace_id: String::new(),
        n_spans: 0,
        n_traces: 0,
    };
    for (event_idx, event) in template.events.iter().enumerate() {
        let ids = EventIds::draw(template.workload, rng, now_nanos, event.shape);
        stamp(&mut template.request, event, &ids);
        if event_idx == sampled {
            sample = Sample::of(&ids.event_id, &ids.traces[0], event.shape);
        }
    }
    (template.request.encode_to_vec(), sample)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use rand::SeedableRng;

    use super::*;

    const NOW: i64 = 1_795_000_000_000_000_000;

    #[test]
    fn a_batch_maps_to_exactly_its_spans_with_consumers_linked_to_their_producer() {
        for workload in [Workload::Reference, Workload::Random] {
            let mut rng = SmallRng::seed_from_u64(3);
            let mut built = build_batch(workload, &mut rng, 1000, 0, NOW);
            let original_ids: HashSet<_> = muninn_ingest::decode_otlp_protobuf(
                &built.template.body,
                &muninn_ingest::OtlpMapping::default(),
                &muninn_model::Limits::default(),
                NOW,
            )
            .expect("a valid request")
            .records
            .iter()
            .flat_map(|span| [span.trace_id.to_hex(), span.span_id.to_hex()])
            .collect();
            let (copy, sample) = patch(&mut built.template, &mut rng, NOW);
            for (body, is_copy) in [(built.template.body.to_vec(), false), (copy, true)] {
                let decoded = muninn_ingest::decode_otlp_protobuf(
                    &body,
                    &muninn_ingest::OtlpMapping::default(),
                    &muninn_model::Limits::default(),
                    NOW,
                )
                .expect("a valid request");
                assert_eq!(decoded.rejected, Vec::new());
                assert_eq!(decoded.records.len(), 1000);
                let producers: HashMap<_, _> = decoded
                    .records
                    .iter()
                    .filter(|span| span.kind == muninn_model::SpanKind::Producer)
                    .map(|span| (span.event.event_id.clone(), span))
                    .collect();
                let mut traces_of_event: HashMap<_, HashSet<_>> = HashMap::new();
                let mut n_linked = 0;
                for span in &decoded.records {
                    assert!(span.event.event_type.is_some() && span.event.stream.is_some());
                    if is_copy {
                        assert!(!original_ids.contains(&span.trace_id.to_hex()));
                        assert!(!original_ids.contains(&span.span_id.to_hex()));
                    }
                    traces_of_event
                        .entry(span.event.event_id.clone())
                        .or_default()
                        .insert(span.trace_id);
                    let producer = producers[&span.event.event_id];
                    if span.kind != muninn_model::SpanKind::Consumer {
                        assert!(span.links.is_empty());
                    } else if span.trace_id == producer.trace_id {
                        assert_eq!(span.parent_span_id, Some(producer.span_id));
                        assert!(span.links.is_empty());
                    } else {
                        n_linked += 1;
                        assert_eq!(workload, Workload::Random);
                        assert_eq!(span.parent_span_id, None);
                        assert_eq!(span.links.len(), 1);
                        assert_eq!(span.links[0].trace_id, producer.trace_id);
                        assert_eq!(span.links[0].span_id, producer.span_id);
                    }
                }
                assert_eq!(n_linked > 0, workload == Workload::Random);
                if is_copy {
                    let sampled = decoded
                        .records
                        .iter()
                        .filter(|span| span.event.event_id.as_deref() == Some(&sample.event_id))
                        .count();
                    assert_eq!(sampled, sample.n_spans);
                    assert_eq!(
                        traces_of_event[&Some(sample.event_id.as_str().into())].len(),
                        sample.n_traces
                    );
                }
            }
        }
    }
}
