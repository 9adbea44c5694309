//! Look-ups by event id and by trace id: what was appended comes back, field for field, from
//! the in-memory head, from Parquet blocks, and from blocks opened cold after a restart.

use muninn_model::{Action, Span};
use muninn_store::{BlockWriteOptions, SpanFields, Store, StoreConfig};

use crate::support::{
    NANOS_PER_MILLISECOND, as_looked_up, at, config, count, event, event_id, event_trace,
    files_under, open, rich_span, trace, trace_id,
};

/// Checks that every trace and every event of `appended` is found exactly as appended.
async fn assert_all_found(
    store: &Store,
    appended: &[Span],
    trace_numbers: std::ops::RangeInclusive<u64>,
) {
    for trace_number in trace_numbers {
        let expected_trace = as_looked_up(
            appended
                .iter()
                .filter(|span| span.trace_id == trace_id(trace_number))
                .cloned(),
        );
        assert!(!expected_trace.is_empty());
        assert_eq!(
            trace(store, trace_id(trace_number)).await,
            expected_trace,
            "trace {trace_number}"
        );
        let event_id = event_id(trace_number);
        let expected_event = as_looked_up(
            appended
                .iter()
                .filter(|span| span.event.event_id.as_deref() == Some(event_id.as_str()))
                .cloned(),
        );
        assert_eq!(
            event(store, &event_id).await,
            expected_event,
            "event {event_id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_round_trips_through_the_head_a_block_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let start = at("2026-11-20T10:15:00Z");
    let mut appended = Vec::new();
    for trace_number in 1..=5 {
        appended.extend(event_trace(
            trace_number,
            start + trace_number as i64 * NANOS_PER_MILLISECOND,
        ));
    }
    appended.push(rich_span(1, start + 500 * NANOS_PER_MILLISECOND));
    appended.push(rich_span(4, start + 600 * NANOS_PER_MILLISECOND));
    store
        .append(
            appended[..9].to_vec(),
            vec![count(
                "checkout",
                Action::Produced,
                start / 1_000_000_000,
                3,
            )],
        )
        .await
        .unwrap();
    store
        .append(appended[9..].to_vec(), Vec::new())
        .await
        .unwrap();

    // In the head.
    assert_eq!(store.stats().head_spans, appended.len() as u64);
    assert_all_found(&store, &appended, 1..=5).await;
    assert_eq!(
        trace(&store, trace_id(1)).await.len(),
        4,
        "trace 1 holds its three spans and the rich one"
    );
    assert_eq!(
        event(&store, &event_id(4)).await.len(),
        3,
        "event 4 has a producer, a consumer and the rich span"
    );

    // In a block.
    let report = store.flush().await.unwrap();
    assert_eq!(report.n_spans, appended.len() as u64);
    assert_eq!(report.n_blocks, 1);
    let stats = store.stats();
    assert_eq!(
        (stats.head_spans, stats.flushing_spans, stats.block_spans),
        (0, 0, appended.len() as u64)
    );
    assert_all_found(&store, &appended, 1..=5).await;

    // From the block, opened cold.
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(store.stats().head_spans, 0);
    assert_all_found(&store, &appended, 1..=5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_find_nothing_in_head_or_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let start = at("2026-11-20T10:15:00Z");
    store
        .append(event_trace(1, start), Vec::new())
        .await
        .unwrap();
    store.flush().await.unwrap();
    store
        .append(event_trace(2, start), Vec::new())
        .await
        .unwrap();
    assert_eq!(trace(&store, trace_id(3)).await, Vec::new());
    assert_eq!(event(&store, &event_id(3)).await, Vec::new());
    // Event 1 lives in the block, event 2 in the head; neither leaks into the other.
    assert_eq!(event(&store, &event_id(1)).await.len(), 2);
    assert_eq!(event(&store, &event_id(2)).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_delivered_more_than_once_is_returned_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let spans = event_trace(7, at("2026-11-20T10:15:00Z"));

    // Twice in the head.
    store.append(spans.clone(), Vec::new()).await.unwrap();
    store.append(spans[..1].to_vec(), Vec::new()).await.unwrap();
    assert_eq!(trace(&store, trace_id(7)).await, spans);
    assert_eq!(event(&store, &event_id(7)).await, spans[..2].to_vec());

    // Twice in one block.
    store.flush().await.unwrap();
    assert_eq!(
        store.stats().block_spans,
        4,
        "the block keeps what was delivered"
    );
    assert_eq!(trace(&store, trace_id(7)).await, spans);
    assert_eq!(event(&store, &event_id(7)).await, spans[..2].to_vec());

    // Once more, in the head, while the block holds it too; and in a second block.
    store.append(spans.clone(), Vec::new()).await.unwrap();
    assert_eq!(trace(&store, trace_id(7)).await, spans);
    store.flush().await.unwrap();
    assert_eq!(store.blocks().len(), 2);
    assert_eq!(trace(&store, trace_id(7)).await, spans);
    assert_eq!(event(&store, &event_id(7)).await, spans[..2].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_ups_find_spans_in_every_row_group_of_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let store_config = StoreConfig {
        block: BlockWriteOptions {
            row_group_rows: 4,
            ..BlockWriteOptions::default()
        },
        ..config(dir.path())
    };
    let store = Store::open(store_config.clone()).await.unwrap();
    let start = at("2026-11-20T10:15:00Z");
    let appended: Vec<Span> = (1..=20)
        .flat_map(|trace_number| event_trace(trace_number, start + trace_number as i64))
        .collect();
    store.append(appended.clone(), Vec::new()).await.unwrap();
    store.flush().await.unwrap();
    drop(store);
    let store = Store::open(store_config).await.unwrap();
    assert_eq!(store.stats().block_spans, 60);
    assert_all_found(&store, &appended, 1..=20).await;
}

/// A block of 56,000 spans, one trace of 20,003 of them: traces at the first and last rows, on
/// both sides of that big trace and in the middle come back whole, alone and several at once,
/// and a trace past the last one finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_look_ups_in_a_large_block_miss_no_span() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let start = at("2026-11-20T10:15:00Z");
    let mut appended: Vec<Span> = (1..=12_000)
        .flat_map(|trace_number| event_trace(trace_number, start + trace_number as i64))
        .collect();
    // Trace 5,000 holds 20,000 more spans.
    let big = event_trace(5_000, start)[2].clone();
    appended.extend((0..20_000u64).map(|span_number| Span {
        span_id: muninn_model::SpanId((5_000u64 << 32 | span_number | 1 << 62).to_be_bytes()),
        start_unix_nanos: start + span_number as i64,
        ..big.clone()
    }));
    for chunk in appended.chunks(10_000) {
        store.append(chunk.to_vec(), Vec::new()).await.unwrap();
    }
    store.flush().await.unwrap();
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(store.stats().block_spans, appended.len() as u64);

    let expected = |numbers: &[u64]| {
        as_looked_up(
            appended
                .iter()
                .filter(|span| numbers.iter().any(|&n| span.trace_id == trace_id(n)))
                .cloned(),
        )
    };
    let probes = [
        1, 2, 2_730, 2_731, 2_732, 4_999, 5_000, 5_001, 5_460, 9_000, 11_999, 12_000,
    ];
    for number in probes {
        let found = trace(&store, trace_id(number)).await;
        assert_eq!(found, expected(&[number]), "trace {number}");
    }
    assert_eq!(trace(&store, trace_id(5_000)).await.len(), 20_003);
    assert_eq!(trace(&store, trace_id(12_001)).await, Vec::new());

    let several: std::collections::HashSet<_> = probes.iter().map(|&n| trace_id(n)).collect();
    let lookup = store.spans_by_trace_ids(&several, SpanFields::All).await;
    assert!(lookup.unreadable_blocks.is_empty());
    let mut found = lookup.spans;
    found.sort_by_key(|span| (span.trace_id, span.span_id));
    let mut wanted = expected(&probes);
    wanted.sort_by_key(|span| (span.trace_id, span.span_id));
    assert_eq!(found, wanted);
}

/// Forty blocks, more than one deciding call takes (`engine/lookup.rs` decides 32 blocks a
/// call): every trace and event is found in its block, opened cold and then opened, and a
/// block whose file is gone is named in the answer of a look-up that needs it, while the
/// others still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_ups_across_many_blocks_find_each_span_and_name_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut store_config = config(dir.path());
    store_config.compaction.enabled = false;
    let store = Store::open(store_config.clone()).await.unwrap();
    let start = at("2026-11-20T10:15:00Z");
    let mut appended = Vec::new();
    for trace_number in 1..=40 {
        let spans = event_trace(trace_number, start + trace_number as i64);
        store.append(spans.clone(), Vec::new()).await.unwrap();
        store.flush().await.unwrap();
        appended.extend(spans);
    }
    drop(store);
    let store = Store::open(store_config.clone()).await.unwrap();
    assert_eq!(store.stats().n_blocks, 40);
    // The first round opens each block's file on its way; the second decides from them.
    assert_all_found(&store, &appended, 1..=40).await;
    assert_all_found(&store, &appended, 1..=40).await;

    let spans_files: Vec<_> = files_under(dir.path())
        .into_iter()
        .filter(|file| file.ends_with("spans.parquet"))
        .collect();
    assert_eq!(spans_files.len(), 40);
    drop(store);

    // Which block holds trace 7: the one whose removal its look-up notices, in a store opened
    // without it (an open store keeps the files it reads open, `fs/open_files.rs`).
    let mut missing = None;
    for file in &spans_files {
        let path = dir.path().join(file);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let store = Store::open(store_config.clone()).await.unwrap();
        let lookup = store.spans_by_trace_id(trace_id(7)).await;
        if lookup.spans.is_empty() {
            missing = Some((file.clone(), lookup.unreadable_blocks, store));
            break;
        }
        // Another block's look-up may need this one's file too, if it is not opened yet.
        let block_dir = file.parent().unwrap().to_string_lossy().to_string();
        assert_only_names(&lookup.unreadable_blocks, &block_dir);
        assert_eq!(lookup.spans.len(), 3);
        drop(store);
        std::fs::write(&path, bytes).unwrap();
    }
    let (file, unreadable, store) = missing.expect("trace 7's block is one of the forty");
    let block_dir = file.parent().unwrap().to_string_lossy().to_string();
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert!(
        unreadable[0].contains(&block_dir),
        "{unreadable:?} names {block_dir}"
    );
    for trace_number in (1..=40).filter(|&n| n != 7) {
        let lookup = store.spans_by_trace_id(trace_id(trace_number)).await;
        assert_eq!(lookup.spans.len(), 3, "trace {trace_number}");
        assert_only_names(&lookup.unreadable_blocks, &block_dir);
    }
}

/// Every block `unreadable` names is the one in `block_dir`.
fn assert_only_names(unreadable: &[String], block_dir: &str) {
    assert!(
        unreadable.iter().all(|block| block.contains(block_dir)),
        "{unreadable:?} names a block other than {block_dir}"
    );
}

/// The blocks' `trace_id` filters are kept in memory while their budget
/// (`trace_filter_memory_bytes`) has room, and probed in the file past it: with room for two
/// and a half blocks' filters, two of five blocks keep theirs, and every trace and event of the
/// five is found, by the store that wrote them and by one that opened them cold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_filters_are_kept_in_memory_up_to_their_budget_and_probed_in_the_file_past_it() {
    const TRACES_A_BLOCK: u64 = 60;
    let start = at("2026-11-20T10:15:00Z");
    let block_of = |block: u64| -> Vec<Span> {
        (block * TRACES_A_BLOCK + 1..=(block + 1) * TRACES_A_BLOCK)
            .flat_map(|trace_number| event_trace(trace_number, start + trace_number as i64))
            .collect()
    };

    // What one block's filters take in memory, with the default budget (a sixteenth of
    // `memory_limit`, room for all of them).
    let one = tempfile::tempdir().unwrap();
    let mut one_config = config(one.path());
    one_config.compaction.enabled = false;
    let store = Store::open(one_config).await.unwrap();
    store.append(block_of(0), Vec::new()).await.unwrap();
    store.flush().await.unwrap();
    let one_block = store.stats().block_index.trace_id_filters;
    assert!(one_block >= 64, "{one_block} bytes of trace id filters");
    drop(store);

    let dir = tempfile::tempdir().unwrap();
    let mut store_config = config(dir.path());
    store_config.compaction.enabled = false;
    store_config.trace_filter_memory_bytes = Some(one_block * 5 / 2);
    let store = Store::open(store_config.clone()).await.unwrap();
    let mut appended = Vec::new();
    for block in 0..5 {
        let spans = block_of(block);
        store.append(spans.clone(), Vec::new()).await.unwrap();
        store.flush().await.unwrap();
        appended.extend(spans);
    }
    assert_eq!(store.stats().n_blocks, 5);
    let kept = store.stats().block_index.trace_id_filters;
    assert!(
        kept >= 2 * one_block && kept < 3 * one_block,
        "{kept} bytes kept, {one_block} a block"
    );
    assert_all_found(&store, &appended, 1..=5 * TRACES_A_BLOCK).await;
    drop(store);

    let store = Store::open(store_config).await.unwrap();
    assert_all_found(&store, &appended, 1..=5 * TRACES_A_BLOCK).await;
    assert!(store.stats().block_index.trace_id_filters < 3 * one_block);
}
