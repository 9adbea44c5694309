//! The compaction phase: after the final flush, compaction rounds run until nothing is left
//! to merge (the background compaction runs during ingest too, at its bounded CPU share); what
//! they merged, their time, and the server CPU they took per span, so that the steady-state
//! cost of a span — ingest, flushes and compaction — can be printed as one figure.

use std::time::{Duration, Instant};

use muninn_store::{CompactionReport, Store};

use crate::report::{bytes, seconds, thousands};
use crate::system::{CpuSnapshot, CpuSplit};

/// What the rounds after the flush did.
pub(crate) struct Compacted {
    pub report: CompactionReport,
    pub elapsed: Duration,
    /// Server CPU seconds they took.
    pub server_cpu: f64,
}

/// Runs compaction rounds on `store` until one merges nothing, and prints what they did.
pub(crate) fn run(runtime: &tokio::runtime::Runtime, store: &Store) -> anyhow::Result<Compacted> {
    let started = Instant::now();
    let cpu_before = CpuSnapshot::take();
    let mut total = CompactionReport::default();
    let mut rounds = 0;
    loop {
        // Nothing else runs now: the rounds after ingest use a whole core. Spawned, so that the
        // merge runs on the server's threads and its CPU counts as the server's (on the
        // calling thread, `block_on` would run it as the client's).
        let compacting = store.clone();
        let round = runtime.block_on(
            runtime.spawn(async move { compacting.compact_with_cpu_share(1.0).await }),
        )??;
        rounds += 1;
        if round.n_compactions == 0 {
            break;
        }
        total.n_compactions += round.n_compactions;
        total.n_blocks_in += round.n_blocks_in;
        total.n_blocks_out += round.n_blocks_out;
        total.n_spans += round.n_spans;
        total.bytes_in += round.bytes_in;
        total.bytes_out += round.bytes_out;
    }
    let elapsed = started.elapsed();
    let server_cpu = CpuSplit::between(&cpu_before, &CpuSnapshot::take(), 0).server;
    println!(
        "compaction after the flush: {} rounds, {} compactions, {} blocks ({}) → {} ({}), {} spans, {}, server CPU {:.2} s; {} blocks now",
        rounds,
        total.n_compactions,
        total.n_blocks_in,
        bytes(total.bytes_in),
        total.n_blocks_out,
        bytes(total.bytes_out),
        thousands(total.n_spans),
        seconds(elapsed),
        server_cpu,
        store.stats().n_blocks
    );
    Ok(Compacted {
        report: total,
        elapsed,
        server_cpu,
    })
}
