//! The bounded span queue between the caller and the export thread: lock-free, never blocks,
//! bounded in spans and in estimated bytes; what does not fit is dropped and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::record::Record;

pub(crate) struct SpanQueue {
    spans: ArrayQueue<Record>,
    bytes: AtomicUsize,
    peak_bytes: AtomicUsize,
    max_bytes: usize,
    /// Set when the queue reached a batch and the exporter was woken, cleared by the exporter.
    pub(crate) wake_pending: AtomicBool,
    pub(crate) dropped_full: AtomicU64,
    pub(crate) queued: AtomicU64,
}

impl SpanQueue {
    pub(crate) fn new(max_spans: usize, max_bytes: usize) -> Self {
        SpanQueue {
            spans: ArrayQueue::new(max_spans),
            bytes: AtomicUsize::new(0),
            peak_bytes: AtomicUsize::new(0),
            max_bytes,
            wake_pending: AtomicBool::new(false),
            dropped_full: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }

    /// Adds a span unless the queue is full (in spans or bytes); false when it was dropped
    /// (and counted).
    pub(crate) fn push(&self, record: Record) -> bool {
        let size = record.estimated_bytes();
        let before = self.bytes.fetch_add(size, Ordering::Relaxed);
        if before + size > self.max_bytes {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            self.dropped_full.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        match self.spans.push(record) {
            Ok(()) => {
                // A plain load first: the read-modify-write only when the peak moves.
                if before + size > self.peak_bytes.load(Ordering::Relaxed) {
                    self.peak_bytes.fetch_max(before + size, Ordering::Relaxed);
                }
                self.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.bytes.fetch_sub(size, Ordering::Relaxed);
                self.dropped_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether a span would be refused now: a span started then is dropped (and counted)
    /// right away instead of being built only to be refused at its end.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.spans.is_full() || self.bytes.load(Ordering::Relaxed) >= self.max_bytes
    }

    /// Takes up to `max` spans, oldest first.
    pub(crate) fn drain(&self, max: usize, into: &mut Vec<Record>) {
        let mut freed = 0;
        while into.len() < max {
            let Some(record) = self.spans.pop() else {
                break;
            };
            freed += record.estimated_bytes();
            into.push(record);
        }
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn peak_bytes(&self) -> usize {
        self.peak_bytes.load(Ordering::Relaxed)
    }

    /// Accounted bytes of one span (constant, so the bound needs no extra state).
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}
