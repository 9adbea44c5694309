//! A crash in the middle of a flush: some blocks of the flush are committed (have a
//! `meta.json`), others are not, and the WAL segments the flush would have deleted are still
//! there. Opening must delete the partial flush and replay its data from the WAL, so that
//! nothing is lost and nothing is counted twice.

use std::path::{Path, PathBuf};

use muninn_model::{Action, NANOS_PER_MINUTE, Span};
use muninn_store::BlockMeta;

use crate::support::{
    RollupTotals, as_looked_up, at, block_dir, count, event, event_id, event_trace, files_under,
    open, rollup_cells, rollup_totals, trace, trace_id, wal_segments,
};

/// Appends traces 1–4 at 10:58–11:01 (two hourly partitions) and counts, flushes, and leaves
/// the data directory as a crash would have: the WAL as it was before the flush, and block
/// `uncommitted_block_idx` of the flush without its `meta.json`. Returns what was appended,
/// the roll-up cells before the flush, and the directories of the flush's blocks.
async fn crash_during_a_two_block_flush(
    data_dir: &Path,
    uncommitted_block_idx: usize,
) -> (
    Vec<Span>,
    std::collections::BTreeMap<(i64, muninn_model::RollupKey), muninn_store::RollupCell>,
    Vec<PathBuf>,
) {
    let start = at("2026-11-20T10:58:00Z");
    let store = open(data_dir).await;
    let mut appended = Vec::new();
    for trace_number in 1..=4 {
        let at_nanos = start + (trace_number as i64 - 1) * NANOS_PER_MINUTE;
        let spans = event_trace(trace_number, at_nanos);
        let minute = at_nanos / 1_000_000_000;
        store
            .append(
                spans.clone(),
                vec![count("checkout", Action::Produced, minute, 11)],
            )
            .await
            .unwrap();
        appended.extend(spans);
    }
    let cells_before = rollup_cells(&store);

    let saved_wal: Vec<(PathBuf, Vec<u8>)> = wal_segments(data_dir)
        .into_iter()
        .map(|path| (path.clone(), std::fs::read(&path).unwrap()))
        .collect();
    let blocks_before = store.blocks();
    let report = store.flush().await.unwrap();
    assert_eq!(report.n_blocks, 2, "one block per hourly partition");
    let blocks: Vec<BlockMeta> = store
        .blocks()
        .into_iter()
        .filter(|meta| !blocks_before.contains(meta))
        .collect();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].flush_id, blocks[1].flush_id);
    drop(store);

    let block_dirs: Vec<PathBuf> = blocks
        .iter()
        .map(|meta| block_dir(data_dir, &meta.block_id))
        .collect();
    std::fs::remove_file(block_dirs[uncommitted_block_idx].join("meta.json")).unwrap();
    for (path, bytes) in saved_wal {
        std::fs::write(path, bytes).unwrap();
    }
    (appended, cells_before, block_dirs)
}

async fn check_recovery(uncommitted_block_idx: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (appended, cells_before, block_dirs) =
        crash_during_a_two_block_flush(dir.path(), uncommitted_block_idx).await;

    let store = open(dir.path()).await;
    assert!(
        store.blocks().is_empty(),
        "neither block of the partial flush is kept"
    );
    for block_dir in &block_dirs {
        assert_eq!(
            files_under(block_dir),
            Vec::<PathBuf>::new(),
            "{} is deleted",
            block_dir.display()
        );
    }
    assert_eq!(
        store.stats().head_spans,
        12,
        "the WAL replays the whole flush"
    );
    for trace_number in 1..=4 {
        let expected = as_looked_up(
            appended
                .iter()
                .filter(|span| span.trace_id == trace_id(trace_number))
                .cloned(),
        );
        assert_eq!(trace(&store, trace_id(trace_number)).await, expected);
        assert_eq!(event(&store, &event_id(trace_number)).await.len(), 2);
    }
    assert_eq!(rollup_cells(&store), cells_before);
    assert_eq!(rollup_totals(&store), RollupTotals { spans: 8, seen: 44 });

    // The retried flush commits, and a restart after it still holds everything once.
    assert_eq!(store.flush().await.unwrap().n_blocks, 2);
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(
        (store.stats().block_spans, store.stats().head_spans),
        (12, 0)
    );
    for trace_number in 1..=4 {
        assert_eq!(trace(&store, trace_id(trace_number)).await.len(), 3);
    }
    assert_eq!(rollup_cells(&store), cells_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_whose_second_block_has_no_meta_is_replayed_from_the_wal() {
    check_recovery(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_whose_first_block_has_no_meta_is_replayed_from_the_wal() {
    check_recovery(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_earlier_flush_is_kept_when_a_later_one_is_partial() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let earlier = event_trace(100, at("2026-11-20T09:30:00Z"));
    store.append(earlier.clone(), Vec::new()).await.unwrap();
    store.flush().await.unwrap();
    drop(store);

    let (appended, _, _) = crash_during_a_two_block_flush(dir.path(), 1).await;
    let store = open(dir.path()).await;
    assert_eq!(store.blocks().len(), 1, "the earlier flush's block stays");
    assert_eq!(
        (store.stats().block_spans, store.stats().head_spans),
        (3, 12)
    );
    assert_eq!(trace(&store, trace_id(100)).await, earlier);
    for trace_number in 1..=4 {
        let expected = as_looked_up(
            appended
                .iter()
                .filter(|span| span.trace_id == trace_id(trace_number))
                .cloned(),
        );
        assert_eq!(trace(&store, trace_id(trace_number)).await, expected);
    }
}
