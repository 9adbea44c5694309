//! The query phase, with every span stored (and the fleet's counts, unless skipped): for each
//! kind of question, `--queries` requests one after another on one connection, timed from
//! sending to the last byte of the answer. Event journeys are checked (the answer must hold
//! exactly the hops and traces the event was generated with), and so are the triage answers: a comparison
//! must name event types, a type's schemas must each have the producer that sent it first, and
//! an impact must name producers and consumers.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum QueryKind {
    Lineage,
    Producers,
    Throughput,
    Catalog,
    Journey,
    /// A journey's producer trace, as a tree (`GET /api/v1/traces/{id}`).
    Trace,
    /// The last 15 minutes against the same minutes a day earlier (the defaults).
    Compare,
    /// A span workload type's schemas, with the producer that sent each first.
    Schemas,
    /// Who a change to schema `v2` of a span workload type reaches.
    Impact,
}

impl QueryKind {
    pub(crate) const ALL: [QueryKind; 9] = [
        QueryKind::Lineage,
        QueryKind::Producers,
        QueryKind::Throughput,
        QueryKind::Catalog,
        QueryKind::Journey,
        QueryKind::Trace,
        QueryKind::Compare,
        QueryKind::Schemas,
        QueryKind::Impact,
    ];

    /// The route as printed.
    pub(crate) fn route(self) -> &'static str {
        match self {
            QueryKind::Lineage => "GET /api/v1/lineage",
            QueryKind::Producers => "GET /api/v1/event-types/{t}/producers",
            QueryKind::Throughput => "GET /api/v1/throughput?from=-1h&step=60s&event_type={t}",
            QueryKind::Catalog => "GET /api/v1/event-types",
            QueryKind::Journey => "GET /api/v1/events/{id}",
            QueryKind::Trace => "GET /api/v1/traces/{id}",
            QueryKind::Compare => "GET /api/v1/compare",
            QueryKind::Schemas => "GET /api/v1/event-types/{t}/schemas",
            QueryKind::Impact => "GET /api/v1/event-types/{t}/impact?schema=v2",
        }
    }

    /// The p99 target in milliseconds.
    pub(crate) fn p99_target(self) -> Duration {
        match self {
            QueryKind::Compare => Duration::from_millis(50),
            // Issue 18: event journey and trace by id at 100M spans.
            QueryKind::Journey | QueryKind::Trace => Duration::from_millis(20),
            _ => Duration::from_millis(10),
        }
    }

    /// Whether the server remembers part of the answer per event type, so that the first
    /// request for a type costs more than the next ones (schemas: the first sender of each
    /// schema, read from the spans once). Such kinds print both.
    pub(crate) fn remembers_per_type(self) -> bool {
        self == QueryKind::Schemas
    }
}

/// What one kind of question measured.
pub(crate) struct QueryOutcome {
    pub kind: QueryKind,
    pub latency: LatencySummary,
    pub n_failed: usize,
    /// Journeys whose hop or trace count differed from the generated one.
    pub n_mismatched: usize,
    pub problems: Vec<String>,
    pub mean_answer_bytes: u64,
    /// For kinds that remember per type: the first request of each type, and the others.
    pub first_per_type: LatencySummary,
    pub repeated_types: LatencySummary,
    /// Which request (1-based, in order) was the slowest, to tell a cold start or a
    /// background task (a flush, a retention sweep) from steady cost.
    pub slowest_request: usize,
}

#[derive(Deserialize)]
struct JourneyAnswer {
    hops: Vec<IgnoredAny>,
    traces: Vec<IgnoredAny>,
    unreadable_blocks: Vec<String>,
}

#[derive(Deserialize)]
struct CompareAnswer {
    event_types: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct SchemasAnswer {
    schemas: Vec<SchemaAnswer>,
}

#[derive(Deserialize)]
struct SchemaAnswer {
    schema: String,
    first_sent_by: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ImpactAnswer {
    producers: Vec<IgnoredAny>,
    must_redeploy: Vec<IgnoredAny>,
    read_only: Vec<IgnoredAny>,
}

/// What is wrong with a 2xx answer of a triage kind, if anything.
fn check_triage_answer(kind: QueryKind, body: &[u8]) -> Option<String> {
    fn parsed<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
        serde_json::from_slice(body).map_err(|error| format!("unreadable answer: {error}"))
    }
    let problem = match kind {
        QueryKind::Compare => parsed::<CompareAnswer>(body).and_then(|answer| {
            if answer.event_types.is_empty() {
                Err("no event_types".into())
            } else {
                Ok(())
            }
        }),
        QueryKind::Schemas => parsed::<SchemasAnswer>(body).and_then(|answer| {
            match answer
                .schemas
                .iter()
                .find(|schema| schema.first_sent_by.is_none())
            {
                _ if answer.schemas.is_empty() => Err("no schemas".into()),
                Some(schema) => Err(format!("schema {} has no first_sent_by", schema.schema)),
                None => Ok(()),
            }
        }),
        QueryKind::Impact => parsed::<ImpactAnswer>(body).and_then(|answer| {
            if answer.producers.is_empty()
                || answer.must_redeploy.len() + answer.read_only.len() == 0
            {
                Err("no producers or no consumers".into())
            } else {
                Ok(())
            }
        }),
        _ => Ok(()),
    };
    problem.err()
}

#[derive(Deserialize)]
struct TraceAnswer {
    trace_id: String,
    n_spans: usize,
    unreadable_blocks: Vec<String>,
}

/// What is wrong with a trace answer, if anything: it must be the trace asked for, with the
/// sampled event's producer span at least.
fn check_trace_answer(body: &[u8], trace_id: &str) -> Option<String> {
    match serde_json::from_slice::<TraceAnswer>(body) {
        Err(error) => Some(format!("unreadable trace: {error}")),
        Ok(trace) if trace.trace_id != trace_id => {
            Some(format!("answered trace {} for {trace_id}", trace.trace_id))
        }
        Ok(trace) if trace.n_spans == 0 => Some("a trace without spans".into()),
        Ok(trace) if !trace.unreadable_blocks.is_empty() => {
            Some(format!("unreadable blocks {:?}", trace.unreadable_blocks))
        }
        Ok(_) => None,
    }
}

/// At most this many problems are kept per kind, for printing.
const MAX_PROBLEMS: usize = 5;

/// Runs each of `query_kinds` `n_queries` times, in order.
pub(crate) async fn run(
    kind: ClientKind,
    address: SocketAddr,
    query_kinds: &[QueryKind],
    n_queries: usize,
    samples: &[Sample],
    seed: u64,
) -> anyhow::Result<Vec<QueryOutcome>> {
    let mut connection = Connection::open(kind, address).await?;
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x51ed_2701);
    let mut outcomes = Vec::new();
    for &query_kind in query_kinds {
        let mut latencies = Vec::with_capacity(n_queries);
        let mut outcome = QueryOutcome {
            kind: query_kind,
            latency: LatencySummary::default(),
            n_failed: 0,
            n_mismatched: 0,
            problems: Vec::new(),
            mean_answer_bytes: 0,
            first_per_type: LatencySummary::default(),
            repeated_types: LatencySummary::default(),
            slowest_request: 0,
        };
        let mut slowest = Duration::ZERO;
        let mut answer_bytes = 0u64;
        let mut types_asked = std::collections::HashSet::new();
        let (mut first_per_type, mut repeated_types) = (Vec::new(), Vec::new());
        for request_idx in 0..n_queries {
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
                QueryKind::Trace => match sample {
                    Some(sample) => format!("/api/v1/traces/{}", sample.trace_id),
                    None => anyhow::bail!("no event was sampled for the trace queries"),
                },
                QueryKind::Compare => "/api/v1/compare".to_string(),
                QueryKind::Schemas => format!("/api/v1/event-types/{event_type}/schemas"),
                QueryKind::Impact => format!("/api/v1/event-types/{event_type}/impact?schema=v2"),
            };
            let started = Instant::now();
            let result = connection.get(&path).await;
            let latency = started.elapsed();
            if latency > slowest {
                slowest = latency;
                outcome.slowest_request = request_idx + 1;
            }
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
                    if query_kind.remembers_per_type() {
                        if types_asked.insert(event_type) {
                            first_per_type.push(latency);
                        } else {
                            repeated_types.push(latency);
                        }
                    }
                    answer_bytes += answer.body.len() as u64;
                    match (query_kind, sample) {
                        (QueryKind::Journey, Some(sample)) => {
                            match serde_json::from_slice::<JourneyAnswer>(&answer.body) {
                                Ok(journey)
                                    if journey.hops.len() == sample.n_spans
                                        && journey.traces.len() == sample.n_traces
                                        && journey.unreadable_blocks.is_empty() =>
                                {
                                    None
                                }
                                Ok(journey) => {
                                    outcome.n_mismatched += 1;
                                    Some(format!(
                                        "{path}: {} hops in {} traces (unreadable blocks {:?}), expected {} hops in {} traces",
                                        journey.hops.len(),
                                        journey.traces.len(),
                                        journey.unreadable_blocks,
                                        sample.n_spans,
                                        sample.n_traces
                                    ))
                                }
                                Err(error) => Some(format!("{path}: unreadable journey: {error}")),
                            }
                        }
                        (QueryKind::Trace, Some(sample)) => {
                            check_trace_answer(&answer.body, &sample.trace_id)
                                .map(|problem| format!("{path}: {problem}"))
                        }
                        (triage_kind, _) => check_triage_answer(triage_kind, &answer.body)
                            .map(|problem| format!("{path}: {problem}")),
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
        outcome.first_per_type = LatencySummary::of(first_per_type);
        outcome.repeated_types = LatencySummary::of(repeated_types);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}
