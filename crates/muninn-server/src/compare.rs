//! `GET /api/v1/compare`: two windows compared from the roll-ups (`muninn_query::compare`).
//! Parameters are validated here, every error naming its parameter: `from`/`to` (default: the
//! last 15 minutes), `baseline_from`/`baseline_to` (default: the same window a day earlier,
//! or an hour earlier when a day ago is past the store's retention; one of the two alone
//! gives a baseline as long as the window), and the `event_type`, `service`, `stream` filters.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use muninn_model::{NANOS_PER_SECOND, format_rfc3339_nanos, now_unix_nanos, parse_time};
use muninn_query::TimeRange;

use crate::error::ApiError;
use crate::query::{filter, param};
use crate::server::AppState;

const DEFAULT_WINDOW: i64 = 15 * 60 * NANOS_PER_SECOND;
const DAY: i64 = 86_400 * NANOS_PER_SECOND;
const HOUR: i64 = 3_600 * NANOS_PER_SECOND;

fn time(params: &HashMap<String, String>, name: &str, now: i64) -> Result<Option<i64>, ApiError> {
    param(params, name)
        .map(|text| {
            parse_time(text, now)
                .map_err(|error| ApiError::bad_field(name, format!("{name}: {error}")))
        })
        .transpose()
}

/// The window and the baseline the parameters ask for, checked against each other and the
/// store's retention (the oldest time it keeps, when it has one).
pub(crate) fn windows(
    params: &HashMap<String, String>,
    now: i64,
    oldest_kept: Option<i64>,
) -> Result<(TimeRange, TimeRange), ApiError> {
    let to = time(params, "to", now)?.unwrap_or(now);
    let from = time(params, "from", now)?.unwrap_or(to - DEFAULT_WINDOW);
    if from >= to {
        return Err(ApiError::bad_field("from", "from: must be before to"));
    }
    let length = to - from;
    let retained = |time: i64| oldest_kept.is_none_or(|oldest| time >= oldest);
    let (baseline_from, baseline_to) = match (
        time(params, "baseline_from", now)?,
        time(params, "baseline_to", now)?,
    ) {
        (Some(start), Some(end)) => (start, end),
        (Some(start), None) => (start, start + length),
        (None, Some(end)) => (end - length, end),
        (None, None) if retained(from - DAY) => (from - DAY, to - DAY),
        (None, None) => (from - HOUR, to - HOUR),
    };
    if baseline_from >= baseline_to {
        return Err(ApiError::bad_field(
            "baseline_from",
            "baseline_from: must be before baseline_to",
        ));
    }
    for (name, time) in [("from", from), ("baseline_from", baseline_from)] {
        if !retained(time) {
            let oldest = oldest_kept.unwrap_or_default();
            return Err(ApiError::bad_field(
                name,
                format!(
                    "{name}: {} is before the store's retention; the oldest time kept is {}",
                    format_rfc3339_nanos(time),
                    format_rfc3339_nanos(oldest)
                ),
            ));
        }
    }
    Ok((
        TimeRange {
            from_unix_nanos: baseline_from,
            to_unix_nanos: baseline_to,
        },
        TimeRange {
            from_unix_nanos: from,
            to_unix_nanos: to,
        },
    ))
}

pub(crate) async fn compare(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let now = now_unix_nanos();
    let oldest_kept = state
        .retention
        .map(|retention| now - i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX));
    let (baseline, window) = windows(&params, now, oldest_kept)?;
    let filter = filter(&params)?;
    let comparison = muninn_query::compare(&state.store, baseline, window, &filter);
    if comparison.edges.is_empty() {
        for (name, value) in [
            ("event_type", &filter.event_type),
            ("service", &filter.service),
            ("stream", &filter.stream),
        ] {
            if let Some(value) = value {
                return Err(ApiError::bad_field(
                    name,
                    format!(
                        "{name}: no event of {name} {value:?} in either window; see \
                         /api/v1/event-types, /api/v1/services and /api/v1/streams for the \
                         known ones"
                    ),
                ));
            }
        }
    }
    Ok(Json(comparison).into_response())
}
