//! Journeys and traces: the spans of one event id in time order with the lag of each hop, and
//! the spans of one trace as a tree.

use std::collections::{BTreeSet, HashMap};

use muninn_model::{Action, Span, TraceId};
use muninn_store::Store;
use serde::Serialize;

use crate::view::SpanView;

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
    let spans = lookup.spans;
    let producers: Vec<&Span> = spans
        .iter()
        .filter(|span| span.action() == Some(Action::Produced))
        .collect();
    let mut attempts: HashMap<(String, Option<Action>, Option<String>, String), u32> =
        HashMap::new();
    let hops = spans
        .iter()
        .map(|span| {
            let lag_ns = (span.action() == Some(Action::Consumed))
                .then(|| {
                    let same_stream = producers
                        .iter()
                        .filter(|producer| producer.event.stream == span.event.stream)
                        .filter(|producer| producer.start_unix_nanos <= span.start_unix_nanos)
                        .max_by_key(|producer| producer.start_unix_nanos);
                    let publish = same_stream.or_else(|| producers.first());
                    publish.map(|producer| span.start_unix_nanos - producer.start_unix_nanos)
                })
                .flatten();
            let attempt = attempts
                .entry((
                    span.service.clone(),
                    span.action(),
                    span.event.stream.clone(),
                    span.name.clone(),
                ))
                .or_insert(0);
            *attempt += 1;
            Hop {
                span: SpanView::from(span),
                lag_ns,
                attempt: *attempt,
            }
        })
        .collect();
    let event_types: BTreeSet<String> = spans
        .iter()
        .filter_map(|span| span.event.event_type.clone())
        .collect();
    let traces: BTreeSet<String> = spans.iter().map(|span| span.trace_id.to_hex()).collect();
    Some(Journey {
        event_id: event_id.to_string(),
        event_types: event_types.into_iter().collect(),
        traces: traces.into_iter().collect(),
        hops,
        unreadable_blocks: lookup.unreadable_blocks,
    })
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
    let services: BTreeSet<String> = spans.iter().map(|span| span.service.clone()).collect();
    Some(TraceTree {
        trace_id: trace_id.to_hex(),
        n_spans: spans.len(),
        services: services.into_iter().collect(),
        roots: build_tree(&spans),
        unreadable_blocks: lookup.unreadable_blocks,
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
