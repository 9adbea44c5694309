//! The counts phase: the unsampled per-minute counts (`POST /api/v1/counts`) of a fleet of 100
//! services and 50 event types on 16 streams over the days before the run (7 by default, the
//! store's retention), built into gzip'd JSON arrays before the clock starts, oldest minutes
//! first, sent like the spans, then flushed to blocks, so that the queries run over a week of
//! roll-ups.
//!
//! The fleet: event type `t` (`account.created` … `warehouse.expired`) goes on stream
//! `fleet-stream-{t·16/50}` (even streams on kafka, odd on nats), is produced by services `2t`
//! and `2t+1` (60% and 40% of its events) and consumed, every event, by services `2t+2`,
//! `2t+27`, `2t+52` and `2t+77` (mod 100). So every service produces one type and consumes
//! two, never its own, and each type has 2 + 4 = 6 roll-up keys: 300 keys, one count (one
//! roll-up cell) per key and minute. A type's rate is log-uniform in 20–2,000 events a
//! minute, with a daily swing of ±30% (its own phase) and Poisson-sized noise.

use crate::feed::SDK_GZIP_LEVEL;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::disk;
use crate::feed::{Batch, Feed};
use crate::http::ClientKind;
use crate::ingest::{self, IngestOutcome, Upload};
use crate::report::{bytes, seconds, thousands};
use crate::system::{self, CpuSnapshot, CpuSplit};

pub(crate) const FLEET_SERVICES: usize = 100;
pub(crate) const FLEET_EVENT_TYPES: usize = 50;
pub(crate) const FLEET_STREAMS: usize = 16;
/// Counts per `POST /api/v1/counts`: about 1.4 MB of JSON before gzip, well within the
/// server's 16 MiB `max_body_bytes` (which holds for the decompressed body too).
pub(crate) const COUNTS_PER_REQUEST: usize = 10_000;
/// The oldest minute sent lies this far inside the server's accepted window (counts older
/// than 7 days are refused), so building and sending cannot push it out.
const MARGIN_SECONDS: i64 = 120;

const DOMAINS: [&str; 10] = [
    "account",
    "basket",
    "catalog",
    "coupon",
    "delivery",
    "invoice",
    "ledger",
    "review",
    "session",
    "warehouse",
];
const VERBS: [&str; 5] = ["created", "updated", "approved", "rejected", "expired"];
const ROLES: [&str; 10] = [
    "api",
    "worker",
    "sync",
    "gateway",
    "indexer",
    "auditor",
    "notifier",
    "scheduler",
    "exporter",
    "reporter",
];
/// Offsets (mod 100) from `2t` of the four consumers of type `t`: never 0 or 1 (a type's
/// producers), two even and two odd so that every service consumes exactly two types.
const CONSUMER_OFFSETS: [usize; 4] = [2, 27, 52, 77];
/// Shares of a type's events sent by its two producers.
const PRODUCER_SHARES: [f64; 2] = [0.6, 0.4];

pub(crate) fn fleet_service(service_idx: usize) -> String {
    format!(
        "{}-{}",
        DOMAINS[service_idx % DOMAINS.len()],
        ROLES[service_idx / DOMAINS.len()]
    )
}

pub(crate) fn fleet_event_type(type_idx: usize) -> String {
    format!(
        "{}.{}",
        DOMAINS[type_idx / VERBS.len()],
        VERBS[type_idx % VERBS.len()]
    )
}

fn fleet_stream(type_idx: usize) -> (String, &'static str) {
    let stream_idx = type_idx * FLEET_STREAMS / FLEET_EVENT_TYPES;
    let broker = if stream_idx.is_multiple_of(2) {
        "kafka"
    } else {
        "nats"
    };
    (format!("fleet-stream-{stream_idx:02}"), broker)
}

/// One roll-up key of the fleet: who counts what.
#[derive(Debug, Clone)]
struct FleetKey {
    type_idx: usize,
    service_idx: usize,
    produced: bool,
    /// Of the type's events, the share this key counts.
    share: f64,
}

impl FleetKey {
    /// The constant part of the key's count records as JSON, up to `"minute":`.
    fn json_prefix(&self) -> String {
        let (stream, broker) = fleet_stream(self.type_idx);
        format!(
            r#"{{"service":"{}","event_type":"{}","stream":"{stream}","broker":"{broker}","action":"{}","minute":"#,
            fleet_service(self.service_idx),
            fleet_event_type(self.type_idx),
            if self.produced {
                "produced"
            } else {
                "consumed"
            },
        )
    }
}

fn fleet_keys() -> Vec<FleetKey> {
    let mut keys = Vec::with_capacity(FLEET_EVENT_TYPES * 6);
    for type_idx in 0..FLEET_EVENT_TYPES {
        for (producer_n, share) in PRODUCER_SHARES.iter().enumerate() {
            keys.push(FleetKey {
                type_idx,
                service_idx: (2 * type_idx + producer_n) % FLEET_SERVICES,
                produced: true,
                share: *share,
            });
        }
        for offset in CONSUMER_OFFSETS {
            keys.push(FleetKey {
                type_idx,
                service_idx: (2 * type_idx + offset) % FLEET_SERVICES,
                produced: false,
                share: 1.0,
            });
        }
    }
    keys
}

/// A type's events per minute on average, and the phase of its daily swing.
#[derive(Debug, Clone, Copy)]
struct Rate {
    per_minute: f64,
    phase: f64,
}

fn rates(seed: u64) -> Vec<Rate> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xc0a7_5eed);
    (0..FLEET_EVENT_TYPES)
        .map(|_| Rate {
            per_minute: 20.0 * 100f64.powf(rng.random::<f64>()),
            phase: rng.random::<f64>() * std::f64::consts::TAU,
        })
        .collect()
}

/// Everything the counts phase sends, built.
pub(crate) struct PreparedCounts {
    pub batches: Vec<Batch>,
    pub n_counts: u64,
    pub n_keys: usize,
    pub n_minutes: usize,
    pub first_minute: i64,
    pub last_minute: i64,
    pub json_bytes: u64,
    pub gzip_bytes: u64,
}

/// Counts for every fleet key and every whole minute of the `days` days before
/// `now_unix_seconds` (less [`MARGIN_SECONDS`] at the old end; the minute in progress is left
/// out), in requests of [`COUNTS_PER_REQUEST`], oldest minutes first. Built on every core.
pub(crate) fn prepare(
    days: u32,
    seed: u64,
    now_unix_seconds: i64,
) -> anyhow::Result<PreparedCounts> {
    let keys = fleet_keys();
    let prefixes: Vec<String> = keys.iter().map(FleetKey::json_prefix).collect();
    let rates = rates(seed);
    let oldest_accepted = now_unix_seconds - i64::from(days) * 86_400 + MARGIN_SECONDS;
    let first_minute = oldest_accepted.div_euclid(60) * 60 + 60;
    let last_minute = now_unix_seconds.div_euclid(60) * 60 - 60;
    let n_minutes = usize::try_from((last_minute - first_minute) / 60 + 1).unwrap_or(0);
    let n_counts = n_minutes * keys.len();
    let n_requests = n_counts.div_ceil(COUNTS_PER_REQUEST);
    let n_threads = std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1);
    let chunk_len = n_requests.div_ceil(n_threads).max(1);
    let request_idxs: Vec<usize> = (0..n_requests).collect();
    let chunks: Vec<Vec<(Bytes, usize, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = request_idxs
            .chunks(chunk_len)
            .enumerate()
            .map(|(thread_idx, chunk)| {
                let (keys, prefixes, rates) = (&keys, &prefixes, &rates);
                std::thread::Builder::new()
                    .name(format!("bench-counts-{thread_idx}"))
                    .spawn_scoped(scope, move || {
                        chunk
                            .iter()
                            .map(|&request_idx| {
                                let first = request_idx * COUNTS_PER_REQUEST;
                                let end = (first + COUNTS_PER_REQUEST).min(n_counts);
                                build_request(
                                    keys,
                                    prefixes,
                                    rates,
                                    first_minute,
                                    first..end,
                                    seed ^ (request_idx as u64).wrapping_mul(0x9e37_79b9),
                                )
                            })
                            .collect::<std::io::Result<Vec<_>>>()
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a counts builder thread panicked"))?
                    .context("gzip'ing a counts body"),
                Err(error) => {
                    Err(anyhow::Error::from(error).context("starting a counts builder thread"))
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut prepared = PreparedCounts {
        batches: Vec::with_capacity(n_requests),
        n_counts: n_counts as u64,
        n_keys: keys.len(),
        n_minutes,
        first_minute,
        last_minute,
        json_bytes: 0,
        gzip_bytes: 0,
    };
    for (body, n_records, json_bytes) in chunks.into_iter().flatten() {
        prepared.json_bytes += json_bytes;
        prepared.gzip_bytes += body.len() as u64;
        prepared.batches.push(Batch { body, n_records });
    }
    Ok(prepared)
}

/// The counts `records` (indexes into minute × key, minute-major) as one gzip'd JSON array:
/// `(body, counts, bytes before gzip)`.
fn build_request(
    keys: &[FleetKey],
    prefixes: &[String],
    rates: &[Rate],
    first_minute: i64,
    records: std::ops::Range<usize>,
    seed: u64,
) -> std::io::Result<(Bytes, usize, u64)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut json = Vec::with_capacity(records.len() * 160 + 2);
    json.push(b'[');
    let n_records = records.len();
    for record_idx in records {
        let key_idx = record_idx % keys.len();
        let key = &keys[key_idx];
        let minute = first_minute + (record_idx / keys.len()) as i64 * 60;
        let rate = rates[key.type_idx];
        let day_fraction = minute.rem_euclid(86_400) as f64 / 86_400.0;
        let mean = rate.per_minute
            * (1.0 + 0.3 * (std::f64::consts::TAU * day_fraction + rate.phase).sin())
            * key.share;
        // About normal with the spread of a Poisson count of that mean.
        let noise = (rng.random::<f64>() + rng.random::<f64>() + rng.random::<f64>() - 1.5) * 2.0;
        let count = (mean + noise * mean.sqrt()).round().max(1.0) as u64;
        if json.len() > 1 {
            json.push(b',');
        }
        json.extend_from_slice(prefixes[key_idx].as_bytes());
        write!(json, "{minute},\"count\":{count}}}")?;
    }
    json.push(b']');
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(json.len() / 6),
        Compression::new(SDK_GZIP_LEVEL),
    );
    encoder.write_all(&json)?;
    let mut body = encoder.finish()?;
    // Without spare capacity, as the span bodies (`feed.rs`): bodies are counted by length.
    body.shrink_to_fit();
    Ok((Bytes::from(body), n_records, json.len() as u64))
}

/// What the counts phase measured.
pub(crate) struct CountsOutcome {
    pub n_counts: u64,
    pub n_keys: usize,
    pub n_minutes: usize,
    pub ingest: IngestOutcome,
    pub cells_before: u64,
    pub cells_after: u64,
    pub flush_elapsed: Duration,
    /// Roll-up file bytes (`rollup.json.zst`) the flush of the counts added under `blocks/`.
    pub rollup_bytes_added: u64,
    pub blocks_written: u64,
}

/// Builds the fleet's counts for `days` days, sends them over `n_connections` connections,
/// flushes them to blocks, and prints what it took. `rollup_cells` reads the store's roll-up
/// cell count (`StoreStats::rollup_cells`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    client_runtime: &tokio::runtime::Runtime,
    kind: ClientKind,
    address: SocketAddr,
    n_connections: usize,
    days: u32,
    seed: u64,
    data_dir: &Path,
    rollup_cells: impl Fn() -> u64 + Clone + Send + 'static,
) -> anyhow::Result<CountsOutcome> {
    let build_started = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default();
    let prepared = prepare(days, seed, now)?;
    println!(
        "fleet: {FLEET_SERVICES} services, {FLEET_EVENT_TYPES} event types on {FLEET_STREAMS} streams (kafka and nats); each type produced by 2 services and consumed by 4: {} roll-up keys",
        prepared.n_keys
    );
    println!(
        "minutes: {} ({} to {}, {:.2} days) × {} keys = {} counts, one roll-up cell each",
        thousands(prepared.n_minutes as u64),
        muninn_model::format_rfc3339_nanos(prepared.first_minute * 1_000_000_000),
        muninn_model::format_rfc3339_nanos(prepared.last_minute * 1_000_000_000),
        prepared.n_minutes as f64 / 1440.0,
        prepared.n_keys,
        thousands(prepared.n_counts)
    );
    println!(
        "bodies: {} requests of up to {} counts, {} of JSON gzip'd to {} (built in {}, not timed)",
        thousands(prepared.batches.len() as u64),
        thousands(COUNTS_PER_REQUEST as u64),
        bytes(prepared.json_bytes),
        bytes(prepared.gzip_bytes),
        seconds(build_started.elapsed())
    );
    let cells_before = rollup_cells();
    let blocks_before = disk::dir_sizes(&data_dir.join("blocks"))?;
    let feed = Arc::new(Feed::of_batches(prepared.batches));
    let cpu_before = CpuSnapshot::take();
    let status = {
        let rollup_cells = rollup_cells.clone();
        move || {
            format!(
                "RSS {}, roll-up cells {}",
                bytes(system::rss_bytes()),
                thousands(rollup_cells())
            )
        }
    };
    let outcome = client_runtime.block_on(ingest::run(
        kind,
        Upload::Counts,
        address,
        feed,
        n_connections,
        prepared.n_counts,
        status,
    ));
    let cpu = CpuSplit::between(&cpu_before, &CpuSnapshot::take(), 0);
    let cells_after = rollup_cells();
    println!(
        "counts ingest: {} counts acknowledged of {} sent in {} ({:.0} counts/s, {:.1} requests/s); requests failed: {}; counts rejected: {}",
        thousands(outcome.n_records_acked),
        thousands(outcome.n_records_sent),
        seconds(outcome.elapsed),
        outcome.records_per_second(),
        outcome.batches_per_second(),
        outcome.n_batches_failed,
        outcome.n_rejected
    );
    if let Some(problem) = &outcome.first_problem {
        println!("first counts problem: {problem}");
    }
    println!("counts request latency: {}", outcome.latency.describe());
    println!("counts CPU: {}", cpu.describe(outcome.elapsed));
    println!(
        "roll-up cells: {} before, {} after the counts (+{}); RSS {}",
        thousands(cells_before),
        thousands(cells_after),
        thousands(cells_after.saturating_sub(cells_before)),
        bytes(system::rss_bytes())
    );
    let flush_started = Instant::now();
    let flushed = client_runtime.block_on(ingest::flush(kind, address))?;
    let flush_elapsed = flush_started.elapsed();
    let blocks_after = disk::dir_sizes(&data_dir.join("blocks"))?;
    let rollup_bytes_added = blocks_after.rollup.saturating_sub(blocks_before.rollup);
    println!(
        "counts flush: {} ({} blocks, one per hour; roll-up files +{}, {:.0} B a cell); RSS after {}",
        seconds(flush_elapsed),
        flushed.blocks_written,
        bytes(rollup_bytes_added),
        rollup_bytes_added as f64 / cells_after.saturating_sub(cells_before).max(1) as f64,
        bytes(system::rss_bytes())
    );
    Ok(CountsOutcome {
        n_counts: prepared.n_counts,
        n_keys: prepared.n_keys,
        n_minutes: prepared.n_minutes,
        ingest: outcome,
        cells_before,
        cells_after,
        flush_elapsed,
        rollup_bytes_added,
        blocks_written: flushed.blocks_written,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Read;

    use super::*;

    #[test]
    fn every_service_produces_one_type_and_consumes_two_never_its_own() {
        let keys = fleet_keys();
        assert_eq!(keys.len(), 300);
        let mut produced: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let mut consumed: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for key in &keys {
            let side = if key.produced {
                &mut produced
            } else {
                &mut consumed
            };
            side.entry(key.service_idx)
                .or_default()
                .insert(key.type_idx);
        }
        assert_eq!(produced.len(), FLEET_SERVICES);
        assert_eq!(consumed.len(), FLEET_SERVICES);
        for service_idx in 0..FLEET_SERVICES {
            assert_eq!(produced[&service_idx].len(), 1);
            assert_eq!(consumed[&service_idx].len(), 2);
            assert!(produced[&service_idx].is_disjoint(&consumed[&service_idx]));
        }
        let names: BTreeSet<String> = (0..FLEET_SERVICES).map(fleet_service).collect();
        assert_eq!(names.len(), FLEET_SERVICES);
        let streams: BTreeSet<String> = (0..FLEET_EVENT_TYPES)
            .map(|type_idx| fleet_stream(type_idx).0)
            .collect();
        assert_eq!(streams.len(), FLEET_STREAMS);
    }

    #[derive(serde::Deserialize)]
    struct WireCount {
        service: String,
        action: String,
        minute: i64,
        count: u64,
    }

    #[test]
    fn requests_cover_every_key_and_minute_oldest_first() {
        let now = 1_795_000_000;
        let prepared = prepare(1, 3, now).unwrap();
        assert_eq!(prepared.n_keys, 300);
        assert!(prepared.first_minute >= now - 86_400 + MARGIN_SECONDS);
        assert!(prepared.last_minute < now - 59);
        // 1,440 minutes a day, less the 2-minute margin, the minute cut by it and the minute in
        // progress.
        assert_eq!(prepared.n_minutes, 1_437);
        assert_eq!(prepared.n_counts, 300 * 1_437);
        let mut previous_minute = 0;
        let mut n_counts = 0;
        let mut services = BTreeSet::new();
        for batch in &prepared.batches {
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(&batch.body[..])
                .read_to_end(&mut json)
                .unwrap();
            let counts: Vec<WireCount> = serde_json::from_slice(&json).unwrap();
            assert_eq!(counts.len(), batch.n_records);
            for count in counts {
                assert!(count.minute >= previous_minute && count.minute % 60 == 0);
                assert!(count.count >= 1);
                assert!(count.action == "produced" || count.action == "consumed");
                previous_minute = count.minute;
                services.insert(count.service);
                n_counts += 1;
            }
        }
        assert_eq!(n_counts, prepared.n_counts);
        assert_eq!(services.len(), FLEET_SERVICES);
        assert_eq!(previous_minute, prepared.last_minute);
    }
}
