//! Messages as JSON lines, lossless and readable: `archive cat` prints them, `replay --to
//! file://` writes them and `replay --from-file` reads them back. Bytes that are UTF-8 are
//! written as text (`key`, `payload`, a header's `value`); other bytes as base64 under a
//! `_base64` name; absent ones as `null`. The API's rendering for people (pretty JSON, hex, a
//! size cap) is [`render_payload`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ArchiveError, Result};
use crate::message::{Header, Message, SourceBroker, TimestampType};

/// One message as a JSON object (the NDJSON line, without the newline).
pub fn to_json(message: &Message) -> Value {
    let mut object = Map::new();
    object.insert("broker".into(), message.broker.as_str().into());
    object.insert("stream".into(), message.stream.clone().into());
    if let Some(subject) = &message.subject {
        object.insert("subject".into(), subject.clone().into());
    }
    object.insert("partition".into(), message.partition.into());
    object.insert("offset".into(), message.offset.into());
    object.insert("timestamp_ms".into(), message.timestamp_ms.into());
    object.insert(
        "timestamp".into(),
        muninn_model::format_rfc3339_nanos(message.timestamp_ms.saturating_mul(1_000_000)).into(),
    );
    object.insert(
        "timestamp_type".into(),
        message.timestamp_type.as_str().into(),
    );
    put_bytes(&mut object, "key", message.key.as_deref());
    let headers: Vec<Value> = message
        .headers
        .iter()
        .map(|header| {
            let mut object = Map::new();
            object.insert("name".into(), header.name.clone().into());
            put_bytes(&mut object, "value", header.value.as_deref());
            Value::Object(object)
        })
        .collect();
    object.insert("headers".into(), headers.into());
    put_bytes(&mut object, "payload", message.payload.as_deref());
    for (name, value) in [
        ("event_id", &message.event_id),
        ("event_type", &message.event_type),
        ("event_schema", &message.event_schema),
        ("trace_id", &message.trace_id),
        ("span_id", &message.span_id),
    ] {
        if let Some(value) = value {
            object.insert(name.into(), value.clone().into());
        }
    }
    Value::Object(object)
}

fn put_bytes(object: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    match bytes {
        None => {
            object.insert(name.into(), Value::Null);
        }
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => {
                object.insert(name.into(), text.into());
            }
            Err(_) => {
                object.insert(format!("{name}_base64"), BASE64.encode(bytes).into());
            }
        },
    }
}

fn take_bytes(object: &Map<String, Value>, name: &str, line: usize) -> Result<Option<Vec<u8>>> {
    if let Some(value) = object.get(&format!("{name}_base64")) {
        let text = value.as_str().ok_or_else(|| {
            ArchiveError::invalid(format!("line {line}: {name}_base64 must be a string"))
        })?;
        return BASE64.decode(text).map(Some).map_err(|error| {
            ArchiveError::invalid(format!("line {line}: {name}_base64 is not base64: {error}"))
        });
    }
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_bytes().to_vec())),
        Some(_) => Err(ArchiveError::invalid(format!(
            "line {line}: {name} must be a string or null (or {name}_base64 a base64 string)"
        ))),
    }
}

/// Reads one line written by [`to_json`]; `line` (1-based) names it in errors.
pub fn from_json(text: &str, line: usize) -> Result<Message> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| ArchiveError::invalid(format!("line {line}: not JSON: {error}")))?;
    let Value::Object(object) = value else {
        return Err(ArchiveError::invalid(format!(
            "line {line}: expected a JSON object, one message per line"
        )));
    };
    let string = |name: &str| -> Result<String> {
        object
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                ArchiveError::invalid(format!("line {line}: {name}: a string is required"))
            })
    };
    let integer = |name: &str| -> Result<i64> {
        object.get(name).and_then(Value::as_i64).ok_or_else(|| {
            ArchiveError::invalid(format!("line {line}: {name}: an integer is required"))
        })
    };
    let broker_text = string("broker")?;
    let broker = SourceBroker::parse(&broker_text).ok_or_else(|| {
        ArchiveError::invalid(format!(
            "line {line}: broker {broker_text:?}: use \"kafka\" or \"nats\""
        ))
    })?;
    let type_text = string("timestamp_type")?;
    let timestamp_type = TimestampType::parse(&type_text).ok_or_else(|| {
        ArchiveError::invalid(format!(
            "line {line}: timestamp_type {type_text:?}: use create_time, log_append_time or not_available"
        ))
    })?;
    let partition = i32::try_from(integer("partition")?)
        .map_err(|_| ArchiveError::invalid(format!("line {line}: partition: out of range")))?;
    let mut headers = Vec::new();
    for header in object
        .get("headers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let Value::Object(header) = header else {
            return Err(ArchiveError::invalid(format!(
                "line {line}: headers: each header must be an object with name and value"
            )));
        };
        let name = header
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ArchiveError::invalid(format!("line {line}: headers: a header has no name"))
            })?
            .to_owned();
        headers.push(Header {
            name,
            value: take_bytes(header, "value", line)?,
        });
    }
    Ok(Message::from_broker(
        broker,
        string("stream")?,
        object
            .get("subject")
            .and_then(Value::as_str)
            .map(str::to_owned),
        partition,
        integer("offset")?,
        integer("timestamp_ms")?,
        timestamp_type,
        take_bytes(&object, "key", line)?,
        headers,
        take_bytes(&object, "payload", line)?,
    ))
}

/// A payload rendered for people: pretty JSON when it is JSON, text when it is UTF-8, hex and
/// base64 otherwise; at most `cap` bytes of it, saying when it was cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedPayload {
    /// `json`, `text`, `binary` or `absent`.
    pub kind: String,
    pub size: usize,
    pub truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

pub fn render_payload(payload: Option<&[u8]>, cap: usize) -> RenderedPayload {
    let Some(bytes) = payload else {
        return RenderedPayload {
            kind: "absent".into(),
            size: 0,
            truncated: false,
            text: None,
            hex: None,
            base64: None,
        };
    };
    let shown = &bytes[..bytes.len().min(cap)];
    let truncated = shown.len() < bytes.len();
    if !truncated && let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
        if pretty.len() <= cap.saturating_mul(2) {
            return RenderedPayload {
                kind: "json".into(),
                size: bytes.len(),
                truncated,
                text: Some(pretty),
                hex: None,
                base64: None,
            };
        }
    }
    // A cut may fall inside a UTF-8 sequence: accept the valid prefix when only the tail broke.
    let text = match std::str::from_utf8(shown) {
        Ok(text) => Some(text),
        Err(error) if truncated && error.error_len().is_none() => {
            std::str::from_utf8(&shown[..error.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(text) if !text.contains('\0') => RenderedPayload {
            kind: "text".into(),
            size: bytes.len(),
            truncated,
            text: Some(text.to_owned()),
            hex: None,
            base64: None,
        },
        _ => RenderedPayload {
            kind: "binary".into(),
            size: bytes.len(),
            truncated,
            text: None,
            hex: Some(shown.iter().map(|byte| format!("{byte:02x}")).collect()),
            base64: Some(BASE64.encode(shown)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_back_to_the_same_message_binary_and_null_bytes_included() {
        let message = Message::from_broker(
            SourceBroker::Kafka,
            "orders".into(),
            None,
            3,
            42,
            1_796_000_000_123,
            TimestampType::CreateTime,
            Some(vec![0xff, 0x00, 0x01]),
            vec![
                Header {
                    name: "muninn-event-id".into(),
                    value: Some(b"e-1".to_vec()),
                },
                Header {
                    name: "bin".into(),
                    value: Some(vec![0x80]),
                },
                Header {
                    name: "bin".into(),
                    value: None,
                },
            ],
            Some(br#"{"total": 12}"#.to_vec()),
        );
        let line = to_json(&message).to_string();
        assert!(line.contains(r#""key_base64":"/wAB""#), "{line}");
        assert!(line.contains(r#""payload":"{\"total\": 12}""#), "{line}");
        assert_eq!(from_json(&line, 1).unwrap(), message);
    }

    #[test]
    fn a_bad_line_names_its_number_and_field() {
        let error = from_json(r#"{"broker":"kafka","stream":"s"}"#, 7)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 7") && error.contains("timestamp_type"),
            "{error}"
        );
        let error = from_json(r#"{"broker":"amqp"}"#, 2)
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"kafka\" or \"nats\""), "{error}");
    }

    #[test]
    fn payloads_render_as_json_text_or_binary_within_the_cap() {
        let json = render_payload(Some(br#"{"a":[1,2]}"#), 1024);
        assert_eq!(json.kind, "json");
        assert!(json.text.unwrap().contains("\n"));
        let text = render_payload(Some("héllo wörld".as_bytes()), 1024);
        assert_eq!(
            (text.kind.as_str(), text.text.as_deref()),
            ("text", Some("héllo wörld"))
        );
        let cut = render_payload(Some("héllo".as_bytes()), 2);
        assert_eq!(
            (cut.kind.as_str(), cut.truncated, cut.text.as_deref()),
            ("text", true, Some("h"))
        );
        let binary = render_payload(Some(&[0, 159, 146, 150]), 3);
        assert_eq!(binary.kind, "binary");
        assert_eq!(binary.hex.as_deref(), Some("009f92"));
        assert!(binary.truncated);
        assert_eq!(render_payload(None, 10).kind, "absent");
    }
}
