//! The flush filter (the tail sampler's hook): a flush leaves the spans of dropped traces out
//! of the blocks and keeps their roll-up counts; nothing is lost before the decision, and
//! after a crash before the flush the WAL brings every span back (fail-open).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use muninn_model::{Span, TraceId};
use muninn_store::Store;

use crate::support::{RollupTotals, at, config, event_trace, open, rollup_totals, trace, trace_id};

fn four_traces() -> Vec<Span> {
    (1..=4)
        .flat_map(|trace_number| {
            event_trace(
                trace_number,
                at("2026-11-20T10:15:00Z") + trace_number as i64,
            )
        })
        .collect()
}

fn dropping(dropped: &[u64]) -> muninn_store::FlushFilter {
    let dropped: HashSet<TraceId> = dropped.iter().map(|number| trace_id(*number)).collect();
    Arc::new(move |trace: &TraceId| !dropped.contains(trace))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_leaves_dropped_traces_out_of_blocks_and_keeps_their_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let observed = Arc::new(Mutex::new(0usize));
    let seen = observed.clone();
    store.set_append_observer(Arc::new(move |spans: &[Span]| {
        *seen.lock().unwrap() += spans.len();
    }));
    store.set_flush_filter(dropping(&[2, 3]));
    store.append(four_traces(), Vec::new()).await.unwrap();
    assert_eq!(
        *observed.lock().unwrap(),
        12,
        "the observer sees every span"
    );
    let totals_before = rollup_totals(&store);
    assert_eq!(totals_before, RollupTotals { spans: 8, seen: 0 });
    // Until the flush, dropped traces are still answered from memory.
    assert_eq!(trace(&store, trace_id(2)).await.len(), 3);

    let report = store.flush().await.unwrap();
    assert_eq!(report.n_spans, 6, "two of four traces written");
    assert!(trace(&store, trace_id(2)).await.is_empty());
    assert!(trace(&store, trace_id(3)).await.is_empty());
    assert_eq!(trace(&store, trace_id(1)).await.len(), 3);
    assert_eq!(trace(&store, trace_id(4)).await.len(), 3);
    assert_eq!(
        rollup_totals(&store),
        totals_before,
        "roll-ups count every event"
    );

    // After a restart the dropped traces stay gone: the WAL was let go after the flush.
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(store.stats().head_spans, 0);
    assert!(trace(&store, trace_id(2)).await.is_empty());
    assert_eq!(trace(&store, trace_id(1)).await.len(), 3);
    assert_eq!(rollup_totals(&store), totals_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_whose_spans_are_all_dropped_still_lets_the_wal_go_and_keeps_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    store.set_flush_filter(dropping(&[1, 2, 3, 4]));
    store.append(four_traces(), Vec::new()).await.unwrap();
    let report = store.flush().await.unwrap();
    assert_eq!(report.n_spans, 0);
    drop(store);
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.stats().head_spans, 0, "nothing replayed");
    assert!(trace(&store, trace_id(1)).await.is_empty());
    assert_eq!(rollup_totals(&store), RollupTotals { spans: 8, seen: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_flush_keeps_every_acknowledged_span() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    store.set_flush_filter(dropping(&[2]));
    store.append(four_traces(), Vec::new()).await.unwrap();
    // No flush: the process dies with the decisions in memory only.
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(store.stats().head_spans, 12, "the WAL is replayed in full");
    store.flush().await.unwrap();
    for trace_number in 1..=4 {
        assert_eq!(
            trace(&store, trace_id(trace_number)).await.len(),
            3,
            "trace {trace_number} is kept: the decision was lost, so the trace fails open"
        );
    }
}
