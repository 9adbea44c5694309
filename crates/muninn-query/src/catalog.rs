//! The catalog questions, all from roll-up edges: which event types exist and who produces and
//! consumes them, which streams carry what, and what each service does.

use std::collections::{BTreeMap, BTreeSet};

use muninn_model::{Action, format_rfc3339_nanos};
use muninn_store::Store;
use serde::Serialize;

use crate::edges::{EdgeKey, EdgeTotals, TimeRange, edge_totals};

#[derive(Default)]
struct Span {
    first: Option<i64>,
    last: Option<i64>,
}

impl Span {
    fn add(&mut self, totals: &EdgeTotals) {
        self.first = Some(self.first.map_or(totals.first_unix_nanos, |first| {
            first.min(totals.first_unix_nanos)
        }));
        self.last = Some(self.last.map_or(totals.last_unix_nanos, |last| {
            last.max(totals.last_unix_nanos)
        }));
    }
    fn first(&self) -> String {
        format_rfc3339_nanos(self.first.unwrap_or_default())
    }
    fn last(&self) -> String {
        format_rfc3339_nanos(self.last.unwrap_or_default())
    }
}

/// One event type in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventTypeSummary {
    pub event_type: String,
    /// Events produced (the `count` of the catalog).
    pub count: u64,
    pub consumed: u64,
    pub producers: Vec<String>,
    pub consumers: Vec<String>,
    /// Streams as `broker/stream`.
    pub streams: Vec<String>,
    pub schemas: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
}

/// The catalog of event types.
pub fn event_types(store: &Store, range: TimeRange) -> Vec<EventTypeSummary> {
    #[derive(Default)]
    struct Acc {
        count: u64,
        consumed: u64,
        producers: BTreeSet<String>,
        consumers: BTreeSet<String>,
        streams: BTreeSet<String>,
        schemas: BTreeSet<String>,
        seen: Span,
    }
    let mut by_type: BTreeMap<String, Acc> = BTreeMap::new();
    for (edge, totals) in edge_totals(store, range) {
        let acc = by_type.entry(edge.event_type.clone()).or_default();
        match edge.action {
            Action::Produced => {
                acc.count += totals.count;
                acc.producers.insert(edge.service.clone());
            }
            Action::Consumed => {
                acc.consumed += totals.count;
                acc.consumers.insert(edge.service.clone());
            }
        }
        acc.streams
            .insert(format!("{}/{}", edge.broker.as_str(), edge.stream));
        acc.schemas.extend(totals.schemas.iter().cloned());
        acc.seen.add(&totals);
    }
    by_type
        .into_iter()
        .map(|(event_type, acc)| EventTypeSummary {
            event_type,
            count: acc.count,
            consumed: acc.consumed,
            producers: acc.producers.into_iter().collect(),
            consumers: acc.consumers.into_iter().collect(),
            streams: acc.streams.into_iter().collect(),
            schemas: acc.schemas.into_iter().collect(),
            first_seen: acc.seen.first(),
            last_seen: acc.seen.last(),
        })
        .collect()
}

/// A producer or consumer of one event type on one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    pub service: String,
    pub stream: String,
    pub broker: &'static str,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// Consumers only: whether this consumer changed the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modifies: Option<bool>,
    pub schemas: Vec<String>,
}

/// Producers (`Action::Produced`) or consumers of an event type.
pub fn participants(
    store: &Store,
    range: TimeRange,
    event_type: &str,
    action: Action,
) -> Vec<Participant> {
    edge_totals(store, range)
        .into_iter()
        .filter(|(edge, _)| edge.event_type == event_type && edge.action == action)
        .map(|(edge, totals)| Participant {
            service: edge.service,
            stream: edge.stream,
            broker: edge.broker.as_str(),
            count: totals.count,
            first_seen: format_rfc3339_nanos(totals.first_unix_nanos),
            last_seen: format_rfc3339_nanos(totals.last_unix_nanos),
            modifies: (action == Action::Consumed).then_some(totals.modifies),
            schemas: totals.schemas.into_iter().collect(),
        })
        .collect()
}

/// One stream: its broker, event types and who writes and reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    pub stream: String,
    pub broker: &'static str,
    pub event_types: Vec<String>,
    pub producers: Vec<String>,
    pub consumers: Vec<String>,
    pub produced: u64,
    pub consumed: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// The streams (a stream is a name on a broker).
pub fn streams(store: &Store, range: TimeRange) -> Vec<StreamSummary> {
    #[derive(Default)]
    struct Acc {
        event_types: BTreeSet<String>,
        producers: BTreeSet<String>,
        consumers: BTreeSet<String>,
        produced: u64,
        consumed: u64,
        seen: Span,
    }
    let mut by_stream: BTreeMap<(String, muninn_model::Broker), Acc> = BTreeMap::new();
    for (edge, totals) in edge_totals(store, range) {
        let acc = by_stream
            .entry((edge.stream.clone(), edge.broker))
            .or_default();
        acc.event_types.insert(edge.event_type.clone());
        match edge.action {
            Action::Produced => {
                acc.producers.insert(edge.service.clone());
                acc.produced += totals.count;
            }
            Action::Consumed => {
                acc.consumers.insert(edge.service.clone());
                acc.consumed += totals.count;
            }
        }
        acc.seen.add(&totals);
    }
    by_stream
        .into_iter()
        .map(|((stream, broker), acc)| StreamSummary {
            stream,
            broker: broker.as_str(),
            event_types: acc.event_types.into_iter().collect(),
            producers: acc.producers.into_iter().collect(),
            consumers: acc.consumers.into_iter().collect(),
            produced: acc.produced,
            consumed: acc.consumed,
            first_seen: acc.seen.first(),
            last_seen: acc.seen.last(),
        })
        .collect()
}

/// One thing a service produces or consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceFlow {
    pub event_type: String,
    pub stream: String,
    pub broker: &'static str,
    pub count: u64,
    /// Consumed flows only: whether the service changes the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modifies: Option<bool>,
}

/// What a service produces and consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSummary {
    pub service: String,
    pub produces: Vec<ServiceFlow>,
    pub consumes: Vec<ServiceFlow>,
}

/// Every service seen producing or consuming events.
pub fn services(store: &Store, range: TimeRange) -> Vec<ServiceSummary> {
    let mut by_service: BTreeMap<String, ServiceSummary> = BTreeMap::new();
    for (edge, totals) in edge_totals(store, range) {
        let EdgeKey {
            service,
            action,
            stream,
            broker,
            event_type,
        } = edge;
        let summary = by_service
            .entry(service.clone())
            .or_insert_with(|| ServiceSummary {
                service,
                produces: Vec::new(),
                consumes: Vec::new(),
            });
        let flow = ServiceFlow {
            event_type,
            stream,
            broker: broker.as_str(),
            count: totals.count,
            modifies: (action == Action::Consumed).then_some(totals.modifies),
        };
        match action {
            Action::Produced => summary.produces.push(flow),
            Action::Consumed => summary.consumes.push(flow),
        }
    }
    for summary in by_service.values_mut() {
        for flows in [&mut summary.produces, &mut summary.consumes] {
            flows.sort_by(|left, right| {
                (&left.event_type, &left.stream, left.broker).cmp(&(
                    &right.event_type,
                    &right.stream,
                    right.broker,
                ))
            });
        }
    }
    by_service.into_values().collect()
}
