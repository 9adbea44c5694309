//! Look-ups of many ids at once, for journeys and traces that continue across trace
//! boundaries: the spans carrying any of a set of event ids, and the spans that link to a span
//! of any of a set of traces. Memory is scanned once per look-up, blocks through their bloom
//! filters (as their format version reads them); like the single-id look-ups, unreadable
//! blocks are data.

use std::collections::HashSet;
use std::sync::Arc;

use muninn_model::{Span, TraceId};

use crate::block::{SpanFields, SpanSelection};
use crate::engine::{Lookup, Store, read_blocks};

impl Store {
    /// Every span whose event id is one of `event_ids`, from memory and blocks, each once;
    /// `fields` says which fields are read from blocks.
    pub async fn spans_by_event_ids(
        &self,
        event_ids: &HashSet<String>,
        fields: SpanFields,
    ) -> Lookup {
        let ids = Arc::new(event_ids.clone());
        self.lookup_many(SpanSelection::Events(ids), fields, |span| {
            span.event
                .event_id
                .as_ref()
                .is_some_and(|event_id| event_ids.contains(event_id))
        })
        .await
    }

    /// Every span with a link to a span of one of `traces`, from memory and blocks, each once;
    /// `fields` says which fields are read from blocks.
    pub async fn spans_linking_to(&self, traces: &HashSet<TraceId>, fields: SpanFields) -> Lookup {
        let targets = Arc::new(traces.clone());
        self.lookup_many(SpanSelection::LinkingTo(targets), fields, |span| {
            span.links
                .iter()
                .any(|link| traces.contains(&link.trace_id))
        })
        .await
    }

    async fn lookup_many(
        &self,
        selection: SpanSelection,
        fields: SpanFields,
        matches: impl Fn(&Span) -> bool,
    ) -> Lookup {
        let snapshot = self.snapshot();
        let mut spans: Vec<Span> = snapshot
            .batches
            .iter()
            .filter(|batch| batch.may_hold(&selection))
            .flat_map(|batch| batch.iter())
            .filter(|span| matches(span))
            .cloned()
            .collect();
        let object_store = &snapshot.object_store;
        let (found, unreadable_blocks) = read_blocks(snapshot.blocks, 8, |handle| {
            let object_store = object_store.clone();
            let selection = selection.clone();
            async move { handle.spans(&object_store, selection, fields).await }
        })
        .await;
        // The block predicates are exact for ids; for links read from JSON text they match
        // the text, so every span is checked again here.
        spans.extend(found.into_iter().flatten().filter(|span| matches(span)));
        Lookup::of(spans, unreadable_blocks)
    }
}
