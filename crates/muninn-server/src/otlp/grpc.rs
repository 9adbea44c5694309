//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` served by tonic on its
//! own port. The message arrives as raw bytes (tonic does the framing, gzip and the size limit)
//! and is decoded here with the HTTP route's decoder, so both transports answer alike, with the
//! codes `error.rs` derives from the HTTP status of the same error: undecodable →
//! `INVALID_ARGUMENT`, too large → `RESOURCE_EXHAUSTED` (without retry info: do not retry as
//! is), store overloaded or request bodies' memory full (`max_body_memory`, of which each
//! export reserves twice the body limit while tonic holds it) → `UNAVAILABLE` with a
//! `RetryInfo` of one second, invalid spans → OK with `partial_success`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::{Buf, BufMut, Bytes};
use muninn_ingest::decode_otlp_protobuf;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};

use super::{GRPC_ENDPOINT, count_request};
use crate::body_budget::BodyBudget;
use crate::error::{ApiError, grpc_code};
use crate::server::AppState;

const SERVICE_NAME: &str = "opentelemetry.proto.collector.trace.v1.TraceService";

/// How long `stop` waits for gRPC connections to finish before closing them.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Serves OTLP/gRPC on `listener` until `stop` resolves: at most `max_connections` at once, over
/// TLS when `tls` is given (`listen.rs` accepts; tonic serves what it accepted).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_connections: usize,
    state: Arc<AppState>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let places = Arc::new(tokio::sync::Semaphore::new(
        max_connections.clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let (accepted_tx, accepted_rx) = tokio::sync::mpsc::channel::<crate::listen::Connection>(16);
    let (accept_stop_tx, accept_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let metrics = state.metrics.limits.connections("otlp_grpc");
    let accepting = tokio::spawn(crate::listen::accept_loop(
        listener,
        tls,
        places,
        metrics,
        move |connection| {
            let accepted_tx = accepted_tx.clone();
            async move {
                let _ = accepted_tx.send(connection).await;
            }
        },
        async {
            let _ = accept_stop_rx.await;
        },
    ));
    let incoming = futures::stream::unfold(accepted_rx, |mut accepted| async move {
        let connection = accepted.recv().await?;
        Some((Ok::<_, std::io::Error>(connection), accepted))
    });
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder().serve_with_incoming_shutdown(
        TraceService { state },
        incoming,
        async move {
            stop.await;
            let _ = accept_stop_tx.send(());
            let _ = stopped_tx.send(());
        },
    );
    tokio::pin!(server);
    // Exporters keep their channel open; after the stop signal, give requests in flight a
    // grace period, then close what is left.
    tokio::select! {
        result = &mut server => {
            if let Err(error) = result {
                tracing::error!(%error, "otlp grpc server failed");
            }
        }
        () = async {
            let _ = stopped_rx.await;
            tokio::time::sleep(STOP_GRACE).await;
        } => {
            tracing::warn!("otlp grpc connections still open {STOP_GRACE:?} after stop; closing them");
        }
    }
    accepting.abort();
}

/// Binds the gRPC listener (so `start` fails early and reports the bound port).
pub(crate) async fn bind(
    address: SocketAddr,
) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// The `TraceService`, with only `Export`.
#[derive(Clone)]
struct TraceService {
    state: Arc<AppState>,
}

impl NamedService for TraceService {
    const NAME: &'static str = SERVICE_NAME;
}

impl Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            if request.uri().path() != GRPC_ENDPOINT {
                return Ok(Status::unimplemented(format!(
                    "{} is not served here; this is {SERVICE_NAME}/Export",
                    request.uri().path()
                ))
                .into_http());
            }
            // tonic holds the message as received and as decompressed, each up to the body
            // limit, before `Export` sees it: both are reserved of the request bodies' budget
            // first (max_body_memory), so that concurrent exports cannot hold more.
            let mut reservation = BodyBudget::none();
            let reserve = 2 * state.max_body_bytes as u64;
            if let Err(error) = state.body_budget.reserve(&mut reservation, reserve).await {
                count_request(&state, GRPC_ENDPOINT, error.status.as_u16());
                return Ok(error.into_grpc_status().into_http());
            }
            let reached_export = Arc::new(AtomicBool::new(false));
            let export = Export {
                state: state.clone(),
                reached: reached_export.clone(),
            };
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(state.max_body_bytes);
            let response = grpc.unary(export, request).await;
            drop(reservation);
            if reached_export.load(Ordering::Relaxed) {
                return Ok(response);
            }
            Ok(refused_by_tonic(&state, response))
        })
    }
}

/// tonic refuses a message before `Export` sees it when it is larger than the limit
/// (`OUT_OF_RANGE`, which OTLP clients retry, or `RESOURCE_EXHAUSTED` for a gzip body that
/// grows past it) or its framing or gzip is broken (`INTERNAL`). Retrying cannot help either,
/// so these are answered as the HTTP route answers the same faults, 413 and 400, whose gRPC
/// codes are `RESOURCE_EXHAUSTED` and `INVALID_ARGUMENT`, which clients do not retry.
fn refused_by_tonic(
    state: &AppState,
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(Code::from_i32);
    let http_status = match code {
        Some(Code::OutOfRange | Code::ResourceExhausted) => StatusCode::PAYLOAD_TOO_LARGE,
        Some(Code::Internal) => StatusCode::BAD_REQUEST,
        _ => return response,
    };
    count_request(state, GRPC_ENDPOINT, http_status.as_u16());
    let value = http::HeaderValue::from(grpc_code(http_status) as i32);
    response.headers_mut().insert("grpc-status", value);
    response
}

/// Export: decode, map, store, answer.
struct Export {
    state: Arc<AppState>,
    reached: Arc<AtomicBool>,
}

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        self.reached.store(true, Ordering::Relaxed);
        let state = self.state.clone();
        let mut token = None;
        if let Some(auth) = &state.auth {
            let authorization = request
                .metadata()
                .get("authorization")
                .and_then(|value| value.to_str().ok());
            let needs = crate::auth::Needs::One(crate::auth::Scope::Ingest);
            match auth.check(authorization, needs) {
                Err(refusal) => {
                    state.metrics.count_auth_refusal(&refusal);
                    count_request(&state, GRPC_ENDPOINT, refusal.status().as_u16());
                    let status = refusal.grpc_status("TraceService/Export");
                    return Box::pin(async move { Err(status) });
                }
                Ok(accepted) => {
                    let length = request.get_ref().len() as u64;
                    if let Err(status) = limit_rate(&state, &accepted.name, length) {
                        return Box::pin(async move { Err(status) });
                    }
                    token = Some(accepted.clone());
                }
            }
        }
        let header = match request.metadata().get(TENANT_METADATA) {
            None => Ok(None),
            Some(value) => value.to_str().map(Some).map_err(|_| ()),
        };
        let tenant = crate::tenant::resolve(state.tenants.config(), header, token.as_ref());
        Box::pin(async move {
            let state = match tenant {
                Ok(None) => state,
                Ok(Some(id)) => match state.tenants.state(&state, &id).await {
                    Ok(tenant_state) => tenant_state,
                    Err(error) => {
                        count_request(&state, GRPC_ENDPOINT, error.status.as_u16());
                        return Err(error.into_grpc_status());
                    }
                },
                Err(error) => {
                    count_request(&state, GRPC_ENDPOINT, error.status.as_u16());
                    return Err(error.into_grpc_status());
                }
            };
            let (status, result) = export(&state, request.into_inner()).await;
            count_request(&state, GRPC_ENDPOINT, status);
            result.map(Response::new)
        })
    }
}

/// Admits an Export of `length` bytes under its token's rate limit (`rate_limit.rs`), or the
/// `RESOURCE_EXHAUSTED` with a `RetryInfo` that OTLP exporters wait for before they retry.
fn limit_rate(state: &AppState, token: &str, length: u64) -> Result<(), Status> {
    crate::rate_limit::admit(state, token, Some(length)).map_err(|refused| {
        count_request(state, GRPC_ENDPOINT, StatusCode::TOO_MANY_REQUESTS.as_u16());
        <Status as tonic_types::StatusExt>::with_error_details(
            Code::ResourceExhausted,
            refused.message,
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(
                refused.retry_after_seconds,
            ))),
        )
    })
}

/// The outcome of one Export and the HTTP status of the same outcome (for the metrics).
async fn export(state: &AppState, message: Bytes) -> (u16, Result<Bytes, Status>) {
    let result = async {
        let decoded = decode_otlp_protobuf(
            &message,
            &state.otlp_mapping,
            &state.limits,
            muninn_model::now_unix_nanos(),
        )?;
        Ok::<_, ApiError>(super::store(state, decoded).await?)
    }
    .await;
    match result {
        Ok(rejected) => (
            200,
            Ok(Bytes::from(super::response(&rejected).encode_to_vec())),
        ),
        Err(error) => (error.status.as_u16(), Err(error.into_grpc_status())),
    }
}

/// `X-Scope-OrgID` as gRPC metadata keys are written (lower case).
const TENANT_METADATA: &str = "x-scope-orgid";

/// Hands the message bytes through; `Export` decodes them itself.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, destination: &mut EncodeBuf<'_>) -> Result<(), Status> {
        destination.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(source.copy_to_bytes(source.remaining())))
    }
}
