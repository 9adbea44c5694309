//! The server's limits end to end: a token over its ingest rate gets `429` with `Retry-After`
//! over HTTP and `RESOURCE_EXHAUSTED` with a retry delay over OTLP/gRPC, and nothing of the
//! refused batch is stored; a client that sends its headers or its body too slowly is cut off;
//! at `max_connections` the listener takes no more until one closes.

use std::time::{Duration, Instant};

use muninn_server::auth::{ApiToken, AuthConfig, Scope, new_token};
use muninn_server::{ConnectionLimits, RateLimit};
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestServer, metric};

fn span(trace: &str, event: &str) -> Value {
    let start = muninn_model::now_unix_nanos() - 60_000_000_000;
    crate::support::with(
        crate::support::span(
            trace,
            "00000000000000a1",
            None,
            "checkout",
            "send orders",
            "producer",
            start,
        ),
        crate::support::event(event, "order.created", "", "orders", "kafka"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_ingest_rate_is_told_to_come_back_and_loses_nothing() {
    let (fleet, collector, other, reader) = (new_token(), new_token(), new_token(), new_token());
    let first = vec![span("0000000000000000000000000000a001", "evt-rate-1")];
    let second = vec![span("0000000000000000000000000000a002", "evt-rate-2")];
    let body_len = serde_json::to_vec(&first).unwrap().len() as u64;
    let message_len = crate::otlp::shop().encode_to_vec().len() as u64;
    // Room for one body and a half, refilled in 50 seconds: the second body must wait.
    let mut fleet_token = ApiToken::for_token("fleet", &fleet, &[Scope::Ingest]);
    fleet_token.ingest_rate = Some(RateLimit {
        bytes_per_second: (body_len / 50).max(1),
        burst_bytes: body_len + body_len / 2,
    });
    // Room for one export, refilled in 100 seconds.
    let mut collector_token = ApiToken::for_token("collector", &collector, &[Scope::Ingest]);
    collector_token.ingest_rate = Some(RateLimit {
        bytes_per_second: (message_len / 100).max(1),
        burst_bytes: message_len,
    });
    let auth = AuthConfig::new(vec![
        fleet_token,
        collector_token,
        ApiToken::for_token("other", &other, &[Scope::Ingest]),
        ApiToken::for_token("reader", &reader, &[Scope::Read]),
    ]);
    let mut server = crate::otlp::server_with_grpc(|config| config.auth = Some(auth)).await;
    let as_fleet = server.api.with_token(&fleet);
    as_fleet.ingest_ok("/api/v1/spans", &first).await;
    let refused = as_fleet.ingest("/api/v1/spans", &second).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    let wait: u64 = refused
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!((20..=50).contains(&wait), "Retry-After: {wait}");
    let message = refused.error()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("\"fleet\"") && message.contains("bytes/s"),
        "{message}"
    );
    // Another token is not held back by it.
    server
        .api
        .with_token(&other)
        .ingest_ok(
            "/api/v1/spans",
            &[span("0000000000000000000000000000a003", "evt-rate-3")],
        )
        .await;

    // OTLP/gRPC: the first export fits, the second is refused with a delay to wait.
    let mut client = crate::otlp::grpc_client(&server).await;
    let with_token = |token: &str| {
        let mut request = tonic::Request::new(crate::otlp::shop());
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    client
        .export(with_token(&collector))
        .await
        .expect("the first export fits the burst");
    let status = client
        .export(with_token(&collector))
        .await
        .expect_err("the second export is over the rate");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("\"collector\""), "{status:?}");
    let details = tonic_types::StatusExt::get_error_details(&status);
    let delay = details
        .retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a RetryInfo");
    assert!(delay >= Duration::from_secs(50), "{delay:?}");

    server.api = server.api.with_token(&reader);
    for (trace, stored) in [
        ("0000000000000000000000000000a001", true),
        ("0000000000000000000000000000a002", false),
        ("0000000000000000000000000000a003", true),
    ] {
        let answer = server
            .api
            .get(&format!("/api/v1/traces/{trace}"), &[])
            .await;
        assert_eq!(answer.status == 200, stored, "{trace}: {}", answer.text);
    }
    let metrics = server.api.get("/metrics", &[]).await.text;
    assert_eq!(
        metric(
            &metrics,
            "muninn_ingest_rate_limited_total{token=\"fleet\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "muninn_ingest_rate_limited_total{token=\"collector\"}"
        ),
        1.0
    );
    server.stop().await;
}

/// A raw connection to the server that writes `bytes` and returns what it reads until the
/// server closes it (or `within` passes), with how long that took.
async fn send_and_read(address: &str, bytes: &[u8], within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {within:?}; it read {:?}",
        String::from_utf8_lossy(&answer)
    );
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_connections_are_bounded() {
    let server = TestServer::start_with(|config| {
        config.connections = ConnectionLimits {
            max_connections: 3,
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(1),
        };
    })
    .await;
    let address = server.base_url().trim_start_matches("http://").to_string();

    // Headers that never end: the connection is closed, without an answer.
    let (answer, took) = send_and_read(
        &address,
        b"GET /healthz HTTP/1.1\r\nhost: muninn\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A body that never ends: 408, and nothing stored.
    let head = "POST /api/v1/spans HTTP/1.1\r\nhost: muninn\r\ncontent-type: application/json\r\n\
                content-length: 5000\r\n\r\n[{\"trace_id\": \"0000";
    let (answer, took) = send_and_read(&address, head.as_bytes(), Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout"), "{answer}");
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );

    // Three idle connections take every place: a fourth waits until they are cut off.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_millis(400))
            .build()
            .unwrap()
    };
    let healthz = format!("{}/healthz", server.base_url());
    let waited = fresh().get(&healthz).send().await;
    assert!(
        waited.is_err(),
        "a fourth connection was served while three were open: {waited:?}"
    );
    // The idle ones sent no headers: after header_read_timeout their places are free.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fresh().get(&healthz).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "no connection was served 10 s after the idle ones timed out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = server.api.get("/metrics", &[]).await.text;
    assert_eq!(metric(&metrics, "muninn_ingest_body_timeouts_total"), 1.0);
    assert!(metric(&metrics, "muninn_connections_open{listener=\"http\"}") >= 1.0);
    drop(idle);
    let spans = server.api.get("/api/v1/services", &[]).await;
    assert_eq!(spans.status, 200);
    assert_eq!(spans.json()["services"], json!([]), "{}", spans.text);
    server.stop().await;
}

/// A query past its time limit answers what it read, marked partial: the blocks not read are
/// named in Jaeger's `errors`, the `Muninn-Partial` header says why, and what memory holds is
/// always there. With time enough, the same query is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_time_limit_answers_what_it_read_marked_partial() {
    let mut server = TestServer::start_with(|config| {
        config.queries.query_timeout = Duration::from_millis(1);
    })
    .await;
    // Forty blocks of one trace each, and one trace in memory.
    for trace in 1..=40 {
        server
            .api
            .ingest_ok(
                "/api/v1/spans",
                &[span(
                    &format!("{trace:032x}"),
                    &format!("evt-limit-{trace}"),
                )],
            )
            .await;
        server.flush().await;
    }
    let in_memory = format!("{:032x}", 41);
    server
        .api
        .ingest_ok("/api/v1/spans", &[span(&in_memory, "evt-limit-41")])
        .await;
    let search = [("service", "checkout"), ("limit", "100")];

    // With a 1 ms limit, a stall of the loaded machine (the suite's other tests share its two
    // cores) can carry the query past twice its limit, where it is stopped with a 503 instead:
    // a few tries, and the answer the test is about must come.
    let mut partial = server.api.get("/api/traces", &search).await;
    for _ in 0..4 {
        if partial.status != 503 {
            break;
        }
        partial = server.api.get("/api/traces", &search).await;
    }
    assert_eq!(partial.status, 200, "{}", partial.text);
    assert_eq!(partial.header("muninn-partial"), Some("time-limit"));
    let answer = partial.json();
    let traces: Vec<&str> = answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trace| trace["traceID"].as_str().unwrap())
        .collect();
    // Jaeger names a trace whose upper half is zero by its lower 64 bits.
    let jaeger_id = format!("{:016x}", 41);
    assert!(traces.contains(&jaeger_id.as_str()), "{traces:?}");
    assert!(traces.len() < 41, "some blocks were not read: {traces:?}");
    let errors = answer["errors"].as_array().expect("errors name the blocks");
    assert!(
        errors.len() >= 41 - traces.len(),
        "each block not read is named: {errors:?}"
    );
    assert!(
        errors.iter().all(|error| error["msg"]
            .as_str()
            .unwrap()
            .contains("not read: the query's time limit (1ms) was reached")),
        "{errors:?}"
    );
    let metrics = server.api.get("/metrics", &[]).await.text;
    assert!(metric(&metrics, "muninn_query_time_limits_reached_total") >= 1.0);
    assert_eq!(metric(&metrics, "muninn_queries_running"), 0.0);

    server
        .restart_with(|config| config.queries = Default::default())
        .await;
    let whole = server.api.get("/api/traces", &search).await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    assert_eq!(whole.header("muninn-partial"), None);
    let answer = whole.json();
    assert_eq!(answer["data"].as_array().unwrap().len(), 41, "{answer}");
    assert!(answer["errors"].is_null(), "{answer}");
    server.stop().await;
}
