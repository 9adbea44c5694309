//! The limits every ingested record is checked against, and the error that names the
//! offending field. The same numbers are documented in docs/api.md ("Validation limits").

use crate::count::EventCount;
use crate::span::{AttributeValue, Attributes, Span};
use crate::time::{NANOS_PER_SECOND, format_rfc3339_nanos};

/// A record was refused: `field` names the offending input (`attributes[3].key`, `trace_id`),
/// `reason` says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Validation limits. `Limits::default()` is what the server uses unless configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest service, span name, event type, stream, schema, event id or message id, in bytes.
    pub max_name_bytes: usize,
    /// Longest attribute key, in bytes.
    pub max_attribute_key_bytes: usize,
    /// Longest string attribute value or status message, in bytes.
    pub max_attribute_value_bytes: usize,
    /// Most attributes on a span, on its resource, or on one link.
    pub max_attributes: usize,
    /// Most links on a span.
    pub max_links: usize,
    /// How far in the past a start time may lie (usually the retention period).
    pub max_age_nanos: i64,
    /// How far in the future a start time may lie (clock skew).
    pub max_future_nanos: i64,
    /// Longest span duration.
    pub max_duration_nanos: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_name_bytes: 512,
            max_attribute_key_bytes: 256,
            max_attribute_value_bytes: 4096,
            max_attributes: 128,
            max_links: 128,
            max_age_nanos: 7 * 24 * 3600 * NANOS_PER_SECOND,
            max_future_nanos: 3600 * NANOS_PER_SECOND,
            max_duration_nanos: 24 * 3600 * NANOS_PER_SECOND,
        }
    }
}

impl Limits {
    /// Checks a decoded span against the limits; `now_nanos` anchors the time window.
    pub fn check_span(&self, span: &Span, now_nanos: i64) -> Result<(), FieldError> {
        self.check_name("service", &span.service, true)?;
        self.check_name("name", &span.name, true)?;
        self.check_time("start_time_unix_nano", span.start_unix_nanos, now_nanos)?;
        if span.duration_nanos < 0 {
            return Err(FieldError::new("duration_nano", "must be zero or positive"));
        }
        if span.duration_nanos > self.max_duration_nanos {
            return Err(FieldError::new(
                "duration_nano",
                format!(
                    "must be at most {} ns ({} s)",
                    self.max_duration_nanos,
                    self.max_duration_nanos / NANOS_PER_SECOND
                ),
            ));
        }
        if let Some(message) = &span.status.message
            && message.len() > self.max_attribute_value_bytes
        {
            return Err(FieldError::new(
                "status.message",
                format!(
                    "must be at most {} bytes, got {}",
                    self.max_attribute_value_bytes,
                    message.len()
                ),
            ));
        }
        self.check_attributes("attributes", &span.attributes)?;
        self.check_attributes("resource", &span.resource)?;
        if span.links.len() > self.max_links {
            return Err(FieldError::new(
                "links",
                format!(
                    "at most {} links are allowed, got {}",
                    self.max_links,
                    span.links.len()
                ),
            ));
        }
        for (index, link) in span.links.iter().enumerate() {
            self.check_attributes(&format!("links[{index}].attributes"), &link.attributes)?;
        }
        let event = &span.event;
        for (field, value) in [
            ("event_id", &event.event_id),
            ("event_type", &event.event_type),
            ("schema", &event.schema),
            ("stream", &event.stream),
            ("message_id", &event.message_id),
        ] {
            if let Some(value) = value {
                self.check_name(field, value, true)?;
            }
        }
        if let Some(partition) = event.partition
            && partition < 0
        {
            return Err(FieldError::new("partition", "must be zero or positive"));
        }
        if let Some(offset) = event.offset
            && offset < 0
        {
            return Err(FieldError::new("offset", "must be zero or positive"));
        }
        Ok(())
    }

    /// Checks an event-seen count.
    pub fn check_count(&self, count: &EventCount, now_nanos: i64) -> Result<(), FieldError> {
        self.check_name("service", &count.service, true)?;
        self.check_name("event_type", &count.event_type, true)?;
        self.check_name("stream", &count.stream, true)?;
        self.check_time(
            "minute",
            count.minute_unix_seconds.saturating_mul(NANOS_PER_SECOND),
            now_nanos,
        )?;
        if count.count == 0 {
            return Err(FieldError::new("count", "must be at least 1"));
        }
        if count.count > 1_000_000_000_000 {
            return Err(FieldError::new("count", "must be at most 10^12 per minute"));
        }
        Ok(())
    }

    fn check_name(&self, field: &str, value: &str, required: bool) -> Result<(), FieldError> {
        if required && value.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if value.len() > self.max_name_bytes {
            return Err(FieldError::new(
                field,
                format!(
                    "must be at most {} bytes, got {}",
                    self.max_name_bytes,
                    value.len()
                ),
            ));
        }
        // Printable ASCII (nearly every name) is checked a byte at a time, which vectorizes;
        // anything else by its characters (C1 controls are two bytes in UTF-8).
        let printable_ascii = value.bytes().all(|byte| (0x20..0x7f).contains(&byte));
        if !printable_ascii && value.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(())
    }

    fn check_time(&self, field: &str, unix_nanos: i64, now_nanos: i64) -> Result<(), FieldError> {
        let earliest = now_nanos.saturating_sub(self.max_age_nanos);
        let latest = now_nanos.saturating_add(self.max_future_nanos);
        if unix_nanos < earliest || unix_nanos > latest {
            return Err(FieldError::new(
                field,
                format!(
                    "{} is outside the accepted window {} .. {} (retention in the past, clock skew in the future)",
                    format_rfc3339_nanos(unix_nanos),
                    format_rfc3339_nanos(earliest),
                    format_rfc3339_nanos(latest)
                ),
            ));
        }
        Ok(())
    }

    fn check_attributes(&self, field: &str, attributes: &Attributes) -> Result<(), FieldError> {
        if attributes.len() > self.max_attributes {
            return Err(FieldError::new(
                field,
                format!(
                    "at most {} attributes are allowed, got {}",
                    self.max_attributes,
                    attributes.len()
                ),
            ));
        }
        for (index, (key, value)) in attributes.iter().enumerate() {
            if key.is_empty() || key.len() > self.max_attribute_key_bytes {
                return Err(FieldError::new(
                    format!("{field}[{index}].key"),
                    format!(
                        "must be 1 to {} bytes, got {}",
                        self.max_attribute_key_bytes,
                        key.len()
                    ),
                ));
            }
            if attributes[..index]
                .iter()
                .any(|(earlier, _)| earlier == key)
            {
                return Err(FieldError::new(
                    format!("{field}[{index}].key"),
                    format!("duplicate key {key:?}"),
                ));
            }
            match value {
                AttributeValue::String(text) if text.len() > self.max_attribute_value_bytes => {
                    return Err(FieldError::new(
                        format!("{field}[{index}].value"),
                        format!(
                            "must be at most {} bytes, got {}",
                            self.max_attribute_value_bytes,
                            text.len()
                        ),
                    ));
                }
                AttributeValue::Float(number) if !number.is_finite() => {
                    return Err(FieldError::new(
                        format!("{field}[{index}].value"),
                        "must be a finite number",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Limits;

    /// Names with a control character anywhere (C0, DEL, or C1, which is two bytes in UTF-8)
    /// are refused naming the field; printable names in any script are kept.
    #[test]
    fn names_with_control_characters_are_refused_and_others_kept() {
        let limits = Limits::default();
        for name in ["orders", "order created", "café", "注文", "a~z{}|"] {
            assert!(
                limits.check_name("service", name, true).is_ok(),
                "{name:?} was refused"
            );
        }
        for name in [
            "a\nb",
            "\u{0}",
            "tab\t",
            "del\u{7f}",
            "c1\u{85}",
            "c1\u{9f}x",
        ] {
            let error = limits.check_name("service", name, true).unwrap_err();
            assert_eq!(error.field, "service", "{name:?}");
            assert!(error.reason.contains("control characters"), "{name:?}");
        }
    }
}
