//! The archive's upkeep inside `muninn serve`: every `maintenance_every` (and once at start),
//! retention removes whole hours past each stream pattern's rule and compaction merges the
//! small files of sealed hours. Both are safe while recorders write (retention removes only
//! hours past the rule, compaction only hours a partition has left), so they run beside them.
//! A failed run is logged and counted, and tried again at the next tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use muninn_archive::{Archive, CompactOptions, RetentionRule};

/// What to do, and how often.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// Retention rules, the first matching a stream applies; none: keep everything.
    pub retention: Vec<RetentionRule>,
    /// Merge the small files of sealed hours.
    pub compact: bool,
    pub every: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            retention: Vec::new(),
            compact: true,
            every: Duration::from_secs(3600),
        }
    }
}

/// Counters of the upkeep, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct MaintenanceStats {
    pub runs: AtomicU64,
    pub errors: AtomicU64,
    pub hours_removed: AtomicU64,
    pub bytes_removed: AtomicU64,
    /// Archive files fewer after compaction (small files replaced minus merged files written).
    pub files_reduced: AtomicU64,
    pub messages_merged: AtomicU64,
}

/// One round: retention, then compaction.
pub(crate) async fn run_once(
    archive: &Archive,
    config: &MaintenanceConfig,
    stats: &MaintenanceStats,
) {
    stats.runs.fetch_add(1, Ordering::Relaxed);
    if !config.retention.is_empty() {
        let now_ms = muninn_model::now_unix_nanos() / 1_000_000;
        match archive.retain(&config.retention, now_ms, false).await {
            Ok(report) => {
                stats
                    .hours_removed
                    .fetch_add(report.hours_removed.len() as u64, Ordering::Relaxed);
                stats
                    .bytes_removed
                    .fetch_add(report.bytes_removed, Ordering::Relaxed);
                if !report.hours_removed.is_empty() {
                    tracing::info!(
                        hours = report.hours_removed.len(),
                        bytes = report.bytes_removed,
                        messages = report.messages_removed,
                        "archive retention removed hours past their rule"
                    );
                }
            }
            Err(error) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "archive retention failed; tried again at the next round");
            }
        }
    }
    if config.compact {
        match archive.compact(&CompactOptions::default()).await {
            Ok(report) => {
                let reduced = report
                    .total
                    .files_before
                    .saturating_sub(report.total.files_after);
                stats.files_reduced.fetch_add(reduced, Ordering::Relaxed);
                stats
                    .messages_merged
                    .fetch_add(report.total.messages_merged, Ordering::Relaxed);
                if reduced > 0 {
                    tracing::info!(
                        files_before = report.total.files_before,
                        files_after = report.total.files_after,
                        "archive compaction merged small files"
                    );
                }
                for problem in &report.problems {
                    tracing::warn!(%problem, "archive compaction left a run of files as it was");
                }
            }
            Err(error) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "archive compaction failed; tried again at the next round");
            }
        }
    }
}

/// Runs [`run_once`] now and every `config.every` until the task is aborted.
pub(crate) async fn run(archive: Archive, config: MaintenanceConfig, stats: Arc<MaintenanceStats>) {
    let mut tick = tokio::time::interval(config.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        run_once(&archive, &config, &stats).await;
    }
}
