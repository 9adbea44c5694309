//! Helpers for the engine's unit tests: a store on a simulated file system and event spans.

use std::sync::Arc;

use muninn_model::{
    Broker, EventColumns, NANOS_PER_SECOND, Span, SpanId, SpanKind, Status, TraceId,
};

use super::{Store, StoreConfig};
use crate::fs::SimulatedFs;

pub(crate) const DATA_DIR: &str = "/data";
pub(crate) const HOUR: i64 = 3600 * NANOS_PER_SECOND;

pub(crate) async fn open(fs: &SimulatedFs) -> Store {
    Store::open_with_file_system(StoreConfig::new(DATA_DIR), Arc::new(fs.clone()))
        .await
        .unwrap()
}

/// A producer span of trace `trace`, `hours_ago` hours before now.
pub(crate) fn event_span(trace: u8, hours_ago: i64) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([trace; 8]),
        parent_span_id: None,
        name: "publish".into(),
        kind: SpanKind::Producer,
        service: "checkout".into(),
        resource: muninn_model::empty_resource(),
        start_unix_nanos: muninn_model::now_unix_nanos() - hours_ago * HOUR,
        duration_nanos: 1_000,
        status: Status::default(),
        attributes: Vec::new(),
        links: Vec::new(),
        event: EventColumns {
            event_id: Some(format!("event-{trace}").into()),
            event_type: Some("order.created".into()),
            stream: Some("orders".into()),
            broker: Some(Broker::Kafka),
            ..EventColumns::default()
        },
    }
}
