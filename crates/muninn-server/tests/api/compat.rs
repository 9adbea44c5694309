//! Test support shared by the Jaeger and Zipkin API tests: a small fleet of request spans whose
//! names, durations, tags and times tell the search filters apart, the golden documents of
//! answers ("request line" → answer, times made relative to the fleet), and the filter cases
//! run against memory and again against blocks after a flush.

use serde_json::{Value, json};

use crate::lineage_golden::check_golden;
use crate::support::{Answer, Api, Fleet, NANOS_PER_MILLI, NANOS_PER_SECOND, TestServer, span};

/// Trace `n` of the search fleet, 32 hex characters.
pub fn search_trace(n: u32) -> String {
    format!("a1{n:030x}")
}

/// Five traces, each one second after the last, 30 minutes ago:
///
/// | trace | service: span (duration) | tags |
/// |---|---|---|
/// | 1 | api: `GET /a` (2 ms) | `http.status_code` 200, `region` us |
/// | 2 | api: `GET /b` (20 ms), error `boom` | `http.status_code` 500 |
/// | 3 | api: `GET /a` (200 ms) | `http.status_code` 200, `region` eu |
/// | 4 | db: `SELECT` (1 ms, client) | `peer.service` postgres |
/// | 5 | api: `GET /a` (3 ms) → db: `SELECT` (1 ms, client) | db span: `peer.service` mysql |
pub struct SearchFleet {
    /// Unix nanoseconds of the first trace's start minus one second.
    pub base: i64,
    pub spans: Vec<Value>,
}

impl SearchFleet {
    pub fn new() -> SearchFleet {
        let now = muninn_model::now_unix_nanos();
        let base = (now - 30 * 60 * NANOS_PER_SECOND) / NANOS_PER_SECOND * NANOS_PER_SECOND;
        let at = |n: i64| base + n * NANOS_PER_SECOND;
        let request = |n: u32, service: &str, name: &str, kind: &str, millis: i64, tags: Value| {
            let mut span = span(
                &search_trace(n),
                &format!("{n:016x}"),
                None,
                service,
                name,
                kind,
                at(i64::from(n)),
            );
            span["duration_nano"] = json!(millis * NANOS_PER_MILLI);
            span["attributes"] = tags;
            span
        };
        let mut failed = request(
            2,
            "api",
            "GET /b",
            "server",
            20,
            json!({"http.status_code": 500}),
        );
        failed["status"] = json!({"code": "error", "message": "boom"});
        let mut child = span(
            &search_trace(5),
            "0000000000000055",
            Some(&format!("{:016x}", 5)),
            "db",
            "SELECT",
            "client",
            at(5) + NANOS_PER_MILLI,
        );
        child["attributes"] = json!({"peer.service": "mysql"});
        let spans = vec![
            request(
                1,
                "api",
                "GET /a",
                "server",
                2,
                json!({"http.status_code": 200, "region": "us"}),
            ),
            failed,
            request(
                3,
                "api",
                "GET /a",
                "server",
                200,
                json!({"http.status_code": 200, "region": "eu"}),
            ),
            request(
                4,
                "db",
                "SELECT",
                "client",
                1,
                json!({"peer.service": "postgres"}),
            ),
            request(5, "api", "GET /a", "server", 3, json!({})),
            child,
        ];
        SearchFleet { base, spans }
    }

    /// Unix microseconds of `seconds` after `base`.
    pub fn micros(&self, seconds_tenths: i64) -> String {
        ((self.base + seconds_tenths * NANOS_PER_SECOND / 10) / 1000).to_string()
    }

    /// Unix milliseconds of `seconds` after `base`.
    pub fn millis(&self, seconds_tenths: i64) -> String {
        ((self.base + seconds_tenths * NANOS_PER_SECOND / 10) / NANOS_PER_MILLI).to_string()
    }
}

/// One search: its parameters and the traces (by number, most recent first) it must find.
pub struct Case {
    pub what: &'static str,
    pub params: Vec<(&'static str, String)>,
    pub expected: Vec<u32>,
}

/// The trace numbers in a list of trace ids (in the order given).
pub fn trace_numbers(ids: &[String]) -> Vec<u32> {
    ids.iter()
        .map(|id| {
            let full = format!("{id:0>32}");
            assert!(full.starts_with("a1"), "not a search-fleet trace: {id}");
            u32::from_str_radix(&full[2..], 16).expect("a hex trace id")
        })
        .collect()
}

/// Runs every case through `find` (which returns the trace ids of one search), with the spans
/// in memory and again after a flush, when they are read from Parquet blocks.
pub async fn check_cases<F, Fut>(server: &TestServer, cases: &[Case], find: F)
where
    F: Fn(Api, Vec<(&'static str, String)>) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    for phase in ["memory", "blocks"] {
        if phase == "blocks" {
            server.flush().await;
        }
        for case in cases {
            let found = trace_numbers(&find(server.api.clone(), case.params.clone()).await);
            assert_eq!(
                found, case.expected,
                "{} ({phase}): {:?}",
                case.what, case.params
            );
        }
    }
}

/// Replaces each number under one of `keys` with `T+<microseconds after the fleet's first
/// minute>`, so golden files do not depend on when the test runs.
pub fn relative_times(value: &mut Value, fleet: &Fleet, keys: &[&str]) {
    let base_micros = fleet.minute * 1_000_000;
    match value {
        Value::Object(object) => {
            for (key, member) in object.iter_mut() {
                match member.as_i64() {
                    Some(micros) if keys.contains(&key.as_str()) => {
                        *member = json!(format!("T+{}us", micros - base_micros));
                    }
                    _ => relative_times(member, fleet, keys),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                relative_times(item, fleet, keys);
            }
        }
        _ => {}
    }
}

/// The fleet's window as placeholders in request lines and as values in requests.
pub struct Window {
    pub placeholders: Vec<(&'static str, String)>,
}

impl Window {
    pub fn of(fleet: &Fleet) -> Window {
        let start = fleet.minute - 3600;
        let end = fleet.minute + 3600;
        Window {
            placeholders: vec![
                ("{start_us}", (start * 1_000_000).to_string()),
                ("{end_us}", (end * 1_000_000).to_string()),
                ("{end_ms}", (end * 1000).to_string()),
                ("{lookback_ms}", "7200000".to_string()),
            ],
        }
    }

    fn fill(&self, text: &str) -> String {
        self.placeholders
            .iter()
            .fold(text.to_string(), |text, (name, value)| {
                text.replace(name, value)
            })
    }
}

/// A golden document: each request line (with placeholders) and its JSON answer.
pub struct Golden {
    entries: serde_json::Map<String, Value>,
}

impl Golden {
    pub fn new() -> Golden {
        Golden {
            entries: serde_json::Map::new(),
        }
    }

    /// `GET path?query` (placeholders filled in), expecting 200 and JSON; records the answer
    /// with its times made relative under `time_keys`, and returns the raw answer.
    pub async fn get(
        &mut self,
        api: &Api,
        window: &Window,
        fleet: &Fleet,
        path: &str,
        query: &[(&str, &str)],
        time_keys: &[&str],
    ) -> Value {
        let filled: Vec<(String, String)> = query
            .iter()
            .map(|(name, value)| (name.to_string(), window.fill(value)))
            .collect();
        let pairs: Vec<(&str, &str)> = filled
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let answer: Answer = api.get(path, &pairs).await;
        assert_eq!(answer.status, 200, "GET {path} {pairs:?}: {}", answer.text);
        let raw = answer.json();
        let mut shown = raw.clone();
        relative_times(&mut shown, fleet, time_keys);
        let line = if query.is_empty() {
            format!("GET {path}")
        } else {
            let query: Vec<String> = query
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            format!("GET {path}?{}", query.join("&"))
        };
        self.entries.insert(line, shown);
        raw
    }

    /// The document as pretty JSON.
    pub fn text(&self) -> String {
        let mut text = serde_json::to_string_pretty(&Value::Object(self.entries.clone()))
            .expect("encoding the golden document");
        text.push('\n');
        text
    }

    pub fn check(&self, name: &str) {
        check_golden(name, &self.text());
    }
}
