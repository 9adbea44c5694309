//! Ingest in every accepted shape: JSON arrays, NDJSON, gzip, integers as strings, end times
//! instead of durations; the partial-success answer; durability across a restart.

use std::io::Write;

use serde_json::{Value, json};

use crate::support::{Fleet, NANOS_PER_MILLI, NANOS_PER_SECOND, TestServer, span, trace_id};

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

pub fn ndjson(records: &[Value]) -> Vec<u8> {
    let mut body = Vec::new();
    for record in records {
        serde_json::to_writer(&mut body, record).expect("encoding a record");
        body.push(b'\n');
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_counts_arrive_as_json_arrays_ndjson_and_gzip() {
    let fleet = Fleet::new();
    let server = TestServer::start().await;
    let (first, rest) = fleet.spans.split_at(6);
    let (second, third) = rest.split_at(10);
    let accepted = |answer: &crate::support::Answer, n_records: usize| {
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            answer.json(),
            json!({"accepted": n_records, "rejected_count": 0, "rejected": []})
        );
    };
    // A JSON array, NDJSON (with blank lines and CRLF), gzipped NDJSON and a gzipped array.
    let answer = server.api.ingest("/api/v1/spans", first).await;
    accepted(&answer, first.len());
    let mut body = b"\n".to_vec();
    for record in second {
        body.extend(serde_json::to_vec(record).unwrap());
        body.extend(b"\r\n\n");
    }
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            body,
            &[("content-type", "application/x-ndjson")],
        )
        .await;
    accepted(&answer, second.len());
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            gzip(&ndjson(third)),
            &[
                ("content-encoding", "gzip"),
                ("content-type", "application/x-ndjson"),
            ],
        )
        .await;
    accepted(&answer, third.len());
    let counts = serde_json::to_vec(&fleet.counts).unwrap();
    let answer = server
        .api
        .post(
            "/api/v1/counts",
            gzip(&counts),
            &[("content-encoding", "GZIP")],
        )
        .await;
    accepted(&answer, fleet.counts.len());
    // Nothing was lost or doubled on the way: the catalog adds up to the fleet's numbers.
    let catalog = server.api.get_json("/api/v1/event-types", &[]).await;
    let counts: Vec<(Value, Value)> = catalog["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event_type| (event_type["count"].clone(), event_type["consumed"].clone()))
        .collect();
    assert_eq!(
        counts,
        [
            (json!(5), json!(48)),
            (json!(5), json!(6)),
            (json!(100), json!(0))
        ]
    );
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            b"[]".to_vec(),
            &[("content-encoding", "identity")],
        )
        .await;
    accepted(&answer, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_may_be_strings_and_an_end_time_may_replace_the_duration() {
    let server = TestServer::start().await;
    let trace = trace_id(0x51);
    let start = muninn_model::now_unix_nanos() - 120 * NANOS_PER_SECOND;
    let mut as_strings = span(
        &trace,
        "00000000000000c1",
        None,
        "web",
        "GET /",
        "server",
        0,
    );
    as_strings["start_time_unix_nano"] = json!(start.to_string());
    as_strings["duration_nano"] = json!("2500");
    let mut with_end = span(
        &trace,
        "00000000000000c2",
        Some("00000000000000c1"),
        "web",
        "query",
        "client",
        start + 10,
    );
    with_end.as_object_mut().unwrap().remove("duration_nano");
    with_end["end_time_unix_nano"] = json!(start + 10 + 7 * NANOS_PER_MILLI);
    let mut neither = span(
        &trace,
        "00000000000000c3",
        Some("00000000000000c1"),
        "web",
        "log",
        "internal",
        start + 20,
    );
    neither.as_object_mut().unwrap().remove("duration_nano");
    // Kinds, brokers and status codes are case-insensitive; `unset` means ok.
    neither["kind"] = json!("INTERNAL");
    neither["status"] = json!({"code": "Unset"});
    server
        .api
        .ingest_ok("/api/v1/spans", &[as_strings, with_end, neither])
        .await;
    let tree = server
        .api
        .get_json(&format!("/api/v1/traces/{trace}"), &[])
        .await;
    let root = &tree["roots"][0];
    assert_eq!(root["start_time_unix_nano"], json!(start));
    assert_eq!(root["duration_ns"], json!(2500));
    assert_eq!(
        root["children"][0]["duration_ns"],
        json!(7 * NANOS_PER_MILLI)
    );
    assert_eq!(root["children"][1]["duration_ns"], json!(0));
    assert_eq!(root["children"][1]["kind"], json!("internal"));
    assert_eq!(root["children"][1]["status"], json!("ok"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_records_survive_a_restart() {
    let fleet = Fleet::new();
    let mut server = TestServer::start().await;
    server.ingest_fleet(&fleet).await;
    let before = server
        .api
        .get_json("/api/v1/lineage", &crate::support::params(&fleet.range()))
        .await;
    server.restart().await;
    let after = server
        .api
        .get_json("/api/v1/lineage", &crate::support::params(&fleet.range()))
        .await;
    assert_eq!(after, before);
    // Ingesting after the restart adds to what was there.
    server.api.ingest_ok("/api/v1/counts", &fleet.counts).await;
    let doubled = server
        .api
        .get_json(
            "/api/v1/event-types/stock.reserved/producers",
            &crate::support::params(&fleet.range()),
        )
        .await;
    assert_eq!(
        doubled["producers"][0]["count"],
        json!(200),
        "counts of the same minute add up: {doubled}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_idempotency_key_gets_the_first_answer_and_is_stored_once() {
    let server = TestServer::start().await;
    let api = &server.api;
    let minute = (muninn_model::now_unix_nanos() / NANOS_PER_SECOND / 60 - 2) * 60;
    let count = json!([{"service": "meter", "event_type": "reading.taken", "stream": "readings",
        "broker": "kafka", "action": "produced", "minute": minute, "count": 100}]);
    let body = serde_json::to_vec(&count).unwrap();
    let post = async |key: &str, body: Vec<u8>| {
        api.post(
            "/api/v1/counts",
            body,
            &[
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
        )
        .await
    };
    let first = post("batch-1", body.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.headers.get("idempotent-replayed").is_none());
    // The answer was lost; the client sends the same batch with the same key.
    let retry = post("batch-1", body.clone()).await;
    assert_eq!((retry.status, &retry.text), (200, &first.text));
    assert_eq!(
        retry
            .headers
            .get("idempotent-replayed")
            .map(|value| value.as_bytes()),
        Some(&b"true"[..])
    );
    let total = async || {
        let answer = api
            .get_json(
                "/api/v1/throughput",
                &[("service", "meter"), ("step", "1h")],
            )
            .await;
        answer["series"][0]["total"].as_u64()
    };
    assert_eq!(total().await, Some(100), "stored once, counted once");
    // Another key is another batch.
    assert_eq!(post("batch-2", body.clone()).await.status, 200);
    assert_eq!(total().await, Some(200));
    // An all-rejected batch keeps its 400 for the retry; a spans key is not a counts key.
    let invalid = serde_json::to_vec(&json!([{"service": "meter"}])).unwrap();
    let refused = post("batch-3", invalid.clone()).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(post("batch-3", body.clone()).await.text, refused.text);
    let spans = api
        .post(
            "/api/v1/spans",
            b"[]".to_vec(),
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "batch-1"),
            ],
        )
        .await;
    assert_eq!(spans.status, 200, "{}", spans.text);
    assert!(spans.headers.get("idempotent-replayed").is_none());
    // A key that is not 1 to 255 visible ASCII characters is refused, naming the header.
    let bad = post(&"k".repeat(256), body.clone()).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("Idempotency-Key"), "{}", bad.text);
    assert_eq!(total().await, Some(200));
    let metrics = api.get("/metrics", &[]).await.text;
    assert!(
        metrics.contains("muninn_ingest_idempotent_replays_total 2"),
        "{metrics}"
    );
}
