//! Muninn's read path: the questions of the query API answered from the store. Catalog,
//! lineage and throughput read roll-ups only; journeys and traces use the id look-ups.
//! Every list is sorted, so the same data always gives the same answer (and the same bytes).

mod catalog;
mod edges;
mod journey;
mod render;
mod view;

pub use catalog::{
    EventTypeSummary, Participant, ServiceFlow, ServiceSummary, StreamSummary, event_types,
    participants, services, streams,
};
pub use edges::{
    Filter, Lineage, LineageEdge, Point, Series, Throughput, ThroughputError, TimeRange, lineage,
    throughput,
};
pub use journey::{Hop, Journey, TraceNode, TraceTree, journey, trace};
pub use render::{render_dot, render_mermaid};
pub use view::SpanView;
