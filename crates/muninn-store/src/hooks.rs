//! Hooks through which a layer above the store (the server's tail sampler) sees every span
//! appended and decides which traces a flush leaves out of the blocks. They never weaken
//! durability: an append is acknowledged exactly as without them, the WAL holds every span,
//! and a span left out of the blocks is one whose trace the hook chose to drop. After a crash
//! the WAL is replayed without consulting the hooks, so anything not yet flushed is kept.

use std::sync::{Arc, RwLock};

use muninn_model::{Span, TraceId};

use crate::engine::Store;

/// `false` for a trace whose spans a flush must not write to blocks. Called once per span at
/// flush time, so it must be cheap.
pub type FlushFilter = Arc<dyn Fn(&TraceId) -> bool + Send + Sync>;

/// Sees the spans of every append before they are written to the WAL (an append that then
/// fails has still been seen). Called on the appending task, so it must be cheap.
pub type AppendObserver = Arc<dyn Fn(&[Span]) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Hooks {
    flush_filter: RwLock<Option<FlushFilter>>,
    append_observer: RwLock<Option<AppendObserver>>,
}

impl Hooks {
    pub(crate) fn flush_filter(&self) -> Option<FlushFilter> {
        self.flush_filter
            .read()
            .map(|filter| filter.clone())
            .unwrap_or_default()
    }

    pub(crate) fn observe(&self, spans: &[Span]) {
        if spans.is_empty() {
            return;
        }
        let observer = self
            .append_observer
            .read()
            .map(|observer| observer.clone())
            .unwrap_or_default();
        if let Some(observer) = observer {
            observer(spans);
        }
    }
}

impl Store {
    /// From the next flush on, spans of traces for which `filter` answers `false` are not
    /// written to blocks (their roll-up counts still are). Replaces any earlier filter.
    pub fn set_flush_filter(&self, filter: FlushFilter) {
        if let Ok(mut slot) = self.hooks().flush_filter.write() {
            *slot = Some(filter);
        }
    }

    /// `observer` sees the spans of every later append. Replaces any earlier observer.
    pub fn set_append_observer(&self, observer: AppendObserver) {
        if let Ok(mut slot) = self.hooks().append_observer.write() {
            *slot = Some(observer);
        }
    }
}
