//! Prepares the batches (native JSON or OTLP protobuf, gzip'd or not) before the clock starts
//! and hands them to the senders: first the pre-built pool, then (when the pool would not fit
//! the memory budget) batches that a background thread patches from templates with fresh ids
//! and compresses, ahead of the senders through a bounded channel. Every span of the run is
//! unique either way, and what the client holds stays bounded whatever `--spans` is: the pool,
//! 32 templates, the channel, and at most [`MAX_SAMPLES`] journey samples.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::workload::{Sample, Workload};
use crate::{native, otlp, system};

/// What the senders post: native JSON to `/api/v1/spans`, or OTLP protobuf to `/v1/traces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    Native,
    Otlp,
}

impl Protocol {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Protocol::Native => "/api/v1/spans",
            Protocol::Otlp => "/v1/traces",
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Protocol::Native => "application/json",
            Protocol::Otlp => "application/x-protobuf",
        }
    }

    /// What the bodies are, as printed.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Protocol::Native => "native JSON",
            Protocol::Otlp => "OTLP protobuf",
        }
    }

    /// Builds one batch in this protocol.
    fn build(
        self,
        workload: Workload,
        rng: &mut SmallRng,
        n_spans: usize,
        first_offset: i64,
        now: i64,
    ) -> Built {
        match self {
            Protocol::Native => {
                let built = native::build_batch(workload, rng, n_spans, first_offset, now);
                Built {
                    template: Template::Native(built.template),
                    sample: built.sample,
                }
            }
            Protocol::Otlp => {
                let built = otlp::build_batch(workload, rng, n_spans, first_offset, now);
                Built {
                    template: Template::Otlp(built.template),
                    sample: built.sample,
                }
            }
        }
    }
}

/// The gzip level the SDK sends its bodies at (`muninn_sdk`'s `GZIP_LEVEL`).
pub(crate) const SDK_GZIP_LEVEL: u32 = 2;

/// How request bodies are sent: gzip'd as the SDK sends them (`Content-Encoding: gzip`, flate2
/// at the SDK's `GZIP_LEVEL`), or as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BodyEncoding {
    Gzip,
    Identity,
}

impl BodyEncoding {
    /// The `Content-Encoding` header, if any.
    pub(crate) fn content_encoding(self) -> Option<&'static str> {
        match self {
            BodyEncoding::Gzip => Some("gzip"),
            BodyEncoding::Identity => None,
        }
    }

    /// What the bodies are, as printed.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            BodyEncoding::Gzip => "gzip'd",
            BodyEncoding::Identity => "not compressed",
        }
    }

    /// `body` as sent.
    fn encode(self, body: Bytes) -> std::io::Result<Bytes> {
        match self {
            BodyEncoding::Identity => Ok(body),
            BodyEncoding::Gzip => {
                let mut encoder = GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    Compression::new(SDK_GZIP_LEVEL),
                );
                encoder.write_all(&body)?;
                // Without spare capacity: the pool's bodies are counted by their length
                // (`held_bytes`), and the room reserved for compression was about twice that,
                // gigabytes at 100M spans that the server-side memory estimate charged to the
                // server.
                let mut gzipped = encoder.finish()?;
                gzipped.shrink_to_fit();
                Ok(Bytes::from(gzipped))
            }
        }
    }
}

/// A batch of either protocol, with what it takes to make fresh copies of it.
enum Template {
    Native(native::Template),
    Otlp(otlp::Template),
}

impl Template {
    /// The body before encoding.
    fn body(&self) -> &Bytes {
        match self {
            Template::Native(template) => &template.body,
            Template::Otlp(template) => &template.body,
        }
    }

    fn n_spans(&self) -> usize {
        match self {
            Template::Native(template) => template.n_spans,
            Template::Otlp(template) => template.n_spans,
        }
    }

    /// A copy with fresh ids and times, before encoding.
    fn patch(&mut self, rng: &mut SmallRng, now: i64) -> (Vec<u8>, Sample) {
        match self {
            Template::Native(template) => native::patch(template, rng, now),
            Template::Otlp(template) => otlp::patch(template, rng, now),
        }
    }
}

struct Built {
    template: Template,
    sample: Sample,
}

/// A batch of the pool as built on a generator thread.
struct PoolBatch {
    /// Encoded, as sent.
    body: Bytes,
    n_spans: usize,
    /// Bytes before encoding.
    identity_bytes: u64,
    /// For one batch in `sample_every`.
    sample: Option<Sample>,
    /// For the first [`N_TEMPLATES`] batches.
    template: Option<Template>,
}

/// Templates kept for the background generator, taken from the first pool batches.
const N_TEMPLATES: usize = 32;
/// How far the background generator may run ahead of the senders, in batches.
const AHEAD_BATCHES: usize = 32;
/// At most this many events are remembered for the journey queries (and the UI), one per
/// `n_batches / MAX_SAMPLES` batches, spread evenly over the run.
pub(crate) const MAX_SAMPLES: usize = 10_000;

/// One request body.
pub(crate) struct Batch {
    pub body: Bytes,
    /// Spans, or counts in the counts phase.
    pub n_records: usize,
}

/// What the senders draw from.
pub(crate) struct Feed {
    pool: Mutex<VecDeque<Batch>>,
    overflow: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Batch>>,
    /// Bytes of request bodies the client holds (pool, channel, in flight).
    pub held_bytes: Arc<AtomicU64>,
    /// Bytes of request bodies handed to the senders, as sent (encoded).
    pub handed_out_bytes: AtomicU64,
}

impl Feed {
    /// The next batch, or `None` when every batch was handed out.
    pub(crate) async fn next(&self) -> Option<Batch> {
        let pooled = self
            .pool
            .lock()
            .map(|mut pool| pool.pop_front())
            .unwrap_or(None);
        let batch = match pooled {
            Some(batch) => Some(batch),
            None => self.overflow.lock().await.recv().await,
        };
        if let Some(batch) = &batch {
            self.handed_out_bytes
                .fetch_add(batch.body.len() as u64, Ordering::Relaxed);
        }
        batch
    }

    /// A feed of batches built in full beforehand.
    pub(crate) fn of_batches(batches: Vec<Batch>) -> Feed {
        let held_bytes = batches.iter().map(|batch| batch.body.len() as u64).sum();
        let (_, receiver) = tokio::sync::mpsc::channel(1);
        Feed {
            pool: Mutex::new(batches.into()),
            overflow: tokio::sync::Mutex::new(receiver),
            held_bytes: Arc::new(AtomicU64::new(held_bytes)),
            handed_out_bytes: AtomicU64::new(0),
        }
    }

    /// The first `n` bodies of the pool, without taking them.
    pub(crate) fn first_bodies(&self, n: usize) -> Vec<Bytes> {
        self.pool
            .lock()
            .map(|pool| {
                pool.iter()
                    .take(n)
                    .map(|batch| batch.body.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A sender is done with a body.
    pub(crate) fn release(&self, batch: &Batch) {
        self.held_bytes
            .fetch_sub(batch.body.len() as u64, Ordering::Relaxed);
    }
}

/// The background generator, while it runs.
pub(crate) struct Generator {
    handle: JoinHandle<anyhow::Result<Vec<Sample>>>,
    /// Its CPU time so far, in clock ticks, as it last read it itself.
    pub cpu_ticks: Arc<AtomicU64>,
}

impl Generator {
    /// The journey samples of the batches it generated.
    pub(crate) fn join(self) -> anyhow::Result<Vec<Sample>> {
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("the batch generator thread panicked"))?
    }
}

/// Everything prepared before the clock starts.
pub(crate) struct Prepared {
    pub feed: Arc<Feed>,
    pub generator: Option<Generator>,
    /// Journey samples of the pool; the generator's come with its `join`.
    pub samples: Vec<Sample>,
    pub n_batches: usize,
    pub n_pool_batches: usize,
    /// Encoded bytes of the pool's bodies, as held and sent.
    pub pool_bytes: u64,
    /// Mean bytes per span of the pool's bodies before encoding.
    pub mean_span_bytes: f64,
    pub n_pool_spans: usize,
    /// Spans the generator will make as copies of a template (the rest of the spans beyond the
    /// pool, in batches of another size than their template, are built in full).
    pub n_template_copy_spans: usize,
}

/// Batch sizes adding up to `n_spans`, none smaller than 2 (an event has two spans or more).
pub(crate) fn batch_sizes(n_spans: usize, batch: usize) -> Vec<usize> {
    let n_batches = n_spans.div_ceil(batch);
    let mut sizes = vec![batch; n_batches];
    if let Some(last) = sizes.last_mut() {
        *last = n_spans - (n_batches - 1) * batch;
    }
    if n_batches >= 2 && sizes[n_batches - 1] == 1 {
        sizes[n_batches - 2] -= 1;
        sizes[n_batches - 1] = 2;
    }
    sizes
}

/// What the batches are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeedSpec {
    pub protocol: Protocol,
    pub workload: Workload,
    pub encoding: BodyEncoding,
    pub n_spans: usize,
    /// Spans per batch.
    pub batch: usize,
    /// Memory for the pre-built pool of (encoded) bodies.
    pub pool_budget_bytes: u64,
    pub seed: u64,
}

/// Builds one batch of the pool and encodes it.
fn pool_batch(
    spec: &FeedSpec,
    rng: &mut SmallRng,
    batch_idx: usize,
    n_spans: usize,
    now: i64,
    sample_every: usize,
) -> std::io::Result<PoolBatch> {
    let built = spec.protocol.build(
        spec.workload,
        rng,
        n_spans,
        (batch_idx * spec.batch) as i64,
        now,
    );
    let identity = built.template.body().clone();
    Ok(PoolBatch {
        identity_bytes: identity.len() as u64,
        body: spec.encoding.encode(identity)?,
        n_spans,
        sample: batch_idx
            .is_multiple_of(sample_every)
            .then_some(built.sample),
        template: (batch_idx < N_TEMPLATES).then_some(built.template),
    })
}

/// Builds the pool (on every core) and starts the background generator if the pool does not
/// hold everything.
pub(crate) fn prepare(spec: FeedSpec) -> anyhow::Result<Prepared> {
    let sizes = batch_sizes(spec.n_spans, spec.batch);
    let n_batches = sizes.len();
    let sample_every = n_batches.div_ceil(MAX_SAMPLES).max(1);
    let now = muninn_now();
    let mut first_rng = SmallRng::seed_from_u64(spec.seed);
    let first = pool_batch(&spec, &mut first_rng, 0, sizes[0], now, sample_every)
        .context("encoding a request body")?;
    let first_bytes = first.body.len() as u64;
    let n_pool_batches = usize::try_from(spec.pool_budget_bytes / first_bytes.max(1))
        .unwrap_or(usize::MAX)
        .clamp(1, n_batches);

    // The rest of the pool, in contiguous chunks, one thread per core.
    let n_threads = std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1);
    let rest: Vec<usize> = (1..n_pool_batches).collect();
    let chunk_len = rest.len().div_ceil(n_threads).max(1);
    let built_chunks: Vec<Vec<PoolBatch>> = std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .chunks(chunk_len)
            .enumerate()
            .map(|(thread_idx, chunk)| {
                let (sizes, spec) = (&sizes, &spec);
                std::thread::Builder::new()
                    .name(format!("bench-gen-{thread_idx}"))
                    .spawn_scoped(scope, move || {
                        let mut rng =
                            SmallRng::seed_from_u64(spec.seed.wrapping_add(1 + thread_idx as u64));
                        chunk
                            .iter()
                            .map(|&batch_idx| {
                                pool_batch(
                                    spec,
                                    &mut rng,
                                    batch_idx,
                                    sizes[batch_idx],
                                    now,
                                    sample_every,
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
                    .map_err(|_| anyhow::anyhow!("a generator thread panicked"))?
                    .context("encoding a request body"),
                Err(error) => {
                    Err(anyhow::Error::from(error).context("starting a generator thread"))
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;

    let mut samples = Vec::with_capacity(MAX_SAMPLES.min(n_batches));
    let mut templates: Vec<Template> = Vec::with_capacity(N_TEMPLATES);
    let mut pool = VecDeque::with_capacity(n_pool_batches);
    let (mut pool_bytes, mut identity_bytes) = (0u64, 0u64);
    for built in std::iter::once(first).chain(built_chunks.into_iter().flatten()) {
        pool_bytes += built.body.len() as u64;
        identity_bytes += built.identity_bytes;
        pool.push_back(Batch {
            body: built.body,
            n_records: built.n_spans,
        });
        samples.extend(built.sample);
        templates.extend(built.template);
    }
    let n_pool_spans: usize = sizes[..n_pool_batches].iter().sum();
    let n_template_copy_spans: usize = sizes
        .iter()
        .enumerate()
        .skip(n_pool_batches)
        .filter(|(batch_idx, n_spans)| {
            templates[batch_idx % templates.len()].n_spans() == **n_spans
        })
        .map(|(_, n_spans)| n_spans)
        .sum();
    let held_bytes = Arc::new(AtomicU64::new(pool_bytes));
    let (sender, receiver) = tokio::sync::mpsc::channel(AHEAD_BATCHES);
    let generator = if n_pool_batches < n_batches {
        let cpu_ticks = Arc::new(AtomicU64::new(0));
        let thread_ticks = cpu_ticks.clone();
        let thread_held = held_bytes.clone();
        let handle = std::thread::Builder::new()
            .name("bench-gen".into())
            .spawn(move || -> anyhow::Result<Vec<Sample>> {
                let mut rng = SmallRng::seed_from_u64(spec.seed ^ 0x9e37_79b9_7f4a_7c15);
                let mut samples = Vec::new();
                for (batch_idx, &n_spans) in sizes.iter().enumerate().skip(n_pool_batches) {
                    let now = muninn_now();
                    let n_templates = templates.len();
                    let template = &mut templates[batch_idx % n_templates];
                    let (body, sample) = if template.n_spans() == n_spans {
                        template.patch(&mut rng, now)
                    } else {
                        let built = spec.protocol.build(
                            spec.workload,
                            &mut rng,
                            n_spans,
                            (batch_idx * spec.batch) as i64,
                            now,
                        );
                        (built.template.body().to_vec(), built.sample)
                    };
                    let body = spec
                        .encoding
                        .encode(Bytes::from(body))
                        .context("encoding a request body")?;
                    if batch_idx.is_multiple_of(sample_every) {
                        samples.push(sample);
                    }
                    thread_held.fetch_add(body.len() as u64, Ordering::Relaxed);
                    if batch_idx % 16 == 0 {
                        thread_ticks.store(system::thread_self_cpu_ticks(), Ordering::Relaxed);
                    }
                    if sender
                        .blocking_send(Batch {
                            body,
                            n_records: n_spans,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
                thread_ticks.store(system::thread_self_cpu_ticks(), Ordering::Relaxed);
                Ok(samples)
            })
            .context("starting the batch generator thread")?;
        Some(Generator { handle, cpu_ticks })
    } else {
        drop(sender);
        None
    };
    Ok(Prepared {
        feed: Arc::new(Feed {
            pool: Mutex::new(pool),
            overflow: tokio::sync::Mutex::new(receiver),
            held_bytes,
            handed_out_bytes: AtomicU64::new(0),
        }),
        generator,
        samples,
        n_batches,
        n_pool_batches,
        pool_bytes,
        mean_span_bytes: identity_bytes as f64 / n_pool_spans.max(1) as f64,
        n_pool_spans,
        n_template_copy_spans,
    })
}

/// Unix nanoseconds now.
fn muninn_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_add_up_and_never_leave_a_single_span() {
        assert_eq!(batch_sizes(2500, 1000), vec![1000, 1000, 500]);
        assert_eq!(batch_sizes(2001, 1000), vec![1000, 999, 2]);
        assert_eq!(batch_sizes(1000, 1000), vec![1000]);
        assert_eq!(batch_sizes(7, 3), vec![3, 2, 2]);
    }

    #[test]
    fn the_feed_hands_out_every_span_once_gzipd_and_remembers_a_bounded_sample() {
        // 20,001 batches, most of them patched by the generator: more than MAX_SAMPLES.
        let spec = FeedSpec {
            protocol: Protocol::Native,
            workload: Workload::Random,
            encoding: BodyEncoding::Gzip,
            n_spans: 60_003,
            batch: 3,
            pool_budget_bytes: 50_000,
            seed: 9,
        };
        let prepared = prepare(spec).unwrap();
        assert!(prepared.n_pool_batches < prepared.n_batches / 10);
        assert!(prepared.n_template_copy_spans > spec.n_spans / 2);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut span_ids = std::collections::HashSet::new();
        let mut n_spans = 0;
        while let Some(batch) = runtime.block_on(prepared.feed.next()) {
            let mut json = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&batch.body[..]),
                &mut json,
            )
            .unwrap();
            let spans: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
            assert_eq!(spans.len(), batch.n_records);
            for span in &spans {
                assert!(span_ids.insert(span["span_id"].as_str().unwrap().to_string()));
            }
            n_spans += spans.len();
            prepared.feed.release(&batch);
        }
        assert_eq!(n_spans, spec.n_spans);
        let mut samples = prepared.samples;
        samples.extend(prepared.generator.unwrap().join().unwrap());
        assert!(samples.len() <= MAX_SAMPLES && samples.len() >= MAX_SAMPLES / 2);
        assert_eq!(prepared.feed.held_bytes.load(Ordering::Relaxed), 0);
    }
}
