//! The ingest phases: N connections each send the next batch, wait for the answer, and repeat
//! until the feed is empty. Batches are spans (native JSON or OTLP, gzip'd by default) or, in
//! the counts phase, gzip'd JSON arrays of counts. Only records the server acknowledged count (2xx: `accepted` of
//! the native answer, or the batch less OTLP's `partial_success.rejected_spans`); a 2xx means
//! the batch is durable in the WAL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde::Deserialize;

use crate::feed::{BodyEncoding, Feed, Protocol};
use crate::http::{ClientKind, Connection};
use crate::report::{self, LatencySummary};

/// What a run of senders uploads, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upload {
    Spans(Protocol, BodyEncoding),
    /// Gzip'd native JSON arrays of counts, for `POST /api/v1/counts`.
    Counts,
}

impl Upload {
    fn path(self) -> &'static str {
        match self {
            Upload::Spans(protocol, _) => protocol.path(),
            Upload::Counts => "/api/v1/counts",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Upload::Spans(protocol, _) => protocol.content_type(),
            Upload::Counts => "application/json",
        }
    }

    fn content_encoding(self) -> Option<&'static str> {
        match self {
            Upload::Spans(_, encoding) => encoding.content_encoding(),
            Upload::Counts => Some("gzip"),
        }
    }

    /// What a record is called in progress lines.
    fn records(self) -> &'static str {
        match self {
            Upload::Spans(..) => "spans",
            Upload::Counts => "counts",
        }
    }
}

/// The server's answer to `POST /api/v1/spans` and `POST /api/v1/counts`.
#[derive(Deserialize)]
struct IngestAnswer {
    accepted: u64,
    rejected_count: u64,
    #[serde(default)]
    rejected: Vec<RejectionAnswer>,
}

#[derive(Deserialize)]
struct RejectionAnswer {
    field: String,
    reason: String,
}

/// What one connection saw.
#[derive(Default)]
struct SenderOutcome {
    latencies: Vec<Duration>,
    n_batches_ok: u64,
    n_batches_failed: u64,
    n_records_sent: u64,
    n_rejected: u64,
    first_problem: Option<String>,
}

/// What the ingest phase measured.
pub(crate) struct IngestOutcome {
    pub elapsed: Duration,
    /// Spans, or counts in the counts phase.
    pub n_records_acked: u64,
    pub n_records_sent: u64,
    pub n_batches_ok: u64,
    pub n_batches_failed: u64,
    pub n_rejected: u64,
    pub latency: LatencySummary,
    pub first_problem: Option<String>,
}

impl IngestOutcome {
    pub(crate) fn records_per_second(&self) -> f64 {
        self.n_records_acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn batches_per_second(&self) -> f64 {
        self.n_batches_ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `(accepted, rejected, first rejection)` of a 2xx answer to a batch of `n_records`.
fn read_answer(
    upload: Upload,
    body: &[u8],
    n_records: u64,
) -> Result<(u64, u64, Option<String>), String> {
    match upload {
        Upload::Spans(Protocol::Native, _) | Upload::Counts => {
            let parsed = serde_json::from_slice::<IngestAnswer>(body)
                .map_err(|error| format!("unreadable ingest answer: {error}"))?;
            let first = parsed.rejected.first().map(|rejection| {
                format!(
                    "rejected {}: {}: {}",
                    upload.records(),
                    rejection.field,
                    rejection.reason
                )
            });
            Ok((parsed.accepted, parsed.rejected_count, first))
        }
        Upload::Spans(Protocol::Otlp, _) => {
            let parsed = ExportTraceServiceResponse::decode(body)
                .map_err(|error| format!("unreadable OTLP answer: {error}"))?;
            let (rejected, first) = match parsed.partial_success {
                None => (0, None),
                Some(partial) => (
                    u64::try_from(partial.rejected_spans).unwrap_or_default(),
                    Some(format!("rejected spans: {}", partial.error_message)),
                ),
            };
            Ok((n_records.saturating_sub(rejected), rejected, first))
        }
    }
}

async fn sender(
    kind: ClientKind,
    upload: Upload,
    address: SocketAddr,
    feed: Arc<Feed>,
    acked: Arc<AtomicU64>,
) -> SenderOutcome {
    let mut outcome = SenderOutcome::default();
    let mut connection = match Connection::open(kind, address).await {
        Ok(connection) => Some(connection),
        Err(error) => {
            outcome.first_problem = Some(format!("{error:#}"));
            None
        }
    };
    while let Some(batch) = feed.next().await {
        outcome.n_records_sent += batch.n_records as u64;
        let Some(open) = connection.as_mut() else {
            outcome.n_batches_failed += 1;
            feed.release(&batch);
            continue;
        };
        let started = Instant::now();
        let result = open
            .post(
                upload.path(),
                upload.content_type(),
                upload.content_encoding(),
                batch.body.clone(),
            )
            .await;
        let latency = started.elapsed();
        feed.release(&batch);
        match result {
            Ok(answer) if answer.is_success() => {
                match read_answer(upload, &answer.body, batch.n_records as u64) {
                    Ok((accepted, rejected, first_rejection)) => {
                        outcome.latencies.push(latency);
                        outcome.n_batches_ok += 1;
                        outcome.n_rejected += rejected;
                        acked.fetch_add(accepted, Ordering::Relaxed);
                        if outcome.first_problem.is_none() {
                            outcome.first_problem = first_rejection;
                        }
                    }
                    Err(problem) => {
                        outcome.n_batches_failed += 1;
                        outcome.first_problem.get_or_insert(problem);
                    }
                }
            }
            Ok(answer) => {
                outcome.n_batches_failed += 1;
                outcome.first_problem.get_or_insert_with(|| {
                    format!(
                        "HTTP {}: {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
                    )
                });
            }
            Err(error) => {
                outcome.n_batches_failed += 1;
                outcome
                    .first_problem
                    .get_or_insert_with(|| format!("{error:#}"));
                // One reconnect attempt; if it fails, the remaining batches count as failed.
                connection = Connection::open(kind, address).await.ok();
            }
        }
    }
    outcome
}

/// Sends every batch of `feed` over `n_connections` connections; prints progress every 10 s,
/// followed by what `status` says (memory, the store's head).
pub(crate) async fn run(
    kind: ClientKind,
    upload: Upload,
    address: SocketAddr,
    feed: Arc<Feed>,
    n_connections: usize,
    n_records_total: u64,
    status: impl Fn() -> String + Send + 'static,
) -> IngestOutcome {
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress_acked = acked.clone();
    let progress = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tick.tick().await;
            let n_acked = progress_acked.load(Ordering::Relaxed);
            let records = upload.records();
            eprintln!(
                "  … {} of {} {records} acknowledged after {} ({:.0} {records}/s so far); {}",
                report::thousands(n_acked),
                report::thousands(n_records_total),
                report::seconds(started.elapsed()),
                n_acked as f64 / started.elapsed().as_secs_f64(),
                status()
            );
        }
    });
    let senders: Vec<_> = (0..n_connections)
        .map(|_| tokio::spawn(sender(kind, upload, address, feed.clone(), acked.clone())))
        .collect();
    let mut outcomes = Vec::with_capacity(n_connections);
    for handle in senders {
        match handle.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => outcomes.push(SenderOutcome {
                first_problem: Some(format!("sender task failed: {error}")),
                ..Default::default()
            }),
        }
    }
    let elapsed = started.elapsed();
    progress.abort();
    let mut latencies = Vec::new();
    let mut total = IngestOutcome {
        elapsed,
        n_records_acked: acked.load(Ordering::Relaxed),
        n_records_sent: 0,
        n_batches_ok: 0,
        n_batches_failed: 0,
        n_rejected: 0,
        latency: LatencySummary::default(),
        first_problem: None,
    };
    for outcome in outcomes {
        latencies.extend(outcome.latencies);
        total.n_records_sent += outcome.n_records_sent;
        total.n_batches_ok += outcome.n_batches_ok;
        total.n_batches_failed += outcome.n_batches_failed;
        total.n_rejected += outcome.n_rejected;
        if total.first_problem.is_none() {
            total.first_problem = outcome.first_problem;
        }
    }
    total.latency = LatencySummary::of(latencies);
    total
}

/// The server's answer to `POST /api/v1/admin/flush`.
#[derive(Deserialize)]
pub(crate) struct FlushAnswer {
    pub blocks_written: u64,
    pub spans_written: u64,
}

/// `POST /api/v1/admin/flush` on a connection of its own: everything in the head to blocks.
pub(crate) async fn flush(kind: ClientKind, address: SocketAddr) -> anyhow::Result<FlushAnswer> {
    let mut connection = Connection::open(kind, address).await?;
    let answer = connection
        .post_json("/api/v1/admin/flush", bytes::Bytes::new())
        .await?;
    if !answer.is_success() {
        anyhow::bail!(
            "POST /api/v1/admin/flush answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    serde_json::from_slice(&answer.body)
        .map_err(|error| anyhow::anyhow!("reading the flush answer: {error}"))
}
