//! The propagation API end to end: precedence between formats, B3, injection, carriers, and
//! random headers that must never make extraction panic. W3C Trace Context's own rules are
//! checked case by case in `tests/trace_context.rs`.

use std::collections::HashMap;

use super::carrier::headers;
use super::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const OTHER_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const OTHER_SPAN: &str = "e457b5a2e4d86bd1";

fn ids(context: &Option<SpanContext>) -> Option<(String, String, bool)> {
    context
        .as_ref()
        .map(|c| (c.trace_id.to_hex(), c.span_id.to_hex(), c.sampled))
}

fn some_ids(trace: &str, span: &str, sampled: bool) -> Option<(String, String, bool)> {
    Some((trace.to_string(), span.to_string(), sampled))
}

fn sample_context(trace_state: &str) -> SpanContext {
    SpanContext {
        trace_id: TraceId([0x4b; 16]),
        span_id: SpanId([0x07; 8]),
        sampled: true,
        random: true,
        trace_state: TraceState::parse(&[trace_state]),
    }
}

#[test]
fn nothing_to_extract_from_empty_headers() {
    assert_eq!(extract(&headers(&[])), Extracted::default());
}

#[test]
fn tracestate_without_valid_traceparent_is_not_used() {
    let carrier = headers(&[
        (
            "traceparent",
            &format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
        ),
        ("tracestate", "foo=1"),
        ("b3", &format!("{OTHER_TRACE}-{OTHER_SPAN}-1")),
    ]);
    let extracted = extract(&carrier);
    assert_eq!(
        ids(&extracted.context),
        some_ids(OTHER_TRACE, OTHER_SPAN, true)
    );
    assert_eq!(extracted.format, Some(Format::B3Single));
    assert!(extracted.context.is_some_and(|c| c.trace_state.is_empty()));
    assert_eq!(
        extracted.invalid,
        Some("traceparent: trace-id is not 32 lowercase hex digits")
    );
}

#[test]
fn precedence_is_w3c_then_b3_single_then_b3_multi() {
    let w3c = format!("00-{TRACE}-{SPAN}-01");
    let single = format!("{OTHER_TRACE}-{OTHER_SPAN}-0");
    let multi = [
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", "1111111111111111"),
        ("x-b3-sampled", "1"),
    ];
    let mut carrier = headers(&multi);
    carrier.extend(headers(&[("b3", &single), ("traceparent", &w3c)]));
    let extracted = extract(&carrier);
    assert_eq!(extracted.format, Some(Format::W3c));
    assert_eq!(ids(&extracted.context), some_ids(TRACE, SPAN, true));

    let mut carrier = headers(&multi);
    carrier.extend(headers(&[("b3", &single)]));
    let extracted = extract(&carrier);
    assert_eq!(extracted.format, Some(Format::B3Single));
    assert_eq!(
        ids(&extracted.context),
        some_ids(OTHER_TRACE, OTHER_SPAN, false)
    );

    let mut carrier = headers(&multi);
    carrier.extend(headers(&[("b3", "garbage"), ("traceparent", "garbage")]));
    let extracted = extract(&carrier);
    assert_eq!(extracted.format, Some(Format::B3Multi));
    assert_eq!(
        ids(&extracted.context),
        some_ids("0000000000000000a3ce929d0e0e4736", "1111111111111111", true)
    );
    assert_eq!(
        extracted.invalid,
        Some("traceparent: version is not 2 lowercase hex digits followed by '-'")
    );
}

#[test]
fn b3_deny_only_gives_no_context_but_a_decision() {
    let extracted = extract(&headers(&[("b3", "0")]));
    assert_eq!(extracted.context, None);
    assert_eq!(extracted.sampling_only, Some(false));
    assert_eq!(extracted.format, Some(Format::B3Single));
    assert_eq!(extracted.invalid, None);

    let extracted = extract(&headers(&[("b3", "d")]));
    assert_eq!(extracted.sampling_only, Some(true));

    let extracted = extract(&headers(&[("X-B3-Sampled", "0")]));
    assert_eq!(extracted.context, None);
    assert_eq!(extracted.sampling_only, Some(false));
    assert_eq!(extracted.format, Some(Format::B3Multi));
}

#[test]
fn b3_debug_and_deferred_decisions() {
    let extracted = extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}-d"))]));
    assert_eq!(ids(&extracted.context), some_ids(TRACE, SPAN, true));
    assert_eq!(extracted.upstream_sampled, Some(true));
    let extracted = extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}"))]));
    assert_eq!(ids(&extracted.context), some_ids(TRACE, SPAN, false));
    assert_eq!(extracted.upstream_sampled, None, "deferred: no decision");
    let extracted = extract(&headers(&[("b3", "0")]));
    assert_eq!(extracted.upstream_sampled, Some(false));
    let extracted = extract(&headers(&[
        ("X-B3-TraceId", TRACE),
        ("X-B3-SpanId", SPAN),
        ("X-B3-Flags", "1"),
    ]));
    assert_eq!(ids(&extracted.context), some_ids(TRACE, SPAN, true));
}

#[test]
fn b3_64_bit_trace_id_is_padded_and_written_back_as_128_bit() {
    let extracted = extract(&headers(&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1")]));
    let context = extracted.context.unwrap_or_else(|| sample_context(""));
    assert_eq!(
        context.trace_id.to_hex(),
        "0000000000000000a3ce929d0e0e4736"
    );
    let mut out = headers(&[]);
    inject(&context, &[Format::W3c, Format::B3Single], &mut out);
    assert_eq!(
        out,
        headers(&[
            (
                "traceparent",
                "00-0000000000000000a3ce929d0e0e4736-00f067aa0ba902b7-01"
            ),
            ("b3", "0000000000000000a3ce929d0e0e4736-00f067aa0ba902b7-1"),
        ])
    );
}

#[test]
fn inject_writes_each_format_exactly() {
    let context = SpanContext {
        trace_id: TraceId::from_hex(TRACE).unwrap_or(TraceId([1; 16])),
        span_id: SpanId::from_hex(SPAN).unwrap_or(SpanId([1; 8])),
        sampled: false,
        random: false,
        trace_state: TraceState::parse(&["congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"]),
    };
    let mut out = headers(&[]);
    inject(&context, DEFAULT_FORMATS, &mut out);
    assert_eq!(
        out,
        headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-00")),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ])
    );
    let mut out = headers(&[]);
    inject(&context, &[Format::B3Single, Format::B3Multi], &mut out);
    assert_eq!(
        out,
        headers(&[
            ("b3", &format!("{TRACE}-{SPAN}-0")),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
        ])
    );
}

#[test]
fn inject_without_tracestate_writes_no_tracestate_header() {
    let mut out = headers(&[]);
    inject(&sample_context(""), &[Format::W3c], &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(Extractor::get(&out, "tracestate"), None);
}

#[test]
fn inject_replaces_stale_headers_instead_of_duplicating_them() {
    let mut out = headers(&[("TraceParent", &format!("00-{TRACE}-{SPAN}-01"))]);
    let context = sample_context("a=1");
    inject(&context, &[Format::W3c], &mut out);
    inject(&context, &[Format::W3c], &mut out);
    assert_eq!(out.get_all("traceparent").len(), 1);
    assert_eq!(ids(&extract(&out).context), ids(&Some(context)));
}

#[test]
fn inject_skips_an_all_zero_context() {
    let mut context = sample_context("");
    context.trace_id = TraceId([0; 16]);
    let mut out = headers(&[]);
    inject(
        &context,
        &[Format::W3c, Format::B3Single, Format::B3Multi],
        &mut out,
    );
    assert!(out.is_empty());
    assert!(!context.is_valid());
}

#[test]
fn every_format_round_trips_through_every_carrier() {
    for format in [Format::W3c, Format::B3Single, Format::B3Multi] {
        for sampled in [true, false] {
            let mut context = sample_context("vendor=x,t@sys=y");
            context.sampled = sampled;
            // B3 carries neither `tracestate` nor the `random` flag.
            let (expected_state, expected_random) = if format == Format::W3c {
                (context.trace_state.clone(), context.random)
            } else {
                (TraceState::default(), false)
            };

            let mut pairs: Vec<(String, String)> = Vec::new();
            inject(&context, &[format], &mut pairs);
            let mut map: HashMap<String, String> = HashMap::new();
            inject(&context, &[format], &mut map);
            let mut bytes: Vec<(String, Vec<u8>)> = Vec::new();
            inject(&context, &[format], &mut bytes);

            for extracted in [extract(&pairs), extract(&map), extract(&bytes)] {
                assert_eq!(extracted.format, Some(format));
                assert_eq!(extracted.invalid, None);
                let got = extracted.context.unwrap_or_else(|| sample_context(""));
                assert_eq!(got.trace_id, context.trace_id, "{format:?}");
                assert_eq!(got.span_id, context.span_id, "{format:?}");
                assert_eq!(got.sampled, sampled, "{format:?}");
                assert_eq!(got.random, expected_random, "{format:?}");
                assert_eq!(got.trace_state, expected_state, "{format:?}");
            }
        }
    }
}

#[test]
fn event_metadata_round_trips_and_falls_back_to_cloudevents() {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    inject_event(
        "order-42",
        "order.created",
        Some("order.created/v2"),
        &mut out,
    );
    inject(&sample_context(""), DEFAULT_FORMATS, &mut out);
    let extracted = extract(&out);
    assert_eq!(extracted.event.event_id.as_deref(), Some("order-42"));
    assert_eq!(extracted.event.event_type.as_deref(), Some("order.created"));
    assert_eq!(extracted.event.schema.as_deref(), Some("order.created/v2"));

    let carrier: Vec<(String, Vec<u8>)> = vec![
        ("ce_id".into(), b"ce-42".to_vec()),
        ("ce_type".into(), b"com.example.order".to_vec()),
        ("muninn-event-id".into(), vec![0xff, 0x00]),
    ];
    let extracted = extract(&carrier);
    assert_eq!(extracted.event.event_id.as_deref(), Some("ce-42"));
    assert_eq!(
        extracted.event.event_type.as_deref(),
        Some("com.example.order")
    );
    assert_eq!(extracted.event.schema, None);
    assert_eq!(extracted.invalid, None);
}

#[test]
fn non_utf8_trace_headers_are_absent() {
    let carrier: Vec<(String, Vec<u8>)> = vec![
        ("traceparent".into(), vec![0x30, 0x30, 0x2d, 0xff]),
        ("b3".into(), format!("{TRACE}-{SPAN}-1").into_bytes()),
    ];
    let extracted = extract(&carrier);
    assert_eq!(extracted.format, Some(Format::B3Single));
    assert_eq!(extracted.invalid, None);
}

#[test]
fn header_names_are_matched_case_insensitively() {
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert("TRACEPARENT".into(), format!("00-{TRACE}-{SPAN}-01"));
    map.insert("Muninn-Event-Id".into(), "e-1".into());
    let extracted = extract(&map);
    assert_eq!(ids(&extracted.context), some_ids(TRACE, SPAN, true));
    assert_eq!(extracted.event.event_id.as_deref(), Some("e-1"));
}

#[test]
fn format_names() {
    for format in [Format::W3c, Format::B3Single, Format::B3Multi] {
        assert_eq!(Format::from_name(format.name()), Some(format));
    }
    assert_eq!(Format::from_name("B3Multi"), Some(Format::B3Multi));
    assert_eq!(Format::from_name("jaeger"), None);
}

/// Builds header values from fragments that are often meaningful to the parsers, so random
/// strings reach deep into them.
fn random_value(rng: &mut fastrand::Rng) -> String {
    const PIECES: &[&str] = &[
        "00",
        "ff",
        "cc",
        "-",
        "--",
        ",",
        "=",
        "@",
        " ",
        "\t",
        "0",
        "1",
        "d",
        "true",
        TRACE,
        SPAN,
        "a3ce929d0e0e4736",
        "0000000000000000",
        "A",
        "é",
        "\u{0}",
        "\n",
        "foo=1",
        "k@v=x",
        "01",
        "z",
    ];
    let mut out = String::new();
    for _ in 0..rng.usize(0..12) {
        match rng.u8(0..4) {
            0 => out.push(rng.char(..)),
            1 => out.push(char::from(rng.u8(0x20..0x7f))),
            _ => out.push_str(PIECES[rng.usize(0..PIECES.len())]),
        }
    }
    out
}

/// A carrier that can only look names up, as a user's own may: extraction reads it name by
/// name.
struct LookupsOnly<'a>(&'a [(String, String)]);

impl Extractor for LookupsOnly<'_> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.0.get_all(key)
    }
}

#[test]
fn extract_never_panics_on_random_headers() {
    const NAMES: &[&str] = &index::KNOWN;
    let mut rng = fastrand::Rng::with_seed(0x6d75_6e69_6e6e);
    let mut contexts = 0;
    for _ in 0..5000 {
        // Start from valid headers, then damage them a little: inputs near the boundary
        // between accepted and refused.
        let context = SpanContext {
            trace_id: TraceId(std::array::from_fn(|_| rng.u8(..))),
            span_id: SpanId(std::array::from_fn(|_| rng.u8(..))),
            sampled: rng.bool(),
            random: rng.bool(),
            trace_state: TraceState::parse(&[&random_value(&mut rng)]),
        };
        let formats = [Format::W3c, Format::B3Single, Format::B3Multi];
        let mut carrier: Vec<(String, String)> = Vec::new();
        inject(&context, &[formats[rng.usize(0..3)]], &mut carrier);
        for _ in 0..rng.usize(0..4) {
            let name = NAMES[rng.usize(0..NAMES.len())].to_string();
            match rng.u8(0..4) {
                0 => carrier.push((name, random_value(&mut rng))),
                1 => carrier.push((name.to_uppercase(), random_value(&mut rng))),
                _ => {
                    if let Some((_, value)) = carrier.get_mut(rng.usize(0..4)) {
                        let mut chars: Vec<char> = value.chars().collect();
                        if !chars.is_empty() {
                            let at = rng.usize(0..chars.len());
                            chars[at] = rng.char(..);
                        }
                        *value = chars.into_iter().collect();
                    }
                }
            }
        }
        let extracted = extract(&carrier);
        // Read in one pass (a `Vec` lists its headers) or name by name (a carrier that
        // only answers lookups), the same headers give the same answer.
        assert_eq!(extract(&LookupsOnly(&carrier)), extracted, "{carrier:?}");
        if let Some(context) = &extracted.context {
            contexts += 1;
            assert!(context.is_valid());
            assert!(extracted.format.is_some());
            // Whatever was accepted can be written and read back unchanged.
            let format = extracted.format.unwrap_or(Format::W3c);
            let mut out: Vec<(String, String)> = Vec::new();
            inject(context, &[format], &mut out);
            assert_eq!(extract(&out).context.as_ref(), Some(context));
        }
        for value in [
            &extracted.event.event_id,
            &extracted.event.event_type,
            &extracted.event.schema,
        ]
        .into_iter()
        .flatten()
        {
            assert!(!value.is_empty() && value.len() <= 256);
            assert!(!value.chars().any(char::is_control));
        }
    }
    // The generator does reach valid contexts, not only rejections.
    assert!(contexts > 100, "{contexts}");
}

#[test]
fn a_span_context_stays_40_bytes() {
    // The `random` flag sits in the padding after `sampled`, and an empty `tracestate` is one
    // null word: an unsampled span moves no more than before Level 2 (see `Route::unrecorded`).
    assert_eq!(std::mem::size_of::<SpanContext>(), 40);
    assert_eq!(std::mem::size_of::<Option<SpanContext>>(), 40);
    assert_eq!(std::mem::size_of::<TraceState>(), 8);
}
