//! Zipkin's v2 API: `POST /api/v2/spans` takes what Zipkin reporters send (a JSON array of v2
//! spans, gzip accepted) and answers 202 with an empty body, as Zipkin does; the read routes
//! answer Zipkin's shapes in Zipkin's units (microseconds, `endTs`/`lookback` in
//! milliseconds). Errors use Muninn's error body, naming the parameter or span member.

use crate::tenant::TenantState;

use axum::Json;
use axum::body::Body;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use muninn_ingest::decode_zipkin_spans;
use muninn_model::{TraceId, now_unix_nanos};
use muninn_query::{TagPredicate, TagStyle, TraceSearchQuery, ZipkinAnswer};
use muninn_store::SpanQuery;
use serde::Serialize;
use serde_json::json;

use super::{
    DEFAULT_LOOKBACK_NANOS, NANOS_PER_MICRO, NANOS_PER_MILLI, ParamError, Params, RawParams,
    dependency_range, streams_flag, whole_retention,
};
use crate::error::ApiError;
use crate::ingest::read_body;
use crate::server::AppState;

/// The metrics label of Zipkin ingest.
const ENDPOINT: &str = "/api/v2/spans";

/// Traces a search returns when `limit` is absent (Zipkin's own default).
const DEFAULT_LIMIT: usize = 10;

/// At most this many rejections are listed, as for `POST /api/v1/spans`.
const MAX_LISTED_REJECTIONS: usize = 1000;

/// The response header that counts the blocks an answer could not read (Zipkin's shapes have
/// no place for a partial answer).
const UNREADABLE_BLOCKS_HEADER: &str = "muninn-unreadable-blocks";

impl From<ParamError> for ApiError {
    fn from(error: ParamError) -> Self {
        ApiError::bad_field(&error.field, error.message)
    }
}

fn count_request(state: &AppState, status: StatusCode) {
    state
        .metrics
        .ingest_requests
        .get_or_create(&vec![
            ("endpoint".into(), ENDPOINT.into()),
            ("status".into(), status.as_u16().to_string()),
        ])
        .inc();
}

/// `POST /api/v2/spans`: 202 without a body when every span was stored; 400 with the
/// `IngestResponse` body when any was rejected (the valid ones are stored all the same).
pub(crate) async fn post_spans(
    TenantState(state): TenantState,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if content_type.to_ascii_lowercase().contains("protobuf") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {content_type:?}: only Zipkin v2 JSON is accepted; send application/json (Encoding.V2_JSON)"
                ),
            )
            .body_unread());
        }
        let (bytes, _reservation) = read_body(&state, &headers, body).await?;
        let decoded = decode_zipkin_spans(&bytes, &state.limits, now_unix_nanos())?;
        let accepted = decoded.records.len();
        if accepted > 0 {
            state.store.append(decoded.records, Vec::new()).await?;
            state.metrics.ingested_spans.inc_by(accepted as u64);
        }
        Ok((accepted, decoded.rejected))
    }
    .await;
    match result {
        Ok((_, rejected)) if rejected.is_empty() => {
            count_request(&state, StatusCode::ACCEPTED);
            StatusCode::ACCEPTED.into_response()
        }
        Ok((accepted, rejected)) => {
            for rejection in &rejected {
                state.metrics.count_rejection("span", &rejection.field);
            }
            count_request(&state, StatusCode::BAD_REQUEST);
            let listed: Vec<_> = rejected
                .iter()
                .take(MAX_LISTED_REJECTIONS)
                .map(|rejection| {
                    json!({"index": rejection.index, "field": rejection.field, "reason": rejection.reason})
                })
                .collect();
            let body =
                json!({"accepted": accepted, "rejected_count": rejected.len(), "rejected": listed});
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        Err(error) => {
            count_request(&state, error.status);
            error.into_response()
        }
    }
}

/// A JSON answer, with the count of unreadable blocks in a header when there are any.
fn answer<T: Serialize>(answer: ZipkinAnswer<T>) -> Response {
    let mut response = Json(answer.data).into_response();
    if !answer.unreadable_blocks.is_empty() {
        for block in &answer.unreadable_blocks {
            tracing::warn!(%block, "a Zipkin answer misses an unreadable block");
        }
        response.headers_mut().insert(
            UNREADABLE_BLOCKS_HEADER,
            HeaderValue::from(answer.unreadable_blocks.len()),
        );
    }
    response
}

/// `GET /api/v2/services`.
pub(crate) async fn services(TenantState(state): TenantState) -> Response {
    answer(muninn_query::zipkin_names(&state.store, whole_retention(), None).await)
}

/// `GET /api/v2/spans?serviceName=`.
pub(crate) async fn span_names(
    TenantState(state): TenantState,
    raw: RawParams,
) -> Result<Response, ApiError> {
    let params = Params::read(raw)?;
    let service = params
        .get("serviceName")
        .ok_or_else(|| ParamError::new("serviceName", "is required"))?;
    Ok(answer(
        muninn_query::zipkin_names(&state.store, whole_retention(), Some(service)).await,
    ))
}

/// `annotationQuery`: terms joined by ` and `, each `key=value` or a bare `key`.
fn annotation_query(text: &str) -> Result<Vec<TagPredicate>, ParamError> {
    let mut predicates = Vec::new();
    for term in text.split(" and ") {
        let term = term.trim();
        if term.is_empty() {
            return Err(ParamError::new(
                "annotationQuery",
                format!("{text:?} has an empty term; write terms like error and http.method=GET"),
            ));
        }
        predicates.push(match term.split_once('=') {
            Some((key, value)) => TagPredicate {
                key: key.trim().to_string(),
                value: Some(value.trim().to_string()),
            },
            None => TagPredicate {
                key: term.to_string(),
                value: None,
            },
        });
    }
    Ok(predicates)
}

fn search_query(params: &Params) -> Result<TraceSearchQuery, ParamError> {
    let end = params
        .scaled("endTs", NANOS_PER_MILLI, "milliseconds")?
        .unwrap_or_else(now_unix_nanos);
    let lookback = params
        .scaled("lookback", NANOS_PER_MILLI, "milliseconds")?
        .unwrap_or(DEFAULT_LOOKBACK_NANOS);
    if lookback < 0 {
        return Err(ParamError::new("lookback", "must not be negative"));
    }
    let min_duration = params.scaled("minDuration", NANOS_PER_MICRO, "microseconds")?;
    let max_duration = params.scaled("maxDuration", NANOS_PER_MICRO, "microseconds")?;
    if let (Some(min), Some(max)) = (min_duration, max_duration)
        && min > max
    {
        return Err(ParamError::new(
            "minDuration",
            "must not be greater than maxDuration",
        ));
    }
    Ok(TraceSearchQuery {
        spans: SpanQuery {
            from_unix_nanos: end.saturating_sub(lookback),
            // `endTs` is inclusive to the millisecond.
            to_unix_nanos: end.saturating_add(NANOS_PER_MILLI),
            service: params.get("serviceName").map(str::to_string),
            name: params
                .get("spanName")
                .filter(|name| *name != "all")
                .map(str::to_string),
            min_duration_nanos: min_duration,
            max_duration_nanos: max_duration,
            max_traces: params.limit(DEFAULT_LIMIT)?,
        },
        tags: params
            .get("annotationQuery")
            .map(annotation_query)
            .transpose()?
            .unwrap_or_default(),
        remote_service: params.get("remoteServiceName").map(str::to_string),
        style: TagStyle::Zipkin,
    })
}

/// `GET /api/v2/traces`.
pub(crate) async fn traces(
    TenantState(state): TenantState,
    raw: RawParams,
) -> Result<Response, ApiError> {
    let params = Params::read(raw)?;
    let query = search_query(&params)?;
    Ok(answer(
        muninn_query::zipkin_search(&state.store, &query).await,
    ))
}

/// `GET /api/v2/trace/{traceId}`.
pub(crate) async fn trace(
    TenantState(state): TenantState,
    trace_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let text = crate::query::path_segment(trace_id, "traceId")?;
    let trace_id = TraceId::from_short_hex(&text).map_err(|error| {
        ApiError::bad_field(
            "traceId",
            format!("traceId: {text:?} is not a trace id: {error}"),
        )
    })?;
    match muninn_query::zipkin_trace(&state.store, trace_id).await {
        Some(found) => Ok(answer(found)),
        None => Err(ApiError::not_found(format!(
            "{} not found",
            trace_id.to_short_hex()
        ))),
    }
}

/// `GET /api/v2/dependencies?endTs=&lookback=&streams=`.
pub(crate) async fn dependencies(
    TenantState(state): TenantState,
    raw: RawParams,
) -> Result<Response, ApiError> {
    let params = Params::read(raw)?;
    let range = dependency_range(&params)?;
    let streams = streams_flag(&params)?;
    Ok(Json(muninn_query::zipkin_dependencies(
        &state.store,
        range,
        streams,
    ))
    .into_response())
}

/// `GET /api/v2/autocompleteKeys` and `/api/v2/autocompleteValues?key=`: always `[]`, as a
/// Zipkin server with no autocomplete keys configured (its default) answers; Zipkin's UI asks.
pub(crate) async fn autocomplete() -> Response {
    Json(Vec::<String>::new()).into_response()
}
