//! Test support: a real server on loopback over a temporary data directory, an HTTP client
//! whose every answer is checked against `openapi.yaml`, and the small deterministic fleet of
//! spans and counts that the query tests describe.

use std::time::Duration;

use muninn_server::{RunningServer, ServerConfig};
use serde_json::{Value, json};

/// A rustls client configuration (ring) that trusts only the PEM certificate `ca_pem`.
pub fn tls_client_config(ca_pem: &str) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(certificate.expect("a PEM certificate"))
            .expect("a certificate rustls accepts");
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

/// A server started with `muninn_server::start` on port 0 of loopback. Restarting keeps the
/// data directory; dropping the value deletes it.
pub struct TestServer {
    running: Option<RunningServer>,
    config: ServerConfig,
    // Held for its `Drop`: the directory lives as long as the server may use it.
    _data_dir: tempfile::TempDir,
    pub api: Api,
}

impl TestServer {
    /// A server with the default configuration.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose configuration `configure` may change first (body limit, validation limits).
    pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("creating a temporary data directory");
        let mut config = ServerConfig::new(data_dir.path(), 0);
        configure(&mut config);
        let running = muninn_server::start(config.clone())
            .await
            .expect("starting the server");
        let api = Api::new(running.base_url());
        TestServer {
            running: Some(running),
            config,
            _data_dir: data_dir,
            api,
        }
    }

    /// Stops the server (which flushes the head) and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.restart_after(|_| {}).await;
    }

    /// Stops the server and starts it again on the same data directory with `change` made to
    /// its configuration.
    pub async fn restart_with(&mut self, change: impl FnOnce(&mut ServerConfig)) {
        change(&mut self.config);
        self.restart().await;
    }

    /// Stops the server, lets `change` edit the data directory, and starts it again.
    pub async fn restart_after(&mut self, change: impl FnOnce(&std::path::Path)) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        change(&self.config.store.data_dir);
        let running = muninn_server::start(self.config.clone())
            .await
            .expect("restarting the server");
        self.api = Api::new(running.base_url());
        self.running = Some(running);
    }

    /// The data directory, which outlives restarts.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.store.data_dir
    }

    /// `http://127.0.0.1:PORT` of the running server.
    pub fn base_url(&self) -> String {
        self.running
            .as_ref()
            .map(RunningServer::base_url)
            .expect("the server is running")
    }

    /// The bound OTLP/gRPC address, when the configuration set `otlp_grpc_listen`.
    pub fn otlp_grpc_addr(&self) -> Option<std::net::SocketAddr> {
        self.running
            .as_ref()
            .and_then(|running| running.otlp_grpc_addr)
    }

    /// `POST /api/v1/admin/flush`, expecting success; returns the flush answer.
    pub async fn flush(&self) -> Value {
        let answer = self.api.post("/api/v1/admin/flush", Vec::new(), &[]).await;
        assert_eq!(answer.status, 200, "flush failed: {}", answer.text);
        answer.json()
    }

    /// `POST /api/v1/admin/compact`, expecting success; returns the compaction answer.
    pub async fn compact(&self) -> Value {
        let answer = self
            .api
            .post("/api/v1/admin/compact", Vec::new(), &[])
            .await;
        assert_eq!(answer.status, 200, "compaction failed: {}", answer.text);
        answer.json()
    }

    /// Ingests the whole fleet (spans, then counts), expecting every record to be accepted.
    pub async fn ingest_fleet(&self, fleet: &Fleet) {
        self.api.ingest_ok("/api/v1/spans", &fleet.spans).await;
        self.api.ingest_ok("/api/v1/counts", &fleet.counts).await;
    }

    /// A slow sender that announces a `bytes`-long body of spans and sends one byte of it, so
    /// that its body holds `bytes` of `max_body_memory` until the returned connection is
    /// dropped; returns once `/metrics` shows them held.
    pub async fn hold_body_memory(&self, bytes: u64) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let address = self.base_url().trim_start_matches("http://").to_string();
        let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
        slow.write_all(
            format!(
                "POST /api/v1/spans HTTP/1.1\r\nhost: {address}\r\ncontent-type: \
                 application/json\r\ncontent-length: {bytes}\r\n\r\n["
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let metrics = self.api.get("/metrics", &[]).await.text;
            let held: u64 = metrics
                .lines()
                .find_map(|line| line.strip_prefix("muninn_ingest_body_bytes "))
                .and_then(|value| value.trim().parse().ok())
                .unwrap();
            if held >= bytes {
                return slow;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the slow body holds {held} of {bytes} bytes after 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

/// One HTTP answer, read completely.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// A response header as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("answer is not JSON ({error}): {}", self.text))
    }

    /// The `error` object of an error answer, after checking its `status` repeats the HTTP one.
    pub fn error(&self) -> Value {
        let body = self.json();
        let error = body
            .get("error")
            .unwrap_or_else(|| panic!("no `error` in {body}"))
            .clone();
        assert_eq!(
            error["status"],
            json!(self.status),
            "status in the body differs from HTTP: {body}"
        );
        error
    }

    /// Asserts the status and that the error names `field`; returns the error object.
    pub fn expect_bad_field(&self, field: &str) -> Value {
        assert_eq!(
            self.status, 400,
            "expected 400 for a bad {field}, got {}: {}",
            self.status, self.text
        );
        let error = self.error();
        assert_eq!(
            error["field"],
            json!(field),
            "error names the wrong field: {error}"
        );
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(field),
            "message does not name {field}: {message}"
        );
        error
    }
}

/// An HTTP client for one server. Every answer is checked against the OpenAPI document.
#[derive(Clone)]
pub struct Api {
    base_url: String,
    client: reqwest::Client,
}

impl Api {
    fn new(base_url: String) -> Api {
        // A generous timeout turns a hanging handler into a failing test instead of a stuck one.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building the client");
        Api { base_url, client }
    }

    /// The same server, every request carrying `Authorization: Bearer token`.
    pub fn with_token(&self, token: &str) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("a header value"),
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .expect("building the client");
        Api {
            base_url: self.base_url.clone(),
            client,
        }
    }

    async fn read(path: &str, method: &str, response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let headers = response.headers().clone();
        let text = response.text().await.expect("reading the answer body");
        let answer = Answer {
            status,
            content_type,
            text,
            headers,
        };
        crate::openapi::check_answer(method, path, &answer);
        answer
    }

    /// `method path` without a body; also returns the `Allow` header.
    pub async fn request(&self, method: &str, path: &str) -> (Answer, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        let response = self
            .client
            .request(method.clone(), format!("{}{path}", self.base_url))
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        let allow = response
            .headers()
            .get(reqwest::header::ALLOW)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (
            Api::read(path, &method.as_str().to_ascii_lowercase(), response).await,
            allow,
        )
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Answer {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        Api::read(path, "get", response).await
    }

    /// `GET path?query`, expecting 200 and JSON.
    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let answer = self.get(path, query).await;
        assert_eq!(answer.status, 200, "GET {path} {query:?}: {}", answer.text);
        answer.json()
    }

    /// `POST path` with a raw body and extra headers.
    pub async fn post(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST {path}: {error}"));
        Api::read(path, "post", response).await
    }

    /// `method path?query` with an optional body and extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base_url))
            .query(query);
        if let Some(body) = body {
            request = request.body(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        Api::read(path, &method.as_str().to_ascii_lowercase(), response).await
    }

    /// `method path` with a JSON body.
    pub async fn send_json(&self, method: &str, path: &str, body: &Value) -> Answer {
        let body = serde_json::to_vec(body).expect("encoding the body");
        self.send(
            method,
            path,
            &[],
            Some(body),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// Posts records as a JSON array.
    pub async fn ingest(&self, path: &str, records: &[Value]) -> Answer {
        let body = serde_json::to_vec(records).expect("encoding records");
        self.post(path, body, &[("content-type", "application/json")])
            .await
    }

    /// Posts records as a JSON array, expecting every one to be accepted.
    pub async fn ingest_ok(&self, path: &str, records: &[Value]) {
        let answer = self.ingest(path, records).await;
        assert_eq!(answer.status, 200, "POST {path}: {}", answer.text);
        assert_eq!(
            answer.json(),
            json!({"accepted": records.len(), "rejected_count": 0, "rejected": []}),
            "POST {path}"
        );
    }
}

pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
pub const NANOS_PER_MILLI: i64 = 1_000_000;

pub fn rfc3339(unix_nanos: i64) -> String {
    muninn_model::format_rfc3339_nanos(unix_nanos)
}

/// The trace of order `order` (1..=5); `0x1b` is the shipping retry's own trace.
pub fn trace_id(order: u32) -> String {
    format!("7ace{order:028x}")
}

/// Span `step` of order `order`.
pub fn span_id(order: u32, step: u32) -> String {
    format!("{order:02x}{step:014x}")
}

pub const RETRY_TRACE: u32 = 0x1b;
pub const INVENTORY_TRACE: &str = "5eed0000000000000000000000000001";
pub const INVENTORY_SPAN: &str = "ab00000000000001";

/// A small shop, the same on every run except for where it sits in time:
///
/// * `checkout` publishes `order.created` (schema `order.v1`) to kafka `orders`; orders 1-3 in
///   the first minute, 4-5 in the second. It also counts 2 events for the first minute (fewer
///   than its 3 spans, so the spans win).
/// * `billing` consumes them; it counts 40 for the second minute (more than its 2 spans).
/// * `enricher` consumes them, modifying the payload, and publishes `order.enriched`
///   (`order.v2`) to nats `orders.enriched`.
/// * `shipping` consumes `order.enriched`; for order 1 the first attempt fails and the retry,
///   two seconds later, runs in a trace of its own linked to the publish.
/// * `inventory` publishes `stock.reserved` to nats `stock`: 1 sampled span and a count of
///   100 in the third minute.
///
/// Every order's spans form one trace: `POST /orders` (server) → publish → the two consumers,
/// the enricher's consume → its publish → shipping.
pub struct Fleet {
    /// Unix seconds of the first minute, a multiple of 300, 15 to 20 minutes ago.
    pub minute: i64,
    pub spans: Vec<Value>,
    pub counts: Vec<Value>,
}

/// `base` with the members of `extra` added.
pub fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// A span without event fields.
pub fn span(
    trace_id: &str,
    span_id: &str,
    parent: Option<&str>,
    service: &str,
    name: &str,
    kind: &str,
    start: i64,
) -> Value {
    let mut span = json!({
        "trace_id": trace_id,
        "span_id": span_id,
        "name": name,
        "kind": kind,
        "service": service,
        "start_time_unix_nano": start,
        "duration_nano": NANOS_PER_MILLI,
    });
    if let Some(parent) = parent {
        span["parent_span_id"] = json!(parent);
    }
    span
}

/// Event fields for `with`.
pub fn event(event_id: &str, event_type: &str, schema: &str, stream: &str, broker: &str) -> Value {
    json!({"event_id": event_id, "event_type": event_type, "schema": schema, "stream": stream, "broker": broker})
}

impl Fleet {
    pub fn new() -> Fleet {
        let now_seconds = muninn_model::now_unix_nanos() / NANOS_PER_SECOND;
        Fleet::at((now_seconds - 15 * 60).div_euclid(300) * 300)
    }

    /// The start time of order `order`, in unix nanoseconds.
    pub fn order_start(&self, order: u32) -> i64 {
        let offset_seconds = if order <= 3 {
            10 * i64::from(order)
        } else {
            60 + 10 * (i64::from(order) - 3)
        };
        (self.minute + offset_seconds) * NANOS_PER_SECOND
    }

    fn at(minute: i64) -> Fleet {
        let mut fleet = Fleet {
            minute,
            spans: Vec::new(),
            counts: Vec::new(),
        };
        for order in 1..=5u32 {
            let start = fleet.order_start(order);
            let trace = trace_id(order);
            let id = |step| span_id(order, step);
            let order_event = format!("order-{order}");
            let created = event(&order_event, "order.created", "order.v1", "orders", "kafka");
            let enriched = event(
                &order_event,
                "order.enriched",
                "order.v2",
                "orders.enriched",
                "nats",
            );
            let mut request = span(
                &trace,
                &id(1),
                None,
                "checkout",
                "POST /orders",
                "server",
                start,
            );
            request["duration_nano"] = json!(5 * NANOS_PER_MILLI);
            request["attributes"] = json!({"http.method": "POST", "http.status_code": 201, "retry": false, "ratio": 0.5});
            request["resource"] = json!({"host.name": "checkout-0", "service.version": "1.4.2"});
            let publish = with(
                span(
                    &trace,
                    &id(2),
                    Some(&id(1)),
                    "checkout",
                    "publish order.created",
                    "producer",
                    start + NANOS_PER_MILLI,
                ),
                with(
                    created.clone(),
                    json!({"partition": order % 3, "offset": 100 + order, "message_id": format!("m-{order}")}),
                ),
            );
            let billing = with(
                span(
                    &trace,
                    &id(3),
                    Some(&id(2)),
                    "billing",
                    "consume order.created",
                    "consumer",
                    start + 20 * NANOS_PER_MILLI,
                ),
                created.clone(),
            );
            let enrich = with(
                span(
                    &trace,
                    &id(4),
                    Some(&id(2)),
                    "enricher",
                    "enrich order",
                    "consumer",
                    start + 30 * NANOS_PER_MILLI,
                ),
                with(created, json!({"modified": true})),
            );
            let republish = with(
                span(
                    &trace,
                    &id(5),
                    Some(&id(4)),
                    "enricher",
                    "publish order.enriched",
                    "producer",
                    start + 35 * NANOS_PER_MILLI,
                ),
                enriched.clone(),
            );
            let mut shipping = with(
                span(
                    &trace,
                    &id(6),
                    Some(&id(5)),
                    "shipping",
                    "consume order.enriched",
                    "consumer",
                    start + 50 * NANOS_PER_MILLI,
                ),
                enriched.clone(),
            );
            fleet
                .spans
                .extend([request, publish, billing, enrich, republish]);
            if order == 1 {
                shipping["status"] = json!({"code": "error", "message": "carrier timed out"});
                let retry = with(
                    span(
                        &trace_id(RETRY_TRACE),
                        &id(7),
                        None,
                        "shipping",
                        "consume order.enriched",
                        "consumer",
                        start + 2 * NANOS_PER_SECOND,
                    ),
                    with(
                        enriched,
                        json!({"links": [{"trace_id": trace, "span_id": id(5), "attributes": {"reason": "retry"}}]}),
                    ),
                );
                fleet.spans.extend([shipping, retry]);
            } else {
                fleet.spans.push(shipping);
            }
        }
        fleet.spans.push(with(
            span(
                INVENTORY_TRACE,
                INVENTORY_SPAN,
                None,
                "inventory",
                "reserve stock",
                "producer",
                (minute + 125) * NANOS_PER_SECOND,
            ),
            event("stock-1", "stock.reserved", "stock.v1", "stock", "nats"),
        ));
        let count = |service: &str,
                     event_type: &str,
                     stream: &str,
                     broker: &str,
                     action: &str,
                     minute: i64,
                     count: u64| {
            json!({"service": service, "event_type": event_type, "stream": stream, "broker": broker, "action": action, "minute": minute, "count": count})
        };
        fleet.counts = vec![
            count(
                "checkout",
                "order.created",
                "orders",
                "kafka",
                "produced",
                minute,
                2,
            ),
            // Any second of the minute names the minute.
            count(
                "billing",
                "order.created",
                "orders",
                "kafka",
                "consumed",
                minute + 60 + 17,
                40,
            ),
            count(
                "inventory",
                "stock.reserved",
                "stock",
                "nats",
                "produced",
                minute + 120,
                100,
            ),
        ];
        fleet
    }

    /// `from`/`to` as unix seconds around the fleet, so answers do not depend on the clock.
    pub fn range(&self) -> [(&'static str, String); 2] {
        [
            ("from", (self.minute - 3600).to_string()),
            ("to", (self.minute + 3600).to_string()),
        ]
    }

    /// The same span objects in the order given by `order` (for order-independence tests).
    pub fn spans_reordered(&self, order: impl Fn(&mut Vec<Value>)) -> Vec<Value> {
        let mut spans = self.spans.clone();
        order(&mut spans);
        spans
    }
}

/// Borrows `[(String, String)]` as the `[(&str, &str)]` that `Api::get` takes.
pub fn params<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// A line diff of `expected` and `actual` (longest common subsequence), for golden failures.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for old_idx in (0..old.len()).rev() {
        for new_idx in (0..new.len()).rev() {
            common[old_idx][new_idx] = if old[old_idx] == new[new_idx] {
                common[old_idx + 1][new_idx + 1] + 1
            } else {
                common[old_idx + 1][new_idx].max(common[old_idx][new_idx + 1])
            };
        }
    }
    let (mut old_idx, mut new_idx) = (0, 0);
    let mut out = String::new();
    while old_idx < old.len() || new_idx < new.len() {
        if old_idx < old.len() && new_idx < new.len() && old[old_idx] == new[new_idx] {
            out.push_str(&format!("  {}\n", old[old_idx]));
            old_idx += 1;
            new_idx += 1;
        } else if old_idx < old.len()
            && (new_idx == new.len()
                || common[old_idx + 1][new_idx] >= common[old_idx][new_idx + 1])
        {
            out.push_str(&format!("- {}\n", old[old_idx]));
            old_idx += 1;
        } else {
            out.push_str(&format!("+ {}\n", new[new_idx]));
            new_idx += 1;
        }
    }
    out
}

/// The value of the sample `name` (with its labels, if any) in a `/metrics` text; panics
/// naming it when it is not there.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
}
