//! The archive's routes: `GET /api/v1/archive/streams`, `…/messages` (one message by position,
//! or a stream's messages in a time range), `…/messages/raw` (one payload, byte for byte) and
//! `…/events/{event_id}` (every archived message with that event id). Parameters are checked
//! here with errors naming them; answers are the server's own JSON shapes.

use crate::tenant::TenantState;

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use muninn_archive::{
    Archive, ArchiveError, Filter, Message, Selection, StreamSummary, render_payload, to_json,
};
use muninn_model::{now_unix_nanos, parse_time};
use serde_json::{Map, Value, json};

use super::configured;
use crate::compat::{ParamError, Params, RawParams};
use crate::error::ApiError;

/// The payload bytes rendered in one message's answer unless `max_bytes` says otherwise…
const DEFAULT_MESSAGE_PAYLOAD_BYTES: usize = 64 << 10;
/// …and in each message of a list (`/messages` without an offset, `/events/{id}`).
const DEFAULT_LISTED_PAYLOAD_BYTES: usize = 4 << 10;
/// The most payload bytes `max_bytes` may ask to render; the raw route has no limit.
const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Messages listed by default, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
const NANOS_PER_MILLI: i64 = 1_000_000;
/// `to` by default: a day from now (broker timestamps may be ahead of this clock).
const DEFAULT_TO_AHEAD_MS: i64 = 86_400_000;
/// The parameters of the list form, refused next to `offset`.
const LIST_PARAMETERS: [&str; 4] = ["from", "to", "filter", "limit"];

/// `GET /api/v1/archive/streams`: every archived stream, its partitions, offsets, hours,
/// counts, bytes, files and gaps.
pub(crate) async fn streams(TenantState(state): TenantState) -> Result<Response, ApiError> {
    let archive = &configured(&state)?.archive;
    let streams: Vec<Value> = archive.streams().await?.iter().map(stream_view).collect();
    Ok(Json(json!({ "streams": streams })).into_response())
}

fn stream_view(stream: &StreamSummary) -> Value {
    let partitions: Vec<Value> = stream
        .partitions
        .iter()
        .map(|partition| {
            let gaps: Vec<Value> = partition
                .gaps
                .iter()
                .map(|(first, last)| json!({"first_offset": first, "last_offset": last}))
                .collect();
            json!({
                "partition": partition.partition,
                "first_offset": partition.first_offset,
                "last_offset": partition.last_offset,
                "messages": partition.messages,
                "bytes": partition.bytes,
                "files": partition.files,
                "first_hour": partition.first_hour,
                "last_hour": partition.last_hour,
                "gaps": gaps,
            })
        })
        .collect();
    json!({
        "stream": stream.stream,
        "messages": stream.messages,
        "bytes": stream.bytes,
        "partitions": partitions,
    })
}

/// `GET /api/v1/archive/messages`: with `offset`, the message at (stream, partition, offset);
/// without, the stream's messages in `[from, to)` matching every `filter`, by partition then
/// offset, at most `limit`.
pub(crate) async fn messages(
    TenantState(state): TenantState,
    raw: RawParams,
) -> Result<Response, ApiError> {
    let archive = &configured(&state)?.archive;
    let params = Params::read(raw)?;
    if params.get("offset").is_some() {
        if let Some(name) = LIST_PARAMETERS
            .into_iter()
            .find(|name| params.get(name).is_some())
        {
            return Err(ParamError::new(
                name,
                "lists messages, and offset names one; leave out offset to list, or this to \
                 read the message at offset",
            )
            .into());
        }
        let position = Position::read(&params)?;
        let cap = max_bytes(&params, DEFAULT_MESSAGE_PAYLOAD_BYTES)?;
        let message = position.find(archive).await?;
        return Ok(Json(message_view(&message, cap)).into_response());
    }
    let stream = stream(&params)?;
    let partition = match params.integer("partition")? {
        None => None,
        Some(_) => Some(partition(&params)?),
    };
    let (from_ms, to_ms) = time_range(&params)?;
    let filters = params
        .all("filter")
        .into_iter()
        .map(|text| Filter::parse(text).map_err(|error| ParamError::new("filter", error)))
        .collect::<Result<Vec<Filter>, ParamError>>()?;
    let limit = limit(&params)?;
    let cap = max_bytes(&params, DEFAULT_LISTED_PAYLOAD_BYTES)?;
    let selection = Selection::new(&stream, partition, from_ms, to_ms, filters)
        .map_err(|error| ParamError::new("stream", error))?;
    let found = scan(archive, &[selection], limit).await?;
    Ok(Json(found.view(cap)).into_response())
}

/// `GET /api/v1/archive/messages/raw`: the payload of the message at (stream, partition,
/// offset), byte for byte.
pub(crate) async fn raw_message(
    TenantState(state): TenantState,
    raw: RawParams,
) -> Result<Response, ApiError> {
    let archive = &configured(&state)?.archive;
    let params = Params::read(raw)?;
    let position = Position::read(&params)?;
    let message = position.find(archive).await?;
    let file_name = format!(
        "attachment; filename=\"{}-p{}-o{}.bin\"",
        position.stream, position.partition, position.offset
    );
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream".to_owned()),
            (CONTENT_DISPOSITION, file_name),
        ],
        message.payload.unwrap_or_default(),
    )
        .into_response())
}

/// `GET /api/v1/archive/events/{event_id}`: every archived message carrying the event id, in
/// `stream` or every stream, with a broker timestamp in `[from, to)` (the whole archive by
/// default: every file of the range is read).
pub(crate) async fn event_messages(
    TenantState(state): TenantState,
    event_id: Result<Path<String>, PathRejection>,
    raw: RawParams,
) -> Result<Response, ApiError> {
    let event_id = crate::query::path_segment(event_id, "event_id")?;
    if event_id.is_empty() || event_id.len() > state.limits.max_name_bytes {
        return Err(ApiError::bad_field(
            "event_id",
            format!(
                "event_id: must be 1 to {} bytes",
                state.limits.max_name_bytes
            ),
        ));
    }
    let archive = &configured(&state)?.archive;
    let params = Params::read(raw)?;
    let streams = match params.get("stream") {
        Some(_) => vec![stream(&params)?],
        None => archive
            .streams()
            .await?
            .into_iter()
            .map(|summary| summary.stream)
            .collect(),
    };
    let (from_ms, to_ms) = time_range(&params)?;
    let limit = limit(&params)?;
    let cap = max_bytes(&params, DEFAULT_LISTED_PAYLOAD_BYTES)?;
    let selections = streams
        .iter()
        .map(|stream| {
            Selection::new(
                stream,
                None,
                from_ms,
                to_ms,
                vec![Filter::EventId(event_id.clone())],
            )
            .map_err(|error| ApiError::from(ParamError::new("stream", error)))
        })
        .collect::<Result<Vec<Selection>, ApiError>>()?;
    let found = scan(archive, &selections, limit).await?;
    if found.messages.is_empty() && found.unreadable_files.is_empty() {
        return Err(ApiError::not_found(format!(
            "no archived message carries event id {event_id:?} (streams searched: {}); \
             widen from and to, or leave out stream",
            streams.len()
        )));
    }
    let mut view = found.view(cap);
    view["event_id"] = json!(event_id);
    view["streams_searched"] = json!(streams.len());
    Ok(Json(view).into_response())
}

/// One message's place: stream, partition, offset (all required).
struct Position {
    stream: String,
    partition: i32,
    offset: i64,
}

impl Position {
    fn read(params: &Params) -> Result<Position, ParamError> {
        let stream = stream(params)?;
        let partition = partition(params)?;
        let offset = match params.integer("offset")? {
            Some(offset) if offset >= 0 => offset,
            Some(offset) => {
                return Err(ParamError::new(
                    "offset",
                    format!(
                        "{offset} is negative; give the message's offset (Kafka) or stream sequence (JetStream), 0 or more"
                    ),
                ));
            }
            None => {
                return Err(ParamError::new(
                    "offset",
                    "is required: the message's offset (Kafka) or stream sequence (JetStream)",
                ));
            }
        };
        Ok(Position {
            stream,
            partition,
            offset,
        })
    }

    /// The archived message here, or the 404 saying what is not archived.
    async fn find(&self, archive: &Archive) -> Result<Message, ApiError> {
        archive
            .message(&self.stream, self.partition, self.offset)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "stream {:?} partition {} offset {} is not archived; GET \
                     /api/v1/archive/streams lists what is",
                    self.stream, self.partition, self.offset
                ))
            })
    }
}

fn stream(params: &Params) -> Result<String, ParamError> {
    let stream = params.get("stream").ok_or_else(|| {
        ParamError::new(
            "stream",
            "is required: the Kafka topic or JetStream stream, as GET /api/v1/archive/streams lists them",
        )
    })?;
    muninn_archive::check_stream_name(stream).map_err(|error| ParamError::new("stream", error))?;
    Ok(stream.to_owned())
}

fn partition(params: &Params) -> Result<i32, ParamError> {
    const HINT: &str = "give the partition number, 0 or more (0 for JetStream)";
    match params.integer("partition")? {
        Some(partition) => i32::try_from(partition)
            .ok()
            .filter(|partition| *partition >= 0)
            .ok_or_else(|| {
                ParamError::new("partition", format!("{partition} is out of range; {HINT}"))
            }),
        None => Err(ParamError::new("partition", format!("is required; {HINT}"))),
    }
}

/// `from` and `to` as unix milliseconds, `[from, to)`: the beginning and a day from now by
/// default.
fn time_range(params: &Params) -> Result<(i64, i64), ParamError> {
    let now = now_unix_nanos();
    let read = |name: &str| {
        params
            .get(name)
            .map(|text| {
                parse_time(text, now)
                    .map(|nanos| nanos.div_euclid(NANOS_PER_MILLI))
                    .map_err(|error| ParamError::new(name, error))
            })
            .transpose()
    };
    let from_ms = read("from")?.unwrap_or(0);
    let to_ms = read("to")?.unwrap_or(now / NANOS_PER_MILLI + DEFAULT_TO_AHEAD_MS);
    if from_ms >= to_ms {
        return Err(ParamError::new("from", "must be before to"));
    }
    Ok((from_ms, to_ms))
}

fn limit(params: &Params) -> Result<usize, ParamError> {
    match params.integer("limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if (1..=MAX_LIMIT as i64).contains(&limit) => Ok(limit as usize),
        Some(limit) => Err(ParamError::new(
            "limit",
            format!("must be 1 to {MAX_LIMIT}, got {limit}"),
        )),
    }
}

fn max_bytes(params: &Params, default: usize) -> Result<usize, ParamError> {
    match params.integer("max_bytes")? {
        None => Ok(default),
        Some(bytes) if (0..=MAX_PAYLOAD_BYTES as i64).contains(&bytes) => Ok(bytes as usize),
        Some(bytes) => Err(ParamError::new(
            "max_bytes",
            format!(
                "must be 0 to {MAX_PAYLOAD_BYTES} (payload bytes to render), got {bytes}; \
                 /api/v1/archive/messages/raw gives the whole payload"
            ),
        )),
    }
}

/// The messages a scan found, and the files it could not read.
struct Found {
    messages: Vec<Message>,
    /// `stream/hour/file: error` of each file that could not be read; its messages are missing.
    unreadable_files: Vec<String>,
    /// More messages matched than `limit`.
    truncated: bool,
}

impl Found {
    fn view(&self, cap: usize) -> Value {
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|message| message_view(message, cap))
            .collect();
        json!({
            "messages": messages,
            "truncated": self.truncated,
            "unreadable_files": self.unreadable_files,
        })
    }
}

/// The messages of `selections`, in order, until `limit`. A file that cannot be read is listed
/// and skipped (the answer is partial, and says so); a listing that fails fails the request.
async fn scan(
    archive: &Archive,
    selections: &[Selection],
    limit: usize,
) -> Result<Found, ArchiveError> {
    let mut found = Found {
        messages: Vec::new(),
        unreadable_files: Vec::new(),
        truncated: false,
    };
    for selection in selections {
        for file in archive.files(selection).await? {
            let messages = match archive.read_file(&file).await {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, file = %file.entry.name, "archive file unreadable");
                    found.unreadable_files.push(format!(
                        "{}/{}/{}: {error}",
                        file.stream,
                        file.hour.label(),
                        file.entry.name
                    ));
                    continue;
                }
            };
            for message in messages {
                if !selection.matches(&message) {
                    continue;
                }
                if found.messages.len() == limit {
                    found.truncated = true;
                    return Ok(found);
                }
                found.messages.push(message);
            }
        }
    }
    Ok(found)
}

/// One message as the API shows it: position, broker timestamp (RFC 3339, milliseconds, type),
/// key and headers (text when UTF-8, else `…_base64`, as `archive cat` writes them), the event
/// and trace fields, the payload rendered up to `cap` bytes, and the link to its raw bytes.
pub(super) fn message_view(message: &Message, cap: usize) -> Value {
    let mut object = match to_json(message) {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    object.remove("payload");
    object.remove("payload_base64");
    object.insert(
        "payload".into(),
        serde_json::to_value(render_payload(message.payload.as_deref(), cap))
            .unwrap_or(Value::Null),
    );
    object.insert(
        "download".into(),
        raw_link(&message.stream, message.partition, message.offset).into(),
    );
    Value::Object(object)
}

/// `/api/v1/archive/messages?stream=…&partition=…&offset=…`.
pub(super) fn message_link(stream: &str, partition: i32, offset: i64) -> String {
    format!(
        "/api/v1/archive/messages?stream={}&partition={partition}&offset={offset}",
        percent_encode(stream)
    )
}

fn raw_link(stream: &str, partition: i32, offset: i64) -> String {
    format!(
        "/api/v1/archive/messages/raw?stream={}&partition={partition}&offset={offset}",
        percent_encode(stream)
    )
}

/// `/api/v1/archive/events/<event id>`.
pub(super) fn event_link(event_id: &str) -> String {
    format!("/api/v1/archive/events/{}", percent_encode(event_id))
}

/// Every byte but RFC 3986's unreserved characters as `%XX`: safe in a path segment and in a
/// query value.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_percent_encode_what_is_not_unreserved() {
        assert_eq!(
            event_link("order 1/é?"),
            "/api/v1/archive/events/order%201%2F%C3%A9%3F"
        );
        assert_eq!(
            message_link("orders.v1", 3, 42),
            "/api/v1/archive/messages?stream=orders.v1&partition=3&offset=42"
        );
    }
}
