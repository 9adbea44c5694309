//! The fleet at work, instrumented with the Muninn SDK: every instance of every service has its
//! own `Tracer`, which sends sampled spans and exact "event seen" counts to the server and
//! polls its sampling config, as a deployed service would. A flow starts with a request to an
//! origin service, which produces an event onto the in-process broker (`broker.rs`); every
//! subscription consumes it from its queue (continuing the producer's trace, or starting a new
//! one linked to it), may fail and retry, and then modifies it, ferries it to another stream or
//! publishes the events it causes, down to the sinks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use muninn_sdk::{EventSpan, Route, SpanContext, Tracer};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::broker::{Broker, Delivery, Position, Queues};
use super::fleet::{EventType, Fleet, Handling, Origin, Stream, Subscription, TraceContinuation};
use super::incident::Incident;

/// A failing consumer succeeds at the latest on this attempt.
pub(super) const MAX_ATTEMPTS: u32 = 4;
const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-2"];
const FAILURES: [&str; 3] = [
    "smtp relay: 421 4.7.0 try again later",
    "smtp relay: timeout after 5000ms",
    "smtp relay: connection reset by peer",
];
/// The event type of the showcase journey: fraud-detection starts a new trace for it.
const SHOWCASE_EVENT_TYPE: &str = "order.placed";

/// One running instance of a service: its tracer and the routes it produces and consumes on.
struct Instance {
    service: &'static str,
    replica: usize,
    tracer: Tracer,
    routes: HashMap<(&'static str, &'static str), Route>,
}

impl Instance {
    fn route(&self, event_type: &'static str, stream: &'static Stream) -> Route {
        match self.routes.get(&(event_type, stream.name)) {
            Some(route) => route.clone(),
            None => self.tracer.route(event_type, stream.name, stream.broker),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    events: AtomicU64,
    messages: AtomicU64,
    consumes: AtomicU64,
    failures: AtomicU64,
    sampled: AtomicU64,
}

/// What the fleet did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// New events (a ferried copy is the same event).
    pub events: u64,
    /// Messages published, ferried copies included: the produces.
    pub messages: u64,
    /// Consume attempts, failed ones included.
    pub consumes: u64,
    /// Consume attempts that failed and were retried.
    pub failures: u64,
    /// Produces and consumes whose spans were sampled.
    pub sampled: u64,
}

/// Ids worth looking at afterwards, taken from events whose spans were sampled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Showcase {
    /// An order.placed event and the trace its producer started; fraud-detection consumes it
    /// in a second trace.
    pub order: Option<(String, String)>,
    /// An event whose consumption failed and was retried.
    pub retried_event_id: Option<String>,
}

/// The SDK's own numbers, summed over the tracers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SdkTotals {
    pub tracers: usize,
    pub spans_exported: u64,
    pub spans_dropped: u64,
    /// Produces and consumes whose counts the server acknowledged.
    pub counts_sent: u64,
    pub counts_dropped: u64,
    /// Tracers whose shutdown did not finish in time.
    pub late: usize,
}

impl SdkTotals {
    fn add(&mut self, stats: &muninn_sdk::Stats) {
        self.tracers += 1;
        self.spans_exported += stats.spans_exported;
        self.spans_dropped += stats.spans_dropped();
        self.counts_sent += stats.counts_sent;
        self.counts_dropped += stats.counts_dropped;
    }
}

/// The running fleet.
pub struct Simulation {
    fleet: Fleet,
    /// The instances of each service, in the order of `fleet.services`.
    instances: Vec<Vec<Instance>>,
    broker: Broker,
    counters: Counters,
    showcase: Mutex<Showcase>,
    incident: Incident,
}

/// The (event type, stream) pairs a service produces or consumes on.
fn routes_of(fleet: &Fleet, service: &str) -> Result<Vec<(&'static str, &'static Stream)>> {
    let stream_of = |event_type: &str| {
        fleet
            .stream_of(event_type)
            .ok_or_else(|| anyhow!("the demo fleet has no stream for {event_type}"))
    };
    let stream = |name: &str| {
        fleet
            .stream(name)
            .ok_or_else(|| anyhow!("the demo fleet has no stream {name}"))
    };
    let mut routes = Vec::new();
    for origin in fleet.origins.iter().filter(|o| o.service == service) {
        routes.push((origin.event_type, stream_of(origin.event_type)?));
    }
    for subscription in fleet.subscriptions.iter().filter(|s| s.service == service) {
        routes.push((subscription.event_type, stream(subscription.stream)?));
        if let Handling::Ferries { to_stream } = subscription.handling {
            routes.push((subscription.event_type, stream(to_stream)?));
        }
        for outcome in subscription.outcomes {
            for published in outcome.publishes {
                routes.push((published, stream_of(published)?));
            }
        }
    }
    Ok(routes)
}

fn millis(low: u32, high: u32) -> Duration {
    let high = high.max(low + 1);
    Duration::from_micros(rand::rng().random_range(u64::from(low) * 1000..u64::from(high) * 1000))
}

fn percent(percent: u32) -> bool {
    rand::rng().random_range(0..100) < percent
}

impl Simulation {
    /// Starts a tracer per instance, sending to `collector` (the server's base URL), and a
    /// consumer per subscription. Dropping the returned set stops the consumers.
    pub fn start(fleet: Fleet, collector: &str) -> Result<(Arc<Simulation>, JoinSet<()>)> {
        let mut instances = Vec::new();
        for (service_idx, service) in fleet.services.iter().enumerate() {
            let routes = routes_of(&fleet, service.name)?;
            let mut replicas = Vec::new();
            for replica in 0..service.replicas.max(1) {
                let region = REGIONS[(service_idx + replica as usize) % REGIONS.len()];
                let tracer = Tracer::builder(service.name)
                    .collector(collector)
                    .version(service.version)
                    .instance(format!("{}-{replica}", service.name))
                    .host(format!("ip-10-0-{}-{}", service_idx + 1, replica + 11))
                    .tag("cloud.region", region)
                    .tag("deployment.environment.name", "demo")
                    .configure(|options| {
                        options.batch_timeout = Duration::from_millis(200);
                        options.counts_interval = Duration::from_secs(1);
                        options.sampling_refresh = Duration::from_secs(5);
                        options.max_queue_spans = 1 << 16;
                        options.max_queue_bytes = 64 << 20;
                        options.shutdown_timeout = Duration::from_secs(10);
                    })
                    .build()
                    .with_context(|| format!("starting the tracer of {}", service.name))?;
                let routes = routes
                    .iter()
                    .map(|&(event_type, stream)| {
                        let route = tracer.route(event_type, stream.name, stream.broker);
                        ((event_type, stream.name), route)
                    })
                    .collect();
                replicas.push(Instance {
                    service: service.name,
                    replica: replica as usize,
                    tracer,
                    routes,
                });
            }
            instances.push(replicas);
        }
        let (broker, queues) = Broker::new(&fleet, &mut rand::rng());
        let simulation = Arc::new(Simulation {
            fleet,
            instances,
            broker,
            counters: Counters::default(),
            showcase: Mutex::new(Showcase::default()),
            incident: Incident::default(),
        });
        let consumers = simulation.clone().start_consumers(queues);
        Ok((simulation, consumers))
    }

    fn start_consumers(self: Arc<Self>, queues: Queues) -> JoinSet<()> {
        let mut consumers = JoinSet::new();
        for (index, queue) in queues {
            if let Some(subscription) = self.fleet.subscriptions.get(index) {
                consumers.spawn(self.clone().consume_loop(subscription, queue));
            }
        }
        consumers
    }

    fn tracers(&self) -> impl Iterator<Item = &Tracer> {
        self.instances
            .iter()
            .flatten()
            .map(|instance| &instance.tracer)
    }

    fn instances_of(&self, service: &str) -> Option<&[Instance]> {
        let index = self
            .fleet
            .services
            .iter()
            .position(|other| other.name == service)?;
        self.instances.get(index).map(Vec::as_slice)
    }

    /// Waits until every tracer has fetched its sampling config (until then it would trace
    /// every event); returns whether they all did within `timeout`.
    pub async fn wait_for_sampling_config(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self
                .tracers()
                .all(|tracer| tracer.stats().config_updates > 0)
            {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The origin of the `flow_idx`th flow: the first flows visit every origin once, so that
    /// even a short run shows all of them; after that, origins are picked by weight.
    pub fn origin(&self, flow_idx: usize) -> Option<&'static Origin> {
        let origins = self.fleet.origins;
        if let Some(origin) = origins.get(flow_idx) {
            return Some(origin);
        }
        let total_weight: u32 = origins.iter().map(|origin| origin.weight).sum();
        let mut pick = rand::rng().random_range(0..total_weight.max(1));
        origins.iter().find(|origin| {
            let found = pick < origin.weight;
            pick = pick.saturating_sub(origin.weight);
            found
        })
    }

    /// One flow: after `delay`, a request to the origin's service, which publishes an event.
    /// The flow is in flight from now on.
    pub fn flow(
        self: &Arc<Self>,
        origin: &'static Origin,
        delay: Duration,
    ) -> impl Future<Output = ()> + Send + use<> {
        let in_flight = self.broker.track();
        let simulation = self.clone();
        async move {
            let _in_flight = in_flight;
            tokio::time::sleep(delay).await;
            simulation.request(origin).await;
        }
    }

    async fn request(&self, origin: &'static Origin) {
        let (Some(instances), Some(event_type)) = (
            self.instances_of(origin.service),
            self.fleet.event_type(origin.event_type),
        ) else {
            return;
        };
        let Some(stream) = self.fleet.stream(event_type.stream) else {
            return;
        };
        let replica = rand::rng().random_range(0..instances.len().max(1));
        let Some(instance) = instances.get(replica) else {
            return;
        };
        // Handling the request, up to the publish.
        tokio::time::sleep(millis(1, 6)).await;
        let event_id = muninn_sdk::new_event_id();
        let mut span = self
            .produce(instance, event_type, stream, event_id.clone(), None, true)
            .await;
        let (method, route) = origin
            .request
            .split_once(' ')
            .unwrap_or(("POST", origin.request));
        span.attribute("http.request.method", method)
            .attribute("http.route", route);
        if span.is_sampled() && event_type.name == SHOWCASE_EVENT_TYPE {
            let trace_id = span.context().trace_id.to_hex();
            self.showcase(|showcase| {
                showcase.order.get_or_insert((event_id, trace_id));
            });
        }
        span.end();
    }

    /// Produces one event on `stream` through the instance's tracer: the span (a child of
    /// `parent`, or a new trace), the message with the headers the tracer wrote, and the
    /// position the broker gave it once acknowledged. Returns the span, not ended.
    async fn produce(
        &self,
        instance: &Instance,
        event_type: &'static EventType,
        stream: &'static Stream,
        event_id: String,
        parent: Option<&SpanContext>,
        new_event: bool,
    ) -> EventSpan {
        let route = instance.route(event_type.name, stream);
        let mut headers: Vec<(String, String)> = Vec::new();
        let schema = self.incident.schema(
            instance.service,
            instance.replica,
            event_type.name,
            event_type.schema,
        );
        let mut span = route.produce_with_headers(&event_id, Some(schema), parent, &mut headers);
        let counters = &self.counters;
        counters.messages.fetch_add(1, Ordering::Relaxed);
        if new_event {
            counters.events.fetch_add(1, Ordering::Relaxed);
        }
        if span.is_sampled() {
            counters.sampled.fetch_add(1, Ordering::Relaxed);
        }
        let position = self
            .broker
            .publish(stream.name, event_type.name, event_id, headers);
        // Waiting for the broker's acknowledgement.
        let ack = Duration::from_micros(rand::rng().random_range(200..3_000));
        tokio::time::sleep(ack).await;
        if let Some(position) = position {
            position.record(&mut span);
        }
        span
    }

    async fn consume_loop(
        self: Arc<Self>,
        subscription: &'static Subscription,
        mut queue: mpsc::UnboundedReceiver<Delivery>,
    ) {
        let mut handlers = JoinSet::new();
        loop {
            tokio::select! {
                delivery = queue.recv() => match delivery {
                    Some(delivery) => {
                        handlers.spawn(self.clone().handle(subscription, delivery));
                    }
                    None => break,
                },
                Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
            }
        }
        while handlers.join_next().await.is_some() {}
    }

    /// One subscription handling one message: failed attempts, the successful one, and what it
    /// publishes as a result. The message stays in flight until this returns.
    async fn handle(self: Arc<Self>, subscription: &'static Subscription, delivery: Delivery) {
        let fleet = self.fleet;
        let (Some(service), Some(instances), Some(stream), Some(event_type)) = (
            fleet.service(subscription.service),
            self.instances_of(subscription.service),
            fleet.stream(subscription.stream),
            fleet.event_type(subscription.event_type),
        ) else {
            return;
        };
        let message = delivery.message.clone();
        // The instance that owns the partition (Kafka), or any member of the queue group (NATS).
        let replica = match message.position {
            Position::Kafka { partition, .. } => {
                usize::try_from(partition).unwrap_or(0) % instances.len().max(1)
            }
            Position::Nats { .. } => rand::rng().random_range(0..instances.len().max(1)),
        };
        let Some(instance) = instances.get(replica) else {
            return;
        };
        let route = instance.route(subscription.event_type, stream);
        // Usually a few milliseconds behind the producer; now and then a lag spike.
        let lag = if rand::rng().random_bool(0.02) {
            millis(200, 1500)
        } else {
            millis(1, 40)
        };
        tokio::time::sleep(lag).await;
        let counters = &self.counters;
        for attempt in 1..=MAX_ATTEMPTS {
            let mut span = match subscription.trace {
                TraceContinuation::Continue => route.consume(&message.headers),
                TraceContinuation::NewTraceWithLink => route.consume_linked(&message.headers),
            };
            counters.consumes.fetch_add(1, Ordering::Relaxed);
            if span.is_sampled() {
                counters.sampled.fetch_add(1, Ordering::Relaxed);
            }
            span.attribute("messaging.consumer.group.name", service.name)
                .attribute("retry.attempt", attempt);
            message.position.record(&mut span);
            let (low, high) = service.handling_ms;
            let handling = millis(low, high);
            if attempt < MAX_ATTEMPTS && percent(subscription.failure_percent) {
                tokio::time::sleep(handling).await;
                let failure = FAILURES[rand::rng().random_range(0..FAILURES.len())];
                span.error(failure);
                counters.failures.fetch_add(1, Ordering::Relaxed);
                if span.is_sampled() {
                    self.showcase(|showcase| {
                        showcase
                            .retried_event_id
                            .get_or_insert_with(|| message.payload.clone());
                    });
                }
                span.end();
                // Exponential back-off with jitter before the next attempt.
                tokio::time::sleep(millis(100, 200) * (1 << (attempt - 1))).await;
                continue;
            }
            if subscription.handling == Handling::Modifies {
                span.modified();
            }
            let before_publish =
                handling / 2 + handling.mul_f64(rand::rng().random_range(0.0..1.0 / 3.0));
            tokio::time::sleep(before_publish).await;
            match subscription.handling {
                Handling::Ferries { to_stream } => {
                    // The same event, unchanged, on another stream.
                    if let Some(to_stream) = fleet.stream(to_stream) {
                        let copy = message.payload.clone();
                        self.produce(
                            instance,
                            event_type,
                            to_stream,
                            copy,
                            Some(span.context()),
                            false,
                        )
                        .await
                        .end();
                    }
                }
                Handling::Reads | Handling::Modifies => {
                    for published in pick_outcome(subscription) {
                        let Some(published) = fleet.event_type(published) else {
                            continue;
                        };
                        let Some(to_stream) = fleet.stream(published.stream) else {
                            continue;
                        };
                        self.produce(
                            instance,
                            published,
                            to_stream,
                            muninn_sdk::new_event_id(),
                            Some(span.context()),
                            true,
                        )
                        .await
                        .end();
                    }
                }
            }
            tokio::time::sleep(handling.saturating_sub(before_publish)).await;
            span.end();
            break;
        }
        drop(delivery);
    }

    fn showcase(&self, change: impl FnOnce(&mut Showcase)) {
        match self.showcase.lock() {
            Ok(mut showcase) => change(&mut showcase),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
    }

    /// The demo's incident (`incident.rs`).
    pub fn incident(&self) -> &Incident {
        &self.incident
    }

    pub fn showcase_ids(&self) -> Showcase {
        match self.showcase.lock() {
            Ok(showcase) => showcase.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn tally(&self) -> Tally {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.counters;
        Tally {
            events: load(&counters.events),
            messages: load(&counters.messages),
            consumes: load(&counters.consumes),
            failures: load(&counters.failures),
            sampled: load(&counters.sampled),
        }
    }

    /// Messages delivered and not yet handled, and flows not yet published.
    pub fn in_flight(&self) -> usize {
        self.broker.in_flight()
    }

    /// The SDK's numbers so far.
    pub fn sdk_totals(&self) -> SdkTotals {
        let mut totals = SdkTotals::default();
        for tracer in self.tracers() {
            totals.add(&tracer.stats());
        }
        totals
    }

    /// Shuts every tracer down (at once, each waiting up to `timeout` to send what is left),
    /// then sums their numbers.
    pub async fn shutdown(&self, timeout: Duration) -> SdkTotals {
        let mut shutdowns = JoinSet::new();
        for tracer in self.tracers() {
            let tracer = tracer.clone();
            shutdowns.spawn_blocking(move || {
                let on_time = tracer.shutdown(timeout);
                (on_time, tracer.stats())
            });
        }
        let mut totals = SdkTotals::default();
        let mut n_tracers = 0;
        while let Some(result) = shutdowns.join_next().await {
            n_tracers += 1;
            match result {
                Ok((on_time, stats)) => {
                    totals.add(&stats);
                    totals.late += usize::from(!on_time);
                }
                Err(_) => totals.late += 1,
            }
        }
        totals.tracers = n_tracers;
        totals
    }
}

/// The events a successful attempt publishes: one outcome, picked by weight.
fn pick_outcome(subscription: &Subscription) -> &'static [&'static str] {
    let total_weight: u32 = subscription
        .outcomes
        .iter()
        .map(|outcome| outcome.weight)
        .sum();
    if total_weight == 0 {
        return &[];
    }
    let mut pick = rand::rng().random_range(0..total_weight);
    subscription
        .outcomes
        .iter()
        .find(|outcome| {
            let found = pick < outcome.weight;
            pick = pick.saturating_sub(outcome.weight);
            found
        })
        .map_or(&[], |outcome| outcome.publishes)
}

#[cfg(test)]
mod tests {
    use muninn_server::ServerConfig;
    use serde_json::Value;

    use super::super::fleet::DEMO_FLEET;
    use super::super::sampling;
    use super::*;
    use crate::client::ApiClient;

    /// Runs `n_flows` flows of the demo fleet against an embedded server, with the demo's
    /// sampling rules, until everything is handled and every tracer has shut down.
    async fn run_fleet(client: &ApiClient, n_flows: usize) -> (Arc<Simulation>, SdkTotals) {
        sampling::apply(client, sampling::rules(&DEMO_FLEET))
            .await
            .unwrap();
        let (simulation, consumers) = Simulation::start(DEMO_FLEET, &client.base_url()).unwrap();
        assert!(
            simulation
                .wait_for_sampling_config(Duration::from_secs(30))
                .await
        );
        let mut flows = JoinSet::new();
        for flow_idx in 0..n_flows {
            let origin = simulation.origin(flow_idx).unwrap();
            flows.spawn(simulation.flow(origin, Duration::from_millis(flow_idx as u64 * 3)));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while simulation.in_flight() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fleet never went quiet"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(flows);
        drop(consumers);
        let sdk = simulation.shutdown(Duration::from_secs(30)).await;
        (simulation, sdk)
    }

    fn hops_of(journey: &Value) -> &[Value] {
        journey["hops"].as_array().map_or(&[], Vec::as_slice)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_fleet_traced_by_the_sdk_shows_every_pattern_and_counts_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let server = muninn_server::start(ServerConfig::new(dir.path(), 0))
            .await
            .unwrap();
        let client = ApiClient::new(&server.base_url()).unwrap();
        let (simulation, sdk) = run_fleet(&client, 250).await;
        let tally = simulation.tally();

        // The SDK sent every sampled span and counted every produce and consume.
        let instances: u32 = DEMO_FLEET.services.iter().map(|s| s.replicas).sum();
        assert_eq!(sdk.tracers, instances as usize);
        assert_eq!((sdk.late, sdk.spans_dropped, sdk.counts_dropped), (0, 0, 0));
        assert_eq!(sdk.spans_exported, tally.sampled);
        assert_eq!(sdk.counts_sent, tally.messages + tally.consumes);
        assert!(
            tally.events >= 250 && tally.messages > tally.events,
            "{tally:?}"
        );
        // cart.abandoned is traced at 25%: some of its produces and consumes have no span.
        assert!(tally.sampled < tally.messages + tally.consumes, "{tally:?}");

        let showcase = simulation.showcase_ids();
        // Fan-out, modify, and a new trace linked to the producer, on one order.
        let (order_id, order_trace) = showcase.order.clone().expect("a traced order");
        let journey = client
            .get_json(&["api", "v1", "events", &order_id], &[])
            .await
            .unwrap();
        let hops = hops_of(&journey);
        let producer = hops.iter().find(|hop| hop["kind"] == "producer").unwrap();
        assert_eq!(
            (&producer["service"], &producer["trace_id"]),
            (&Value::from("checkout"), &Value::from(order_trace.as_str()))
        );
        assert_eq!(
            producer["resource"]["service.instance.id"]
                .as_str()
                .map(|id| id.starts_with("checkout-")),
            Some(true)
        );
        assert_eq!(producer["resource"]["service.version"], "3.14.2");
        assert_eq!(producer["attributes"]["http.route"], "/api/orders");
        let consumer = |service: &str| {
            hops.iter()
                .find(|hop| hop["kind"] == "consumer" && hop["service"] == service)
                .unwrap_or_else(|| panic!("{service} consumed the order: {journey:#}"))
        };
        for service in ["order-router", "analytics"] {
            assert_eq!(consumer(service)["trace_id"], producer["trace_id"]);
            assert_eq!(consumer(service)["parent_span_id"], producer["span_id"]);
            assert_eq!(consumer(service)["partition"], producer["partition"]);
            assert_eq!(consumer(service)["offset"], producer["offset"]);
        }
        assert_eq!(consumer("order-router")["modified"], true);
        let fraud = consumer("fraud-detection");
        assert_ne!(fraud["trace_id"], producer["trace_id"]);
        assert_eq!(fraud["links"][0]["trace_id"], producer["trace_id"]);
        assert_eq!(fraud["links"][0]["span_id"], producer["span_id"]);
        assert_eq!(journey["traces"].as_array().map(Vec::len), Some(2));

        // Error and retry: a failed attempt, then a second one that succeeds.
        let retried = showcase.retried_event_id.expect("a traced retry");
        let journey = client
            .get_json(&["api", "v1", "events", &retried], &[])
            .await
            .unwrap();
        let attempts: Vec<(&Value, &Value)> = hops_of(&journey)
            .iter()
            .filter(|hop| hop["service"] == "email-sender" && hop["kind"] == "consumer")
            .map(|hop| (&hop["status"], &hop["attributes"]["retry.attempt"]))
            .collect();
        assert!(attempts.len() >= 2, "{journey:#}");
        assert_eq!(attempts[0], (&Value::from("error"), &Value::from(1)));
        assert_eq!(attempts.last().unwrap().0, "ok");

        // Ferry-only: audit-log consumes and produces the same event types on two brokers.
        let services = client
            .get_json(&["api", "v1", "services"], &[])
            .await
            .unwrap();
        let audit = services["services"]
            .as_array()
            .and_then(|services| services.iter().find(|s| s["service"] == "audit-log"))
            .unwrap();
        let flows = |side: &str| -> Vec<(String, String)> {
            audit[side]
                .as_array()
                .unwrap()
                .iter()
                .map(|flow| {
                    (
                        flow["event_type"].as_str().unwrap_or("").to_string(),
                        flow["stream"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        };
        assert!(flows("produces").contains(&("ledger.entry.posted".into(), "audit.events".into())));
        assert!(flows("consumes").contains(&("ledger.entry.posted".into(), "payments".into())));
        server.stop().await;
    }
}
