//! Look-ups of many ids at once: the spans linking to a trace and the spans of a set of event
//! ids, found in memory, in new blocks (through the `link_trace_ids` bloom filters) and in the
//! committed golden v1 blocks written before that column existed (through the `links` text).

use std::collections::HashSet;

use muninn_store::{SpanFields, Store};

use crate::support::{as_looked_up, at, config, copy_dir, event_id, rich_span, trace_id};

fn golden_dir() -> std::path::PathBuf {
    crate::golden::golden_dir("v1-without-link-trace-ids")
}

async fn linking_to(store: &Store, trace_number: u64) -> Vec<String> {
    let lookup = store
        .spans_linking_to(&HashSet::from([trace_id(trace_number)]), SpanFields::All)
        .await;
    assert!(lookup.unreadable_blocks.is_empty());
    lookup
        .spans
        .iter()
        .map(|span| format!("{}/{}", span.trace_id, span.span_id))
        .collect()
}

fn name_of(trace_number: u64) -> String {
    let span = rich_span(trace_number, 0);
    format!("{}/{}", span.trace_id, span.span_id)
}

/// Waits until the store's blocks hold their `link_trace_ids` filters in memory.
async fn link_filters_loaded(store: &Store) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let loaded = store.stats().block_index.link_filters;
        if loaded > 0 {
            return loaded;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no link filters loaded 10 s after"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A block's `link_trace_ids` filters are loaded when the block is written and when a store
/// opens it, not by the first link look-up, which would load every block's at once (the first
/// journey at 100M spans took 85–146 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_filters_are_loaded_before_the_first_link_look_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store
        .append(vec![rich_span(3, at("2026-11-20T10:00:00Z"))], Vec::new())
        .await
        .unwrap();
    store.flush().await.unwrap();
    let after_flush = link_filters_loaded(&store).await;
    drop(store);

    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.stats().head_spans, 0);
    assert_eq!(link_filters_loaded(&store).await, after_flush);
    assert_eq!(linking_to(&store, 1003).await, vec![name_of(3)]);
    assert!(linking_to(&store, 1004).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_found_in_blocks_without_the_link_column_in_memory_and_in_new_blocks() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&golden_dir(), dir.path());
    let store = Store::open(config(dir.path())).await.unwrap();
    // The rich span of trace 1 (in a golden block) links to traces 1001 and 2001; the one of
    // trace 9 (replayed from the golden WAL into memory) to 1009 and 2009.
    assert_eq!(linking_to(&store, 1001).await, vec![name_of(1)]);
    assert_eq!(linking_to(&store, 2001).await, vec![name_of(1)]);
    assert_eq!(linking_to(&store, 1009).await, vec![name_of(9)]);
    assert!(linking_to(&store, 1005).await.is_empty());
    assert!(linking_to(&store, 1).await.is_empty());

    store.flush().await.unwrap();
    drop(store);
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.stats().head_spans, 0);
    assert_eq!(
        linking_to(&store, 1009).await,
        vec![name_of(9)],
        "new block"
    );
    assert_eq!(
        linking_to(&store, 1001).await,
        vec![name_of(1)],
        "old block"
    );
    assert!(linking_to(&store, 1002).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_several_event_ids_come_back_together_and_once() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&golden_dir(), dir.path());
    let store = Store::open(config(dir.path())).await.unwrap();
    let wanted: HashSet<String> = [1, 5, 9].into_iter().map(event_id).collect();
    let mut expected = Vec::new();
    for event in &wanted {
        expected.extend(store.spans_by_event_id(event).await.spans);
    }
    let found = store.spans_by_event_ids(&wanted, SpanFields::All).await;
    assert!(found.unreadable_blocks.is_empty());
    assert_eq!(found.spans, as_looked_up(expected.clone()));
    // Blocks (hour 10 and 11) and memory (trace 9) all contribute.
    assert_eq!(found.spans.len(), 3 + 2 + 3);
    let none = store
        .spans_by_event_ids(&HashSet::new(), SpanFields::All)
        .await;
    assert!(none.spans.is_empty());
}
