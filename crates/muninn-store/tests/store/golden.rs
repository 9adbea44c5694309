//! The golden data directory of format v1, committed at `tests/golden/v1/`: two blocks of one
//! flush in two hourly partitions (2026-11-20 10:00 and 11:00 UTC), roll-up cells from spans
//! and counts, and a WAL segment with data that was never flushed. Every later Muninn must
//! open it and find exactly this data.
//!
//! To regenerate it (only when the format version changes, together with a new golden
//! directory for the new version), run
//! `UPDATE_GOLDEN=1 cargo test -p muninn-store --test store golden`.
//! Without `UPDATE_GOLDEN` the generator test still runs: it builds the data set in a
//! temporary directory and checks it, leaving the committed one alone.

use std::path::{Path, PathBuf};

use muninn_model::{Action, EventCount, NANOS_PER_MINUTE, Span};
use muninn_store::{BLOCK_FORMAT_VERSION, Store};

use crate::support::{
    RollupTotals, as_looked_up, at, config, copy_dir, count, event, event_id, event_trace,
    files_under, rich_span, rollup_totals, trace, trace_id, wal_segments,
};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

fn minute_seconds(rfc3339: &str) -> i64 {
    at(rfc3339) / 1_000_000_000
}

/// Flushed: traces 1–4 at 10:51–10:54 and a rich span in trace 1 at 10:45 (hour 10), traces
/// 5–8 at 11:01–11:04 (hour 11); counts at 10:30.
fn flushed() -> (Vec<Span>, Vec<EventCount>) {
    let mut spans = Vec::new();
    for trace_number in 1..=4 {
        spans.extend(event_trace(
            trace_number,
            at("2026-11-20T10:50:00Z") + trace_number as i64 * NANOS_PER_MINUTE,
        ));
    }
    spans.push(rich_span(1, at("2026-11-20T10:45:00.123456789Z")));
    for trace_number in 5..=8 {
        spans.extend(event_trace(
            trace_number,
            at("2026-11-20T11:00:00Z") + (trace_number as i64 - 4) * NANOS_PER_MINUTE,
        ));
    }
    let counts = vec![
        count(
            "checkout",
            Action::Produced,
            minute_seconds("2026-11-20T10:30:00Z"),
            40,
        ),
        count(
            "billing",
            Action::Consumed,
            minute_seconds("2026-11-20T10:30:00Z"),
            38,
        ),
    ];
    (spans, counts)
}

/// Only in the WAL: traces 9–12 at 11:11–11:14, a rich span in trace 9 at 11:20, the producer
/// span of trace 1 delivered a second time, and a count at 11:10.
fn unflushed() -> (Vec<Span>, Vec<EventCount>) {
    let mut spans = Vec::new();
    for trace_number in 9..=12 {
        spans.extend(event_trace(
            trace_number,
            at("2026-11-20T11:10:00Z") + (trace_number as i64 - 8) * NANOS_PER_MINUTE,
        ));
    }
    spans.push(rich_span(9, at("2026-11-20T11:20:00Z")));
    spans.push(flushed().0[0].clone());
    let counts = vec![count(
        "checkout",
        Action::Produced,
        minute_seconds("2026-11-20T11:10:00Z"),
        25,
    )];
    (spans, counts)
}

/// Writes the golden data set into an empty `data_dir`.
async fn generate(data_dir: &Path) {
    let store = Store::open(config(data_dir)).await.unwrap();
    let (spans, counts) = flushed();
    store.append(spans, counts).await.unwrap();
    store.flush().await.unwrap();
    let (spans, counts) = unflushed();
    store.append(spans, counts).await.unwrap();
    drop(store);
}

/// Opens a copy of a golden data set and checks that it holds exactly the data above.
async fn check(golden: &Path) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(golden, dir.path());
    assert_eq!(
        wal_segments(dir.path()).len(),
        1,
        "the golden directory has one WAL segment"
    );
    let store = Store::open(config(dir.path())).await.unwrap();

    let blocks = store.blocks();
    let partitions: Vec<i64> = blocks
        .iter()
        .map(|meta| meta.partition_unix_seconds)
        .collect();
    assert_eq!(
        partitions,
        vec![
            minute_seconds("2026-11-20T10:00:00Z"),
            minute_seconds("2026-11-20T11:00:00Z")
        ]
    );
    assert_eq!(
        blocks.iter().map(|meta| meta.n_spans).collect::<Vec<_>>(),
        vec![13, 12]
    );
    assert!(
        blocks
            .iter()
            .all(|meta| meta.format_version == BLOCK_FORMAT_VERSION && meta.flush_n_blocks == 2)
    );
    assert_eq!(blocks[0].flush_id, blocks[1].flush_id);
    assert_eq!(store.stats().head_spans, 14, "the WAL segment is replayed");
    assert_eq!(
        rollup_totals(&store),
        RollupTotals {
            spans: 27,
            seen: 103
        }
    );
    assert_golden_data(&store).await;

    // The copy keeps working: flushing the replayed data and reopening changes nothing visible.
    // Two blocks: the redelivered span of trace 1 belongs to hour 10, the rest to hour 11.
    assert_eq!(store.flush().await.unwrap().n_blocks, 2);
    drop(store);
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(
        (store.stats().block_spans, store.stats().head_spans),
        (39, 0)
    );
    assert_eq!(
        rollup_totals(&store),
        RollupTotals {
            spans: 27,
            seen: 103
        }
    );
    assert_golden_data(&store).await;
}

async fn assert_golden_data(store: &Store) {
    let all: Vec<Span> = [flushed().0, unflushed().0].concat();
    for trace_number in 1..=12 {
        let expected = as_looked_up(
            all.iter()
                .filter(|span| span.trace_id == trace_id(trace_number))
                .cloned(),
        );
        let expected_len = if trace_number == 1 || trace_number == 9 {
            4
        } else {
            3
        };
        assert_eq!(expected.len(), expected_len);
        assert_eq!(
            trace(store, trace_id(trace_number)).await,
            expected,
            "trace {trace_number}"
        );
        let expected_event_len = if trace_number == 1 || trace_number == 9 {
            3
        } else {
            2
        };
        assert_eq!(
            event(store, &event_id(trace_number)).await.len(),
            expected_event_len,
            "event {trace_number}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_v1_data_directory_opens_with_all_its_data() {
    check(&golden_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_golden_v1() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path()).await;
    for file in files_under(dir.path()) {
        let bytes = std::fs::metadata(dir.path().join(&file)).unwrap().len();
        assert!(
            bytes < 16 * 1024,
            "{} is {bytes} bytes; golden files should stay small",
            file.display()
        );
    }
    check(dir.path()).await;
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value == "1") {
        let golden = golden_dir();
        if golden.exists() {
            std::fs::remove_dir_all(&golden).unwrap();
        }
        copy_dir(dir.path(), &golden);
        eprintln!("wrote {}:", golden.display());
        for file in files_under(&golden) {
            eprintln!("  {}", file.display());
        }
    }
}
