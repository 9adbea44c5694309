//! Central sampling: the rules API (`/api/v1/sampling/rules`, CRUD) and the resolved config one
//! service's SDK polls (`GET /api/v1/sampling/config?service=…`, with a strong `ETag` and 304).

mod rules;
mod validate;

use crate::tenant::TenantState;
use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use muninn_model::sampling::{SamplingRule, resolve};
use serde_json::Value;

pub(crate) use rules::{RuleSet, RulesError};
pub(crate) use validate::FieldError;

use crate::error::ApiError;
use crate::query::path_segment;
use crate::server::AppState;

/// Largest rule body; a rule is a small object (its description is at most 1024 characters).
const MAX_RULE_BODY_BYTES: usize = 64 << 10;

/// The body of a rule request as JSON; a syntax error names line and column.
async fn read_rule(body: Body) -> Result<validate::RuleBody, ApiError> {
    let bytes = to_bytes(body, MAX_RULE_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body is larger than {MAX_RULE_BODY_BYTES} bytes; a sampling rule is a small JSON object"
            ),
        )
        .body_unread()
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|error| ApiError {
        line: Some(error.line()),
        column: Some(error.column()),
        ..ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body: not a JSON rule: {error}"),
        )
    })?;
    Ok(validate::parse_rule(&value)?)
}

/// The rule id of the path, validated like a body's `id`.
fn rule_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let id = path_segment(id, "id")?;
    validate::check_id(&id)?;
    Ok(id)
}

fn rule_answer(status: StatusCode, rule: &SamplingRule) -> Response {
    let mut response = (status, Json(rule)).into_response();
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/api/v1/sampling/rules/{}", rule.id))
    {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// `GET /api/v1/sampling/rules`: every rule, sorted by id.
pub(crate) async fn list_rules(TenantState(state): TenantState) -> Response {
    let rules = state.sampling.snapshot();
    Json(serde_json::json!({ "rules": rules.as_slice() })).into_response()
}

/// `POST /api/v1/sampling/rules`: a new rule, 201 with its `Location`.
pub(crate) async fn create_rule(
    TenantState(state): TenantState,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_rule(body).await?;
    let rule = state.sampling.create(body).await?;
    Ok(rule_answer(StatusCode::CREATED, &rule))
}

/// `GET /api/v1/sampling/rules/{id}`.
pub(crate) async fn get_rule(
    TenantState(state): TenantState,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = rule_id(id)?;
    match state.sampling.get(&id) {
        Some(rule) => Ok(rule_answer(StatusCode::OK, &rule)),
        None => Err(rules::not_found(&id).into()),
    }
}

/// `PUT /api/v1/sampling/rules/{id}`: creates (201) or replaces (200) the rule.
pub(crate) async fn put_rule(
    TenantState(state): TenantState,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let id = rule_id(id)?;
    let body = read_rule(body).await?;
    if let Some(body_id) = &body.id
        && body_id != &id
    {
        return Err(ApiError::bad_field(
            "id",
            format!(
                "id: the body says {body_id:?} but the path says {id:?}; omit id from the body \
                 or make them equal (a rule's id cannot be changed: create the new one, delete \
                 the old one)"
            ),
        ));
    }
    let (rule, change) = state.sampling.put(id, body).await?;
    let status = match change {
        rules::Change::Created => StatusCode::CREATED,
        rules::Change::Replaced => StatusCode::OK,
    };
    Ok(rule_answer(status, &rule))
}

/// `DELETE /api/v1/sampling/rules/{id}`: 204, or 404 when no rule has the id.
pub(crate) async fn delete_rule(
    TenantState(state): TenantState,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = rule_id(id)?;
    state.sampling.delete(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/sampling/config?service=NAME`: the rules resolved for one service. The strong
/// `ETag` is a hash of the body; `If-None-Match` with it (or `*`) answers 304 without a body.
pub(crate) async fn config(
    TenantState(state): TenantState,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let answer = service_config(&state, &params, &headers);
    let status = match &answer {
        Ok(response) => response.status(),
        Err(error) => error.status,
    };
    state
        .metrics
        .sampling_config_requests
        .get_or_create(&vec![("result".into(), status.as_u16().to_string())])
        .inc();
    answer.unwrap_or_else(IntoResponse::into_response)
}

fn service_config(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let max_bytes = state.limits.max_name_bytes;
    let service = params
        .get("service")
        .map(String::as_str)
        .filter(|service| !service.is_empty())
        .ok_or_else(|| {
            ApiError::bad_field(
                "service",
                "service: required; the name of the service whose sampling config to resolve",
            )
        })?;
    if service.len() > max_bytes || service.chars().any(char::is_control) {
        return Err(ApiError::bad_field(
            "service",
            format!("service: must be at most {max_bytes} bytes without control characters"),
        ));
    }
    let resolved = resolve(
        &state.sampling.snapshot(),
        service,
        state.default_sample_rate_ppm,
    );
    let body = serde_json::to_vec(&resolved).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("sampling config: {error}"),
        )
    })?;
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&body));
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let cache = HeaderValue::from_static("no-cache");
    let not_modified = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|list| if_none_match_hits(list, &etag));
    if not_modified {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(ETAG, etag_value), (CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ETAG, etag_value),
            (CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}

/// Whether an `If-None-Match` list (`"a", W/"b"` or `*`) names `etag` (a quoted strong tag).
/// `If-None-Match` compares weakly (RFC 9110, 13.1.2), so `W/"x"` matches `"x"`. A list that
/// does not parse matches nothing, which only costs a full answer.
fn if_none_match_hits(list: &str, etag: &str) -> bool {
    let mut rest = list.trim();
    if rest == "*" {
        return true;
    }
    while !rest.is_empty() {
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(inner) = tag.strip_prefix('"') else {
            return false;
        };
        let Some(close) = inner.find('"') else {
            return false;
        };
        if etag.get(1..etag.len().saturating_sub(1)) == Some(&inner[..close]) {
            return true;
        }
        rest = inner[close + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::if_none_match_hits;

    #[test]
    fn if_none_match_lists() {
        let etag = "\"00ab\"";
        assert!(if_none_match_hits("\"00ab\"", etag));
        assert!(if_none_match_hits("*", etag));
        assert!(if_none_match_hits(" \"x\", \"00ab\" ", etag));
        assert!(if_none_match_hits("\"x\",W/\"00ab\"", etag));
        assert!(!if_none_match_hits("\"x\", \"y\"", etag));
        assert!(!if_none_match_hits("00ab", etag));
        assert!(!if_none_match_hits("\"00ab", etag));
        assert!(!if_none_match_hits("", etag));
        assert!(!if_none_match_hits("\"a,b\", \"00a\"", etag));
    }
}
