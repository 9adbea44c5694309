//! Where a trace's events went on and came from when the trace context broke: a consumer that
//! started a new trace (with or without a span link), a stateful join that dropped the
//! context. Other traces are connected to this one by the event ids of its spans and by span
//! links in either direction; each is named with its root service.
//!
//! Direction: a span link points from the later span to the earlier one (OpenTelemetry's
//! convention for a consumer linking to its producer), so a trace whose spans link to this one
//! continued it. For a shared event id, the trace holding the event's publish came first; when
//! both or neither hold one, the trace where the event appears first did.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use muninn_model::{Action, Span, SpanId, TraceId};
use muninn_store::{SpanFields, Store};
use serde::Serialize;

/// At most this many distinct event ids of a trace are followed.
const MAX_EVENT_IDS: usize = 1000;
/// At most this many connected traces are listed in each direction.
const MAX_CONNECTED_TRACES: usize = 100;

/// A span link between two traces, from the linking (later) span to the linked (earlier) one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LinkEdge {
    pub trace_id: String,
    pub span_id: String,
    pub linked_trace_id: String,
    pub linked_span_id: String,
}

/// Another trace connected to this one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceContinuation {
    pub trace_id: String,
    /// The service of the other trace's earliest root span; absent when none of its spans is
    /// stored (a link to a trace that was sampled out, dropped or expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_service: Option<String>,
    /// Event ids that spans of both traces carry, sorted.
    pub event_ids: Vec<String>,
    /// Span links between the two traces, sorted.
    pub links: Vec<LinkEdge>,
}

/// The traces connected to one trace, in both directions.
#[derive(Debug, Default)]
pub(crate) struct Continuations {
    pub continued_in: Vec<TraceContinuation>,
    pub continued_from: Vec<TraceContinuation>,
    pub unreadable_blocks: Vec<String>,
}

#[derive(Default)]
struct Connection {
    event_ids: BTreeSet<String>,
    links: BTreeSet<LinkEdge>,
}

fn edge(from: &Span, to_trace: TraceId, to_span: SpanId) -> LinkEdge {
    LinkEdge {
        trace_id: from.trace_id.to_hex(),
        span_id: from.span_id.to_hex(),
        linked_trace_id: to_trace.to_hex(),
        linked_span_id: to_span.to_hex(),
    }
}

/// When the event appears first in a set of spans, and whether one of them publishes it.
#[derive(Clone, Copy)]
struct Appearance {
    first_start: i64,
    publishes: bool,
}

fn appearances<'a>(spans: impl Iterator<Item = &'a Span>) -> HashMap<&'a str, Appearance> {
    let mut seen: HashMap<&str, Appearance> = HashMap::new();
    for span in spans {
        let Some(event_id) = span.event.event_id.as_deref() else {
            continue;
        };
        let publishes = span.action() == Some(Action::Produced);
        seen.entry(event_id)
            .and_modify(|appearance| {
                appearance.first_start = appearance.first_start.min(span.start_unix_nanos);
                appearance.publishes |= publishes;
            })
            .or_insert(Appearance {
                first_start: span.start_unix_nanos,
                publishes,
            });
    }
    seen
}

/// The traces that `trace_id` (whose spans are `spans`) continued in and came from.
pub(crate) async fn continuations(
    store: &Store,
    trace_id: TraceId,
    spans: &[Span],
) -> Continuations {
    let mut unreadable: BTreeSet<String> = BTreeSet::new();
    let mut downstream: BTreeMap<TraceId, Connection> = BTreeMap::new();
    let mut upstream: BTreeMap<TraceId, Connection> = BTreeMap::new();

    // Shared event ids.
    let here = appearances(spans.iter());
    let event_ids: HashSet<String> = here
        .keys()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(MAX_EVENT_IDS)
        .map(|event_id| event_id.to_string())
        .collect();
    // The spans sharing an event id and those linking to this trace, read at the same time.
    let linking_to_here = HashSet::from([trace_id]);
    let (shared_events, linking) = futures::join!(
        async {
            if event_ids.is_empty() {
                None
            } else {
                Some(
                    store
                        .spans_by_event_ids(&event_ids, SpanFields::Outline)
                        .await,
                )
            }
        },
        store.spans_linking_to(&linking_to_here, SpanFields::Outline)
    );
    if let Some(lookup) = shared_events {
        unreadable.extend(lookup.unreadable_blocks);
        let mut by_trace: BTreeMap<TraceId, Vec<&Span>> = BTreeMap::new();
        for span in &lookup.spans {
            if span.trace_id != trace_id {
                by_trace.entry(span.trace_id).or_default().push(span);
            }
        }
        for (other, other_spans) in by_trace {
            for (event_id, there) in appearances(other_spans.into_iter()) {
                let Some(mine) = here.get(event_id) else {
                    continue;
                };
                let this_first = match (mine.publishes, there.publishes) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => (mine.first_start, trace_id) <= (there.first_start, other),
                };
                let side = if this_first {
                    &mut downstream
                } else {
                    &mut upstream
                };
                side.entry(other)
                    .or_default()
                    .event_ids
                    .insert(event_id.to_string());
            }
        }
    }

    // Links from this trace to others: this trace continued them.
    for span in spans {
        for link in &span.links {
            if link.trace_id != trace_id {
                upstream
                    .entry(link.trace_id)
                    .or_default()
                    .links
                    .insert(edge(span, link.trace_id, link.span_id));
            }
        }
    }
    // Links from other traces to this one: they continued this trace.
    unreadable.extend(linking.unreadable_blocks);
    for span in &linking.spans {
        if span.trace_id == trace_id {
            continue;
        }
        for link in &span.links {
            if link.trace_id == trace_id {
                downstream
                    .entry(span.trace_id)
                    .or_default()
                    .links
                    .insert(edge(span, link.trace_id, link.span_id));
            }
        }
    }

    let (continued_in, more) = describe(store, downstream).await;
    unreadable.extend(more);
    let (continued_from, more) = describe(store, upstream).await;
    unreadable.extend(more);
    Continuations {
        continued_in,
        continued_from,
        unreadable_blocks: crate::one_per_block(unreadable),
    }
}

/// The connected traces, sorted by trace id, each with its root service.
async fn describe(
    store: &Store,
    connections: BTreeMap<TraceId, Connection>,
) -> (Vec<TraceContinuation>, Vec<String>) {
    let connections: Vec<(TraceId, Connection)> =
        connections.into_iter().take(MAX_CONNECTED_TRACES).collect();
    if connections.is_empty() {
        return (Vec::new(), Vec::new());
    }
    // Every connected trace in one read per block, not one look-up per trace.
    let wanted: HashSet<TraceId> = connections.iter().map(|(other, _)| *other).collect();
    let lookup = store.spans_by_trace_ids(&wanted, SpanFields::Outline).await;
    let mut by_trace: HashMap<TraceId, Vec<Span>> = HashMap::new();
    for span in lookup.spans {
        by_trace.entry(span.trace_id).or_default().push(span);
    }
    let continuations = connections
        .into_iter()
        .map(|(other, connection)| TraceContinuation {
            trace_id: other.to_hex(),
            root_service: by_trace.get(&other).and_then(|spans| root_service(spans)),
            event_ids: connection.event_ids.into_iter().collect(),
            links: connection.links.into_iter().collect(),
        })
        .collect();
    (continuations, lookup.unreadable_blocks)
}

/// The service of the earliest span whose parent is not in the trace.
fn root_service(spans: &[Span]) -> Option<String> {
    let ids: HashSet<SpanId> = spans.iter().map(|span| span.span_id).collect();
    spans
        .iter()
        .filter(|span| {
            span.parent_span_id
                .is_none_or(|parent| parent == span.span_id || !ids.contains(&parent))
        })
        .min_by_key(|span| (span.start_unix_nanos, span.span_id))
        .map(|span| span.service.to_string())
}
