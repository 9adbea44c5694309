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
