//! A real Muninn collector on loopback for SDK tests, and the HTTP calls the tests make to it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use muninn_sdk::{Tracer, TracerBuilder};
use muninn_server::{RunningServer, ServerConfig, start};
use serde_json::Value;

pub struct Collector {
    pub server: Option<RunningServer>,
    pub url: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Collector {
    pub async fn start() -> Collector {
        Collector::start_with(|_| {}).await
    }

    /// With the settings `configure` changes.
    pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Collector {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = ServerConfig::new(dir.path(), 0);
        configure(&mut config);
        let server = start(config).await.expect("the collector starts");
        Collector {
            url: server.base_url(),
            server: Some(server),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .expect("GET answers");
        let status = response.status();
        let body = response.text().await.expect("body");
        assert!(status.is_success(), "GET {path} {query:?}: {status} {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The lineage edges as (service, action, stream, event_type, count) tuples, sorted.
    pub async fn edges(&self) -> Vec<(String, String, String, String, u64)> {
        let lineage = self.get("/api/v1/lineage", &[("from", "-1h")]).await;
        let mut edges: Vec<_> = lineage["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|edge| {
                (
                    edge["service"].as_str().unwrap_or_default().to_string(),
                    edge["action"].as_str().unwrap_or_default().to_string(),
                    edge["stream"].as_str().unwrap_or_default().to_string(),
                    edge["event_type"].as_str().unwrap_or_default().to_string(),
                    edge["count"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        edges.sort();
        edges
    }

    /// Total events counted in the last hour for (service, action), from `/throughput`.
    pub async fn throughput_total(&self, service: &str, action: &str) -> u64 {
        let answer = self
            .get(
                "/api/v1/throughput",
                &[
                    ("from", "-1h"),
                    ("to", "+5m"),
                    ("service", service),
                    ("action", action),
                ],
            )
            .await;
        answer["series"]
            .as_array()
            .expect("series")
            .iter()
            .map(|series| series["total"].as_u64().unwrap_or_default())
            .sum()
    }

    /// Polls `check` on the journey of `event_id` until it holds or 10 s pass.
    pub async fn journey(&self, event_id: &str) -> Value {
        self.get(&format!("/api/v1/events/{event_id}"), &[]).await
    }
}

/// Retries an async condition every 50 ms for up to `within`; panics with `what` otherwise.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `target/<profile>/examples/<name>`, next to this test's own binary in `deps/`.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// Short batch, count and refresh intervals and backoffs, so tests run quickly.
pub fn quick(builder: TracerBuilder) -> TracerBuilder {
    builder.configure(|options| {
        options.batch_timeout = Duration::from_millis(100);
        options.counts_interval = Duration::from_millis(200);
        options.sampling_refresh = Duration::from_millis(200);
        options.initial_backoff = Duration::from_millis(20);
        options.max_backoff = Duration::from_millis(200);
    })
}

pub async fn shutdown(tracer: &Tracer) {
    let tracer = tracer.clone();
    let finished = tokio::task::spawn_blocking(move || tracer.shutdown(Duration::from_secs(10)))
        .await
        .expect("shutdown runs");
    assert!(finished, "the export thread stops within its deadline");
}
