//! Shared test helpers: deterministic ids, spans and counts, opening a store in a directory,
//! and reading back roll-ups and the files on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use muninn_model::{
    Action, AttributeValue, Broker, EventColumns, EventCount, Link, RollupKey, Span, SpanId,
    SpanKind, Status, StatusCode, TraceId,
};
use muninn_store::{RollupCell, Store, StoreConfig};

pub const NANOS_PER_MILLISECOND: i64 = 1_000_000;
pub const NANOS_PER_HOUR: i64 = 3600 * 1_000_000_000;

/// Unix nanoseconds of an RFC 3339 time, for fixed timestamps in tests.
pub fn at(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

pub fn trace_id(trace_number: u64) -> TraceId {
    let mut bytes = [0x4d; 16];
    bytes[8..].copy_from_slice(&trace_number.to_be_bytes());
    TraceId(bytes)
}

pub fn span_id(trace_number: u64, span_number: u64) -> SpanId {
    SpanId((trace_number << 16 | span_number | 1 << 63).to_be_bytes())
}

pub fn event_id(trace_number: u64) -> String {
    format!("evt-{trace_number:04}")
}

fn order_event(trace_number: u64) -> EventColumns {
    EventColumns {
        event_id: Some(event_id(trace_number).into()),
        event_type: Some("order.placed".into()),
        schema: Some("v2".into()),
        stream: Some("orders".into()),
        broker: Some(Broker::Kafka),
        modified: false,
        partition: Some((trace_number % 3) as i32),
        offset: Some(trace_number as i64 * 10),
        message_id: None,
    }
}

/// One event's journey in one trace: `checkout` produces it, `billing` consumes it and then
/// does some plain work (a span without event columns). Span numbers 1, 2, 3.
pub fn event_trace(trace_number: u64, start_unix_nanos: i64) -> Vec<Span> {
    let producer = Span {
        trace_id: trace_id(trace_number),
        span_id: span_id(trace_number, 1),
        parent_span_id: None,
        name: "publish order.placed".into(),
        kind: SpanKind::Producer,
        service: "checkout".into(),
        resource: vec![(
            "service.instance.id".into(),
            AttributeValue::String("checkout-0".into()),
        )]
        .into(),
        start_unix_nanos,
        duration_nanos: NANOS_PER_MILLISECOND,
        status: Status::default(),
        attributes: vec![(
            "order.items".into(),
            AttributeValue::Int(trace_number as i64),
        )],
        links: Vec::new(),
        event: order_event(trace_number),
    };
    let consumer = Span {
        span_id: span_id(trace_number, 2),
        parent_span_id: Some(producer.span_id),
        name: "consume order.placed".into(),
        kind: SpanKind::Consumer,
        service: "billing".into(),
        resource: vec![(
            "service.instance.id".into(),
            AttributeValue::String("billing-1".into()),
        )]
        .into(),
        start_unix_nanos: start_unix_nanos + 2 * NANOS_PER_MILLISECOND,
        attributes: Vec::new(),
        ..producer.clone()
    };
    let work = Span {
        span_id: span_id(trace_number, 3),
        parent_span_id: Some(consumer.span_id),
        name: "charge card".into(),
        kind: SpanKind::Internal,
        start_unix_nanos: start_unix_nanos + 3 * NANOS_PER_MILLISECOND,
        duration_nanos: 5 * NANOS_PER_MILLISECOND,
        attributes: vec![(
            "payment.provider".into(),
            AttributeValue::String("acme".into()),
        )],
        event: EventColumns::default(),
        ..consumer.clone()
    };
    vec![producer, consumer, work]
}

/// A span with every field set, attributes of every type in an order that is not
/// alphabetical, and floats that need all 17 digits: span number 9 of its trace.
pub fn rich_span(trace_number: u64, start_unix_nanos: i64) -> Span {
    Span {
        trace_id: trace_id(trace_number),
        span_id: span_id(trace_number, 9),
        parent_span_id: Some(span_id(trace_number, 1)),
        name: "republish order.placed".into(),
        kind: SpanKind::Producer,
        service: "fulfilment".into(),
        resource: vec![
            (
                "service.version".into(),
                AttributeValue::String("1.4.2".into()),
            ),
            ("host.name".into(), AttributeValue::String("node-7".into())),
            ("process.pid".into(), AttributeValue::Int(4242)),
        ]
        .into(),
        start_unix_nanos,
        duration_nanos: 1_234_567,
        status: Status {
            code: StatusCode::Error,
            message: Some("broker said: \"no\" ✗".into()),
        },
        attributes: vec![
            (
                "zeta.text".into(),
                AttributeValue::String("line one\nline two".into()),
            ),
            ("retry.count".into(), AttributeValue::Int(-3)),
            ("big.int".into(), AttributeValue::Int(i64::MAX)),
            (
                "latency.ratio".into(),
                AttributeValue::Float(985.690_694_632_869_5),
            ),
            ("sum".into(), AttributeValue::Float(0.1 + 0.2)),
            ("whole.float".into(), AttributeValue::Float(2.0)),
            ("alpha.flag".into(), AttributeValue::Bool(true)),
            ("beta.flag".into(), AttributeValue::Bool(false)),
        ],
        links: vec![
            Link {
                trace_id: trace_id(trace_number + 1000),
                span_id: span_id(trace_number + 1000, 1),
                attributes: vec![
                    ("link.reason".into(), AttributeValue::String("batch".into())),
                    ("link.index".into(), AttributeValue::Int(0)),
                    ("link.weight".into(), AttributeValue::Float(0.3)),
                ],
            },
            Link {
                trace_id: trace_id(trace_number + 2000),
                span_id: span_id(trace_number + 2000, 1),
                attributes: vec![],
            },
        ],
        event: EventColumns {
            event_id: Some(event_id(trace_number).into()),
            event_type: Some("order.placed".into()),
            schema: Some("sha256:abcdef".into()),
            stream: Some("orders.retry".into()),
            broker: Some(Broker::Rabbitmq),
            modified: true,
            partition: Some(i32::MAX),
            offset: Some(i64::MAX - 1),
            message_id: Some("msg-\u{1F600}".into()),
        },
    }
}

pub fn count(service: &str, action: Action, minute_unix_seconds: i64, n_events: u64) -> EventCount {
    EventCount {
        service: service.into(),
        event_type: "order.placed".into(),
        stream: "orders".into(),
        broker: Broker::Kafka,
        action,
        minute_unix_seconds,
        count: n_events,
    }
}

/// A configuration for tests that must not depend on the clock: retention off.
pub fn config(data_dir: &Path) -> StoreConfig {
    StoreConfig {
        retention: None,
        ..StoreConfig::new(data_dir)
    }
}

pub async fn open(data_dir: &Path) -> Store {
    Store::open(config(data_dir)).await.unwrap()
}

/// Spans as a look-up returns them: one per (trace id, span id), ordered by start time.
pub fn as_looked_up(spans: impl IntoIterator<Item = Span>) -> Vec<Span> {
    let mut by_key: BTreeMap<(TraceId, SpanId), Span> = BTreeMap::new();
    for span in spans {
        by_key.entry((span.trace_id, span.span_id)).or_insert(span);
    }
    let mut spans: Vec<Span> = by_key.into_values().collect();
    spans.sort_by_key(|span| (span.start_unix_nanos, span.span_id));
    spans
}

pub async fn trace(store: &Store, trace_id: TraceId) -> Vec<Span> {
    let lookup = store.spans_by_trace_id(trace_id).await;
    assert_eq!(lookup.unreadable_blocks, Vec::<String>::new());
    lookup.spans
}

pub async fn event(store: &Store, event_id: &str) -> Vec<Span> {
    let lookup = store.spans_by_event_id(event_id).await;
    assert_eq!(lookup.unreadable_blocks, Vec::<String>::new());
    lookup.spans
}

/// Every roll-up cell the store holds, keyed by (minute, key).
pub fn rollup_cells(store: &Store) -> BTreeMap<(i64, RollupKey), RollupCell> {
    let mut cells = BTreeMap::new();
    store.with_rollups(|rollups| {
        rollups.scan(i64::MIN, i64::MAX, |minute, key, cell| {
            cells.insert((minute, key.clone()), *cell);
        })
    });
    cells
}

/// Sums of the roll-up cells: sampled spans and events seen (from counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupTotals {
    pub spans: u64,
    pub seen: u64,
}

pub fn rollup_totals(store: &Store) -> RollupTotals {
    let cells = rollup_cells(store);
    RollupTotals {
        spans: cells.values().map(|cell| cell.spans).sum(),
        seen: cells.values().map(|cell| cell.seen).sum(),
    }
}

/// Every file under `dir`, as paths relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                files.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

/// The WAL segment files of a data directory.
pub fn wal_segments(data_dir: &Path) -> Vec<PathBuf> {
    files_under(&data_dir.join("wal"))
        .into_iter()
        .map(|file| data_dir.join("wal").join(file))
        .collect()
}

/// The directory of a committed block.
pub fn block_dir(data_dir: &Path, block_id: &str) -> PathBuf {
    let meta = files_under(data_dir)
        .into_iter()
        .find(|file| file.ends_with(format!("{block_id}/meta.json")))
        .unwrap_or_else(|| panic!("no meta.json for block {block_id}"));
    data_dir.join(meta.parent().unwrap())
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    for file in files_under(from) {
        let target = to.join(&file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&file), target).unwrap();
    }
}
