//! The recorders inside `muninn serve`: each configured one (Kafka, JetStream) runs as a task
//! of the server with its own counters, stops with the server (writing what it buffered, then
//! committing it to the broker), and is reported at every scrape of `/metrics` with the label
//! `recorder="kafka"` or `"nats"`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use muninn_archive::{KafkaSource, NatsSource, RecorderSnapshot, RecorderStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::maintenance::MaintenanceStats;
use super::{ArchiveConfig, ArchiveState};
use crate::metrics::Metrics;

/// How long the server waits at shutdown for a recorder to write what it buffered. A write
/// that keeps failing (the object store is away) is abandoned after this: nothing is lost,
/// since the broker's position was not committed and the next run reads those messages again.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// What a recorder reads.
#[derive(Debug, Clone)]
enum Source {
    Kafka(KafkaSource),
    Nats(NatsSource),
}

/// One configured recorder: its label, source and counters.
pub(crate) struct RecorderEntry {
    /// `kafka` or `nats`: the `recorder` label of its metrics.
    pub name: &'static str,
    source: Source,
    stats: Arc<RecorderStats>,
}

impl RecorderEntry {
    pub fn snapshot(&self) -> RecorderSnapshot {
        self.stats.snapshot()
    }
}

/// The recorders of `config`, not started, Kafka first.
pub(super) fn entries(config: &ArchiveConfig) -> Vec<RecorderEntry> {
    let kafka = config.kafka.clone().map(|source| RecorderEntry {
        name: "kafka",
        source: Source::Kafka(source),
        stats: Arc::new(RecorderStats::new()),
    });
    let nats = config.nats.clone().map(|source| RecorderEntry {
        name: "nats",
        source: Source::Nats(source),
        stats: Arc::new(RecorderStats::new()),
    });
    kafka.into_iter().chain(nats).collect()
}

/// The running recorders, stopped together, and the archive's upkeep.
pub(crate) struct RecorderTasks {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    maintenance: JoinHandle<()>,
}

/// Starts every recorder of `state`. A recorder that stops with an error (a setting the broker
/// client refuses) is logged and reported unhealthy, with the error, until the server stops.
pub(crate) fn start_recorders(state: &ArchiveState) -> RecorderTasks {
    let (stop, stopped) = watch::channel(false);
    let tasks = state
        .recorders
        .iter()
        .map(|recorder| {
            let archive = state.archive.clone();
            let (name, source, stats) = (
                recorder.name,
                recorder.source.clone(),
                recorder.stats.clone(),
            );
            let options = state.recorder_options.clone();
            let mut stopped = stopped.clone();
            // Resolves when the server stops, or when it is gone (the sender dropped).
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let task = tokio::spawn(async move {
                let result = match source {
                    Source::Kafka(source) => {
                        muninn_archive::record_kafka(
                            archive,
                            source,
                            options,
                            stats.clone(),
                            shutdown,
                        )
                        .await
                    }
                    Source::Nats(source) => {
                        muninn_archive::record_nats(
                            archive,
                            source,
                            options,
                            stats.clone(),
                            shutdown,
                        )
                        .await
                    }
                };
                if let Err(error) = result {
                    tracing::error!(recorder = name, %error, "the archive recorder stopped");
                    stats.healthy.store(false, Ordering::Relaxed);
                    if let Ok(mut last_error) = stats.last_error.lock() {
                        *last_error = Some(format!("the recorder stopped: {error}"));
                    }
                }
            });
            (name, task)
        })
        .collect();
    let maintenance = tokio::spawn(super::maintenance::run(
        state.archive.clone(),
        state.maintenance.clone(),
        state.maintenance_stats.clone(),
    ));
    RecorderTasks {
        stop,
        tasks,
        maintenance,
    }
}

impl RecorderTasks {
    /// Asks every recorder to stop, then waits for each to write what it buffered (at most
    /// [`STOP_WAIT`] each).
    pub async fn stop(self) {
        // A round cut short leaves nothing half done: each step is safe to stop between writes.
        self.maintenance.abort();
        let _ = self.stop.send(true);
        for (name, mut task) in self.tasks {
            if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
                tracing::warn!(
                    recorder = name,
                    "the archive recorder did not finish writing within {STOP_WAIT:?}; stopped \
                     anyway (its messages were not committed to the broker and are read again \
                     on the next start)"
                );
                task.abort();
            }
        }
    }
}

/// Registers the recorders' series, read from their counters at each scrape.
pub(crate) fn register_metrics(metrics: &mut Metrics, state: &ArchiveState) {
    let recorders = state
        .recorders
        .iter()
        .map(|recorder| (recorder.name, recorder.stats.clone()))
        .collect();
    metrics
        .registry_mut()
        .register_collector(Box::new(RecorderCollector {
            recorders,
            maintenance: state.maintenance_stats.clone(),
        }));
}

#[derive(Debug)]
struct RecorderCollector {
    recorders: Vec<(&'static str, Arc<RecorderStats>)>,
    maintenance: Arc<MaintenanceStats>,
}

type ReadMaintenance = fn(&MaintenanceStats) -> &AtomicU64;

/// The upkeep's counters: name (`muninn_` before, `_total` after), help, value.
const MAINTENANCE_COUNTERS: [(&str, &str, ReadMaintenance); 6] = [
    (
        "archive_maintenance_runs",
        "Rounds of the archive's retention and compaction",
        |stats| &stats.runs,
    ),
    (
        "archive_maintenance_errors",
        "Failed retention or compaction runs (tried again at the next round)",
        |stats| &stats.errors,
    ),
    (
        "archive_retention_hours_removed",
        "Hours of a stream removed by retention",
        |stats| &stats.hours_removed,
    ),
    (
        "archive_retention_bytes_removed",
        "Bytes of archive files and manifests removed by retention",
        |stats| &stats.bytes_removed,
    ),
    (
        "archive_compaction_files_reduced",
        "Archive files fewer after compaction (small files replaced minus merged files written)",
        |stats| &stats.files_reduced,
    ),
    (
        "archive_compaction_messages_merged",
        "Messages compaction wrote into merged files",
        |stats| &stats.messages_merged,
    ),
];

type Read = fn(&RecorderSnapshot) -> u64;

/// The counters: name (`muninn_` before, `_total` after), help, value.
const COUNTERS: [(&str, &str, Read); 10] = [
    (
        "archive_messages_received",
        "Messages the broker handed to the archive recorder, redeliveries included",
        |snapshot| snapshot.messages_received,
    ),
    (
        "archive_messages",
        "Messages written to the archive durably",
        |snapshot| snapshot.messages_archived,
    ),
    (
        "archive_bytes",
        "Key, header and payload bytes of the messages written to the archive",
        |snapshot| snapshot.message_bytes_archived,
    ),
    (
        "archive_files",
        "Archive files written (one partition each)",
        |snapshot| snapshot.files_written,
    ),
    (
        "archive_duplicates_skipped",
        "Redelivered messages skipped because the archive already held them",
        |snapshot| snapshot.duplicates_skipped,
    ),
    (
        "archive_object_store_errors",
        "Failed reads and writes of the archive's object store (each retried)",
        |snapshot| snapshot.object_store_errors,
    ),
    (
        "archive_broker_errors",
        "Errors of the broker client (each retried)",
        |snapshot| snapshot.broker_errors,
    ),
    (
        "archive_messages_refused",
        "Messages not recorded because their topic was deleted and created again (left on the broker)",
        |snapshot| snapshot.messages_refused,
    ),
    (
        "archive_group_positions",
        "Consumer groups' committed positions that moved, written to the archive",
        |snapshot| snapshot.group_positions_recorded,
    ),
    (
        "archive_group_sample_errors",
        "Failed samples of the consumer groups' committed positions",
        |snapshot| snapshot.group_sample_errors,
    ),
];

impl Collector for RecorderCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshots: Vec<(&str, RecorderSnapshot)> = self
            .recorders
            .iter()
            .map(|(name, stats)| (*name, stats.snapshot()))
            .collect();
        for (name, help, read) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (recorder, snapshot) in &snapshots {
                let labels = [("recorder", *recorder)];
                ConstCounter::new(read(snapshot)).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "archive_healthy",
                "1 while the recorder's last broker call and archive write succeeded, else 0 (see \
             /healthz for the last error)",
                None,
                MetricType::Gauge,
            )?;
            for (recorder, snapshot) in &snapshots {
                let labels = [("recorder", *recorder)];
                ConstGauge::new(i64::from(snapshot.healthy))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, read) in MAINTENANCE_COUNTERS {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(read(&self.maintenance).load(Ordering::Relaxed)).encode(family)?;
        }
        Ok(())
    }
}
