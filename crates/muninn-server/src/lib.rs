//! Muninn's HTTP server: the composition root that wires ingest decoding, the store and the
//! query functions behind axum routes, with Prometheus `/metrics` and the OpenAPI document.

mod error;
mod ingest;
mod metrics;
mod query;
mod sampling;
mod server;

pub use server::{RunningServer, ServerConfig, StartError, start};

/// The OpenAPI document of every route, as served at `/api/v1/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");
