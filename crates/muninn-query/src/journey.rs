//! Journeys and traces: the spans of one event id in time order with the lag of each hop —
//! across trace boundaries, joined by the event id and by span links — and the spans of one
//! trace as a tree, with the traces it continued from and in (`continuation.rs`).

use std::collections::{BTreeSet, HashMap, HashSet};

use muninn_model::{Action, Span, SpanId, TraceId};
use muninn_store::{SpanFields, Store};
use serde::Serialize;

use crate::continuation::{self, TraceContinuation};
use crate::view::SpanView;

/// At most this many other traces are read to find spans that this event's spans link to.
pub(crate) const MAX_LINKED_TRACES: usize = 64;

/// How a hop joined the journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinedBy {
    /// The span carries the event id.
    EventId,
    /// The span has no event id but a span link connects it with a span that has it (a
    /// stateful join that dropped the id, or a producer instrumented without it).
    Link,
}

/// A span of another trace, named by its ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SpanRef {
    pub trace_id: String,
    pub span_id: String,
}

impl SpanRef {
    fn of(trace_id: TraceId, span_id: SpanId) -> Self {
        SpanRef {
            trace_id: trace_id.to_hex(),
            span_id: span_id.to_hex(),
        }
    }
}

/// One hop of an event's journey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    #[serde(flatten)]
    pub span: SpanView,
    /// Consumers: nanoseconds from the start of the publish of this event on this stream to the
    /// start of this consume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ns: Option<i64>,
    /// 1 for the first time this service did this action on this stream, 2 for the first retry…
    pub attempt: u32,
    pub joined_by: JoinedBy,
    /// For a hop joined by a link: the span carrying the event id that the link connects it to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_span: Option<SpanRef>,
}

/// The journey of one event across services, possibly across several traces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    pub event_id: String,
    pub event_types: Vec<String>,
    pub traces: Vec<String>,
    pub hops: Vec<Hop>,
    /// Blocks that could not be read; the journey may be missing hops from them.
    pub unreadable_blocks: Vec<String>,
}

/// The journey of an event, or `None` when no span carries this id.
pub async fn journey(store: &Store, event_id: &str) -> Option<Journey> {
    let lookup = store.spans_by_event_id(event_id).await;
    if lookup.spans.is_empty() && lookup.unreadable_blocks.is_empty() {
        return None;
    }
    let mut unreadable: BTreeSet<String> = lookup.unreadable_blocks.into_iter().collect();
    let direct = lookup.spans;
    let (linked, more_unreadable) = linked_hops(store, &direct).await;
    unreadable.extend(more_unreadable);

    // Every hop with how it joined, in time order.
    let mut joined: Vec<(&Span, Option<SpanRef>)> =
        direct.iter().map(|span| (span, None)).collect();
    joined.extend(linked.iter().map(|(span, via)| (span, Some(via.clone()))));
    joined.sort_by(|left, right| {
        (left.0.start_unix_nanos, left.0.span_id).cmp(&(right.0.start_unix_nanos, right.0.span_id))
    });
    let producers: Vec<&Span> = joined
        .iter()
        .map(|(span, _)| *span)
        .filter(|span| span.action() == Some(Action::Produced))
        .collect();
    let by_ids: HashMap<(TraceId, SpanId), &Span> = direct
        .iter()
        .map(|span| ((span.trace_id, span.span_id), span))
        .collect();
    let mut attempts: HashMap<(String, Option<Action>, Option<String>, String), u32> =
        HashMap::new();
    let hops = joined
        .iter()
        .map(|(span, via)| {
            let lag_ns = (span.action() == Some(Action::Consumed))
                .then(|| {
                    // A consumer joined by a link to the publish: the lag from that publish.
                    let linked_publish = via.as_ref().and_then(|_| {
                        span.links
                            .iter()
                            .filter_map(|link| by_ids.get(&(link.trace_id, link.span_id)))
                            .find(|linked| linked.action() == Some(Action::Produced))
                    });
                    let same_stream = producers
                        .iter()
                        .filter(|producer| producer.event.stream == span.event.stream)
                        .filter(|producer| producer.start_unix_nanos <= span.start_unix_nanos)
                        .max_by_key(|producer| producer.start_unix_nanos);
                    let publish = linked_publish.or(same_stream).or_else(|| producers.first());
                    publish.map(|producer| span.start_unix_nanos - producer.start_unix_nanos)
                })
                .flatten();
            let attempt = attempts
                .entry((
                    span.service.to_string(),
                    span.action(),
                    span.event.stream.as_deref().map(str::to_string),
                    span.name.to_string(),
                ))
                .or_insert(0);
            *attempt += 1;
            Hop {
                span: SpanView::from(*span),
                lag_ns,
                attempt: *attempt,
                joined_by: if via.is_some() {
                    JoinedBy::Link
                } else {
                    JoinedBy::EventId
                },
                linked_span: via.clone(),
            }
        })
        .collect();
    let event_types: BTreeSet<String> = joined
        .iter()
        .filter_map(|(span, _)| span.event.event_type.as_deref().map(str::to_string))
        .collect();
    let traces: BTreeSet<String> = joined
        .iter()
        .map(|(span, _)| span.trace_id.to_hex())
        .collect();
    Some(Journey {
        event_id: event_id.to_string(),
        event_types: event_types.into_iter().collect(),
        traces: traces.into_iter().collect(),
        hops,
        unreadable_blocks: crate::one_per_block(unreadable),
    })
}

/// Spans without an event id that a span link connects with one of `direct` (the spans that
/// carry the event id), in either direction, each with the span of `direct` it is linked with;
/// and the blocks that could not be read on the way.
async fn linked_hops(store: &Store, direct: &[Span]) -> (Vec<(Span, SpanRef)>, Vec<String>) {
    let direct_ids: HashSet<(TraceId, SpanId)> = direct
        .iter()
        .map(|span| (span.trace_id, span.span_id))
        .collect();
    // Spans that link to a span of this event (a consumer that started a new trace).
    let traces: HashSet<TraceId> = direct.iter().map(|span| span.trace_id).collect();
    // Spans that a span of this event links to (an upstream publish recorded without the id).
    let mut wanted: HashMap<(TraceId, SpanId), SpanRef> = HashMap::new();
    for span in direct {
        for link in &span.links {
            if !direct_ids.contains(&(link.trace_id, link.span_id)) {
                wanted
                    .entry((link.trace_id, link.span_id))
                    .or_insert_with(|| SpanRef::of(span.trace_id, span.span_id));
            }
        }
    }
    let linked_traces: BTreeSet<TraceId> = wanted.keys().map(|(trace_id, _)| *trace_id).collect();
    let linked_traces: HashSet<TraceId> =
        linked_traces.into_iter().take(MAX_LINKED_TRACES).collect();
    // Both look-ups at once; every linked trace in one read per block. Most spans found are
    // hops already (they carry the event id), so an outline of each is read first, and the
    // whole of only the spans that join the journey by a link.
    let (linking, linked) = futures::join!(
        store.spans_linking_to(&traces, SpanFields::Outline),
        async {
            if linked_traces.is_empty() {
                None
            } else {
                Some(
                    store
                        .spans_by_trace_ids(&linked_traces, SpanFields::Outline)
                        .await,
                )
            }
        }
    );

    let mut joining: HashMap<(TraceId, SpanId), SpanRef> = HashMap::new();
    let mut unreadable = linking.unreadable_blocks;
    for span in linking.spans {
        if span.event.event_id.is_some() {
            continue;
        }
        let via = span
            .links
            .iter()
            .find(|link| direct_ids.contains(&(link.trace_id, link.span_id)))
            .map(|link| SpanRef::of(link.trace_id, link.span_id));
        if let Some(via) = via {
            joining.entry((span.trace_id, span.span_id)).or_insert(via);
        }
    }
    if let Some(lookup) = linked {
        unreadable.extend(lookup.unreadable_blocks);
        for span in lookup.spans {
            if span.event.event_id.is_some() {
                continue;
            }
            if let Some(via) = wanted.get(&(span.trace_id, span.span_id)) {
                joining
                    .entry((span.trace_id, span.span_id))
                    .or_insert_with(|| via.clone());
            }
        }
    }
    if joining.is_empty() {
        return (Vec::new(), unreadable);
    }
    let joining_traces: HashSet<TraceId> = joining.keys().map(|(trace_id, _)| *trace_id).collect();
    let whole = store
        .spans_by_trace_ids(&joining_traces, SpanFields::All)
        .await;
    unreadable.extend(whole.unreadable_blocks);
    let found: Vec<(Span, SpanRef)> = whole
        .spans
        .into_iter()
        .filter_map(|span| {
            let via = joining.get(&(span.trace_id, span.span_id))?.clone();
            Some((span, via))
        })
        .collect();
    (found, unreadable)
}

/// A span with its children, ordered by start time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceNode {
    #[serde(flatten)]
    pub span: SpanView,
    pub children: Vec<TraceNode>,
}

/// A trace as a tree. Spans whose parent is missing become roots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceTree {
    pub trace_id: String,
    pub n_spans: usize,
    pub services: Vec<String>,
    pub roots: Vec<TraceNode>,
    /// Other traces that events of this trace went on in (a consumer that started a new
    /// trace, joined by the event id or by a link to a span of this trace).
    pub continued_in: Vec<TraceContinuation>,
    /// Other traces that events of this trace came from.
    pub continued_from: Vec<TraceContinuation>,
    pub unreadable_blocks: Vec<String>,
}

/// Trees deeper than this are cut: the deeper spans are shown as roots of their own.
const MAX_TREE_DEPTH: usize = 128;

/// The trace, or `None` when no span has this trace id.
pub async fn trace(store: &Store, trace_id: TraceId) -> Option<TraceTree> {
    let lookup = store.spans_by_trace_id(trace_id).await;
    if lookup.spans.is_empty() && lookup.unreadable_blocks.is_empty() {
        return None;
    }
    let spans = lookup.spans;
    let services: BTreeSet<String> = spans.iter().map(|span| span.service.to_string()).collect();
    let continuations = continuation::continuations(store, trace_id, &spans).await;
    let mut unreadable: BTreeSet<String> = lookup.unreadable_blocks.into_iter().collect();
    unreadable.extend(continuations.unreadable_blocks);
    Some(TraceTree {
        trace_id: trace_id.to_hex(),
        n_spans: spans.len(),
        services: services.into_iter().collect(),
        roots: build_tree(&spans),
        continued_in: continuations.continued_in,
        continued_from: continuations.continued_from,
        unreadable_blocks: crate::one_per_block(unreadable),
    })
}

/// Builds the forest without recursion over input depth (input decides the depth).
fn build_tree(spans: &[Span]) -> Vec<TraceNode> {
    let index_of: HashMap<_, usize> = spans
        .iter()
        .enumerate()
        .map(|(index, span)| (span.span_id, index))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut is_root = vec![false; spans.len()];
    for (index, span) in spans.iter().enumerate() {
        match span.parent_span_id.and_then(|parent| index_of.get(&parent)) {
            Some(&parent_idx) if parent_idx != index => children[parent_idx].push(index),
            _ => is_root[index] = true,
        }
    }
    // Breadth-first from the roots; anything unreached (a parent cycle) or too deep becomes a root.
    let mut depth: Vec<Option<usize>> = vec![None; spans.len()];
    let mut order: Vec<usize> = Vec::with_capacity(spans.len());
    let mut parent_of: Vec<Option<usize>> = vec![None; spans.len()];
    let mut start = 0;
    let mut next_unvisited = 0;
    // A flag, not `order.is_empty()`: when every span sits in a parent cycle there are no
    // roots, the first pass visits nothing, and the unvisited scan below must run next.
    let mut first_pass = true;
    loop {
        let roots: Vec<usize> = if first_pass {
            first_pass = false;
            (0..spans.len()).filter(|index| is_root[*index]).collect()
        } else {
            while next_unvisited < spans.len() && depth[next_unvisited].is_some() {
                next_unvisited += 1;
            }
            if next_unvisited == spans.len() {
                break;
            }
            is_root[next_unvisited] = true;
            vec![next_unvisited]
        };
        for root in roots {
            depth[root] = Some(0);
            order.push(root);
        }
        while start < order.len() {
            let node = order[start];
            start += 1;
            let node_depth = depth[node].unwrap_or(0);
            for &child in &children[node] {
                if depth[child].is_some() {
                    continue;
                }
                if node_depth + 1 >= MAX_TREE_DEPTH {
                    is_root[child] = true;
                    depth[child] = Some(0);
                } else {
                    depth[child] = Some(node_depth + 1);
                    parent_of[child] = Some(node);
                }
                order.push(child);
            }
        }
    }
    // Assemble bottom-up: reverse breadth-first order sees every child before its parent.
    let mut nodes: Vec<Option<TraceNode>> = spans
        .iter()
        .map(|span| {
            Some(TraceNode {
                span: SpanView::from(span),
                children: Vec::new(),
            })
        })
        .collect();
    for &index in order.iter().rev() {
        if let Some(parent) = parent_of[index]
            && let Some(node) = nodes[index].take()
            && let Some(parent_node) = nodes[parent].as_mut()
        {
            parent_node.children.push(node);
        }
    }
    let sort = |list: &mut Vec<TraceNode>| {
        list.sort_by(|left, right| {
            (left.span.start_time_unix_nano, &left.span.span_id)
                .cmp(&(right.span.start_time_unix_nano, &right.span.span_id))
        })
    };
    let mut roots: Vec<TraceNode> = Vec::new();
    for (index, node) in nodes.into_iter().enumerate() {
        if let Some(mut node) = node
            && (is_root[index] || parent_of[index].is_none())
        {
            sort_recursive(&mut node, &sort);
            roots.push(node);
        }
    }
    sort(&mut roots);
    roots
}

fn sort_recursive(node: &mut TraceNode, sort: &impl Fn(&mut Vec<TraceNode>)) {
    // Depth is capped at MAX_TREE_DEPTH, so this recursion is bounded.
    sort(&mut node.children);
    for child in &mut node.children {
        sort_recursive(child, sort);
    }
}
