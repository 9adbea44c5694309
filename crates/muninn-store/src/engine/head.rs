//! The head: spans and roll-up cells acknowledged (in the WAL) but not yet in blocks. The WAL
//! thread fills the live head; a flush freezes it (the WAL rotates at the same moment, so a
//! frozen head covers exactly the segments before the new one) and writes it to blocks.

use std::sync::Arc;
use std::time::Instant;

use muninn_model::Span;

use crate::rollup::{self, RollupDelta};

/// Spans and roll-up cells not yet in blocks.
#[derive(Default)]
pub(crate) struct Head {
    /// Appended batches, shared with readers (a snapshot clones the `Arc`s, not the spans).
    pub batches: Vec<Arc<Vec<Span>>>,
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
    pub(crate) fn insert(&mut self, seq: u64, spans: Vec<Span>, n_bytes: u64, delta: &RollupDelta) {
        self.n_spans += spans.len();
        self.n_bytes += n_bytes;
        if !spans.is_empty() {
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
