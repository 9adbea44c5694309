//! OTLP ingest end to end: `POST /v1/traces` in protobuf and JSON (with gzip), and OTLP/gRPC
//! `TraceService/Export`, read back through lineage, journeys and traces; partial success for
//! invalid spans; the documented errors for bodies that cannot be decoded, and the server
//! serving on after them. Clients nobody here wrote are in `otlp_clients.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{Value, json};

use crate::ingest::gzip;
use crate::support::{Answer, NANOS_PER_SECOND, TestServer};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn text(key: &str, value: &str) -> KeyValue {
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
fn trace_id(byte: u8) -> Vec<u8> {
    vec![byte; 16]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A span of trace `trace`, span id `[id; 8]`, a minute ago plus `offset_ms`.
fn span(
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

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
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
async fn post_traces(
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
async fn export_protobuf(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spans_are_rejected_in_partial_success_and_the_rest_is_stored() {
    let server = TestServer::start_with(|config| {
        config.otlp_event_type_attribute = Some("event.type".to_string());
    })
    .await;
    let good = span(
        0xd1,
        0x01,
        None,
        "send payments",
        SpanKind::Producer,
        0,
        vec![
            text("messaging.destination.name", "payments"),
            text("event.type", "payment.captured"),
            text("cloudevents.event_id", "pay-1"),
        ],
    );
    let mut short_trace_id = span(0xd1, 0x02, None, "x", SpanKind::Internal, 0, Vec::new());
    short_trace_id.trace_id = vec![1, 2, 3];
    let mut no_name = span(0xd1, 0x03, None, "", SpanKind::Internal, 0, Vec::new());
    no_name.status = Some(Status {
        message: "boom".into(),
        code: StatusCode::Error as i32,
    });
    let mut failed = span(
        0xd1,
        0x04,
        Some(0x01),
        "charge",
        SpanKind::Client,
        1,
        Vec::new(),
    );
    failed.status = Some(Status {
        message: "card declined".into(),
        code: StatusCode::Error as i32,
    });
    let request = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(
            "payments",
            vec![good, short_trace_id, no_name, failed],
        )],
    };

    // Protobuf: the answer is protobuf.
    let answer = export_protobuf(&server, &request).await;
    let partial = answer.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_spans, 2);
    let message = &partial.error_message;
    for expected in [
        "2 spans rejected",
        "resource_spans[0].scope_spans[0].spans[1].trace_id: must be 16 bytes",
        "resource_spans[0].scope_spans[0].spans[2].name: must not be empty",
    ] {
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    let trace = server
        .api
        .get_json(&format!("/api/v1/traces/{}", hex(&trace_id(0xd1))), &[])
        .await;
    assert_eq!(trace["n_spans"], json!(2));
    let send = &trace["roots"][0];
    assert_eq!(send["event_type"], json!("payment.captured"));
    assert_eq!(send["event_id"], json!("pay-1"));
    assert_eq!(send["stream"], json!("payments"));
    assert_eq!(send["attributes"], json!({}));
    let charge = &send["children"][0];
    assert_eq!(charge["kind"], json!("client"));
    assert_eq!(charge["status"], json!("error"));
    assert_eq!(charge["status_message"], json!("card declined"));

    // JSON: the answer is JSON, with the count as a string (proto3 JSON for int64).
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0102", "spanId": "0102030405060708", "name": "too short"},
        {"traceId": hex(&trace_id(0xd2)), "spanId": "0102030405060708", "name": "fine",
         "startTimeUnixNano": muninn_model::now_unix_nanos().to_string(),
         "endTimeUnixNano": muninn_model::now_unix_nanos().to_string()}
    ]}]}]});
    let (answer, _) = post_traces(
        &server,
        serde_json::to_vec(&body).unwrap(),
        &[("content-type", JSON)],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let partial = &answer.json()["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], json!("1"));
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("spans[0].trace_id"),
        "{partial}"
    );
    let fine = server
        .api
        .get_json(&format!("/api/v1/traces/{}", hex(&trace_id(0xd2))), &[])
        .await;
    assert_eq!(fine["roots"][0]["service"], json!("unknown_service"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bodies_get_otlp_errors_and_the_server_keeps_serving() {
    let server = TestServer::start_with(|config| config.max_body_bytes = 64 << 10).await;
    let rpc_status =
        |bytes: Bytes| tonic_types::Status::decode(bytes).expect("a google.rpc.Status");

    // Protobuf that is not an ExportTraceServiceRequest: 400 with a protobuf Status.
    let (answer, bytes) = post_traces(
        &server,
        b"\x0a\xff\xff\xff\xff\x0f garbage".to_vec(),
        &[("content-type", PROTOBUF)],
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.content_type, PROTOBUF);
    let status = rpc_status(bytes);
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(status.message.contains("protobuf"), "{}", status.message);

    // JSON that is not JSON, or not OTLP: 400 with a JSON Status naming line and column.
    for body in [
        &b"{\"resourceSpans\": [{"[..],
        b"{\"resourceSpans\": {\"a\": 1}}",
    ] {
        let (answer, _) = post_traces(&server, body.to_vec(), &[("content-type", JSON)]).await;
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert_eq!(answer.content_type, JSON);
        let error = answer.json();
        assert_eq!(error["code"], json!(3));
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("line 1, column"),
            "{error}"
        );
    }

    // Broken gzip: 400. A gzip bomb or a body over the limit: 413.
    let (answer, bytes) = post_traces(
        &server,
        b"not gzip at all".to_vec(),
        &[("content-type", PROTOBUF), ("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(rpc_status(bytes).message.contains("gzip"));
    let bomb = gzip(&vec![0u8; 10 << 20]);
    let (answer, bytes) = post_traces(
        &server,
        bomb,
        &[("content-type", PROTOBUF), ("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(answer.status, 413);
    assert_eq!(rpc_status(bytes).code, 8, "RESOURCE_EXHAUSTED");
    let (answer, _) = post_traces(&server, vec![b' '; 100 << 10], &[("content-type", JSON)]).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json()["code"], json!(8));

    // Another content type or encoding: 415, answered in JSON.
    for headers in [
        &[("content-type", "text/plain")][..],
        &[][..],
        &[("content-type", PROTOBUF), ("content-encoding", "br")][..],
    ] {
        let (answer, _) = post_traces(&server, shop().encode_to_vec(), headers).await;
        assert_eq!(answer.status, 415, "{headers:?}: {}", answer.text);
        let message = if answer.content_type == JSON {
            answer.json()["message"].as_str().unwrap().to_string()
        } else {
            answer.text.clone()
        };
        assert!(
            message.contains("application/x-protobuf") || message.contains("\"br\""),
            "{message}"
        );
    }
    // Nothing of the above was stored, and the server still takes a good request.
    let lineage = server.api.get_json("/api/v1/lineage", &[]).await;
    assert_eq!(lineage["edges"], json!([]));
    export_protobuf(&server, &shop()).await;
    assert_the_shop_is_stored(&server).await;
    let metrics = server.api.get("/metrics", &[]).await.text;
    for expected in [
        "muninn_ingest_requests_total{endpoint=\"/v1/traces\",status=\"400\"} 4",
        "muninn_ingest_requests_total{endpoint=\"/v1/traces\",status=\"413\"} 2",
        "muninn_ingest_requests_total{endpoint=\"/v1/traces\",status=\"415\"} 3",
        "muninn_ingest_requests_total{endpoint=\"/v1/traces\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(expected), "/metrics lacks {expected}");
    }
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

pub(crate) async fn grpc_client(
    server: &TestServer,
) -> TraceServiceClient<tonic::transport::Channel> {
    let address = server
        .otlp_grpc_addr()
        .expect("the server serves OTLP/gRPC");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connecting to OTLP/gRPC");
    TraceServiceClient::new(channel)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
}

/// Sends raw bytes as the Export message, as a broken client would.
async fn export_raw_bytes(server: &TestServer, message: &'static [u8]) -> tonic::Status {
    let address = server
        .otlp_grpc_addr()
        .expect("the server serves OTLP/gRPC");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connecting to OTLP/gRPC");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("the channel is ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(
        tonic::Request::new(Bytes::from_static(message)),
        path,
        RawCodec,
    )
    .await
    .expect_err("the server refuses the message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_stores_spans_and_refuses_what_it_cannot_take() {
    let server = server_with_grpc(|config| config.max_body_bytes = 64 << 10).await;
    let mut client = grpc_client(&server).await;
    let answer = client.export(shop()).await.expect("Export succeeds");
    assert_eq!(answer.into_inner(), ExportTraceServiceResponse::default());
    assert_the_shop_is_stored(&server).await;

    // Invalid spans: OK with partial success.
    let mut invalid = span(0xe1, 0x01, None, "x", SpanKind::Internal, 0, Vec::new());
    invalid.span_id = vec![0; 8];
    let request = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans("billing", vec![invalid])],
    };
    let partial = client
        .export(request)
        .await
        .expect("Export answers")
        .into_inner()
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial
            .error_message
            .contains("spans[0].span_id: must not be all zeros"),
        "{}",
        partial.error_message
    );

    // Bytes that are not an ExportTraceServiceRequest: INVALID_ARGUMENT.
    let status = export_raw_bytes(&server, b"\x0a\xff\xff\xff\xff\x0f garbage").await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("protobuf"), "{status:?}");

    // Larger than max_body_bytes: RESOURCE_EXHAUSTED (not retried), compressed or not.
    let mut huge = span(0xe2, 0x01, None, "huge", SpanKind::Internal, 0, Vec::new());
    huge.attributes = (0..40)
        .map(|index| text(&format!("key{index}"), &format!("{index:x}").repeat(4000)))
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans("billing", vec![huge])],
    };
    assert!(request.encoded_len() > 64 << 10);
    let status = client.export(request.clone()).await.expect_err("too large");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let mut uncompressed = TraceServiceClient::new(
        tonic::transport::Endpoint::from_shared(format!(
            "http://{}",
            server.otlp_grpc_addr().unwrap()
        ))
        .unwrap()
        .connect()
        .await
        .unwrap(),
    );
    let status = uncompressed.export(request).await.expect_err("too large");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    // Another method of the service: UNIMPLEMENTED. And the server still serves.
    let mut grpc = tonic::client::Grpc::new(
        tonic::transport::Endpoint::from_shared(format!(
            "http://{}",
            server.otlp_grpc_addr().unwrap()
        ))
        .unwrap()
        .connect()
        .await
        .unwrap(),
    );
    grpc.ready().await.unwrap();
    let status = grpc
        .unary(
            tonic::Request::new(Bytes::new()),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Import",
            ),
            RawCodec,
        )
        .await
        .expect_err("no such method");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let ok = client.export(shop()).await;
    assert!(ok.is_ok(), "{ok:?}");
    let metrics = server.api.get("/metrics", &[]).await.text;
    assert!(
        metrics.contains("endpoint=\"/opentelemetry.proto.collector.trace.v1.TraceService/Export\",status=\"413\"} 2"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_store_asks_both_transports_to_retry() {
    let server = server_with_grpc(|config| {
        config.store.flush_max_spans = 1;
        config.store.max_append_wait = Duration::from_millis(50);
    })
    .await;
    // Flushes fail while `blocks` is a file, so memory fills: the first batch is taken, the
    // next must wait for memory and gives up after `max_append_wait`.
    let blocks = server.data_dir().join("blocks");
    let _ = std::fs::remove_dir_all(&blocks);
    std::fs::write(&blocks, b"not a directory").unwrap();
    export_protobuf(&server, &shop()).await;
    let (answer, bytes) = post_traces(
        &server,
        shop().encode_to_vec(),
        &[("content-type", PROTOBUF)],
    )
    .await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.header("retry-after"), Some("1"));
    let status = tonic_types::Status::decode(bytes).unwrap();
    assert_eq!(status.code, 14, "UNAVAILABLE");
    let status = grpc_client(&server)
        .await
        .export(shop())
        .await
        .expect_err("overloaded");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    use tonic_types::StatusExt;
    assert_eq!(
        status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay),
        Some(Duration::from_secs(1))
    );
    // Once blocks can be written again, the backlog flushes and exports are taken again.
    std::fs::remove_file(&blocks).unwrap();
    server.flush().await;
    let later = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(
            "checkout",
            vec![span(
                0xf1,
                0x01,
                None,
                "later",
                SpanKind::Internal,
                0,
                Vec::new(),
            )],
        )],
    };
    assert_eq!(
        export_protobuf(&server, &later).await,
        ExportTraceServiceResponse::default()
    );
    let trace = server
        .api
        .get_json(&format!("/api/v1/traces/{}", hex(&trace_id(0xf1))), &[])
        .await;
    assert_eq!(trace["n_spans"], json!(1));
    assert_the_shop_is_stored(&server).await;
    server.stop().await;
}

/// Hands bytes through unchanged, to send what a typed client would refuse to encode.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        destination: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        destination.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        source: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(source.copy_to_bytes(source.remaining())))
    }
}
