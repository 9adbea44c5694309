//! Look-ups by id across memory and blocks: every span of a trace, every span carrying an
//! event id, and `Store::lookup`, the one mechanism behind these and the look-ups of many ids
//! (`lookup_many.rs`, `spans_by_trace_ids`). Memory is searched in the batches whose keys may
//! hold the ids; blocks are read concurrently through their bloom filters; a block that cannot
//! be read makes a partial answer (`Lookup::unreadable_blocks`), not an error.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use muninn_model::{Span, TraceId};
use object_store::path::Path;

use super::Store;
use super::head::SelectionKeys;
use crate::block::{BlockHandle, SpanFields, SpanSelection};
use crate::error::{StoreError, StoreErrorKind};
use crate::fs::LocalReads;
use crate::time_limit::{TimeLimit, spawn_within_limit};

/// The result of a look-up across head and blocks: what could be read, and which blocks could
/// not (partial failure is data, not an error).
#[derive(Debug, Default)]
pub struct Lookup {
    pub spans: Vec<Span>,
    pub unreadable_blocks: Vec<String>,
}

/// Reads every block with `read` (given the block and what goes with it), `concurrency` at
/// a time, each read a task of its own so that decoding runs on every core. Returns what the
/// readable blocks gave and the unreadable ones, named with their error and sorted: a block
/// that cannot be read makes a partial answer, not a failure. So does a block not read within
/// the query's time limit (`time_limit.rs`).
pub(crate) async fn read_blocks<I, T, Fut>(
    blocks: Vec<(Arc<BlockHandle>, I)>,
    concurrency: usize,
    read: impl Fn(Arc<BlockHandle>, I) -> Fut,
) -> (Vec<T>, Vec<String>)
where
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
{
    let limit = TimeLimit::current();
    let limit = limit.as_ref();
    let results: Vec<(Path, Result<T, StoreError>)> = futures::stream::iter(blocks)
        .map(|(handle, with)| {
            let dir = handle.dir.clone();
            // Started only when its turn comes, and only before the query's time limit.
            let reading = spawn_within_limit(limit, || read(handle, with));
            async move { (dir, reading.await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut found = Vec::with_capacity(results.len());
    let mut unreadable_blocks = Vec::new();
    for (dir, result) in results {
        match result {
            Ok(value) => found.push(value),
            Err(error) => {
                if error.kind != StoreErrorKind::TimedOut {
                    tracing::warn!(block = %dir, %error, "block could not be read");
                }
                unreadable_blocks.push(format!("{dir}: {error}"));
            }
        }
    }
    unreadable_blocks.sort();
    (found, unreadable_blocks)
}

/// Blocks whose row groups one blocking call decides (`blocks_to_read`): enough that a
/// call's hand-off is paid once for many probes, few enough that probes of files not in the
/// page cache (a read from disk each) still run `DECIDING_CONCURRENCY` at a time.
const BLOCKS_A_CALL: usize = 32;
const DECIDING_CONCURRENCY: usize = 8;

/// The blocks a look-up of `selection` reads, each with the row groups that may hold its ids
/// when they are known already. They are decided for the opened blocks in a few blocking
/// calls, bloom filters in memory checked and those in the files probed (32 bytes a block and
/// trace id, through `local`), so that a block that holds none of the ids costs neither a task
/// nor an object store call of its own: with a hundred blocks, probing each in a read of its
/// own doubled a trace look-up's time. The blocks this cannot decide are read as before.
async fn blocks_to_read(
    blocks: Vec<Arc<BlockHandle>>,
    selection: &SpanSelection,
    local: Option<Arc<dyn LocalReads>>,
) -> Vec<(Arc<BlockHandle>, Option<Vec<usize>>)> {
    if matches!(selection, SpanSelection::Matching(_)) || blocks.is_empty() {
        return blocks.into_iter().map(|handle| (handle, None)).collect();
    }
    // Owned chunks and a named function, so that the future stays `Send` for any lifetime
    // (a closure over borrowed chunks is not, in an axum handler).
    let chunks: Vec<Vec<Arc<BlockHandle>>> = blocks
        .chunks(BLOCKS_A_CALL)
        .map(<[Arc<BlockHandle>]>::to_vec)
        .collect();
    let decided: Vec<Vec<Option<Vec<usize>>>> = futures::stream::iter(chunks)
        .map(|handles| decide(handles, selection.clone(), local.clone()))
        .buffered(DECIDING_CONCURRENCY)
        .collect()
        .await;
    blocks
        .into_iter()
        .zip(decided.into_iter().flatten())
        .filter(|(_, row_groups)| !row_groups.as_ref().is_some_and(Vec::is_empty))
        .collect()
}

/// The row groups of each of `handles` that `selection` may need: decided here where the
/// blocks' filters are in memory (`BlockHandle::row_groups_in_memory`), and on a blocking
/// thread for the blocks whose filters are probed in their files
/// (`BlockHandle::row_groups_now`); should that task end without an answer, `None` for each
/// of those: the blocks are then read their own way.
async fn decide(
    handles: Vec<Arc<BlockHandle>>,
    selection: SpanSelection,
    local: Option<Arc<dyn LocalReads>>,
) -> Vec<Option<Vec<usize>>> {
    let mut decided = Vec::with_capacity(handles.len());
    let mut to_probe = Vec::new();
    for (idx, handle) in handles.iter().enumerate() {
        match handle.row_groups_in_memory(&selection) {
            Some(answer) => decided.push(answer),
            None => {
                decided.push(None);
                to_probe.push(idx);
            }
        }
    }
    if to_probe.is_empty() {
        return decided;
    }
    let probing: Vec<Arc<BlockHandle>> = to_probe.iter().map(|&idx| handles[idx].clone()).collect();
    let n_probing = probing.len();
    let probed = tokio::task::spawn_blocking(move || {
        probing
            .iter()
            .map(|handle| handle.row_groups_now(&selection, local.as_deref()))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_else(|_| vec![None; n_probing]);
    for (idx, answer) in to_probe.into_iter().zip(probed) {
        decided[idx] = answer;
    }
    decided
}

/// A block read's result, or the reason its task ended without one.
pub(crate) fn joined<T>(
    result: Result<Result<T, StoreError>, tokio::task::JoinError>,
) -> Result<T, StoreError> {
    result.unwrap_or_else(|error| Err(StoreError::corrupt(format!("the read failed: {error}"))))
}

impl Lookup {
    /// A look-up's answer from the spans found: each (trace id, span id) once, ordered by
    /// start time.
    pub(crate) fn of(mut spans: Vec<Span>, unreadable_blocks: Vec<String>) -> Lookup {
        let mut seen = HashSet::new();
        spans.retain(|span| seen.insert((span.trace_id, span.span_id)));
        spans.sort_by(|left, right| {
            (left.start_unix_nanos, left.span_id).cmp(&(right.start_unix_nanos, right.span_id))
        });
        Lookup {
            spans,
            unreadable_blocks,
        }
    }
}

impl Store {
    /// Every span carrying this event id, from head and blocks, deduplicated by span id.
    pub async fn spans_by_event_id(&self, event_id: &str) -> Lookup {
        self.lookup(
            SpanSelection::Event(Arc::from(event_id)),
            SpanFields::All,
            |span| span.event.event_id.as_deref() == Some(event_id),
        )
        .await
    }

    /// Every span of this trace, from head and blocks, deduplicated by span id.
    pub async fn spans_by_trace_id(&self, trace_id: TraceId) -> Lookup {
        self.lookup(SpanSelection::Trace(trace_id), SpanFields::All, |span| {
            span.trace_id == trace_id
        })
        .await
    }

    /// The one look-up by ids: the batches in memory whose keys may hold them, searched with
    /// `matches`, and every block read through its filters for `selection` (`fields` of each
    /// span). Block predicates are exact for ids; for links read from JSON text they match the
    /// text, so what blocks give is checked with `matches` again.
    pub(crate) async fn lookup(
        &self,
        selection: SpanSelection,
        fields: SpanFields,
        matches: impl Fn(&Span) -> bool,
    ) -> Lookup {
        let snapshot = self.snapshot();
        let keys = SelectionKeys::of(&selection);
        let mut spans: Vec<Span> = Vec::new();
        let mut unreadable_memory = Vec::new();
        for batch in snapshot
            .batches
            .iter()
            .filter(|batch| batch.may_hold(&keys))
        {
            match batch.select(&selection, &matches) {
                Ok(found) => spans.extend(found),
                Err(error) => unreadable_memory.push(format!("memory: {error}")),
            }
        }
        let object_store = &snapshot.object_store;
        let blocks = blocks_to_read(snapshot.blocks, &selection, snapshot.local_blocks).await;
        let (found, unreadable_blocks) = read_blocks(blocks, 8, |handle, row_groups| {
            let object_store = object_store.clone();
            let selection = selection.clone();
            async move {
                handle
                    .spans(&object_store, selection, fields, row_groups)
                    .await
            }
        })
        .await;
        spans.extend(found.into_iter().flatten().filter(|span| matches(span)));
        let mut unreadable_blocks = unreadable_blocks;
        unreadable_blocks.extend(unreadable_memory);
        unreadable_blocks.extend(self.missing_nodes());
        Lookup::of(spans, unreadable_blocks)
    }
}
