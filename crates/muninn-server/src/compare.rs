//! `GET /api/v1/compare`: two windows compared from the roll-ups (`muninn_query::compare`).
//! Parameters are validated here, every error naming its parameter: `from`/`to` (default: the
//! last 15 minutes), `baseline_from`/`baseline_to` (default: the same window a day earlier,
//! or an hour earlier when a day ago is past the store's retention; one of the two alone
//! gives a baseline as long as the window), and the `event_type`, `service`, `stream` filters.
//! Both ranges are then taken as the whole minutes they cover (`whole_minutes`).

use crate::tenant::TenantState;
use std::collections::HashMap;

use axum::Json;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use muninn_model::{NANOS_PER_SECOND, format_rfc3339_nanos, now_unix_nanos, parse_time};
use muninn_query::TimeRange;

use crate::error::ApiError;
use crate::query::{filter, param};

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
        whole_minutes("baseline_from", baseline_from, baseline_to, now)?,
        whole_minutes("from", from, to, now)?,
    ))
}

/// The minutes a range covers: roll-up cells are per minute and a range reads every cell its
/// time overlaps, so the range is taken from the start of its first minute to the end of its
/// last, not past `now` (the current minute holds only what happened so far). Rates are then
/// counts over the time they were counted in.
fn whole_minutes(name: &str, from: i64, to: i64, now: i64) -> Result<TimeRange, ApiError> {
    const MINUTE: i64 = 60 * NANOS_PER_SECOND;
    let floor = |time: i64| time.div_euclid(MINUTE) * MINUTE;
    let ceil = |time: i64| floor(time) + MINUTE * i64::from(time.rem_euclid(MINUTE) > 0);
    let (aligned_from, aligned_to) = (floor(from), ceil(to).min(now));
    if aligned_from >= aligned_to {
        return Err(ApiError::bad_field(
            name,
            format!(
                "{name}: the range {} – {} is in the future; it must start before now ({})",
                format_rfc3339_nanos(from),
                format_rfc3339_nanos(to),
                format_rfc3339_nanos(now)
            ),
        ));
    }
    Ok(TimeRange {
        from_unix_nanos: aligned_from,
        to_unix_nanos: aligned_to,
    })
}

pub(crate) async fn compare(
    TenantState(state): TenantState,
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
            if let Some(value) = value.as_ref().map(muninn_query::NamePattern::as_str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60 * NANOS_PER_SECOND;

    #[test]
    fn ranges_become_the_whole_minutes_they_cover_and_stop_at_now() {
        let t = 1_800_000_000 * NANOS_PER_SECOND; // a minute start
        let range = whole_minutes(
            "from",
            t + 10 * NANOS_PER_SECOND,
            t + 3 * MINUTE + 1,
            t + 10 * MINUTE,
        )
        .unwrap();
        assert_eq!(
            (range.from_unix_nanos, range.to_unix_nanos),
            (t, t + 4 * MINUTE)
        );
        // The current minute counts up to now only.
        let now = t + 5 * MINUTE + 20 * NANOS_PER_SECOND;
        let range = whole_minutes("from", t + 1, now, now).unwrap();
        assert_eq!((range.from_unix_nanos, range.to_unix_nanos), (t, now));
        let error =
            whole_minutes("baseline_from", now + MINUTE, now + 2 * MINUTE, now).unwrap_err();
        assert!(format!("{error:?}").contains("baseline_from"), "{error:?}");
    }
}
