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

/// A memory limit of five test traces: room for four (three quarters of it, with no blocks and
/// nothing reserved), and the number bound far away.
fn room_for_four_traces(data_dir: &std::path::Path, trace_bytes: u64) -> StoreConfig {
    StoreConfig {
        flush_max_spans: 1_000_000,
        memory_limit_bytes: 5 * trace_bytes,
        max_append_wait: Duration::from_millis(300),
        ..config(data_dir)
    }
}

/// The bound is in bytes too: with room for many spans by number, appends wait once the spans
/// not yet in blocks hold what `memory_limit_bytes` leaves them (three quarters of it, with
/// no blocks and nothing reserved), the refusal says so, and a flush lets them through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_when_the_unflushed_spans_hold_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let start = at("2026-11-20T10:00:00Z");
    let trace_bytes = trace_bytes(start).await;
    let store = Store::open(room_for_four_traces(dir.path(), trace_bytes))
        .await
        .unwrap();
    let head_limit = store.stats().head_limit_bytes;
    assert!(
        (3 * trace_bytes + 1..=4 * trace_bytes).contains(&head_limit),
        "three quarters of 5 traces' bytes leave {head_limit} bytes"
    );
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
        refused.message.contains("MiB")
            && refused.message.contains("memory_limit")
            && refused.message.contains("retry"),
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

/// A head being flushed counts twice against the head's share: its spans, and the columns its
/// flush builds beside them. While one trace is being flushed, two more fit where three did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_being_flushed_counts_twice() {
    let dir = tempfile::tempdir().unwrap();
    let start = at("2026-11-20T10:00:00Z");
    let trace_bytes = trace_bytes(start).await;
    let store = Store::open(room_for_four_traces(dir.path(), trace_bytes))
        .await
        .unwrap();
    // The flush waits in its filter until the gate opens.
    let gate = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let held = gate.clone();
    store.set_flush_filter(std::sync::Arc::new(move |_| {
        let (open, opened) = &*held;
        let mut open = open.lock().unwrap();
        while !*open {
            open = opened.wait(open).unwrap();
        }
        true
    }));
    store
        .append(event_trace(0, start), Vec::new())
        .await
        .unwrap();
    let flush = {
        let store = store.clone();
        tokio::spawn(async move { store.flush().await })
    };
    while store.stats().flushing_spans == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for trace_number in 1..3 {
        store
            .append(event_trace(trace_number, start), Vec::new())
            .await
            .unwrap();
    }
    // 3 traces' spans and the flush's columns of one: 4 against the share of 3.75.
    let refused = store
        .append(event_trace(3, start), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(refused.kind, StoreErrorKind::Overloaded, "{refused}");
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    flush.await.unwrap().unwrap();
    let stats = store.stats();
    assert_eq!((stats.flushing_spans, stats.head_spans), (0, 6));
    assert_eq!(stats.unflushed_bytes, 2 * trace_bytes);
}

/// What the opened blocks keep in memory (footers, bloom filters) counts against
/// `memory_limit_bytes`: once blocks are written, the spans not yet in blocks get that much
/// less room, and appends wait earlier than they did with no blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocks_in_memory_take_their_share_of_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let start = at("2026-11-20T10:00:00Z");
    let trace_bytes = trace_bytes(start).await;
    let memory_limit_bytes = 1024 * trace_bytes;
    let config = StoreConfig {
        flush_max_spans: 1_000_000,
        memory_limit_bytes,
        max_append_wait: Duration::from_millis(300),
        ..config(dir.path())
    };
    let store = Store::open(config).await.unwrap();
    let empty = store.stats();
    assert_eq!(empty.block_index.total(), 0);
    assert_eq!(
        empty.head_limit_bytes,
        memory_limit_bytes - memory_limit_bytes / 4
    );
    // Blocks of their own partition each (a day apart), so that their filters add up.
    for day in 0..3 {
        let day_start = start + day * 86_400 * 1_000_000_000;
        store
            .append(event_trace(day as u64, day_start), Vec::new())
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    let with_blocks = store.stats();
    let index = with_blocks.block_index;
    assert!(index.footer > 0 && index.event_id_filters > 0, "{index:?}");
    assert!(
        index.total() < empty.head_limit_bytes / 2,
        "{index:?} against {trace_bytes} bytes a trace"
    );
    assert_eq!(
        with_blocks.head_limit_bytes,
        empty.head_limit_bytes - index.total(),
        "{index:?}"
    );
    // Appends now stop at the smaller bound.
    let mut n_appended = 0u64;
    let refused = loop {
        match store
            .append(event_trace(100 + n_appended, start), Vec::new())
            .await
        {
            Ok(_) => n_appended += 1,
            Err(error) => break error,
        }
        assert!(n_appended < 1_024, "appends never waited");
    };
    assert_eq!(refused.kind, StoreErrorKind::Overloaded, "{refused}");
    let held = store.stats().unflushed_bytes;
    assert!(
        held >= with_blocks.head_limit_bytes && held < with_blocks.head_limit_bytes + trace_bytes,
        "appends stopped at {held} bytes, the bound being {}",
        with_blocks.head_limit_bytes
    );
}

/// With maintenance running, the head is flushed once its spans hold a quarter of what the
/// memory limit leaves them, long before `flush_max_spans`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_is_flushed_at_a_quarter_of_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let start = at("2026-11-20T10:00:00Z");
    let trace_bytes = trace_bytes(start).await;
    let config = StoreConfig {
        flush_max_spans: 1_000_000,
        // A quarter of three quarters of it: 1.875 traces.
        memory_limit_bytes: 10 * trace_bytes,
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

static RELEASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static KEEP_RESIDENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_release(keep_resident: u64) {
    RELEASES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    KEEP_RESIDENT.store(keep_resident, std::sync::atomic::Ordering::SeqCst);
}

/// The memory a flush frees is handed back through `release_memory` (the binaries purge
/// jemalloc's freed pages there when more than the bytes passed are resident) once per flush
/// that wrote spans, and not for one that wrote nothing; it may keep three quarters of the
/// memory limit resident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_hands_the_memory_it_freed_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        release_memory: Some(count_release),
        memory_limit_bytes: 800 << 20,
        ..config(dir.path())
    };
    let store = Store::open(config).await.unwrap();
    let start = at("2026-11-20T10:00:00Z");
    store.flush().await.unwrap();
    assert_eq!(RELEASES.load(std::sync::atomic::Ordering::SeqCst), 0);
    store
        .append(event_trace(1, start), Vec::new())
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(RELEASES.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        KEEP_RESIDENT.load(std::sync::atomic::Ordering::SeqCst),
        600 << 20
    );
}
