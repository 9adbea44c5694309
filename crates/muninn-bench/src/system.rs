//! What the benchmark reads from Linux's `/proc`: resident memory (current and peak), CPU time
//! per thread (to tell the server's share from the client's in one process), and the file
//! system a directory lives on.

use std::collections::HashMap;
use std::path::Path;

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
