//! Turns the fleet description into traffic: each flow starts with a request to an origin
//! service, which publishes an event; every subscriber consumes it (continuing the trace or
//! starting a new one with a link), may fail and retry, and may publish further events, down to
//! the sinks. The output is what instrumented services would send: native-format span records
//! (head-sampled per flow) and the per-minute "event seen" counts of every produce and consume.

use std::collections::{BTreeMap, HashMap};

use muninn_model::{Action, Broker};
use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::fleet::{EventType, Fleet, Handling, Service, Stream, Subscription, TraceContinuation};

/// A span in Muninn's native ingest format (`POST /api/v1/spans`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: &'static str,
    pub service: &'static str,
    pub resource: Map<String, Value>,
    pub start_time_unix_nano: i64,
    pub duration_nano: i64,
    pub status: StatusRecord,
    pub attributes: Map<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<&'static str>,
    pub modified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRecord {
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkRecord {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Map<String, Value>,
}

/// An "event seen" count in the native format (`POST /api/v1/counts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountRecord {
    pub service: &'static str,
    pub event_type: &'static str,
    pub stream: &'static str,
    pub broker: &'static str,
    pub action: &'static str,
    /// Start of the minute, unix seconds.
    pub minute: i64,
    pub count: u64,
}

/// One produce or consume, whether or not its flow was sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub service: &'static Service,
    pub event_type: &'static str,
    pub stream: &'static Stream,
    pub action: Action,
    pub unix_nanos: i64,
}

/// Everything one request to an origin service caused.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The spans to send; empty when head sampling dropped this flow.
    pub spans: Vec<SpanRecord>,
    /// Every produce and consume, sampled or not.
    pub seen: Vec<Seen>,
    /// New event ids published (a ferry re-publishes an existing one and is not counted).
    pub n_events: usize,
    pub sampled: bool,
    pub root_event_id: String,
    pub root_event_type: &'static str,
    pub root_trace_id: String,
    /// Events whose consumption failed at least once and was retried.
    pub retried_event_ids: Vec<String>,
}

/// Chains are at most this deep; the fleet is validated to have no loops, this is a backstop.
const MAX_DEPTH: usize = 16;
/// A failing consumer succeeds at the latest on this attempt.
const MAX_ATTEMPTS: u32 = 4;
const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-2"];
const FAILURES: [&str; 3] = [
    "smtp relay: 421 4.7.0 try again later",
    "smtp relay: timeout after 5000ms",
    "smtp relay: connection reset by peer",
];
const NANOS_PER_MILLI: i64 = 1_000_000;

/// The message a producer published, as its consumers see it.
struct Published {
    trace_id: String,
    span_id: String,
    end_unix_nanos: i64,
    event_id: String,
    event_type: &'static EventType,
    stream: &'static Stream,
    partition: Option<u32>,
    offset: Option<i64>,
}

/// Generates flows from a fleet with a random source (seeded in tests).
pub struct TrafficGenerator<R> {
    fleet: Fleet,
    rng: R,
    /// Next offset per Kafka (stream, partition).
    offsets: HashMap<(&'static str, u32), i64>,
    n_flows: usize,
}

impl<R: Rng> TrafficGenerator<R> {
    pub fn new(fleet: Fleet, rng: R) -> Self {
        TrafficGenerator {
            fleet,
            rng,
            offsets: HashMap::new(),
            n_flows: 0,
        }
    }

    /// One flow, starting at `start_unix_nanos`. The first flows visit every origin once, so
    /// that even a short run shows all of them; after that, origins are picked by weight.
    pub fn flow(&mut self, start_unix_nanos: i64) -> Flow {
        let origins = self.fleet.origins;
        let origin = if self.n_flows < origins.len() {
            &origins[self.n_flows]
        } else {
            let total_weight: u32 = origins.iter().map(|origin| origin.weight).sum();
            let mut pick = self.rng.random_range(0..total_weight.max(1));
            origins
                .iter()
                .find(|origin| {
                    let found = pick < origin.weight;
                    pick = pick.saturating_sub(origin.weight);
                    found
                })
                .unwrap_or(&origins[0])
        };
        self.n_flows += 1;
        let service = self
            .fleet
            .service(origin.service)
            .expect("validated fleet: origin service");
        let event_type = self
            .fleet
            .event_type(origin.event_type)
            .expect("validated fleet: origin event type");
        let stream = self
            .fleet
            .stream(event_type.stream)
            .expect("validated fleet: event type stream");
        let event_id = self.event_id();
        let trace_id = self.hex_id::<16>();
        let region = REGIONS[self.rng.random_range(0..REGIONS.len())];
        let mut flow = Flow {
            spans: Vec::new(),
            seen: Vec::new(),
            n_events: 1,
            sampled: sample_bucket(&event_id) < origin.sample_percent,
            root_event_id: event_id.clone(),
            root_event_type: event_type.name,
            root_trace_id: trace_id.clone(),
            retried_event_ids: Vec::new(),
        };
        let request_span_id = self.hex_id::<8>();
        let replica = self.rng.random_range(0..service.replicas.max(1));
        let publish_start = start_unix_nanos + self.millis(1, 6);
        let publish_end = self.publish(
            &mut flow,
            service,
            replica,
            region,
            event_type,
            stream,
            event_id,
            (trace_id.clone(), Some(request_span_id.clone())),
            publish_start,
            0,
        );
        let request_end = publish_end + self.millis(1, 4);
        let (method, route) = origin
            .request
            .split_once(' ')
            .unwrap_or(("POST", origin.request));
        let mut attributes = Map::new();
        attributes.insert("http.request.method".into(), json!(method));
        attributes.insert("http.route".into(), json!(route));
        attributes.insert(
            "http.response.status_code".into(),
            json!(if method == "POST" { 201 } else { 200 }),
        );
        attributes.insert("cloud.region".into(), json!(region));
        let request = SpanRecord {
            trace_id,
            span_id: request_span_id,
            parent_span_id: None,
            name: origin.request.to_string(),
            kind: "server",
            service: service.name,
            resource: self.resource(service, replica),
            start_time_unix_nano: start_unix_nanos,
            duration_nano: request_end - start_unix_nanos,
            status: StatusRecord {
                code: "ok",
                message: None,
            },
            attributes,
            links: Vec::new(),
            event_id: None,
            event_type: None,
            schema: None,
            stream: None,
            broker: None,
            modified: false,
            partition: None,
            offset: None,
            message_id: None,
        };
        flow.spans.insert(0, request);
        if !flow.sampled {
            flow.spans.clear();
        }
        flow
    }

    /// Publishes one event (a producer span) and lets its subscribers consume it; returns the
    /// end of the producer span. `context` is the trace id and the parent span id.
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &mut self,
        flow: &mut Flow,
        service: &'static Service,
        replica: u32,
        region: &'static str,
        event_type: &'static EventType,
        stream: &'static Stream,
        event_id: String,
        context: (String, Option<String>),
        start_unix_nanos: i64,
        depth: usize,
    ) -> i64 {
        let (trace_id, parent_span_id) = context;
        let duration = self.rng.random_range(200_000..3_000_000);
        let (partition, offset, message_id) = self.position(stream, &event_id);
        let span_id = self.hex_id::<8>();
        flow.spans.push(SpanRecord {
            trace_id: trace_id.clone(),
            span_id: span_id.clone(),
            parent_span_id,
            name: format!("publish {}", stream.name),
            kind: "producer",
            service: service.name,
            resource: self.resource(service, replica),
            start_time_unix_nano: start_unix_nanos,
            duration_nano: duration,
            status: StatusRecord {
                code: "ok",
                message: None,
            },
            attributes: messaging_attributes(stream, "send", region),
            links: Vec::new(),
            event_id: Some(event_id.clone()),
            event_type: Some(event_type.name),
            schema: Some(event_type.schema),
            stream: Some(stream.name),
            broker: Some(stream.broker.as_str()),
            modified: false,
            partition,
            offset,
            message_id,
        });
        flow.seen.push(Seen {
            service,
            event_type: event_type.name,
            stream,
            action: Action::Produced,
            unix_nanos: start_unix_nanos,
        });
        let published = Published {
            trace_id,
            span_id,
            end_unix_nanos: start_unix_nanos + duration,
            event_id,
            event_type,
            stream,
            partition,
            offset,
        };
        if depth < MAX_DEPTH {
            let fleet = self.fleet;
            for subscription in fleet.subscribers(event_type.name, stream.name) {
                self.consume(flow, subscription, region, &published, depth + 1);
            }
        }
        published.end_unix_nanos
    }

    /// One subscriber consuming a published event: failed attempts, the successful one, and
    /// what it publishes as a result.
    fn consume(
        &mut self,
        flow: &mut Flow,
        subscription: &'static Subscription,
        region: &'static str,
        published: &Published,
        depth: usize,
    ) {
        let service = self
            .fleet
            .service(subscription.service)
            .expect("validated fleet: subscriber");
        let (trace_id, parent_span_id, links) = match subscription.trace {
            TraceContinuation::Continue => (
                published.trace_id.clone(),
                Some(published.span_id.clone()),
                Vec::new(),
            ),
            TraceContinuation::NewTraceWithLink => {
                let mut attributes = Map::new();
                attributes.insert("link.reason".into(), json!("batch"));
                let link = LinkRecord {
                    trace_id: published.trace_id.clone(),
                    span_id: published.span_id.clone(),
                    attributes,
                };
                (self.hex_id::<16>(), None, vec![link])
            }
        };
        let replica = self.rng.random_range(0..service.replicas.max(1));
        // Usually a few milliseconds behind the producer; now and then a lag spike.
        let lag = if self.rng.random_bool(0.02) {
            self.millis(200, 1500)
        } else {
            self.millis(1, 40)
        };
        let mut start = published.end_unix_nanos + lag;
        for attempt in 1..=MAX_ATTEMPTS {
            let duration = self.millis(
                service.handling_ms.0,
                service.handling_ms.1.max(service.handling_ms.0 + 1),
            );
            let failed = attempt < MAX_ATTEMPTS
                && self.rng.random_range(0..100) < subscription.failure_percent;
            let span_id = self.hex_id::<8>();
            let mut attributes = messaging_attributes(published.stream, "process", region);
            attributes.insert("messaging.consumer.group.name".into(), json!(service.name));
            attributes.insert("retry.attempt".into(), json!(attempt));
            let status = if failed {
                let message = FAILURES[self.rng.random_range(0..FAILURES.len())];
                StatusRecord {
                    code: "error",
                    message: Some(message.to_string()),
                }
            } else {
                StatusRecord {
                    code: "ok",
                    message: None,
                }
            };
            flow.spans.push(SpanRecord {
                trace_id: trace_id.clone(),
                span_id: span_id.clone(),
                parent_span_id: parent_span_id.clone(),
                name: format!("process {}", published.stream.name),
                kind: "consumer",
                service: service.name,
                resource: self.resource(service, replica),
                start_time_unix_nano: start,
                duration_nano: duration,
                status,
                attributes,
                links: links.clone(),
                event_id: Some(published.event_id.clone()),
                event_type: Some(published.event_type.name),
                schema: Some(published.event_type.schema),
                stream: Some(published.stream.name),
                broker: Some(published.stream.broker.as_str()),
                modified: !failed && subscription.handling == Handling::Modifies,
                partition: published.partition,
                offset: published.offset,
                message_id: published.stream_message_id(),
            });
            flow.seen.push(Seen {
                service,
                event_type: published.event_type.name,
                stream: published.stream,
                action: Action::Consumed,
                unix_nanos: start,
            });
            if failed {
                if !flow.retried_event_ids.contains(&published.event_id) {
                    flow.retried_event_ids.push(published.event_id.clone());
                }
                // Exponential back-off with jitter before the next attempt.
                start += duration + self.millis(100, 200) * (1 << (attempt - 1));
                continue;
            }
            let context = (trace_id.clone(), Some(span_id));
            match subscription.handling {
                Handling::Ferries { to_stream } => {
                    let to_stream = self
                        .fleet
                        .stream(to_stream)
                        .expect("validated fleet: ferry target");
                    let publish_start = start + duration / 2;
                    self.publish(
                        flow,
                        service,
                        replica,
                        region,
                        published.event_type,
                        to_stream,
                        published.event_id.clone(),
                        context,
                        publish_start,
                        depth,
                    );
                }
                Handling::Reads | Handling::Modifies => {
                    let total_weight: u32 = subscription
                        .outcomes
                        .iter()
                        .map(|outcome| outcome.weight)
                        .sum();
                    if total_weight == 0 {
                        break;
                    }
                    let mut pick = self.rng.random_range(0..total_weight);
                    let outcome = subscription.outcomes.iter().find(|outcome| {
                        let found = pick < outcome.weight;
                        pick = pick.saturating_sub(outcome.weight);
                        found
                    });
                    for event_type_name in outcome.map_or(&[][..], |outcome| outcome.publishes) {
                        let event_type = self
                            .fleet
                            .event_type(event_type_name)
                            .expect("validated fleet: outcome type");
                        let stream = self
                            .fleet
                            .stream(event_type.stream)
                            .expect("validated fleet: outcome stream");
                        let publish_start =
                            start + duration / 2 + self.rng.random_range(0..duration / 3 + 1);
                        let event_id = self.event_id();
                        flow.n_events += 1;
                        self.publish(
                            flow,
                            service,
                            replica,
                            region,
                            event_type,
                            stream,
                            event_id,
                            context.clone(),
                            publish_start,
                            depth,
                        );
                    }
                }
            }
            break;
        }
    }

    /// Kafka: a partition from the event id and the partition's next offset. NATS: the event id
    /// as the JetStream message id (used for de-duplication).
    fn position(
        &mut self,
        stream: &'static Stream,
        event_id: &str,
    ) -> (Option<u32>, Option<i64>, Option<String>) {
        if stream.broker != Broker::Kafka || stream.partitions == 0 {
            return (None, None, Some(event_id.to_string()));
        }
        let partition = sample_bucket_of(event_id, stream.partitions);
        let start_offset = self.rng.random_range(1_000..1_000_000);
        let offset = self
            .offsets
            .entry((stream.name, partition))
            .or_insert(start_offset);
        *offset += 1;
        (Some(partition), Some(*offset), None)
    }

    fn resource(&self, service: &Service, replica: u32) -> Map<String, Value> {
        let service_idx = self
            .fleet
            .services
            .iter()
            .position(|other| other.name == service.name)
            .unwrap_or(0);
        let mut resource = Map::new();
        resource.insert(
            "host.name".into(),
            json!(format!("ip-10-0-{}-{}", service_idx + 1, replica + 11)),
        );
        resource.insert("service.version".into(), json!(service.version));
        resource.insert(
            "service.instance.id".into(),
            json!(format!("{}-{}", service.name, replica)),
        );
        resource.insert("deployment.environment.name".into(), json!("demo"));
        resource
    }

    fn millis(&mut self, low: u32, high: u32) -> i64 {
        self.rng.random_range(
            i64::from(low) * NANOS_PER_MILLI..i64::from(high.max(low + 1)) * NANOS_PER_MILLI,
        )
    }

    /// A UUIDv4 from this generator's random source.
    fn event_id(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string()
    }

    /// A random non-zero id of `N` bytes, as lowercase hex (trace ids: 16, span ids: 8).
    fn hex_id<const N: usize>(&mut self) -> String {
        let mut bytes: [u8; N] = self.rng.random();
        if bytes.iter().all(|byte| *byte == 0) {
            bytes[N - 1] = 1;
        }
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl Published {
    fn stream_message_id(&self) -> Option<String> {
        self.offset.is_none().then(|| self.event_id.clone())
    }
}

fn messaging_attributes(stream: &Stream, operation: &str, region: &str) -> Map<String, Value> {
    let mut attributes = Map::new();
    attributes.insert("messaging.system".into(), json!(stream.broker.as_str()));
    attributes.insert("messaging.operation.type".into(), json!(operation));
    attributes.insert("messaging.destination.name".into(), json!(stream.name));
    attributes.insert("cloud.region".into(), json!(region));
    attributes
}

/// FNV-1a of the event id, modulo `buckets`: the same event id always lands in the same bucket.
fn sample_bucket_of(event_id: &str, buckets: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in event_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(buckets.max(1))) as u32
}

/// Consistent head sampling as Heimdall does it: `hash(event_id) % 100 < rate`.
fn sample_bucket(event_id: &str) -> u32 {
    sample_bucket_of(event_id, 100)
}

/// Per-minute "event seen" counts of the services that send them, kept until posted.
#[derive(Debug, Default)]
pub struct MinuteCounts {
    cells: BTreeMap<
        (
            i64,
            &'static str,
            &'static str,
            &'static str,
            Broker,
            Action,
        ),
        u64,
    >,
}

impl MinuteCounts {
    /// Counts what the flow's counting services saw.
    pub fn add(&mut self, flow: &Flow) {
        for seen in flow.seen.iter().filter(|seen| seen.service.sends_counts) {
            let minute = seen.unix_nanos.div_euclid(60 * 1_000_000_000) * 60;
            let key = (
                minute,
                seen.service.name,
                seen.event_type,
                seen.stream.name,
                seen.stream.broker,
                seen.action,
            );
            *self.cells.entry(key).or_insert(0) += 1;
        }
    }

    /// Removes and returns the counts of minutes that start before `before_unix_seconds`.
    pub fn take_before(&mut self, before_unix_seconds: i64) -> Vec<CountRecord> {
        let later = self.cells.split_off(&(
            before_unix_seconds,
            "",
            "",
            "",
            Broker::Kafka,
            Action::Produced,
        ));
        let done = std::mem::replace(&mut self.cells, later);
        done.into_iter()
            .map(
                |((minute, service, event_type, stream, broker, action), count)| CountRecord {
                    service,
                    event_type,
                    stream,
                    broker: broker.as_str(),
                    action: action.as_str(),
                    minute,
                    count,
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::super::fleet::DEMO_FLEET;
    use super::*;

    const START: i64 = 1_795_000_000_000_000_000;

    fn flows(n_flows: usize) -> Vec<Flow> {
        let mut generator = TrafficGenerator::new(DEMO_FLEET, StdRng::seed_from_u64(7));
        (0..n_flows)
            .map(|flow_idx| generator.flow(START + flow_idx as i64 * 5_000_000))
            .collect()
    }

    fn spans(flows: &[Flow]) -> Vec<&SpanRecord> {
        flows.iter().flat_map(|flow| &flow.spans).collect()
    }

    #[test]
    fn every_span_is_accepted_by_the_native_decoder() {
        let flows = flows(300);
        let body = serde_json::to_vec(&spans(&flows)).unwrap();
        let decoded =
            muninn_ingest::decode_spans(&body, &muninn_model::Limits::default(), START).unwrap();
        assert_eq!(decoded.rejected, Vec::new());
        assert_eq!(decoded.records.len(), spans(&flows).len());
        let mut counts = MinuteCounts::default();
        flows.iter().for_each(|flow| counts.add(flow));
        let body = serde_json::to_vec(&counts.take_before(i64::MAX)).unwrap();
        let decoded =
            muninn_ingest::decode_counts(&body, &muninn_model::Limits::default(), START).unwrap();
        assert_eq!(decoded.rejected, Vec::new());
        assert!(!decoded.records.is_empty());
    }

    #[test]
    fn n_events_counts_the_distinct_events_published() {
        for flow in flows(100).iter().filter(|flow| flow.sampled) {
            let mut event_ids: Vec<&str> = flow
                .spans
                .iter()
                .filter(|span| span.kind == "producer")
                .filter_map(|span| span.event_id.as_deref())
                .collect();
            event_ids.sort_unstable();
            event_ids.dedup();
            assert_eq!(flow.n_events, event_ids.len());
        }
    }

    #[test]
    fn event_ids_are_uuid_v4() {
        for flow in flows(20) {
            let parsed = uuid::Uuid::parse_str(&flow.root_event_id).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
        }
    }

    #[test]
    fn fan_out_reaches_three_consumers_in_one_trace() {
        let flows = flows(50);
        let flow = flows
            .iter()
            .find(|flow| flow.sampled && flow.root_event_type == "order.placed")
            .unwrap();
        let mut consumers: Vec<&str> = flow
            .spans
            .iter()
            .filter(|span| {
                span.kind == "consumer" && span.event_id.as_deref() == Some(&flow.root_event_id)
            })
            .map(|span| span.service)
            .collect();
        consumers.sort_unstable();
        assert_eq!(consumers, ["analytics", "fraud-detection", "order-router"]);
    }

    #[test]
    fn a_modifying_consumer_publishes_a_new_event_in_the_same_trace() {
        let flows = flows(50);
        let all = spans(&flows);
        let modifier = all
            .iter()
            .find(|span| span.kind == "consumer" && span.modified)
            .unwrap();
        assert_eq!(
            (modifier.service, modifier.event_type),
            ("order-router", Some("order.placed"))
        );
        let republished = all
            .iter()
            .find(|span| {
                span.kind == "producer" && span.parent_span_id.as_deref() == Some(&modifier.span_id)
            })
            .unwrap();
        assert_eq!(republished.trace_id, modifier.trace_id);
        assert_eq!(republished.event_type, Some("order.routed"));
        assert_ne!(republished.event_id, modifier.event_id);
    }

    #[test]
    fn a_ferry_republishes_the_same_event_on_another_stream() {
        let flows = flows(200);
        let all = spans(&flows);
        let ferried = all
            .iter()
            .find(|span| span.kind == "producer" && span.service == "audit-log")
            .expect("audit-log ferried something");
        let consumed = all
            .iter()
            .find(|span| Some(&span.span_id) == ferried.parent_span_id.as_ref())
            .unwrap();
        assert_eq!(consumed.service, "audit-log");
        assert_eq!(
            (consumed.event_id.as_ref(), consumed.event_type),
            (ferried.event_id.as_ref(), ferried.event_type)
        );
        assert!(!consumed.modified);
        assert_ne!(consumed.stream, ferried.stream);
        assert_eq!(ferried.stream, Some("audit.events"));
    }

    #[test]
    fn a_failed_consume_is_followed_by_a_retry_of_the_same_event() {
        let flows = flows(300);
        let all = spans(&flows);
        let failed = all
            .iter()
            .find(|span| span.status.code == "error")
            .expect("some attempt failed");
        assert_eq!(failed.kind, "consumer");
        let retry = all
            .iter()
            .find(|span| {
                span.service == failed.service
                    && span.event_id == failed.event_id
                    && span.start_time_unix_nano > failed.start_time_unix_nano
            })
            .expect("a retry");
        assert_eq!(retry.attributes["retry.attempt"], json!(2));
        assert!(flows.iter().any(|flow| {
            flow.retried_event_ids
                .contains(failed.event_id.as_ref().unwrap())
        }));
    }

    #[test]
    fn a_batch_consumer_starts_a_new_trace_linked_to_the_producer() {
        let flows = flows(50);
        let all = spans(&flows);
        let consumer = all
            .iter()
            .find(|span| span.service == "fraud-detection" && span.kind == "consumer")
            .unwrap();
        assert_eq!(consumer.parent_span_id, None);
        let link = &consumer.links[0];
        let producer = all
            .iter()
            .find(|span| span.span_id == link.span_id)
            .unwrap();
        assert_eq!(producer.trace_id, link.trace_id);
        assert_ne!(consumer.trace_id, producer.trace_id);
        assert_eq!(consumer.event_id, producer.event_id);
        let scored = all
            .iter()
            .find(|span| {
                span.kind == "producer" && span.parent_span_id.as_deref() == Some(&consumer.span_id)
            })
            .unwrap();
        assert_eq!(scored.trace_id, consumer.trace_id);
    }

    #[test]
    fn unsampled_flows_send_no_spans_but_are_still_counted() {
        let flows = flows(300);
        let dropped: Vec<&Flow> = flows.iter().filter(|flow| !flow.sampled).collect();
        assert!(!dropped.is_empty());
        assert!(
            dropped
                .iter()
                .all(|flow| flow.spans.is_empty() && flow.root_event_type == "cart.abandoned")
        );
        let mut counts = MinuteCounts::default();
        dropped.iter().for_each(|flow| counts.add(flow));
        let checkout_produced: u64 = counts
            .take_before(i64::MAX)
            .iter()
            .filter(|count| count.service == "checkout" && count.action == "produced")
            .map(|count| count.count)
            .sum();
        assert_eq!(checkout_produced, dropped.len() as u64);
    }

    #[test]
    fn counts_are_handed_out_once_per_minute() {
        let mut counts = MinuteCounts::default();
        for flow in flows(10) {
            counts.add(&flow);
        }
        let minute = START / 1_000_000_000 / 60 * 60;
        assert!(counts.take_before(minute).is_empty());
        let first = counts.take_before(minute + 60);
        assert!(!first.is_empty());
        assert!(first.iter().all(|count| count.minute == minute));
        assert!(counts.take_before(minute + 60).is_empty());
    }
}
