//! The query phase, with every span stored: for each kind of question, `--queries` requests one
//! after another on one connection, timed from sending to the last byte of the answer. Event
//! journeys are checked: the answer must hold exactly the hops the event was generated with.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::http::{ClientKind, Connection};
use crate::report::LatencySummary;
use crate::workload::{EVENT_TYPES, Sample};

/// The kinds of question asked, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryKind {
    Lineage,
    Producers,
    Throughput,
    Catalog,
    Journey,
}

impl QueryKind {
    pub(crate) const ALL: [QueryKind; 5] = [
        QueryKind::Lineage,
        QueryKind::Producers,
        QueryKind::Throughput,
        QueryKind::Catalog,
        QueryKind::Journey,
    ];

    /// The route as printed.
    pub(crate) fn route(self) -> &'static str {
        match self {
            QueryKind::Lineage => "GET /api/v1/lineage",
            QueryKind::Producers => "GET /api/v1/event-types/{t}/producers",
            QueryKind::Throughput => "GET /api/v1/throughput?from=-1h&step=60s&event_type={t}",
            QueryKind::Catalog => "GET /api/v1/event-types",
            QueryKind::Journey => "GET /api/v1/events/{id}",
        }
    }

    /// The p99 target in milliseconds.
    pub(crate) fn p99_target(self) -> Duration {
        match self {
            QueryKind::Journey => Duration::from_millis(50),
            _ => Duration::from_millis(10),
        }
    }
}

/// What one kind of question measured.
pub(crate) struct QueryOutcome {
    pub kind: QueryKind,
    pub latency: LatencySummary,
    pub n_failed: usize,
    /// Journeys whose hop count differed from the generated one.
    pub n_mismatched: usize,
    pub problems: Vec<String>,
    pub mean_answer_bytes: u64,
}

#[derive(Deserialize)]
struct JourneyAnswer {
    hops: Vec<IgnoredAny>,
    traces: Vec<IgnoredAny>,
    unreadable_blocks: Vec<String>,
}

/// At most this many problems are kept per kind, for printing.
const MAX_PROBLEMS: usize = 5;

/// Runs every kind of question `n_queries` times.
pub(crate) async fn run(
    kind: ClientKind,
    address: SocketAddr,
    n_queries: usize,
    samples: &[Sample],
    seed: u64,
) -> anyhow::Result<Vec<QueryOutcome>> {
    let mut connection = Connection::open(kind, address).await?;
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x51ed_2701);
    let mut outcomes = Vec::new();
    for query_kind in QueryKind::ALL {
        let mut latencies = Vec::with_capacity(n_queries);
        let mut outcome = QueryOutcome {
            kind: query_kind,
            latency: LatencySummary::default(),
            n_failed: 0,
            n_mismatched: 0,
            problems: Vec::new(),
            mean_answer_bytes: 0,
        };
        let mut answer_bytes = 0u64;
        for _ in 0..n_queries {
            let event_type = EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())].name;
            let sample =
                (!samples.is_empty()).then(|| &samples[rng.random_range(0..samples.len())]);
            let path = match query_kind {
                QueryKind::Lineage => "/api/v1/lineage".to_string(),
                QueryKind::Producers => format!("/api/v1/event-types/{event_type}/producers"),
                QueryKind::Throughput => {
                    format!("/api/v1/throughput?from=-1h&step=60s&event_type={event_type}")
                }
                QueryKind::Catalog => "/api/v1/event-types".to_string(),
                QueryKind::Journey => match sample {
                    Some(sample) => format!("/api/v1/events/{}", sample.event_id),
                    None => anyhow::bail!("no event was sampled for the journey queries"),
                },
            };
            let started = Instant::now();
            let result = connection.get(&path).await;
            let latency = started.elapsed();
            let problem = match result {
                Err(error) => {
                    connection = Connection::open(kind, address).await?;
                    Some(format!("{path}: {error:#}"))
                }
                Ok(answer) if !answer.is_success() => Some(format!(
                    "{path}: HTTP {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
                )),
                Ok(answer) => {
                    latencies.push(latency);
                    answer_bytes += answer.body.len() as u64;
                    match (query_kind, sample) {
                        (QueryKind::Journey, Some(sample)) => {
                            match serde_json::from_slice::<JourneyAnswer>(&answer.body) {
                                Ok(journey)
                                    if journey.hops.len() == sample.n_spans
                                        && journey.traces.len() == 1
                                        && journey.unreadable_blocks.is_empty() =>
                                {
                                    None
                                }
                                Ok(journey) => {
                                    outcome.n_mismatched += 1;
                                    Some(format!(
                                        "{path}: {} hops in {} traces (unreadable blocks {:?}), expected {} hops in 1 trace",
                                        journey.hops.len(),
                                        journey.traces.len(),
                                        journey.unreadable_blocks,
                                        sample.n_spans
                                    ))
                                }
                                Err(error) => Some(format!("{path}: unreadable journey: {error}")),
                            }
                        }
                        _ => None,
                    }
                }
            };
            if let Some(problem) = problem {
                outcome.n_failed += 1;
                if outcome.problems.len() < MAX_PROBLEMS {
                    outcome.problems.push(problem);
                }
            }
        }
        let n_answered = latencies.len().max(1) as u64;
        outcome.latency = LatencySummary::of(latencies);
        outcome.mean_answer_bytes = answer_bytes / n_answered;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}
