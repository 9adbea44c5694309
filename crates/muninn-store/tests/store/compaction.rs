//! Compaction: each partition's blocks merged into one, with every answer the same before and
//! after, across a restart, from blocks of either format version, and in the background.
//! (Power losses in the middle of compactions are in `power_loss.rs`.)

use std::time::Duration;

use muninn_model::NANOS_PER_MINUTE;
use muninn_store::{Store, StoreConfig};

use crate::golden::golden_dir;
use crate::golden_queries::assert_answers;
use crate::support::{
    RollupTotals, at, config, copy_dir, event_trace, files_under, rollup_totals, trace, trace_id,
};

fn compacting(data_dir: &std::path::Path) -> StoreConfig {
    let mut config = config(data_dir);
    config.compaction.delete_grace = Duration::ZERO;
    config.compaction.cpu_share = 1.0;
    config
}

/// The golden data sets (v1 and v2 blocks, and a WAL), flushed into two blocks per hourly
/// partition, then compacted: one v2 block per partition that answers every golden question
/// as before, holds the same roll-ups, and leaves nothing of the blocks it replaced, before
/// and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_each_partitions_blocks_and_every_answer_stays_the_same() {
    for golden in ["v1-with-link-trace-ids", "v2"] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&golden_dir(golden), dir.path());
        let store = Store::open(compacting(dir.path())).await.unwrap();
        store.flush().await.unwrap();
        let before = store.blocks();
        assert_eq!(
            before.len(),
            4,
            "{golden}: two blocks in each of two partitions"
        );
        let totals = rollup_totals(&store);

        let report = store.compact().await.unwrap();
        assert_eq!(
            (
                report.n_compactions,
                report.n_blocks_in,
                report.n_blocks_out,
                report.n_spans
            ),
            (2, 4, 2, 39),
            "{golden}"
        );
        let after = store.blocks();
        assert_eq!(after.len(), 2, "{golden}");
        for meta in &after {
            assert_eq!(
                meta.format_version, 2,
                "{golden}: outputs are in the written format"
            );
            assert_eq!(meta.compacted_from.len(), 2, "{golden}");
        }
        let files = files_under(dir.path());
        for meta in &before {
            assert!(
                !files
                    .iter()
                    .any(|file| file.to_string_lossy().contains(&meta.block_id)),
                "{golden}: block {} was replaced, and none of its files is left",
                meta.block_id
            );
        }
        assert_eq!(rollup_totals(&store), totals, "{golden}");
        assert_answers(&store, &format!("{golden}, compacted")).await;

        drop(store);
        let store = Store::open(compacting(dir.path())).await.unwrap();
        assert_eq!(
            store.blocks(),
            after,
            "{golden}: the same blocks after a restart"
        );
        assert_eq!(
            rollup_totals(&store),
            RollupTotals {
                spans: 27,
                seen: 103
            },
            "{golden}"
        );
        assert_answers(&store, &format!("{golden}, compacted and reopened")).await;
        assert_eq!(
            store.compact().await.unwrap().n_compactions,
            0,
            "{golden}: one block per partition is left alone"
        );
    }
}

/// With maintenance running, the blocks of several flushes into one partition become one
/// block by themselves, and every span stays readable throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_compaction_merges_flushed_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compacting(dir.path());
    config.compaction.interval = Duration::from_millis(50);
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
    let hour = at("2026-11-20T10:00:00Z");
    for trace_number in 1..=5 {
        store
            .append(
                event_trace(trace_number, hour + trace_number as i64 * NANOS_PER_MINUTE),
                Vec::new(),
            )
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.blocks().len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "5 blocks of one partition are still {} blocks after 20 s",
            store.blocks().len()
        );
        for trace_number in 1..=5 {
            assert_eq!(trace(&store, trace_id(trace_number)).await.len(), 3);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.blocks()[0].n_spans, 15);
    for trace_number in 1..=5 {
        assert_eq!(trace(&store, trace_id(trace_number)).await.len(), 3);
    }
    stop.send(()).unwrap();
    maintenance.await.unwrap();
}

/// Three blocks of one hourly partition, 12,000 spans each, whose traces interleave (trace n
/// is in block n % 3), and the trace numbers the tests below look up.
async fn write_interleaved_blocks(store: &Store) -> Vec<u64> {
    let hour = at("2026-11-20T10:00:00Z");
    for block in 0..3u64 {
        let spans: Vec<_> = (0..4_000u64)
            .flat_map(|n| {
                let trace_number = n * 3 + block;
                event_trace(
                    trace_number,
                    hour + (trace_number as i64 % 50) * NANOS_PER_MINUTE,
                )
            })
            .collect();
        store.append(spans, Vec::new()).await.unwrap();
        store.flush().await.unwrap();
    }
    (0..12_000u64).step_by(37).collect()
}

async fn traces_of(store: &Store, trace_numbers: &[u64]) -> Vec<Vec<muninn_model::Span>> {
    let mut traces = Vec::new();
    for &trace_number in trace_numbers {
        traces.push(trace(store, trace_id(trace_number)).await);
    }
    traces
}

/// Inputs larger than what the merge reads of an input at a time (8,192 rows) come out whole
/// and in order: three blocks of 12,000 spans whose traces interleave become one block of
/// 36,000 spans, and every trace answers with the same spans as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_read_in_parts_merge_into_every_span_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(compacting(dir.path())).await.unwrap();
    let sampled = write_interleaved_blocks(&store).await;
    assert_eq!(store.blocks().len(), 3);
    let before = traces_of(&store, &sampled).await;

    let report = store.compact().await.unwrap();
    assert_eq!(
        (report.n_blocks_in, report.n_blocks_out, report.n_spans),
        (3, 1, 36_000)
    );
    assert_eq!(store.blocks()[0].n_spans, 36_000);
    let after = traces_of(&store, &sampled).await;
    for ((trace_number, spans_before), spans_after) in sampled.iter().zip(&before).zip(&after) {
        assert_eq!(spans_after.len(), 3, "trace {trace_number}");
        assert_eq!(spans_after, spans_before, "trace {trace_number}");
    }
}

/// The same for blocks of format 1, which take the slower path (each span decoded and encoded
/// again): written by a store set to format 1, compacted by one set to format 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_inputs_read_in_parts_merge_into_every_span_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut v1 = compacting(dir.path());
    v1.block.format_version = 1;
    let store = Store::open(v1).await.unwrap();
    let sampled = write_interleaved_blocks(&store).await;
    let before = traces_of(&store, &sampled).await;
    drop(store);

    let store = Store::open(compacting(dir.path())).await.unwrap();
    assert!(store.blocks().iter().all(|meta| meta.format_version == 1));
    let report = store.compact().await.unwrap();
    assert_eq!(
        (report.n_blocks_in, report.n_blocks_out, report.n_spans),
        (3, 1, 36_000)
    );
    assert_eq!(store.blocks()[0].format_version, 2);
    let after = traces_of(&store, &sampled).await;
    for ((trace_number, spans_before), spans_after) in sampled.iter().zip(&before).zip(&after) {
        assert_eq!(spans_after, spans_before, "trace {trace_number}");
    }
}
