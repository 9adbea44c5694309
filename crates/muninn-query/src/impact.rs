//! Who a schema change of one event type reaches, over everything retained: every consumer,
//! directly and through services that consume the type and publish it again (the downstream
//! graph, walked stream by stream from the producers that do not consume it), split into the
//! modifying consumers, which must redeploy before the new schema ships (they write the
//! payload back and would drop what they do not know), and the read-only ones.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use muninn_model::{Action, format_rfc3339_nanos};
use muninn_store::Store;
use serde::Serialize;

use crate::schemas::{retained_keys, type_is_known};

/// A producer of the type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImpactProducer {
    pub service: String,
    /// Streams as `broker/stream`.
    pub streams: Vec<String>,
    /// The schema of its most recent span (empty when its spans name none).
    pub current_schema: String,
    /// Whether it also consumes the type (it re-publishes what it consumed).
    pub republishes: bool,
}

/// A consumer of the type, with what a schema change means for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImpactConsumer {
    pub service: String,
    /// 1 for consumers of the original producers' streams; n + 1 for consumers of what a
    /// depth-n consumer published again.
    pub depth: u32,
    /// The re-publishing consumers between the original producers and this one, in order.
    pub via: Vec<String>,
    /// Streams it consumes the type from, as `broker/stream`.
    pub streams: Vec<String>,
    pub modifies: bool,
    /// Streams it publishes the type to again (so its own consumers are reached through it).
    pub republishes_to: Vec<String>,
    /// Events of the type it consumed: the larger of its spans and its own counts, retained.
    pub events: u64,
    pub last_seen: String,
    /// The schema named by its most recent consumer span of the type (`None` when none did).
    pub last_schema: Option<String>,
    /// Every schema it has handled.
    pub schemas: Vec<String>,
    /// With `?schema=`: whether it has already handled that schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled_schema: Option<bool>,
}

/// `GET /api/v1/event-types/{type}/impact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub event_type: String,
    /// The schema about to ship, when asked about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub producers: Vec<ImpactProducer>,
    /// Modifying consumers: they must redeploy (to handle the new schema) before it ships.
    pub must_redeploy: Vec<ImpactConsumer>,
    /// Consumers that only read the payload.
    pub read_only: Vec<ImpactConsumer>,
    /// Every stream the type flows through, as `broker/stream`.
    pub streams: Vec<String>,
}

#[derive(Default)]
struct Side {
    streams: BTreeSet<String>,
    modifies: bool,
    schemas: BTreeSet<String>,
    spans: u64,
    seen: u64,
    last: Option<(i64, String)>,
    last_seen: i64,
}

/// The impact of a schema change of `event_type`; `None` when the type is unknown.
pub fn impact(store: &Store, event_type: &str, schema: Option<&str>) -> Option<Impact> {
    if !type_is_known(store, event_type) {
        return None;
    }
    let mut producers: BTreeMap<String, Side> = BTreeMap::new();
    let mut consumers: BTreeMap<String, Side> = BTreeMap::new();
    for (key, total) in retained_keys(store, |key| key.event_type == event_type) {
        let side = match key.action {
            Action::Produced => producers.entry(key.service.to_string()).or_default(),
            Action::Consumed => consumers.entry(key.service.to_string()).or_default(),
        };
        side.streams
            .insert(format!("{}/{}", key.broker.as_str(), key.stream));
        side.modifies |= key.modified;
        side.spans += total.spans;
        side.seen += total.seen;
        side.last_seen = side.last_seen.max(total.last_unix_nanos);
        if !key.schema.is_empty() && total.spans > 0 {
            side.schemas.insert(key.schema.to_string());
            let candidate = (total.last_unix_nanos, key.schema.to_string());
            if side.last.as_ref().is_none_or(|last| candidate > *last) {
                side.last = Some(candidate);
            }
        }
    }

    // Walk the streams from the producers that do not consume the type themselves (all of
    // them when every producer also consumes it: a cycle has no better start).
    let mut origins: Vec<&String> = producers
        .keys()
        .filter(|service| !consumers.contains_key(*service))
        .collect();
    if origins.is_empty() {
        origins = producers.keys().collect();
    }
    let mut stream_reached: BTreeMap<&str, (u32, Vec<String>)> = BTreeMap::new();
    let mut queue = VecDeque::new();
    for origin in origins {
        for stream in &producers[origin].streams {
            if !stream_reached.contains_key(stream.as_str()) {
                stream_reached.insert(stream, (1, Vec::new()));
                queue.push_back(stream.as_str());
            }
        }
    }
    let mut consumer_reached: BTreeMap<&str, (u32, Vec<String>)> = BTreeMap::new();
    while let Some(stream) = queue.pop_front() {
        let (depth, via) = stream_reached[stream].clone();
        for (service, side) in &consumers {
            if consumer_reached.contains_key(service.as_str()) || !side.streams.contains(stream) {
                continue;
            }
            consumer_reached.insert(service, (depth, via.clone()));
            let Some(published) = producers.get(service) else {
                continue;
            };
            let mut next_via = via.clone();
            next_via.push(service.clone());
            for next in &published.streams {
                if !stream_reached.contains_key(next.as_str()) {
                    stream_reached.insert(next, (depth + 1, next_via.clone()));
                    queue.push_back(next.as_str());
                }
            }
        }
    }

    let mut must_redeploy = Vec::new();
    let mut read_only = Vec::new();
    for (service, side) in &consumers {
        // A consumer whose stream no seen producer writes (its producer sends no spans) is
        // still a direct consumer.
        let (depth, via) = consumer_reached
            .get(service.as_str())
            .cloned()
            .unwrap_or((1, Vec::new()));
        let consumer = ImpactConsumer {
            service: service.clone(),
            depth,
            via,
            streams: side.streams.iter().cloned().collect(),
            modifies: side.modifies,
            republishes_to: producers
                .get(service)
                .map(|published| published.streams.iter().cloned().collect())
                .unwrap_or_default(),
            events: side.spans.max(side.seen),
            last_seen: format_rfc3339_nanos(side.last_seen),
            last_schema: side.last.as_ref().map(|(_, schema)| schema.clone()),
            schemas: side.schemas.iter().cloned().collect(),
            handled_schema: schema.map(|schema| side.schemas.contains(schema)),
        };
        if side.modifies {
            must_redeploy.push(consumer);
        } else {
            read_only.push(consumer);
        }
    }
    for list in [&mut must_redeploy, &mut read_only] {
        list.sort_by(|left, right| (left.depth, &left.service).cmp(&(right.depth, &right.service)));
    }
    let streams: BTreeSet<String> = producers
        .values()
        .chain(consumers.values())
        .flat_map(|side| side.streams.iter().cloned())
        .collect();
    let producers = producers
        .iter()
        .map(|(service, side)| ImpactProducer {
            service: service.clone(),
            streams: side.streams.iter().cloned().collect(),
            current_schema: side
                .last
                .as_ref()
                .map(|(_, schema)| schema.clone())
                .unwrap_or_default(),
            republishes: consumers.contains_key(service),
        })
        .collect();
    Some(Impact {
        event_type: event_type.to_owned(),
        schema: schema.map(str::to_owned),
        producers,
        must_redeploy,
        read_only,
        streams: streams.into_iter().collect(),
    })
}
