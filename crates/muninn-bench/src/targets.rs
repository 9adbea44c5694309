//! The targets each figure is held against (PASS/MISS), and the scale at which they are set:
//! a smaller run, or one with fewer days of counts, says so beside its verdict.

use std::time::Duration;

use crate::feed::Protocol;
use crate::ingest::IngestOutcome;
use crate::queries::{QueryKind, QueryOutcome};
use crate::report::{LatencySummary, Target, millis, thousands};
use crate::ui::PageTimes;

/// Targets (see the crate documentation): issue 18's, durable ingest in steady state.
const TARGET_SPANS_PER_SECOND: f64 = 500_000.0;
/// OTLP/HTTP protobuf (`--protocol otlp`) does more per span: protobuf and the mapping.
const TARGET_OTLP_SPANS_PER_SECOND: f64 = 400_000.0;
/// Set for the random workload (`--workload random`), after compaction.
const TARGET_BYTES_PER_SPAN: f64 = 32.0;
const TARGET_SCALE_SPANS: usize = 10_000_000;
/// The query targets hold with this many days of the fleet's counts in the roll-ups.
const TARGET_COUNT_DAYS: u32 = 7;

/// The UI's time to interactive per page, p99, with 10M spans stored.
const TARGET_UI_MILLIS: u64 = 300;

/// The figures of a run that have targets.
pub(crate) struct Figures<'a> {
    pub protocol: Protocol,
    pub n_spans: usize,
    pub count_days: u32,
    pub ingest: &'a IngestOutcome,
    /// Bytes under `blocks/` per span.
    pub bytes_per_span: f64,
    pub query_outcomes: &'a [QueryOutcome],
    pub ui_times: &'a [PageTimes],
    /// The server-side peak RSS estimate, and the server's `memory_limit`.
    pub peak_server_rss_bytes: u64,
    pub memory_limit_bytes: u64,
}

/// Each figure with its target and verdict.
pub(crate) fn held_against_targets(figures: &Figures) -> Vec<Target> {
    let at_scale = figures.n_spans >= TARGET_SCALE_SPANS;
    let scale_note = (!at_scale).then(|| {
        format!(
            "targets are set at {} spans",
            thousands(TARGET_SCALE_SPANS as u64)
        )
    });
    // Every query but the journey reads the roll-ups, which the counts fill.
    let query_scale_note = (!at_scale || figures.count_days < TARGET_COUNT_DAYS).then(|| {
        format!(
            "targets are set at {} spans and {TARGET_COUNT_DAYS} days of counts",
            thousands(TARGET_SCALE_SPANS as u64)
        )
    });
    let latency_of = |kind: QueryKind| -> LatencySummary {
        figures
            .query_outcomes
            .iter()
            .find(|outcome| outcome.kind == kind)
            .map(|outcome| outcome.latency)
            .unwrap_or_default()
    };
    let target_spans_per_second = match figures.protocol {
        Protocol::Native => TARGET_SPANS_PER_SECOND,
        Protocol::Otlp => TARGET_OTLP_SPANS_PER_SECOND,
    };
    let mut targets = vec![
        Target {
            name: format!("ingest, durable ({:?})", figures.protocol).to_lowercase(),
            measured: format!("{:.0} spans/s", figures.ingest.records_per_second()),
            goal: format!(">= {target_spans_per_second:.0} spans/s"),
            met: figures.ingest.records_per_second() >= target_spans_per_second
                && figures.ingest.n_batches_failed == 0,
            note: (figures.ingest.n_batches_failed > 0)
                .then(|| format!("{} batches failed", figures.ingest.n_batches_failed)),
        },
        Target {
            name: "size at rest".into(),
            measured: format!("{:.1} B/span", figures.bytes_per_span),
            goal: format!("<= {TARGET_BYTES_PER_SPAN:.0} B/span"),
            met: figures.bytes_per_span <= TARGET_BYTES_PER_SPAN,
            note: scale_note.clone(),
        },
        Target {
            name: "server-side peak RSS".into(),
            measured: format!(
                "{:.2} GiB",
                figures.peak_server_rss_bytes as f64 / (1u64 << 30) as f64
            ),
            goal: format!(
                "<= memory_limit {:.2} GiB",
                figures.memory_limit_bytes as f64 / (1u64 << 30) as f64
            ),
            met: figures.peak_server_rss_bytes <= figures.memory_limit_bytes,
            note: Some("RSS less the request bodies the client holds, sampled every 100 ms".into()),
        },
    ];
    for outcome in figures.query_outcomes {
        let target = outcome.kind.p99_target();
        let mut notes: Vec<String> = query_scale_note.iter().cloned().collect();
        if outcome.n_failed > 0 {
            notes.push(format!(
                "{} failed, {} wrong hop or trace counts",
                outcome.n_failed, outcome.n_mismatched
            ));
        }
        targets.push(Target {
            name: format!("{} p99", outcome.kind.route()),
            measured: millis(latency_of(outcome.kind).p99),
            goal: format!("<= {}", millis(target)),
            met: outcome.latency.p99 <= target && outcome.n_failed == 0,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        });
    }

    for page in figures.ui_times {
        let target = Duration::from_millis(TARGET_UI_MILLIS);
        targets.push(Target {
            name: format!("UI page {} time to interactive p99", page.page),
            measured: millis(page.times.p99),
            goal: format!("<= {}", millis(target)),
            met: page.times.p99 <= target,
            note: scale_note.clone(),
        });
    }
    targets
}
