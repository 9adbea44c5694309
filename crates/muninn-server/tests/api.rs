//! The HTTP API of `muninn-server`, end to end: one test binary that starts real servers on
//! loopback over temporary data directories and talks to them only through HTTP. Every answer
//! is also checked against `openapi.yaml`, so the document cannot drift from the code.

#[path = "api/support.rs"]
mod support;

#[path = "api/openapi.rs"]
mod openapi;

#[path = "api/ingest.rs"]
mod ingest;

#[path = "api/queries.rs"]
mod queries;

#[path = "api/queries_traces.rs"]
mod queries_traces;

#[path = "api/journeys.rs"]
mod journeys;

#[path = "api/bad_input.rs"]
mod bad_input;

#[path = "api/lineage_golden.rs"]
mod lineage_golden;

#[path = "api/metrics.rs"]
mod metrics;

#[path = "api/sampling.rs"]
mod sampling;

#[path = "api/sampling_config.rs"]
mod sampling_config;

#[path = "api/otlp.rs"]
mod otlp;

#[path = "api/otlp_errors.rs"]
mod otlp_errors;

#[path = "api/otlp_clients.rs"]
mod otlp_clients;

#[path = "api/otlp_memory.rs"]
mod otlp_memory;

#[path = "api/tail_sampling.rs"]
mod tail_sampling;

#[path = "api/compat.rs"]
mod compat;

#[path = "api/jaeger.rs"]
mod jaeger;

#[path = "api/zipkin.rs"]
mod zipkin;

#[path = "api/compare.rs"]
mod compare;

#[path = "api/schemas.rs"]
mod schemas;

#[path = "api/browser.rs"]
mod browser;

#[path = "api/ui.rs"]
mod ui;

#[path = "api/auth.rs"]
mod auth;

#[path = "api/tls.rs"]
mod tls;

#[path = "api/limits.rs"]
mod limits;

#[path = "api/faults.rs"]
mod faults;

#[path = "api/tenants.rs"]
mod tenants;
