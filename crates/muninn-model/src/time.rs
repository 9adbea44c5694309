//! Time helpers: the clock, RFC 3339 formatting, and parsing of query times
//! (`now`, `-1h`, `now-15m`, RFC 3339, unix seconds) and durations (`7d`, `90s`).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
pub const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;

/// Why a time or duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid {what}: {hint}")]
pub struct TimeError {
    pub input: String,
    pub what: &'static str,
    pub hint: &'static str,
}

const TIME_HINT: &str = "use RFC 3339 (2026-11-22T10:00:00Z), unix seconds, `now`, or a relative time like -1h, -15m, now-7d";
const DURATION_HINT: &str = "use a number with a unit, like 30s, 15m, 1h, 7d";

/// The current time in unix nanoseconds.
pub fn now_unix_nanos() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Formats unix nanoseconds as RFC 3339 in UTC with nanosecond precision trimmed to what is needed.
pub fn format_rfc3339_nanos(unix_nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(unix_nanos).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses a duration like `7d`, `1h30m`, `90s`.
pub fn parse_duration(text: &str) -> Result<Duration, TimeError> {
    let error = || TimeError {
        input: text.to_string(),
        what: "duration",
        hint: DURATION_HINT,
    };
    humantime::parse_duration(text.trim()).map_err(|_| error())
}

/// Parses a query time relative to `now_nanos` and returns unix nanoseconds.
pub fn parse_time(text: &str, now_nanos: i64) -> Result<i64, TimeError> {
    let error = || TimeError {
        input: text.to_string(),
        what: "time",
        hint: TIME_HINT,
    };
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("now") {
        return Ok(now_nanos);
    }
    let relative = match trimmed.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("now") => &trimmed[3..],
        _ => trimmed,
    };
    if let Some(rest) = relative.strip_prefix('-') {
        let duration = humantime::parse_duration(rest).map_err(|_| error())?;
        let nanos = i64::try_from(duration.as_nanos()).map_err(|_| error())?;
        return Ok(now_nanos.saturating_sub(nanos));
    }
    if let Some(rest) = relative.strip_prefix('+') {
        let duration = humantime::parse_duration(rest).map_err(|_| error())?;
        let nanos = i64::try_from(duration.as_nanos()).map_err(|_| error())?;
        return Ok(now_nanos.saturating_add(nanos));
    }
    if !trimmed.is_empty() && trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
        let seconds: i64 = trimmed.parse().map_err(|_| error())?;
        return seconds.checked_mul(NANOS_PER_SECOND).ok_or_else(error);
    }
    let parsed = DateTime::parse_from_rfc3339(trimmed).map_err(|_| error())?;
    parsed.timestamp_nanos_opt().ok_or_else(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000 * NANOS_PER_SECOND;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("-1h", NOW), Ok(NOW - 3600 * NANOS_PER_SECOND));
        assert_eq!(parse_time("now-15m", NOW), Ok(NOW - 900 * NANOS_PER_SECOND));
        assert_eq!(parse_time("NOW-1m", NOW), Ok(NOW - 60 * NANOS_PER_SECOND));
        assert_eq!(parse_time("1795000000", NOW), Ok(NOW));
        assert_eq!(
            parse_time("2026-11-22T10:00:00Z", NOW),
            Ok(1_795_341_600 * NANOS_PER_SECOND)
        );
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
    }

    #[test]
    fn errors_say_what_would_be_valid() {
        let error = parse_time("yesterday", NOW).unwrap_err();
        assert!(error.to_string().contains("RFC 3339"), "{error}");
        assert!(parse_duration("7 fortnights").is_err());
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(
            format_rfc3339_nanos(1_795_341_600 * NANOS_PER_SECOND),
            "2026-11-22T10:00:00Z"
        );
    }
}
