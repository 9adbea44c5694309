//! Prepares the batches (native JSON or OTLP protobuf) before the clock starts and hands them
//! to the senders: first the pre-built pool, then (when the pool would not fit the memory
//! budget) batches that a background thread patches from templates with fresh ids, ahead of
//! the senders through a bounded channel. Every span of the run is unique either way.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context;
use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::workload::{self, Sample};
use crate::{otlp, system};

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

    /// Builds one batch in this protocol.
    fn build(self, rng: &mut SmallRng, n_spans: usize, first_offset: i64, now: i64) -> Built {
        match self {
            Protocol::Native => {
                let built = workload::build_batch(rng, n_spans, first_offset, now);
                Built {
                    template: Template::Native(built.template),
                    sample: built.sample,
                }
            }
            Protocol::Otlp => {
                let built = otlp::build_batch(rng, n_spans, first_offset, now);
                Built {
                    template: Template::Otlp(built.template),
                    sample: built.sample,
                }
            }
        }
    }
}

/// A batch of either protocol, with what it takes to make fresh copies of it.
enum Template {
    Native(workload::Template),
    Otlp(otlp::Template),
}

impl Template {
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

    /// Drops what only a template needs (saves memory).
    fn forget(&mut self) {
        match self {
            Template::Native(template) => template.forget_slots(),
            Template::Otlp(template) => template.forget_request(),
        }
    }

    /// A copy with fresh ids and times.
    fn patch(&mut self, rng: &mut SmallRng, now: i64) -> (Vec<u8>, Sample) {
        match self {
            Template::Native(template) => workload::patch(template, rng, now),
            Template::Otlp(template) => otlp::patch(template, rng, now),
        }
    }
}

struct Built {
    template: Template,
    sample: Sample,
}

/// Templates kept for the background generator, taken from the first pool batches.
const N_TEMPLATES: usize = 32;
/// How far the background generator may run ahead of the senders, in batches.
const AHEAD_BATCHES: usize = 32;

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
}

impl Feed {
    /// The next batch, or `None` when every batch was handed out.
    pub(crate) async fn next(&self) -> Option<Batch> {
        let pooled = self
            .pool
            .lock()
            .map(|mut pool| pool.pop_front())
            .unwrap_or(None);
        match pooled {
            Some(batch) => Some(batch),
            None => self.overflow.lock().await.recv().await,
        }
    }

    /// A feed of batches built in full beforehand.
    pub(crate) fn of_batches(batches: Vec<Batch>) -> Feed {
        let held_bytes = batches.iter().map(|batch| batch.body.len() as u64).sum();
        let (_, receiver) = tokio::sync::mpsc::channel(1);
        Feed {
            pool: Mutex::new(batches.into()),
            overflow: tokio::sync::Mutex::new(receiver),
            held_bytes: Arc::new(AtomicU64::new(held_bytes)),
        }
    }

    /// A sender is done with a body.
    pub(crate) fn release(&self, batch: &Batch) {
        self.held_bytes
            .fetch_sub(batch.body.len() as u64, Ordering::Relaxed);
    }
}

/// The background generator, while it runs.
pub(crate) struct Generator {
    handle: JoinHandle<Vec<Sample>>,
    /// Its CPU time so far, in clock ticks, as it last read it itself.
    pub cpu_ticks: Arc<AtomicU64>,
}

impl Generator {
    /// The journey samples of the batches it generated.
    pub(crate) fn join(self) -> anyhow::Result<Vec<Sample>> {
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("the batch generator thread panicked"))
    }
}

/// Everything prepared before the clock starts.
pub(crate) struct Prepared {
    pub feed: Arc<Feed>,
    pub generator: Option<Generator>,
    pub samples: Vec<Sample>,
    pub n_batches: usize,
    pub n_pool_batches: usize,
    pub pool_bytes: u64,
    pub mean_span_bytes: f64,
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

/// Builds the pool (on every core) and starts the background generator if the pool does not
/// hold everything.
pub(crate) fn prepare(
    protocol: Protocol,
    n_spans: usize,
    batch: usize,
    pool_budget_bytes: u64,
    seed: u64,
) -> anyhow::Result<Prepared> {
    let sizes = batch_sizes(n_spans, batch);
    let n_batches = sizes.len();
    let now = muninn_now();
    let mut first_rng = SmallRng::seed_from_u64(seed);
    let first = protocol.build(&mut first_rng, sizes[0], 0, now);
    let first_bytes = first.template.body().len() as u64;
    let n_pool_batches = usize::try_from(pool_budget_bytes / first_bytes.max(1))
        .unwrap_or(usize::MAX)
        .clamp(1, n_batches);

    // The rest of the pool, in contiguous chunks, one thread per core.
    let n_threads = std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1);
    let rest: Vec<usize> = (1..n_pool_batches).collect();
    let chunk_len = rest.len().div_ceil(n_threads).max(1);
    let built_chunks: Vec<Vec<Built>> = std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .chunks(chunk_len)
            .enumerate()
            .map(|(thread_idx, chunk)| {
                let sizes = &sizes;
                std::thread::Builder::new()
                    .name(format!("bench-gen-{thread_idx}"))
                    .spawn_scoped(scope, move || {
                        let mut rng =
                            SmallRng::seed_from_u64(seed.wrapping_add(1 + thread_idx as u64));
                        chunk
                            .iter()
                            .map(|&batch_idx| {
                                let mut built = protocol.build(
                                    &mut rng,
                                    sizes[batch_idx],
                                    (batch_idx * batch) as i64,
                                    now,
                                );
                                if batch_idx >= N_TEMPLATES {
                                    built.template.forget();
                                }
                                built
                            })
                            .collect::<Vec<_>>()
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a generator thread panicked")),
                Err(error) => {
                    Err(anyhow::Error::from(error).context("starting a generator thread"))
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;

    let mut samples = Vec::with_capacity(n_batches);
    let mut templates: Vec<Template> = Vec::with_capacity(N_TEMPLATES);
    let mut pool = VecDeque::with_capacity(n_pool_batches);
    let mut pool_bytes = 0u64;
    for built in std::iter::once(first).chain(built_chunks.into_iter().flatten()) {
        pool_bytes += built.template.body().len() as u64;
        pool.push_back(Batch {
            body: built.template.body().clone(),
            n_records: built.template.n_spans(),
        });
        samples.push(built.sample);
        if templates.len() < N_TEMPLATES {
            templates.push(built.template);
        }
    }
    let n_pooled_spans: usize = sizes[..n_pool_batches].iter().sum();
    let held_bytes = Arc::new(AtomicU64::new(pool_bytes));
    let (sender, receiver) = tokio::sync::mpsc::channel(AHEAD_BATCHES);
    let generator = if n_pool_batches < n_batches {
        let cpu_ticks = Arc::new(AtomicU64::new(0));
        let thread_ticks = cpu_ticks.clone();
        let thread_held = held_bytes.clone();
        let handle = std::thread::Builder::new()
            .name("bench-gen".into())
            .spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
                let mut samples = Vec::new();
                for (batch_idx, &n_spans) in sizes.iter().enumerate().skip(n_pool_batches) {
                    let now = muninn_now();
                    let n_templates = templates.len();
                    let template = &mut templates[batch_idx % n_templates];
                    let (body, sample) = if template.n_spans() == n_spans {
                        template.patch(&mut rng, now)
                    } else {
                        let built =
                            protocol.build(&mut rng, n_spans, (batch_idx * batch) as i64, now);
                        (built.template.body().to_vec(), built.sample)
                    };
                    samples.push(sample);
                    thread_held.fetch_add(body.len() as u64, Ordering::Relaxed);
                    if batch_idx % 16 == 0 {
                        thread_ticks.store(system::thread_self_cpu_ticks(), Ordering::Relaxed);
                    }
                    if sender
                        .blocking_send(Batch {
                            body: Bytes::from(body),
                            n_records: n_spans,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
                thread_ticks.store(system::thread_self_cpu_ticks(), Ordering::Relaxed);
                samples
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
        }),
        generator,
        samples,
        n_batches,
        n_pool_batches,
        pool_bytes,
        mean_span_bytes: pool_bytes as f64 / n_pooled_spans.max(1) as f64,
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
}
