//! Look-ups of many ids at once, for journeys and traces that continue across trace
//! boundaries: the spans carrying any of a set of event ids, and the spans that link to a span
//! of any of a set of traces. Each is one `Store::lookup` (`engine/lookup.rs`), as the
//! single-id look-ups are.

use std::collections::HashSet;
use std::sync::Arc;

use muninn_model::TraceId;

use crate::block::{SpanFields, SpanSelection};
use crate::engine::{Lookup, Store};

impl Store {
    /// Every span whose event id is one of `event_ids`, from memory and blocks, each once;
    /// `fields` says which fields are read from blocks.
    pub async fn spans_by_event_ids(
        &self,
        event_ids: &HashSet<String>,
        fields: SpanFields,
    ) -> Lookup {
        let ids = Arc::new(event_ids.clone());
        self.lookup(SpanSelection::Events(ids), fields, |span| {
            span.event
                .event_id
                .as_ref()
                .is_some_and(|event_id| event_ids.contains(event_id.as_str()))
        })
        .await
    }

    /// Every span with a link to a span of one of `traces`, from memory and blocks, each once;
    /// `fields` says which fields are read from blocks.
    pub async fn spans_linking_to(&self, traces: &HashSet<TraceId>, fields: SpanFields) -> Lookup {
        let targets = Arc::new(traces.clone());
        self.lookup(SpanSelection::LinkingTo(targets), fields, |span| {
            span.links
                .iter()
                .any(|link| traces.contains(&link.trace_id))
        })
        .await
    }
}
