//! Power loss: the store runs on `SimulatedFs`, a file system in memory that drops every byte
//! and every name not yet synced when the power goes out. Each trial runs a random workload —
//! concurrent appends, flushes, compactions, a retention sweep, reopening the store — cuts the power at a
//! random point of it, reboots, reopens the store and checks the ledger: every acknowledged
//! span is found whole and once, nothing that was never sent appears, and the roll-ups count
//! each span found exactly once. A second, shorter workload then runs on the recovered data and loses
//! power too, and the ledger of both is checked again; then the store must keep working.
//!
//! The cut points are spread over the kinds of step (appends, flushes, compactions, retention,
//! reopening)
//! using the mutating-operation ranges of a dry run of the same workload. A failing trial
//! names its seed; `MUNINN_POWER_LOSS_SEED=<seed>` replays the whole run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use muninn_model::{Action, EventCount, NANOS_PER_MINUTE, Span, SpanId, TraceId};
use muninn_store::{FileSystem, SimulatedFs, SpanFields, Store, StoreConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::{NANOS_PER_HOUR, count, event_trace, rollup_cells};

const N_TRIALS: usize = 30;
const N_STEPS: usize = 36;
const DATA_DIR: &str = "/data";
/// Retention sweeps drop the partitions older than this before now.
const RETAINED_HOURS: i64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum StepKind {
    Append,
    Flush,
    Compact,
    Retention,
    Reopen,
}

#[derive(Debug, Clone)]
enum Step {
    /// Concurrent appends, each of these traces (3 spans each) and one count.
    Append(Vec<Vec<u64>>),
    Flush,
    Compact,
    Retention,
    Reopen,
}

impl Step {
    fn kind(&self) -> StepKind {
        match self {
            Step::Append(_) => StepKind::Append,
            Step::Flush => StepKind::Flush,
            Step::Compact => StepKind::Compact,
            Step::Retention => StepKind::Retention,
            Step::Reopen => StepKind::Reopen,
        }
    }
}

/// A trial's workload: steps, and each trace's start time (spread over the last 6 hours).
struct Workload {
    steps: Vec<Step>,
    starts: HashMap<u64, i64>,
    now: i64,
}

fn workload(rng: &mut StdRng, first_trace: u64, n_steps: usize) -> Workload {
    let now = muninn_model::now_unix_nanos();
    let mut steps = Vec::new();
    let mut starts = HashMap::new();
    let mut next_trace = first_trace;
    let mut retention_done = false;
    for step_idx in 0..n_steps {
        let roll: f64 = rng.random();
        let step = if roll < 0.58 || step_idx == 0 {
            let appends = (0..rng.random_range(1..=4))
                .map(|_| {
                    (0..rng.random_range(1..=5))
                        .map(|_| {
                            let trace = next_trace;
                            next_trace += 1;
                            let hours_ago = rng.random_range(0..6);
                            let minute = rng.random_range(0..60);
                            starts.insert(
                                trace,
                                now - hours_ago * NANOS_PER_HOUR - minute * NANOS_PER_MINUTE,
                            );
                            trace
                        })
                        .collect()
                })
                .collect();
            Step::Append(appends)
        } else if roll < 0.76 {
            Step::Flush
        } else if roll < 0.86 {
            Step::Compact
        } else if roll < 0.92 && !retention_done && step_idx > n_steps / 3 {
            retention_done = true;
            Step::Retention
        } else {
            Step::Reopen
        };
        steps.push(step);
    }
    Workload { steps, starts, now }
}

/// Compaction as configured in production but for its sizes: outputs of at most 12 spans (so
/// compactions chain: outputs become inputs), row groups of 8, no grace before deleting what
/// it replaced, no throttling; WAL segments of 16 KiB, so that a head spans several.
fn config() -> StoreConfig {
    let mut config = StoreConfig::new(DATA_DIR);
    config.wal_segment_bytes = 16 << 10;
    config.block.row_group_rows = 8;
    config.compaction.max_block_spans = 12;
    config.compaction.delete_grace = Duration::ZERO;
    config.compaction.cpu_share = 1.0;
    config
}

fn spans_of(workload: &Workload, traces: &[u64]) -> Vec<Span> {
    traces
        .iter()
        .flat_map(|trace| event_trace(*trace, workload.starts[trace]))
        .collect()
}

fn count_of(workload: &Workload, traces: &[u64]) -> EventCount {
    let minute = workload.starts[&traces[0]] / 1_000_000_000 / 60 * 60;
    count("checkout", Action::Produced, minute, traces.len() as u64)
}

fn partition_of(unix_nanos: i64) -> i64 {
    unix_nanos.div_euclid(NANOS_PER_HOUR)
}

/// What the workload was told: every span and count sent, and those acknowledged.
#[derive(Default)]
struct Ledger {
    sent: HashMap<(TraceId, SpanId), Span>,
    acknowledged: Vec<(TraceId, SpanId)>,
    counts_sent: Vec<EventCount>,
    counts_acknowledged: Vec<EventCount>,
    /// Set when a retention sweep started: partitions (hours since the epoch) below it may
    /// be gone, legitimately.
    dropped_below: Option<i64>,
    /// The step during which the power went out, and the mutating-operation range of each
    /// step kind (for the dry run).
    cut_during: Option<StepKind>,
    op_ranges: Vec<(StepKind, u64, u64)>,
    /// Blocks compactions replaced (in runs that completed them).
    blocks_compacted: usize,
}

impl Ledger {
    /// This ledger followed by a later one on the same data.
    fn then(mut self, later: Ledger) -> Ledger {
        self.sent.extend(later.sent);
        self.acknowledged.extend(later.acknowledged);
        self.counts_sent.extend(later.counts_sent);
        self.counts_acknowledged.extend(later.counts_acknowledged);
        self.dropped_below = self.dropped_below.max(later.dropped_below);
        self.cut_during = later.cut_during;
        self
    }
}

/// Where the power goes out: at the `ops`-th mutating operation counted from the start of
/// step `step`. Counting from the step rather than from the start keeps the cut in the step
/// it was aimed at, although the WAL's group commits make the number of operations before
/// that step vary from run to run.
#[derive(Clone, Copy, Debug)]
struct Cut {
    step: usize,
    ops: u64,
}

/// Runs the workload on `fs` until it ends or the power goes out.
async fn run(fs: &SimulatedFs, workload: &Workload) -> Ledger {
    run_with_cut(fs, workload, None).await
}

/// Runs the workload on `fs`, cutting the power at `cut` if it is given.
async fn run_with_cut(fs: &SimulatedFs, workload: &Workload, cut: Option<Cut>) -> Ledger {
    let mut ledger = Ledger::default();
    let Ok(mut store) = Store::open_with_file_system(config(), Arc::new(fs.clone())).await else {
        ledger.cut_during = Some(StepKind::Reopen);
        return ledger;
    };
    for (step_idx, step) in workload.steps.iter().enumerate() {
        if let Some(cut) = cut.filter(|cut| cut.step == step_idx) {
            fs.cut_power_after(cut.ops);
        }
        let ops_before = fs.mutating_ops();
        match step {
            Step::Append(appends) => {
                let mut tasks = Vec::new();
                for traces in appends {
                    let spans = spans_of(workload, traces);
                    let counted = count_of(workload, traces);
                    for span in &spans {
                        ledger
                            .sent
                            .insert((span.trace_id, span.span_id), span.clone());
                    }
                    ledger.counts_sent.push(counted.clone());
                    let store = store.clone();
                    tasks.push(tokio::spawn(async move {
                        let keys: Vec<(TraceId, SpanId)> = spans
                            .iter()
                            .map(|span| (span.trace_id, span.span_id))
                            .collect();
                        let result = store.append(spans, vec![counted.clone()]).await;
                        (result.is_ok(), keys, counted)
                    }));
                }
                for task in tasks {
                    let (acknowledged, keys, counted) = task.await.unwrap();
                    if acknowledged {
                        ledger.acknowledged.extend(keys);
                        ledger.counts_acknowledged.push(counted);
                    }
                }
            }
            Step::Flush => {
                let _ = store.flush().await;
            }
            Step::Compact => {
                if let Ok(report) = store.compact().await {
                    ledger.blocks_compacted += report.n_blocks_in;
                }
            }
            Step::Retention => {
                let cutoff = workload.now - RETAINED_HOURS * NANOS_PER_HOUR;
                ledger.dropped_below = Some(partition_of(cutoff));
                // `now` such that `now - retention` is the cutoff.
                let retention = i64::try_from(config().retention.unwrap().as_nanos()).unwrap();
                let _ = store.enforce_retention(cutoff + retention).await;
            }
            Step::Reopen => {
                drop(store);
                match Store::open_with_file_system(config(), Arc::new(fs.clone())).await {
                    Ok(reopened) => store = reopened,
                    Err(_) => {
                        ledger.cut_during = Some(StepKind::Reopen);
                        return ledger;
                    }
                }
            }
        }
        ledger
            .op_ranges
            .push((step.kind(), ops_before, fs.mutating_ops()));
        if fs.is_powered_off() {
            ledger.cut_during = Some(step.kind());
            return ledger;
        }
    }
    ledger
}

/// Every file under `dir`, recursively.
fn files_under(fs: &SimulatedFs, dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in fs.read_dir(dir).unwrap() {
        let path = dir.join(&entry.name);
        if entry.is_dir {
            files.extend(files_under(fs, &path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}

/// Reopens the rebooted file system and checks the ledger. Returns the recovered store.
async fn check_recovery(rebooted: &SimulatedFs, ledger: &Ledger, trial: &str) -> Store {
    let store = Store::open_with_file_system(config(), Arc::new(rebooted.clone()))
        .await
        .unwrap_or_else(|error| {
            panic!("{trial}: the store does not open after the power loss: {error}")
        });
    let leftovers: Vec<String> = files_under(rebooted, Path::new(DATA_DIR))
        .into_iter()
        .filter(|path| path.contains(".muninn-tmp-"))
        .collect();
    assert_eq!(
        leftovers,
        Vec::<String>::new(),
        "{trial}: temporary files are cleaned up on open"
    );
    let retained = |start: i64| {
        ledger
            .dropped_below
            .is_none_or(|below| partition_of(start) >= below)
    };
    let trace_ids: HashSet<TraceId> = ledger.sent.keys().map(|(trace_id, _)| *trace_id).collect();
    let lookup = store.spans_by_trace_ids(&trace_ids, SpanFields::All).await;
    assert_eq!(lookup.unreadable_blocks, Vec::<String>::new(), "{trial}");
    let found: HashMap<(TraceId, SpanId), &Span> = lookup
        .spans
        .iter()
        .map(|span| ((span.trace_id, span.span_id), span))
        .collect();
    let stats = store.stats();
    assert_eq!(
        (stats.block_spans + stats.head_spans, lookup.spans.len()),
        (found.len() as u64, found.len()),
        "{trial}: the store holds a span twice (in two blocks, or in a block and the head)"
    );
    for (key, span) in &found {
        assert_eq!(
            ledger.sent.get(key),
            Some(*span),
            "{trial}: a span found is not one that was sent, or differs from it"
        );
    }
    let lost: Vec<&(TraceId, SpanId)> = ledger
        .acknowledged
        .iter()
        .filter(|key| retained(ledger.sent[key].start_unix_nanos) && !found.contains_key(key))
        .collect();
    assert!(
        lost.is_empty(),
        "{trial}: {} of {} acknowledged spans are lost after the power loss, e.g. {:?}",
        lost.len(),
        ledger.acknowledged.len(),
        lost.first()
    );

    // Roll-ups count each span found once (no loss, no double count across the recovery),
    // and the events counted lie between what was acknowledged and what was sent.
    let cells = rollup_cells(&store);
    let retained_minute = |minute: i64| retained(minute * 1_000_000_000);
    let rollup_spans: u64 = cells
        .iter()
        .filter(|((minute, _), _)| retained_minute(*minute))
        .map(|(_, cell)| cell.spans)
        .sum();
    let event_spans_found = found
        .values()
        .filter(|span| retained(span.start_unix_nanos) && span.event.stream.is_some())
        .count() as u64;
    assert_eq!(
        rollup_spans, event_spans_found,
        "{trial}: roll-up span counts"
    );
    let seen: u64 = cells
        .iter()
        .filter(|((minute, _), _)| retained_minute(*minute))
        .map(|(_, cell)| cell.seen)
        .sum();
    let total = |counts: &[EventCount]| -> u64 {
        counts
            .iter()
            .filter(|counted| retained_minute(counted.minute_unix_seconds))
            .map(|counted| counted.count)
            .sum()
    };
    assert!(
        (total(&ledger.counts_acknowledged)..=total(&ledger.counts_sent)).contains(&seen),
        "{trial}: events counted {seen}, acknowledged {}, sent {}",
        total(&ledger.counts_acknowledged),
        total(&ledger.counts_sent)
    );
    store
}

/// The recovered store takes writes, flushes and reopens with everything in it.
async fn check_it_keeps_working(
    rebooted: &SimulatedFs,
    store: Store,
    workload: &Workload,
    trial: &str,
) {
    let trace = 1_000_000;
    let spans = event_trace(trace, workload.now - NANOS_PER_MINUTE);
    store.append(spans.clone(), Vec::new()).await.unwrap();
    store
        .flush()
        .await
        .unwrap_or_else(|error| panic!("{trial}: flush after recovery: {error}"));
    drop(store);
    let store = Store::open_with_file_system(config(), Arc::new(rebooted.clone()))
        .await
        .unwrap();
    assert_eq!(
        store.spans_by_trace_id(spans[0].trace_id).await.spans.len(),
        3,
        "{trial}: a span written after the recovery"
    );
}

/// A short workload of new traces on the same clock, run after a recovery.
fn workload_after(rng: &mut StdRng, first: &Workload) -> Workload {
    let first_trace = first.starts.keys().max().copied().unwrap_or(0) + 1;
    let mut later = workload(rng, first_trace, N_STEPS / 3);
    later.now = first.now;
    later
}

/// How many mutating operations `later` takes on a copy of `fs` with the power on.
async fn later_ops(fs: &SimulatedFs, later: &Workload) -> u64 {
    let copy = fs.after_power_loss();
    let before = copy.mutating_ops();
    let dry_run = run(&copy, later).await;
    assert!(dry_run.cut_during.is_none(), "the dry run has power");
    copy.mutating_ops() - before
}

/// Picks the cut: a step kind in rotation (so every kind is hit), then an operation inside a
/// step of that kind in the dry run.
fn pick_cut(rng: &mut StdRng, trial_idx: usize, dry_run: &Ledger) -> Cut {
    let kinds = [
        StepKind::Append,
        StepKind::Flush,
        StepKind::Compact,
        StepKind::Retention,
        StepKind::Reopen,
    ];
    let wanted = kinds[trial_idx % kinds.len()];
    let steps: Vec<(usize, u64)> = dry_run
        .op_ranges
        .iter()
        .enumerate()
        .filter(|(_, (kind, before, after))| *kind == wanted && after > before)
        .map(|(step, (_, before, after))| (step, after - before))
        .collect();
    let total_ops = dry_run.op_ranges.last().map_or(1, |(_, _, after)| *after);
    match steps.get(rng.random_range(0..steps.len().max(1))) {
        Some(&(step, ops)) => Cut {
            step,
            ops: rng.random_range(1..=ops),
        },
        None => Cut {
            step: 0,
            ops: rng.random_range(1..=total_ops.max(1)),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_span_survives_a_power_loss_at_a_random_point() {
    let seed: u64 = std::env::var("MUNINN_POWER_LOSS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("power-loss trials with MUNINN_POWER_LOSS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cuts: BTreeMap<StepKind, usize> = BTreeMap::new();
    let mut n_acknowledged = 0;
    let mut blocks_compacted = 0;
    let mut n_trials = 0;
    // Every kind of step gets its turns; then, should none of the cuts aimed at a compaction
    // have hit one (background work can move a step's operations between the dry run and the
    // real one), up to ten more trials are aimed at one (`pick_cut` picks by the index).
    let extra = (0..10).map(|k| N_TRIALS + 2 + 5 * k);
    for trial_idx in (0..N_TRIALS).chain(extra) {
        if trial_idx >= N_TRIALS && cuts.get(&StepKind::Compact).copied().unwrap_or(0) > 0 {
            break;
        }
        n_trials += 1;
        let workload = workload(&mut rng, 1, N_STEPS);
        let dry_fs = SimulatedFs::new();
        let dry_run = run(&dry_fs, &workload).await;
        assert!(dry_run.cut_during.is_none(), "the dry run has power");
        blocks_compacted += dry_run.blocks_compacted;
        let cut = pick_cut(&mut rng, trial_idx, &dry_run);
        let trial = format!(
            "seed {seed}, trial {trial_idx}, power cut at operation {} of step {}",
            cut.ops, cut.step
        );

        let fs = SimulatedFs::new();
        let ledger = run_with_cut(&fs, &workload, Some(cut)).await;
        // Let the dead store's WAL thread notice its channel closed.
        tokio::time::sleep(Duration::from_millis(1)).await;
        *cuts
            .entry(ledger.cut_during.unwrap_or(StepKind::Append))
            .or_default() += 1;
        n_acknowledged += ledger.acknowledged.len();
        let rebooted = fs.after_power_loss();
        drop(check_recovery(&rebooted, &ledger, &trial).await);

        // A second power loss while the recovered store works (the run starts by opening it,
        // so also while it recovers): what the first recovery deleted must stay deleted, or it
        // would come back beside its replayed copy and be counted twice.
        let later = workload_after(&mut rng, &workload);
        let second_cut = rng.random_range(1..=later_ops(&rebooted, &later).await.max(1));
        let trial = format!("{trial}, then at operation {second_cut} of a second run");
        rebooted.cut_power_after(second_cut);
        let ledger = ledger.then(run(&rebooted, &later).await);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let rebooted_again = rebooted.after_power_loss();
        let store = check_recovery(&rebooted_again, &ledger, &trial).await;
        check_it_keeps_working(&rebooted_again, store, &workload, &trial).await;
    }
    eprintln!(
        "{n_trials} power losses, by the step they hit: {cuts:?}; {n_acknowledged} acknowledged spans checked; {blocks_compacted} blocks compacted in the dry runs"
    );
    assert!(
        cuts.get(&StepKind::Compact).copied().unwrap_or(0) > 0 && blocks_compacted > 0,
        "the power went out during compactions that had blocks to merge"
    );
    assert!(
        cuts.get(&StepKind::Flush).copied().unwrap_or(0) >= N_TRIALS / 8,
        "power losses during flushes: {cuts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_right_after_a_flush_loses_nothing() {
    // The case the old store got wrong: the WAL segments are deleted once the blocks are
    // written; were the blocks not synced, they would be lost with the WAL gone.
    let fs = SimulatedFs::new();
    let store = Store::open_with_file_system(config(), Arc::new(fs.clone()))
        .await
        .unwrap();
    let now = muninn_model::now_unix_nanos();
    let spans: Vec<Span> = (1..=20)
        .flat_map(|trace| event_trace(trace, now - trace as i64 * NANOS_PER_MINUTE))
        .collect();
    store.append(spans.clone(), Vec::new()).await.unwrap();
    store.flush().await.unwrap();
    fs.cut_power_after(1);
    drop(store);
    let rebooted = fs.after_power_loss();
    assert!(
        rebooted
            .read_dir(&Path::new(DATA_DIR).join("wal"))
            .unwrap()
            .len()
            == 1,
        "the flush deleted the WAL segment it replaced"
    );
    let store = Store::open_with_file_system(config(), Arc::new(rebooted))
        .await
        .unwrap();
    assert_eq!(store.stats().block_spans, 60, "every span is in the blocks");
    assert_eq!(store.stats().head_spans, 0);
    let trace_ids: HashSet<TraceId> = spans.iter().map(|span| span.trace_id).collect();
    assert_eq!(
        store
            .spans_by_trace_ids(&trace_ids, SpanFields::All)
            .await
            .spans
            .len(),
        60
    );
}

/// A round of two compactions (two partitions, two blocks each) loses power as the second one
/// starts writing: the first one is whole on disk (its output committed, its inputs deleted,
/// not left for a later start to find), the second one's inputs are untouched, and after a
/// reboot every span is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_that_fails_leaves_the_earlier_ones_of_its_round_complete() {
    let now = muninn_model::now_unix_nanos();
    let first_hour = now.div_euclid(NANOS_PER_HOUR) * NANOS_PER_HOUR - 3 * NANOS_PER_HOUR;
    let second_hour = first_hour + NANOS_PER_HOUR;
    let hour_dir = |hour_start: i64| {
        chrono::DateTime::from_timestamp_nanos(hour_start)
            .format("hour=%H/")
            .to_string()
    };
    // Two flushes, each writing a block into both partitions.
    let write = |fs: SimulatedFs| async move {
        let mut config = config();
        config.compaction.max_block_spans = 1_000;
        let store = Store::open_with_file_system(config, Arc::new(fs))
            .await
            .unwrap();
        for flush in 0..2u64 {
            let spans: Vec<Span> = (0..4u64)
                .flat_map(|n| {
                    let trace = flush * 4 + n;
                    let hour = if n % 2 == 0 { first_hour } else { second_hour };
                    event_trace(trace, hour + trace as i64 * NANOS_PER_MINUTE)
                })
                .collect();
            store.append(spans, Vec::new()).await.unwrap();
            store.flush().await.unwrap();
        }
        assert_eq!(store.blocks().len(), 4);
        store
    };

    // A dry run finds the first operation of the second compaction.
    let dry = SimulatedFs::new();
    let store = write(dry.clone()).await;
    let ops_before = dry.journal().len();
    let report = store.compact().await.unwrap();
    assert_eq!((report.n_compactions, report.n_blocks_in), (2, 4));
    let second_starts = dry.journal()[ops_before..]
        .iter()
        .position(|op| op.contains(&hour_dir(second_hour)))
        .expect("the second compaction writes into the second partition");
    drop(store);

    let fs = SimulatedFs::new();
    let store = write(fs.clone()).await;
    let inputs: Vec<(i64, String)> = store
        .blocks()
        .iter()
        .map(|meta| (meta.partition_unix_seconds, meta.block_id.clone()))
        .collect();
    fs.cut_power_after(second_starts as u64 + 1);
    assert!(
        store.compact().await.is_err(),
        "the second compaction loses power"
    );
    drop(store);
    let rebooted = fs.after_power_loss();
    let files = files_under(&rebooted, Path::new(DATA_DIR));
    let first_partition = first_hour / 1_000_000_000;
    for (partition, block_id) in &inputs {
        let left = files.iter().any(|file| file.contains(block_id.as_str()));
        if *partition == first_partition {
            assert!(
                !left,
                "block {block_id}, replaced by the committed first compaction, is still on disk: {files:?}"
            );
        } else {
            assert!(left, "block {block_id} of the failed compaction is intact");
        }
    }
    let store = Store::open_with_file_system(config(), Arc::new(rebooted))
        .await
        .unwrap();
    assert_eq!(store.blocks().len(), 3, "one output and two inputs");
    assert_eq!(store.stats().block_spans, 24, "every span once");
    let trace_ids: HashSet<TraceId> = (0..8).map(crate::support::trace_id).collect();
    assert_eq!(
        store
            .spans_by_trace_ids(&trace_ids, SpanFields::All)
            .await
            .spans
            .len(),
        24
    );
}
