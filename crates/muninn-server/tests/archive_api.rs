//! The event archive in the server, end to end over HTTP: an archive directory written with
//! `muninn_archive::Archive`, a real server started with it configured, and every archive
//! route, error, journey link, metric and health report read through the API. Every answer is
//! checked against `openapi.yaml` by the shared test client.

// The shared client and its OpenAPI checks (whose own tests run here too); this binary uses
// part of the support module.
#[allow(dead_code)]
#[path = "api/support.rs"]
mod support;

#[path = "api/openapi.rs"]
mod openapi;

// The browser driver; this binary uses part of it.
#[allow(dead_code)]
#[path = "api/browser.rs"]
mod browser;

use std::time::Duration;

use muninn_archive::{
    Archive, Header, KafkaSource, Message, NatsSource, SourceBroker, TimestampType,
};
use muninn_server::ArchiveConfig;
use serde_json::{Value, json};
use support::{NANOS_PER_MILLI, TestServer, event, span, with};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const JSON_PAYLOAD: &[u8] = br#"{"order":1,"total":12.5}"#;
const TEXT_PAYLOAD: &str = "hello, wörld";
const BINARY_PAYLOAD: &[u8] = &[0, 159, 146, 150, 255];

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

fn kafka_message(
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
fn base_ms() -> i64 {
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
async fn server_with_archive(base_ms: i64) -> (TestServer, tempfile::TempDir) {
    let archive_dir = tempfile::tempdir().expect("creating the archive directory");
    write_archive(archive_dir.path(), base_ms).await;
    let location = archive_dir.path().display().to_string();
    let server = TestServer::start_with(|config| {
        config.archive = Some(ArchiveConfig::new(location));
    })
    .await;
    (server, archive_dir)
}

fn position(stream: &str, partition: &str, offset: &str) -> Vec<(&'static str, String)> {
    vec![
        ("stream", stream.to_owned()),
        ("partition", partition.to_owned()),
        ("offset", offset.to_owned()),
    ]
}

fn query<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streams_route_lists_partitions_offsets_counts_and_gaps() {
    let (server, _archive_dir) = server_with_archive(base_ms()).await;
    let answer = server.api.get_json("/api/v1/archive/streams", &[]).await;
    let streams = answer["streams"].as_array().expect("a list of streams");
    let names: Vec<&str> = streams
        .iter()
        .filter_map(|s| s["stream"].as_str())
        .collect();
    assert_eq!(names, ["orders", "shipments"]);
    let orders = &streams[0];
    assert_eq!(orders["messages"], json!(5));
    let partition_0 = &orders["partitions"][0];
    assert_eq!(
        (
            &partition_0["partition"],
            &partition_0["first_offset"],
            &partition_0["last_offset"],
            &partition_0["messages"],
            &partition_0["files"],
        ),
        (&json!(0), &json!(10), &json!(15), &json!(4), &json!(2))
    );
    assert_eq!(
        partition_0["gaps"],
        json!([{"first_offset": 13, "last_offset": 14}])
    );
    assert_eq!(orders["partitions"][1]["partition"], json!(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_shows_every_field_and_its_payload_rendered_and_raw() {
    let base_ms = base_ms();
    let (server, _archive_dir) = server_with_archive(base_ms).await;
    let api = &server.api;

    let json_message = api
        .get_json(
            "/api/v1/archive/messages",
            &query(&position("orders", "0", "10")),
        )
        .await;
    assert_eq!(json_message["broker"], json!("kafka"));
    assert_eq!(
        (
            &json_message["stream"],
            &json_message["partition"],
            &json_message["offset"]
        ),
        (&json!("orders"), &json!(0), &json!(10))
    );
    assert_eq!(json_message["timestamp_ms"], json!(base_ms));
    assert_eq!(
        json_message["timestamp"],
        json!(muninn_model::format_rfc3339_nanos(
            base_ms * NANOS_PER_MILLI
        ))
    );
    assert_eq!(json_message["timestamp_type"], json!("create_time"));
    assert_eq!(json_message["key"], json!("order-1"));
    assert_eq!(
        json_message["headers"],
        json!([
            {"name": "muninn-event-id", "value": "order-1"},
            {"name": "muninn-event-type", "value": "order.created"},
            {"name": "traceparent", "value": TRACEPARENT},
            {"name": "sig", "value_base64": "/wCA"},
            {"name": "tombstone", "value": null},
        ])
    );
    assert_eq!(json_message["event_id"], json!("order-1"));
    assert_eq!(json_message["event_type"], json!("order.created"));
    assert_eq!(
        json_message["trace_id"],
        json!("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(json_message["span_id"], json!("00f067aa0ba902b7"));
    assert_eq!(
        json_message["payload"],
        json!({
            "kind": "json",
            "size": JSON_PAYLOAD.len(),
            "truncated": false,
            "text": "{\n  \"order\": 1,\n  \"total\": 12.5\n}",
        })
    );
    let download = json_message["download"].as_str().expect("a download link");
    assert_eq!(
        download,
        "/api/v1/archive/messages/raw?stream=orders&partition=0&offset=10"
    );

    let text = api
        .get_json(
            "/api/v1/archive/messages",
            &query(&position("orders", "0", "11")),
        )
        .await;
    assert_eq!(text["key"], json!(null));
    assert_eq!(
        text["payload"],
        json!({"kind": "text", "size": TEXT_PAYLOAD.len(), "truncated": false, "text": TEXT_PAYLOAD})
    );
    let mut capped = position("orders", "0", "11");
    capped.push(("max_bytes", "5".to_owned()));
    let capped = api
        .get_json("/api/v1/archive/messages", &query(&capped))
        .await;
    assert_eq!(
        capped["payload"],
        json!({"kind": "text", "size": TEXT_PAYLOAD.len(), "truncated": true, "text": "hello"})
    );

    let binary = api
        .get_json(
            "/api/v1/archive/messages",
            &query(&position("orders", "0", "12")),
        )
        .await;
    assert_eq!(binary["key_base64"], json!("//4="));
    assert_eq!(binary["payload"]["kind"], json!("binary"));
    assert_eq!(binary["payload"]["hex"], json!("009f9296ff"));
    assert_eq!(binary["payload"]["base64"], json!("AJ+Slv8="));

    // The raw route gives the exact bytes, whatever they are.
    for (offset, bytes) in [("10", JSON_PAYLOAD), ("12", BINARY_PAYLOAD)] {
        let response = reqwest::get(format!(
            "{}/api/v1/archive/messages/raw?stream=orders&partition=0&offset={offset}",
            server.base_url()
        ))
        .await
        .expect("GET raw");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        assert_eq!(
            response.headers()["content-disposition"],
            format!("attachment; filename=\"orders-p0-o{offset}.bin\"").as_str()
        );
        assert_eq!(response.bytes().await.expect("the body").as_ref(), bytes);
    }
    let raw = api
        .get(
            "/api/v1/archive/messages/raw",
            &query(&position("orders", "0", "11")),
        )
        .await;
    assert_eq!((raw.status, raw.text.as_str()), (200, TEXT_PAYLOAD));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_lists_its_messages_by_time_and_filter_up_to_a_limit() {
    let (server, _archive_dir) = server_with_archive(base_ms()).await;
    let api = &server.api;
    let offsets = |answer: &Value| -> Vec<(i64, i64)> {
        answer["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|message| {
                (
                    message["partition"].as_i64().unwrap_or(-1),
                    message["offset"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    let all = api
        .get_json("/api/v1/archive/messages", &[("stream", "orders")])
        .await;
    assert_eq!(offsets(&all), [(0, 10), (0, 11), (0, 12), (0, 15), (1, 0)]);
    assert_eq!(all["truncated"], json!(false));
    assert_eq!(all["unreadable_files"], json!([]));

    let limited = api
        .get_json(
            "/api/v1/archive/messages",
            &[("stream", "orders"), ("limit", "2")],
        )
        .await;
    assert_eq!(offsets(&limited), [(0, 10), (0, 11)]);
    assert_eq!(limited["truncated"], json!(true));

    let filtered = api
        .get_json(
            "/api/v1/archive/messages",
            &[
                ("stream", "orders"),
                ("filter", "event_id=order-2"),
                ("filter", "header.muninn-event-type=order.created"),
            ],
        )
        .await;
    assert_eq!(offsets(&filtered), [(0, 11)]);

    let partition = api
        .get_json(
            "/api/v1/archive/messages",
            &[("stream", "orders"), ("partition", "1")],
        )
        .await;
    assert_eq!(offsets(&partition), [(1, 0)]);

    let later = api
        .get_json(
            "/api/v1/archive/messages",
            &[("stream", "orders"), ("from", "-1m")],
        )
        .await;
    assert_eq!(offsets(&later), []);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_finds_its_messages_in_every_stream() {
    let (server, _archive_dir) = server_with_archive(base_ms()).await;
    let api = &server.api;
    let found = api.get_json("/api/v1/archive/events/order-1", &[]).await;
    let places: Vec<(&str, i64)> = found["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| {
            (
                message["stream"].as_str().unwrap_or_default(),
                message["offset"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(places, [("orders", 10), ("shipments", 0)]);
    assert_eq!(found["event_id"], json!("order-1"));
    assert_eq!(found["streams_searched"], json!(2));
    assert_eq!(found["messages"][0]["payload"]["kind"], json!("json"));

    let one_stream = api
        .get_json("/api/v1/archive/events/order-1", &[("stream", "shipments")])
        .await;
    assert_eq!(one_stream["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(one_stream["streams_searched"], json!(1));

    let missing = api.get("/api/v1/archive/events/order-9", &[]).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert!(
        missing.error()["message"]
            .as_str()
            .is_some_and(|message| message.contains("order-9"))
    );
    server.stop().await;
}

/// A request with a bad parameter: path, query, and the parameter the error must name.
type BadRequest = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_naming_them_and_unarchived_messages_are_404() {
    let (server, _archive_dir) = server_with_archive(base_ms()).await;
    let api = &server.api;
    let messages = "/api/v1/archive/messages";
    let cases: [BadRequest; 12] = [
        (messages, &[("partition", "0"), ("offset", "1")], "stream"),
        (
            messages,
            &[("stream", "or ders"), ("partition", "0"), ("offset", "1")],
            "stream",
        ),
        (
            messages,
            &[("stream", "orders"), ("offset", "1")],
            "partition",
        ),
        (
            messages,
            &[("stream", "orders"), ("partition", "-1"), ("offset", "1")],
            "partition",
        ),
        (
            messages,
            &[("stream", "orders"), ("partition", "x"), ("offset", "1")],
            "partition",
        ),
        (
            messages,
            &[("stream", "orders"), ("partition", "0"), ("offset", "-3")],
            "offset",
        ),
        (
            messages,
            &[
                ("stream", "orders"),
                ("partition", "0"),
                ("offset", "10"),
                ("max_bytes", "2000000"),
            ],
            "max_bytes",
        ),
        (
            messages,
            &[
                ("stream", "orders"),
                ("partition", "0"),
                ("offset", "10"),
                ("limit", "5"),
            ],
            "limit",
        ),
        (
            messages,
            &[("stream", "orders"), ("from", "now"), ("to", "-1h")],
            "from",
        ),
        (
            messages,
            &[("stream", "orders"), ("filter", "colour=red")],
            "filter",
        ),
        (
            "/api/v1/archive/messages/raw",
            &[("stream", "orders"), ("partition", "0")],
            "offset",
        ),
        ("/api/v1/archive/events/order-1", &[("limit", "0")], "limit"),
    ];
    for (path, parameters, field) in cases {
        let answer = api.get(path, parameters).await;
        let error = answer.expect_bad_field(field);
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|message| message.len() > field.len() + 10),
            "{path} {parameters:?}: the message should say what is valid: {error}"
        );
    }
    for (path, parameters) in [
        (messages, position("orders", "0", "13")),
        (messages, position("payments", "0", "0")),
        ("/api/v1/archive/messages/raw", position("orders", "2", "0")),
    ] {
        let answer = api.get(path, &query(&parameters)).await;
        assert_eq!(answer.status, 404, "{path} {parameters:?}: {}", answer.text);
        assert!(
            answer.error()["message"]
                .as_str()
                .is_some_and(|message| message.contains("not archived")),
            "{}",
            answer.text
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_archive_its_routes_say_how_to_configure_one() {
    let server = TestServer::start().await;
    for path in [
        "/api/v1/archive/streams",
        "/api/v1/archive/messages?stream=orders&partition=0&offset=1",
        "/api/v1/archive/events/order-1",
    ] {
        let answer = server.api.get(path, &[]).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.text);
        let message = answer.error()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("not configured") && message.contains("[archive]"),
            "{message}"
        );
    }
    assert_eq!(
        server.api.get_json("/healthz", &[]).await,
        json!({
            "status": "ok",
            "store": {
                "wal": "ok", "wal_failures": 0, "last_wal_error": null,
                "flushing": "ok", "flush_failures": 0, "last_flush_error": null,
                "quarantined_blocks": []
            }
        })
    );
    server.stop().await;
}

/// Spans of event `order-1` whose hops name archived messages: the publish and billing's
/// consume name `orders`/0/10 (the publish ends 4 ms before the broker's timestamp; billing
/// starts 20 ms after it), a retry names offset 99, which the archive does not hold, and
/// shipping names no offset at all.
fn archived_journey(base_nanos: i64) -> Vec<Value> {
    let trace = "7ace0000000000000000000000000001";
    let at = |partition: i64, offset: i64| json!({"partition": partition, "offset": offset});
    let created = event("order-1", "order.created", "order.v1", "orders", "kafka");
    vec![
        with(
            span(
                trace,
                "0000000000000001",
                None,
                "checkout",
                "publish",
                "producer",
                base_nanos - 5 * NANOS_PER_MILLI,
            ),
            with(created.clone(), at(0, 10)),
        ),
        with(
            span(
                trace,
                "0000000000000002",
                Some("0000000000000001"),
                "billing",
                "consume",
                "consumer",
                base_nanos + 20 * NANOS_PER_MILLI,
            ),
            with(created.clone(), at(0, 10)),
        ),
        with(
            span(
                trace,
                "0000000000000003",
                Some("0000000000000001"),
                "billing",
                "consume",
                "consumer",
                base_nanos + 30 * NANOS_PER_MILLI,
            ),
            with(created, at(0, 99)),
        ),
        with(
            span(
                trace,
                "0000000000000004",
                Some("0000000000000002"),
                "shipping",
                "consume",
                "consumer",
                base_nanos + 40 * NANOS_PER_MILLI,
            ),
            event("order-1", "order.created", "order.v1", "shipments", "kafka"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_hop_links_to_its_archived_message_and_its_time_in_the_broker() {
    let base_ms = base_ms();
    let (server, _archive_dir) = server_with_archive(base_ms).await;
    let base_nanos = base_ms * NANOS_PER_MILLI;
    server
        .api
        .ingest_ok("/api/v1/spans", &archived_journey(base_nanos))
        .await;

    let journey = server.api.get_json("/api/v1/events/order-1", &[]).await;
    let archive_of = |index: usize| journey["hops"][index]["archive"].clone();
    let link = "/api/v1/archive/messages?stream=orders&partition=0&offset=10";
    let timestamp = muninn_model::format_rfc3339_nanos(base_nanos);
    assert_eq!(
        archive_of(0),
        json!({
            "message": link,
            "archived": true,
            "broker_timestamp": timestamp,
            "timestamp_type": "create_time",
            "broker_ms": {"after_publish_ms": 4.0, "before_consume_ms": 20.0},
        })
    );
    assert_eq!(
        archive_of(1),
        json!({
            "message": link,
            "archived": true,
            "broker_timestamp": timestamp,
            "timestamp_type": "create_time",
            "broker_ms": {"after_publish_ms": 4.0, "before_consume_ms": 20.0},
        })
    );
    assert_eq!(
        archive_of(2),
        json!({
            "message": "/api/v1/archive/messages?stream=orders&partition=0&offset=99",
            "archived": false,
        })
    );
    assert_eq!(
        archive_of(3),
        json!({"event": "/api/v1/archive/events/order-1"})
    );

    // The links resolve.
    let (path, link_query) = link.split_once('?').expect("a query");
    let link_query: Vec<(&str, &str)> = link_query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let message = server.api.get_json(path, &link_query).await;
    assert_eq!(
        (&message["stream"], &message["offset"], &message["event_id"]),
        (&json!("orders"), &json!(10), &json!("order-1"))
    );
    let event_messages = server
        .api
        .get_json("/api/v1/archive/events/order-1", &[])
        .await;
    assert_eq!(event_messages["messages"].as_array().map(Vec::len), Some(2));
    server.stop().await;
}

/// In the browser: a hop's archived message opens beside its journey with its headers in the
/// broker's order, its payload rendered and its time in the broker; a hop without a position
/// lists the event's archived messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_a_hops_archived_message() {
    let base_ms = base_ms();
    let (server, _archive_dir) = server_with_archive(base_ms).await;
    server
        .api
        .ingest_ok(
            "/api/v1/spans",
            &archived_journey(base_ms * NANOS_PER_MILLI),
        )
        .await;
    let browser = browser::Browser::open(&server.base_url(), 1280, 800).await;
    browser
        .visit("/events/order-1?span=0000000000000002", "journey")
        .await;
    let details = browser.find("aside.details").await;
    let text = details.text().await.unwrap();
    assert!(
        text.contains("20.0 ms in the broker before the consume")
            && text.contains("4.0 ms after the publish ended")
            && text.contains("muninn replay --journey order-1"),
        "{text}"
    );
    browser.click("aside.details button.show-archived").await;
    let message = browser.find("aside.details .message").await;
    let shown = message.text().await.unwrap();
    for part in [
        "orders partition 0 offset 10",
        "muninn-event-id",
        "traceparent",
        TRACEPARENT,
        "base64 /wCA",
        "tombstone",
        "\"order\": 1",
        "download the exact bytes",
    ] {
        assert!(shown.contains(part), "{part:?} not in {shown}");
    }
    browser.screenshot("journey-archive").await;

    browser
        .visit("/events/order-1?span=0000000000000004", "journey")
        .await;
    browser.click("aside.details button.show-archived").await;
    browser.find("aside.details .message").await;
    assert_eq!(
        browser.find_all("aside.details .message").await.len(),
        2,
        "order-1 is archived in orders and shipments"
    );
    browser.close().await;
    server.stop().await;
}

/// A `name{recorder="…"} value` line of the exposition, as a number.
fn series(metrics: &str, name: &str, recorder: &str) -> Option<f64> {
    let prefix = format!("{name}{{recorder=\"{recorder}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorders_that_cannot_reach_their_brokers_show_in_metrics_and_healthz() {
    let archive_dir = tempfile::tempdir().expect("creating the archive directory");
    let location = archive_dir.path().display().to_string();
    let server = TestServer::start_with(|config| {
        let mut archive = ArchiveConfig::new(location.clone());
        // Nothing listens on port 1.
        archive.kafka = Some(KafkaSource {
            bootstrap: "127.0.0.1:1".into(),
            group: "muninn-test".into(),
            topics: vec!["orders".into()],
            settings: vec![],
        });
        archive.nats = Some(NatsSource {
            url: "nats://127.0.0.1:1".into(),
            streams: vec!["orders".into()],
            durable: "muninn-test".into(),
        });
        config.archive = Some(archive);
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let metrics = server.api.get("/metrics", &[]).await.text;
        let failing = ["kafka", "nats"].iter().all(|recorder| {
            series(&metrics, "muninn_archive_broker_errors_total", recorder)
                .is_some_and(|n| n > 0.0)
                && series(&metrics, "muninn_archive_healthy", recorder) == Some(0.0)
        });
        if failing {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the recorders were not reported failing within 60 s:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for name in [
        "muninn_archive_messages_received_total",
        "muninn_archive_messages_total",
        "muninn_archive_bytes_total",
        "muninn_archive_files_total",
        "muninn_archive_duplicates_skipped_total",
        "muninn_archive_object_store_errors_total",
    ] {
        for recorder in ["kafka", "nats"] {
            assert_eq!(
                series(&metrics, name, recorder),
                Some(0.0),
                "{name} {recorder}"
            );
        }
    }

    let health = server.api.get_json("/healthz", &[]).await;
    assert_eq!(health["status"], json!("degraded"));
    assert_eq!(health["archive"]["location"], json!(location));
    let recorders = health["archive"]["recorders"]
        .as_array()
        .expect("recorders");
    assert_eq!(recorders.len(), 2);
    for (recorder, name) in recorders.iter().zip(["kafka", "nats"]) {
        assert_eq!(recorder["recorder"], json!(name));
        assert_eq!(recorder["healthy"], json!(false));
        assert!(recorder["broker_errors"].as_u64().is_some_and(|n| n > 0));
        let last_error = recorder["last_error"].as_str().unwrap_or_default();
        assert!(last_error.starts_with(&format!("{name}:")), "{recorder}");
    }
    // The recorders stop with the server.
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("the server and its recorders stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_setting_that_cannot_work_stops_the_start_naming_the_key() {
    let data_dir = tempfile::tempdir().expect("a data directory");
    let mut config = muninn_server::ServerConfig::new(data_dir.path(), 0);
    let mut archive = ArchiveConfig::new(data_dir.path().join("archive").display().to_string());
    archive.kafka = Some(KafkaSource {
        bootstrap: "127.0.0.1:9092".into(),
        group: "muninn".into(),
        topics: vec![],
        settings: vec![],
    });
    config.archive = Some(archive);
    let error = muninn_server::start(config.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.starts_with("archive.kafka.topics: "), "{error}");
    config.archive = Some(ArchiveConfig::new("ftp://host/archive"));
    let error = muninn_server::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.starts_with("archive.location: "), "{error}");
}

fn unlabelled(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_applies_retention_and_compacts_sealed_hours() {
    const HOUR_MS: i64 = 3_600_000;
    let archive_dir = tempfile::tempdir().expect("creating the archive directory");
    let archive = Archive::open_local(archive_dir.path()).await.unwrap();
    let now_hour = muninn_model::now_unix_nanos() / NANOS_PER_MILLI / HOUR_MS * HOUR_MS;
    let commit = |first: i64, hour_start: i64| {
        let messages: Vec<Message> = (first..first + 10)
            .map(|offset| {
                kafka_message(
                    "orders",
                    0,
                    offset,
                    hour_start + offset,
                    None,
                    Vec::new(),
                    b"{}",
                )
            })
            .collect();
        let archive = archive.clone();
        async move { archive.commit(&messages).await.expect("commit") }
    };
    // Ten days old (past the rule), three small files in an hour the partition has left, and
    // the partition's newest hour.
    commit(0, now_hour - 240 * HOUR_MS).await;
    for first in [100, 110, 120] {
        commit(first, now_hour - 3 * HOUR_MS).await;
    }
    commit(130, now_hour - HOUR_MS).await;

    let location = archive_dir.path().display().to_string();
    let server = TestServer::start_with(|config| {
        let mut archive = ArchiveConfig::new(location.clone());
        archive.maintenance.retention =
            vec![muninn_archive::RetentionRule::parse("orders=2d").unwrap()];
        config.archive = Some(archive);
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics = server.api.get("/metrics", &[]).await.text;
        if unlabelled(&metrics, "muninn_archive_compaction_files_reduced_total") == Some(2.0) {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no compaction within 30 s:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        unlabelled(&metrics, "muninn_archive_retention_hours_removed_total"),
        Some(1.0)
    );
    assert_eq!(
        unlabelled(&metrics, "muninn_archive_compaction_messages_merged_total"),
        Some(30.0)
    );
    assert_eq!(
        unlabelled(&metrics, "muninn_archive_maintenance_errors_total"),
        Some(0.0)
    );
    let answer = server.api.get_json("/api/v1/archive/streams", &[]).await;
    let partition = &answer["streams"][0]["partitions"][0];
    assert_eq!(
        (
            &partition["first_offset"],
            &partition["last_offset"],
            &partition["messages"],
            &partition["files"]
        ),
        (&json!(100), &json!(139), &json!(40), &json!(2)),
        "{answer}"
    );
    // Every message of the compacted hour still reads back.
    let one = server
        .api
        .get_json(
            "/api/v1/archive/messages",
            &query(&position("orders", "0", "115")),
        )
        .await;
    assert_eq!(one["offset"], json!(115), "{one}");
    server.stop().await;
}
