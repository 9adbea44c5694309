//! Metrics of the server's limits and defences: open connections and failed TLS handshakes by
//! listener, TLS certificate reloads, ingest refused by a token's rate limit, ingest bodies
//! that came too slowly, and queries held back or cut short.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Labels;

/// One listener's connection metrics (`listen.rs`); clones count into the same series.
#[derive(Clone, Default)]
pub(crate) struct ConnectionMetrics {
    pub open: Gauge,
    pub handshake_failures: Counter,
}

pub(crate) struct LimitMetrics {
    connections_open: Family<Labels, Gauge>,
    handshake_failures: Family<Labels, Counter>,
    /// Ingest requests answered `429` by a token's rate limit, by token name.
    pub rate_limited: Family<Labels, Counter>,
    /// Ingest requests whose body did not arrive within `body_read_timeout` (`408`).
    pub body_timeouts: Counter,
    pub tls_reloads: Family<Labels, Counter>,
    /// Queries running now (`query_limit.rs`).
    pub queries_running: Gauge,
    /// Queries answered `503` before they ran, by reason (`busy`, `waited`).
    pub queries_refused: Family<Labels, Counter>,
    /// Queries whose time limit cut their answer short (or stopped them).
    pub query_time_limits: Counter,
}

impl LimitMetrics {
    pub(crate) fn register(registry: &mut Registry) -> LimitMetrics {
        let metrics = LimitMetrics {
            connections_open: Family::default(),
            handshake_failures: Family::default(),
            rate_limited: Family::default(),
            body_timeouts: Counter::default(),
            tls_reloads: Family::default(),
            queries_running: Gauge::default(),
            queries_refused: Family::default(),
            query_time_limits: Counter::default(),
        };
        for reason in ["busy", "waited"] {
            let _ = metrics
                .queries_refused
                .get_or_create(&vec![("reason".into(), reason.into())]);
        }
        // The HTTP listener's series from the start (as 0); gRPC's once it listens.
        let _ = metrics.connections("http");
        for result in ["ok", "failed"] {
            let _ = metrics
                .tls_reloads
                .get_or_create(&vec![("result".into(), result.into())]);
        }
        registry.register(
            "connections_open",
            "Connections open now, by listener (http, otlp_grpc); at max_connections the \
             listener stops accepting until one closes",
            metrics.connections_open.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or took longer than 10 s, by listener",
            metrics.handshake_failures.clone(),
        );
        registry.register(
            "ingest_rate_limited",
            "Ingest requests refused with 429 by their token's rate limit, by token name",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "ingest_body_timeouts",
            "Ingest requests whose body did not arrive within body_read_timeout (answered 408; \
             nothing of them was stored)",
            metrics.body_timeouts.clone(),
        );
        registry.register(
            "tls_certificate_reloads",
            "Times the TLS certificate files changed and were read again, by result (a failed \
             reload keeps the previous certificate)",
            metrics.tls_reloads.clone(),
        );
        registry.register(
            "queries_running",
            "Queries running now (at most max_concurrent_queries)",
            metrics.queries_running.clone(),
        );
        registry.register(
            "queries_refused",
            "Queries answered 503 before they ran, by reason: busy (the line of waiting queries \
             was full) or waited (no place came free within query_timeout)",
            metrics.queries_refused.clone(),
        );
        registry.register(
            "query_time_limits_reached",
            "Queries whose answer query_timeout cut short (partial, with the blocks not read \
             named) or stopped",
            metrics.query_time_limits.clone(),
        );
        metrics
    }

    /// The connection metrics of `listener`.
    pub(crate) fn connections(&self, listener: &str) -> ConnectionMetrics {
        let labels = vec![("listener".to_string(), listener.to_string())];
        ConnectionMetrics {
            open: self.connections_open.get_or_create(&labels).clone(),
            handshake_failures: self.handshake_failures.get_or_create(&labels).clone(),
        }
    }

    /// The reload counter of `result` (`ok`, `failed`).
    pub(crate) fn tls_reloads(&self, result: &str) -> Counter {
        self.tls_reloads
            .get_or_create(&vec![("result".into(), result.into())])
            .clone()
    }
}
