//! Answers in the shapes of Jaeger's query HTTP API (the one Jaeger UI and Grafana's Jaeger
//! data source read): the `{data, total, limit, offset, errors}` envelope, traces with
//! `processes`, typed tags and `CHILD_OF`/`FOLLOWS_FROM` references, times in microseconds.

use std::collections::{BTreeMap, BTreeSet};

use muninn_model::{AttributeValue, Attributes, Span, SpanKind, TraceId};
use muninn_store::Store;
use serde::Serialize;
use serde_json::Value;

use crate::dependencies::dependencies;
use crate::edges::TimeRange;
use crate::search::{FoundTrace, FoundTraces, TraceSearchQuery, search_traces, trace_spans};
use crate::tags::{TagStyle, span_tags};

/// Jaeger's response envelope. `errors` is `null` when there are none; with errors next to
/// data the answer is partial (a block could not be read).
#[derive(Debug, Clone, Serialize)]
pub struct JaegerResponse<T> {
    pub data: T,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: Option<Vec<JaegerError>>,
}

/// One entry of `errors`. `field` (Muninn's addition) names the offending query parameter.
#[derive(Debug, Clone, Serialize)]
pub struct JaegerError {
    pub code: u16,
    pub msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl<T> JaegerResponse<T> {
    fn new(data: T, total: usize, unreadable_blocks: &[String]) -> Self {
        let errors = (!unreadable_blocks.is_empty()).then(|| {
            unreadable_blocks
                .iter()
                .map(|block| JaegerError {
                    code: 500,
                    msg: format!("block could not be read; the answer may be incomplete: {block}"),
                    field: None,
                })
                .collect()
        });
        JaegerResponse {
            data,
            total,
            limit: 0,
            offset: 0,
            errors,
        }
    }
}

/// An error answer: no data, one error.
pub fn jaeger_error(code: u16, msg: String, field: Option<String>) -> JaegerResponse<Value> {
    JaegerResponse {
        data: Value::Null,
        total: 0,
        limit: 0,
        offset: 0,
        errors: Some(vec![JaegerError { code, msg, field }]),
    }
}

/// A typed tag.
#[derive(Debug, Clone, Serialize)]
pub struct JaegerTag {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: &'static str,
    pub value: Value,
}

fn jaeger_tag(key: String, value: &AttributeValue) -> JaegerTag {
    let (value_type, value) = match value {
        AttributeValue::String(text) => ("string", Value::String(text.to_string())),
        AttributeValue::Int(number) => ("int64", Value::from(*number)),
        AttributeValue::Float(number) => ("float64", Value::from(*number)),
        AttributeValue::Bool(flag) => ("bool", Value::Bool(*flag)),
    };
    JaegerTag {
        key,
        value_type,
        value,
    }
}

fn jaeger_tags(attributes: &Attributes) -> Vec<JaegerTag> {
    attributes
        .iter()
        .map(|(key, value)| jaeger_tag(key.to_string(), value))
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct JaegerReference {
    #[serde(rename = "refType")]
    pub ref_type: &'static str,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JaegerSpan {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub operation_name: String,
    pub references: Vec<JaegerReference>,
    /// Microseconds since the unix epoch.
    pub start_time: i64,
    /// Microseconds.
    pub duration: i64,
    pub tags: Vec<JaegerTag>,
    pub logs: Vec<Value>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JaegerProcess {
    pub service_name: String,
    pub tags: Vec<JaegerTag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JaegerTrace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<JaegerSpan>,
    pub processes: BTreeMap<String, JaegerProcess>,
    pub warnings: Option<Vec<String>>,
}

/// A trace in Jaeger's shape. Each distinct (service, resource) is one process, `p1`, `p2`…
/// in the order the spans (sorted by start time) first use them.
pub fn jaeger_trace(trace_id: TraceId, spans: &[Span]) -> JaegerTrace {
    let mut process_keys: Vec<(&str, &Attributes)> = Vec::new();
    let mut processes = BTreeMap::new();
    let jaeger_spans = spans
        .iter()
        .map(|span| {
            let key = (span.service.as_str(), &*span.resource);
            let process_idx = match process_keys.iter().position(|known| *known == key) {
                Some(index) => index,
                None => {
                    process_keys.push(key);
                    processes.insert(
                        format!("p{}", process_keys.len()),
                        JaegerProcess {
                            service_name: span.service.to_string(),
                            tags: jaeger_tags(&span.resource),
                        },
                    );
                    process_keys.len() - 1
                }
            };
            let mut references: Vec<JaegerReference> = span
                .parent_span_id
                .map(|parent| JaegerReference {
                    ref_type: "CHILD_OF",
                    trace_id: span.trace_id.to_short_hex(),
                    span_id: parent.to_hex(),
                })
                .into_iter()
                .collect();
            references.extend(span.links.iter().map(|link| JaegerReference {
                ref_type: "FOLLOWS_FROM",
                trace_id: link.trace_id.to_short_hex(),
                span_id: link.span_id.to_hex(),
            }));
            JaegerSpan {
                trace_id: span.trace_id.to_short_hex(),
                span_id: span.span_id.to_hex(),
                operation_name: span.name.to_string(),
                references,
                start_time: span.start_unix_nanos.div_euclid(1000),
                duration: span.duration_nanos / 1000,
                tags: span_tags(span, TagStyle::Jaeger)
                    .into_iter()
                    .map(|(key, value)| jaeger_tag(key.to_string(), &value))
                    .collect(),
                logs: Vec::new(),
                process_id: format!("p{}", process_idx + 1),
                warnings: None,
            }
        })
        .collect();
    JaegerTrace {
        trace_id: trace_id.to_short_hex(),
        spans: jaeger_spans,
        processes,
        warnings: None,
    }
}

fn traces_response(found: FoundTraces) -> JaegerResponse<Vec<JaegerTrace>> {
    let traces: Vec<JaegerTrace> = found
        .traces
        .iter()
        .map(|FoundTrace { trace_id, spans }| jaeger_trace(*trace_id, spans))
        .collect();
    let total = traces.len();
    JaegerResponse::new(traces, total, &found.unreadable_blocks)
}

/// `GET /api/traces`: the most recent matching traces, whole.
pub async fn jaeger_search(
    store: &Store,
    query: &TraceSearchQuery,
) -> JaegerResponse<Vec<JaegerTrace>> {
    traces_response(search_traces(store, query).await)
}

/// `GET /api/traces/{traceID}`, or `None` when no span has this trace id.
pub async fn jaeger_trace_by_id(
    store: &Store,
    trace_id: TraceId,
) -> Option<JaegerResponse<Vec<JaegerTrace>>> {
    trace_spans(store, trace_id).await.map(traces_response)
}

/// `GET /api/services`: the services with spans in `range`, sorted.
pub async fn jaeger_services(store: &Store, range: TimeRange) -> JaegerResponse<Vec<String>> {
    let catalog = store
        .operations(range.from_unix_nanos, range.to_unix_nanos)
        .await;
    let services: BTreeSet<String> = catalog
        .operations
        .into_iter()
        .map(|operation| operation.service)
        .collect();
    let total = services.len();
    JaegerResponse::new(
        services.into_iter().collect(),
        total,
        &catalog.unreadable_blocks,
    )
}

/// One operation of `GET /api/operations`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JaegerOperation {
    pub name: String,
    pub span_kind: &'static str,
}

/// `GET /api/operations`: the (name, kind) of a service's spans, optionally of one kind,
/// sorted by name then kind.
pub async fn jaeger_operations(
    store: &Store,
    range: TimeRange,
    service: &str,
    kind: Option<SpanKind>,
) -> JaegerResponse<Vec<JaegerOperation>> {
    let catalog = store
        .operations(range.from_unix_nanos, range.to_unix_nanos)
        .await;
    let operations: BTreeSet<JaegerOperation> = catalog
        .operations
        .into_iter()
        .filter(|operation| operation.service == service)
        .filter(|operation| kind.is_none_or(|kind| operation.kind == kind))
        .map(|operation| JaegerOperation {
            name: operation.name,
            span_kind: operation.kind.as_str(),
        })
        .collect();
    let total = operations.len();
    JaegerResponse::new(
        operations.into_iter().collect(),
        total,
        &catalog.unreadable_blocks,
    )
}

/// `GET /api/services/{service}/operations`: the distinct span names of a service, sorted.
pub async fn jaeger_operation_names(
    store: &Store,
    range: TimeRange,
    service: &str,
) -> JaegerResponse<Vec<String>> {
    let operations = jaeger_operations(store, range, service, None).await;
    let names: BTreeSet<String> = operations
        .data
        .into_iter()
        .map(|operation| operation.name)
        .collect();
    JaegerResponse {
        total: names.len(),
        data: names.into_iter().collect(),
        limit: 0,
        offset: 0,
        errors: operations.errors,
    }
}

/// One link of `GET /api/dependencies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JaegerDependency {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

/// `GET /api/dependencies`: from roll-ups (see `dependencies`).
pub fn jaeger_dependencies(
    store: &Store,
    range: TimeRange,
    streams_as_nodes: bool,
) -> JaegerResponse<Vec<JaegerDependency>> {
    let links: Vec<JaegerDependency> = dependencies(store, range, streams_as_nodes)
        .into_iter()
        .map(|link| JaegerDependency {
            parent: link.parent,
            child: link.child,
            call_count: link.call_count,
        })
        .collect();
    let total = links.len();
    JaegerResponse::new(links, total, &[])
}
