//! The WAL thread: the one writer of the WAL. It drains append commands, writes each as one
//! record, syncs once per group (group commit: many concurrent appends share one
//! `fdatasync`), then makes the group visible (head and roll-ups) and acknowledges it. A
//! freeze (the start of a flush) is a barrier: everything before it is committed, the WAL
//! rotates to a new segment, and the head is handed over whole.
//!
//! Invariant: an append is answered `Ok` only after its record is synced, and becomes visible
//! to queries at the same moment; after a failed write or sync the store takes no more writes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use muninn_model::{EventCount, Span};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::head::{Head, HeadBatch};
use crate::error::{StoreError, StoreErrorKind};
use crate::rollup::RollupDelta;
use crate::wal::WalWriter;

/// Commands a group takes at most before it syncs.
const MAX_GROUP: usize = 4096;

/// The payload of one WAL record, as written (postcard).
#[derive(Serialize)]
pub(crate) struct WalBatchRef<'a> {
    pub spans: &'a [Span],
    pub counts: &'a [EventCount],
}

/// The payload of one WAL record, as read back on recovery.
#[derive(Deserialize)]
pub(crate) struct WalBatch {
    pub spans: Vec<Span>,
    pub counts: Vec<EventCount>,
}

pub(crate) enum WalCommand {
    Append {
        payload: Vec<u8>,
        spans: HeadBatch,
        /// The memory `spans` hold (`Span::memory_bytes` and the batch's keys), counted by the
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
    spans: HeadBatch,
    n_bytes: u64,
    delta: RollupDelta,
    reply: oneshot::Sender<Result<u64, StoreError>>,
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
                    if shared.failed.load(Ordering::Relaxed) {
                        let _ = reply.send(Err(StoreError::new(
                            StoreErrorKind::Closed,
                            "the WAL failed earlier",
                        )));
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
                            shared.failed.store(true, Ordering::Relaxed);
                            let _ = reply.send(Err(error));
                        }
                    }
                }
                WalCommand::Freeze { reply } => {
                    commit(&shared, &mut writer, &mut pending);
                    let result = writer.rotate().map(|_| {
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
        shared.failed.store(true, Ordering::Relaxed);
        tracing::error!(%error, "WAL sync failed; the store stops taking writes");
        for ack in pending.drain(..) {
            let _ = ack.reply.send(Err(error.duplicate()));
        }
        return;
    }
    let mut head_full = false;
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
        for ack in pending.iter_mut() {
            rollups.apply(&ack.delta);
            n_inserted += ack.spans.len() as u64;
            bytes_inserted += ack.n_bytes;
            head.insert(
                ack.seq,
                std::mem::take(&mut ack.spans),
                ack.n_bytes,
                std::mem::take(&mut ack.delta),
            );
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
    for ack in pending.drain(..) {
        let _ = ack.reply.send(Ok(ack.seq));
    }
    if head_full {
        shared.flush_wanted.notify_one();
    }
}
