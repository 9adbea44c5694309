//! The demo's incident, so that its summary can show what `compare` finds: half-way through,
//! one instance of checkout starts sending a new schema of `order.placed` and shipping
//! doubles its `shipment.delivered` traffic. Roll-ups are per minute and the demo runs for
//! seconds, so the hour before it is filled in with the fleet's steady traffic as its SDKs
//! would have reported it: per minute, the counts of every (service, action, stream, event
//! type) at the rate the fleet's description gives (with Poisson noise), and one sampled
//! producer span per producer and type carrying its usual schema.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use muninn_model::{Action, Broker, NANOS_PER_SECOND};
use rand::Rng;

use super::fleet::{Fleet, Handling};
use super::traffic::MAX_ATTEMPTS;
use crate::client::ApiClient;

/// The producer, its instance, the event type and the schema it starts sending.
pub const NEW_SCHEMA: (&str, usize, &str, &str) = ("checkout", 0, "order.placed", "v4");
/// The origin (service, event type) whose traffic doubles.
pub const DOUBLED: (&str, &str) = ("shipping", "shipment.delivered");
/// How much history is filled in before the demo's first minute.
pub const HISTORY_MINUTES: i64 = 60;

type Edge = (&'static str, Action, &'static str, Broker, &'static str);

/// Whether the incident has started.
#[derive(Debug, Default)]
pub struct Incident {
    on: AtomicBool,
}

impl Incident {
    pub fn start(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// The schema an instance sends an event type with.
    pub fn schema(
        &self,
        service: &str,
        replica: usize,
        event_type: &str,
        usual: &'static str,
    ) -> &'static str {
        let (new_service, new_replica, new_type, new_schema) = NEW_SCHEMA;
        if self.is_on()
            && service == new_service
            && replica == new_replica
            && event_type == new_type
        {
            new_schema
        } else {
            usual
        }
    }

    /// Whether a flow of this origin gets a twin (the doubled traffic).
    pub fn doubles(&self, service: &str, event_type: &str) -> bool {
        self.is_on() && (service, event_type) == DOUBLED
    }
}

/// Expected produces and consume attempts per edge for one flow (see
/// `Fleet::mean_events_per_flow`, which this follows edge by edge).
fn expected_per_flow(fleet: &Fleet) -> HashMap<Edge, f64> {
    const MAX_DEPTH: usize = 32;
    fn produced(
        fleet: &Fleet,
        service: &'static str,
        event_type: &'static str,
        stream: &'static str,
        weight: f64,
        depth: usize,
        edges: &mut HashMap<Edge, f64>,
    ) {
        let Some(found) = fleet.stream(stream) else {
            return;
        };
        if depth > MAX_DEPTH {
            return;
        }
        *edges
            .entry((
                service,
                Action::Produced,
                found.name,
                found.broker,
                event_type,
            ))
            .or_default() += weight;
        for subscription in fleet.subscribers(event_type, stream) {
            // Failed attempts are consumes too, retried until the last one, which succeeds.
            let fail = f64::from(subscription.failure_percent) / 100.0;
            let attempts: f64 = (0..MAX_ATTEMPTS).map(|k| fail.powi(k as i32)).sum();
            *edges
                .entry((
                    subscription.service,
                    Action::Consumed,
                    found.name,
                    found.broker,
                    event_type,
                ))
                .or_default() += weight * attempts;
            match subscription.handling {
                Handling::Ferries { to_stream } => produced(
                    fleet,
                    subscription.service,
                    event_type,
                    to_stream,
                    weight,
                    depth + 1,
                    edges,
                ),
                Handling::Reads | Handling::Modifies => {
                    let total: u32 = subscription.outcomes.iter().map(|o| o.weight).sum();
                    for outcome in subscription.outcomes {
                        let share = f64::from(outcome.weight) / f64::from(total.max(1));
                        for published in outcome.publishes {
                            let Some(published) = fleet.event_type(published) else {
                                continue;
                            };
                            produced(
                                fleet,
                                subscription.service,
                                published.name,
                                published.stream,
                                weight * share,
                                depth + 1,
                                edges,
                            );
                        }
                    }
                }
            }
        }
    }
    let mut edges = HashMap::new();
    let total: u32 = fleet.origins.iter().map(|origin| origin.weight).sum();
    for origin in fleet.origins {
        let Some(event_type) = fleet.event_type(origin.event_type) else {
            continue;
        };
        let weight = f64::from(origin.weight) / f64::from(total.max(1));
        produced(
            fleet,
            origin.service,
            event_type.name,
            event_type.stream,
            weight,
            0,
            &mut edges,
        );
    }
    edges
}

/// Sends the fleet's steady traffic at `rate` events per second for the hour before
/// `start_unix_nanos` and the part of its minute before it: counts per minute and edge, and
/// per minute one producer span per producer and type with its usual schema. Returns the
/// records sent.
pub async fn fill_history(
    client: &ApiClient,
    fleet: &Fleet,
    rate: f64,
    start_unix_nanos: i64,
) -> Result<usize> {
    let flows_per_second = rate / fleet.mean_events_per_flow().max(f64::MIN_POSITIVE);
    let start_minute = start_unix_nanos.div_euclid(60 * NANOS_PER_SECOND) * 60;
    let before_start =
        (start_unix_nanos - start_minute * NANOS_PER_SECOND) as f64 / NANOS_PER_SECOND as f64;
    let mut counts = Vec::new();
    let mut spans = Vec::new();
    let mut rng = rand::rng();
    let mut edges: Vec<_> = expected_per_flow(fleet).into_iter().collect();
    edges.sort_by(|left, right| left.0.cmp(&right.0));
    for ((service, action, stream, broker, event_type), per_flow) in edges {
        let per_second = per_flow * flows_per_second;
        let minutes = (1..=HISTORY_MINUTES)
            .rev()
            .map(|back| (start_minute - back * 60, 60.0));
        for (minute, covered) in minutes.chain([(start_minute, before_start)]) {
            let n = poisson(&mut rng, per_second * covered);
            if n == 0 {
                continue;
            }
            counts.push(serde_json::json!({
                "service": service, "event_type": event_type, "stream": stream,
                "broker": broker.as_str(), "action": action.as_str(),
                "minute": minute, "count": n,
            }));
            let schema = fleet.event_type(event_type).map(|known| known.schema);
            if let (Action::Produced, Some(schema), true) = (action, schema, covered >= 60.0) {
                let at = (minute + rng.random_range(0..60)) * NANOS_PER_SECOND;
                spans.push(serde_json::json!({
                    "trace_id": format!("{:032x}", rng.random::<u128>() | 1),
                    "span_id": format!("{:016x}", rng.random::<u64>() | 1),
                    "name": format!("{stream} publish"), "kind": "producer",
                    "service": service, "start_time_unix_nano": at, "duration_nano": 2_000_000,
                    "event_id": muninn_sdk::new_event_id(), "event_type": event_type,
                    "schema": schema, "stream": stream, "broker": broker.as_str(),
                }));
            }
        }
    }
    for (route, records) in [("counts", &counts), ("spans", &spans)] {
        for chunk in records.chunks(1_000) {
            let body = serde_json::to_vec(chunk).context("encoding the demo's history")?;
            client.post(&["api", "v1", route], body, None).await?;
        }
    }
    Ok(counts.len() + spans.len())
}

/// A Poisson draw: Knuth's method for small means, the normal approximation above.
fn poisson(rng: &mut impl Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
        let normal = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
        return (mean + normal * mean.sqrt()).round().max(0.0) as u64;
    }
    let limit = (-mean).exp();
    let (mut count, mut product) = (0, rng.random::<f64>());
    while product > limit {
        count += 1;
        product *= rng.random::<f64>();
    }
    count
}
