//! The WAL thread: the one writer of the WAL. It drains append commands, writes each as one
//! record, syncs once per group (group commit: many concurrent appends share one
//! `fdatasync`), then makes the group visible (head and roll-ups) and acknowledges it. A
//! freeze (the start of a flush) is a barrier: everything before it is committed, the WAL
//! rotates to a new segment, and the head is handed over whole. A segment that reaches
//! `wal_segment_bytes` is closed and the next started too, so a head may span several.
//!
//! Invariant: an append is answered `Ok` only after its record is synced, and becomes visible
//! to queries at the same moment. After a failed write or sync (a full disk), every append is
//! refused (`Unavailable`) until a new segment can be started: the thread tries at most once a
//! second, when an append or a flush asks, and the store then takes writes again by itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::head::{Head, HeadBatch};
use crate::error::{StoreError, StoreErrorKind};
use crate::rollup::RollupDelta;
use crate::wal::WalWriter;

/// Commands a group takes at most before it syncs.
const MAX_GROUP: usize = 4096;

pub(crate) enum WalCommand {
    Append {
        payload: Vec<u8>,
        spans: Box<HeadBatch>,
        /// The memory `spans` hold (`HeadBatch::memory_bytes`), counted by the
        /// appender.
        n_bytes: u64,
        delta: RollupDelta,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    Freeze {
        reply: oneshot::Sender<Result<Arc<Head>, StoreError>>,
    },
}

struct PendingAck {
    seq: u64,
    spans: Box<HeadBatch>,
    n_bytes: u64,
    delta: RollupDelta,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// How long after a failed attempt the WAL is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Whether the WAL can be written, and what went wrong when it could not.
#[derive(Default)]
pub(crate) struct WalHealth {
    failed: AtomicBool,
    failures: AtomicU64,
    error: Mutex<Option<String>>,
    last_attempt: Mutex<Option<Instant>>,
}

impl WalHealth {
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Failed writes and syncs (and failed attempts to start a new segment) since the store
    /// opened.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The last failure's error while the WAL is failing.
    pub(crate) fn error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn fail(&self, error: &StoreError) {
        if !self.failed.swap(true, Ordering::Relaxed) {
            tracing::error!(%error, "the WAL cannot be written; appends are refused until it can");
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
        *self.last_attempt.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn recovered(&self) {
        self.failed.store(false, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!("the WAL can be written again (a new segment); appends are taken");
    }

    /// Whether the WAL may be tried again: a second since the last attempt.
    pub(crate) fn retry_due(&self) -> bool {
        self.last_attempt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|attempt| attempt.elapsed() >= RETRY_AFTER_FAILURE)
    }

    /// The refusal of an append while the WAL is failing.
    pub(crate) fn refusal(&self) -> StoreError {
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!(
                "the write-ahead log cannot be written ({}); nothing of this batch was \
                 acknowledged: retry shortly",
                self.error().unwrap_or_else(|| "it failed".into())
            ),
        )
    }

    /// Tries a new segment if the WAL is failing and an attempt is due; whether it can be
    /// written now.
    fn ensure_writable(&self, writer: &mut WalWriter) -> bool {
        if !self.failed() {
            return true;
        }
        if !self.retry_due() {
            return false;
        }
        match writer.reopen() {
            Ok(()) => {
                self.recovered();
                true
            }
            Err(error) => {
                self.fail(&error);
                false
            }
        }
    }
}

/// The WAL thread: drains commands, writes appends, syncs once per group, then makes the
/// group visible (head and roll-ups) and acknowledges it. Freezes are barriers.
pub(crate) fn wal_thread(
    shared: Arc<Shared>,
    mut writer: WalWriter,
    mut commands: mpsc::Receiver<WalCommand>,
) {
    let mut pending: Vec<PendingAck> = Vec::new();
    while let Some(first) = commands.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match commands.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        for command in group {
            match command {
                WalCommand::Append {
                    payload,
                    spans,
                    n_bytes,
                    delta,
                    reply,
                } => {
                    if !shared.wal.ensure_writable(&mut writer) {
                        let _ = reply.send(Err(shared.wal.refusal()));
                        continue;
                    }
                    match writer.append(&payload) {
                        Ok(seq) => pending.push(PendingAck {
                            seq,
                            spans,
                            n_bytes,
                            delta,
                            reply,
                        }),
                        Err(error) => {
                            shared.wal.fail(&error);
                            let _ = reply.send(Err(shared.wal.refusal()));
                        }
                    }
                }
                WalCommand::Freeze { reply } => {
                    commit(&shared, &mut writer, &mut pending);
                    if !shared.wal.ensure_writable(&mut writer) {
                        let _ = reply.send(Err(shared.wal.refusal()));
                        continue;
                    }
                    let rotated = writer.rotate();
                    if let Err(error) = &rotated {
                        shared.wal.fail(error);
                    }
                    let result = rotated.map(|_| {
                        let frozen = match shared.head.write() {
                            Ok(mut head) => Arc::new(std::mem::take(&mut *head)),
                            Err(_) => Arc::new(Head::default()),
                        };
                        if !frozen.is_empty()
                            && let Ok(mut flushing) = shared.flushing.write()
                        {
                            shared
                                .flushing_bytes
                                .fetch_add(frozen.n_bytes, Ordering::Relaxed);
                            flushing.push(frozen.clone());
                        }
                        frozen
                    });
                    let _ = reply.send(result);
                }
            }
        }
        commit(&shared, &mut writer, &mut pending);
    }
    let _ = writer.sync();
}

fn commit(shared: &Shared, writer: &mut WalWriter, pending: &mut Vec<PendingAck>) {
    if pending.is_empty() {
        return;
    }
    if let Err(error) = writer.sync() {
        shared.wal.fail(&error);
        for ack in pending.drain(..) {
            let _ = ack.reply.send(Err(shared.wal.refusal()));
        }
        return;
    }
    let mut head_full = false;
    let mut replies = Vec::with_capacity(pending.len());
    {
        let mut rollups = shared
            .rollups
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut head = shared
            .head
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut n_inserted = 0;
        let mut bytes_inserted = 0;
        for ack in pending.drain(..) {
            rollups.apply(&ack.delta);
            n_inserted += ack.spans.n_spans() as u64;
            bytes_inserted += ack.n_bytes;
            head.insert(ack.seq, *ack.spans, ack.n_bytes, ack.delta);
            replies.push((ack.reply, ack.seq));
        }
        shared
            .unflushed_spans
            .fetch_add(n_inserted, Ordering::Relaxed);
        shared
            .unflushed_bytes
            .fetch_add(bytes_inserted, Ordering::Relaxed);
        head_full |= head.n_spans >= shared.config.flush_max_spans
            || head.n_bytes >= super::flush_max_bytes(shared);
    }
    for (reply, seq) in replies {
        let _ = reply.send(Ok(seq));
    }
    if head_full {
        shared.flush_wanted.notify_one();
    }
    // Replay reads a segment whole: a long-lived head spans several segments of bounded size.
    if writer.segment_bytes() >= shared.config.wal_segment_bytes
        && let Err(error) = writer.rotate()
    {
        tracing::warn!(%error, "could not start the next WAL segment; the current one grows on");
    }
}
