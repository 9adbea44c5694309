//! Muninn's HTTP server: the composition root that wires ingest decoding, the store and the
//! query functions behind axum routes, with Prometheus `/metrics` and the OpenAPI document.

pub mod allocator;
mod archive;
pub mod auth;
mod body_budget;
mod cluster;
mod compare;
mod compat;
mod error;
mod idempotency;
mod ingest;
mod kafka_ingest;
mod listen;
mod metrics;
mod otlp;
mod query;
mod query_limit;
mod rate_limit;
mod sampling;
mod schemas;
mod server;
mod tail;
mod tenant;
mod tls;

pub use archive::{ArchiveConfig, ArchiveConfigError, MaintenanceConfig};
pub use kafka_ingest::{DEFAULT_GROUP as DEFAULT_KAFKA_INGEST_GROUP, KafkaIngestConfig};
pub use listen::ConnectionLimits;
pub use query_limit::QueryLimits;
pub use rate_limit::RateLimit;
pub use server::{DEFAULT_MAX_BODY_MEMORY_BYTES, RunningServer, ServerConfig, StartError, start};
pub use tail::{
    Clock, MAX_KEPT_NAMES, SystemClock, TailSampler, TailSamplingConfig, TailSamplingConfigError,
};
pub use tenant::{DEFAULT_MAX_TENANTS, TENANT_HEADER, TenancyConfig, TenantId};
pub use tls::{TlsConfig, TlsError};

/// The OpenAPI document of every route, as served at `/api/v1/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");
