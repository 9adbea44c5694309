//! Unit tests of `fleet`.

use std::collections::BTreeSet;

use super::*;

#[test]
fn the_demo_fleet_is_consistent() {
    assert_eq!(DEMO_FLEET.validate(), Ok(()));
}

#[test]
fn the_demo_fleet_has_the_promised_size() {
    assert_eq!(DEMO_FLEET.services.len(), 12);
    assert_eq!(DEMO_FLEET.streams.len(), 8);
    assert_eq!(DEMO_FLEET.event_types.len(), 20);
    let brokers: BTreeSet<Broker> = DEMO_FLEET
        .streams
        .iter()
        .map(|stream| stream.broker)
        .collect();
    assert_eq!(brokers, BTreeSet::from([Broker::Kafka, Broker::Nats]));
    // Every service and event type takes part in some traffic.
    for service in DEMO_FLEET.services {
        let active = DEMO_FLEET
            .origins
            .iter()
            .any(|origin| origin.service == service.name)
            || DEMO_FLEET
                .subscriptions
                .iter()
                .any(|subscription| subscription.service == service.name);
        assert!(active, "{} does nothing", service.name);
    }
    for event_type in DEMO_FLEET.event_types {
        let published = DEMO_FLEET
            .origins
            .iter()
            .any(|origin| origin.event_type == event_type.name)
            || DEMO_FLEET
                .subscriptions
                .iter()
                .flat_map(|subscription| subscription.outcomes)
                .any(|outcome| outcome.publishes.contains(&event_type.name));
        assert!(published, "nothing publishes {}", event_type.name);
    }
}

#[test]
fn the_demo_fleet_has_every_required_pattern() {
    let subscriptions = DEMO_FLEET.subscriptions;
    let fan_out = DEMO_FLEET.event_types.iter().any(|event_type| {
        subscriptions
            .iter()
            .filter(|subscription| subscription.event_type == event_type.name)
            .count()
            >= 3
    });
    assert!(fan_out, "an event type consumed by three services");
    assert!(
        subscriptions
            .iter()
            .any(|subscription| subscription.handling == Handling::Modifies)
    );
    let ferry_services: BTreeSet<&str> = subscriptions
        .iter()
        .filter(|subscription| matches!(subscription.handling, Handling::Ferries { .. }))
        .map(|subscription| subscription.service)
        .collect();
    assert!(!ferry_services.is_empty());
    for service in ferry_services {
        let only_ferries = subscriptions
            .iter()
            .filter(|subscription| subscription.service == service)
            .all(|subscription| matches!(subscription.handling, Handling::Ferries { .. }));
        assert!(only_ferries, "{service} should only ferry");
        assert!(
            DEMO_FLEET
                .origins
                .iter()
                .all(|origin| origin.service != service)
        );
    }
    assert!(
        subscriptions
            .iter()
            .any(|subscription| subscription.failure_percent > 0)
    );
    assert!(
        subscriptions
            .iter()
            .any(|subscription| subscription.trace == TraceContinuation::NewTraceWithLink)
    );
}

#[test]
fn the_mean_events_per_flow_follows_the_weights() {
    const SMALL: Fleet = Fleet {
        services: &[service("a", "1", 1, (1, 2)), service("b", "1", 1, (1, 2))],
        streams: &[
            Stream {
                name: "s",
                broker: Broker::Kafka,
                partitions: 1,
            },
            Stream {
                name: "t",
                broker: Broker::Nats,
                partitions: 0,
            },
        ],
        event_types: &[
            EventType {
                name: "x",
                stream: "s",
                schema: "v1",
            },
            EventType {
                name: "y",
                stream: "s",
                schema: "v1",
            },
        ],
        origins: &[Origin {
            service: "a",
            event_type: "x",
            request: "GET /",
            weight: 1,
            sample_percent: 100,
        }],
        subscriptions: &[
            // x causes y three times out of four, then y is ferried (no new event) and read.
            reads(
                "b",
                "x",
                "s",
                &[
                    Outcome {
                        weight: 3,
                        publishes: &["y"],
                    },
                    Outcome {
                        weight: 1,
                        publishes: &[],
                    },
                ],
            ),
            Subscription {
                service: "a",
                event_type: "y",
                stream: "s",
                handling: Handling::Ferries { to_stream: "t" },
                trace: TraceContinuation::Continue,
                failure_percent: 50,
                outcomes: NOTHING,
            },
            reads("b", "y", "t", &[always(&["x"])]),
        ],
    };
    // The last subscription loops (y on t publishes x), which validate refuses; the mean
    // stays finite anyway. Without it: 1 + 0.75.
    assert!(SMALL.validate().is_err());
    assert!(SMALL.mean_events_per_flow().is_finite());
    let without_loop = Fleet {
        subscriptions: &SMALL.subscriptions[..2],
        ..SMALL
    };
    assert_eq!(without_loop.validate(), Ok(()));
    assert!((without_loop.mean_events_per_flow() - 1.75).abs() < 1e-9);
    let mean = DEMO_FLEET.mean_events_per_flow();
    assert!((3.0..20.0).contains(&mean), "{mean}");
}

#[test]
fn a_loop_in_the_fleet_is_refused() {
    const LOOPING: Fleet = Fleet {
        services: &[service("a", "1", 1, (1, 2))],
        streams: &[Stream {
            name: "s",
            broker: Broker::Kafka,
            partitions: 1,
        }],
        event_types: &[EventType {
            name: "x",
            stream: "s",
            schema: "v1",
        }],
        origins: &[Origin {
            service: "a",
            event_type: "x",
            request: "GET /",
            weight: 1,
            sample_percent: 100,
        }],
        subscriptions: &[reads("a", "x", "s", &[always(&["x"])])],
    };
    assert_eq!(
        LOOPING.validate(),
        Err("event loop through x on s".to_string())
    );
}
