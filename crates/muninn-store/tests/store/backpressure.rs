//! Memory stays bounded: when too many spans wait to be written to blocks, appends wait for a
//! flush and are refused as overloaded (HTTP 503) if none comes; a flush lets them through.

use std::time::Duration;

use muninn_store::{Store, StoreConfig, StoreErrorKind};

use crate::support::{at, config, event_trace};

fn small_head(data_dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        flush_max_spans: 6,
        max_append_wait: Duration::from_millis(300),
        ..config(data_dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_for_a_flush_when_memory_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(small_head(dir.path())).await.unwrap();
    let start = at("2026-11-20T10:00:00Z");
    // 3 spans per trace; the limit is 3 × flush_max_spans = 18 unflushed spans.
    for trace_number in 0..6 {
        store
            .append(event_trace(trace_number, start), Vec::new())
            .await
            .unwrap();
    }
    let refused = store
        .append(event_trace(6, start), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(refused.kind, StoreErrorKind::Overloaded, "{refused}");
    assert!(refused.message.contains("retry"), "{refused}");
    assert_eq!(
        store.stats().head_spans,
        18,
        "the refused batch was not stored"
    );

    // A waiting append goes through as soon as a flush frees memory.
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.append(event_trace(7, start), Vec::new()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.flush().await.unwrap();
    waiting
        .await
        .unwrap()
        .expect("the append waited for the flush and then succeeded");
    assert_eq!(store.stats().block_spans, 18);
    assert_eq!(store.stats().head_spans, 3);
}

/// The memory one test trace's spans hold, as the store counts it: at least what the spans
/// own, and at most 16 bytes a span more for the keys look-ups find them by.
async fn trace_bytes(start: i64) -> u64 {
    let spans = event_trace(0, start);
    let owned: u64 = spans.iter().map(|span| span.memory_bytes() as u64).sum();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let n_spans = spans.len() as u64;
    store.append(spans, Vec::new()).await.unwrap();
    let counted = store.stats().unflushed_bytes;
    assert!(
        (owned..=owned + 16 * n_spans).contains(&counted),
        "{counted} bytes counted for spans owning {owned}"
    );
    counted
}

/// The bound is in bytes too: with room for many spans by number, appends wait once the spans
/// not yet in blocks hold `memory_limit_bytes`, the refusal says so, and a flush lets them
/// through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_when_the_unflushed_spans_hold_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let start = at("2026-11-20T10:00:00Z");
    let trace_bytes = trace_bytes(start).await;
    // Room for 4 traces, and the number bound far away.
    let config = StoreConfig {
        flush_max_spans: 1_000_000,
        memory_limit_bytes: 4 * trace_bytes,
        max_append_wait: Duration::from_millis(300),
        ..config(dir.path())
    };
    let store = Store::open(config).await.unwrap();
    for trace_number in 0..4 {
        store
            .append(event_trace(trace_number, start), Vec::new())
            .await
            .unwrap();
    }
    assert_eq!(store.stats().unflushed_bytes, 4 * trace_bytes);
    let refused = store
        .append(event_trace(4, start), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(refused.kind, StoreErrorKind::Overloaded, "{refused}");
    assert!(
        refused.message.contains("MiB") && refused.message.contains("retry"),
        "{refused}"
    );
    assert_eq!(
        store.stats().head_spans,
        12,
        "the refused batch was not stored"
    );
    store.flush().await.unwrap();
    assert_eq!(store.stats().unflushed_bytes, 0);
    store
        .append(event_trace(4, start), Vec::new())
        .await
        .expect("room again after the flush");
}

/// With maintenance running, the head is flushed once its spans hold a quarter of the memory
/// limit, long before `flush_max_spans`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_is_flushed_at_a_quarter_of_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let start = at("2026-11-20T10:00:00Z");
    let trace_bytes = trace_bytes(start).await;
    let config = StoreConfig {
        flush_max_spans: 1_000_000,
        memory_limit_bytes: 8 * trace_bytes,
        ..config(dir.path())
    };
    let store = Store::open(config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let maintenance = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .run_maintenance(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    for trace_number in 0..2 {
        store
            .append(event_trace(trace_number, start), Vec::new())
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.stats().block_spans < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "a head holding a quarter of the memory limit was not flushed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    maintenance.await.unwrap();
}
