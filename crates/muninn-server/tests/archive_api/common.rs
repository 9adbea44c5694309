//! The archive the archive API tests read: messages of `orders` and `shipments` (JSON, text and
//! binary payloads, a gap between offsets, one event in two streams) written with
//! `muninn_archive::Archive`, a server started with it configured, and the query of a message's
//! position.

use muninn_archive::{Archive, Header, Message, SourceBroker, TimestampType};
use muninn_server::ArchiveConfig;

use crate::support::{NANOS_PER_MILLI, TestServer};

pub(crate) const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub(crate) const JSON_PAYLOAD: &[u8] = br#"{"order":1,"total":12.5}"#;
pub(crate) const TEXT_PAYLOAD: &str = "hello, wörld";
pub(crate) const BINARY_PAYLOAD: &[u8] = &[0, 159, 146, 150, 255];

fn header(name: &str, value: Option<&[u8]>) -> Header {
    Header {
        name: name.to_owned(),
        value: value.map(<[u8]>::to_vec),
    }
}

fn event_headers(event_id: &str) -> Vec<Header> {
    vec![
        header("muninn-event-id", Some(event_id.as_bytes())),
        header("muninn-event-type", Some(b"order.created")),
    ]
}

pub(crate) fn kafka_message(
    stream: &str,
    partition: i32,
    offset: i64,
    timestamp_ms: i64,
    key: Option<&[u8]>,
    headers: Vec<Header>,
    payload: &[u8],
) -> Message {
    Message::from_broker(
        SourceBroker::Kafka,
        stream.to_owned(),
        None,
        partition,
        offset,
        timestamp_ms,
        TimestampType::CreateTime,
        key.map(<[u8]>::to_vec),
        headers,
        Some(payload.to_vec()),
    )
}

/// Ten minutes ago, in unix milliseconds: inside the store's default retention.
pub(crate) fn base_ms() -> i64 {
    muninn_model::now_unix_nanos() / NANOS_PER_MILLI - 10 * 60 * 1000
}

/// An archive with `orders` partition 0 (offsets 10-12 in one file and 15 in another, so 13-14
/// are a gap), `orders` partition 1 (offset 0) and `shipments` partition 0 (offset 0).
/// Event `order-1` is in `orders`/0/10 and `shipments`/0/0.
async fn write_archive(dir: &std::path::Path, base_ms: i64) {
    let archive = Archive::open_local(dir).await.expect("opening the archive");
    let mut first_headers = event_headers("order-1");
    first_headers.extend([
        header("traceparent", Some(TRACEPARENT.as_bytes())),
        header("sig", Some(&[0xff, 0x00, 0x80])),
        header("tombstone", None),
    ]);
    archive
        .commit(&[
            kafka_message(
                "orders",
                0,
                10,
                base_ms,
                Some(b"order-1"),
                first_headers,
                JSON_PAYLOAD,
            ),
            kafka_message(
                "orders",
                0,
                11,
                base_ms + 1,
                None,
                event_headers("order-2"),
                TEXT_PAYLOAD.as_bytes(),
            ),
            kafka_message(
                "orders",
                0,
                12,
                base_ms + 2,
                Some(&[0xff, 0xfe]),
                event_headers("order-3"),
                BINARY_PAYLOAD,
            ),
        ])
        .await
        .expect("committing orders/0");
    for (stream, partition, offset, event_id) in [
        ("orders", 0, 15, "order-4"),
        ("orders", 1, 0, "order-5"),
        ("shipments", 0, 0, "order-1"),
    ] {
        archive
            .commit(&[kafka_message(
                stream,
                partition,
                offset,
                base_ms + 5,
                None,
                event_headers(event_id),
                b"{}",
            )])
            .await
            .expect("committing a message");
    }
}

/// A server with an archive in a temporary directory, written by `write_archive`.
pub(crate) async fn server_with_archive(base_ms: i64) -> (TestServer, tempfile::TempDir) {
    let archive_dir = tempfile::tempdir().expect("creating the archive directory");
    write_archive(archive_dir.path(), base_ms).await;
    let location = archive_dir.path().display().to_string();
    let server = TestServer::start_with(|config| {
        config.archive = Some(ArchiveConfig::new(location));
    })
    .await;
    (server, archive_dir)
}

pub(crate) fn position(stream: &str, partition: &str, offset: &str) -> Vec<(&'static str, String)> {
    vec![
        ("stream", stream.to_owned()),
        ("partition", partition.to_owned()),
        ("offset", offset.to_owned()),
    ]
}

pub(crate) fn query<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}
