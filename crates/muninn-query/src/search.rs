//! Trace search, shared by the Jaeger and Zipkin APIs: the most recent traces holding a span
//! that matches a time range, service, span name, duration bounds, tags and remote service,
//! each returned whole (every span of the trace, not only the matching ones).

use std::collections::{HashMap, HashSet};

use muninn_model::{Span, TraceId};
use muninn_store::{SpanFields, SpanQuery, Store};

use crate::tags::{TagStyle, remote_service, span_tags, tag_text};

/// One tag condition: the key must be present, and equal `value` (compared as text) when set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPredicate {
    pub key: String,
    pub value: Option<String>,
}

/// A trace search. Every condition holds on one and the same span of a returned trace.
#[derive(Debug, Clone)]
pub struct TraceSearchQuery {
    /// Time range, service, span name, duration bounds and the number of traces.
    pub spans: SpanQuery,
    /// Tags the span (or its resource) must carry.
    pub tags: Vec<TagPredicate>,
    /// Zipkin's `remoteServiceName`: `peer.service`, or the broker of an event span.
    pub remote_service: Option<String>,
    /// Whose tag conventions the tags are compared in.
    pub style: TagStyle,
}

/// One trace found: all its spans, ordered by start time.
#[derive(Debug, Clone)]
pub struct FoundTrace {
    pub trace_id: TraceId,
    pub spans: Vec<Span>,
}

/// The traces found, most recent first, and the blocks that could not be read.
#[derive(Debug, Default)]
pub struct FoundTraces {
    pub traces: Vec<FoundTrace>,
    pub unreadable_blocks: Vec<String>,
}

fn matches(query: &TraceSearchQuery, span: &Span) -> bool {
    if let Some(remote) = &query.remote_service
        && remote_service(span).as_deref() != Some(remote.as_str())
    {
        return false;
    }
    if query.tags.is_empty() {
        return true;
    }
    let tags = span_tags(span, query.style);
    query.tags.iter().all(|predicate| {
        tags.iter().chain(span.resource.iter()).any(|(key, value)| {
            key == predicate.key
                && predicate
                    .value
                    .as_ref()
                    .is_none_or(|expected| &tag_text(value) == expected)
        })
    })
}

/// Runs a search, then reads the traces found whole (in one pass over memory and blocks).
pub async fn search_traces(store: &Store, query: &TraceSearchQuery) -> FoundTraces {
    let needs_filter = !query.tags.is_empty() || query.remote_service.is_some();
    let filter = |span: &Span| matches(query, span);
    let search = store
        .find_traces(
            &query.spans,
            needs_filter.then_some(&filter as muninn_store::SpanFilter<'_>),
        )
        .await;
    let mut unreadable_blocks = search.unreadable_blocks;
    let wanted: HashSet<TraceId> = search.traces.iter().map(|hit| hit.trace_id).collect();
    let lookup = store.spans_by_trace_ids(&wanted, SpanFields::All).await;
    unreadable_blocks.extend(lookup.unreadable_blocks);
    let mut by_trace: HashMap<TraceId, Vec<Span>> = HashMap::new();
    for span in lookup.spans {
        by_trace.entry(span.trace_id).or_default().push(span);
    }
    let traces = search
        .traces
        .iter()
        .map(|hit| FoundTrace {
            trace_id: hit.trace_id,
            spans: by_trace.remove(&hit.trace_id).unwrap_or_default(),
        })
        .collect();
    FoundTraces {
        traces,
        unreadable_blocks: crate::one_per_block(unreadable_blocks),
    }
}

/// Every span of one trace, or `None` when none has this id.
pub async fn trace_spans(store: &Store, trace_id: TraceId) -> Option<FoundTraces> {
    let lookup = store.spans_by_trace_id(trace_id).await;
    if lookup.spans.is_empty() && lookup.unreadable_blocks.is_empty() {
        return None;
    }
    Some(FoundTraces {
        traces: vec![FoundTrace {
            trace_id,
            spans: lookup.spans,
        }],
        unreadable_blocks: lookup.unreadable_blocks,
    })
}
