//! What OTLP ingest refuses, over HTTP and gRPC: invalid spans rejected in a partial success
//! while the rest is stored; bodies that cannot be decoded, too large or of another content type
//! or encoding answered with the documented errors (and the server serving on); an overloaded
//! store asking both transports to retry.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Status;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use serde_json::json;

use crate::ingest::gzip;
use crate::otlp::{
    JSON, PROTOBUF, assert_the_shop_is_stored, export_protobuf, grpc_channel, grpc_client, hex,
    post_traces, resource_spans, server_with_grpc, shop, span, text, trace_id,
};
use crate::support::TestServer;

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

/// Sends raw bytes as the Export message, as a broken client would.
async fn export_raw_bytes(server: &TestServer, message: &'static [u8]) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(grpc_channel(server).await);
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
