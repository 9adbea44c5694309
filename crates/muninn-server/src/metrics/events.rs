//! The event metrics of `/metrics`, read from the roll-ups at each scrape: per lineage edge the
//! events counted since the server started, and when each edge and each schema was first seen
//! in the retained data, so that alerts on throughput, new producers and new schemas need no
//! second metrics pipeline (docs/metrics.md).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use muninn_store::{RollupEdge, Store};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Labels;

/// (event type, schema, service, action) of a schema's first-seen gauge.
type SchemaUse = (String, String, String, muninn_model::Action);

/// The event metrics as they are now, in a registry of their own: its series come and go with
/// the roll-ups, so it is built afresh for each scrape rather than kept.
pub(super) fn registry(store: &Store) -> Registry {
    let mut counted: Vec<(RollupEdge, u64)> = Vec::new();
    let mut edge_first_seen: BTreeMap<RollupEdge, i64> = BTreeMap::new();
    let mut schema_first_seen: BTreeMap<SchemaUse, i64> = BTreeMap::new();
    // Copy out under the read lock, which the WAL thread waits for; build the families after.
    store.with_rollups(|rollups| {
        rollups.edge_counters(|edge, events| counted.push((edge.clone(), events)));
        rollups.keys(|key, total| {
            let first = edge_first_seen
                .entry(RollupEdge::from(key))
                .or_insert(i64::MAX);
            *first = (*first).min(total.first_unix_nanos);
            if !key.schema.is_empty() {
                let schema_use = (
                    key.event_type.to_string(),
                    key.schema.to_string(),
                    key.service.to_string(),
                    key.action,
                );
                let first = schema_first_seen.entry(schema_use).or_insert(i64::MAX);
                *first = (*first).min(total.first_unix_nanos);
            }
        });
    });

    let events = Family::<Labels, Counter>::default();
    for (edge, n_events) in &counted {
        events.get_or_create(&edge_labels(edge)).inc_by(*n_events);
    }
    let edges = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (edge, first_unix_nanos) in &edge_first_seen {
        edges
            .get_or_create(&edge_labels(edge))
            .set(unix_seconds(*first_unix_nanos));
    }
    let schemas = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for ((event_type, schema, service, action), first_unix_nanos) in &schema_first_seen {
        let labels = vec![
            ("event_type".into(), event_type.clone()),
            ("schema".into(), schema.clone()),
            ("service".into(), service.clone()),
            ("action".into(), action.as_str().into()),
        ];
        schemas
            .get_or_create(&labels)
            .set(unix_seconds(*first_unix_nanos));
    }

    let mut registry = Registry::with_prefix("muninn");
    registry.register(
        "events",
        "Events per lineage edge counted since the server started: each minute of data counts \
         max(spans received, events the service counted), as in lineage and throughput, \
         added as the data arrives",
        events,
    );
    registry.register(
        "event_edge_first_seen_timestamp_seconds",
        "Time of the earliest retained event of each lineage edge (a service producing or \
         consuming an event type on a stream)",
        edges,
    );
    registry.register(
        "event_schema_first_seen_timestamp_seconds",
        "Time of the earliest retained span of each event type and schema, per service and action",
        schemas,
    );
    registry
}

fn edge_labels(edge: &RollupEdge) -> Labels {
    vec![
        ("event_type".into(), edge.event_type.to_string()),
        ("action".into(), edge.action.as_str().into()),
        ("stream".into(), edge.stream.to_string()),
        ("broker".into(), edge.broker.as_str().into()),
        ("service".into(), edge.service.to_string()),
    ]
}

/// Whole seconds exactly, then the fraction (a float holds no more than microseconds here).
fn unix_seconds(unix_nanos: i64) -> f64 {
    let nanos_per_second = muninn_model::NANOS_PER_SECOND;
    unix_nanos.div_euclid(nanos_per_second) as f64
        + unix_nanos.rem_euclid(nanos_per_second) as f64 / nanos_per_second as f64
}
