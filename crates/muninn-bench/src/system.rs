//! What the benchmark reads from Linux's `/proc`: resident memory (current and peak, and a
//! sampler of it), CPU time per thread (to tell the server's share from the client's in one
//! process), and the file system a directory lives on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;

/// Linux reports CPU times in `/proc/*/stat` in units of USER_HZ, 100 per second on every
/// architecture Muninn targets.
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Peak resident set size of the process (`VmHWM`), in bytes.
pub(crate) fn peak_rss_bytes() -> u64 {
    status_kib("VmHWM:").unwrap_or_default() * 1024
}

/// What jemalloc has handed out and what it keeps resident (handed out, its own metadata, and
/// freed pages not yet returned), in bytes; zeros if its statistics cannot be read.
pub(crate) fn allocator_bytes() -> (u64, u64) {
    let (allocated, _, resident) = allocator_pages();
    (allocated, resident)
}

/// jemalloc's allocated, active (the pages of its runs and slabs that hold allocations, so
/// with the space around them) and resident bytes; zeros if its statistics cannot be read.
pub(crate) fn allocator_pages() -> (u64, u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    if epoch::advance().is_err() {
        return (0, 0, 0);
    }
    (
        stats::allocated::read().unwrap_or_default() as u64,
        stats::active::read().unwrap_or_default() as u64,
        stats::resident::read().unwrap_or_default() as u64,
    )
}

/// What decoded spans hold in memory, measured on native JSON bodies (gzip'd or not) decoded
/// as the server decodes them.
pub(crate) struct DecodedMemory {
    /// What `Span::memory_bytes` counts of the decoded spans.
    pub counted: u64,
    /// What jemalloc handed out for them.
    pub allocated: u64,
    /// What the head holds for them, one batch a body (`muninn_store::head_memory_bytes`): what
    /// the store's memory bound adds up.
    pub in_head: u64,
    pub n_spans: u64,
}

pub(crate) fn decoded_span_memory(
    bodies: &[bytes::Bytes],
    gzip: bool,
) -> anyhow::Result<DecodedMemory> {
    let limits = muninn_model::Limits::default();
    let mut kept: Vec<Vec<muninn_model::Span>> = Vec::with_capacity(bodies.len());
    let (before, _) = allocator_bytes();
    for body in bodies {
        let plain = muninn_ingest::decompress(body, gzip.then_some("gzip"), usize::MAX)?;
        let decoded = muninn_ingest::decode_spans(&plain, &limits, muninn_model::now_unix_nanos())?;
        drop(plain);
        if let Some(rejection) = decoded.rejected.first() {
            anyhow::bail!("the server would reject a span of the workload: {rejection:?}");
        }
        kept.push(decoded.records);
    }
    let (after, _) = allocator_bytes();
    let counted: u64 = kept
        .iter()
        .flatten()
        .map(|span| span.memory_bytes() as u64)
        .sum();
    let n_spans = kept.iter().map(Vec::len).sum::<usize>() as u64;
    let allocated = after.saturating_sub(before);
    let mut in_head = 0;
    for spans in kept {
        in_head += muninn_store::head_memory_bytes(spans)?;
    }
    Ok(DecodedMemory {
        counted,
        allocated,
        in_head,
        n_spans,
    })
}

/// Current resident set size (`VmRSS`), in bytes.
pub(crate) fn rss_bytes() -> u64 {
    status_kib("VmRSS:").unwrap_or_default() * 1024
}

/// `(name, utime + stime)` from a `stat` file; the name sits in parentheses and may hold spaces.
fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// CPU time of the calling thread, in ticks.
pub(crate) fn thread_self_cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|text| parse_stat(&text))
        .map(|(_, ticks)| ticks)
        .unwrap_or_default()
}

/// Busy CPU time of the whole machine (all processes), in ticks, from `/proc/stat`.
fn machine_busy_ticks() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = text.lines().find(|line| line.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal …; idle and iowait are not busy.
    line.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(index, _)| *index != 3 && *index != 4)
        .filter_map(|(_, field)| field.parse::<u64>().ok())
        .sum()
}

/// CPU time of the whole process (including threads that ended) and of each live thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuSnapshot {
    /// Busy time of every process on the machine, to tell how much others took.
    pub machine_ticks: u64,
    pub process_ticks: u64,
    /// Thread id → (thread name, ticks).
    pub threads: HashMap<u32, (String, u64)>,
}

impl CpuSnapshot {
    pub(crate) fn take() -> CpuSnapshot {
        let process_ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|text| parse_stat(&text))
            .map(|(_, ticks)| ticks)
            .unwrap_or_default();
        let mut threads = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc/self/task") {
            for entry in entries.flatten() {
                let Some(tid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| name.parse::<u32>().ok())
                else {
                    continue;
                };
                if let Some(stat) = std::fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .and_then(|text| parse_stat(&text))
                {
                    threads.insert(tid, stat);
                }
            }
        }
        CpuSnapshot {
            machine_ticks: machine_busy_ticks(),
            process_ticks,
            threads,
        }
    }

    /// Ticks spent between `earlier` and `self` by live threads whose id `select` accepts.
    pub(crate) fn ticks_since(
        &self,
        earlier: &CpuSnapshot,
        select: impl Fn(u32, &str) -> bool,
    ) -> u64 {
        self.threads
            .iter()
            .filter(|(tid, (name, _))| select(**tid, name))
            .map(|(tid, (_, ticks))| {
                ticks.saturating_sub(
                    earlier
                        .threads
                        .get(tid)
                        .map(|(_, before)| *before)
                        .unwrap_or(0),
                )
            })
            .sum()
    }
}

/// The id of the process, which is also the id of its main thread.
pub(crate) fn process_id() -> u32 {
    std::process::id()
}

/// The file system type of the mount holding `path` (`ext4`, `tmpfs`…), from `/proc/mounts`.
pub(crate) fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = fields.next()?;
            let kind = fields.next()?;
            path.starts_with(mount_point)
                .then(|| (mount_point.len(), kind.to_string()))
        })
        .max_by_key(|(length, _)| *length)
        .map(|(_, kind)| kind)
}

/// Samples RSS in the background; tracks the largest server-side estimate and when it was
/// seen (milliseconds after the sampler started, just before ingest).
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    max_server_estimate: Arc<AtomicU64>,
    max_at_millis: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<()>,
}

impl RssSampler {
    pub(crate) fn start(client_held_bytes: Arc<AtomicU64>) -> anyhow::Result<RssSampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let max_server_estimate = Arc::new(AtomicU64::new(0));
        let max_at_millis = Arc::new(AtomicU64::new(0));
        let (thread_stop, thread_max, thread_at) = (
            stop.clone(),
            max_server_estimate.clone(),
            max_at_millis.clone(),
        );
        let started = std::time::Instant::now();
        let handle = std::thread::Builder::new()
            .name("bench-rss".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    let estimate =
                        rss_bytes().saturating_sub(client_held_bytes.load(Ordering::Relaxed));
                    if estimate > thread_max.load(Ordering::Relaxed) {
                        thread_max.store(estimate, Ordering::Relaxed);
                        thread_at.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .context("starting the RSS sampler")?;
        Ok(RssSampler {
            stop,
            max_server_estimate,
            max_at_millis,
            handle,
        })
    }

    /// The largest server-side estimate, and how long after the start it was seen.
    pub(crate) fn finish(self) -> (u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        (
            self.max_server_estimate.load(Ordering::Relaxed),
            Duration::from_millis(self.max_at_millis.load(Ordering::Relaxed)),
        )
    }
}

/// CPU seconds by role over one phase.
pub(crate) struct CpuSplit {
    pub server: f64,
    /// Part of `server`: the store's WAL thread (write, fsync, making batches visible).
    pub wal_thread: f64,
    pub client: f64,
    pub generator: f64,
    /// Other processes on the machine (builds, other benchmarks): noise in the figures.
    pub others: f64,
}

impl CpuSplit {
    pub(crate) fn between(
        before: &CpuSnapshot,
        after: &CpuSnapshot,
        generator_ticks: u64,
    ) -> CpuSplit {
        let main_thread = process_id();
        let client_ticks = after.ticks_since(before, |tid, name| {
            tid == main_thread || name.starts_with("bench-client") || name == "bench-rss"
        });
        let wal_ticks = after.ticks_since(before, |_, name| name == "muninn-wal");
        let total = after.process_ticks.saturating_sub(before.process_ticks);
        let server_ticks = total
            .saturating_sub(client_ticks)
            .saturating_sub(generator_ticks);
        CpuSplit {
            server: server_ticks as f64 / TICKS_PER_SECOND,
            wal_thread: wal_ticks as f64 / TICKS_PER_SECOND,
            client: client_ticks as f64 / TICKS_PER_SECOND,
            generator: generator_ticks as f64 / TICKS_PER_SECOND,
            others: after
                .machine_ticks
                .saturating_sub(before.machine_ticks)
                .saturating_sub(total) as f64
                / TICKS_PER_SECOND,
        }
    }

    pub(crate) fn describe(&self, wall: Duration) -> String {
        let cores = |cpu_seconds: f64| cpu_seconds / wall.as_secs_f64().max(1e-9);
        format!(
            "server {:.1} s ({:.2} cores; of it the WAL thread {:.1} s, busy {:.0}%), client {:.1} s ({:.2} cores), generator {:.1} s ({:.2} cores); other processes {:.2} cores",
            self.server,
            cores(self.server),
            self.wal_thread,
            cores(self.wal_thread) * 100.0,
            self.client,
            cores(self.client),
            self.generator,
            cores(self.generator),
            cores(self.others)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_may_hold_spaces_and_parentheses() {
        let line = "42 (tokio (w) 1) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0";
        assert_eq!(parse_stat(line), Some(("tokio (w) 1".to_string(), 280)));
    }

    #[test]
    fn this_process_has_memory_and_threads() {
        assert!(rss_bytes() > 0);
        assert!(peak_rss_bytes() >= rss_bytes() / 2);
        assert!(
            CpuSnapshot::take().threads.contains_key(&process_id())
                || cfg!(not(target_os = "linux"))
        );
    }
}
