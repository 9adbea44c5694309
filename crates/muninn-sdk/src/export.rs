//! The export thread: its own single-threaded runtime sends span batches, event-seen counts
//! and fetches the sampling config, with retries, backoff and jitter; nothing here ever
//! waits on the caller, and the caller never waits on it.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use muninn_model::Broker;
use muninn_model::sampling::ServiceSamplingConfig;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::record::{Record, Wire};
use crate::tracer::Inner;

/// Gzip level of request bodies. With zlib-rs (flate2's backend here), level 1 is a quicker
/// strategy whose bodies are about 40% larger than level 2's; level 2 compresses a batch
/// smaller than miniz_oxide's level 1 did (78 against 90 bytes a span of the benchmark's
/// random workload), in about the same time (1.8 against 1.5 ms for 1,000 spans).
pub const GZIP_LEVEL: u32 = 2;

/// Longest `Retry-After` that is honoured as given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Most count records per request.
const COUNTS_PER_REQUEST: usize = 5_000;
/// How often counters are read into per-minute cells.
const COUNT_TICK: Duration = Duration::from_secs(1);

/// A Kafka topic span batches go to instead of the collectors.
#[cfg(feature = "kafka")]
pub(crate) struct KafkaSpans {
    pub producer: rdkafka::producer::FutureProducer,
    pub topic: String,
    /// The topic's partitions, read from the broker on the export thread (0 until known).
    pub partitions: std::sync::atomic::AtomicUsize,
}

#[cfg(feature = "kafka")]
impl KafkaSpans {
    /// The topic's partition count, asked of the broker once (on the export thread, which
    /// nothing waits on); `None` while the broker cannot say.
    fn partitions(&self) -> Option<usize> {
        use rdkafka::producer::Producer as _;
        let known = self.partitions.load(Ordering::Relaxed);
        if known > 0 {
            return Some(known);
        }
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
            .ok()?;
        let count = metadata
            .topics()
            .iter()
            .find(|topic| topic.name() == self.topic)
            .map_or(0, |topic| topic.partitions().len());
        (count > 0).then(|| {
            self.partitions.store(count, Ordering::Relaxed);
            count
        })
    }
}

/// Which of `n` collectors (or Kafka partitions) a trace's spans go to (before any
/// failover): the trace id's high bits, uniform for random ids.
fn collector_of(trace_id: &muninn_model::TraceId, n: usize) -> usize {
    let high = u64::from_be_bytes(trace_id.0[..8].try_into().unwrap_or([0; 8]));
    (high % n as u64) as usize
}

pub(crate) fn spawn(inner: Arc<Inner>, done: mpsc::Sender<()>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("muninn-export-{}", inner.service))
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(run(inner.clone())),
                Err(error) => tracing::warn!(%error, "muninn: export runtime did not start"),
            }
            inner.closed.store(true, Ordering::Relaxed);
            // Spans that raced with the shutdown are counted, not silently lost.
            let mut rest = Vec::new();
            inner.queue.drain(usize::MAX, &mut rest);
            inner
                .counters
                .dropped_shutdown
                .fetch_add(rest.len() as u64, Ordering::Relaxed);
            let _ = done.send(());
        })
        .map(|_| ())
}

async fn run(inner: Arc<Inner>) {
    // Spans are timed with the CPU's counter once it is calibrated; until then with the wall
    // clock.
    crate::clock::calibrate_in_background();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(authorization) = &inner.authorization {
        headers.insert(reqwest::header::AUTHORIZATION, authorization.clone());
    }
    let mut builder = reqwest::Client::builder()
        .timeout(inner.options.request_timeout)
        .connect_timeout(inner.options.request_timeout)
        .default_headers(headers);
    for certificate in &inner.ca_certificates {
        builder = builder.add_root_certificate(certificate.clone());
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "muninn: HTTP client did not start");
            return;
        }
    };
    let exporter = Exporter { inner, client };
    tokio::join!(
        exporter.spans_loop(),
        exporter.counts_loop(),
        exporter.config_loop()
    );
}

/// What a request's failure means for the next attempt.
enum Failure {
    /// Worth retrying, after at least this long (from `Retry-After`), if given.
    Retry(Option<Duration>),
    /// The collector refused the body; retrying would not help.
    Refused(String),
}

struct Exporter {
    inner: Arc<Inner>,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct IngestAnswer {
    /// Every rejected record (the listed `rejected` stop at 1,000).
    #[serde(default)]
    rejected_count: u64,
}

/// Counts taken out of the pending cells to be sent together, with their idempotency key.
struct CountChunk {
    key: String,
    cells: Vec<(CountKey, u64)>,
}

impl CountChunk {
    fn total(&self) -> u64 {
        self.cells.iter().map(|(_, count)| count).sum()
    }
}

#[derive(Serialize)]
struct WireCount<'a> {
    service: &'a str,
    event_type: &'a str,
    stream: &'a str,
    broker: &'static str,
    action: &'static str,
    minute: i64,
    count: u64,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CountKey {
    minute: i64,
    event_type: String,
    stream: String,
    broker: Broker,
    action: &'static str,
}

/// A request body ready to send (and to send again on a retry: cloning `Bytes` copies nothing).
struct Body {
    bytes: bytes::Bytes,
    gzipped: bool,
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

impl Exporter {
    fn shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Waits `duration`, or less if shutdown begins.
    async fn pause(&self, duration: Duration) {
        let mut shutdown = self.inner.shutdown.subscribe();
        if *shutdown.borrow_and_update() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// `path` on collector `index` (modulo their number).
    fn url(&self, index: usize, path: &str) -> reqwest::Url {
        let collectors = &self.inner.collectors;
        let mut url = collectors[index % collectors.len()].clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url
    }

    /// The collector counts and the sampling config go to now.
    fn preferred(&self) -> usize {
        self.inner.preferred.load(Ordering::Relaxed)
    }

    /// Collector `failed` did not answer: the next one is preferred (unless another request
    /// moved on already).
    fn fail_over(&self, failed: usize) {
        let next = (failed + 1) % self.inner.collectors.len();
        let _ = self.inner.preferred.compare_exchange(
            failed,
            next,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The request body for `json`, gzipped at [`GZIP_LEVEL`] when configured: made once per
    /// batch, and sent as is by every retry.
    fn body(&self, json: Vec<u8>) -> Body {
        if self.inner.options.gzip {
            let mut encoder = GzEncoder::new(
                Vec::with_capacity(json.len() / 4),
                Compression::new(GZIP_LEVEL),
            );
            if let Ok(compressed) = encoder.write_all(&json).and_then(|()| encoder.finish()) {
                return Body {
                    bytes: compressed.into(),
                    gzipped: true,
                };
            }
        }
        Body {
            bytes: json.into(),
            gzipped: false,
        }
    }

    /// Posts `body`; `key` goes as `Idempotency-Key`, the same on every retry of one batch,
    /// so a batch whose answer was lost is not stored (and counted) twice. `Ok` carries the
    /// response body.
    async fn post(
        &self,
        collector: usize,
        path: &str,
        body: &Body,
        key: &str,
        deadline: Option<Instant>,
    ) -> Result<bytes::Bytes, Failure> {
        let mut request = self
            .client
            .post(self.url(collector, path))
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(body.bytes.clone());
        if body.gzipped {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            request = request.timeout(left.max(Duration::from_millis(1)));
        }
        let response = request.send().await.map_err(|_| Failure::Retry(None))?;
        let status = response.status();
        if status.is_success() {
            return response.bytes().await.map_err(|_| Failure::Retry(None));
        }
        // 409: an earlier attempt with the same key is still being stored.
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
            || status == StatusCode::CONFLICT
        {
            return Err(Failure::Retry(retry_after(&response)));
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Err(Failure::Retry(None));
        }
        let text = response.text().await.unwrap_or_default();
        Err(Failure::Refused(format!("{status}: {text}")))
    }

    /// Full-jitter exponential backoff before attempt `attempt` (1-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let options = &self.inner.options;
        let cap = options
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(20))
            .min(options.max_backoff);
        cap.mul_f64(fastrand::f64())
    }

    // ---- spans ----

    async fn spans_loop(&self) {
        let inner = &self.inner;
        let mut shutdown = inner.shutdown.subscribe();
        let mut batch = Vec::with_capacity(inner.options.batch_size);
        loop {
            if !*shutdown.borrow_and_update() {
                let live = inner.live_debug.load(Ordering::Relaxed);
                if !live || inner.queue.len() == 0 {
                    tokio::select! {
                        _ = tokio::time::sleep(inner.options.batch_timeout) => {}
                        _ = inner.wake.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
            inner.queue.wake_pending.store(false, Ordering::Release);
            if self.shutting_down() {
                self.drain_at_shutdown(&mut batch).await;
                return;
            }
            loop {
                batch.clear();
                inner.queue.drain(inner.options.batch_size, &mut batch);
                if batch.is_empty() {
                    break;
                }
                let full = batch.len() == inner.options.batch_size;
                self.send_spans(&batch, None).await;
                if self.shutting_down() || !full {
                    break;
                }
            }
        }
    }

    async fn drain_at_shutdown(&self, batch: &mut Vec<Record>) {
        let deadline = Instant::now() + self.inner.options.shutdown_timeout;
        loop {
            batch.clear();
            self.inner.queue.drain(self.inner.options.batch_size, batch);
            if batch.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                self.inner
                    .counters
                    .dropped_shutdown
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                continue;
            }
            self.send_spans(batch, Some(deadline)).await;
        }
    }

    fn encode_spans<R: Borrow<Record>>(&self, batch: &[R]) -> Vec<u8> {
        let mut json = Vec::with_capacity(batch.len() * 600);
        json.push(b'[');
        let routes = self.inner.routes();
        for record in batch {
            let record = record.borrow();
            // Every route a span names is in the registry, which only grows.
            let Some(route) = routes.get(record.route as usize) else {
                continue;
            };
            if json.len() > 1 {
                json.push(b',');
            }
            let wire = Wire {
                record,
                route,
                service: &self.inner.service,
                resource: &self.inner.resource,
            };
            // Serializing plain strings and numbers into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut json, &wire);
        }
        json.push(b']');
        json
    }

    /// Sends `batch`: to the one collector, or split among several by trace id, a part after
    /// the other.
    async fn send_spans(&self, batch: &[Record], deadline: Option<Instant>) {
        #[cfg(feature = "kafka")]
        if let Some(kafka) = &self.inner.kafka_spans {
            return self.produce_spans(kafka, batch, deadline).await;
        }
        let n_collectors = self.inner.collectors.len();
        if n_collectors == 1 {
            return self.send_spans_to(0, batch, deadline).await;
        }
        let mut parts: Vec<Vec<&Record>> = (0..n_collectors).map(|_| Vec::new()).collect();
        for record in batch {
            parts[collector_of(&record.trace_id, n_collectors)].push(record);
        }
        for (collector, part) in parts.iter().enumerate() {
            if !part.is_empty() {
                self.send_spans_to(collector, part, deadline).await;
            }
        }
    }

    /// Sends `batch` to collector `collector`, and on a failure worth retrying, to the next
    /// one at the next attempt (with one collector, the same one again).
    async fn send_spans_to<R: Borrow<Record>>(
        &self,
        collector: usize,
        batch: &[R],
        deadline: Option<Instant>,
    ) {
        let counters = &self.inner.counters;
        let body = self.body(self.encode_spans(batch));
        let count = batch.len() as u64;
        let key = uuid::Uuid::new_v4().to_string();
        let mut attempt = 1;
        loop {
            let target = collector + attempt as usize - 1;
            match self
                .post(target, "/api/v1/spans", &body, &key, deadline)
                .await
            {
                Ok(answer) => {
                    let rejected = serde_json::from_slice::<IngestAnswer>(&answer)
                        .map_or(0, |answer| answer.rejected_count)
                        .min(count);
                    counters
                        .exported
                        .fetch_add(count - rejected, Ordering::Relaxed);
                    counters
                        .dropped_rejected
                        .fetch_add(rejected, Ordering::Relaxed);
                    return;
                }
                Err(Failure::Refused(reason)) => {
                    tracing::warn!(%reason, spans = count, "muninn: collector refused spans");
                    counters
                        .dropped_rejected
                        .fetch_add(count, Ordering::Relaxed);
                    return;
                }
                Err(Failure::Retry(after)) => {
                    counters
                        .export_attempts_failed
                        .fetch_add(1, Ordering::Relaxed);
                    let past_deadline = deadline.is_some_and(|deadline| Instant::now() >= deadline);
                    if attempt >= self.inner.options.max_attempts || past_deadline {
                        counters
                            .dropped_export_failed
                            .fetch_add(count, Ordering::Relaxed);
                        return;
                    }
                    let wait = after.unwrap_or_else(|| self.backoff(attempt));
                    match deadline {
                        Some(deadline) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            tokio::time::sleep(wait.min(left)).await;
                        }
                        None => self.pause(wait).await,
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Produces `batch` to the span topic: split by trace id into one message per partition, so
    /// that a trace's spans reach one ingest node (or whole, to any partition, while the
    /// partitions are unknown).
    #[cfg(feature = "kafka")]
    async fn produce_spans(&self, kafka: &KafkaSpans, batch: &[Record], deadline: Option<Instant>) {
        let Some(n_partitions) = kafka.partitions() else {
            return self.produce_part(kafka, None, batch, deadline).await;
        };
        let mut parts: Vec<Vec<&Record>> = (0..n_partitions).map(|_| Vec::new()).collect();
        for record in batch {
            parts[collector_of(&record.trace_id, n_partitions)].push(record);
        }
        for (partition, part) in parts.iter().enumerate() {
            if !part.is_empty() {
                self.produce_part(kafka, Some(partition as i32), part, deadline)
                    .await;
            }
        }
    }

    /// Produces `batch` as one message, to `partition` if given, retried as `send_spans_to`
    /// retries.
    #[cfg(feature = "kafka")]
    async fn produce_part<R: Borrow<Record>>(
        &self,
        kafka: &KafkaSpans,
        partition: Option<i32>,
        batch: &[R],
        deadline: Option<Instant>,
    ) {
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::FutureRecord;
        let counters = &self.inner.counters;
        let body = self.body(self.encode_spans(batch));
        let count = batch.len() as u64;
        let mut attempt = 1;
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(&kafka.topic).payload(&body.bytes);
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            if body.gzipped {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "content-encoding",
                    value: Some("gzip"),
                }));
            }
            let timeout = deadline.map_or(self.inner.options.request_timeout, |deadline| {
                deadline.saturating_duration_since(Instant::now())
            });
            match kafka.producer.send(record, timeout).await {
                Ok(_) => {
                    counters.exported.fetch_add(count, Ordering::Relaxed);
                    return;
                }
                Err((error, _)) => {
                    tracing::debug!(%error, "muninn: producing a span batch to kafka failed");
                    counters
                        .export_attempts_failed
                        .fetch_add(1, Ordering::Relaxed);
                    let past_deadline = deadline.is_some_and(|deadline| Instant::now() >= deadline);
                    if attempt >= self.inner.options.max_attempts || past_deadline {
                        counters
                            .dropped_export_failed
                            .fetch_add(count, Ordering::Relaxed);
                        return;
                    }
                    self.pause(self.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    // ---- counts ----

    /// Empties every route's minute slots into per-minute cells, and moves the tracer's
    /// current minute forward.
    fn tick_counts(&self, pending: &mut BTreeMap<CountKey, u64>) {
        let minute = crate::route::current_minute();
        self.inner.current_minute.store(minute, Ordering::Relaxed);
        crate::clock::anchor();
        let routes = self.inner.routes();
        let _guard = self.inner.count_lock.lock();
        for route in routes {
            for (action, counter) in [("produced", &route.produced), ("consumed", &route.consumed)]
            {
                for (minute, count) in counter.take(minute) {
                    *pending
                        .entry(CountKey {
                            minute: minute * 60,
                            event_type: route.event_type.clone(),
                            stream: route.stream.clone(),
                            broker: route.broker,
                            action,
                        })
                        .or_insert(0) += count;
                }
            }
        }
        // Past the bound, the oldest minutes go first, and what they held is counted as lost.
        while pending.len() > self.inner.options.max_pending_counts {
            if let Some((_, lost)) = pending.pop_first() {
                self.inner
                    .counters
                    .counts_dropped
                    .fetch_add(lost, Ordering::Relaxed);
            }
        }
    }

    /// Sends what is pending, a chunk at a time. A chunk is taken out of `pending` with its
    /// key and retried unchanged until it is answered, while new counts gather in `pending`:
    /// a retry of a chunk whose answer was lost is then recognised by the server, not counted
    /// twice.
    async fn send_counts(
        &self,
        pending: &mut BTreeMap<CountKey, u64>,
        in_flight: &mut Option<CountChunk>,
        deadline: Option<Instant>,
    ) -> Result<(), Failure> {
        loop {
            if in_flight.is_none() {
                if pending.is_empty() {
                    return Ok(());
                }
                let keys: Vec<CountKey> =
                    pending.keys().take(COUNTS_PER_REQUEST).cloned().collect();
                let cells: Vec<(CountKey, u64)> = keys
                    .into_iter()
                    .filter_map(|key| pending.remove(&key).map(|count| (key, count)))
                    .collect();
                *in_flight = Some(CountChunk {
                    key: uuid::Uuid::new_v4().to_string(),
                    cells,
                });
            }
            let Some(chunk) = in_flight.as_ref() else {
                return Ok(());
            };
            let wire: Vec<WireCount> = chunk
                .cells
                .iter()
                .map(|(key, count)| WireCount {
                    service: &self.inner.service,
                    event_type: &key.event_type,
                    stream: &key.stream,
                    broker: key.broker.as_str(),
                    action: key.action,
                    minute: key.minute,
                    count: *count,
                })
                .collect();
            let body = self.body(serde_json::to_vec(&wire).unwrap_or_default());
            let total = chunk.total();
            let collector = self.preferred();
            match self
                .post(collector, "/api/v1/counts", &body, &chunk.key, deadline)
                .await
            {
                Ok(_) => {
                    *in_flight = None;
                    self.inner
                        .counters
                        .counts_sent
                        .fetch_add(total, Ordering::Relaxed);
                }
                Err(Failure::Refused(reason)) => {
                    tracing::warn!(%reason, "muninn: collector refused counts");
                    *in_flight = None;
                    self.inner
                        .counters
                        .counts_dropped
                        .fetch_add(total, Ordering::Relaxed);
                }
                Err(failure) => {
                    self.fail_over(collector);
                    return Err(failure);
                }
            }
        }
    }

    async fn counts_loop(&self) {
        let mut pending = BTreeMap::new();
        let mut in_flight: Option<CountChunk> = None;
        let mut next_send = Instant::now() + self.inner.options.counts_interval;
        let mut failures = 0u32;
        let mut shutdown = self.inner.shutdown.subscribe();
        loop {
            if !*shutdown.borrow_and_update() {
                tokio::select! {
                    _ = tokio::time::sleep(COUNT_TICK) => {}
                    _ = shutdown.changed() => {}
                }
            }
            self.tick_counts(&mut pending);
            if self.shutting_down() {
                let deadline = Instant::now() + self.inner.options.shutdown_timeout;
                if self
                    .send_counts(&mut pending, &mut in_flight, Some(deadline))
                    .await
                    .is_err()
                {
                    let lost: u64 = pending.values().sum::<u64>()
                        + in_flight.as_ref().map_or(0, CountChunk::total);
                    self.inner
                        .counters
                        .counts_dropped
                        .fetch_add(lost, Ordering::Relaxed);
                }
                return;
            }
            if Instant::now() < next_send {
                continue;
            }
            match self.send_counts(&mut pending, &mut in_flight, None).await {
                Ok(()) => {
                    failures = 0;
                    next_send = Instant::now() + self.inner.options.counts_interval;
                }
                Err(Failure::Retry(after)) => {
                    failures += 1;
                    let wait = after.unwrap_or_else(|| self.backoff(failures));
                    next_send = Instant::now() + wait.max(COUNT_TICK);
                }
                Err(Failure::Refused(_)) => {}
            }
        }
    }

    // ---- sampling config ----

    async fn fetch_config(&self) -> Result<(), String> {
        let etag = match self.inner.registry.read() {
            Ok(registry) => registry.etag.clone(),
            Err(_) => None,
        };
        let collector = self.preferred();
        let mut url = self.url(collector, "/api/v1/sampling/config");
        url.query_pairs_mut()
            .append_pair("service", &self.inner.service);
        let mut request = self.client.get(url);
        if let Some(etag) = &etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                self.fail_over(collector);
                return Err(error.to_string());
            }
        };
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(()),
            StatusCode::OK => {
                let etag = response
                    .headers()
                    .get(ETAG)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string);
                let body = response.bytes().await.map_err(|error| error.to_string())?;
                let config: ServiceSamplingConfig =
                    serde_json::from_slice(&body).map_err(|error| error.to_string())?;
                if config.service != self.inner.service {
                    return Err(format!(
                        "config is for service {:?}, not {:?}",
                        config.service, self.inner.service
                    ));
                }
                self.inner.apply_config(config, etag);
                Ok(())
            }
            status => Err(format!("answered {status}")),
        }
    }

    async fn config_loop(&self) {
        loop {
            if self.shutting_down() {
                return;
            }
            if let Err(reason) = self.fetch_config().await {
                tracing::debug!(%reason, "muninn: sampling config not fetched; keeping the current one");
                self.inner
                    .counters
                    .config_errors
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.pause(self.inner.options.sampling_refresh).await;
        }
    }
}
