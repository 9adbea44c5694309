//! The JSON answers of the query API as this command line reads them: the server's response
//! shapes (from `muninn-query`), deserialized leniently (missing fields default, unknown
//! fields are ignored) so that a newer server still prints.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventTypeSummary {
    pub event_type: String,
    pub count: u64,
    pub consumed: u64,
    pub producers: Vec<String>,
    pub consumers: Vec<String>,
    pub streams: Vec<String>,
    pub schemas: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Participant {
    pub service: String,
    pub stream: String,
    pub broker: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub modifies: Option<bool>,
    pub schemas: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StreamSummary {
    pub stream: String,
    pub broker: String,
    pub event_types: Vec<String>,
    pub producers: Vec<String>,
    pub consumers: Vec<String>,
    pub produced: u64,
    pub consumed: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServiceFlow {
    pub event_type: String,
    pub stream: String,
    pub broker: String,
    pub count: u64,
    pub modifies: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServiceSummary {
    pub service: String,
    pub produces: Vec<ServiceFlow>,
    pub consumes: Vec<ServiceFlow>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Point {
    pub time: i64,
    pub count: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Series {
    pub service: String,
    pub action: String,
    pub stream: String,
    pub broker: String,
    pub event_type: String,
    pub total: u64,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Throughput {
    pub from: String,
    pub to: String,
    pub step_seconds: i64,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    pub kind: String,
    pub action: Option<String>,
    pub start_time: String,
    pub start_time_unix_nano: i64,
    pub duration_ns: i64,
    pub status: String,
    pub status_message: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub stream: Option<String>,
    pub broker: Option<String>,
    pub modified: bool,
    pub links: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Hop {
    #[serde(flatten)]
    pub span: SpanView,
    pub lag_ns: Option<i64>,
    pub attempt: u32,
    /// `event_id` or `link` (absent from servers before journeys crossed traces).
    pub joined_by: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Journey {
    pub event_id: String,
    pub event_types: Vec<String>,
    pub traces: Vec<String>,
    pub hops: Vec<Hop>,
    pub unreadable_blocks: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TraceNode {
    #[serde(flatten)]
    pub span: SpanView,
    pub children: Vec<TraceNode>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TraceTree {
    pub trace_id: String,
    pub n_spans: usize,
    pub services: Vec<String>,
    pub roots: Vec<TraceNode>,
    pub unreadable_blocks: Vec<String>,
}
