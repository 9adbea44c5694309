//! The service dependency graph of the Jaeger and Zipkin APIs, from roll-ups (no batch job):
//! a producer service depends-on-links to each consumer service of the same stream, broker and
//! event type. With streams as nodes, the graph goes producer → `broker/stream` → consumer.

use std::collections::BTreeMap;

use muninn_model::Action;
use muninn_store::Store;

use crate::edges::{TimeRange, edge_totals};

/// One link of the graph: `parent` calls (sends events to) `child` `call_count` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

/// The dependency links in `range`, sorted by (parent, child).
///
/// Without streams, the events a consumer took from a stream (per event type) are shared
/// between that stream's producers of the event type in proportion to what each produced
/// (one producer gets them all). With streams, a producer → stream link counts the events
/// produced and a stream → consumer link the events consumed; stream nodes are named
/// `broker/stream`, like the catalog's streams.
pub fn dependencies(store: &Store, range: TimeRange, streams_as_nodes: bool) -> Vec<Dependency> {
    type StreamKey = (muninn_model::Broker, String, String);
    let mut producers: BTreeMap<StreamKey, Vec<(String, u64)>> = BTreeMap::new();
    let mut consumers: BTreeMap<StreamKey, Vec<(String, u64)>> = BTreeMap::new();
    for (edge, totals) in edge_totals(store, range) {
        let key = (edge.broker, edge.stream, edge.event_type);
        let side = match edge.action {
            Action::Produced => &mut producers,
            Action::Consumed => &mut consumers,
        };
        side.entry(key)
            .or_default()
            .push((edge.service, totals.count));
    }
    let mut links: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut add = |parent: &str, child: &str, count: u64| {
        if count > 0 {
            *links
                .entry((parent.to_string(), child.to_string()))
                .or_default() += count;
        }
    };
    if streams_as_nodes {
        for (side, is_producer) in [(&producers, true), (&consumers, false)] {
            for ((broker, stream, _), services) in side {
                let node = format!("{}/{stream}", broker.as_str());
                for (service, count) in services {
                    if is_producer {
                        add(service, &node, *count);
                    } else {
                        add(&node, service, *count);
                    }
                }
            }
        }
    } else {
        for (key, readers) in &consumers {
            let Some(writers) = producers.get(key) else {
                continue;
            };
            let produced: u64 = writers.iter().map(|(_, count)| count).sum();
            for (consumer, consumed) in readers {
                for (producer, count) in writers {
                    let share = if produced == 0 {
                        0
                    } else {
                        // Rounded to the nearest event; u128 cannot overflow here.
                        let numerator = u128::from(*consumed) * u128::from(*count);
                        u64::try_from((numerator + u128::from(produced) / 2) / u128::from(produced))
                            .unwrap_or(u64::MAX)
                    };
                    add(producer, consumer, share);
                }
            }
        }
    }
    links
        .into_iter()
        .map(|((parent, child), call_count)| Dependency {
            parent,
            child,
            call_count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_model::{Broker, EventCount, NANOS_PER_SECOND};
    use muninn_store::StoreConfig;

    fn count(service: &str, event_type: &str, action: Action, minute: i64, n: u64) -> EventCount {
        EventCount {
            service: service.to_string(),
            event_type: event_type.to_string(),
            stream: "orders".to_string(),
            broker: Broker::Kafka,
            action,
            minute_unix_seconds: minute,
            count: n,
        }
    }

    fn links(dependencies: Vec<Dependency>) -> Vec<(String, String, u64)> {
        dependencies
            .into_iter()
            .map(|link| (link.parent, link.child, link.call_count))
            .collect()
    }

    /// Two producers share one stream and event type: the consumer's events are shared in
    /// proportion (3:1); a second event type on the same stream is attributed to its own
    /// producer only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn consumed_events_are_shared_between_producers_in_proportion() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
        let minute = muninn_model::now_unix_nanos() / NANOS_PER_SECOND / 60 * 60 - 600;
        let counts = vec![
            count("web", "order.created", Action::Produced, minute, 30),
            count("mobile", "order.created", Action::Produced, minute, 10),
            count("billing", "order.created", Action::Consumed, minute, 8),
            count("returns", "order.returned", Action::Produced, minute, 5),
            count("billing", "order.returned", Action::Consumed, minute, 5),
        ];
        store.append(Vec::new(), counts).await.unwrap();
        let range = TimeRange {
            from_unix_nanos: (minute - 60) * NANOS_PER_SECOND,
            to_unix_nanos: (minute + 120) * NANOS_PER_SECOND,
        };
        let owned = |parent: &str, child: &str, n: u64| (parent.to_string(), child.to_string(), n);
        assert_eq!(
            links(dependencies(&store, range, false)),
            [
                owned("mobile", "billing", 2),
                owned("returns", "billing", 5),
                owned("web", "billing", 6),
            ]
        );
        assert_eq!(
            links(dependencies(&store, range, true)),
            [
                owned("kafka/orders", "billing", 13),
                owned("mobile", "kafka/orders", 10),
                owned("returns", "kafka/orders", 5),
                owned("web", "kafka/orders", 30),
            ]
        );
        // Outside the range, nothing.
        let earlier = TimeRange {
            from_unix_nanos: 0,
            to_unix_nanos: (minute - 60) * NANOS_PER_SECOND,
        };
        assert!(dependencies(&store, earlier, false).is_empty());
    }
}
