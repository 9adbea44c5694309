//! What an opened `spans.parquet` keeps in memory: its footer (with the page indexes) and the
//! bloom filters of its id columns, counted in bytes so that the store can bound its memory.

use parquet::bloom_filter::Sbbf;

use super::file::{EventIds, Links, SpansFile};
use super::filter::{self, Filter};

/// The bytes an opened file keeps in memory, by part.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexBytes {
    /// The decoded footer: schema, row group and column chunk metadata, page indexes.
    pub footer: u64,
    /// The bloom filters of `trace_id` kept in memory (within the store's budget for them;
    /// the others are probed in the file).
    pub trace_id_filters: u64,
    /// The bloom filters of `event_id` (and `event_id_text`).
    pub event_id_filters: u64,
    /// The bloom filters of `link_trace_ids`, once loaded (when the block is warmed, or by its
    /// first link look-up).
    pub link_filters: u64,
}

impl IndexBytes {
    pub fn total(&self) -> u64 {
        self.footer + self.trace_id_filters + self.event_id_filters + self.link_filters
    }

    pub(crate) fn add(&mut self, other: IndexBytes) {
        self.footer += other.footer;
        self.trace_id_filters += other.trace_id_filters;
        self.event_id_filters += other.event_id_filters;
        self.link_filters += other.link_filters;
    }
}

/// The bytes the bitsets of `blooms` hold (32 bytes a block).
pub(super) fn filter_bytes(blooms: &[Option<Sbbf>]) -> u64 {
    let blocks: usize = blooms.iter().flatten().map(Sbbf::num_blocks).sum();
    (blocks * 32 + std::mem::size_of_val(blooms)) as u64
}

impl SpansFile {
    /// What this opened file keeps in memory.
    pub(crate) fn index_bytes(&self) -> IndexBytes {
        let (uuid, text) = match &self.event_ids {
            EventIds::Text { blooms } => (filter_bytes(blooms), 0),
            EventIds::UuidOrText {
                uuid_blooms,
                text_blooms,
                ..
            } => (filter_bytes(uuid_blooms), filter_bytes(text_blooms)),
        };
        IndexBytes {
            footer: self.file.memory_bytes(),
            trace_id_filters: self
                .trace_id_filters
                .iter()
                .flatten()
                .map(Filter::memory_bytes)
                .sum::<u64>()
                + std::mem::size_of_val(self.trace_id_filters.as_slice()) as u64
                + self.trace_blooms.get().map_or(0, |kept| {
                    kept.iter().flatten().map(filter::kept_bytes).sum::<u64>()
                        + std::mem::size_of_val(kept.as_slice()) as u64
                }),
            event_id_filters: uuid + text,
            link_filters: match self.links.get() {
                Some(Links::TraceIds { blooms, .. }) => filter_bytes(blooms),
                _ => 0,
            },
        }
    }
}
