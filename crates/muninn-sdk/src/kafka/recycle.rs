//! Headers handed back to the sending thread: a record's header list is detached from its
//! delivery report on rdkafka's polling thread and freed by the next send, on the thread that
//! allocated it, instead of by librdkafka on the polling thread.
//!
//! Why: librdkafka `malloc`s every header and the list that holds them on the sending thread,
//! and frees them, with the record, on the thread that polls for delivery reports. glibc makes
//! that costly for the sending thread: the freed chunks land in its arena's fast bins, and its
//! next allocation of a kilobyte or more (the record's own copy of the payload) consolidates
//! them. Freed on the sending thread, they go to its per-thread cache and are reused by the
//! next record's headers. Measured in `kafka_collector_down` (BENCHMARKS.md).
//!
//! This is the workspace's only `unsafe` code: two librdkafka calls that rdkafka does not wrap.

#![allow(unsafe_code)]

use std::ptr::NonNull;

use crossbeam_queue::ArrayQueue;
use rdkafka::bindings::{
    rd_kafka_headers_destroy, rd_kafka_headers_t, rd_kafka_message_detach_headers,
};
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaRespErr;

/// How many detached header lists wait for a send at most (a list of the SDK's four headers
/// is about 500 bytes); past that, the polling thread frees them itself, as librdkafka would.
pub(super) const WAITING: usize = 1_024;

/// How many waiting lists each send frees: more than the one a send adds in the steady state,
/// so that the queue drains after a burst of delivery reports.
const FREED_PER_SEND: usize = 2;

/// A record's header list, detached from its message; freed when dropped.
struct Detached(NonNull<rd_kafka_headers_t>);

// SAFETY: a librdkafka header list has no thread affinity, and once detached from its message
// this value is its only owner, so it may be freed on any thread.
unsafe impl Send for Detached {}

impl Drop for Detached {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `rd_kafka_message_detach_headers`, which gave this
        // value sole ownership of the list; it is destroyed exactly once, here.
        unsafe { rd_kafka_headers_destroy(self.0.as_ptr()) }
    }
}

/// The header lists of delivered records, waiting to be freed by a sending thread.
pub(super) struct Recycle {
    waiting: ArrayQueue<Detached>,
}

impl Recycle {
    pub(super) fn new() -> Self {
        Recycle {
            waiting: ArrayQueue::new(WAITING),
        }
    }

    /// On the polling thread, from the delivery report of `message`: takes its header list,
    /// if it has one, to be freed by a later send.
    pub(super) fn take_back(&self, message: &BorrowedMessage<'_>) {
        let mut headers = std::ptr::null_mut();
        // SAFETY: `message` is the delivery report's message, alive for this call; detaching
        // moves its header list (or nothing) to `headers`, and librdkafka no longer frees it
        // with the message.
        let error = unsafe { rd_kafka_message_detach_headers(message.ptr(), &mut headers) };
        if error != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return;
        }
        if let Some(headers) = NonNull::new(headers) {
            // Full: the list is dropped (freed) here, which is what librdkafka would do.
            let _ = self.waiting.push(Detached(headers));
        }
    }

    /// On a sending thread: frees a few waiting header lists.
    pub(super) fn free_some(&self) {
        for _ in 0..FREED_PER_SEND {
            if self.waiting.pop().is_none() {
                break;
            }
        }
    }

    /// How many detached lists are waiting to be freed.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}
