//! The bounded span queue between the caller and the export thread: lock-free, never blocks,
//! bounded in spans and in estimated bytes; what does not fit is dropped and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::counter::Count;
use crate::record::Record;

/// Bits of [`SpanQueue::occupancy`] that hold the queued bytes; the spans are counted above
/// them. The options keep both far from their field's limit (`MAX_QUEUE_BYTES`, and at most
/// 10,000,000 spans of the 16,777,216 that 24 bits hold), so racing pushes that overshoot a
/// bound before they back out never carry from one field into the other.
const BYTES_BITS: u32 = 40;
const BYTES_MASK: u64 = (1 << BYTES_BITS) - 1;
const ONE_SPAN: u64 = 1 << BYTES_BITS;

/// The largest `max_queue_bytes` the queue can account for (256 GiB).
pub(crate) const MAX_QUEUE_BYTES: usize = 1 << (BYTES_BITS - 2);

pub(crate) struct SpanQueue {
    spans: ArrayQueue<Record>,
    /// Spans and estimated bytes waiting, in one word: a push reserves both with one atomic
    /// add and learns the queue's length from it, without reading the ring's head, which the
    /// export thread writes for every span it takes.
    occupancy: AtomicU64,
    max_spans: u64,
    max_bytes: u64,
    peak_bytes: AtomicUsize,
    /// Set when the queue reached a batch and the exporter was woken, cleared by the exporter.
    pub(crate) wake_pending: AtomicBool,
    pub(crate) dropped_full: AtomicU64,
    /// Spans taken in so far: bumped by every accepted push, so without a locked add.
    pub(crate) queued: Count,
}

impl SpanQueue {
    pub(crate) fn new(max_spans: usize, max_bytes: usize) -> Self {
        SpanQueue {
            spans: ArrayQueue::new(max_spans),
            occupancy: AtomicU64::new(0),
            max_spans: max_spans as u64,
            max_bytes: max_bytes.min(MAX_QUEUE_BYTES) as u64,
            peak_bytes: AtomicUsize::new(0),
            wake_pending: AtomicBool::new(false),
            dropped_full: AtomicU64::new(0),
            queued: Count::new(),
        }
    }

    /// Adds a span unless the queue is full (in spans or bytes). Returns the number of spans
    /// waiting with it, or `None` when it was dropped (and counted).
    #[inline(always)]
    pub(crate) fn push(&self, record: Record) -> Option<usize> {
        let size = record.estimated_bytes() as u64;
        let reserved = ONE_SPAN + size;
        let before = self.occupancy.fetch_add(reserved, Ordering::Relaxed);
        let spans = (before >> BYTES_BITS) + 1;
        let bytes = (before & BYTES_MASK) + size;
        if spans > self.max_spans || bytes > self.max_bytes {
            self.occupancy.fetch_sub(reserved, Ordering::Relaxed);
            self.dropped_full.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // The ring has room: a span is counted in `occupancy` before it enters the ring and
        // leaves the ring before it is uncounted, so the ring never holds more than counted.
        if self.spans.push(record).is_err() {
            self.occupancy.fetch_sub(reserved, Ordering::Relaxed);
            self.dropped_full.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.queued.add_one();
        let bytes = bytes as usize;
        // A plain load first: the read-modify-write only when the peak moves.
        if bytes > self.peak_bytes.load(Ordering::Relaxed) {
            self.peak_bytes.fetch_max(bytes, Ordering::Relaxed);
        }
        Some(spans as usize)
    }

    /// Whether a span would be refused now: a span started then is dropped (and counted)
    /// right away instead of being built only to be refused at its end.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        let occupancy = self.occupancy.load(Ordering::Relaxed);
        occupancy >> BYTES_BITS >= self.max_spans || occupancy & BYTES_MASK >= self.max_bytes
    }

    /// Takes up to `max` spans, oldest first.
    pub(crate) fn drain(&self, max: usize, into: &mut Vec<Record>) {
        let mut spans = 0u64;
        let mut freed = 0u64;
        while spans < max as u64 {
            let Some(record) = self.spans.pop() else {
                break;
            };
            spans += 1;
            freed += record.estimated_bytes() as u64;
            into.push(record);
        }
        if spans > 0 {
            self.occupancy
                .fetch_sub(spans * ONE_SPAN + freed, Ordering::Relaxed);
        }
    }

    pub(crate) fn len(&self) -> usize {
        (self.occupancy.load(Ordering::Relaxed) >> BYTES_BITS) as usize
    }

    pub(crate) fn bytes(&self) -> usize {
        (self.occupancy.load(Ordering::Relaxed) & BYTES_MASK) as usize
    }

    pub(crate) fn peak_bytes(&self) -> usize {
        self.peak_bytes.load(Ordering::Relaxed)
    }

    /// The configured byte bound.
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes as usize
    }
}
