//! The demo's simulated fleet, described as data: services, streams on two broker kinds, event
//! types, where traffic originates, and who subscribes to what and how (reads, modifies and
//! re-publishes, ferries to another stream, fails and retries, starts a new trace).
//! `traffic.rs` runs this description as services instrumented with the Muninn SDK, talking
//! through `broker.rs`; nothing here does I/O.

use muninn_model::Broker;

/// A simulated service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub name: &'static str,
    /// `service.version` of its resource.
    pub version: &'static str,
    /// How many instances run, each with its own tracer (`service.instance.id`, `host.name`).
    pub replicas: u32,
    /// Time to handle one consumed event, in milliseconds, low and high.
    pub handling_ms: (u32, u32),
}

/// A stream: a topic on Kafka, a subject on NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    pub name: &'static str,
    pub broker: Broker,
    /// Kafka partitions (NATS subjects have none; use 0).
    pub partitions: u32,
}

/// An event type and the stream its producer publishes it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    pub name: &'static str,
    pub stream: &'static str,
    pub schema: &'static str,
}

/// Where traffic starts: a request to a service that publishes an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub service: &'static str,
    pub event_type: &'static str,
    /// The name of the server span of the request, like `POST /api/orders`.
    pub request: &'static str,
    /// Share of the traffic, relative to the other origins.
    pub weight: u32,
    /// The percentage of these events that are traced: below 100, the demo creates a central
    /// sampling rule for the event type, which every tracer applies by event id. Events of other
    /// types are all traced; every event is counted whatever its sampling.
    pub sample_percent: u32,
}

/// What a consumer does with an event, beyond reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Reads the event; may publish new events caused by it (see `Subscription::outcomes`).
    Reads,
    /// Changes the payload (`modified = true`) and publishes the result as a new event.
    Modifies,
    /// Publishes the very same event (same id, type and payload) to another stream.
    Ferries { to_stream: &'static str },
}

/// Whether the consumer continues the producer's trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceContinuation {
    /// The consumer span is a child of the producer span.
    Continue,
    /// The consumer starts a new trace and links to the producer span (batch jobs do this).
    NewTraceWithLink,
}

/// One possible result of handling an event: the new events published, with a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub weight: u32,
    pub publishes: &'static [&'static str],
}

/// A service consuming an event type from a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub service: &'static str,
    pub event_type: &'static str,
    pub stream: &'static str,
    pub handling: Handling,
    pub trace: TraceContinuation,
    /// Percentage of attempts that fail (status error) and are retried after a back-off.
    pub failure_percent: u32,
    /// One of these happens after a successful attempt, chosen by weight; empty: nothing is published.
    pub outcomes: &'static [Outcome],
}

/// A whole fleet.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    pub services: &'static [Service],
    pub streams: &'static [Stream],
    pub event_types: &'static [EventType],
    pub origins: &'static [Origin],
    pub subscriptions: &'static [Subscription],
}

impl Fleet {
    pub fn service(&self, name: &str) -> Option<&'static Service> {
        self.services.iter().find(|service| service.name == name)
    }

    pub fn stream(&self, name: &str) -> Option<&'static Stream> {
        self.streams.iter().find(|stream| stream.name == name)
    }

    pub fn event_type(&self, name: &str) -> Option<&'static EventType> {
        self.event_types
            .iter()
            .find(|event_type| event_type.name == name)
    }

    /// The subscriptions that receive `event_type` published on `stream`.
    pub fn subscribers<'a>(
        &self,
        event_type: &'a str,
        stream: &'a str,
    ) -> impl Iterator<Item = &'static Subscription> + use<'a> {
        let subscriptions: &'static [Subscription] = self.subscriptions;
        subscriptions.iter().filter(move |subscription| {
            subscription.event_type == event_type && subscription.stream == stream
        })
    }

    /// Checks that every name refers to something that exists, that each subscription can
    /// receive what it subscribes to, and that no chain of events loops back on itself.
    pub fn validate(&self) -> Result<(), String> {
        for origin in self.origins {
            self.service(origin.service)
                .ok_or(format!("origin: no service {:?}", origin.service))?;
            self.event_type(origin.event_type)
                .ok_or(format!("origin: no event type {:?}", origin.event_type))?;
            if origin.weight == 0 || origin.sample_percent > 100 {
                return Err(format!(
                    "origin {}: weight must be > 0 and sample_percent ≤ 100",
                    origin.event_type
                ));
            }
        }
        for event_type in self.event_types {
            self.stream(event_type.stream).ok_or(format!(
                "event type {}: no stream {:?}",
                event_type.name, event_type.stream
            ))?;
        }
        for subscription in self.subscriptions {
            let context = format!(
                "subscription {} ← {}",
                subscription.service, subscription.event_type
            );
            self.service(subscription.service)
                .ok_or(format!("{context}: no such service"))?;
            self.stream(subscription.stream)
                .ok_or(format!("{context}: no stream {:?}", subscription.stream))?;
            let event_type = self
                .event_type(subscription.event_type)
                .ok_or(format!("{context}: no such event type"))?;
            let ferried_here = self.subscriptions.iter().any(|other| {
                other.event_type == subscription.event_type
                    && other.handling
                        == (Handling::Ferries {
                            to_stream: subscription.stream,
                        })
            });
            if event_type.stream != subscription.stream && !ferried_here {
                return Err(format!(
                    "{context}: nothing publishes it on {}",
                    subscription.stream
                ));
            }
            if let Handling::Ferries { to_stream } = subscription.handling {
                self.stream(to_stream)
                    .ok_or(format!("{context}: no stream {to_stream:?} to ferry to"))?;
                if !subscription.outcomes.is_empty() {
                    return Err(format!(
                        "{context}: a ferry publishes the same event, not outcomes"
                    ));
                }
            }
            if subscription.handling == Handling::Modifies
                && subscription
                    .outcomes
                    .iter()
                    .any(|outcome| outcome.publishes.is_empty())
            {
                return Err(format!(
                    "{context}: a modifying consumer must publish its result"
                ));
            }
            for outcome in subscription.outcomes {
                for published in outcome.publishes {
                    self.event_type(published).ok_or(format!(
                        "{context}: publishes unknown event type {published:?}"
                    ))?;
                }
            }
        }
        for service in self.services {
            if service.replicas == 0 || service.handling_ms.0 > service.handling_ms.1 {
                return Err(format!(
                    "service {}: needs a replica and handling_ms low ≤ high",
                    service.name
                ));
            }
        }
        // Depth-first over (event type, stream) → what its subscribers publish; a loop would make
        // every flow publish events forever.
        fn visit(
            fleet: &Fleet,
            node: (&'static str, &'static str),
            path: &mut Vec<(&'static str, &'static str)>,
        ) -> Result<(), String> {
            if path.contains(&node) {
                return Err(format!("event loop through {} on {}", node.0, node.1));
            }
            path.push(node);
            for subscription in fleet.subscribers(node.0, node.1) {
                if let Handling::Ferries { to_stream } = subscription.handling {
                    visit(fleet, (subscription.event_type, to_stream), path)?;
                }
                for outcome in subscription.outcomes {
                    for published in outcome.publishes {
                        let stream = fleet
                            .event_type(published)
                            .map_or("", |event_type| event_type.stream);
                        visit(fleet, (published, stream), path)?;
                    }
                }
            }
            path.pop();
            Ok(())
        }
        for origin in self.origins {
            let stream = self
                .event_type(origin.event_type)
                .map_or("", |event_type| event_type.stream);
            visit(self, (origin.event_type, stream), &mut Vec::new())?;
        }
        Ok(())
    }

    /// The stream an event type is published to by its producers.
    pub fn stream_of(&self, event_type: &str) -> Option<&'static Stream> {
        self.event_type(event_type)
            .and_then(|event_type| self.stream(event_type.stream))
    }

    /// The mean number of new events one flow publishes: its origin's event and every event
    /// that causes downstream, weighted by the origins' and the outcomes' weights. The demo
    /// starts flows at `rate / mean` per second to publish `rate` events per second. Ferried
    /// copies are not new events; failed attempts are retried until they succeed.
    pub fn mean_events_per_flow(&self) -> f64 {
        /// Deeper chains are cut; `validate` refuses loops, this is a backstop.
        const MAX_DEPTH: usize = 32;
        fn caused(fleet: &Fleet, event_type: &str, stream: &str, depth: usize) -> f64 {
            if depth > MAX_DEPTH {
                return 0.0;
            }
            fleet
                .subscribers(event_type, stream)
                .map(|subscription| match subscription.handling {
                    Handling::Ferries { to_stream } => {
                        caused(fleet, subscription.event_type, to_stream, depth + 1)
                    }
                    Handling::Reads | Handling::Modifies => {
                        let total: u32 = subscription.outcomes.iter().map(|o| o.weight).sum();
                        if total == 0 {
                            return 0.0;
                        }
                        subscription
                            .outcomes
                            .iter()
                            .map(|outcome| {
                                let events: f64 = outcome
                                    .publishes
                                    .iter()
                                    .map(|published| {
                                        let stream =
                                            fleet.stream_of(published).map_or("", |s| s.name);
                                        1.0 + caused(fleet, published, stream, depth + 1)
                                    })
                                    .sum();
                                f64::from(outcome.weight) / f64::from(total) * events
                            })
                            .sum()
                    }
                })
                .sum()
        }
        let total: u32 = self.origins.iter().map(|origin| origin.weight).sum();
        if total == 0 {
            return 1.0;
        }
        let mean: f64 = self
            .origins
            .iter()
            .map(|origin| {
                let stream = self.stream_of(origin.event_type).map_or("", |s| s.name);
                f64::from(origin.weight) / f64::from(total)
                    * (1.0 + caused(self, origin.event_type, stream, 0))
            })
            .sum();
        mean.max(1.0)
    }
}

const fn service(
    name: &'static str,
    version: &'static str,
    replicas: u32,
    handling_ms: (u32, u32),
) -> Service {
    Service {
        name,
        version,
        replicas,
        handling_ms,
    }
}

const fn reads(
    service: &'static str,
    event_type: &'static str,
    stream: &'static str,
    outcomes: &'static [Outcome],
) -> Subscription {
    Subscription {
        service,
        event_type,
        stream,
        handling: Handling::Reads,
        trace: TraceContinuation::Continue,
        failure_percent: 0,
        outcomes,
    }
}

const fn always(publishes: &'static [&'static str]) -> Outcome {
    Outcome {
        weight: 1,
        publishes,
    }
}

const NOTHING: &[Outcome] = &[];

/// The demo fleet: an online shop. Twelve services, eight streams (five Kafka topics, three
/// NATS subjects), twenty event types. The comments mark the patterns the demo must show.
pub const DEMO_FLEET: Fleet = Fleet {
    services: &[
        service("checkout", "3.14.2", 3, (5, 25)),
        service("order-router", "1.8.0", 2, (3, 15)),
        service("payments", "5.2.1", 3, (20, 120)),
        service("inventory", "2.7.4", 2, (5, 30)),
        service("shipping", "1.3.9", 2, (10, 60)),
        service("notifications", "4.0.3", 2, (2, 10)),
        service("email-sender", "0.9.12", 2, (40, 250)),
        service("fraud-detection", "7.1.0", 2, (30, 180)),
        service("ledger", "2.2.0", 2, (5, 40)),
        service("audit-log", "1.0.6", 1, (1, 4)),
        service("search-indexer", "3.5.1", 2, (10, 80)),
        service("analytics", "12.4.0", 3, (1, 8)),
    ],
    streams: &[
        Stream {
            name: "orders",
            broker: Broker::Kafka,
            partitions: 12,
        },
        Stream {
            name: "payments",
            broker: Broker::Kafka,
            partitions: 6,
        },
        Stream {
            name: "inventory-updates",
            broker: Broker::Kafka,
            partitions: 6,
        },
        Stream {
            name: "shipments",
            broker: Broker::Kafka,
            partitions: 3,
        },
        Stream {
            name: "notifications",
            broker: Broker::Kafka,
            partitions: 3,
        },
        Stream {
            name: "fraud.signals",
            broker: Broker::Nats,
            partitions: 0,
        },
        Stream {
            name: "audit.events",
            broker: Broker::Nats,
            partitions: 0,
        },
        Stream {
            name: "search.updates",
            broker: Broker::Nats,
            partitions: 0,
        },
    ],
    event_types: &[
        EventType {
            name: "order.placed",
            stream: "orders",
            schema: "v3",
        },
        EventType {
            name: "order.routed",
            stream: "orders",
            schema: "v2",
        },
        EventType {
            name: "order.cancelled",
            stream: "orders",
            schema: "v1",
        },
        EventType {
            name: "cart.abandoned",
            stream: "orders",
            schema: "v1",
        },
        EventType {
            name: "return.requested",
            stream: "orders",
            schema: "v1",
        },
        EventType {
            name: "payment.authorized",
            stream: "payments",
            schema: "v4",
        },
        EventType {
            name: "payment.declined",
            stream: "payments",
            schema: "v4",
        },
        EventType {
            name: "payment.refunded",
            stream: "payments",
            schema: "v2",
        },
        EventType {
            name: "ledger.entry.posted",
            stream: "payments",
            schema: "v1",
        },
        EventType {
            name: "inventory.reserved",
            stream: "inventory-updates",
            schema: "v2",
        },
        EventType {
            name: "inventory.released",
            stream: "inventory-updates",
            schema: "v2",
        },
        EventType {
            name: "inventory.restocked",
            stream: "inventory-updates",
            schema: "v1",
        },
        EventType {
            name: "stock.level.low",
            stream: "inventory-updates",
            schema: "v1",
        },
        EventType {
            name: "shipment.created",
            stream: "shipments",
            schema: "v2",
        },
        EventType {
            name: "shipment.delivered",
            stream: "shipments",
            schema: "v2",
        },
        EventType {
            name: "email.requested",
            stream: "notifications",
            schema: "v1",
        },
        EventType {
            name: "email.sent",
            stream: "notifications",
            schema: "v1",
        },
        EventType {
            name: "fraud.score.computed",
            stream: "fraud.signals",
            schema: "v5",
        },
        EventType {
            name: "fraud.alert.raised",
            stream: "fraud.signals",
            schema: "v5",
        },
        EventType {
            name: "search.index.updated",
            stream: "search.updates",
            schema: "v1",
        },
    ],
    origins: &[
        Origin {
            service: "checkout",
            event_type: "order.placed",
            request: "POST /api/orders",
            weight: 50,
            sample_percent: 100,
        },
        Origin {
            service: "checkout",
            event_type: "order.cancelled",
            request: "DELETE /api/orders/{id}",
            weight: 5,
            sample_percent: 100,
        },
        // High volume, low value: only a quarter of these flows are traced; counts see them all.
        Origin {
            service: "checkout",
            event_type: "cart.abandoned",
            request: "POST /api/carts/{id}/expire",
            weight: 15,
            sample_percent: 25,
        },
        Origin {
            service: "checkout",
            event_type: "return.requested",
            request: "POST /api/returns",
            weight: 4,
            sample_percent: 100,
        },
        Origin {
            service: "inventory",
            event_type: "inventory.restocked",
            request: "POST /api/stock/receipts",
            weight: 8,
            sample_percent: 100,
        },
        Origin {
            service: "shipping",
            event_type: "shipment.delivered",
            request: "POST /webhooks/carrier",
            weight: 12,
            sample_percent: 100,
        },
    ],
    subscriptions: &[
        // Fan-out: order.placed is consumed by order-router, fraud-detection and analytics.
        // Modify and re-publish: order-router enriches the order (modified) and publishes order.routed.
        Subscription {
            service: "order-router",
            event_type: "order.placed",
            stream: "orders",
            handling: Handling::Modifies,
            trace: TraceContinuation::Continue,
            failure_percent: 0,
            outcomes: &[always(&["order.routed"])],
        },
        // New trace: fraud-detection scores orders in batches, so each consumer span starts a
        // new trace that carries the event id and links to the producer span.
        Subscription {
            service: "fraud-detection",
            event_type: "order.placed",
            stream: "orders",
            handling: Handling::Reads,
            trace: TraceContinuation::NewTraceWithLink,
            failure_percent: 0,
            outcomes: &[
                Outcome {
                    weight: 94,
                    publishes: &["fraud.score.computed"],
                },
                Outcome {
                    weight: 6,
                    publishes: &["fraud.alert.raised"],
                },
            ],
        },
        reads("analytics", "order.placed", "orders", NOTHING),
        reads(
            "payments",
            "order.routed",
            "orders",
            &[
                Outcome {
                    weight: 92,
                    publishes: &["payment.authorized"],
                },
                Outcome {
                    weight: 8,
                    publishes: &["payment.declined"],
                },
            ],
        ),
        reads(
            "inventory",
            "order.routed",
            "orders",
            &[
                Outcome {
                    weight: 88,
                    publishes: &["inventory.reserved"],
                },
                Outcome {
                    weight: 12,
                    publishes: &["inventory.reserved", "stock.level.low"],
                },
            ],
        ),
        reads(
            "inventory",
            "order.cancelled",
            "orders",
            &[always(&["inventory.released"])],
        ),
        reads(
            "payments",
            "order.cancelled",
            "orders",
            &[always(&["payment.refunded"])],
        ),
        reads("analytics", "order.cancelled", "orders", NOTHING),
        reads(
            "notifications",
            "cart.abandoned",
            "orders",
            &[always(&["email.requested"])],
        ),
        reads("analytics", "cart.abandoned", "orders", NOTHING),
        reads(
            "payments",
            "return.requested",
            "orders",
            &[always(&["payment.refunded"])],
        ),
        reads("analytics", "return.requested", "orders", NOTHING),
        // Fan-out: payment.authorized is consumed by shipping, ledger and notifications.
        reads(
            "shipping",
            "payment.authorized",
            "payments",
            &[always(&["shipment.created"])],
        ),
        reads(
            "ledger",
            "payment.authorized",
            "payments",
            &[always(&["ledger.entry.posted"])],
        ),
        reads(
            "notifications",
            "payment.authorized",
            "payments",
            &[always(&["email.requested"])],
        ),
        reads(
            "notifications",
            "payment.declined",
            "payments",
            &[always(&["email.requested"])],
        ),
        reads("analytics", "payment.declined", "payments", NOTHING),
        reads(
            "ledger",
            "payment.refunded",
            "payments",
            &[always(&["ledger.entry.posted"])],
        ),
        reads(
            "notifications",
            "payment.refunded",
            "payments",
            &[always(&["email.requested"])],
        ),
        // Ferry: audit-log only copies events, unchanged, from Kafka and NATS to the audit subject.
        Subscription {
            service: "audit-log",
            event_type: "ledger.entry.posted",
            stream: "payments",
            handling: Handling::Ferries {
                to_stream: "audit.events",
            },
            trace: TraceContinuation::Continue,
            failure_percent: 0,
            outcomes: NOTHING,
        },
        Subscription {
            service: "audit-log",
            event_type: "fraud.alert.raised",
            stream: "fraud.signals",
            handling: Handling::Ferries {
                to_stream: "audit.events",
            },
            trace: TraceContinuation::Continue,
            failure_percent: 0,
            outcomes: NOTHING,
        },
        reads("analytics", "ledger.entry.posted", "audit.events", NOTHING),
        reads(
            "search-indexer",
            "inventory.reserved",
            "inventory-updates",
            &[always(&["search.index.updated"])],
        ),
        reads(
            "search-indexer",
            "inventory.released",
            "inventory-updates",
            &[always(&["search.index.updated"])],
        ),
        reads(
            "search-indexer",
            "inventory.restocked",
            "inventory-updates",
            &[always(&["search.index.updated"])],
        ),
        reads(
            "analytics",
            "inventory.restocked",
            "inventory-updates",
            NOTHING,
        ),
        reads(
            "notifications",
            "stock.level.low",
            "inventory-updates",
            NOTHING,
        ),
        reads(
            "search-indexer",
            "stock.level.low",
            "inventory-updates",
            &[always(&["search.index.updated"])],
        ),
        reads(
            "analytics",
            "search.index.updated",
            "search.updates",
            NOTHING,
        ),
        reads(
            "notifications",
            "shipment.created",
            "shipments",
            &[always(&["email.requested"])],
        ),
        reads(
            "notifications",
            "shipment.delivered",
            "shipments",
            &[always(&["email.requested"])],
        ),
        reads("analytics", "shipment.delivered", "shipments", NOTHING),
        // Error and retry: the mail relay is flaky; a failed attempt is retried after a back-off.
        Subscription {
            service: "email-sender",
            event_type: "email.requested",
            stream: "notifications",
            handling: Handling::Reads,
            trace: TraceContinuation::Continue,
            failure_percent: 12,
            outcomes: &[always(&["email.sent"])],
        },
        reads("analytics", "email.sent", "notifications", NOTHING),
        reads(
            "order-router",
            "fraud.alert.raised",
            "fraud.signals",
            NOTHING,
        ),
        reads(
            "notifications",
            "fraud.alert.raised",
            "fraud.signals",
            NOTHING,
        ),
        reads(
            "analytics",
            "fraud.score.computed",
            "fraud.signals",
            NOTHING,
        ),
    ],
};

#[cfg(test)]
mod tests;
