//! The reference workload as OTLP (`--protocol otlp`): the same events, streams, services and
//! timing as `workload.rs`, written as protobuf `ExportTraceServiceRequest`s for `POST
//! /v1/traces`, the way an OpenTelemetry SDK instrumented with the messaging semantic
//! conventions would send them. Each batch holds one `ResourceSpans` per service (with
//! `service.name`, `service.version` and two `telemetry.sdk.*` attributes); each span carries
//! 12–13 attributes: `messaging.system`, `messaging.destination.name`,
//! `messaging.operation.type`, `messaging.message.id`, `cloudevents.event_id`,
//! `cloudevents.event_type`, `cloudevents.event_dataschema`, the Kafka partition and offset
//! (Kafka) or `messaging.nats.stream` (NATS), and `cloud.region`, `tenant.tier`,
//! `client.version`, `retry`. A copy of a template gets fresh ids and times in place and is
//! encoded again.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use rand::Rng;
use rand::rngs::SmallRng;

use crate::workload::{
    CLIENT_VERSIONS, EVENT_TYPES, KAFKA_PARTITIONS, REGIONS, SERVICES, STREAMS, Sample,
    TENANT_TIERS, WINDOW_NANOS, consumers_for, random_hex, random_id, random_uuid,
};

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

/// A built batch with where each event's spans are, so a copy can get fresh ids.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub body: bytes::Bytes,
    pub n_spans: usize,
    request: ExportTraceServiceRequest,
    events: Vec<Vec<SpanRef>>,
}

impl Template {
    /// Drops the request of a batch that will not serve as a template (saves memory).
    pub(crate) fn forget_request(&mut self) {
        self.request = ExportTraceServiceRequest::default();
        self.events = Vec::new();
    }
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

/// Fresh per-event values.
struct EventIds {
    trace: [u8; 16],
    span_ids: [[u8; 8]; 4],
    event_id: String,
    message_id: String,
    start_nanos: i64,
}

impl EventIds {
    fn random(rng: &mut SmallRng, now_nanos: i64) -> EventIds {
        EventIds {
            trace: random_id::<16>(rng),
            span_ids: std::array::from_fn(|_| random_id::<8>(rng)),
            event_id: String::from_utf8_lossy(&random_uuid(rng)).into_owned(),
            message_id: String::from_utf8_lossy(&random_hex::<12, 24>(rng)).into_owned(),
            start_nanos: now_nanos - rng.random_range(0..WINDOW_NANOS),
        }
    }
}

/// Writes the ids and times of `ids` into the spans of one event.
fn stamp(request: &mut ExportTraceServiceRequest, spans: &[SpanRef], ids: &EventIds) {
    for (position, span_ref) in spans.iter().enumerate() {
        let span = &mut request.resource_spans[span_ref.resource_idx].scope_spans[0].spans
            [span_ref.span_idx];
        let duration = span.end_time_unix_nano - span.start_time_unix_nano;
        span.trace_id = ids.trace.to_vec();
        span.span_id = ids.span_ids[position].to_vec();
        if position > 0 {
            span.parent_span_id = ids.span_ids[0].to_vec();
        }
        span.start_time_unix_nano = (ids.start_nanos + span_ref.lag_nanos) as u64;
        span.end_time_unix_nano = span.start_time_unix_nano + duration;
        for (index, value) in [
            (MESSAGE_ID_ATTRIBUTE, &ids.message_id),
            (EVENT_ID_ATTRIBUTE, &ids.event_id),
        ] {
            span.attributes[index].value = Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.clone())),
            });
        }
    }
}

/// Builds a batch of exactly `n_spans` spans (at least 2), like `workload::build_batch`.
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
    // Spans by service first; each event remembers (service, index) of its spans.
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut events: Vec<Vec<(usize, usize, i64)>> = Vec::with_capacity(n_spans / 2);
    let mut all_ids = Vec::with_capacity(n_spans / 2);
    let mut room = n_spans;
    while room > 0 {
        let n_consumers = consumers_for(rng, room);
        let ids = EventIds::random(rng, now_nanos);
        let offset = first_offset + events.len() as i64;
        let event_type = &EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())];
        let stream = &STREAMS[event_type.stream_idx];
        let is_kafka = stream.broker == "kafka";
        let partition = rng.random_range(0..KAFKA_PARTITIONS);
        let tenant_tier = TENANT_TIERS[rng.random_range(0..TENANT_TIERS.len())];
        let mut spans_of_event = Vec::with_capacity(1 + n_consumers);
        let services = std::iter::once(event_type.producer_idx)
            .chain(event_type.consumer_idxs[..n_consumers].iter().copied());
        for (position, service_idx) in services.enumerate() {
            let is_producer = position == 0;
            let (lag_nanos, duration_nanos) = if is_producer {
                (0, rng.random_range(100_000..3_000_000i64))
            } else {
                (
                    rng.random_range(2_000_000..800_000_000i64),
                    rng.random_range(500_000..25_000_000i64),
                )
            };
            let mut attributes = vec![
                text("messaging.system", stream.broker),
                text("messaging.destination.name", stream.name),
                text(
                    "messaging.operation.type",
                    if is_producer { "send" } else { "process" },
                ),
                text("messaging.message.id", ""),
                text("cloudevents.event_id", ""),
                text("cloudevents.event_type", event_type.name),
                text("cloudevents.event_dataschema", event_type.schema),
            ];
            if is_kafka {
                attributes.push(int(
                    "messaging.kafka.destination.partition",
                    i64::from(partition),
                ));
                attributes.push(int("messaging.kafka.message.offset", offset));
            } else {
                attributes.push(text("messaging.nats.stream", stream.name));
            }
            attributes.extend([
                text("cloud.region", REGIONS[rng.random_range(0..REGIONS.len())]),
                text("tenant.tier", tenant_tier),
                text(
                    "client.version",
                    CLIENT_VERSIONS[rng.random_range(0..CLIENT_VERSIONS.len())],
                ),
                flag("retry", false),
            ]);
            let failed = !is_producer && rng.random_range(0..200) == 0;
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
                end_time_unix_nano: duration_nanos as u64,
                attributes,
                status: failed.then(|| Status {
                    message: "handler timed out".to_string(),
                    code: opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32,
                }),
                ..Default::default()
            };
            spans_of_event.push((service_idx, by_service[service_idx].len(), lag_nanos));
            by_service[service_idx].push(span);
        }
        room -= spans_of_event.len();
        events.push(spans_of_event);
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
    let events: Vec<Vec<SpanRef>> = events
        .into_iter()
        .map(|spans| {
            spans
                .into_iter()
                .map(|(service_idx, span_idx, lag_nanos)| SpanRef {
                    resource_idx: resource_of_service[service_idx],
                    span_idx,
                    lag_nanos,
                })
                .collect()
        })
        .collect();
    for (spans, ids) in events.iter().zip(&all_ids) {
        stamp(&mut request, spans, ids);
    }
    let sampled = rng.random_range(0..events.len());
    let sample = Sample {
        event_id: all_ids[sampled].event_id.clone(),
        n_spans: events[sampled].len(),
    };
    Built {
        template: Template {
            body: bytes::Bytes::from(request.encode_to_vec()),
            n_spans,
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
        n_spans: 0,
    };
    for (event_idx, spans) in template.events.iter().enumerate() {
        let ids = EventIds::random(rng, now_nanos);
        stamp(&mut template.request, spans, &ids);
        if event_idx == sampled {
            sample = Sample {
                event_id: ids.event_id,
                n_spans: spans.len(),
            };
        }
    }
    (template.request.encode_to_vec(), sample)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const NOW: i64 = 1_795_000_000_000_000_000;

    #[test]
    fn a_batch_maps_to_exactly_its_spans_with_events_in_one_trace() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut built = build_batch(&mut rng, 1000, 0, NOW);
        for body in [
            built.template.body.to_vec(),
            patch(&mut built.template, &mut rng, NOW).0,
        ] {
            let decoded = muninn_ingest::decode_otlp_protobuf(
                &body,
                &muninn_ingest::OtlpMapping::default(),
                &muninn_model::Limits::default(),
                NOW,
            )
            .expect("a valid request");
            assert_eq!(decoded.rejected, Vec::new());
            assert_eq!(decoded.records.len(), 1000);
            let producers: std::collections::HashMap<_, _> = decoded
                .records
                .iter()
                .filter(|span| span.kind == muninn_model::SpanKind::Producer)
                .map(|span| (span.event.event_id.clone(), span))
                .collect();
            for span in &decoded.records {
                assert!(span.event.event_type.is_some() && span.event.stream.is_some());
                let producer = producers[&span.event.event_id];
                assert_eq!(span.trace_id, producer.trace_id);
                if span.kind == muninn_model::SpanKind::Consumer {
                    assert_eq!(span.parent_span_id, Some(producer.span_id));
                }
            }
        }
    }
}
