//! Unit tests of `native`.

use super::*;

const NOW: i64 = 1_795_000_000_000_000_000;

fn span_json(trace_id: &str, start: &str) -> String {
    format!(
        r#"{{"trace_id":"{trace_id}","span_id":"00f067aa0ba902b7","name":"publish","kind":"producer","service":"checkout","start_time_unix_nano":{start},"duration_nano":1500,"event_id":"e-1","event_type":"order.created","stream":"orders","broker":"kafka","attributes":{{"a":1,"b":"x","c":true,"d":1.5}},"surprise":"ignored"}}"#
    )
}

#[test]
fn valid_spans_survive_next_to_invalid_ones() {
    let good = span_json("4bf92f3577b34da6a3ce929d0e0e4736", "1795000000000000000");
    let bad_id = span_json("4bf92f3577b34da6a3ce929d0e0e473", "1795000000000000000");
    let bad_type = span_json("4bf92f3577b34da6a3ce929d0e0e4736", "\"soon\"");
    let absurd = span_json("4bf92f3577b34da6a3ce929d0e0e4736", "1");
    let body = format!("[{good},{bad_id},{bad_type},{absurd},{good}]");
    let decoded = decode_spans(body.as_bytes(), &Limits::default(), NOW).unwrap();
    assert_eq!(decoded.records.len(), 2);
    let fields: Vec<(usize, &str)> = decoded
        .rejected
        .iter()
        .map(|rejection| (rejection.index, rejection.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (1, "trace_id"),
            (2, "start_time_unix_nano"),
            (3, "start_time_unix_nano")
        ]
    );
    let span = &decoded.records[0];
    assert_eq!(span.attributes.len(), 4);
    assert_eq!(span.event.broker, Some(Broker::Kafka));
}

/// Spans in a row with the same resource share one list; each list is the one its span
/// was sent with, in the order received.
#[test]
fn a_run_of_spans_with_one_resource_shares_it() {
    let with = |resource: &str| {
        span_json("4bf92f3577b34da6a3ce929d0e0e4736", "1795000000000000000").replace(
            "\"surprise\"",
            &format!("\"resource\":{resource},\"surprise\""),
        )
    };
    let (a, b) = (r#"{"host":"a","pid":7}"#, r#"{"host":"b"}"#);
    let body = format!(
        "[{},{},{},{},{}]",
        with(a),
        with(a),
        with(b),
        span_json("4bf92f3577b34da6a3ce929d0e0e4736", "1795000000000000000"),
        with(a)
    );
    let spans = decode_spans(body.as_bytes(), &Limits::default(), NOW)
        .unwrap()
        .records;
    let hosts: Vec<String> = spans
        .iter()
        .map(|span| format!("{:?}", *span.resource))
        .collect();
    assert_eq!(hosts[0], hosts[1]);
    assert_eq!(hosts[0], hosts[4]);
    assert_eq!(
        *spans[0].resource,
        vec![
            ("host".into(), AttributeValue::String("a".into())),
            ("pid".into(), AttributeValue::Int(7))
        ]
    );
    assert_eq!(
        *spans[2].resource,
        vec![("host".into(), AttributeValue::String("b".into()))]
    );
    assert!(spans[3].resource.is_empty());
    assert!(Resource::ptr_eq(&spans[0].resource, &spans[1].resource));
    assert!(!Resource::ptr_eq(&spans[1].resource, &spans[2].resource));
    assert!(Resource::ptr_eq(&spans[3].resource, &empty_resource()));
}

#[test]
fn times_are_integers_or_decimal_strings() {
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let records = [
        span_json(trace, "1795000000000000000"),
        span_json(trace, "\"1795000000000000000\""),
        span_json(trace, "1.795e18"),
        span_json(trace, "18446744073709551615"),
        span_json(trace, "\"18446744073709551615\""),
        span_json(trace, "[1]"),
    ];
    let body = format!("[{}]", records.join(","));
    let decoded = decode_spans(body.as_bytes(), &Limits::default(), NOW).unwrap();
    let starts: Vec<i64> = decoded
        .records
        .iter()
        .map(|span| span.start_unix_nanos)
        .collect();
    assert_eq!(starts, [1_795_000_000_000_000_000; 2]);
    let rejected: Vec<(usize, &str)> = decoded
        .rejected
        .iter()
        .map(|rejection| (rejection.index, rejection.field.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [2, 3, 4, 5].map(|index| (index, "start_time_unix_nano")),
        "a float, a number past i64 (as a number or as text) and an array are refused"
    );
    assert!(
        decoded.rejected[0].reason.contains("an integer"),
        "the reason says what is valid: {}",
        decoded.rejected[0].reason
    );
}

#[test]
fn ndjson_and_missing_fields() {
    let good = span_json("4bf92f3577b34da6a3ce929d0e0e4736", "1795000000000000000");
    let body = format!("{good}\n\n{{\"trace_id\":\"x\"}}\n");
    let decoded = decode_spans(body.as_bytes(), &Limits::default(), NOW).unwrap();
    assert_eq!(decoded.records.len(), 1);
    assert_eq!(decoded.rejected[0].index, 1);
    assert_eq!(decoded.rejected[0].field, "span_id");
}

#[test]
fn malformed_json_names_line_and_column() {
    let error = decode_spans(b"[\n{\"a\": 1,,}]", &Limits::default(), NOW).unwrap_err();
    assert_eq!(error.kind, IngestErrorKind::Malformed);
    assert_eq!((error.line, error.column), (Some(2), Some(9)));
    let error = decode_spans(b"{}\n{oops", &Limits::default(), NOW).unwrap_err();
    assert_eq!(error.line, Some(2));
}

#[test]
fn counts_are_validated() {
    let body = br#"[{"service":"a","event_type":"t","stream":"s","broker":"nats","action":"produced","minute":1794999990,"count":5},
                        {"service":"a","event_type":"t","stream":"s","broker":"carrier-pigeon","action":"produced","minute":1794999990,"count":5}]"#;
    let decoded = decode_counts(body, &Limits::default(), NOW).unwrap();
    assert_eq!(decoded.records[0].minute_unix_seconds, 1_794_999_960);
    assert_eq!(decoded.rejected[0].field, "broker");
}

#[test]
fn attributes_keep_their_order_and_refuse_nested_values() {
    let span = span_json("4bf92f3577b34da6a3ce929d0e0e4736", "1795000000000000000").replace(
        r#""attributes":{"a":1,"b":"x","c":true,"d":1.5}"#,
        r#""attributes":{"z":1,"a":0.1,"m":18446744073709551615}"#,
    );
    let decoded = decode_spans(span.as_bytes(), &Limits::default(), NOW).unwrap();
    let keys: Vec<&str> = decoded.records[0]
        .attributes
        .iter()
        .map(|(key, _)| key.as_str())
        .collect();
    assert_eq!(keys, ["z", "a", "m"]);
    assert_eq!(
        decoded.records[0].attributes[1].1,
        AttributeValue::Float(0.1)
    );
    let nested = span.replace(r#""z":1"#, r#""z":[1,2]"#);
    let decoded = decode_spans(nested.as_bytes(), &Limits::default(), NOW).unwrap();
    assert_eq!(decoded.rejected[0].field, "attributes.z");
}

/// Mutated bodies (bytes flipped, cut, duplicated) never panic: each gets an error or a
/// partial-success answer, and every record it keeps passes validation.
#[test]
fn mutated_bodies_never_panic() {
    let good = span_json("4bf92f3577b34da6a3ce929d0e0e4736", "1795000000000000000");
    let original = format!("[{good},{good}]").into_bytes();
    let limits = Limits::default();
    for body in crate::mutate::mutations(
        &original,
        0x9e37_79b9_7f4a_7c15,
        0x2545_f491_4f6c_dd1d,
        5000,
        4,
    ) {
        if let Ok(decoded) = decode_spans(&body, &limits, NOW) {
            for span in &decoded.records {
                assert!(limits.check_span(span, NOW).is_ok());
            }
        }
    }
}

#[test]
fn escaped_ids_and_kinds_are_read_like_plain_ones() {
    let span = span_json(
        "\\u00344bf92f3577b34da6a3ce929d0e0e473",
        "1795000000000000000",
    )
    .replace(r#""kind":"producer""#, r#""kind":"produc\u0065r""#);
    let decoded = decode_spans(span.as_bytes(), &Limits::default(), NOW).unwrap();
    assert_eq!(decoded.rejected, Vec::new());
    assert_eq!(
        decoded.records[0].trace_id.to_hex(),
        "44bf92f3577b34da6a3ce929d0e0e473"
    );
    assert_eq!(decoded.records[0].kind, SpanKind::Producer);
}

/// An array whose records all decode is read in one pass; one whose records do not (a
/// wrong type, an array for an object) is split and read record by record. Either way each
/// bad record is rejected alone at its index, and the good ones around it are the same
/// spans as when they arrive one per line.
#[test]
fn an_array_is_decoded_like_the_same_records_one_per_line() {
    let good = |n: u8| {
        span_json(
            &format!("4bf92f3577b34da6a3ce929d0e0e47{n:02x}"),
            "1795000000000000000",
        )
    };
    let not_an_integer = good(2).replace("\"duration_nano\":1500", "\"duration_nano\":\"x\"");
    let wrong_type = good(3).replace("\"name\":\"publish\"", "\"name\":5");
    let positional = r#"["4bf92f3577b34da6a3ce929d0e0e4736","00f067aa0ba902b7",null,"publish","producer","checkout",null,1795000000000000000]"#;
    let bodies = [
        // Every record decodes: one pass, a conversion's rejection at its index.
        vec![good(0), not_an_integer.clone(), good(1)],
        // Record 1 does not decode: the body is read again record by record.
        vec![good(0), wrong_type.clone(), good(1), not_an_integer.clone()],
        vec![good(0), good(1), positional.to_string(), not_an_integer],
    ];
    let expected = [
        vec![(1, "duration_nano")],
        vec![(1, "name"), (3, "duration_nano")],
        vec![(2, "(record)"), (3, "duration_nano")],
    ];
    for (records, expected) in bodies.iter().zip(expected) {
        let array = format!("[{}]", records.join(","));
        let lines = records.join("\n");
        let from_array = decode_spans(array.as_bytes(), &Limits::default(), NOW).unwrap();
        let from_lines = decode_spans(lines.as_bytes(), &Limits::default(), NOW).unwrap();
        let rejected: Vec<(usize, &str)> = from_array
            .rejected
            .iter()
            .map(|rejection| (rejection.index, rejection.field.as_str()))
            .collect();
        assert_eq!(rejected, expected);
        assert_eq!(from_array, from_lines);
        assert_eq!(from_array.records.len(), 2);
    }
}

/// What serde_json alone makes of `body`: the path bodies the scan gives up on take.
fn by_serde(body: &[u8]) -> Result<Decoded<Span>, IngestError> {
    decode_spans_by_serde(body, &Limits::default(), NOW)
}

/// A span with every field the format has, spaced out, some values of each JSON type.
fn rich_json(n: u8) -> String {
    format!(
        r#" {{ "trace_id" : "4bf92f3577b34da6a3ce929d0e0e47{n:02x}", "span_id":"00f067aa0ba902b7",
        "parent_span_id":"00f067aa0ba902b8", "name":"consume", "kind":"consumer", "service":"billing",
        "resource":{{"service.version":"1.2.3","host.name":"h-1","service.instance.id":"i-{n}"}},
        "start_time_unix_nano":"1795000000000000000", "end_time_unix_nano":1795000000000001500,
        "status":{{"code":"error","message":"handler timed out","extra":[1,{{"a":null}},"x"]}},
        "links":[{{"trace_id":"5bf92f3577b34da6a3ce929d0e0e4736","span_id":"10f067aa0ba902b7",
          "attributes":{{"k":"v","n":-3}}}},{{"trace_id":"6bf92f3577b34da6a3ce929d0e0e4736",
          "span_id":"20f067aa0ba902b7","ignored":{{}}}}],
        "event_id":"6f1c5a52-9d2e-4c1b-8f7a-0e2d4c6b8a{n:02x}", "event_type":"order.created",
        "schema":"v2", "stream":"orders", "broker":"nats", "modified":true, "partition":3,
        "offset":123456789012, "message_id":"m-{n}",
        "attributes":{{"f":1.5e3,"g":-2.25,"zero":0,"neg":-7,"t":true,"no":false,"big":999999999999999999}},
        "unknown":{{"deep":[[[{{"x":[true,false,null,-1.0e-3]}}]]]}} }} "#
    )
}

/// Every record the format allows that has no escapes is read by the scan, and read exactly
/// as serde_json reads it: the same spans, the same rejections at the same indexes.
#[test]
fn the_scan_reads_what_serde_reads() {
    let plain = span_json("4bf92f3577b34da6a3ce929d0e0e4736", "1795000000000000000");
    let nulls = r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4737","span_id":"00f067aa0ba902b7","parent_span_id":null,"name":"n","kind":"internal","service":"s","resource":null,"start_time_unix_nano":1795000000000000000,"duration_nano":null,"end_time_unix_nano":null,"status":null,"attributes":null,"links":null,"event_id":null,"event_type":null,"schema":null,"stream":null,"broker":null,"modified":null,"partition":null,"offset":null,"message_id":null}"#;
    let bad_kind = rich_json(3).replace(r#""kind":"consumer""#, r#""kind":"sideways""#);
    let empty_name = rich_json(4).replace(r#""name":"consume""#, r#""name":"""#);
    let null_attribute = rich_json(5).replace(r#""zero":0"#, r#""zero":null"#);
    let nested_attribute = rich_json(6).replace(r#""zero":0"#, r#""zero":{"a":1}"#);
    let too_old = span_json("4bf92f3577b34da6a3ce929d0e0e4738", "1");
    let bodies = [
        "[]".to_string(),
        " \n[ ]\n ".to_string(),
        format!("[{plain}]"),
        format!("[{}]", rich_json(1)),
        format!("[{nulls},{plain},{}]", rich_json(2)),
        format!("[{bad_kind},{empty_name},{plain},{null_attribute},{nested_attribute},{too_old}]"),
    ];
    for body in &bodies {
        let wire = scan::spans(body);
        assert!(wire.is_ok(), "the scan gave up on {body}");
        let scanned = decode_spans(body.as_bytes(), &Limits::default(), NOW).unwrap();
        assert_eq!(scanned, by_serde(body.as_bytes()).unwrap(), "{body}");
    }
    let last = &bodies[5];
    let rejected: Vec<(usize, String)> = decode_spans(last.as_bytes(), &Limits::default(), NOW)
        .unwrap()
        .rejected
        .into_iter()
        .map(|rejection| (rejection.index, rejection.field))
        .collect();
    let fields: Vec<(usize, &str)> = rejected
        .iter()
        .map(|(index, field)| (*index, field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (0, "kind"),
            (1, "name"),
            (3, "attributes.zero"),
            (4, "attributes.zero"),
            (5, "start_time_unix_nano")
        ]
    );
}

/// What the scan does not read (escapes, a field twice, a value of another type, numbers
/// serde_json might read otherwise, anything not an array of objects) goes to serde_json,
/// whose answer it is.
#[test]
fn the_scan_gives_up_where_serde_decides() {
    let plain = span_json("4bf92f3577b34da6a3ce929d0e0e4736", "1795000000000000000");
    let cases = [
        plain.replace(r#""name":"publish""#, r#""name":"pub\"lish""#),
        plain.replace(r#""name":"publish""#, r#""name":"pub	lish""#),
        plain.replace(r#""name":"publish""#, r#""name":"publish","name":"again""#),
        plain.replace(r#""a":1"#, r#""a":-0"#),
        plain.replace(r#""a":1"#, r#""a":1e999"#),
        plain.replace(r#""a":1"#, r#""a":9223372036854775808"#),
        plain.replace(r#""a":1"#, r#""a":-9223372036854775809"#),
        plain.replace(r#""a":1"#, r#""a":01"#),
        plain.replace(r#""duration_nano":1500"#, r#""duration_nano":1.5"#),
        plain.replace(
            r#""broker":"kafka""#,
            r#""broker":"kafka","modified":"true""#,
        ),
        plain.replace(r#""broker":"kafka""#, r#""broker":"kafka","partition":2.0"#),
        plain.replace(r#""name":"publish","#, ""),
        plain.replace(r#""service":"checkout""#, r#""service":null"#),
    ];
    let mut bodies: Vec<String> = cases.iter().map(|case| format!("[{case}]")).collect();
    bodies.extend([
        format!("{plain}\n{plain}"),
        format!("[{plain}] x"),
        format!("[{plain},]"),
        "[1]".to_string(),
        "[[]]".to_string(),
        format!("[{plain}"),
    ]);
    for body in &bodies {
        assert!(scan::spans(body).is_err(), "the scan read {body}");
        let answer = decode_spans(body.as_bytes(), &Limits::default(), NOW);
        let serde = by_serde(body.as_bytes());
        assert_eq!(answer.is_ok(), serde.is_ok(), "{body}");
        if let (Ok(answer), Ok(serde)) = (answer, serde) {
            assert_eq!(answer, serde, "{body}");
        }
    }
}

/// Bodies mutated at random (bytes flipped, cut, duplicated): whenever the scan reads one,
/// serde_json reads the same spans and rejections from it.
#[test]
fn mutated_bodies_the_scan_reads_are_read_as_serde_reads_them() {
    let original = format!("[{},{}]", rich_json(1), rich_json(2)).into_bytes();
    let mut scanned = 0;
    for body in crate::mutate::mutations(
        &original,
        0x0123_4567_89ab_cdef,
        0x2545_f491_4f6c_dd1d,
        5000,
        2,
    ) {
        let Some(wire) = std::str::from_utf8(&body).ok().map(scan::spans) else {
            continue;
        };
        if wire.is_err() {
            continue;
        }
        scanned += 1;
        let serde = by_serde(&body);
        assert!(serde.is_ok(), "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            decode_spans(&body, &Limits::default(), NOW).unwrap(),
            serde.unwrap(),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    assert!(
        scanned > 100,
        "only {scanned} mutated bodies were read by the scan"
    );
}
