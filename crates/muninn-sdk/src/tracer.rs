//! The tracer: built once per service, it owns the routes, the span queue, the sampling
//! config, and the export thread that talks to the collector.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use muninn_model::Broker;
use muninn_model::sampling::{ServiceSamplingConfig, rate_to_ppm};

use crate::options::{ConfigError, Options};
use crate::propagation::{Extractor, Format, Headers};
use crate::queue::SpanQueue;
use crate::record::{Record, Value};
use crate::route::{EventSpan, Route, RouteInner, UNKNOWN_EVENT_TYPE};

pub(crate) fn formats_mask(formats: &[Format]) -> u8 {
    formats.iter().fold(0, |mask, format| {
        mask | match format {
            Format::W3c => 1,
            Format::B3Single => 2,
            Format::B3Multi => 4,
        }
    })
}

pub(crate) fn formats_from_mask(mask: u8) -> ([Format; 3], usize) {
    let mut formats = [Format::W3c; 3];
    let mut n = 0;
    for (bit, format) in [
        (1, Format::W3c),
        (2, Format::B3Single),
        (4, Format::B3Multi),
    ] {
        if mask & bit != 0 {
            formats[n] = format;
            n += 1;
        }
    }
    (formats, n)
}

/// Routes and the sampling config, under one lock so a new route never misses an update.
pub(crate) struct Registry {
    /// Routes by event type, then found by stream and broker among the few of that type: a
    /// lookup with borrowed names allocates nothing (adapters look a route up on every call).
    pub routes: HashMap<String, Vec<Arc<RouteInner>>>,
    /// The same routes by [`RouteInner::id`]: a span names its route by index, so that the
    /// export thread, which drops spans by the thousand, never touches a route's reference
    /// count (the calling threads read the route on every call).
    pub by_id: Vec<Arc<RouteInner>>,
    pub config: Arc<ServiceSamplingConfig>,
    pub etag: Option<String>,
}

/// Counters of what happened to spans and counts; read with [`Tracer::stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub exported: AtomicU64,
    pub dropped_export_failed: AtomicU64,
    pub dropped_rejected: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    pub export_attempts_failed: AtomicU64,
    pub counts_sent: AtomicU64,
    pub counts_dropped: AtomicU64,
    pub config_updates: AtomicU64,
    pub config_errors: AtomicU64,
}

pub(crate) struct Inner {
    pub service: String,
    /// The collectors' base URLs (one, or several behind no load balancer), and the one
    /// counts and the sampling config go to, which moves on when it fails.
    pub collectors: Vec<reqwest::Url>,
    /// `Bearer TOKEN`, sent with every request to the collectors when a token is set.
    pub authorization: Option<reqwest::header::HeaderValue>,
    /// Certificates trusted for `https://` collectors besides the system's.
    pub ca_certificates: Vec<reqwest::Certificate>,
    pub preferred: std::sync::atomic::AtomicUsize,
    /// Where span batches go instead of `POST /api/v1/spans`: a Kafka topic the ingest nodes
    /// consume (`[kafka_ingest]`). Counts and the sampling config still use the collectors.
    #[cfg(feature = "kafka")]
    pub kafka_spans: Option<crate::export::KafkaSpans>,
    pub resource: Vec<(String, Value)>,
    pub options: Options,
    pub inject_mask: u8,
    pub queue: SpanQueue,
    pub registry: RwLock<Registry>,
    pub live_debug: AtomicBool,
    pub wake: tokio::sync::Notify,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The minute (unix seconds / 60) unsampled events are counted in; the export thread
    /// moves it forward every second.
    pub current_minute: AtomicI64,
    /// Held while counters are emptied into per-minute cells and while totals are read.
    pub count_lock: Mutex<()>,
    /// Set when the export thread has stopped: spans can no longer leave.
    pub closed: AtomicBool,
    pub counters: Counters,
}

impl Inner {
    /// Hands a finished span to the export thread; never blocks, never fails loudly.
    #[inline(always)]
    pub(crate) fn enqueue(&self, record: Record) {
        if self.closed.load(Ordering::Relaxed) {
            self.counters
                .dropped_shutdown
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(waiting) = self.queue.push(record) else {
            return;
        };
        if self.live_debug.load(Ordering::Relaxed)
            || (waiting >= self.options.batch_size
                && !self.queue.wake_pending.load(Ordering::Relaxed)
                && !self.queue.wake_pending.swap(true, Ordering::AcqRel))
        {
            self.wake.notify_one();
        }
    }

    pub(crate) fn route(&self, event_type: &str, stream: &str, broker: Broker) -> Arc<RouteInner> {
        let event_type = if event_type.is_empty() {
            UNKNOWN_EVENT_TYPE
        } else {
            event_type
        };
        let find = |registry: &Registry| {
            registry.routes.get(event_type).and_then(|routes| {
                routes
                    .iter()
                    .find(|route| route.broker == broker && route.stream == stream)
                    .cloned()
            })
        };
        if let Ok(registry) = self.registry.read()
            && let Some(route) = find(&registry)
        {
            return route;
        }
        let mut registry = match self.registry.write() {
            Ok(registry) => registry,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(route) = find(&registry) {
            return route;
        }
        let rate = registry.config.rate_ppm(event_type);
        let id = u32::try_from(registry.by_id.len()).unwrap_or(u32::MAX);
        let route = Arc::new(RouteInner::new(id, event_type, stream, broker, rate));
        registry
            .routes
            .entry(event_type.to_string())
            .or_default()
            .push(route.clone());
        registry.by_id.push(route.clone());
        route
    }

    /// Installs a new sampling config and applies it to every route.
    pub(crate) fn apply_config(&self, config: ServiceSamplingConfig, etag: Option<String>) {
        let mut registry = match self.registry.write() {
            Ok(registry) => registry,
            Err(poisoned) => poisoned.into_inner(),
        };
        for route in registry.routes.values().flatten() {
            route
                .rate_ppm
                .store(config.rate_ppm(&route.event_type), Ordering::Relaxed);
        }
        self.live_debug.store(config.live_debug, Ordering::Relaxed);
        registry.config = Arc::new(config);
        registry.etag = etag;
        self.counters.config_updates.fetch_add(1, Ordering::Relaxed);
    }

    /// Every route, indexed by [`RouteInner::id`].
    pub(crate) fn routes(&self) -> Vec<Arc<RouteInner>> {
        match self.registry.read() {
            Ok(registry) => registry.by_id.clone(),
            Err(poisoned) => poisoned.into_inner().by_id.clone(),
        }
    }
}

/// What the tracer has done so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Spans accepted into the export queue.
    pub spans_queued: u64,
    /// Spans the collector acknowledged.
    pub spans_exported: u64,
    /// Spans dropped because the queue was full (collector slow or down).
    pub spans_dropped_queue_full: u64,
    /// Spans dropped after every export attempt failed.
    pub spans_dropped_export_failed: u64,
    /// Spans the collector refused as invalid.
    pub spans_dropped_rejected: u64,
    /// Spans ended after the tracer shut down.
    pub spans_dropped_shutdown: u64,
    /// Export requests that failed (each retry counts).
    pub export_attempts_failed: u64,
    pub queue_spans: usize,
    pub queue_bytes: usize,
    pub queue_bytes_peak: usize,
    pub max_queue_bytes: usize,
    /// Events whose seen-counts the collector acknowledged.
    pub counts_sent: u64,
    /// Events whose seen-counts were lost (collector unreachable longer than the buffer).
    pub counts_dropped: u64,
    /// Sampling configs received from the collector.
    pub config_updates: u64,
    pub config_errors: u64,
    /// The sampling config in force.
    pub sampling: ServiceSamplingConfig,
}

impl Stats {
    /// Every span dropped, whatever the reason.
    pub fn spans_dropped(&self) -> u64 {
        self.spans_dropped_queue_full
            + self.spans_dropped_export_failed
            + self.spans_dropped_rejected
            + self.spans_dropped_shutdown
    }
}

struct Handle {
    inner: Arc<Inner>,
    done: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Ask the export thread to send what is left and stop; never wait here.
        self.inner.shutdown.send_replace(true);
    }
}

/// Traces one service's events. Build it once with [`Tracer::builder`] and clone it freely.
/// Calls never block and never panic; spans leave on a background thread.
#[derive(Clone)]
pub struct Tracer {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Tracer")
            .field("service", &self.handle.inner.service)
            .field(
                "collectors",
                &self
                    .handle
                    .inner
                    .collectors
                    .iter()
                    .map(reqwest::Url::as_str)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Tracer {
    /// Starts building the tracer of `service`.
    pub fn builder(service: impl Into<String>) -> TracerBuilder {
        TracerBuilder {
            service: service.into(),
            collector: "http://127.0.0.1:4320".to_string(),
            token: None,
            ca_certificate: None,
            version: None,
            instance: None,
            host: None,
            tags: Vec::new(),
            options: Options::default(),
            #[cfg(feature = "kafka")]
            kafka_spans: None,
        }
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    pub fn service(&self) -> &str {
        &self.inner().service
    }

    /// The route of `event_type` on `stream` of `broker`. Keep it: calls on a route are the
    /// cheapest way to trace.
    pub fn route(&self, event_type: &str, stream: &str, broker: Broker) -> Route {
        Route {
            tracer: self.inner().clone(),
            inner: self.inner().route(event_type, stream, broker),
        }
    }

    /// Records the production of one event (looks the route up; see [`Tracer::route`]).
    pub fn produce(
        &self,
        event_type: &str,
        stream: &str,
        broker: Broker,
        event_id: &str,
    ) -> EventSpan {
        self.route(event_type, stream, broker).produce(event_id)
    }

    /// Records the consumption of a message from `stream`: the event type, id and schema come
    /// from its headers.
    pub fn consume(&self, stream: &str, broker: Broker, carrier: &impl Extractor) -> EventSpan {
        Headers::read(carrier, |headers| {
            let event_type = headers.event_type(&mut None).unwrap_or_default();
            self.route(event_type, stream, broker)
                .consume_headers(headers, false)
        })
    }

    /// Like [`Tracer::consume`], but the span starts a new trace linked to the producer's.
    pub fn consume_linked(
        &self,
        stream: &str,
        broker: Broker,
        carrier: &impl Extractor,
    ) -> EventSpan {
        Headers::read(carrier, |headers| {
            let event_type = headers.event_type(&mut None).unwrap_or_default();
            self.route(event_type, stream, broker)
                .consume_headers(headers, true)
        })
    }

    pub fn stats(&self) -> Stats {
        let inner = self.inner();
        let counters = &inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let sampling = match inner.registry.read() {
            Ok(registry) => (*registry.config).clone(),
            Err(poisoned) => (*poisoned.into_inner().config).clone(),
        };
        Stats {
            spans_queued: inner.queue.queued.get(),
            spans_exported: load(&counters.exported),
            spans_dropped_queue_full: load(&inner.queue.dropped_full),
            spans_dropped_export_failed: load(&counters.dropped_export_failed),
            spans_dropped_rejected: load(&counters.dropped_rejected),
            spans_dropped_shutdown: load(&counters.dropped_shutdown),
            export_attempts_failed: load(&counters.export_attempts_failed),
            queue_spans: inner.queue.len(),
            queue_bytes: inner.queue.bytes(),
            queue_bytes_peak: inner.queue.peak_bytes(),
            max_queue_bytes: inner.queue.max_bytes(),
            counts_sent: load(&counters.counts_sent),
            counts_dropped: load(&counters.counts_dropped),
            config_updates: load(&counters.config_updates),
            config_errors: load(&counters.config_errors),
            sampling,
        }
    }

    /// The tracer's counters in the Prometheus text format, for the service's own `/metrics`.
    pub fn metrics_text(&self) -> String {
        crate::metrics::encode(self.inner())
    }

    /// Registers the tracer's counters in a `prometheus-client` registry the service owns.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(crate::metrics::TracerCollector(
            self.inner().clone(),
        )));
    }

    /// Sends what is queued and the last counts, then stops the export thread; waits at most
    /// `timeout` (spans still queued then are dropped and counted). Returns whether the export
    /// thread finished in time. Blocking: call it at exit, not on an async worker.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let inner = self.inner();
        inner.shutdown.send_replace(true);
        let receiver = match self.handle.done.lock() {
            Ok(mut done) => done.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        match receiver {
            Some(receiver) => !matches!(
                receiver.recv_timeout(timeout),
                Err(mpsc::RecvTimeoutError::Timeout)
            ),
            None => inner.closed.load(Ordering::Relaxed),
        }
    }
}

/// Builds a [`Tracer`]; see [`Options`] for every setting and its default.
#[derive(Debug, Clone)]
pub struct TracerBuilder {
    service: String,
    collector: String,
    token: Option<String>,
    ca_certificate: Option<Vec<u8>>,
    version: Option<String>,
    instance: Option<String>,
    host: Option<String>,
    tags: Vec<(String, String)>,
    options: Options,
    #[cfg(feature = "kafka")]
    kafka_spans: Option<(rdkafka::ClientConfig, String)>,
}

impl TracerBuilder {
    /// Sends span batches to Kafka topic `topic` (the ingest nodes' `[kafka_ingest]` bus)
    /// instead of `POST /api/v1/spans`, one message a batch (gzip'd with a
    /// `content-encoding: gzip` header when `gzip` is on), retried as HTTP sends are; counts
    /// and the sampling config still go to the collector.
    #[cfg(feature = "kafka")]
    pub fn export_spans_to_kafka(
        mut self,
        config: rdkafka::ClientConfig,
        topic: impl Into<String>,
    ) -> Self {
        self.kafka_spans = Some((config, topic.into()));
        self
    }

    /// The collector's base URL (default `http://127.0.0.1:4320`), or several separated by
    /// commas (`http://ingest-a:4320,http://ingest-b:4320`): each trace's spans go to one of
    /// them, chosen by its trace id, so that tail sampling sees whole traces, and to the next
    /// one while that one fails; counts and the sampling config go to one of them at a time.
    pub fn collector(mut self, url: impl Into<String>) -> Self {
        self.collector = url.into();
        self
    }

    /// The API token (`muninn token new --scope ingest`) sent to a collector that asks for
    /// one (default: `$MUNINN_TOKEN`, else none).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// PEM certificates (a private CA, or the collector's own) to trust for an `https://`
    /// collector, besides the system's roots (default: the file `$MUNINN_CA_CERT` names, if
    /// set; `SSL_CERT_FILE` replaces the system's roots as usual).
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificate = Some(pem.into());
        self
    }

    /// The service's version (`service.version` on every span).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// This instance's id (`service.instance.id`; default: a random UUID).
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The host name (`host.name`; default: `$HOSTNAME` or `/etc/hostname`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Another infrastructure tag on every span (region, cluster, pod…).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// Every setting at once.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Changes settings in place: `.configure(|o| o.batch_size = 100)`.
    pub fn configure(mut self, change: impl FnOnce(&mut Options)) -> Self {
        change(&mut self.options);
        self
    }

    /// Validates the settings and starts the export thread. Returns at once: the sampling
    /// config is fetched in the background, and `default_rate` applies until it arrives.
    pub fn build(self) -> Result<Tracer, ConfigError> {
        let field_error = |field: &'static str, reason: String| ConfigError { field, reason };
        if self.service.trim().is_empty() || self.service.len() > 256 {
            return Err(field_error(
                "service",
                "must be 1 to 256 bytes and not blank".to_string(),
            ));
        }
        self.options.validate()?;
        let collectors = self
            .collector
            .split(',')
            .map(|url| {
                let url = url.trim();
                let parsed = reqwest::Url::parse(url).map_err(|error| {
                    field_error(
                        "collector",
                        format!("{url:?} is not a URL ({error}); expected http://HOST:PORT"),
                    )
                })?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(field_error(
                        "collector",
                        format!("{url:?} must be an http:// or https:// URL with a host"),
                    ));
                }
                Ok(parsed)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ca_pem = match self.ca_certificate {
            Some(pem) => Some(pem),
            None => match std::env::var_os("MUNINN_CA_CERT") {
                None => None,
                Some(path) => Some(std::fs::read(&path).map_err(|error| {
                    field_error(
                        "ca_certificate",
                        format!(
                            "$MUNINN_CA_CERT names {}, which cannot be read: {error}",
                            std::path::Path::new(&path).display()
                        ),
                    )
                })?),
            },
        };
        let ca_certificates = match ca_pem {
            None => Vec::new(),
            Some(pem) => reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certificates| !certificates.is_empty())
                .ok_or_else(|| {
                    field_error(
                        "ca_certificate",
                        "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string(),
                    )
                })?,
        };
        let token = self.token.or_else(|| std::env::var("MUNINN_TOKEN").ok());
        let authorization = match token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) => {
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| {
                        field_error(
                            "token",
                            "must be printable ASCII, as `muninn token new` prints it".to_string(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let mut resource: Vec<(String, Value)> = Vec::new();
        let host = self.host.or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|host| host.trim().to_string())
                .filter(|host| !host.is_empty())
        });
        if let Some(host) = host {
            resource.push(("host.name".to_string(), Value::String(host)));
        }
        let instance = self
            .instance
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        resource.push(("service.instance.id".to_string(), Value::String(instance)));
        if let Some(version) = self.version {
            resource.push(("service.version".to_string(), Value::String(version)));
        }
        for (key, value) in self.tags {
            resource.push((key, Value::String(value)));
        }
        let default_ppm = rate_to_ppm(self.options.default_rate).unwrap_or(1_000_000);
        let config = ServiceSamplingConfig {
            service: self.service.clone(),
            default_rate_ppm: default_ppm,
            event_types: Default::default(),
            live_debug: false,
        };
        #[cfg(feature = "kafka")]
        let kafka_spans = match self.kafka_spans {
            None => None,
            Some((config, topic)) => {
                if topic.trim().is_empty() {
                    return Err(field_error(
                        "export_spans_to_kafka",
                        "the topic name is empty".to_string(),
                    ));
                }
                let producer = config.create().map_err(|error| {
                    field_error(
                        "export_spans_to_kafka",
                        format!("the Kafka producer could not be made: {error}"),
                    )
                })?;
                Some(crate::export::KafkaSpans {
                    producer,
                    topic,
                    partitions: std::sync::atomic::AtomicUsize::new(0),
                })
            }
        };
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let inner = Arc::new(Inner {
            service: self.service,
            collectors,
            authorization,
            ca_certificates,
            preferred: std::sync::atomic::AtomicUsize::new(0),
            #[cfg(feature = "kafka")]
            kafka_spans,
            resource,
            inject_mask: formats_mask(&self.options.inject),
            queue: SpanQueue::new(self.options.max_queue_spans, self.options.max_queue_bytes),
            options: self.options,
            registry: RwLock::new(Registry {
                routes: HashMap::new(),
                by_id: Vec::new(),
                config: Arc::new(config),
                etag: None,
            }),
            live_debug: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            shutdown,
            current_minute: AtomicI64::new(crate::route::current_minute()),
            count_lock: Mutex::new(()),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let (done_sender, done) = mpsc::channel();
        crate::export::spawn(inner.clone(), done_sender).map_err(|error| {
            field_error("export thread", format!("could not be started: {error}"))
        })?;
        Ok(Tracer {
            handle: Arc::new(Handle {
                inner,
                done: Mutex::new(Some(done)),
            }),
        })
    }
}
