//! Messages read back from a JetStream stream with `STREAM.MSG.GET` (the recorder fills gaps
//! left by redelivery this way), and the conversion of NATS headers into the archive's order:
//! names sorted, each name's values in wire order.

use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::message::{Header, Message, SourceBroker, TimestampType};

/// `STREAM.MSG.GET`'s request: the first message at or after `seq` on any subject.
#[derive(Serialize)]
pub(crate) struct StoredMessageRequest {
    pub seq: u64,
    pub next_by_subj: &'static str,
}

#[derive(Deserialize)]
pub(crate) struct StoredMessageResponse {
    pub message: StoredMessage,
}

/// A message as the stream stores it: payload and header block in base64.
#[derive(Deserialize)]
pub(crate) struct StoredMessage {
    pub subject: String,
    pub seq: u64,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub hdrs: Option<String>,
    pub time: String,
}

impl StoredMessage {
    pub(crate) fn into_message(self, stream: &str) -> Result<Message, String> {
        let payload = match &self.data {
            Some(data) => BASE64
                .decode(data)
                .map_err(|error| format!("payload: {error}"))?,
            None => Vec::new(),
        };
        let headers = match &self.hdrs {
            Some(block) => parse_header_block(
                &BASE64
                    .decode(block)
                    .map_err(|error| format!("headers: {error}"))?,
            )?,
            None => Vec::new(),
        };
        let time = chrono::DateTime::parse_from_rfc3339(&self.time)
            .map_err(|error| format!("time {:?}: {error}", self.time))?;
        Ok(Message::from_broker(
            SourceBroker::Nats,
            stream.to_owned(),
            Some(self.subject),
            0,
            i64::try_from(self.seq).unwrap_or(i64::MAX),
            time.timestamp_millis(),
            TimestampType::LogAppendTime,
            None,
            headers,
            Some(payload),
        ))
    }
}

/// A delivered message's headers in the archive's order (see the module comment).
pub(crate) fn headers(map: Option<&HeaderMap>) -> Vec<Header> {
    let Some(map) = map else {
        return Vec::new();
    };
    in_archive_order(
        map.iter()
            .flat_map(|(name, values)| {
                values.iter().map(move |value| Header {
                    name: AsRef::<str>::as_ref(name).to_owned(),
                    value: Some(value.as_str().as_bytes().to_vec()),
                })
            })
            .collect(),
    )
}

/// A stored header block (`NATS/1.0\r\nName: value\r\n…`) read as async-nats reads a delivered
/// message's, each value kept: value trimmed, continuation lines appended.
pub(crate) fn parse_header_block(block: &[u8]) -> Result<Vec<Header>, String> {
    let text = std::str::from_utf8(block).map_err(|_| "headers: not UTF-8".to_owned())?;
    let mut lines = text.lines().peekable();
    if !lines
        .next()
        .is_some_and(|line| line.starts_with("NATS/1.0"))
    {
        return Err("headers: no NATS/1.0 line".to_owned());
    }
    let mut headers = Vec::new();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("headers: no ':' in {line:?}"))?;
        let mut value = value.trim_start().to_owned();
        while let Some(more) = lines.next_if(|line| line.starts_with(char::is_whitespace)) {
            value.push_str(more);
        }
        value.truncate(value.trim_end().len());
        headers.push(Header {
            name: name.to_owned(),
            value: Some(value.into_bytes()),
        });
    }
    Ok(in_archive_order(headers))
}

/// Names sorted bytewise; a stable sort, so each name's values keep their order.
pub(crate) fn in_archive_order(mut headers: Vec<Header>) -> Vec<Header> {
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    headers
}

pub(crate) fn unix_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_header_block_keeps_every_value_names_sorted() {
        let block = b"NATS/1.0\r\nzeta: 1\r\nalpha:  a1 \r\nzeta: 2\r\nalpha: a2\r\n\r\n";
        let headers = parse_header_block(block).unwrap();
        let pairs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|header| (header.name.as_str(), header.value.as_deref().unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("alpha", &b"a1"[..]),
                ("alpha", b"a2"),
                ("zeta", b"1"),
                ("zeta", b"2")
            ]
        );
    }
}
