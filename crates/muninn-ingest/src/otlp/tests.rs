//! Unit tests of `otlp`.

use super::*;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status as OtlpStatus};
use prost::Message;

const NOW: i64 = 1_795_000_000_000_000_000;
const TRACE: [u8; 16] = [0x4b; 16];

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

fn otlp_span(id: u8, kind: span::SpanKind, attributes: Vec<KeyValue>) -> OtlpSpan {
    OtlpSpan {
        trace_id: TRACE.to_vec(),
        span_id: vec![id; 8],
        name: format!("span {id}"),
        kind: kind as i32,
        start_time_unix_nano: (NOW - 1_000_000_000) as u64,
        end_time_unix_nano: (NOW - 999_000_000) as u64,
        attributes,
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, spans: Vec<OtlpSpan>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn map(request: ExportTraceServiceRequest, mapping: &OtlpMapping) -> Decoded<Span> {
    otlp_spans(request, mapping, &Limits::default(), NOW)
}

fn keys(attributes: &Attributes) -> Vec<&str> {
    attributes.iter().map(|(key, _)| key.as_str()).collect()
}

#[test]
fn messaging_conventions_fill_the_event_columns() {
    let producer = otlp_span(
        1,
        span::SpanKind::Producer,
        vec![
            text("messaging.system", "kafka"),
            text("messaging.destination.name", "orders"),
            text("messaging.operation.type", "send"),
            text("messaging.message.id", "m-1"),
            text("cloudevents.event_id", "e-1"),
            text("cloudevents.event_type", "order.created"),
            text("cloudevents.event_dataschema", "order.v1"),
            int("messaging.kafka.destination.partition", 3),
            int("messaging.kafka.message.offset", 42),
            text("region", "eu"),
        ],
    );
    let decoded = map(
        request(
            vec![text("service.name", "checkout"), text("host.name", "web-1")],
            vec![producer],
        ),
        &OtlpMapping::default(),
    );
    assert_eq!(decoded.rejected, Vec::new());
    let span = &decoded.records[0];
    assert_eq!(span.service, "checkout");
    assert_eq!(keys(&span.resource), ["host.name"]);
    assert_eq!(span.kind, SpanKind::Producer);
    assert_eq!(
        span.event,
        EventColumns {
            event_id: Some("e-1".into()),
            event_type: Some("order.created".into()),
            schema: Some("order.v1".into()),
            stream: Some("orders".into()),
            broker: Some(Broker::Kafka),
            modified: false,
            partition: Some(3),
            offset: Some(42),
            message_id: Some("m-1".into()),
        }
    );
    assert_eq!(
        keys(&span.attributes),
        ["messaging.operation.type", "region"]
    );
    assert_eq!(span.duration_nanos, 1_000_000);
}

#[test]
fn the_operation_type_decides_the_kind_of_client_and_internal_spans() {
    let spans = [
        ("publish", span::SpanKind::Client, SpanKind::Producer),
        ("create", span::SpanKind::Internal, SpanKind::Producer),
        ("receive", span::SpanKind::Client, SpanKind::Consumer),
        ("process", span::SpanKind::Unspecified, SpanKind::Consumer),
        ("settle", span::SpanKind::Client, SpanKind::Client),
        ("receive", span::SpanKind::Producer, SpanKind::Producer),
    ];
    for (operation, otlp_kind, expected) in spans {
        let span = otlp_span(
            1,
            otlp_kind,
            vec![text("messaging.operation.type", operation)],
        );
        let decoded = map(request(Vec::new(), vec![span]), &OtlpMapping::default());
        assert_eq!(
            decoded.records[0].kind, expected,
            "{operation} {otlp_kind:?}"
        );
        assert_eq!(decoded.records[0].service, UNKNOWN_SERVICE);
    }
}

#[test]
fn configured_attributes_win_and_losers_stay_attributes() {
    let mapping = OtlpMapping {
        event_type_attribute: Some("event.type".into()),
        event_id_attribute: Some("event.id".into()),
    };
    let span = otlp_span(
        1,
        span::SpanKind::Consumer,
        vec![
            text("cloudevents.event_type", "ce.type"),
            text("event.type", "order.paid"),
            text("messaging.message.id", "m-9"),
            int("event.id", 77),
            text("messaging.system", "servicebus"),
            text("messaging.destination.partition.id", "shard-1"),
        ],
    );
    let decoded = map(request(Vec::new(), vec![span]), &mapping);
    let span = &decoded.records[0];
    assert_eq!(span.event.event_type.as_deref(), Some("order.paid"));
    assert_eq!(span.event.event_id.as_deref(), Some("77"));
    assert_eq!(span.event.message_id.as_deref(), Some("m-9"));
    assert_eq!(span.event.broker, Some(Broker::Other));
    assert_eq!(span.event.partition, None);
    assert_eq!(
        keys(&span.attributes),
        [
            "cloudevents.event_type",
            "messaging.system",
            "messaging.destination.partition.id"
        ]
    );
}

#[test]
fn a_batch_receive_becomes_one_record_per_linked_message() {
    let link = |id: u8, message: Option<&str>| span::Link {
        trace_id: vec![id; 16],
        span_id: vec![id; 8],
        attributes: message
            .map(|message| vec![text("messaging.message.id", message), int("n", 1)])
            .unwrap_or_default(),
        ..Default::default()
    };
    let mut batch = otlp_span(
        9,
        span::SpanKind::Consumer,
        vec![
            text("messaging.system", "nats"),
            text("messaging.destination.name", "orders"),
            text("messaging.operation.type", "receive"),
        ],
    );
    batch.links = vec![link(1, Some("m-1")), link(2, None), link(3, Some("m-3"))];
    let decoded = map(
        request(Vec::new(), vec![batch.clone()]),
        &OtlpMapping::default(),
    );
    assert_eq!(decoded.rejected, Vec::new());
    let records = &decoded.records;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].span_id, SpanId([9; 8]));
    assert_eq!(records[1].span_id, derived_span_id(SpanId([9; 8]), 2));
    assert_ne!(records[1].span_id, records[0].span_id);
    for (record, message) in records.iter().zip(["m-1", "m-3"]) {
        assert_eq!(record.event.event_id.as_deref(), Some(message));
        assert_eq!(record.event.stream.as_deref(), Some("orders"));
        assert_eq!(record.kind, SpanKind::Consumer);
    }
    assert_eq!(
        records[0].links.len(),
        2,
        "the link without an id goes first"
    );
    assert_eq!(keys(&records[0].links[0].attributes), ["n"]);
    assert_eq!(records[1].links[0].span_id, SpanId([3; 8]));
    assert_eq!(
        records[1].attributes.last(),
        Some(&(
            BATCH_SPAN_ID_ATTRIBUTE.into(),
            AttributeValue::String("0909090909090909".into())
        ))
    );
    // Deterministic: the same request gives the same records.
    let again = map(request(Vec::new(), vec![batch]), &OtlpMapping::default());
    assert_eq!(again.records, decoded.records);
}

#[test]
fn invalid_spans_are_rejected_alone_naming_the_otlp_field() {
    let good = otlp_span(1, span::SpanKind::Internal, Vec::new());
    let mut short_id = otlp_span(2, span::SpanKind::Internal, Vec::new());
    short_id.trace_id = vec![1, 2, 3];
    let long_stream = otlp_span(
        3,
        span::SpanKind::Producer,
        vec![text("messaging.destination.name", &"s".repeat(600))],
    );
    let mut backwards = otlp_span(4, span::SpanKind::Internal, Vec::new());
    backwards.end_time_unix_nano = 5;
    let long_value = otlp_span(
        5,
        span::SpanKind::Internal,
        vec![text("url", &"u".repeat(5000))],
    );
    let decoded = map(
        request(
            Vec::new(),
            vec![good, short_id, long_stream, backwards, long_value],
        ),
        &OtlpMapping::default(),
    );
    assert_eq!(decoded.records.len(), 1);
    let fields: Vec<(usize, &str)> = decoded
        .rejected
        .iter()
        .map(|rejection| (rejection.index, rejection.field.as_str()))
        .collect();
    let at = "resource_spans[0].scope_spans[0].spans";
    assert_eq!(
        fields,
        [
            (1, format!("{at}[1].trace_id").as_str()),
            (
                2,
                format!("{at}[2].attributes[messaging.destination.name]").as_str()
            ),
            (3, format!("{at}[3].end_time_unix_nano").as_str()),
            (4, format!("{at}[4].attributes[url]").as_str()),
        ]
    );
    assert!(decoded.rejected[0].reason.contains("16 bytes"));
}

#[test]
fn values_of_every_type_are_kept() {
    use any_value::Value;
    let value = |value| AnyValue { value: Some(value) };
    let attributes = vec![
        KeyValue {
            key: "list".into(),
            value: Some(value(Value::ArrayValue(
                opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: vec![
                        value(Value::StringValue("a".into())),
                        value(Value::IntValue(2)),
                    ],
                },
            ))),
            ..Default::default()
        },
        KeyValue {
            key: "bytes".into(),
            value: Some(value(Value::BytesValue(vec![0xca, 0xfe]))),
            ..Default::default()
        },
        KeyValue {
            key: "nan".into(),
            value: Some(value(Value::DoubleValue(f64::NAN))),
            ..Default::default()
        },
        KeyValue {
            key: "empty".into(),
            value: None,
            ..Default::default()
        },
    ];
    let decoded = map(
        request(
            Vec::new(),
            vec![otlp_span(1, span::SpanKind::Server, attributes)],
        ),
        &OtlpMapping::default(),
    );
    let span = &decoded.records[0];
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(
        span.attributes,
        vec![
            ("list".into(), AttributeValue::String(r#"["a",2]"#.into())),
            ("bytes".into(), AttributeValue::String("cafe".into())),
            ("nan".into(), AttributeValue::String("NaN".into())),
        ]
    );
}

#[test]
fn json_reads_hex_ids_string_integers_and_ignores_unknown_fields() {
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}}]},
            "scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"4B4B4B4B4B4B4B4B4B4B4B4B4B4B4B4B","spanId":"0102030405060708",
            "name":"process orders","kind":5,"startTimeUnixNano":"1794999999000000000","endTimeUnixNano":1794999999500000000,
            "attributes":[{"key":"messaging.destination.name","value":{"stringValue":"orders"}},
                          {"key":"messaging.kafka.message.offset","value":{"intValue":"17"}}],
            "status":{"code":2,"message":"boom"},"surprise":{"nested":[1]}}]}]}]}"#;
    let decoded = decode_otlp_json(body, &OtlpMapping::default(), &Limits::default(), NOW).unwrap();
    assert_eq!(decoded.rejected, Vec::new());
    let span = &decoded.records[0];
    assert_eq!(span.trace_id, TraceId(TRACE));
    assert_eq!(span.span_id.to_hex(), "0102030405060708");
    assert_eq!(span.kind, SpanKind::Consumer);
    assert_eq!(span.event.offset, Some(17));
    assert_eq!(span.status.code, StatusCode::Error);
    assert_eq!(span.duration_nanos, 500_000_000);
    let error = decode_otlp_json(
        b"{\"resourceSpans\": [",
        &OtlpMapping::default(),
        &Limits::default(),
        NOW,
    )
    .unwrap_err();
    assert_eq!(error.kind, IngestErrorKind::Malformed);
    assert_eq!(error.line, Some(1));
}

#[test]
fn protobuf_round_trips_and_garbage_is_refused() {
    let request = request(
        vec![text("service.name", "checkout")],
        vec![otlp_span(1, span::SpanKind::Producer, Vec::new())],
    );
    let decoded = decode_otlp_protobuf(
        &request.encode_to_vec(),
        &OtlpMapping::default(),
        &Limits::default(),
        NOW,
    )
    .unwrap();
    assert_eq!(decoded.records.len(), 1);
    let error = decode_otlp_protobuf(
        b"\x0a\xff\xff\xff\xff\x0f",
        &OtlpMapping::default(),
        &Limits::default(),
        NOW,
    )
    .unwrap_err();
    assert_eq!(error.kind, IngestErrorKind::Malformed);
}

/// Decodes with prost and maps the owned request (the OTLP/JSON path), to hold the borrowing
/// reader against.
fn with_prost(body: &[u8]) -> Option<Decoded<Span>> {
    let request = ExportTraceServiceRequest::decode(body).ok()?;
    Some(otlp_spans(request, &mapping(), &Limits::default(), NOW))
}

fn with_wire(body: &[u8]) -> Result<Decoded<Span>, IngestError> {
    decode_otlp_protobuf(body, &mapping(), &Limits::default(), NOW)
}

fn mapping() -> OtlpMapping {
    OtlpMapping {
        event_type_attribute: Some("event.type".into()),
        event_id_attribute: None,
    }
}

/// A request with every kind of value, nesting, links, statuses and a batch receive.
fn everything() -> ExportTraceServiceRequest {
    use any_value::Value;
    let value = |value| Some(AnyValue { value: Some(value) });
    let array = |values: Vec<Value>| {
        Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: values
                .into_iter()
                .map(|value| AnyValue { value: Some(value) })
                .collect(),
        })
    };
    let map = Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList {
        values: vec![
            KeyValue {
                key: "inner".into(),
                value: value(array(vec![
                    Value::IntValue(1),
                    Value::DoubleValue(f64::INFINITY),
                ])),
                ..Default::default()
            },
            KeyValue {
                key: "nothing".into(),
                value: None,
                ..Default::default()
            },
        ],
    });
    let mut producer = otlp_span(
        1,
        span::SpanKind::Producer,
        vec![
            text("messaging.system", "pulsar"),
            text("messaging.destination.name", "orders"),
            text("event.type", "order.created"),
            int("messaging.destination.partition.id", 4),
            KeyValue {
                key: "list".into(),
                value: value(array(vec![
                    Value::StringValue("a".into()),
                    Value::BoolValue(true),
                    Value::BytesValue(vec![1, 255]),
                    map.clone(),
                ])),
                ..Default::default()
            },
            KeyValue {
                key: "ratio".into(),
                value: value(Value::DoubleValue(0.25)),
                ..Default::default()
            },
            KeyValue {
                key: "nan".into(),
                value: value(Value::DoubleValue(f64::NAN)),
                ..Default::default()
            },
            KeyValue {
                key: "map".into(),
                value: value(map),
                ..Default::default()
            },
        ],
    );
    producer.status = Some(OtlpStatus {
        message: "broken".into(),
        code: status::StatusCode::Error as i32,
    });
    producer.parent_span_id = vec![7; 8];
    let mut batch = otlp_span(
        2,
        span::SpanKind::Client,
        vec![text("messaging.operation.type", "receive")],
    );
    batch.links = (0..3)
        .map(|index| span::Link {
            trace_id: vec![index + 1; 16],
            span_id: vec![index + 1; 8],
            attributes: if index == 1 {
                vec![text("reason", "retry")]
            } else {
                vec![
                    text("messaging.message.id", &format!("m-{index}")),
                    int("n", 1),
                ]
            },
            ..Default::default()
        })
        .collect();
    let mut second = request(
        vec![text("service.name", "billing")],
        vec![batch, otlp_span(3, span::SpanKind::Server, Vec::new())],
    );
    let mut first = request(
        vec![text("service.name", "checkout"), int("pid", 42)],
        vec![producer],
    );
    first.resource_spans.append(&mut second.resource_spans);
    first
}

#[test]
fn the_borrowing_reader_reads_what_prost_reads() {
    let body = everything().encode_to_vec();
    let expected = with_prost(&body).unwrap();
    assert_eq!(expected.records.len(), 4, "{:?}", expected.rejected);
    assert_eq!(with_wire(&body).unwrap(), expected);
    let list = &expected.records[0]
        .attributes
        .iter()
        .find(|(key, _)| key == "list")
        .unwrap()
        .1;
    assert_eq!(
        list,
        &AttributeValue::String(r#"["a",true,"01ff",{"inner":[1,"inf"],"nothing":null}]"#.into())
    );
    assert_eq!(expected.records[0].event.partition, Some(4));
    assert_eq!(expected.records[0].event.broker, Some(Broker::Pulsar));
    assert_eq!(expected.records[1].kind, SpanKind::Consumer);
}

/// Protobuf's rules for repeated occurrences: singular fields keep the last, repeated ones
/// and messages merge; unknown fields, groups included, are skipped.
#[test]
fn repeated_and_unknown_fields_are_read_as_prost_reads_them() {
    fn field(number: u32, wire_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_varint(u64::from(number << 3 | u32::from(wire_type)), &mut out);
        if wire_type == 2 {
            prost::encoding::encode_varint(payload.len() as u64, &mut out);
        }
        out.extend_from_slice(payload);
        out
    }
    let mut span_bytes =
        otlp_span(1, span::SpanKind::Producer, vec![text("a", "1")]).encode_to_vec();
    // A second trace id (last wins), a second name, another attribute, two statuses, an
    // unknown varint and an unknown group.
    span_bytes.extend(field(1, 2, &[9; 16]));
    span_bytes.extend(field(5, 2, b"renamed"));
    span_bytes.extend(field(9, 2, &text("b", "2").encode_to_vec()));
    span_bytes.extend(field(
        15,
        2,
        &OtlpStatus {
            message: "first".into(),
            code: 2,
        }
        .encode_to_vec(),
    ));
    span_bytes.extend(field(
        15,
        2,
        &OtlpStatus {
            message: String::new(),
            code: 0,
        }
        .encode_to_vec(),
    ));
    span_bytes.extend(field(15, 2, &field(2, 2, b"second")));
    span_bytes.extend(field(77, 0, &[5]));
    let mut group = field(78, 3, &[]);
    group.extend(field(1, 0, &[1]));
    group.extend(field(78, 4, &[]));
    span_bytes.extend(group.clone());
    // An AnyValue whose array value comes in two parts, which merge.
    let two_arrays = {
        let item = |text: &str| {
            field(
                1,
                2,
                &AnyValue {
                    value: Some(any_value::Value::StringValue(text.into())),
                }
                .encode_to_vec(),
            )
        };
        let mut any = field(5, 2, &item("x"));
        any.extend(field(5, 2, &item("y")));
        let mut key_value = field(1, 2, b"merged");
        key_value.extend(field(2, 2, &any));
        key_value
    };
    span_bytes.extend(field(9, 2, &two_arrays));
    let scope = field(2, 2, &span_bytes);
    let mut resource_spans = field(2, 2, &scope);
    // The resource after the spans, in two parts.
    resource_spans.extend(field(
        1,
        2,
        &field(1, 2, &text("service.name", "late").encode_to_vec()),
    ));
    resource_spans.extend(field(
        1,
        2,
        &field(1, 2, &text("zone", "b").encode_to_vec()),
    ));
    let mut body = field(1, 2, &resource_spans);
    body.extend(group);
    let expected = with_prost(&body).expect("prost reads it");
    assert_eq!(with_wire(&body).unwrap(), expected);
    let span = &expected.records[0];
    assert_eq!(span.trace_id, TraceId([9; 16]));
    assert_eq!(span.name, "renamed");
    assert_eq!(span.service, "late");
    assert_eq!(span.status.message.as_deref(), Some("second"));
    assert_eq!(keys(&span.attributes), ["a", "b", "merged"]);
    assert_eq!(
        span.attributes[2].1,
        AttributeValue::String(r#"["x","y"]"#.into())
    );
}

/// Mutated bodies: whatever prost reads, the borrowing reader reads the same; neither panics.
#[test]
fn mutated_bodies_read_the_same_with_prost_and_the_borrowing_reader() {
    let original = everything().encode_to_vec();
    let mut n_read_by_prost = 0;
    for body in crate::mutate::mutations(
        &original,
        0x2545_f491_4f6c_dd1d,
        0x9e37_79b9_7f4a_7c15,
        20_000,
        3,
    ) {
        let wire = with_wire(&body);
        if let Some(expected) = with_prost(&body) {
            n_read_by_prost += 1;
            assert_eq!(wire.as_ref().ok(), Some(&expected), "body {body:?}");
        }
    }
    assert!(
        n_read_by_prost > 1000,
        "only {n_read_by_prost} mutated bodies decoded"
    );
}

/// Mutated protobuf bodies never panic, and every span kept passes validation.
#[test]
fn mutated_protobuf_never_panics() {
    let link = span::Link {
        trace_id: vec![7; 16],
        span_id: vec![7; 8],
        attributes: vec![text("messaging.message.id", "m-1")],
        ..Default::default()
    };
    let mut consumer = otlp_span(
        2,
        span::SpanKind::Consumer,
        vec![text("messaging.destination.name", "orders")],
    );
    consumer.links = vec![link.clone(), link];
    let original = request(
        vec![text("service.name", "checkout")],
        vec![
            otlp_span(
                1,
                span::SpanKind::Producer,
                vec![text("cloudevents.event_id", "e")],
            ),
            consumer,
        ],
    )
    .encode_to_vec();
    let limits = Limits::default();
    for body in crate::mutate::mutations(
        &original,
        0x9e37_79b9_7f4a_7c15,
        0x2545_f491_4f6c_dd1d,
        5000,
        4,
    ) {
        if let Ok(decoded) = decode_otlp_protobuf(&body, &OtlpMapping::default(), &limits, NOW) {
            for span in &decoded.records {
                assert!(limits.check_span(span, NOW).is_ok());
            }
        }
    }
}
