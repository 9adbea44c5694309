//! Look-ups by id across memory and blocks: every span of a trace, every span carrying an
//! event id. Blocks are read concurrently through their bloom filters; a block that cannot be
//! read makes a partial answer (`Lookup::unreadable_blocks`), not an error.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use muninn_model::{Span, TraceId};
use object_store::path::Path;

use super::Store;
use super::head::Head;
use crate::block::{BlockHandle, SpanFields, SpanSelection};
use crate::error::StoreError;

/// The result of a look-up across head and blocks: what could be read, and which blocks could
/// not (partial failure is data, not an error).
#[derive(Debug, Default)]
pub struct Lookup {
    pub spans: Vec<Span>,
    pub unreadable_blocks: Vec<String>,
}

/// Reads every block with `read`, `concurrency` at a time, each read a task of its own so
/// that decoding runs on every core. Returns what the readable blocks gave and the unreadable
/// ones, named with their error and sorted: a block that cannot be read makes a partial
/// answer, not a failure.
pub(crate) async fn read_blocks<T, Fut>(
    blocks: Vec<Arc<BlockHandle>>,
    concurrency: usize,
    read: impl Fn(Arc<BlockHandle>) -> Fut,
) -> (Vec<T>, Vec<String>)
where
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
{
    let results: Vec<(Path, Result<T, StoreError>)> = futures::stream::iter(blocks)
        .map(|handle| {
            let dir = handle.dir.clone();
            let reading = tokio::spawn(read(handle));
            async move { (dir, joined(reading.await)) }
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
                tracing::warn!(block = %dir, %error, "block could not be read");
                unreadable_blocks.push(format!("{dir}: {error}"));
            }
        }
    }
    unreadable_blocks.sort();
    (found, unreadable_blocks)
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
        self.lookup(SpanSelection::Event(Arc::from(event_id)), |span| {
            span.event.event_id.as_deref() == Some(event_id)
        })
        .await
    }

    /// Every span of this trace, from head and blocks, deduplicated by span id.
    pub async fn spans_by_trace_id(&self, trace_id: TraceId) -> Lookup {
        self.lookup(SpanSelection::Trace(trace_id), |span| {
            span.trace_id == trace_id
        })
        .await
    }

    async fn lookup(&self, selection: SpanSelection, matches: impl Fn(&Span) -> bool) -> Lookup {
        let shared = &self.shared;
        let mut spans: Vec<Span> = Vec::new();
        // Only the batches whose keys may hold the id are searched.
        let mut search = |head: &Head| {
            for batch in head
                .batches
                .iter()
                .filter(|batch| batch.may_hold(&selection))
            {
                spans.extend(batch.iter().filter(|span| matches(span)).cloned());
            }
        };
        if let Ok(head) = shared.head.read() {
            search(&head);
        }
        let flushing: Vec<Arc<Head>> = shared
            .flushing
            .read()
            .map(|list| list.clone())
            .unwrap_or_default();
        for frozen in &flushing {
            search(frozen);
        }
        let blocks: Vec<Arc<BlockHandle>> = shared
            .blocks
            .read()
            .map(|list| list.clone())
            .unwrap_or_default();
        let object_store = &shared.object_store;
        let (found, unreadable_blocks) = read_blocks(blocks, 8, |handle| {
            let object_store = object_store.clone();
            let selection = selection.clone();
            async move {
                handle
                    .spans(&object_store, selection, SpanFields::All)
                    .await
            }
        })
        .await;
        spans.extend(found.into_iter().flatten());
        Lookup::of(spans, unreadable_blocks)
    }
}
