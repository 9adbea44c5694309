//! Server configuration, the router, and start/stop: `start` loads the sampling rules, opens the
//! store and the event archive when configured, binds, spawns the HTTP server, the store's
//! maintenance and the archive's recorders, and returns a handle that stops them all cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use muninn_ingest::OtlpMapping;
use muninn_model::Limits;
use muninn_model::sampling::RATE_PPM_MAX;
use muninn_store::{Store, StoreConfig, StoreError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::body_budget::BodyBudget;
use crate::metrics::Metrics;
use crate::sampling::{self, RuleSet};
use crate::{archive, compat, ingest, otlp, query};

/// The default of `ServerConfig::max_body_memory_bytes`: sixteen bodies of the default 16 MiB
/// limit as received, or eight with their decompressed bytes.
pub const DEFAULT_MAX_BODY_MEMORY_BYTES: u64 = 256 << 20;

/// Everything the server needs, already validated by the caller.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest request body, compressed and decompressed, in bytes.
    pub max_body_bytes: usize,
    /// The memory all request bodies in flight may hold together, as received and
    /// decompressed (`body_budget.rs`); past it requests wait, then get `503`.
    pub max_body_memory_bytes: u64,
    pub limits: Limits,
    pub store: StoreConfig,
    /// The sampling rate, in parts per million, of a service and event type that no sampling
    /// rule covers: 1,000,000 (the default) traces everything until rules say otherwise.
    pub default_sample_rate_ppm: u32,
    /// Where OTLP/gRPC (`TraceService/Export`) listens; `None` (the default here) serves no
    /// gRPC. OTLP/HTTP is always on the main port, at `/v1/traces`.
    pub otlp_grpc_listen: Option<SocketAddr>,
    /// An OTLP span attribute naming the event type, read before `cloudevents.event_type`.
    pub otlp_event_type_attribute: Option<String>,
    /// An OTLP span attribute naming the event id, read before `cloudevents.event_id` and
    /// `messaging.message.id`.
    pub otlp_event_id_attribute: Option<String>,
    /// Tail sampling in the collector (`tail/`); `None` (the default) keeps every trace.
    pub tail_sampling: Option<crate::tail::TailSamplingConfig>,
    /// The event archive (`archive/`): its routes, journey links, and recorders run inside the
    /// server; `None` (the default) answers its routes with 404.
    pub archive: Option<crate::archive::ArchiveConfig>,
    /// Span batches consumed from Kafka topics (`kafka_ingest.rs`), besides HTTP; `None` (the
    /// default) consumes none. Refused on a query node.
    pub kafka_ingest: Option<crate::kafka_ingest::KafkaIngestConfig>,
    /// Bearer tokens and their scopes (`auth.rs`); `None` (the default) lets anyone who
    /// reaches the port do anything, which `start` allows on loopback only.
    pub auth: Option<crate::auth::AuthConfig>,
    /// Listen on a non-loopback address without tokens all the same (`--insecure`).
    pub insecure: bool,
    /// The token this node sends when it asks other nodes (a query node asking ingest nodes
    /// for their heads).
    pub peer_token: Option<String>,
    /// TLS on the HTTP and OTLP/gRPC listeners (`tls.rs`); `None` (the default): plain.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Connections at once, and how long clients have to send headers and bodies (`listen.rs`).
    pub connections: crate::listen::ConnectionLimits,
    /// Queries at once and each query's time limit (`query_limit.rs`).
    pub queries: crate::query_limit::QueryLimits,
    /// How requests name their tenant, and how many one server holds (`tenant.rs`).
    pub tenancy: crate::tenant::TenancyConfig,
}

impl ServerConfig {
    /// Loopback on `port`, 16 MiB bodies, default limits, the store in `data_dir`.
    pub fn new(data_dir: impl Into<std::path::PathBuf>, port: u16) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            max_body_bytes: 16 << 20,
            max_body_memory_bytes: DEFAULT_MAX_BODY_MEMORY_BYTES,
            limits: Limits::default(),
            store: StoreConfig::new(data_dir),
            default_sample_rate_ppm: RATE_PPM_MAX,
            otlp_grpc_listen: None,
            otlp_event_type_attribute: None,
            otlp_event_id_attribute: None,
            tail_sampling: None,
            archive: None,
            kafka_ingest: None,
            auth: None,
            insecure: false,
            peer_token: None,
            tls: None,
            connections: Default::default(),
            queries: Default::default(),
            tenancy: Default::default(),
        }
    }
}

/// What the handlers share: a tenant's state (`tenant.rs`) is the default tenant's with its own
/// store, rules, tail sampler, idempotency keys and first senders, and no archive.
#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub body_budget: Arc<BodyBudget>,
    pub sampling: Arc<RuleSet>,
    pub default_sample_rate_ppm: u32,
    pub otlp_mapping: OtlpMapping,
    /// The tail sampler, when tail sampling is on.
    pub tail_sampler: Option<Arc<crate::tail::TailSampler>>,
    /// Recent `Idempotency-Key`s of ingest requests and their answers.
    pub idempotency: Arc<crate::idempotency::IdempotencyKeys>,
    /// The event archive and its recorders, when configured.
    pub archive: Option<Arc<crate::archive::ArchiveState>>,
    /// How long the store keeps data (`None`: forever).
    pub retention: Option<std::time::Duration>,
    /// Who first sent each schema, remembered once read back from the store.
    pub first_senders: Arc<muninn_query::FirstSenders>,
    /// The accepted tokens, when authentication is on.
    pub auth: Option<crate::auth::AuthConfig>,
    /// How long an ingest body may take to arrive.
    pub body_read_timeout: std::time::Duration,
    /// The ingest rate limits of tokens that have one.
    pub rate_limits: Arc<crate::rate_limit::RateLimits>,
    /// The places queries run in (`query_limit.rs`).
    pub queries: Arc<crate::query_limit::QueryLimiter>,
    /// The tenant this state serves; `None`: the default tenant.
    pub tenant: Option<crate::tenant::TenantId>,
    /// Every tenant's state (`tenant.rs`).
    pub tenants: Arc<crate::tenant::Tenants>,
}

/// A running server.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    /// The bound OTLP/gRPC address, when `otlp_grpc_listen` was set.
    pub otlp_grpc_addr: Option<SocketAddr>,
    pub store: Store,
    /// Whether the listeners serve TLS (`https://`).
    tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT`, or `https://` with TLS.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Stops accepting requests, finishes those in flight, flushes the head to blocks.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops (after `stop` from elsewhere or a fatal error).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }

    /// A sender that stops the server when fired or dropped-with-send; for signal handlers.
    pub fn take_shutdown(&mut self) -> Option<oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

/// Loads the sampling rules, opens the store, binds the listener and serves until stopped.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    if config.default_sample_rate_ppm > RATE_PPM_MAX {
        return Err(StartError::DefaultSampleRate(
            config.default_sample_rate_ppm,
        ));
    }
    if let Some(tail) = &config.tail_sampling {
        tail.validate().map_err(StartError::TailSampling)?;
    }
    if let Some(archive) = &config.archive {
        archive.validate().map_err(StartError::ArchiveConfig)?;
    }
    check_exposure(&config)?;
    check_tenancy(&config)?;
    let mut metrics = Metrics::new();
    let certificate = match &config.tls {
        None => None,
        Some(tls) => Some(
            crate::tls::Certificate::open(
                tls,
                (
                    metrics.limits.tls_reloads("ok"),
                    metrics.limits.tls_reloads("failed"),
                ),
            )
            .map_err(StartError::Tls)?,
        ),
    };
    if config.max_body_memory_bytes > config.store.memory_limit_bytes / 2 {
        return Err(StartError::BodyMemory {
            max_body_memory: config.max_body_memory_bytes,
            memory_limit: config.store.memory_limit_bytes,
        });
    }
    // Before the store: a bad rules file stops the start before recovery does any work.
    let sampling = RuleSet::load(&config.store.data_dir).map_err(StartError::Sampling)?;
    // Likewise an archive location that cannot be opened.
    let archive = match &config.archive {
        None => None,
        Some(archive) => Some(Arc::new(
            crate::archive::ArchiveState::open(archive)
                .await
                .map_err(StartError::Archive)?,
        )),
    };
    // Request bodies are bounded apart, within the node's memory_limit.
    let store_config = StoreConfig {
        reserved_bytes: config.max_body_memory_bytes,
        ..config.store.clone()
    };
    let store = Store::open(store_config.clone())
        .await
        .map_err(StartError::Store)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| StartError::Bind(config.listen, error))?;
    let local_addr = listener
        .local_addr()
        .map_err(|error| StartError::Bind(config.listen, error))?;
    crate::cluster::start(&store, &config, local_addr).await;
    let otlp_grpc = match config.otlp_grpc_listen {
        None => None,
        Some(address) => Some(
            otlp::grpc::bind(address)
                .await
                .map_err(|error| StartError::BindOtlpGrpc(address, error))?,
        ),
    };
    let otlp_grpc_addr = otlp_grpc.as_ref().map(|(_, address)| *address);
    if let Some(archive) = &archive {
        crate::archive::register_metrics(&mut metrics, archive);
    }
    let tail_sampler = config.tail_sampling.clone().map(|tail| {
        if tail.decision_memory < config.store.flush_max_age {
            tracing::warn!(
                "tail_sampling.decision_memory is shorter than flush_max_age: a dropped trace may be forgotten before its spans are flushed, and then kept"
            );
        }
        let sampler = Arc::new(crate::tail::TailSampler::new(
            tail,
            Arc::new(crate::tail::SystemClock::new()),
        ));
        sampler.metrics.register(metrics.registry_mut());
        crate::tail::install(&store, &sampler);
        sampler
    });
    let tail_ticker = tail_sampler
        .clone()
        .map(|sampler| tokio::spawn(crate::tail::run_ticker(sampler)));
    let tenants = Arc::new(crate::tenant::Tenants::new(
        config.tenancy,
        store_config.clone(),
        config.tail_sampling.clone(),
    ));
    let state = Arc::new(AppState {
        store: store.clone(),
        metrics: Arc::new(metrics),
        limits: config.limits.clone(),
        max_body_bytes: config.max_body_bytes,
        body_budget: Arc::new(BodyBudget::new(
            config.max_body_memory_bytes,
            config.store.max_append_wait,
        )),
        sampling: Arc::new(sampling),
        default_sample_rate_ppm: config.default_sample_rate_ppm,
        otlp_mapping: OtlpMapping {
            event_type_attribute: config.otlp_event_type_attribute.clone(),
            event_id_attribute: config.otlp_event_id_attribute.clone(),
        },
        tail_sampler,
        idempotency: Default::default(),
        archive: archive.clone(),
        retention: config.store.retention,
        first_senders: Default::default(),
        auth: config.auth.clone(),
        body_read_timeout: config.connections.body_read_timeout,
        rate_limits: Arc::new(crate::rate_limit::RateLimits::new(
            config.auth.as_ref(),
            std::time::Instant::now(),
        )),
        queries: Arc::new(crate::query_limit::QueryLimiter::new(config.queries)),
        tenant: None,
        tenants: tenants.clone(),
    });
    // Tenants with data on disk open now: their WAL is replayed and their maintenance runs
    // before any request of theirs.
    for id in tenants.found_on_disk() {
        if let Err(error) = tenants.state(&state, &id).await {
            tracing::error!(tenant = %id, "{}", error.message);
        }
    }
    let recorders = archive.as_deref().map(crate::archive::start_recorders);
    let (kafka_stop_tx, kafka_stop_rx) = oneshot::channel::<()>();
    let kafka_ingest = config.kafka_ingest.clone().map(|kafka| {
        tokio::spawn(crate::kafka_ingest::run(state.clone(), kafka, async {
            let _ = kafka_stop_rx.await;
        }))
    });
    let grpc_state = state.clone();
    let connections = config.connections;
    let http_connection_metrics = state.metrics.limits.connections("http");
    let (http_tls, grpc_tls) = match &certificate {
        None => (None, None),
        Some(certificate) => (
            Some(tokio_rustls::TlsAcceptor::from(
                certificate.server_config(&[b"http/1.1"]),
            )),
            Some(tokio_rustls::TlsAcceptor::from(
                certificate.server_config(&[b"h2"]),
            )),
        ),
    };
    let certificate_watcher = certificate
        .map(|certificate| tokio::spawn(certificate.watch(crate::tls::RELOAD_CHECK_INTERVAL)));
    let app = router(state);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let maintenance_store = store.clone();
    let task = tokio::spawn(async move {
        let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
        let (maintenance_stop_tx, maintenance_stop_rx) = oneshot::channel::<()>();
        let maintenance = tokio::spawn(async move {
            maintenance_store
                .run_maintenance(async {
                    let _ = maintenance_stop_rx.await;
                })
                .await;
        });
        let http = tokio::spawn(crate::listen::serve_http(
            listener,
            http_tls,
            connections,
            http_connection_metrics,
            app,
            async {
                let _ = http_stop_rx.await;
            },
            HTTP_STOP_GRACE,
        ));
        let (grpc_stop_tx, grpc_stop_rx) = oneshot::channel::<()>();
        let grpc = otlp_grpc.map(|(grpc_listener, _)| {
            tokio::spawn(otlp::grpc::serve(
                grpc_listener,
                grpc_tls,
                connections.max_connections,
                grpc_state,
                async {
                    let _ = grpc_stop_rx.await;
                },
            ))
        });

        let _ = shutdown_rx.await;
        if let Some(watcher) = certificate_watcher {
            watcher.abort();
        }
        let _ = http_stop_tx.send(());
        let _ = grpc_stop_tx.send(());
        // A message being stored is left uncommitted: the group delivers it again.
        let _ = kafka_stop_tx.send(());
        if let Some(kafka_ingest) = kafka_ingest {
            let _ = kafka_ingest.await;
        }
        // The recorders write what they buffered, then commit it to their brokers.
        let recorders_stopped = async {
            if let Some(recorders) = recorders {
                recorders.stop().await;
            }
        };
        let _ = tokio::join!(recorders_stopped, http);
        if let Some(grpc) = grpc {
            let _ = grpc.await;
        }
        // The maintenance loops flush the heads before they return.
        tenants.stop().await;
        let _ = maintenance_stop_tx.send(());
        let _ = maintenance.await;
        if let Some(ticker) = tail_ticker {
            ticker.abort();
        }
    });
    Ok(RunningServer {
        local_addr,
        otlp_grpc_addr,
        store,
        tls: config.tls.is_some(),
        shutdown: Some(shutdown_tx),
        task,
    })
}

/// How long `stop` waits for HTTP requests in flight before it stops waiting for them.
const HTTP_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Tls(crate::tls::TlsError),
    #[error("opening the store: {0}")]
    Store(StoreError),
    #[error("listening on {0}: {1}; choose another address with --listen")]
    Bind(SocketAddr, std::io::Error),
    #[error(
        "listening for OTLP/gRPC on {0}: {1}; choose another address with --otlp-grpc-listen, or `off`"
    )]
    BindOtlpGrpc(SocketAddr, std::io::Error),
    /// The sampling rules file is unreadable or invalid; the message names the file.
    #[error("{0}")]
    Sampling(String),
    #[error(
        "default_sample_rate_ppm: {0} is more than {max}; it must be 0 (trace nothing) to {max} (trace everything)",
        max = RATE_PPM_MAX
    )]
    DefaultSampleRate(u32),
    #[error(
        "max_body_memory: {} MiB is more than half of memory_limit ({} MiB), which also holds \
         the spans not yet in blocks and the blocks' filters; lower max_body_memory to at most \
         {} MiB or raise memory_limit",
        max_body_memory >> 20,
        memory_limit >> 20,
        (memory_limit / 2) >> 20
    )]
    BodyMemory {
        max_body_memory: u64,
        memory_limit: u64,
    },
    #[error("{0}")]
    TailSampling(crate::tail::TailSamplingConfigError),
    #[error("{0}")]
    ArchiveConfig(crate::archive::ArchiveConfigError),
    /// The archive's location could not be opened; the message names it.
    #[error("{0}")]
    Archive(String),
    #[error(
        "{0} is reachable from other machines, and no [auth] tokens are configured: anyone who \
         reaches it could write spans, read every trace and change sampling rules. Add tokens \
         (muninn token new --scope …; docs/security.md), listen on 127.0.0.1, or pass --insecure \
         to serve without them all the same"
    )]
    Exposed(SocketAddr),
    #[error(
        "tenants (a token's tenant, or tenant_header) are served by a single node; a cluster's \
         roles ([storage] node, --role query) cannot hold them yet: run a node per tenant group"
    )]
    TenantsInCluster,
    #[error("max_tenants is 0 while tokens name tenants or tenant_header is on; use 1 or more")]
    NoTenants,
    #[error(
        "[auth] has no tokens: with authentication on, every request would be refused; add \
         [[auth.tokens]] entries (muninn token new --scope …), or remove [auth]"
    )]
    NoTokens,
}

/// Tenants live in one node's stores: a cluster's roles (`[storage] node`, a query node) are
/// refused with them, as is a token naming a tenant on a server that cannot hold one.
fn check_tenancy(config: &ServerConfig) -> Result<(), StartError> {
    let token_tenants = config
        .auth
        .iter()
        .flat_map(|auth| &auth.tokens)
        .any(|token| token.tenant.is_some());
    if !token_tenants && !config.tenancy.header {
        return Ok(());
    }
    let clustered = config.store.role != muninn_store::StoreRole::ReadWrite
        || config
            .store
            .blocks
            .as_ref()
            .is_some_and(|blocks| blocks.node.is_some());
    if clustered {
        return Err(StartError::TenantsInCluster);
    }
    if config.tenancy.max_tenants == 0 {
        return Err(StartError::NoTenants);
    }
    Ok(())
}

/// Without tokens, only loopback addresses, unless `insecure`.
fn check_exposure(config: &ServerConfig) -> Result<(), StartError> {
    match &config.auth {
        Some(auth) if auth.tokens.is_empty() => return Err(StartError::NoTokens),
        Some(_) => return Ok(()),
        None if config.insecure => return Ok(()),
        None => {}
    }
    for address in std::iter::once(config.listen).chain(config.otlp_grpc_listen) {
        if !address.ip().is_loopback() {
            return Err(StartError::Exposed(address));
        }
    }
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/api/v1/spans", post(ingest::post_spans))
        .route("/v1/traces", post(otlp::http::post_traces))
        .route("/api/v1/counts", post(ingest::post_counts))
        .route("/api/v1/admin/flush", post(ingest::post_flush))
        .route("/api/v1/internal/head", get(crate::cluster::head))
        .route("/api/v1/admin/compact", post(ingest::post_compact))
        .route("/api/v1/event-types", get(query::event_types))
        .route(
            "/api/v1/event-types/{event_type}/producers",
            get(query::producers),
        )
        .route(
            "/api/v1/event-types/{event_type}/consumers",
            get(query::consumers),
        )
        .route(
            "/api/v1/event-types/{event_type}/schemas",
            get(crate::schemas::schemas),
        )
        .route(
            "/api/v1/event-types/{event_type}/impact",
            get(crate::schemas::impact),
        )
        .route("/api/v1/streams", get(query::streams))
        .route("/api/v1/services", get(query::services))
        .route("/api/v1/throughput", get(query::throughput))
        .route("/api/v1/compare", get(crate::compare::compare))
        .route("/api/v1/lineage", get(query::lineage))
        .route("/api/v1/events/{event_id}", get(query::journey))
        .route("/api/v1/traces/{trace_id}", get(query::trace))
        .route("/api/v1/archive/streams", get(archive::streams))
        .route("/api/v1/archive/messages", get(archive::messages))
        .route("/api/v1/archive/messages/raw", get(archive::raw_message))
        .route(
            "/api/v1/archive/events/{event_id}",
            get(archive::event_messages),
        )
        .route(
            "/api/v1/sampling/rules",
            get(sampling::list_rules).post(sampling::create_rule),
        )
        .route(
            "/api/v1/sampling/rules/{id}",
            get(sampling::get_rule)
                .put(sampling::put_rule)
                .delete(sampling::delete_rule),
        )
        .route("/api/v1/sampling/config", get(sampling::config))
        .route("/api/v1/sampling/tail", get(crate::tail::get_tail))
        // Zipkin's v2 API and Jaeger's query API (`compat/`).
        .route(
            "/api/v2/spans",
            get(compat::zipkin::span_names).post(compat::zipkin::post_spans),
        )
        .route("/api/v2/services", get(compat::zipkin::services))
        .route("/api/v2/traces", get(compat::zipkin::traces))
        .route("/api/v2/trace/{traceId}", get(compat::zipkin::trace))
        .route("/api/v2/dependencies", get(compat::zipkin::dependencies))
        .route(
            "/api/v2/autocompleteKeys",
            get(compat::zipkin::autocomplete),
        )
        .route(
            "/api/v2/autocompleteValues",
            get(compat::zipkin::autocomplete),
        )
        .route("/api/services", get(compat::jaeger::services))
        .route(
            "/api/services/{service}/operations",
            get(compat::jaeger::service_operations),
        )
        .route("/api/operations", get(compat::jaeger::operations))
        .route("/api/traces", get(compat::jaeger::traces))
        .route("/api/traces/{traceID}", get(compat::jaeger::trace))
        .route("/api/dependencies", get(compat::jaeger::dependencies))
        .route("/api/v1/openapi.yaml", get(openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::query_limit::limit_queries,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), time_queries));
    // The browser UI's pages and files, outside the query timing (they read no data).
    api.merge(muninn_ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// An unknown path: a browser asking for a page gets the UI's shell (which says there is no
/// such page, with a 404), anything else the API's JSON error.
async fn not_found(request: Request) -> Response {
    let wants_html = request
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && request.method() == axum::http::Method::GET {
        return muninn_ui::page_not_found().await;
    }
    crate::error::ApiError::not_found("no such route; see /api/v1/openapi.yaml for the API")
        .into_response()
}

/// The JSON error body for a known route and the wrong method (axum's own 405 has no body).
async fn method_not_allowed() -> crate::error::ApiError {
    crate::error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take this method; the Allow header lists the ones it takes",
    )
}

async fn time_queries(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string());
    let is_query = request.method() == axum::http::Method::GET;
    let started = Instant::now();
    let response = next.run(request).await;
    if is_query && let Some(route) = route {
        state
            .metrics
            .query_seconds
            .get_or_create(&vec![("route".to_string(), route)])
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

/// Liveness, and the archive recorders' health when an archive is configured. Always 200 while
/// the server answers: a recorder whose broker or object store is away makes the status
/// `degraded` (with its last error) but restarting the server would not help it, so a liveness
/// probe must not fail; alert on `muninn_archive_healthy` instead.
/// `ok`, or `degraded` while the WAL cannot be written (ingest answers 503), the last flush
/// failed (the spans wait in the WAL) or an archive recorder is failing; each part says why.
async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let (store, mut store_healthy) = store_health(&state.store);
    let mut health = serde_json::json!({ "store": store });
    // Each open tenant's store, by tenant: a tenant whose WAL or flush fails degrades the server.
    let tenants = state.tenants.open_states();
    if !tenants.is_empty() {
        let mut by_tenant = serde_json::Map::new();
        for (id, tenant) in tenants {
            let (store, healthy) = store_health(&tenant.store);
            store_healthy &= healthy;
            by_tenant.insert(id.to_string(), store);
        }
        health["tenants"] = by_tenant.into();
    }
    let archive_healthy = match &state.archive {
        None => true,
        Some(archive) => {
            health["archive"] = archive.health();
            archive.healthy()
        }
    };
    health["status"] = if store_healthy && archive_healthy {
        "ok".into()
    } else {
        "degraded".into()
    };
    axum::Json(health)
}

/// A store's part of `/healthz`, and whether its WAL and its flushes work.
fn store_health(store: &Store) -> (serde_json::Value, bool) {
    let stats = store.stats();
    let flushing = stats.flush_error.is_none();
    let wal = stats.wal_error.is_none();
    let health = serde_json::json!({
        "wal": if wal { "ok" } else { "failing" },
        "wal_failures": stats.wal_failures,
        "last_wal_error": stats.wal_error,
        "flushing": if flushing { "ok" } else { "failing" },
        "flush_failures": stats.flush_failures,
        "last_flush_error": stats.flush_error,
        "quarantined_blocks": store.quarantined_blocks(),
    });
    (health, flushing && wal)
}

async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        crate::OPENAPI_YAML,
    )
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if let Some(sampler) = &state.tail_sampler {
        sampler.before_scrape();
    }
    state.metrics.tenants.set(&state.tenants.open_states());
    let text = state
        .metrics
        .render(&state.store, state.sampling.len(), &state.body_budget);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
