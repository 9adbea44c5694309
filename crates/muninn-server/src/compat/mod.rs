//! The tracing ecosystem's HTTP APIs on top of Muninn's store: Zipkin's v2 ingest and read API
//! (`zipkin.rs`, under `/api/v2/`) and Jaeger's query API (`jaeger.rs`, under `/api/`, what
//! Jaeger UI and Grafana's Jaeger data source call). This module holds what both parse:
//! repeated query parameters, integers and Go-style durations, with errors naming the parameter.

pub(crate) mod jaeger;
pub(crate) mod zipkin;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use muninn_model::now_unix_nanos;
use muninn_query::TimeRange;

/// Query parameters in order, repeated keys kept (`traceID=a&traceID=b`, `tag=k:v&tag=…`).
pub(crate) type RawParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The parameters of one request.
pub(crate) struct Params(Vec<(String, String)>);

/// A parameter that could not be read: its name and what would be valid.
#[derive(Debug)]
pub(crate) struct ParamError {
    pub field: String,
    pub message: String,
}

impl ParamError {
    pub fn new(field: &str, reason: impl std::fmt::Display) -> Self {
        ParamError {
            field: field.to_string(),
            message: format!("{field}: {reason}"),
        }
    }
}

impl Params {
    pub fn read(raw: RawParams) -> Result<Params, ParamError> {
        raw.map(|Query(pairs)| Params(pairs))
            .map_err(|rejection| ParamError {
                field: "query".to_string(),
                message: format!(
                    "query: the query string could not be read ({}); percent-encode it",
                    rejection.body_text()
                ),
            })
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// Every non-empty value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// An integer parameter, if present.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ParamError> {
        self.get(name)
            .map(|text| {
                text.trim()
                    .parse::<i64>()
                    .map_err(|_| ParamError::new(name, format!("{text:?} is not an integer")))
            })
            .transpose()
    }

    /// A whole number of `unit` nanoseconds (microseconds: 1000), if present.
    pub fn scaled(
        &self,
        name: &str,
        unit_nanos: i64,
        unit: &str,
    ) -> Result<Option<i64>, ParamError> {
        self.integer(name)?
            .map(|value| {
                value
                    .checked_mul(unit_nanos)
                    .ok_or_else(|| ParamError::new(name, format!("{value} {unit} is out of range")))
            })
            .transpose()
    }

    /// The `limit` parameter: `default` when absent, otherwise 1 to `MAX_TRACES`.
    pub fn limit(&self, default: usize) -> Result<usize, ParamError> {
        match self.integer("limit")? {
            None => Ok(default),
            Some(limit) if (1..=MAX_TRACES as i64).contains(&limit) => Ok(limit as usize),
            Some(limit) => Err(ParamError::new(
                "limit",
                format!("must be 1 to {MAX_TRACES}, got {limit}"),
            )),
        }
    }
}

/// The most traces one search returns (Jaeger UI offers up to 1500).
pub(crate) const MAX_TRACES: usize = 1500;

pub(crate) const NANOS_PER_MICRO: i64 = 1_000;
pub(crate) const NANOS_PER_MILLI: i64 = 1_000_000;

/// One day in nanoseconds: the default look-back of searches and dependency graphs.
pub(crate) const DEFAULT_LOOKBACK_NANOS: i64 = 24 * 3_600 * 1_000_000_000;

/// Names and operations by default cover the whole retention (Jaeger UI and Zipkin's UI ask
/// without a time range): from the unix epoch to an hour from now.
pub(crate) fn whole_retention() -> TimeRange {
    TimeRange {
        from_unix_nanos: 0,
        to_unix_nanos: now_unix_nanos().saturating_add(3_600 * 1_000_000_000),
    }
}

/// Whether `streams` asks for stream nodes.
pub(crate) fn streams_flag(params: &Params) -> Result<bool, ParamError> {
    match params.get("streams") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ParamError::new(
            "streams",
            format!("{other:?} is not true or false"),
        )),
    }
}

/// `endTs` and `lookback` in milliseconds (Jaeger's and Zipkin's dependency parameters), as a
/// range; `endTs` defaults to now and `lookback` to a day.
pub(crate) fn dependency_range(params: &Params) -> Result<TimeRange, ParamError> {
    let end = params
        .scaled("endTs", NANOS_PER_MILLI, "milliseconds")?
        .unwrap_or_else(now_unix_nanos);
    let lookback = params
        .scaled("lookback", NANOS_PER_MILLI, "milliseconds")?
        .unwrap_or(DEFAULT_LOOKBACK_NANOS);
    if lookback < 0 {
        return Err(ParamError::new("lookback", "must not be negative"));
    }
    Ok(TimeRange {
        from_unix_nanos: end.saturating_sub(lookback),
        to_unix_nanos: end.saturating_add(NANOS_PER_MILLI),
    })
}

/// Reads a Go duration as Jaeger takes them (`1.2s`, `100ms`, `1m30s`, `500us`, `250µs`,
/// `0`), plus `d` for days, into nanoseconds. `None` when it is not one.
pub(crate) fn parse_go_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total: i128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|char: char| !(char.is_ascii_digit() || char == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return None;
        }
        let unit_len = after
            .find(|char: char| char.is_ascii_digit() || char == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_nanos: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return None,
        };
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut value = whole.checked_mul(unit_nanos)?;
        // The fraction, digit by digit, truncated below a nanosecond.
        let mut scale = unit_nanos;
        for digit in fraction.bytes() {
            scale /= 10;
            value = value.checked_add(i128::from(digit - b'0') * scale)?;
        }
        total = total.checked_add(value)?;
        rest = next;
    }
    i64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;

    #[test]
    fn go_durations_read_like_go_reads_them() {
        assert_eq!(parse_go_duration("1.2s"), Some(1_200_000_000));
        assert_eq!(parse_go_duration("100ms"), Some(100_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("500us"), Some(500_000));
        assert_eq!(parse_go_duration("250µs"), Some(250_000));
        assert_eq!(parse_go_duration(".5h"), Some(1_800_000_000_000));
        assert_eq!(parse_go_duration("2d"), Some(172_800_000_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        for bad in [
            "",
            "10",
            "1.2.3s",
            "s",
            "-1s",
            "1 s",
            "5 minutes",
            "9999999999999h",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }
}
