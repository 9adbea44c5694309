//! Event metadata in headers: Muninn's own `muninn-event-*` headers, with CloudEvents
//! binary-mode headers (`ce_*` for Kafka, `ce-*` for HTTP and NATS) as a fallback on read.

use super::carrier::Injector;
use super::index::{Lookup, Name};

pub const EVENT_ID_HEADER: &str = "muninn-event-id";
pub const EVENT_TYPE_HEADER: &str = "muninn-event-type";
pub const EVENT_SCHEMA_HEADER: &str = "muninn-event-schema";

/// Longest accepted event id, type or schema, in bytes.
pub const MAX_EVENT_HEADER_LEN: usize = 256;

/// The event metadata that came with a message; each field is `None` when absent or invalid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventHeaders {
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub schema: Option<String>,
}

/// One metadata field: the header names it is read from, in order, and why a value is refused.
struct Field {
    names: [Name; 3],
    empty: &'static str,
    too_long: &'static str,
    control: &'static str,
    conflicting: &'static str,
}

const ID: Field = Field {
    names: [Name::EVENT_ID, Name::CE_ID_KAFKA, Name::CE_ID],
    empty: "event id: empty",
    too_long: "event id: longer than 256 bytes",
    control: "event id: contains control characters",
    conflicting: "event id: repeated with different values",
};
const TYPE: Field = Field {
    names: [Name::EVENT_TYPE, Name::CE_TYPE_KAFKA, Name::CE_TYPE],
    empty: "event type: empty",
    too_long: "event type: longer than 256 bytes",
    control: "event type: contains control characters",
    conflicting: "event type: repeated with different values",
};
const SCHEMA: Field = Field {
    names: [
        Name::EVENT_SCHEMA,
        Name::CE_DATASCHEMA_KAFKA,
        Name::CE_DATASCHEMA,
    ],
    empty: "event schema: empty",
    too_long: "event schema: longer than 256 bytes",
    control: "event schema: contains control characters",
    conflicting: "event schema: repeated with different values",
};

#[inline]
fn check(field: &Field, value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        Err(field.empty)
    } else if value.len() > MAX_EVENT_HEADER_LEN {
        Err(field.too_long)
    } else if has_control(value) {
        Err(field.control)
    } else {
        Ok(())
    }
}

/// [`EventHeaders`], borrowed from the carrier: what [`super::extract_ref`] returns, without
/// copying values the caller may only read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventHeadersRef<'a> {
    pub event_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub schema: Option<&'a str>,
}

impl EventHeadersRef<'_> {
    /// The same values, copied.
    pub fn into_owned(self) -> EventHeaders {
        EventHeaders {
            event_id: self.event_id.map(str::to_owned),
            event_type: self.event_type.map(str::to_owned),
            schema: self.schema.map(str::to_owned),
        }
    }
}

/// Whether `value` has a control character (Unicode's Cc: U+0000–U+001F, U+007F–U+009F).
#[inline]
fn has_control(value: &str) -> bool {
    !printable_ascii(value.as_bytes()) && value.chars().any(char::is_control)
}

/// Whether every byte is printable ASCII (0x20–0x7E), the common case: eight bytes at a time,
/// without a branch per byte, the last eight read again where the length is not a multiple of
/// eight. For a byte under 0x80, `b - 0x20` sets its top bit exactly when `b < 0x20`, and
/// `b + 1` exactly when `b == 0x7f`; a borrow or a carry into the next byte only ever follows
/// a byte that already failed.
#[inline]
fn printable_ascii(bytes: &[u8]) -> bool {
    const fn splat(byte: u8) -> u64 {
        u64::from_ne_bytes([byte; 8])
    }
    let fails = |chunk: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        (word | word.wrapping_sub(splat(0x20)) | word.wrapping_add(splat(0x01))) & splat(0x80)
    };
    let Some(last) = bytes.len().checked_sub(8) else {
        return bytes.iter().all(|byte| (0x20..0x7f).contains(byte));
    };
    let failed = bytes
        .chunks_exact(8)
        .fold(fails(&bytes[last..]), |failed, chunk| failed | fails(chunk));
    failed == 0
}

/// The first valid value among the field's headers; refusals are noted in `invalid`. Muninn's
/// own header, valid, is read inline; anything else (CloudEvents, a refusal) out of line.
#[inline]
fn read_field<'a>(
    headers: &impl Lookup<'a>,
    field: &Field,
    invalid: &mut Option<&'static str>,
) -> Option<&'a str> {
    if !headers.may_have(&field.names) {
        return None;
    }
    let found = headers.find(field.names[0]);
    if let Some(value) = found.first
        && !found.differing
        && check(field, value).is_ok()
    {
        return Some(value);
    }
    read_present_field(headers, field, invalid)
}

#[inline(never)]
fn read_present_field<'a>(
    headers: &impl Lookup<'a>,
    field: &Field,
    invalid: &mut Option<&'static str>,
) -> Option<&'a str> {
    for name in field.names {
        let found = headers.find(name);
        let Some(first) = found.first else {
            continue;
        };
        let checked = if found.differing {
            Err(field.conflicting)
        } else {
            check(field, first)
        };
        match checked {
            Ok(()) => return Some(first),
            Err(reason) => {
                invalid.get_or_insert(reason);
            }
        }
    }
    None
}

pub(super) fn event_id<'a>(
    headers: &impl Lookup<'a>,
    invalid: &mut Option<&'static str>,
) -> Option<&'a str> {
    read_field(headers, &ID, invalid)
}

pub(super) fn event_type<'a>(
    headers: &impl Lookup<'a>,
    invalid: &mut Option<&'static str>,
) -> Option<&'a str> {
    read_field(headers, &TYPE, invalid)
}

pub(super) fn schema<'a>(
    headers: &impl Lookup<'a>,
    invalid: &mut Option<&'static str>,
) -> Option<&'a str> {
    read_field(headers, &SCHEMA, invalid)
}

pub(super) fn read<'a>(
    headers: &impl Lookup<'a>,
    invalid: &mut Option<&'static str>,
) -> EventHeadersRef<'a> {
    EventHeadersRef {
        event_id: event_id(headers, invalid),
        event_type: event_type(headers, invalid),
        schema: schema(headers, invalid),
    }
}

/// Writes `muninn-event-id`, `muninn-event-type` and (when given) `muninn-event-schema`.
///
/// A value that readers would refuse (empty, longer than 256 bytes, or containing control
/// characters such as a newline) is not written; the return value says why, for the first
/// such value.
pub fn inject_event(
    event_id: &str,
    event_type: &str,
    schema: Option<&str>,
    carrier: &mut (impl Injector + ?Sized),
) -> Option<&'static str> {
    let mut refused = None;
    let fields = [
        (&ID, Some(event_id)),
        (&TYPE, Some(event_type)),
        (&SCHEMA, schema),
    ];
    for (field, value) in fields {
        let Some(value) = value else { continue };
        match check(field, value) {
            Ok(()) => carrier.set(field.names[0].as_str(), value),
            Err(reason) => {
                refused.get_or_insert(reason);
            }
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::super::carrier::headers;
    use super::super::index::Headers;
    use super::*;

    fn read_all(carrier: &[(String, String)]) -> (EventHeaders, Option<&'static str>) {
        let mut invalid = None;
        let event = Headers::read(carrier, |headers| read(headers, &mut invalid)).into_owned();
        (event, invalid)
    }

    fn event(id: Option<&str>, kind: Option<&str>, schema: Option<&str>) -> EventHeaders {
        EventHeaders {
            event_id: id.map(String::from),
            event_type: kind.map(String::from),
            schema: schema.map(String::from),
        }
    }

    #[test]
    fn control_characters_are_found_in_ascii_and_beyond() {
        for code in (0..0x300).chain([0x2028, 0xfeff, 0x1f600]) {
            let Some(found) = char::from_u32(code) else {
                continue;
            };
            let text = format!("a{found}b");
            assert_eq!(has_control(&text), found.is_control(), "U+{code:04X}");
        }
        // In every place of the words read eight bytes at a time, and of the tail.
        for len in 1..=20 {
            for at in 0..len {
                for found in ['\u{0}', '\u{1f}', ' ', '~', '\u{7f}', '\u{85}', 'é'] {
                    let text: String = (0..len)
                        .map(|index| if index == at { found } else { 'x' })
                        .collect();
                    assert_eq!(has_control(&text), found.is_control(), "{text:?}");
                }
            }
        }
        assert!(!has_control(""));
    }

    #[test]
    fn muninn_headers_are_read_as_is() {
        let carrier = headers(&[
            ("Muninn-Event-Id", " order-42 "),
            ("muninn-event-type", "order.created"),
            ("MUNINN-EVENT-SCHEMA", "order.created/v2"),
        ]);
        assert_eq!(
            read_all(&carrier),
            (
                event(
                    Some(" order-42 "),
                    Some("order.created"),
                    Some("order.created/v2")
                ),
                None
            )
        );
    }

    #[test]
    fn cloudevents_headers_are_the_fallback() {
        // Kafka binding (underscore).
        let carrier = headers(&[
            ("ce_id", "A234-1234-1234"),
            ("ce_type", "com.example.someevent"),
            ("ce_dataschema", "https://example.com/schema"),
        ]);
        assert_eq!(
            read_all(&carrier).0,
            event(
                Some("A234-1234-1234"),
                Some("com.example.someevent"),
                Some("https://example.com/schema")
            )
        );
        // HTTP and NATS binding (hyphen), mixed with Muninn's own headers per field.
        let carrier = headers(&[
            ("ce-id", "ce-1"),
            ("muninn-event-id", "m-1"),
            ("Ce-Type", "com.example.x"),
        ]);
        assert_eq!(
            read_all(&carrier),
            (event(Some("m-1"), Some("com.example.x"), None), None)
        );
    }

    #[test]
    fn invalid_values_are_absent_and_reported() {
        let long = "x".repeat(257);
        for (value, reason) in [
            ("", "event id: empty"),
            (long.as_str(), "event id: longer than 256 bytes"),
            ("a\nb", "event id: contains control characters"),
            ("a\u{0}b", "event id: contains control characters"),
            ("a\u{85}b", "event id: contains control characters"),
        ] {
            let carrier = headers(&[("muninn-event-id", value)]);
            assert_eq!(read_all(&carrier), (event(None, None, None), Some(reason)));
        }
        let exact = "é".repeat(128);
        let carrier = headers(&[("muninn-event-id", &exact)]);
        assert_eq!(read_all(&carrier), (event(Some(&exact), None, None), None));
    }

    #[test]
    fn invalid_muninn_value_falls_back_to_cloudevents() {
        let carrier = headers(&[("muninn-event-type", ""), ("ce_type", "com.example.x")]);
        assert_eq!(
            read_all(&carrier),
            (
                event(None, Some("com.example.x"), None),
                Some("event type: empty")
            )
        );
    }

    #[test]
    fn repeated_headers_must_agree() {
        let carrier = headers(&[("muninn-event-id", "a"), ("muninn-event-id", "a")]);
        assert_eq!(read_all(&carrier), (event(Some("a"), None, None), None));
        let carrier = headers(&[("muninn-event-id", "a"), ("Muninn-Event-Id", "b")]);
        assert_eq!(
            read_all(&carrier),
            (
                event(None, None, None),
                Some("event id: repeated with different values")
            )
        );
    }

    #[test]
    fn inject_writes_valid_values_and_reports_refused_ones() {
        let mut carrier: Vec<(String, String)> = Vec::new();
        assert_eq!(
            inject_event("order-42", "order.created", Some("v2"), &mut carrier),
            None
        );
        assert_eq!(
            carrier,
            headers(&[
                ("muninn-event-id", "order-42"),
                ("muninn-event-type", "order.created"),
                ("muninn-event-schema", "v2"),
            ])
        );

        let mut carrier: Vec<(String, String)> = Vec::new();
        assert_eq!(
            inject_event("id\r\nx-evil: 1", "order.created", None, &mut carrier),
            Some("event id: contains control characters")
        );
        assert_eq!(carrier, headers(&[("muninn-event-type", "order.created")]));
    }
}
