//! The event archive inside the server, off unless configured: `config.rs` (what the caller
//! gives: where the archive is, the recorders, and the checks naming `archive.<key>`),
//! `recorders.rs` (the Kafka and JetStream recorders run as tasks of the server and stopped
//! with it, their counters for `/metrics`), `routes.rs` (`/api/v1/archive/…`: streams, one
//! message, its raw bytes, the messages of an event id or a selection) and `journey.rs` (the
//! archive links added to a journey's hops). `muninn-query` knows nothing of the archive: the
//! links are added here, to the journey's JSON.

mod config;
mod journey;
mod maintenance;
mod recorders;
mod routes;

use std::sync::Arc;

use muninn_archive::{Archive, RecorderOptions};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::server::AppState;

pub use config::{ArchiveConfig, ArchiveConfigError};
pub(crate) use journey::add_archive_links;
pub use maintenance::MaintenanceConfig;
pub(crate) use recorders::{register_metrics, start_recorders};
pub(crate) use routes::{event_messages, messages, raw_message, streams};

/// The opened archive and the recorders writing to it.
pub(crate) struct ArchiveState {
    pub archive: Archive,
    /// As configured, for `/healthz`.
    pub location: String,
    /// The recorders' names (`kafka`, `nats`) and counters, in that order.
    pub recorders: Vec<recorders::RecorderEntry>,
    /// When the recorders close a file.
    pub recorder_options: RecorderOptions,
    /// Retention and compaction, and their counters.
    pub maintenance: maintenance::MaintenanceConfig,
    pub maintenance_stats: Arc<maintenance::MaintenanceStats>,
}

impl ArchiveState {
    /// Opens the archive of `config` (a local directory, created when missing).
    pub async fn open(config: &ArchiveConfig) -> Result<ArchiveState, String> {
        let archive = config::open(&config.location).await?;
        Ok(ArchiveState {
            archive,
            location: config.location.clone(),
            recorders: recorders::entries(config),
            recorder_options: config.recorder.clone(),
            maintenance: config.maintenance.clone(),
            maintenance_stats: Arc::default(),
        })
    }

    /// Whether every recorder's last broker call and write succeeded.
    pub fn healthy(&self) -> bool {
        self.recorders
            .iter()
            .all(|recorder| recorder.snapshot().healthy)
    }

    /// The `archive` member of `/healthz`: the location, and each recorder's health and counters.
    pub fn health(&self) -> Value {
        let recorders: Vec<Value> = self
            .recorders
            .iter()
            .map(|recorder| {
                let snapshot = recorder.snapshot();
                json!({
                    "recorder": recorder.name,
                    "healthy": snapshot.healthy,
                    "last_error": snapshot.last_error,
                    "messages_received": snapshot.messages_received,
                    "messages_archived": snapshot.messages_archived,
                    "message_bytes_archived": snapshot.message_bytes_archived,
                    "files_written": snapshot.files_written,
                    "duplicates_skipped": snapshot.duplicates_skipped,
                    "messages_refused": snapshot.messages_refused,
                    "object_store_errors": snapshot.object_store_errors,
                    "broker_errors": snapshot.broker_errors,
                })
            })
            .collect();
        json!({"location": self.location, "recorders": recorders})
    }
}

/// The archive, or the 404 that every archive route answers when none is configured.
pub(crate) fn configured(state: &AppState) -> Result<&ArchiveState, ApiError> {
    if let Some(tenant) = &state.tenant {
        // The archive's recorders are the operator's, of the default tenant.
        return Err(ApiError::not_found(format!(
            "tenant `{tenant}` has no event archive: the archive belongs to the default tenant \
             (docs/security.md#tenants)"
        )));
    }
    state.archive.as_deref().ok_or_else(|| {
        ApiError::not_found(
            "the event archive is not configured on this server; add an [archive] table with \
             `location = \"DIR\"` to muninn serve's configuration file (see docs/archive.md)",
        )
    })
}
