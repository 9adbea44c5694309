//! Muninn's data model: one span record with dedicated event-streaming columns, the
//! identifiers it carries, the limits every record is validated against, and time parsing.
//!
//! This crate does no I/O and has no async code; every other crate builds on it.

mod count;
mod ids;
mod limits;
pub mod sampling;
mod span;
mod time;

pub use count::{EventCount, RollupKey};
pub use ids::{IdError, SpanId, TraceId};
pub use limits::{FieldError, Limits};
pub use span::{
    Action, AttributeValue, Attributes, Broker, EventColumns, Link, Resource, Span, SpanKind,
    Status, StatusCode, Text, allocated_size, attribute_key, empty_resource, new_resource,
};
pub use time::{
    NANOS_PER_MINUTE, NANOS_PER_SECOND, TimeError, format_rfc3339_nanos, now_unix_nanos,
    parse_duration, parse_time,
};
