//! Restarts: whatever `append` acknowledged is there after the store is dropped and opened
//! again, whether it was still in the WAL or already in blocks, exactly once, with the same
//! roll-ups.

use std::path::PathBuf;

use muninn_model::{Action, NANOS_PER_MINUTE, Span};

use crate::support::{
    NANOS_PER_HOUR, RollupTotals, as_looked_up, at, count, event, event_id, event_trace,
    files_under, open, rich_span, rollup_cells, rollup_totals, trace, trace_id, wal_segments,
};

async fn assert_traces_found(
    store: &muninn_store::Store,
    appended: &[Span],
    trace_numbers: impl Iterator<Item = u64>,
) {
    for trace_number in trace_numbers {
        let expected = as_looked_up(
            appended
                .iter()
                .filter(|span| span.trace_id == trace_id(trace_number))
                .cloned(),
        );
        assert_eq!(
            trace(store, trace_id(trace_number)).await,
            expected,
            "trace {trace_number}"
        );
        assert_eq!(
            event(store, &event_id(trace_number)).await.len(),
            2,
            "event {trace_number}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_a_restart_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let start = at("2026-11-20T10:58:00Z");
    let store = open(dir.path()).await;
    let mut appended = Vec::new();
    for trace_number in 1..=6 {
        // Two minutes apart, so the data spans two hourly partitions and several roll-up minutes.
        let spans = event_trace(trace_number, start + trace_number as i64 * NANOS_PER_MINUTE);
        let minute = (start + trace_number as i64 * NANOS_PER_MINUTE) / 1_000_000_000 / 60 * 60;
        store
            .append(
                spans.clone(),
                vec![count(
                    "checkout",
                    Action::Produced,
                    minute,
                    10 * trace_number,
                )],
            )
            .await
            .unwrap();
        appended.extend(spans);
    }
    let cells_before = rollup_cells(&store);
    assert_eq!(
        rollup_totals(&store),
        RollupTotals {
            spans: 12,
            seen: 210
        }
    );
    drop(store);

    let store = open(dir.path()).await;
    assert_eq!(store.stats().head_spans, 18);
    assert!(store.blocks().is_empty());
    assert_traces_found(&store, &appended, 1..=6).await;
    assert_eq!(rollup_cells(&store), cells_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_and_unflushed_spans_survive_a_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = at("2026-11-20T10:30:00Z");
    let minute = start / 1_000_000_000;
    let store = open(dir.path()).await;
    let mut appended = Vec::new();
    for trace_number in 1..=4 {
        appended.extend(event_trace(trace_number, start + trace_number as i64));
    }
    store
        .append(
            appended.clone(),
            vec![count("checkout", Action::Produced, minute, 100)],
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
    let later: Vec<Span> = (5..=8)
        .flat_map(|trace_number| event_trace(trace_number, start + NANOS_PER_HOUR))
        .collect();
    store
        .append(
            later.clone(),
            vec![count("billing", Action::Consumed, minute, 7)],
        )
        .await
        .unwrap();
    appended.extend(later);
    let cells_before = rollup_cells(&store);
    assert_eq!(
        rollup_totals(&store),
        RollupTotals {
            spans: 16,
            seen: 107
        }
    );
    drop(store);

    let store = open(dir.path()).await;
    let stats = store.stats();
    assert_eq!(
        (stats.block_spans, stats.head_spans),
        (12, 12),
        "blocks hold the flushed spans, the WAL the rest"
    );
    assert_traces_found(&store, &appended, 1..=8).await;
    assert_eq!(rollup_cells(&store), cells_before);

    // Flushing what was replayed and restarting again neither loses nor doubles anything.
    store.flush().await.unwrap();
    drop(store);
    let store = open(dir.path()).await;
    let stats = store.stats();
    assert_eq!((stats.block_spans, stats.head_spans), (24, 0));
    assert_traces_found(&store, &appended, 1..=8).await;
    assert_eq!(rollup_cells(&store), cells_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_restarts_replay_the_wal_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = at("2026-11-20T10:30:00Z");
    let minute = start / 1_000_000_000;
    let mut appended = Vec::new();
    for round in 1..=3 {
        let store = open(dir.path()).await;
        let spans = event_trace(round, start + round as i64);
        store
            .append(
                spans.clone(),
                vec![count("checkout", Action::Produced, minute, 5)],
            )
            .await
            .unwrap();
        appended.extend(spans);
        drop(store);
    }
    let store = open(dir.path()).await;
    assert_eq!(store.stats().head_spans, 9);
    assert_eq!(rollup_totals(&store), RollupTotals { spans: 6, seen: 15 });
    assert_traces_found(&store, &appended, 1..=3).await;

    store.flush().await.unwrap();
    assert_eq!(
        wal_segments(dir.path()).len(),
        1,
        "segments the blocks cover are deleted"
    );
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(
        (store.stats().block_spans, store.stats().head_spans),
        (9, 0)
    );
    assert_eq!(rollup_totals(&store), RollupTotals { spans: 6, seen: 15 });
    assert_traces_found(&store, &appended, 1..=3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_alone_survive_a_restart_and_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let minute = at("2026-11-20T10:30:00Z") / 1_000_000_000;
    let store = open(dir.path()).await;
    store
        .append(
            Vec::new(),
            vec![
                count("checkout", Action::Produced, minute, 40),
                count("billing", Action::Consumed, minute, 39),
            ],
        )
        .await
        .unwrap();
    let cells_before = rollup_cells(&store);
    assert_eq!(cells_before.len(), 2);
    drop(store);

    let store = open(dir.path()).await;
    assert_eq!(rollup_cells(&store), cells_before);
    let report = store.flush().await.unwrap();
    assert_eq!(
        (report.n_blocks, report.n_spans),
        (1, 0),
        "a block of roll-ups only"
    );
    // Its cells are JSON, zstd-compressed, as docs/storage.md tells readers.
    let rollup_files: Vec<PathBuf> = files_under(dir.path())
        .into_iter()
        .filter(|path| path.to_string_lossy().contains("rollup"))
        .collect();
    assert_eq!(rollup_files.len(), 1, "{rollup_files:?}");
    assert!(rollup_files[0].ends_with("rollup.json.zst"));
    let file = std::fs::read(dir.path().join(&rollup_files[0])).unwrap();
    let json = zstd::stream::decode_all(&file[..]).unwrap();
    let cells: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
    assert_eq!(cells.len(), 2);
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(rollup_cells(&store), cells_before);
    assert_eq!(rollup_totals(&store), RollupTotals { spans: 0, seen: 79 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rich_span_round_trips_through_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let span = rich_span(1, at("2026-11-20T10:30:00Z"));
    let store = open(dir.path()).await;
    store.append(vec![span.clone()], Vec::new()).await.unwrap();
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(trace(&store, trace_id(1)).await, vec![span.clone()]);
    assert_eq!(event(&store, &event_id(1)).await, vec![span]);
}
