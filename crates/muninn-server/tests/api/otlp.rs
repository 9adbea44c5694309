//! OTLP ingest end to end: `POST /v1/traces` in protobuf and JSON (with gzip), and OTLP/gRPC
//! `TraceService/Export`, read back through lineage, journeys and traces, with the shop and the
//! clients the other OTLP tests share. What ingest refuses (invalid spans, undecodable or too
//! large bodies, an overloaded store) is in `otlp_errors.rs`; clients nobody here wrote are in
//! `otlp_clients.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{Value, json};

use crate::ingest::gzip;
use crate::support::{Answer, NANOS_PER_SECOND, TestServer};

pub(crate) const PROTOBUF: &str = "application/x-protobuf";
pub(crate) const JSON: &str = "application/json";

pub(crate) fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// A trace id made of one repeated byte, and its hex.
pub(crate) fn trace_id(byte: u8) -> Vec<u8> {
    vec![byte; 16]
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A span of trace `trace`, span id `[id; 8]`, a minute ago plus `offset_ms`.
pub(crate) fn span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    name: &str,
    kind: SpanKind,
    offset_ms: i64,
    attributes: Vec<KeyValue>,
) -> Span {
    let start = muninn_model::now_unix_nanos() - 60 * NANOS_PER_SECOND + offset_ms * 1_000_000;
    Span {
        trace_id: trace_id(trace),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|parent| vec![parent; 8]).unwrap_or_default(),
        name: name.to_string(),
        kind: kind as i32,
        start_time_unix_nano: start as u64,
        end_time_unix_nano: (start + 2_000_000) as u64,
        attributes,
        ..Default::default()
    }
}

pub(crate) fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![text("service.name", service), text("host.name", "node-1")],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The messaging attributes of one message on kafka `orders`.
fn message(operation: &str, message_id: &str, offset: i64) -> Vec<KeyValue> {
    vec![
        text("messaging.system", "kafka"),
        text("messaging.destination.name", "orders"),
        text("messaging.operation.type", operation),
        text("messaging.message.id", message_id),
        text("cloudevents.event_type", "order.created"),
        int("messaging.kafka.destination.partition", 2),
        int("messaging.kafka.message.offset", offset),
    ]
}

/// A small shop in OTLP: `checkout` sends messages `msg-a` (trace 0xa1) and `msg-b` (trace
/// 0xb1) to kafka `orders`; `billing` processes `msg-a` as a child of its send; `audit`
/// receives both in one batch span (trace 0xc1) with a link per message.
pub(crate) fn shop() -> ExportTraceServiceRequest {
    let send_a = span(
        0xa1,
        0x01,
        None,
        "send orders",
        SpanKind::Producer,
        0,
        message("send", "msg-a", 10),
    );
    let send_b = span(
        0xb1,
        0x03,
        None,
        "send orders",
        SpanKind::Producer,
        5,
        message("send", "msg-b", 11),
    );
    let process_a = span(
        0xa1,
        0x02,
        Some(0x01),
        "process orders",
        SpanKind::Consumer,
        20,
        message("process", "msg-a", 10),
    );
    let link = |trace: u8, id: u8, message_id: &str| Link {
        trace_id: trace_id(trace),
        span_id: vec![id; 8],
        attributes: vec![
            text("messaging.message.id", message_id),
            text("cloudevents.event_type", "order.created"),
        ],
        ..Default::default()
    };
    let mut receive = span(
        0xc1,
        0x09,
        None,
        "receive orders",
        SpanKind::Consumer,
        40,
        vec![
            text("messaging.system", "kafka"),
            text("messaging.destination.name", "orders"),
            text("messaging.operation.type", "receive"),
            int("messaging.batch.message_count", 2),
        ],
    );
    receive.links = vec![link(0xa1, 0x01, "msg-a"), link(0xb1, 0x03, "msg-b")];
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("checkout", vec![send_a, send_b]),
            resource_spans("billing", vec![process_a]),
            resource_spans("audit", vec![receive]),
        ],
    }
}

/// `POST /v1/traces`; the answer is checked against `openapi.yaml` and its bytes returned too.
pub(crate) async fn post_traces(
    server: &TestServer,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (Answer, Bytes) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/traces", server.base_url()))
        .timeout(Duration::from_secs(30))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("POST /v1/traces");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = response.bytes().await.expect("reading the answer");
    let answer = Answer {
        status,
        content_type,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    };
    crate::openapi::check_answer("post", "/v1/traces", &answer);
    (answer, bytes)
}

/// Posts `request` as protobuf, expecting 200; returns the decoded answer.
pub(crate) async fn export_protobuf(
    server: &TestServer,
    request: &ExportTraceServiceRequest,
) -> ExportTraceServiceResponse {
    let (answer, bytes) = post_traces(
        server,
        request.encode_to_vec(),
        &[("content-type", PROTOBUF)],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.content_type, PROTOBUF);
    ExportTraceServiceResponse::decode(bytes).expect("an ExportTraceServiceResponse")
}

/// `(service, action, stream, broker, event_type, count)` of the lineage edges on `stream`.
pub(crate) async fn edges_on(server: &TestServer, stream: &str) -> Vec<Value> {
    let lineage = server
        .api
        .get_json("/api/v1/lineage", &[("stream", stream)])
        .await;
    lineage["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| {
            json!([
                edge["service"],
                edge["action"],
                edge["stream"],
                edge["broker"],
                edge["event_type"],
                edge["count"]
            ])
        })
        .collect()
}

/// `(service, action, event_id)` of each hop of the journey of `event_id`.
pub(crate) async fn journey_of(server: &TestServer, event_id: &str) -> Vec<Value> {
    let journey = server
        .api
        .get_json(&format!("/api/v1/events/{event_id}"), &[])
        .await;
    journey["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .map(|hop| json!([hop["service"], hop["action"], hop["event_id"]]))
        .collect()
}

/// The shop's spans, however they arrived, answer like this.
pub(crate) async fn assert_the_shop_is_stored(server: &TestServer) {
    assert_eq!(
        edges_on(server, "orders").await,
        vec![
            json!(["audit", "consumed", "orders", "kafka", "order.created", 2]),
            json!(["billing", "consumed", "orders", "kafka", "order.created", 1]),
            json!([
                "checkout",
                "produced",
                "orders",
                "kafka",
                "order.created",
                2
            ]),
        ]
    );
    assert_eq!(
        journey_of(server, "msg-a").await,
        vec![
            json!(["checkout", "produced", "msg-a"]),
            json!(["billing", "consumed", "msg-a"]),
            json!(["audit", "consumed", "msg-a"]),
        ]
    );
    assert_eq!(
        journey_of(server, "msg-b").await,
        vec![
            json!(["checkout", "produced", "msg-b"]),
            json!(["audit", "consumed", "msg-b"]),
        ]
    );
    let journey = server.api.get_json("/api/v1/events/msg-a", &[]).await;
    let send = &journey["hops"][0];
    assert_eq!(send["span_id"], json!("0101010101010101"));
    assert_eq!(send["partition"], json!(2));
    assert_eq!(send["offset"], json!(10));
    assert_eq!(send["message_id"], json!("msg-a"));
    assert_eq!(send["kind"], json!("producer"));
    assert_eq!(send["resource"], json!({"host.name": "node-1"}));
    assert_eq!(
        send["attributes"],
        json!({"messaging.operation.type": "send"})
    );
    // The batch receive's first message keeps the span id; the second gets a derived one.
    assert_eq!(journey["hops"][2]["span_id"], json!("0909090909090909"));
    let derived = muninn_ingest::derived_span_id(muninn_model::SpanId([9; 8]), 1).to_hex();
    let journey_b = server.api.get_json("/api/v1/events/msg-b", &[]).await;
    assert_eq!(journey_b["hops"][1]["span_id"], json!(derived));
    assert_eq!(
        journey_b["hops"][1]["attributes"]["muninn.batch_span_id"],
        json!("0909090909090909")
    );
    let trace = server
        .api
        .get_json(&format!("/api/v1/traces/{}", hex(&trace_id(0xa1))), &[])
        .await;
    assert_eq!(trace["n_spans"], json!(2));
    assert_eq!(trace["roots"][0]["service"], json!("checkout"));
    assert_eq!(
        trace["roots"][0]["children"][0]["service"],
        json!("billing")
    );
    assert_eq!(
        trace["roots"][0]["children"][0]["name"],
        json!("process orders")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_spans_become_lineage_journeys_and_traces() {
    let server = TestServer::start().await;
    let answer = export_protobuf(&server, &shop()).await;
    assert_eq!(answer, ExportTraceServiceResponse::default());
    assert_the_shop_is_stored(&server).await;
    // After a flush the same answers come from Parquet blocks.
    server.flush().await;
    assert_the_shop_is_stored(&server).await;
    server.stop().await;
}

/// The shop as OTLP/JSON, written by hand: hex ids (some upper case), integer enums,
/// lowerCamelCase keys, 64-bit integers as strings and numbers, and fields Muninn has never
/// heard of.
fn shop_json() -> Value {
    let request = shop();
    let key_values = |attributes: &[KeyValue]| -> Value {
        attributes
            .iter()
            .map(|attribute| {
                let value = match attribute
                    .value
                    .as_ref()
                    .and_then(|value| value.value.as_ref())
                {
                    Some(any_value::Value::StringValue(text)) => json!({"stringValue": text}),
                    Some(any_value::Value::IntValue(number)) => {
                        json!({"intValue": number.to_string()})
                    }
                    other => panic!("the shop has no {other:?}"),
                };
                json!({"key": attribute.key, "value": value})
            })
            .collect()
    };
    let resource_spans: Vec<Value> = request
        .resource_spans
        .iter()
        .map(|resource_spans| {
            let spans: Vec<Value> = resource_spans.scope_spans[0]
                .spans
                .iter()
                .map(|span| {
                    let links: Vec<Value> = span
                        .links
                        .iter()
                        .map(|link| json!({"traceId": hex(&link.trace_id), "spanId": hex(&link.span_id), "attributes": key_values(&link.attributes)}))
                        .collect();
                    json!({
                        "traceId": hex(&span.trace_id).to_uppercase(),
                        "spanId": hex(&span.span_id),
                        "parentSpanId": hex(&span.parent_span_id),
                        "name": span.name,
                        "kind": span.kind,
                        "startTimeUnixNano": span.start_time_unix_nano.to_string(),
                        "endTimeUnixNano": span.end_time_unix_nano,
                        "attributes": key_values(&span.attributes),
                        "links": links,
                        "status": {},
                        "someFutureField": {"nested": [1, 2]},
                    })
                })
                .collect();
            json!({
                "resource": {"attributes": key_values(&resource_spans.resource.as_ref().unwrap().attributes)},
                "scopeSpans": [{"scope": {"name": "shop", "version": "1.0"}, "spans": spans}],
                "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
            })
        })
        .collect();
    json!({"resourceSpans": resource_spans})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_with_hex_ids_and_gzip_are_read_like_protobuf() {
    let server = TestServer::start().await;
    let body = serde_json::to_vec(&shop_json()).unwrap();
    let (answer, _) = post_traces(
        &server,
        gzip(&body),
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("content-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.content_type, JSON);
    assert_eq!(answer.json(), json!({}));
    assert_the_shop_is_stored(&server).await;
    server.stop().await;
}

/// A server with OTLP/gRPC on a free loopback port.
pub(crate) async fn server_with_grpc(
    configure: impl FnOnce(&mut muninn_server::ServerConfig),
) -> TestServer {
    TestServer::start_with(|config| {
        config.otlp_grpc_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        configure(config);
    })
    .await
}

/// A connection to the server's OTLP/gRPC port.
pub(crate) async fn grpc_channel(server: &TestServer) -> tonic::transport::Channel {
    let address = server
        .otlp_grpc_addr()
        .expect("the server serves OTLP/gRPC");
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connecting to OTLP/gRPC")
}

pub(crate) async fn grpc_client(
    server: &TestServer,
) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::new(grpc_channel(server).await)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
}
