//! Retention: hourly partitions that end before `now - retention` are dropped from disk, from
//! look-ups and from the roll-ups; younger data stays, also across a restart.

use std::path::Path;
use std::time::Duration;

use muninn_model::{Action, NANOS_PER_MINUTE, NANOS_PER_SECOND, Span, now_unix_nanos};
use muninn_store::{Store, StoreConfig};

use crate::support::{
    NANOS_PER_HOUR, RollupTotals, count, event, event_id, event_trace, rollup_cells, rollup_totals,
    trace, trace_id,
};

const DAY: Duration = Duration::from_secs(86_400);

fn one_day_retention(data_dir: &Path) -> StoreConfig {
    StoreConfig {
        retention: Some(DAY),
        ..StoreConfig::new(data_dir)
    }
}

/// `blocks/v1/dt=YYYY-MM-DD/hour=HH` of a time.
fn partition_dir(unix_nanos: i64) -> String {
    let time = chrono::DateTime::from_timestamp_nanos(unix_nanos);
    format!(
        "blocks/v1/dt={}/hour={}",
        time.format("%Y-%m-%d"),
        time.format("%H")
    )
}

fn minute_of(unix_nanos: i64) -> i64 {
    unix_nanos / NANOS_PER_MINUTE * 60
}

struct Appended {
    now: i64,
    old: i64,
    recent: i64,
    old_spans: Vec<Span>,
    recent_spans: Vec<Span>,
}

/// Traces 1–3 from 30 hours ago and traces 4–6 from 10 minutes ago, with counts at both
/// times, appended in one batch and flushed together.
async fn append_old_and_recent(store: &Store) -> Appended {
    let now = now_unix_nanos();
    let old = now - 30 * NANOS_PER_HOUR;
    let recent = now - 10 * NANOS_PER_MINUTE;
    let old_spans: Vec<Span> = (1..=3)
        .flat_map(|trace_number| event_trace(trace_number, old + trace_number as i64))
        .collect();
    let recent_spans: Vec<Span> = (4..=6)
        .flat_map(|trace_number| event_trace(trace_number, recent + trace_number as i64))
        .collect();
    let counts = vec![
        count("checkout", Action::Produced, minute_of(old), 50),
        count("checkout", Action::Produced, minute_of(recent), 9),
    ];
    store
        .append([old_spans.clone(), recent_spans.clone()].concat(), counts)
        .await
        .unwrap();
    Appended {
        now,
        old,
        recent,
        old_spans,
        recent_spans,
    }
}

async fn assert_only_recent_data(store: &Store, appended: &Appended) {
    for trace_number in 1..=3 {
        assert_eq!(
            trace(store, trace_id(trace_number)).await,
            Vec::new(),
            "old trace {trace_number}"
        );
        assert_eq!(
            event(store, &event_id(trace_number)).await,
            Vec::new(),
            "old event {trace_number}"
        );
    }
    for trace_number in 4..=6 {
        let expected: Vec<Span> = appended
            .recent_spans
            .iter()
            .filter(|span| span.trace_id == trace_id(trace_number))
            .cloned()
            .collect();
        assert_eq!(
            trace(store, trace_id(trace_number)).await,
            expected,
            "recent trace {trace_number}"
        );
    }
    let cutoff = appended.now - 24 * NANOS_PER_HOUR;
    let minutes: Vec<i64> = rollup_cells(store)
        .keys()
        .map(|(minute, _)| *minute)
        .collect();
    assert!(
        minutes
            .iter()
            .all(|minute| minute * NANOS_PER_SECOND > cutoff),
        "old roll-up minutes are gone: {minutes:?}"
    );
    assert_eq!(rollup_totals(store), RollupTotals { spans: 6, seen: 9 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_partitions_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(one_day_retention(dir.path())).await.unwrap();
    let appended = append_old_and_recent(&store).await;
    assert_eq!(store.flush().await.unwrap().n_blocks, 2);
    assert_eq!(
        rollup_totals(&store),
        RollupTotals {
            spans: 12,
            seen: 59
        }
    );
    assert_eq!(
        trace(&store, trace_id(1)).await,
        appended.old_spans[..3].to_vec()
    );
    let old_dir = dir.path().join(partition_dir(appended.old));
    let recent_dir = dir.path().join(partition_dir(appended.recent));
    assert!(old_dir.is_dir() && recent_dir.is_dir());

    let report = store.enforce_retention(appended.now).await.unwrap();
    assert_eq!(report.dropped_partitions, vec![partition_dir(appended.old)]);
    assert_eq!(report.dropped_blocks, 1);
    assert!(
        !old_dir.exists(),
        "{} is removed from disk",
        old_dir.display()
    );
    assert!(recent_dir.is_dir());
    assert_eq!(store.blocks().len(), 1);
    assert_eq!(store.stats().block_spans, 9);
    assert_only_recent_data(&store, &appended).await;

    // A second sweep finds nothing more to drop.
    let report = store.enforce_retention(appended.now).await.unwrap();
    assert_eq!(
        (report.dropped_partitions.len(), report.dropped_blocks),
        (0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_blocks_of_a_flush_partly_dropped_by_retention_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(one_day_retention(dir.path())).await.unwrap();
    let appended = append_old_and_recent(&store).await;
    store.flush().await.unwrap();
    store.enforce_retention(appended.now).await.unwrap();
    drop(store);

    let store = Store::open(one_day_retention(dir.path())).await.unwrap();
    assert_eq!(
        store.stats().block_spans,
        9,
        "the recent block is still committed"
    );
    assert_only_recent_data(&store, &appended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_store_applies_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig {
        retention: None,
        ..StoreConfig::new(dir.path())
    })
    .await
    .unwrap();
    let appended = append_old_and_recent(&store).await;
    store.flush().await.unwrap();
    drop(store);

    let store = Store::open(one_day_retention(dir.path())).await.unwrap();
    assert!(!dir.path().join(partition_dir(appended.old)).exists());
    assert_eq!(store.stats().block_spans, 9);
    assert_only_recent_data(&store, &appended).await;
}

/// Each edge's counter: (service, action) → events counted since the store opened.
fn edge_counters(store: &Store) -> Vec<(String, Action, u64)> {
    let mut counters = Vec::new();
    store.with_rollups(|rollups| {
        rollups.edge_counters(|edge, counted| {
            counters.push((edge.service.to_string(), edge.action, counted))
        })
    });
    counters.sort();
    counters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_counters_keep_what_retention_drops_and_restart_from_zero_when_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(one_day_retention(dir.path())).await.unwrap();
    let appended = append_old_and_recent(&store).await;
    store.flush().await.unwrap();
    // checkout: max(3 spans, 50 counted) 30 hours ago + max(3 spans, 9 counted) recently.
    let counted = vec![
        ("billing".to_owned(), Action::Consumed, 6),
        ("checkout".to_owned(), Action::Produced, 59),
    ];
    assert_eq!(edge_counters(&store), counted);

    store.enforce_retention(appended.now).await.unwrap();
    assert_eq!(rollup_totals(&store), RollupTotals { spans: 6, seen: 9 });
    assert_eq!(
        edge_counters(&store),
        counted,
        "retention lowers the totals, never the counters"
    );
    drop(store);

    let store = Store::open(one_day_retention(dir.path())).await.unwrap();
    assert_eq!(rollup_totals(&store), RollupTotals { spans: 6, seen: 9 });
    assert_eq!(
        edge_counters(&store),
        vec![
            ("billing".to_owned(), Action::Consumed, 0),
            ("checkout".to_owned(), Action::Produced, 0),
        ],
        "a new process counts from zero what arrives, like any Prometheus counter"
    );
}
