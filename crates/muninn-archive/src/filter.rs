//! What `archive cat`, replay and the API select: a stream, a time range, optionally a
//! partition, and filters on event type, event id, trace id, key or a header.

use crate::error::{ArchiveError, Result};
use crate::layout::check_stream_name;
use crate::message::Message;

const FILTER_HINT: &str =
    "use event_type=NAME, event_id=ID, trace_id=HEX, key=TEXT or header.NAME=TEXT";

/// One condition on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    EventType(String),
    EventId(String),
    TraceId(String),
    /// The key's bytes equal these.
    Key(Vec<u8>),
    /// Some header with this name (ASCII case ignored) has exactly these bytes.
    Header(String, Vec<u8>),
}

impl Filter {
    /// Parses `event_type=…`, `event_id=…`, `trace_id=…`, `key=…` or `header.NAME=…`.
    pub fn parse(text: &str) -> Result<Filter> {
        let (field, value) = text.split_once('=').ok_or_else(|| {
            ArchiveError::invalid(format!("filter {text:?}: no '=' in it; {FILTER_HINT}"))
        })?;
        let filter = match field {
            "event_type" => Filter::EventType(value.to_owned()),
            "event_id" => Filter::EventId(value.to_owned()),
            "trace_id" => Filter::TraceId(value.to_ascii_lowercase()),
            "key" => Filter::Key(value.as_bytes().to_vec()),
            _ => match field.strip_prefix("header.") {
                Some(name) if !name.is_empty() => {
                    Filter::Header(name.to_owned(), value.as_bytes().to_vec())
                }
                _ => {
                    return Err(ArchiveError::invalid(format!(
                        "filter {text:?}: unknown field {field:?}; {FILTER_HINT}"
                    )));
                }
            },
        };
        Ok(filter)
    }

    pub fn matches(&self, message: &Message) -> bool {
        match self {
            Filter::EventType(value) => message.event_type.as_deref() == Some(value),
            Filter::EventId(value) => message.event_id.as_deref() == Some(value),
            Filter::TraceId(value) => message.trace_id.as_deref() == Some(value),
            Filter::Key(value) => message.key.as_deref() == Some(value),
            Filter::Header(name, value) => message.headers.iter().any(|header| {
                header.name.eq_ignore_ascii_case(name) && header.value.as_deref() == Some(value)
            }),
        }
    }
}

/// Messages of one stream in `[from_ms, to_ms)`, optionally one partition, matching every
/// filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub stream: String,
    pub partition: Option<i32>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub filters: Vec<Filter>,
}

impl Selection {
    /// Checks the stream name and that the range is not empty or reversed.
    pub fn new(
        stream: &str,
        partition: Option<i32>,
        from_ms: i64,
        to_ms: i64,
        filters: Vec<Filter>,
    ) -> Result<Selection> {
        check_stream_name(stream)?;
        if from_ms >= to_ms {
            return Err(ArchiveError::invalid(format!(
                "time range: from ({from_ms} ms) is not before to ({to_ms} ms); give from < to"
            )));
        }
        if let Some(partition) = partition
            && partition < 0
        {
            return Err(ArchiveError::invalid(format!(
                "partition {partition}: use a partition number, 0 or more"
            )));
        }
        Ok(Selection {
            stream: stream.to_owned(),
            partition,
            from_ms,
            to_ms,
            filters,
        })
    }

    pub fn matches(&self, message: &Message) -> bool {
        message.timestamp_ms >= self.from_ms
            && message.timestamp_ms < self.to_ms
            && self
                .partition
                .is_none_or(|partition| partition == message.partition)
            && self.filters.iter().all(|filter| filter.matches(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_filter_names_itself_and_the_valid_forms() {
        for bad in ["event_type", "colour=red", "header.=x"] {
            let error = Filter::parse(bad).unwrap_err();
            assert!(error.message.contains(bad), "{error}");
            assert!(error.message.contains("header.NAME=TEXT"), "{error}");
        }
        assert_eq!(
            Filter::parse("header.tenant=acme").unwrap(),
            Filter::Header("tenant".into(), b"acme".to_vec())
        );
    }

    #[test]
    fn a_reversed_range_is_refused_before_anything_is_read() {
        let error = Selection::new("orders", None, 10, 5, vec![]).unwrap_err();
        assert!(
            error
                .message
                .contains("from (10 ms) is not before to (5 ms)"),
            "{error}"
        );
    }
}
