//! `--replay-spans N`: how long a store takes to open with N spans acknowledged in its WAL and
//! not yet in blocks, which is what a node restarted after a crash under full ingest replays
//! before it answers (`/healthz`). The spans are the workload's first bodies, decoded as the
//! server decodes them and appended again and again to a store of its own in a temporary
//! directory, with nothing flushed (no flush loop runs, and the bounds are set out of reach);
//! the store is then dropped without a flush, as a SIGKILL leaves it, and opened again.

use std::time::{Duration, Instant};

use crate::report::{bytes, seconds, thousands};

/// Appends `n_spans` spans from `bodies` (native JSON, gzip'd when `gzip`) to a new store,
/// drops it, and times opening it again.
pub(crate) fn run(bodies: &[bytes::Bytes], gzip: bool, n_spans: u64) -> anyhow::Result<()> {
    let limits = muninn_model::Limits::default();
    let mut batches = Vec::with_capacity(bodies.len());
    for body in bodies {
        let plain = muninn_ingest::decompress(body, gzip.then_some("gzip"), usize::MAX)?;
        let decoded = muninn_ingest::decode_spans(&plain, &limits, muninn_model::now_unix_nanos())?;
        batches.push(decoded.records);
    }
    anyhow::ensure!(
        batches.iter().any(|batch| !batch.is_empty()),
        "no spans in the first bodies"
    );
    let dir = tempfile::tempdir()?;
    let mut config = muninn_store::StoreConfig::new(dir.path());
    config.flush_max_spans = usize::MAX / 4;
    config.flush_max_age = Duration::from_secs(86_400);
    config.memory_limit_bytes = 1 << 40;
    config.retention = None;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let appended = runtime.block_on(async {
        let store = muninn_store::Store::open(config.clone()).await?;
        let mut appended = 0u64;
        'fill: loop {
            for batch in &batches {
                if appended >= n_spans {
                    break 'fill;
                }
                appended += batch.len() as u64;
                store.append(batch.clone(), Vec::new()).await?;
            }
        }
        anyhow::Ok(appended)
    })?;
    let wal_bytes = crate::disk::dir_sizes(&dir.path().join("wal"))?.total;
    let started = Instant::now();
    let (head_spans, head_bytes) = runtime.block_on(async {
        let store = muninn_store::Store::open(config).await?;
        let stats = store.stats();
        anyhow::Ok((stats.head_spans, stats.unflushed_bytes))
    })?;
    let opened = started.elapsed();
    println!(
        "replay: {} spans acknowledged and not flushed ({} of WAL): the store opened again in {} ({:.2} µs a span), {} spans in the head holding {}",
        thousands(appended),
        bytes(wal_bytes),
        seconds(opened),
        opened.as_secs_f64() * 1e6 / appended.max(1) as f64,
        thousands(head_spans),
        bytes(head_bytes)
    );
    Ok(())
}
