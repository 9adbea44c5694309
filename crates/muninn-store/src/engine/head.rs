//! The head: spans and roll-up cells acknowledged (in the WAL) but not yet in blocks. The WAL
//! thread fills the live head; a flush freezes it (the WAL rotates at the same moment, so a
//! frozen head covers exactly the segments before the new one) and writes it to blocks.

use std::ops::Deref;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use muninn_model::{EventCount, Span, TraceId};

use crate::block::SpanSelection;
use crate::rollup::{self, RollupDelta};

/// Hashes ids into the keys of `HeadBatch` (per process: keys are never stored).
static KEYS: LazyLock<ahash::RandomState> = LazyLock::new(ahash::RandomState::new);

fn trace_key(trace_id: &TraceId) -> u64 {
    KEYS.hash_one(trace_id.0)
}

fn event_key(event_id: &str) -> u64 {
    KEYS.hash_one(event_id)
}

/// One appended batch of spans, with the keys of its trace and event ids sorted, so that a
/// look-up searches only the batches that may hold its ids rather than every span in memory
/// (up to a million under full ingest, most of them cache misses).
#[derive(Debug, Default)]
pub(crate) struct HeadBatch {
    spans: Vec<Span>,
    trace_keys: Vec<u64>,
    event_keys: Vec<u64>,
    /// The WAL record it came with (set when it enters the head), and the record's counts:
    /// what a query node mirroring this head asks for (`Store::head_since`).
    pub seq: u64,
    pub counts: Vec<EventCount>,
}

impl HeadBatch {
    /// A batch of spans alone.
    #[cfg(test)]
    pub(crate) fn new(spans: Vec<Span>) -> Self {
        HeadBatch::with_counts(spans, Vec::new())
    }

    /// A WAL record's spans and counts.
    pub(crate) fn with_counts(spans: Vec<Span>, counts: Vec<EventCount>) -> Self {
        let mut trace_keys: Vec<u64> = spans.iter().map(|span| trace_key(&span.trace_id)).collect();
        trace_keys.sort_unstable();
        trace_keys.dedup();
        // Sized for every span, so that the keys never take more than 16 bytes a span.
        let mut event_keys: Vec<u64> = Vec::with_capacity(spans.len());
        event_keys.extend(
            spans
                .iter()
                .filter_map(|span| span.event.event_id.as_deref().map(event_key)),
        );
        event_keys.sort_unstable();
        event_keys.dedup();
        HeadBatch {
            spans,
            trace_keys,
            event_keys,
            seq: 0,
            counts,
        }
    }

    /// The memory the keys hold, counted with the spans' against the memory bound.
    pub(crate) fn key_bytes(&self) -> u64 {
        ((self.trace_keys.capacity() + self.event_keys.capacity()) * size_of::<u64>()) as u64
    }

    /// Whether the batch may hold a span the keys select (false only when it holds none).
    pub(crate) fn may_hold(&self, keys: &SelectionKeys) -> bool {
        let any_of =
            |wanted: &[u64], held: &[u64]| wanted.iter().any(|key| held.binary_search(key).is_ok());
        match keys {
            SelectionKeys::Traces(wanted) => any_of(wanted, &self.trace_keys),
            SelectionKeys::Events(wanted) => any_of(wanted, &self.event_keys),
            SelectionKeys::Any => true,
        }
    }
}

/// The keys of what a look-up selects, hashed once for all the batches it checks.
pub(crate) enum SelectionKeys {
    Traces(Vec<u64>),
    Events(Vec<u64>),
    /// Selections by links or columns are not keyed: every batch may hold them.
    Any,
}

impl SelectionKeys {
    pub(crate) fn of(selection: &SpanSelection) -> Self {
        match selection {
            SpanSelection::Trace(trace_id) => SelectionKeys::Traces(vec![trace_key(trace_id)]),
            SpanSelection::Traces(traces) => {
                SelectionKeys::Traces(traces.iter().map(trace_key).collect())
            }
            SpanSelection::Event(event_id) => SelectionKeys::Events(vec![event_key(event_id)]),
            SpanSelection::Events(event_ids) => SelectionKeys::Events(
                event_ids
                    .iter()
                    .map(|event_id| event_key(event_id))
                    .collect(),
            ),
            SpanSelection::LinkingTo(_) | SpanSelection::Matching(_) => SelectionKeys::Any,
        }
    }
}

impl Deref for HeadBatch {
    type Target = Vec<Span>;

    fn deref(&self) -> &Vec<Span> {
        &self.spans
    }
}

/// Spans and roll-up cells not yet in blocks.
#[derive(Default)]
pub(crate) struct Head {
    /// Appended batches, shared with readers (a snapshot clones the `Arc`s, not the spans).
    pub batches: Vec<Arc<HeadBatch>>,
    pub n_spans: usize,
    /// The memory the spans hold (`Span::memory_bytes`).
    pub n_bytes: u64,
    pub delta: RollupDelta,
    pub first_append: Option<Instant>,
    /// The highest WAL sequence number in this head: a flush of it makes every segment up
    /// to this one deletable.
    pub last_seq: u64,
}

impl Head {
    /// Adds an acknowledged batch; `n_bytes` is the memory its spans and keys hold.
    pub(crate) fn insert(
        &mut self,
        seq: u64,
        mut spans: HeadBatch,
        n_bytes: u64,
        delta: RollupDelta,
    ) {
        self.n_spans += spans.len();
        self.n_bytes += n_bytes;
        if !spans.is_empty() || !spans.counts.is_empty() {
            spans.seq = seq;
            self.batches.push(Arc::new(spans));
        }
        rollup::merge_delta(&mut self.delta, delta);
        self.first_append.get_or_insert_with(Instant::now);
        self.last_seq = self.last_seq.max(seq);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.n_spans == 0 && self.delta.is_empty()
    }

    pub(crate) fn spans(&self) -> impl Iterator<Item = &Span> {
        self.batches.iter().flat_map(|batch| batch.iter())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn span(trace_byte: u8, event_id: Option<&str>) -> Span {
        let mut span = crate::engine::testing::event_span(trace_byte, 0);
        span.event.event_id = event_id.map(Into::into);
        span
    }

    fn held(batch: &HeadBatch, selection: &SpanSelection) -> bool {
        batch.may_hold(&SelectionKeys::of(selection))
    }

    /// A look-up skips a batch only when none of its spans has the id it wants; link and
    /// column searches read every batch.
    #[test]
    fn a_batch_is_searched_only_for_the_ids_it_holds() {
        let batch = HeadBatch::new(vec![
            span(1, Some("order-1")),
            span(2, None),
            span(2, Some("7c9e6679-7425-40de-944b-e07fc1f90ae7")),
        ]);
        assert_eq!(batch.len(), 3);
        assert!(
            batch.key_bytes() >= 4 * 8,
            "two trace keys and two event keys"
        );
        let trace = |byte: u8| SpanSelection::Trace(TraceId([byte; 16]));
        assert!(held(&batch, &trace(1)));
        assert!(held(&batch, &trace(2)));
        assert!(!held(&batch, &trace(3)));
        let traces = |bytes: &[u8]| {
            SpanSelection::Traces(Arc::new(
                bytes.iter().map(|byte| TraceId([*byte; 16])).collect(),
            ))
        };
        assert!(held(&batch, &traces(&[9, 2])));
        assert!(!held(&batch, &traces(&[9, 8])));
        let event = |id: &str| SpanSelection::Event(Arc::from(id));
        assert!(held(&batch, &event("order-1")));
        assert!(held(&batch, &event("7c9e6679-7425-40de-944b-e07fc1f90ae7")));
        assert!(!held(&batch, &event("order-2")));
        assert!(!held(&batch, &event("")));
        let events = |ids: &[&str]| {
            SpanSelection::Events(Arc::new(
                ids.iter().map(|id| id.to_string()).collect::<HashSet<_>>(),
            ))
        };
        assert!(held(&batch, &events(&["nope", "order-1"])));
        assert!(!held(&batch, &events(&["nope", "order-2"])));
        assert!(held(
            &batch,
            &SpanSelection::LinkingTo(Arc::new(HashSet::from([TraceId([7; 16])])))
        ));
    }
}
