//! Muninn's read path: the questions of the query API answered from the store. Catalog,
//! lineage, throughput and the comparison of two windows read roll-ups only; journeys and traces use the id look-ups; the
//! Jaeger and Zipkin answers (their JSON shapes, search, dependency graph) use the store's scans.
//! Every list is sorted, so the same data always gives the same answer (and the same bytes).

mod catalog;
mod compare;
mod continuation;
mod dependencies;
mod diagram;
mod edges;
mod impact;
mod jaeger;
mod journey;
mod pattern;
mod render;
mod schemas;
mod search;
mod tags;
mod view;
mod zipkin;

pub use catalog::{
    EventTypeSummary, Participant, ServiceFlow, ServiceSummary, StreamSummary, event_types,
    participants, services, streams,
};
pub use compare::{
    Change, Comparison, DecreaseScope, MixChange, Origin, Presence, Presences, UNUSUAL,
    UNUSUAL_ABSENCE, Window, compare, score,
};
pub use continuation::{LinkEdge, TraceContinuation};
pub use dependencies::{Dependency, dependencies};
pub use diagram::{DiagramEdge, DiagramError, parse_dot, parse_mermaid};
pub use edges::{
    Filter, Lineage, LineageEdge, Point, Series, Throughput, ThroughputError, TimeRange, lineage,
    throughput,
};
pub use impact::{Impact, ImpactConsumer, ImpactProducer, impact};
pub use jaeger::{
    JaegerDependency, JaegerError, JaegerOperation, JaegerProcess, JaegerReference, JaegerResponse,
    JaegerSpan, JaegerTag, JaegerTrace, jaeger_dependencies, jaeger_error, jaeger_operation_names,
    jaeger_operations, jaeger_search, jaeger_services, jaeger_trace, jaeger_trace_by_id,
};
pub use journey::{Hop, JoinedBy, Journey, SpanRef, TraceNode, TraceTree, journey, trace};
pub use pattern::{NamePattern, PatternError};
pub use render::{render_dot, render_mermaid};
pub use schemas::{
    EventTypeSchemas, FirstSender, FirstSenders, ProducerSchemas, SchemaSummary, SchemaUse, schemas,
};
pub use search::{
    FoundTrace, FoundTraces, TagPredicate, TraceSearchQuery, search_traces, trace_spans,
};
pub use tags::TagStyle;
pub use view::SpanView;
pub use zipkin::{
    ZipkinAnswer, ZipkinDependencyLink, ZipkinEndpoint, ZipkinSpan, zipkin_dependencies,
    zipkin_names, zipkin_search, zipkin_span, zipkin_trace,
};

/// The unreadable blocks of an answer made of several reads, one entry per block: each entry is
/// `<block>: <why>`, and one block may fail two reads of one answer for different reasons (found
/// damaged by the first, quarantined by the second), which is still one block not read. Sorted;
/// the first reason of each block (in sort order) is kept.
pub(crate) fn one_per_block(entries: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut entries: Vec<String> = entries.into_iter().collect();
    entries.sort();
    entries.dedup_by(|later, earlier| block_of(later) == block_of(earlier));
    entries
}

/// The block an unreadable-block entry names: what precedes its first `": "`.
fn block_of(entry: &str) -> &str {
    entry.split_once(": ").map_or(entry, |(block, _)| block)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_block_that_failed_two_reads_is_one_unreadable_block() {
        let entries = [
            "blocks/v2/b: quarantined: checksum mismatch",
            "blocks/v2/a: spans.parquet is damaged",
            "blocks/v2/b: spans.parquet is damaged",
            "blocks/v2/a: spans.parquet is damaged",
        ]
        .map(str::to_string);
        assert_eq!(
            super::one_per_block(entries),
            [
                "blocks/v2/a: spans.parquet is damaged",
                "blocks/v2/b: quarantined: checksum mismatch"
            ]
        );
    }
}
