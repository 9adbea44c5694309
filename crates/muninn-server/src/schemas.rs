//! `GET /api/v1/event-types/{type}/schemas` and `GET /api/v1/event-types/{type}/impact`: a
//! type's schemas per producer (with who sent each first) and who a schema change reaches,
//! both over everything retained (`muninn_query::schemas`, `muninn_query::impact`). An event
//! type the roll-ups do not know is a 400 naming `event_type`, so a misspelt type never reads
//! as "nobody is affected".

use crate::tenant::TenantState;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::query::{Params, param, path_segment};

fn unknown(event_type: &str) -> ApiError {
    ApiError::bad_field(
        "event_type",
        format!(
            "event_type: no producer or consumer of {event_type:?} is retained; GET /api/v1/event-types lists the known types"
        ),
    )
}

pub(crate) async fn schemas(
    TenantState(state): TenantState,
    event_type: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let event_type = path_segment(event_type, "event_type")?;
    let schemas = muninn_query::schemas(&state.store, &state.first_senders, &event_type)
        .await
        .ok_or_else(|| unknown(&event_type))?;
    Ok(Json(schemas).into_response())
}

pub(crate) async fn impact(
    TenantState(state): TenantState,
    event_type: Result<Path<String>, PathRejection>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let event_type = path_segment(event_type, "event_type")?;
    let schema = match params.get("schema") {
        Some(text) if text.trim().is_empty() => {
            return Err(ApiError::bad_field(
                "schema",
                "schema: must name the schema about to ship (e.g. schema=v3), or be left out",
            ));
        }
        _ => param(&params, "schema"),
    };
    let impact = muninn_query::impact(&state.store, &event_type, schema)
        .ok_or_else(|| unknown(&event_type))?;
    Ok(Json(impact).into_response())
}
