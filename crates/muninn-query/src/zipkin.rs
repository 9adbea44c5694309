//! Answers in the shapes of Zipkin's v2 read API: spans with `localEndpoint`/`remoteEndpoint`,
//! string tags and microsecond times; traces as lists of spans; plain lists of names; and
//! dependency links.

use std::collections::{BTreeMap, BTreeSet};

use muninn_model::{Span, SpanKind, TraceId};
use muninn_store::Store;
use serde::Serialize;

use crate::dependencies::dependencies;
use crate::edges::TimeRange;
use crate::search::{FoundTraces, TraceSearchQuery, search_traces, trace_spans};
use crate::tags::{TagStyle, remote_service, span_tags, tag_text};

/// An answer and the blocks that could not be read for it (Zipkin's shapes have no place for
/// them; the server sends their number in a header).
#[derive(Debug, Clone)]
pub struct ZipkinAnswer<T> {
    pub data: T,
    pub unreadable_blocks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinEndpoint {
    pub service_name: String,
}

/// A Zipkin v2 span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub name: String,
    /// Microseconds since the unix epoch.
    pub timestamp: i64,
    /// Microseconds, rounded up (Zipkin's convention); absent when zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    pub local_endpoint: ZipkinEndpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<ZipkinEndpoint>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

fn zipkin_kind(kind: SpanKind) -> Option<&'static str> {
    match kind {
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Server => Some("SERVER"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => None,
    }
}

/// A span in Zipkin's shape. Tags are the span's tags (see `tags.rs`, without `span.kind`,
/// which is `kind`) and its resource attributes, the span's own winning; the remote
/// endpoint is `peer.service` or, for an event span, the broker.
pub fn zipkin_span(span: &Span) -> ZipkinSpan {
    let mut tags: BTreeMap<String, String> = span
        .resource
        .iter()
        .filter(|(key, _)| key != "service.name")
        .map(|(key, value)| (key.to_string(), tag_text(value)))
        .collect();
    for (key, value) in span_tags(span, TagStyle::Zipkin) {
        if key != "span.kind" || span.attributes.iter().any(|(own, _)| own == "span.kind") {
            tags.insert(key.to_string(), tag_text(&value));
        }
    }
    let duration_micros = span.duration_nanos.max(0).saturating_add(999) / 1000;
    ZipkinSpan {
        trace_id: span.trace_id.to_short_hex(),
        parent_id: span.parent_span_id.map(|parent| parent.to_hex()),
        id: span.span_id.to_hex(),
        kind: zipkin_kind(span.kind),
        name: span.name.to_string(),
        timestamp: span.start_unix_nanos.div_euclid(1000),
        duration: (duration_micros > 0).then_some(duration_micros),
        local_endpoint: ZipkinEndpoint {
            service_name: span.service.to_string(),
        },
        remote_endpoint: remote_service(span).map(|service_name| ZipkinEndpoint { service_name }),
        tags,
    }
}

fn traces_answer(found: FoundTraces) -> ZipkinAnswer<Vec<Vec<ZipkinSpan>>> {
    ZipkinAnswer {
        data: found
            .traces
            .iter()
            .map(|trace| trace.spans.iter().map(zipkin_span).collect())
            .collect(),
        unreadable_blocks: found.unreadable_blocks,
    }
}

/// `GET /api/v2/traces`: the most recent matching traces, whole.
pub async fn zipkin_search(
    store: &Store,
    query: &TraceSearchQuery,
) -> ZipkinAnswer<Vec<Vec<ZipkinSpan>>> {
    traces_answer(search_traces(store, query).await)
}

/// `GET /api/v2/trace/{traceId}`, or `None` when no span has this trace id.
pub async fn zipkin_trace(
    store: &Store,
    trace_id: TraceId,
) -> Option<ZipkinAnswer<Vec<ZipkinSpan>>> {
    let found = trace_spans(store, trace_id).await?;
    let mut answer = traces_answer(found);
    Some(ZipkinAnswer {
        data: answer.data.pop().unwrap_or_default(),
        unreadable_blocks: answer.unreadable_blocks,
    })
}

/// `GET /api/v2/services`, or with a service `GET /api/v2/spans`: sorted names.
pub async fn zipkin_names(
    store: &Store,
    range: TimeRange,
    service: Option<&str>,
) -> ZipkinAnswer<Vec<String>> {
    let catalog = store
        .operations(range.from_unix_nanos, range.to_unix_nanos)
        .await;
    let names: BTreeSet<String> = catalog
        .operations
        .into_iter()
        .filter_map(|operation| match service {
            None => Some(operation.service),
            Some(service) => (operation.service == service).then_some(operation.name),
        })
        .collect();
    ZipkinAnswer {
        data: names.into_iter().collect(),
        unreadable_blocks: catalog.unreadable_blocks,
    }
}

/// One link of `GET /api/v2/dependencies`. Roll-ups do not count errors, so `errorCount`
/// is never written (Zipkin omits it when zero).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinDependencyLink {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

/// `GET /api/v2/dependencies`: from roll-ups (see `dependencies`).
pub fn zipkin_dependencies(
    store: &Store,
    range: TimeRange,
    streams_as_nodes: bool,
) -> Vec<ZipkinDependencyLink> {
    dependencies(store, range, streams_as_nodes)
        .into_iter()
        .map(|link| ZipkinDependencyLink {
            parent: link.parent,
            child: link.child,
            call_count: link.call_count,
        })
        .collect()
}
