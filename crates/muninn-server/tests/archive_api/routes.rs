//! The archive routes over HTTP: the streams with their partitions, offsets and gaps; one message
//! with every field, its payload rendered and raw; a stream's messages by time, filter and
//! limit; an event id's messages in every stream; bad parameters refused by name, unarchived
//! messages 404, and the routes of a server without an archive.

use serde_json::{Value, json};

use crate::common::{
    BINARY_PAYLOAD, JSON_PAYLOAD, TEXT_PAYLOAD, TRACEPARENT, base_ms, position, query,
    server_with_archive,
};
use crate::support::{NANOS_PER_MILLI, TestServer};

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
