//! Query routes. Parameters are validated here (times, ids, formats) with errors that name the
//! parameter; the answers come from `muninn-query` and are returned as JSON (or Mermaid/DOT).

use crate::tenant::TenantState;
use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use muninn_model::{Action, TraceId, now_unix_nanos, parse_duration, parse_time};
use muninn_query::{Filter, TimeRange};

use crate::error::ApiError;
use crate::server::AppState;

pub(crate) type Params = Query<HashMap<String, String>>;

/// A path segment, or an error body naming it (axum's own rejection is plain text).
pub(crate) fn path_segment(
    segment: Result<Path<String>, PathRejection>,
    name: &str,
) -> Result<String, ApiError> {
    segment.map(|Path(value)| value).map_err(|rejection| {
        ApiError::bad_field(
            name,
            format!(
                "{name}: must be percent-encoded UTF-8 ({})",
                rejection.body_text()
            ),
        )
    })
}

pub(crate) fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

/// `from`/`to` with defaults, as `[from, to)`.
fn range(
    params: &HashMap<String, String>,
    default_from: &str,
    default_to: &str,
) -> Result<TimeRange, ApiError> {
    let now = now_unix_nanos();
    let read = |name: &str, default: &str| {
        parse_time(param(params, name).unwrap_or(default), now)
            .map_err(|error| ApiError::bad_field(name, format!("{name}: {error}")))
    };
    let from_unix_nanos = read("from", default_from)?;
    let to_unix_nanos = read("to", default_to)?;
    if from_unix_nanos >= to_unix_nanos {
        return Err(ApiError::bad_field("from", "from: must be before to"));
    }
    Ok(TimeRange {
        from_unix_nanos,
        to_unix_nanos,
    })
}

/// The whole retention by default: from the unix epoch to an hour from now (clock skew).
const ALL_FROM: &str = "0";
const ALL_TO: &str = "+1h";

pub(crate) fn filter(params: &HashMap<String, String>) -> Result<Filter, ApiError> {
    let action = match param(params, "action") {
        None => None,
        Some(text) => Some(Action::parse(text).ok_or_else(|| {
            ApiError::bad_field(
                "action",
                format!("action: {text:?} is not one of produced, consumed"),
            )
        })?),
    };
    Ok(Filter {
        event_type: name_pattern(params, "event_type")?,
        service: name_pattern(params, "service")?,
        stream: name_pattern(params, "stream")?,
        action,
    })
}

/// A name filter: a name, or a pattern with `*` and `?` (`order.*`); a 400 names the parameter.
fn name_pattern(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<muninn_query::NamePattern>, ApiError> {
    param(params, name)
        .map(muninn_query::NamePattern::new)
        .transpose()
        .map_err(|error| ApiError::bad_field(name, format!("{name}: {error}")))
}

pub(crate) async fn event_types(
    TenantState(state): TenantState,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let range = range(&params, ALL_FROM, ALL_TO)?;
    let event_types = muninn_query::event_types(&state.store, range);
    Ok(Json(serde_json::json!({ "event_types": event_types })).into_response())
}

async fn participants(
    state: &AppState,
    params: &HashMap<String, String>,
    event_type: &str,
    action: Action,
) -> Result<Response, ApiError> {
    let range = range(params, ALL_FROM, ALL_TO)?;
    let list = muninn_query::participants(&state.store, range, event_type, action);
    let key = match action {
        Action::Produced => "producers",
        Action::Consumed => "consumers",
    };
    Ok(Json(serde_json::json!({ "event_type": event_type, key: list })).into_response())
}

pub(crate) async fn producers(
    TenantState(state): TenantState,
    event_type: Result<Path<String>, PathRejection>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let event_type = path_segment(event_type, "event_type")?;
    participants(&state, &params, &event_type, Action::Produced).await
}

pub(crate) async fn consumers(
    TenantState(state): TenantState,
    event_type: Result<Path<String>, PathRejection>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let event_type = path_segment(event_type, "event_type")?;
    participants(&state, &params, &event_type, Action::Consumed).await
}

pub(crate) async fn streams(
    TenantState(state): TenantState,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let range = range(&params, ALL_FROM, ALL_TO)?;
    Ok(
        Json(serde_json::json!({ "streams": muninn_query::streams(&state.store, range) }))
            .into_response(),
    )
}

pub(crate) async fn services(
    TenantState(state): TenantState,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let range = range(&params, ALL_FROM, ALL_TO)?;
    Ok(
        Json(serde_json::json!({ "services": muninn_query::services(&state.store, range) }))
            .into_response(),
    )
}

pub(crate) async fn throughput(
    TenantState(state): TenantState,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let range = range(&params, "-1h", "now")?;
    let step_seconds = match param(&params, "step") {
        None => 60,
        Some(text) => {
            let duration = parse_duration(text)
                .map_err(|error| ApiError::bad_field("step", format!("step: {error}")))?;
            i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
        }
    };
    let filter = filter(&params)?;
    let answer =
        muninn_query::throughput(&state.store, range, step_seconds, &filter).map_err(|error| {
            let field = if matches!(error, muninn_query::ThroughputError::EmptyRange) {
                "from"
            } else {
                "step"
            };
            ApiError::bad_field(field, error.to_string())
        })?;
    Ok(Json(answer).into_response())
}

pub(crate) async fn lineage(
    TenantState(state): TenantState,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let range = range(&params, ALL_FROM, ALL_TO)?;
    let filter = filter(&params)?;
    let lineage = muninn_query::lineage(&state.store, range, &filter);
    match param(&params, "format").unwrap_or("json") {
        "json" => Ok(Json(lineage).into_response()),
        "mermaid" => Ok((
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            muninn_query::render_mermaid(&lineage),
        )
            .into_response()),
        "dot" => Ok((
            [(CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
            muninn_query::render_dot(&lineage),
        )
            .into_response()),
        other => Err(ApiError::bad_field(
            "format",
            format!("format: {other:?} is not one of json, mermaid, dot"),
        )),
    }
}

pub(crate) async fn journey(
    TenantState(state): TenantState,
    event_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let event_id = path_segment(event_id, "event_id")?;
    if event_id.is_empty() || event_id.len() > state.limits.max_name_bytes {
        return Err(ApiError::bad_field(
            "event_id",
            format!(
                "event_id: must be 1 to {} bytes",
                state.limits.max_name_bytes
            ),
        ));
    }
    match muninn_query::journey(&state.store, &event_id).await {
        Some(journey) => match &state.archive {
            Some(archive) => Ok(
                Json(crate::archive::add_archive_links(archive, &journey).await).into_response(),
            ),
            None => Ok(Json(journey).into_response()),
        },
        None => Err(ApiError::not_found(format!(
            "no span carries event id {event_id:?}"
        ))),
    }
}

pub(crate) async fn trace(
    TenantState(state): TenantState,
    trace_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let trace_id = path_segment(trace_id, "trace_id")?;
    let parsed = TraceId::from_hex(&trace_id)
        .map_err(|error| ApiError::bad_field("trace_id", format!("trace_id: {error}")))?;
    match muninn_query::trace(&state.store, parsed).await {
        Some(tree) => Ok(Json(tree).into_response()),
        None => Err(ApiError::not_found(format!(
            "no span has trace id {}",
            parsed.to_hex()
        ))),
    }
}
