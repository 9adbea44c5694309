//! Ingest routes: `POST /api/v1/spans` and `POST /api/v1/counts`. The body is read up to the
//! limit, decompressed up to the limit, decoded; valid records are appended durably and the
//! answer counts them and lists the rejected ones (200 when anything was accepted). A request
//! with an `Idempotency-Key` already answered gets that answer again, stored once
//! (`idempotency.rs`).

use crate::tenant::TenantState;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use muninn_ingest::{Decoded, IngestError, Rejection, decode_counts, decode_spans, decompress};
use muninn_model::{EventCount, Span};
use serde::Serialize;

use crate::body_budget::{BodyBudget, BodyReservation};
use crate::error::ApiError;
use crate::idempotency::{self, Claim};
use crate::server::AppState;

/// At most this many rejections are listed; `rejected_count` has the total.
const MAX_LISTED_REJECTIONS: usize = 1000;

#[derive(Serialize)]
struct IngestResponse {
    accepted: usize,
    rejected_count: usize,
    rejected: Vec<RejectionBody>,
}

#[derive(Serialize)]
struct RejectionBody {
    index: usize,
    field: String,
    reason: String,
}

/// Reads and decompresses a request body, both up to the body limit, within the memory request
/// bodies may hold together (`body_budget.rs`): the body's bytes, and the reservation to keep
/// until its records are appended.
pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(bytes::Bytes, BodyReservation), ApiError> {
    let limit = state.max_body_bytes;
    let mut reservation = BodyBudget::none();
    // What the body will take as it arrives: its length when it says, the limit when not.
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .map_or(limit as u64, |length| length.min(limit as u64));
    // Refused before the body is read whole: the answer closes the connection.
    state
        .body_budget
        .reserve(&mut reservation, announced)
        .await
        .map_err(ApiError::body_unread)?;
    let timeout = state.body_read_timeout;
    let bytes = match tokio::time::timeout(timeout, to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than the limit of {limit} bytes; send smaller batches"),
            )
            .body_unread());
        }
        Err(_) => {
            state.metrics.limits.body_timeouts.inc();
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within body_read_timeout ({timeout:?}); nothing of \
                     it was stored, send it again"
                ),
            )
            .body_unread());
        }
    };
    let encoding = headers
        .get("content-encoding")
        .and_then(|value| value.to_str().ok());
    // Identity bodies are used as they arrived, without a copy.
    let decompressed = match decompress(&bytes, encoding, limit)? {
        std::borrow::Cow::Borrowed(_) => None,
        std::borrow::Cow::Owned(output) => Some(bytes::Bytes::from(output)),
    };
    if let Some(decompressed) = &decompressed {
        state
            .body_budget
            .reserve(&mut reservation, decompressed.len() as u64)
            .await?;
    }
    Ok((decompressed.unwrap_or(bytes), reservation))
}

/// The answer to a decoded request: its status and JSON body.
fn answer(
    state: &AppState,
    record_kind: &str,
    accepted: usize,
    rejected: Vec<Rejection>,
    endpoint: &str,
) -> (StatusCode, bytes::Bytes) {
    for rejection in &rejected {
        state.metrics.count_rejection(record_kind, &rejection.field);
    }
    let rejected_count = rejected.len();
    let status = if accepted == 0 && rejected_count > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    count_request(state, endpoint, status);
    let body = IngestResponse {
        accepted,
        rejected_count,
        rejected: rejected
            .into_iter()
            .take(MAX_LISTED_REJECTIONS)
            .map(|rejection| RejectionBody {
                index: rejection.index,
                field: rejection.field,
                reason: rejection.reason,
            })
            .collect(),
    };
    // Plain strings and numbers always serialize.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    (status, bytes::Bytes::from(body))
}

fn json_response(status: StatusCode, body: bytes::Bytes) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn count_request(state: &AppState, endpoint: &str, status: StatusCode) {
    state
        .metrics
        .ingest_requests
        .get_or_create(&vec![
            ("endpoint".into(), endpoint.into()),
            ("status".into(), status.as_u16().to_string()),
        ])
        .inc();
}

fn count_failure(state: &AppState, endpoint: &str, error: &ApiError) {
    count_request(state, endpoint, error.status);
}

/// What one ingest route takes: its records, how to decode them and how to store them.
trait RecordKind: Sized + Send + 'static {
    const ENDPOINT: &'static str;
    const NAME: &'static str;
    fn decode(body: &[u8], state: &AppState) -> Result<Decoded<Self>, IngestError>;
    fn store(
        records: Vec<Self>,
        state: &AppState,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

impl RecordKind for Span {
    const ENDPOINT: &'static str = "/api/v1/spans";
    const NAME: &'static str = "span";
    fn decode(body: &[u8], state: &AppState) -> Result<Decoded<Self>, IngestError> {
        decode_spans(body, &state.limits, muninn_model::now_unix_nanos())
    }
    async fn store(records: Vec<Self>, state: &AppState) -> Result<(), ApiError> {
        let n_records = records.len() as u64;
        state.store.append(records, Vec::new()).await?;
        state.metrics.ingested_spans.inc_by(n_records);
        Ok(())
    }
}

impl RecordKind for EventCount {
    const ENDPOINT: &'static str = "/api/v1/counts";
    const NAME: &'static str = "count";
    fn decode(body: &[u8], state: &AppState) -> Result<Decoded<Self>, IngestError> {
        decode_counts(body, &state.limits, muninn_model::now_unix_nanos())
    }
    async fn store(records: Vec<Self>, state: &AppState) -> Result<(), ApiError> {
        let n_records = records.len() as u64;
        state.store.append(Vec::new(), records).await?;
        state.metrics.ingested_counts.inc_by(n_records);
        Ok(())
    }
}

async fn ingest<R: RecordKind>(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Response {
    let key = match idempotency::key_of(&headers) {
        Ok(key) => key,
        Err(error) => {
            count_failure(&state, R::ENDPOINT, &error);
            return error.into_response();
        }
    };
    if let Some(key) = &key {
        match state.idempotency.claim(R::ENDPOINT, key) {
            Claim::New => {}
            Claim::Answered(status, body) => {
                count_request(&state, R::ENDPOINT, status);
                state.metrics.idempotent_replays.inc();
                let mut response = json_response(status, body);
                response.headers_mut().insert(
                    idempotency::REPLAYED_HEADER,
                    axum::http::HeaderValue::from_static("true"),
                );
                return response;
            }
            Claim::InProgress => {
                let error = ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "a request with Idempotency-Key {key:?} is still being processed; \
                         retry it shortly"
                    ),
                );
                count_failure(&state, R::ENDPOINT, &error);
                let mut response = error.into_response();
                crate::error::set_retry_after(&mut response);
                return response;
            }
        }
    }
    let Some(key) = key else {
        return match process::<R>(&state, &headers, body).await {
            Ok((status, body)) => json_response(status, body),
            Err(error) => {
                count_failure(&state, R::ENDPOINT, &error);
                error.into_response()
            }
        };
    };
    // In its own task, so that a client that gives up mid-request (and will retry with the
    // same key) cannot cancel it between storing the batch and recording the answer.
    let task_state = state.clone();
    let task = tokio::spawn(async move {
        let state = task_state;
        match process::<R>(&state, &headers, body).await {
            Ok((status, body)) => {
                state
                    .idempotency
                    .answered(R::ENDPOINT, &key, status, body.clone());
                Ok((status, body))
            }
            Err(error) => {
                // Nothing was stored: a retry with the same key must go ahead.
                state.idempotency.release(R::ENDPOINT, &key);
                Err(error)
            }
        }
    });
    let result = task.await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the ingest task stopped unexpectedly; retry the request",
        ))
    });
    match result {
        Ok((status, body)) => json_response(status, body),
        Err(error) => {
            count_failure(&state, R::ENDPOINT, &error);
            error.into_response()
        }
    }
}

/// Reads, decodes and stores one request's records; its answer.
async fn process<R: RecordKind>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, bytes::Bytes), ApiError> {
    let (bytes, _reservation) = read_body(state, headers, body).await?;
    let decoded = R::decode(&bytes, state)?;
    let accepted = decoded.records.len();
    if accepted > 0 {
        R::store(decoded.records, state).await?;
    }
    Ok(answer(
        state,
        R::NAME,
        accepted,
        decoded.rejected,
        R::ENDPOINT,
    ))
}

pub(crate) async fn post_spans(
    TenantState(state): TenantState,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest::<Span>(state, headers, body).await
}

pub(crate) async fn post_counts(
    TenantState(state): TenantState,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest::<EventCount>(state, headers, body).await
}

/// Writes the in-memory head to Parquet blocks now (operators, benchmarks, tests).
/// `POST /api/v1/admin/compact`: one compaction round now (what the background one does every
/// few seconds): each partition's small blocks merged into one.
pub(crate) async fn post_compact(TenantState(state): TenantState) -> Result<Response, ApiError> {
    let report = state.store.compact().await?;
    Ok(Json(serde_json::json!({
        "compactions": report.n_compactions,
        "blocks_in": report.n_blocks_in,
        "blocks_out": report.n_blocks_out,
        "spans": report.n_spans,
        "bytes_in": report.bytes_in,
        "bytes_out": report.bytes_out,
    }))
    .into_response())
}

pub(crate) async fn post_flush(TenantState(state): TenantState) -> Result<Response, ApiError> {
    let report = state.store.flush().await?;
    Ok(Json(serde_json::json!({
        "blocks_written": report.n_blocks,
        "spans_written": report.n_spans,
        "bytes_written": report.bytes,
    }))
    .into_response())
}
