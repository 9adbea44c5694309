//! Bad input gets the documented status and error body, and valid records next to invalid
//! ones are kept: per-record rejections name the index and field; a body refused as a whole
//! (malformed, too large, bad encoding) stores nothing, so the client can fix it and resend.

use serde_json::{Value, json};

use crate::ingest::{gzip, ndjson};
use crate::support::{Answer, Api, NANOS_PER_SECOND, TestServer, span, with};

const TRACE: &str = "bad00000000000000000000000000001";

/// A valid span of `TRACE`, numbered `n`.
fn good(n: u32) -> Value {
    let start = muninn_model::now_unix_nanos() - 60 * NANOS_PER_SECOND;
    span(
        TRACE,
        &format!("{:016x}", 0xb000 + n),
        None,
        "probe",
        &format!("good {n}"),
        "internal",
        start + i64::from(n),
    )
}

/// How many spans of `TRACE` are stored (0 when the trace is unknown).
async fn n_stored(api: &Api) -> u64 {
    let answer = api.get(&format!("/api/v1/traces/{TRACE}"), &[]).await;
    match answer.status {
        404 => 0,
        200 => answer.json()["n_spans"].as_u64().unwrap(),
        other => panic!("unexpected status {other}: {}", answer.text),
    }
}

/// Asserts a partial success: `n_accepted` stored and exactly these `(index, field)` rejected.
fn expect_rejections(
    answer: &Answer,
    n_accepted: usize,
    expected: &[(usize, &str)],
) -> Vec<String> {
    assert_eq!(
        answer.status,
        if n_accepted == 0 { 400 } else { 200 },
        "{}",
        answer.text
    );
    let body = answer.json();
    assert_eq!(body["accepted"], json!(n_accepted), "{body}");
    assert_eq!(body["rejected_count"], json!(expected.len()), "{body}");
    let rejected = body["rejected"].as_array().unwrap();
    let fields: Vec<(usize, &str)> = rejected
        .iter()
        .map(|rejection| {
            (
                rejection["index"].as_u64().unwrap() as usize,
                rejection["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(fields, expected, "{body}");
    rejected
        .iter()
        .map(|rejection| rejection["reason"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts a whole-body refusal with `status`; returns the error object.
fn expect_refused(answer: &Answer, status: u16, message_part: &str) -> Value {
    assert_eq!(answer.status, status, "{}", answer.text);
    let error = answer.error();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(message_part),
        "message {message:?} does not contain {message_part:?}"
    );
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_refused_with_its_line_and_column_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let body = format!("[\n{},\n{{\"trace_id\": }}\n]", good(1));
    let answer = server
        .api
        .post("/api/v1/spans", body.into_bytes(), &[])
        .await;
    let error = expect_refused(&answer, 400, "line 3, column 14");
    assert_eq!(
        (error["line"].clone(), error["column"].clone()),
        (json!(3), json!(14))
    );
    assert_eq!(n_stored(&server.api).await, 0);
    // Fixed and sent again, the batch is stored once.
    server.api.ingest_ok("/api/v1/spans", &[good(1)]).await;
    assert_eq!(n_stored(&server.api).await, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_ndjson_line_is_named_and_the_batch_stores_nothing() {
    let server = TestServer::start().await;
    let mut body = ndjson(&[good(1), good(2)]);
    body.extend(b"\n{\"trace_id\": oops}\n");
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            body,
            &[("content-type", "application/x-ndjson")],
        )
        .await;
    let error = expect_refused(&answer, 400, "line 4");
    assert_eq!(
        error["line"],
        json!(4),
        "blank lines count in the line number: {error}"
    );
    assert_eq!(error["column"], json!(14));
    assert_eq!(n_stored(&server.api).await, 0);
    // Invalid UTF-8 is a syntax error too.
    let answer = server
        .api
        .post("/api/v1/spans", b"{\"name\": \"\xff\"}".to_vec(), &[])
        .await;
    expect_refused(&answer, 400, "UTF-8");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_trace_and_span_ids_reject_only_their_records() {
    let server = TestServer::start().await;
    let answer = server
        .api
        .ingest(
            "/api/v1/spans",
            &[
                good(1),
                with(
                    good(2),
                    json!({"trace_id": "bad0000000000000000000000000000"}),
                ),
                with(good(3), json!({"span_id": "zz00000000000001"})),
                with(
                    good(4),
                    json!({"trace_id": "00000000000000000000000000000000"}),
                ),
                with(good(5), json!({"parent_span_id": "123"})),
                with(
                    good(6),
                    json!({"links": [{"trace_id": TRACE, "span_id": "0"}]}),
                ),
                good(7),
            ],
        )
        .await;
    let reasons = expect_rejections(
        &answer,
        2,
        &[
            (1, "trace_id"),
            (2, "span_id"),
            (3, "trace_id"),
            (4, "parent_span_id"),
            (5, "links[0].span_id"),
        ],
    );
    assert!(
        reasons[0].contains("32 hex characters, got 31"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("hex"), "{reasons:?}");
    assert!(reasons[2].contains("all zeros"), "{reasons:?}");
    assert_eq!(n_stored(&server.api).await, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_missing_kind_is_rejected_with_the_valid_kinds() {
    let server = TestServer::start().await;
    let mut missing = good(3);
    missing.as_object_mut().unwrap().remove("kind");
    let answer = server
        .api
        .ingest(
            "/api/v1/spans",
            &[
                good(1),
                with(good(2), json!({"kind": "broadcaster"})),
                missing,
                with(good(4), json!({"broker": "carrier-pigeon"})),
                with(good(5), json!({"status": {"code": "meh"}})),
            ],
        )
        .await;
    let reasons = expect_rejections(
        &answer,
        1,
        &[(1, "kind"), (2, "kind"), (3, "broker"), (4, "status.code")],
    );
    assert!(
        reasons[0].contains("producer, consumer, server, client, internal"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("missing field"), "{reasons:?}");
    assert_eq!(n_stored(&server.api).await, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_timestamps_and_durations_are_rejected() {
    let server = TestServer::start().await;
    let now = muninn_model::now_unix_nanos();
    let answer = server
        .api
        .ingest(
            "/api/v1/spans",
            &[
                with(good(1), json!({"start_time_unix_nano": 1})),
                with(
                    good(2),
                    json!({"start_time_unix_nano": now - 8 * 86_400 * NANOS_PER_SECOND}),
                ),
                with(
                    good(3),
                    json!({"start_time_unix_nano": now + 2 * 86_400 * NANOS_PER_SECOND}),
                ),
                with(good(4), json!({"start_time_unix_nano": 1e30})),
                with(good(5), json!({"start_time_unix_nano": "soon"})),
                with(good(6), json!({"duration_nano": -5})),
                with(
                    good(7),
                    json!({"duration_nano": 25 * 3600 * NANOS_PER_SECOND}),
                ),
                good(8),
            ],
        )
        .await;
    let reasons = expect_rejections(
        &answer,
        1,
        &[
            (0, "start_time_unix_nano"),
            (1, "start_time_unix_nano"),
            (2, "start_time_unix_nano"),
            (3, "start_time_unix_nano"),
            (4, "start_time_unix_nano"),
            (5, "duration_nano"),
            (6, "duration_nano"),
        ],
    );
    assert!(
        reasons[0].contains("1970-01-01T00:00:00.000000001Z is outside the accepted window"),
        "{reasons:?}"
    );
    assert!(
        reasons[4].contains("\"soon\" is not an integer"),
        "{reasons:?}"
    );
    assert_eq!(n_stored(&server.api).await, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_oversized_attributes_are_rejected_and_the_limit_itself_is_accepted() {
    let server = TestServer::start().await;
    let attributes = |n_attributes: usize| {
        Value::Object(
            (0..n_attributes)
                .map(|index| (format!("key{index:03}"), json!(index)))
                .collect(),
        )
    };
    let answer = server
        .api
        .ingest(
            "/api/v1/spans",
            &[
                with(good(1), json!({"attributes": attributes(128)})),
                with(good(2), json!({"attributes": attributes(129)})),
                with(good(3), json!({"resource": attributes(129)})),
                with(good(4), json!({"attributes": {"": "empty key"}})),
                with(good(5), json!({"attributes": {"big": "x".repeat(4097)}})),
                with(
                    good(6),
                    json!({"attributes": {"nested": {"no": "objects"}}}),
                ),
                with(good(7), json!({"service": "s".repeat(513)})),
                with(good(8), json!({"service": ""})),
                with(good(9), json!({"event_type": "line\nbreak"})),
            ],
        )
        .await;
    let reasons = expect_rejections(
        &answer,
        1,
        &[
            (1, "attributes"),
            (2, "resource"),
            (3, "attributes[0].key"),
            (4, "attributes[0].value"),
            (5, "attributes.nested"),
            (6, "service"),
            (7, "service"),
            (8, "event_type"),
        ],
    );
    assert!(
        reasons[0].contains("at most 128 attributes are allowed, got 129"),
        "{reasons:?}"
    );
    assert!(
        reasons[5].contains("at most 512 bytes, got 513"),
        "{reasons:?}"
    );
    let tree = server
        .api
        .get_json(&format!("/api/v1/traces/{TRACE}"), &[])
        .await;
    assert_eq!(
        tree["roots"][0]["attributes"]
            .as_object()
            .map(|attributes| attributes.len()),
        Some(128)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_only_bad_records_is_a_400_listing_them_and_the_list_is_capped() {
    let server = TestServer::start().await;
    // Regression: a record written as an array of the field values in declaration order was
    // decoded by position (serde's derived structs accept that) and stored.
    let start = muninn_model::now_unix_nanos() - 60 * NANOS_PER_SECOND;
    let positional = json!([
        TRACE,
        "000000000000b0ff",
        null,
        "positional",
        "internal",
        "probe",
        null,
        start
    ]);
    let answer = server
        .api
        .ingest(
            "/api/v1/spans",
            &[json!({}), json!([1]), json!("span"), positional],
        )
        .await;
    let reasons = expect_rejections(
        &answer,
        0,
        &[
            (0, "trace_id"),
            (1, "(record)"),
            (2, "(record)"),
            (3, "(record)"),
        ],
    );
    assert_eq!(reasons[3], "must be a JSON object");
    assert_eq!(n_stored(&server.api).await, 0);
    let mut records = vec![json!({}); 1500];
    records.push(good(1));
    let answer = server.api.ingest("/api/v1/spans", &records).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(
        (body["accepted"].clone(), body["rejected_count"].clone()),
        (json!(1), json!(1500))
    );
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(1000));
    assert_eq!(body["rejected"][999]["index"], json!(999));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_counts_are_rejected_by_field() {
    let server = TestServer::start().await;
    let now_seconds = muninn_model::now_unix_nanos() / NANOS_PER_SECOND;
    let count = json!({"service": "probe", "event_type": "t", "stream": "s", "broker": "kafka", "action": "produced", "minute": now_seconds - 120, "count": 3});
    let mut missing_stream = count.clone();
    missing_stream.as_object_mut().unwrap().remove("stream");
    let answer = server
        .api
        .ingest(
            "/api/v1/counts",
            &[
                count.clone(),
                with(count.clone(), json!({"broker": "carrier-pigeon"})),
                with(count.clone(), json!({"action": "observed"})),
                with(count.clone(), json!({"count": 0})),
                with(count.clone(), json!({"count": -1})),
                with(count.clone(), json!({"minute": 60})),
                missing_stream,
                with(
                    count.clone(),
                    json!({"surprise": "ignored", "Broker": "NATS"}),
                ),
            ],
        )
        .await;
    expect_rejections(
        &answer,
        2,
        &[
            (1, "broker"),
            (2, "action"),
            (3, "count"),
            (4, "count"),
            (5, "minute"),
            (6, "stream"),
        ],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_ignored() {
    let server = TestServer::start().await;
    let span = with(
        good(1),
        json!({"surprise": {"deeply": ["nested"]}, "resource_spans": [], "kind": "Producer"}),
    );
    server.api.ingest_ok("/api/v1/spans", &[span]).await;
    let tree = server
        .api
        .get_json(&format!("/api/v1/traces/{TRACE}"), &[])
        .await;
    assert!(tree["roots"][0].get("surprise").is_none());
    assert_eq!(tree["roots"][0]["kind"], json!("producer"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_body_is_accepted_with_nothing_in_it() {
    let server = TestServer::start().await;
    for path in ["/api/v1/spans", "/api/v1/counts"] {
        for body in [&b""[..], b"  \n\n ", b"[]", b"\n"] {
            let answer = server.api.post(path, body.to_vec(), &[]).await;
            assert_eq!(answer.status, 200, "{path} {body:?}: {}", answer.text);
            assert_eq!(
                answer.json(),
                json!({"accepted": 0, "rejected_count": 0, "rejected": []})
            );
        }
    }
    let answer = server
        .api
        .post("/api/v1/spans", gzip(b""), &[("content-encoding", "gzip")])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_a_413_and_smaller_batches_still_work() {
    let server = TestServer::start_with(|config| config.max_body_bytes = 64 << 10).await;
    let big: Vec<Value> = (0..400).map(good).collect();
    let body = serde_json::to_vec(&big).unwrap();
    assert!(
        body.len() > 64 << 10 && body.len() < 200 << 10,
        "{} bytes",
        body.len()
    );
    let answer = server.api.post("/api/v1/spans", body, &[]).await;
    expect_refused(&answer, 413, "65536 bytes");
    assert_eq!(n_stored(&server.api).await, 0);
    server.api.ingest_ok("/api/v1/spans", &big[..100]).await;
    assert_eq!(n_stored(&server.api).await, 100);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_a_413_without_inflating_it_all() {
    let server = TestServer::start_with(|config| config.max_body_bytes = 1 << 20).await;
    let bomb = gzip(&vec![0u8; 8 << 20]);
    assert!(
        bomb.len() < 64 << 10,
        "the bomb is {} bytes compressed",
        bomb.len()
    );
    let answer = server
        .api
        .post("/api/v1/spans", bomb, &[("content-encoding", "gzip")])
        .await;
    expect_refused(
        &answer,
        413,
        "decompressed body is larger than the limit of 1048576 bytes",
    );
    // Just under the limit after decompression is fine.
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            gzip(&ndjson(&[good(1)])),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_gzip_is_a_400_and_an_unknown_encoding_a_415() {
    let server = TestServer::start().await;
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            b"this is not gzip".to_vec(),
            &[("content-encoding", "gzip")],
        )
        .await;
    expect_refused(&answer, 400, "not valid gzip");
    let valid = gzip(&ndjson(&[good(1), good(2)]));
    let truncated = valid[..valid.len() - 12].to_vec();
    let answer = server
        .api
        .post("/api/v1/spans", truncated, &[("content-encoding", "gzip")])
        .await;
    expect_refused(&answer, 400, "not valid gzip");
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            ndjson(&[good(1)]),
            &[("content-encoding", "br")],
        )
        .await;
    expect_refused(&answer, 415, "Content-Encoding \"br\" is not supported");
    assert_eq!(n_stored(&server.api).await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_are_400s_naming_the_parameter() {
    let server = TestServer::start().await;
    let api = &server.api;
    for path in [
        "/api/v1/event-types",
        "/api/v1/event-types/order.created/producers",
        "/api/v1/event-types/order.created/consumers",
        "/api/v1/streams",
        "/api/v1/services",
        "/api/v1/throughput",
        "/api/v1/lineage",
    ] {
        let error = api
            .get(path, &[("from", "yesterday")])
            .await
            .expect_bad_field("from");
        assert!(
            error["message"].as_str().unwrap().contains("RFC 3339"),
            "the message says what is valid: {error}"
        );
        api.get(path, &[("to", "tomorrow")])
            .await
            .expect_bad_field("to");
        api.get(path, &[("from", "now"), ("to", "-1h")])
            .await
            .expect_bad_field("from");
    }
    api.get("/api/v1/lineage", &[("format", "png")])
        .await
        .expect_bad_field("format");
    api.get("/api/v1/lineage", &[("action", "sideways")])
        .await
        .expect_bad_field("action");
    api.get("/api/v1/throughput", &[("action", "sideways")])
        .await
        .expect_bad_field("action");
    // Name filters are patterns; a backslash escapes only `*`, `?` and itself.
    for path in ["/api/v1/lineage", "/api/v1/throughput", "/api/v1/compare"] {
        for name in ["event_type", "service", "stream"] {
            for pattern in [r"order\", r"order\.*"] {
                let error = api
                    .get(path, &[(name, pattern), ("format", "mermaid")])
                    .await
                    .expect_bad_field(name);
                let message = error["message"].as_str().unwrap();
                assert!(
                    message.contains("not a valid pattern") && message.contains("* for any"),
                    "{path}: the message says what is valid: {message}"
                );
            }
        }
    }
    let error = api
        .get("/api/v1/throughput", &[("step", "90s")])
        .await
        .expect_bad_field("step");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("whole number of minutes"),
        "{error}"
    );
    api.get("/api/v1/throughput", &[("step", "a fortnight")])
        .await
        .expect_bad_field("step");
    api.get("/api/v1/throughput", &[("step", "0s")])
        .await
        .expect_bad_field("step");
    // Too many points for the range.
    api.get("/api/v1/throughput", &[("from", "0"), ("step", "1m")])
        .await
        .expect_bad_field("step");
    api.get("/api/v1/traces/not-a-trace", &[])
        .await
        .expect_bad_field("trace_id");
    api.get("/api/v1/traces/00000000000000000000000000000000", &[])
        .await
        .expect_bad_field("trace_id");
    api.get(&format!("/api/v1/events/{}", "e".repeat(513)), &[])
        .await
        .expect_bad_field("event_id");
    // Well-formed ids that nothing carries are 404s.
    let answer = api.get("/api/v1/events/no-such-event", &[]).await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.error()["message"]
            .as_str()
            .unwrap()
            .contains("no-such-event")
    );
    let answer = api.get(&format!("/api/v1/traces/{TRACE}"), &[]).await;
    assert_eq!(answer.status, 404);
    assert!(answer.error()["message"].as_str().unwrap().contains(TRACE));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_segments_that_are_not_utf8_get_the_error_body_naming_them() {
    // Regression: axum's own rejection answered these in plain text, without the JSON body.
    let server = TestServer::start().await;
    let api = &server.api;
    api.get("/api/v1/events/%FF", &[])
        .await
        .expect_bad_field("event_id");
    api.get("/api/v1/traces/%FF%FE", &[])
        .await
        .expect_bad_field("trace_id");
    api.get("/api/v1/event-types/%C3%28/producers", &[])
        .await
        .expect_bad_field("event_type");
    api.get("/api/v1/event-types/%C3%28/consumers", &[])
        .await
        .expect_bad_field("event_type");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_method_on_a_known_route_is_a_405_with_the_error_body() {
    // Regression: axum's own 405 had an empty body.
    let server = TestServer::start().await;
    for (method, path, allowed) in [
        ("GET", "/api/v1/spans", "POST"),
        ("PUT", "/api/v1/counts", "POST"),
        ("DELETE", "/api/v1/lineage", "GET,HEAD"),
        ("POST", "/api/v1/events/order-1", "GET,HEAD"),
    ] {
        let (answer, allow) = server.api.request(method, path).await;
        assert_eq!(answer.status, 405, "{method} {path}: {}", answer.text);
        assert!(
            answer.error()["message"]
                .as_str()
                .unwrap()
                .contains("Allow header")
        );
        assert_eq!(allow, allowed, "{method} {path}");
    }
    server.stop().await;
}

/// Request bodies are bounded within the node's `memory_limit`: a `max_body_memory` of more
/// than half of it is refused at start, naming both settings and what would be valid; one
/// that fits is taken out of what the spans not yet in blocks may hold (`/metrics`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_take_their_share_of_the_memory_limit() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = muninn_server::ServerConfig::new(data_dir.path(), 0);
    config.store.memory_limit_bytes = 256 << 20;
    config.max_body_memory_bytes = 200 << 20;
    let error = muninn_server::start(config).await.err().expect("refused");
    let message = error.to_string();
    for expected in ["max_body_memory", "memory_limit", "at most 128 MiB"] {
        assert!(message.contains(expected), "{message}");
    }

    let server = TestServer::start_with(|config| {
        config.store.memory_limit_bytes = 256 << 20;
        config.max_body_memory_bytes = 64 << 20;
    })
    .await;
    let metrics = server.api.get("/metrics", &[]).await.text;
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(gauge("muninn_memory_limit_bytes"), 256 << 20);
    assert_eq!(gauge("muninn_block_index_bytes"), 0);
    // A quarter for working memory, 64 MiB for bodies: 128 MiB left for the head.
    assert_eq!(gauge("muninn_head_limit_bytes"), 128 << 20);
    server.stop().await;
}

/// Request bodies in flight hold at most `max_body_memory` together: a request that would go
/// past it waits, and is refused with 503 and `Retry-After` (nothing stored) when no room is
/// made in time; room comes back when the request holding it ends, and `/metrics` shows what
/// bodies hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_past_max_body_memory_wait_then_get_a_503_and_store_nothing() {
    let server = TestServer::start_with(|config| {
        config.max_body_memory_bytes = 1 << 20;
        config.store.max_append_wait = std::time::Duration::from_millis(300);
    })
    .await;
    // A slow sender announces 900,000 bytes and sends one: its body holds them meanwhile.
    let slow = server.hold_body_memory(900_000).await;

    // 200 KB more do not fit in the 1 MiB: refused after the wait, nothing stored.
    let spans: Vec<Value> = (0..400).map(good).collect();
    let mut body = serde_json::to_vec(&spans).unwrap();
    body.resize(200_000, b' ');
    let answer = server.api.post("/api/v1/spans", body.clone(), &[]).await;
    expect_refused(&answer, 503, "max_body_memory");
    assert_eq!(answer.headers["retry-after"], "1");
    // Its body was left unread, so the server closes the connection and says so: the next
    // request goes on a new connection instead of failing on this one.
    assert_eq!(answer.headers["connection"], "close");
    assert_eq!(n_stored(&server.api).await, 0);

    // The slow sender goes away: its room comes back, and the same request is stored.
    drop(slow);
    let answer = loop {
        let answer = server.api.post("/api/v1/spans", body.clone(), &[]).await;
        if answer.status != 503 {
            break answer;
        }
    };
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(n_stored(&server.api).await, 400);
    server.stop().await;
}
