//! Tail sampling in the collector (Netflix's second stage), off unless configured. Every span
//! is stored as today (WAL, head, roll-ups: a 2xx still means durable, and throughput counts
//! every event); the sampler sees each append through the store's observer, keeps a small
//! summary per trace, decides after `decision_wait`, and the store's flush filter leaves the
//! spans of dropped traces out of the blocks. So a dropped trace disappears at the next flush,
//! and after a crash before that flush it is kept (the decisions were in memory: fail-open).
//!
//! `config.rs` has the policies and their checks, `sampler.rs` the state and the counters;
//! this file wires them into the store and serves `GET /api/v1/sampling/tail`.

mod config;
mod sampler;

use crate::tenant::TenantState;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use muninn_model::{Span, TraceId};
use muninn_store::Store;

pub use config::{MAX_KEPT_NAMES, TailSamplingConfig, TailSamplingConfigError};
pub use sampler::{Clock, SystemClock, TailSampler};

/// Connects a sampler to the store: it sees every append and filters every flush.
pub(crate) fn install(store: &Store, sampler: &Arc<TailSampler>) {
    let observer = sampler.clone();
    store.set_append_observer(Arc::new(move |spans: &[Span]| observer.observe(spans)));
    let filter = sampler.clone();
    store.set_flush_filter(Arc::new(move |trace_id: &TraceId| {
        filter.keep_at_flush(trace_id)
    }));
}

/// Decides traces whose window ended even when no span arrives; runs until aborted.
pub(crate) async fn run_ticker(sampler: Arc<TailSampler>) {
    let tick = (sampler.config().decision_wait / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        sampler.decide_due_now();
    }
}

/// `GET /api/v1/sampling/tail`: whether tail sampling is on, its configuration and live stats.
pub(crate) async fn get_tail(TenantState(state): TenantState) -> Response {
    match &state.tail_sampler {
        None => Json(serde_json::json!({"enabled": false})).into_response(),
        Some(sampler) => Json(serde_json::json!({
            "enabled": true,
            "config": config::ConfigView::from(sampler.config()),
            "stats": sampler.stats(),
        }))
        .into_response(),
    }
}
