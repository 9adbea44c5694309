//! Jaeger's query HTTP API (what Jaeger UI and Grafana's Jaeger data source call), answered
//! from Muninn's store: services and operations, trace search and look-up, the dependency
//! graph. Answers and errors use Jaeger's envelope `{data, total, limit, offset, errors}`;
//! an error's entry has Jaeger's `code` and `msg` plus `field`, the offending parameter.

use crate::tenant::TenantState;

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muninn_model::{SpanKind, TraceId, now_unix_nanos};
use muninn_query::{TagPredicate, TagStyle, TraceSearchQuery};
use muninn_store::SpanQuery;

use super::{
    DEFAULT_LOOKBACK_NANOS, NANOS_PER_MICRO, ParamError, Params, RawParams, dependency_range,
    parse_go_duration, streams_flag, whole_retention,
};

/// Traces a search returns when `limit` is absent (Jaeger's own default).
const DEFAULT_LIMIT: usize = 100;

/// An error answer in Jaeger's envelope.
pub(crate) struct JaegerApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl JaegerApiError {
    fn not_found(message: String) -> Self {
        JaegerApiError {
            status: StatusCode::NOT_FOUND,
            message,
            field: None,
        }
    }
}

impl From<ParamError> for JaegerApiError {
    fn from(error: ParamError) -> Self {
        JaegerApiError {
            status: StatusCode::BAD_REQUEST,
            message: error.message,
            field: Some(error.field),
        }
    }
}

impl IntoResponse for JaegerApiError {
    fn into_response(self) -> Response {
        let body = muninn_query::jaeger_error(self.status.as_u16(), self.message, self.field);
        (self.status, Json(body)).into_response()
    }
}

type Answer = Result<Response, JaegerApiError>;

fn path_text(
    segment: Result<Path<String>, PathRejection>,
    name: &str,
) -> Result<String, JaegerApiError> {
    segment.map(|Path(value)| value).map_err(|rejection| {
        ParamError::new(
            name,
            format!("must be percent-encoded UTF-8 ({})", rejection.body_text()),
        )
        .into()
    })
}

fn trace_id(text: &str, name: &str) -> Result<TraceId, JaegerApiError> {
    TraceId::from_short_hex(text).map_err(|error| {
        ParamError::new(name, format!("{text:?} is not a trace id: {error}")).into()
    })
}

/// `GET /api/services`.
pub(crate) async fn services(TenantState(state): TenantState) -> Response {
    Json(muninn_query::jaeger_services(&state.store, whole_retention()).await).into_response()
}

/// `GET /api/services/{service}/operations`.
pub(crate) async fn service_operations(
    TenantState(state): TenantState,
    service: Result<Path<String>, PathRejection>,
) -> Answer {
    let service = path_text(service, "service")?;
    Ok(
        Json(muninn_query::jaeger_operation_names(&state.store, whole_retention(), &service).await)
            .into_response(),
    )
}

/// `GET /api/operations?service=&spanKind=`.
pub(crate) async fn operations(TenantState(state): TenantState, raw: RawParams) -> Answer {
    let params = Params::read(raw)?;
    let service = params
        .get("service")
        .ok_or_else(|| ParamError::new("service", "is required"))?;
    let kind = match params.get("spanKind") {
        None => None,
        Some(text) => Some(SpanKind::parse(text).ok_or_else(|| {
            ParamError::new(
                "spanKind",
                format!("{text:?} is not one of server, client, producer, consumer, internal"),
            )
        })?),
    };
    Ok(
        Json(muninn_query::jaeger_operations(&state.store, whole_retention(), service, kind).await)
            .into_response(),
    )
}

/// Tags from `tags={"k":"v"}` (a JSON object) and `tag=k:v` (repeated).
fn tag_predicates(params: &Params) -> Result<Vec<TagPredicate>, ParamError> {
    let mut predicates = Vec::new();
    for text in params.all("tags") {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|error| {
                ParamError::new(
                    "tags",
                    format!(
                        "must be a JSON object of tag values, like {{\"error\":\"true\"}} ({error})"
                    ),
                )
            })?;
        for (key, value) in object {
            let value = match value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Bool(_) | serde_json::Value::Number(_) => value.to_string(),
                other => {
                    return Err(ParamError::new(
                        "tags",
                        format!(
                            "the value of {key:?} must be a string, number or boolean, got {other}"
                        ),
                    ));
                }
            };
            predicates.push(TagPredicate {
                key,
                value: Some(value),
            });
        }
    }
    for text in params.all("tag") {
        let (key, value) = text
            .split_once(':')
            .ok_or_else(|| ParamError::new("tag", format!("{text:?} is not key:value")))?;
        predicates.push(TagPredicate {
            key: key.to_string(),
            value: Some(value.to_string()),
        });
    }
    Ok(predicates)
}

fn duration(params: &Params, name: &str) -> Result<Option<i64>, ParamError> {
    params
        .get(name)
        .map(|text| {
            parse_go_duration(text).ok_or_else(|| {
                ParamError::new(
                    name,
                    format!("{text:?} is not a duration; use a number and a unit, like 1.2s, 100ms, 500us, 1m30s"),
                )
            })
        })
        .transpose()
}

/// The search of `GET /api/traces` from its parameters.
fn search_query(params: &Params) -> Result<TraceSearchQuery, ParamError> {
    let service = params
        .get("service")
        .ok_or_else(|| ParamError::new("service", "is required (or give traceID)"))?;
    let end = params
        .scaled("end", NANOS_PER_MICRO, "microseconds")?
        .unwrap_or_else(now_unix_nanos);
    let lookback = match params.get("lookback").filter(|text| *text != "custom") {
        None => DEFAULT_LOOKBACK_NANOS,
        Some(_) => duration(params, "lookback")?.unwrap_or(DEFAULT_LOOKBACK_NANOS),
    };
    let start = params
        .scaled("start", NANOS_PER_MICRO, "microseconds")?
        .unwrap_or_else(|| end.saturating_sub(lookback));
    if start > end {
        return Err(ParamError::new("start", "must not be after end"));
    }
    let min_duration = duration(params, "minDuration")?;
    let max_duration = duration(params, "maxDuration")?;
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
            from_unix_nanos: start,
            // `end` is inclusive to the microsecond.
            to_unix_nanos: end.saturating_add(NANOS_PER_MICRO),
            service: Some(service.to_string()),
            name: params.get("operation").map(str::to_string),
            min_duration_nanos: min_duration,
            max_duration_nanos: max_duration,
            max_traces: params.limit(DEFAULT_LIMIT)?,
        },
        tags: tag_predicates(params)?,
        remote_service: None,
        style: TagStyle::Jaeger,
    })
}

/// `GET /api/traces`: a search, or with `traceID` (repeated) those traces.
pub(crate) async fn traces(TenantState(state): TenantState, raw: RawParams) -> Answer {
    let params = Params::read(raw)?;
    let trace_ids = params.all("traceID");
    if !trace_ids.is_empty() {
        let mut answer = muninn_query::JaegerResponse {
            data: Vec::new(),
            total: 0,
            limit: 0,
            offset: 0,
            errors: None,
        };
        for text in trace_ids {
            let trace_id = trace_id(text, "traceID")?;
            if let Some(found) = muninn_query::jaeger_trace_by_id(&state.store, trace_id).await {
                answer.data.extend(found.data);
                if let Some(errors) = found.errors {
                    answer.errors.get_or_insert_with(Vec::new).extend(errors);
                }
            }
        }
        answer.total = answer.data.len();
        return Ok(Json(answer).into_response());
    }
    let query = search_query(&params)?;
    Ok(Json(muninn_query::jaeger_search(&state.store, &query).await).into_response())
}

/// `GET /api/traces/{traceID}`.
pub(crate) async fn trace(
    TenantState(state): TenantState,
    trace_id_text: Result<Path<String>, PathRejection>,
) -> Answer {
    let text = path_text(trace_id_text, "traceID")?;
    let trace_id = trace_id(&text, "traceID")?;
    match muninn_query::jaeger_trace_by_id(&state.store, trace_id).await {
        Some(answer) => Ok(Json(answer).into_response()),
        None => Err(JaegerApiError::not_found(format!(
            "trace not found: no span has trace id {}",
            trace_id.to_short_hex()
        ))),
    }
}

/// `GET /api/dependencies?endTs=&lookback=&streams=`.
pub(crate) async fn dependencies(TenantState(state): TenantState, raw: RawParams) -> Answer {
    let params = Params::read(raw)?;
    let range = dependency_range(&params)?;
    let streams = streams_flag(&params)?;
    Ok(Json(muninn_query::jaeger_dependencies(
        &state.store,
        range,
        streams,
    ))
    .into_response())
}
