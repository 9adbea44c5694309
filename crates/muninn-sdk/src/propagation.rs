//! Trace context and event metadata in message headers: W3C Trace Context and B3.
//!
//! [`extract`] reads what came with a message (`traceparent`/`tracestate`, then `b3`, then
//! `X-B3-*`; event id, type and schema), [`inject`] and [`inject_event`] write it on a message
//! being produced. Malformed headers never fail a call: they are ignored and the reason is
//! reported in [`Extracted::invalid`]. See `docs/propagation.md`.

mod b3;
mod carrier;
mod event;
mod hex;
mod index;
mod w3c;

#[cfg(any(feature = "kafka", feature = "nats"))]
pub(crate) use carrier::named;
pub use carrier::{Extractor, Injector};
pub(crate) use event::EventRefs;
pub use event::{
    EVENT_ID_HEADER, EVENT_SCHEMA_HEADER, EVENT_TYPE_HEADER, EventHeaders, MAX_EVENT_HEADER_LEN,
    inject_event,
};
use index::{Indexed, Lookup, Name};
pub use muninn_model::{SpanId, TraceId};
pub use w3c::TraceState;

pub const TRACEPARENT_HEADER: &str = "traceparent";
pub const TRACESTATE_HEADER: &str = "tracestate";
pub const B3_HEADER: &str = b3::B3_HEADER;
pub const B3_TRACE_ID_HEADER: &str = b3::TRACE_ID_HEADER;
pub const B3_SPAN_ID_HEADER: &str = b3::SPAN_ID_HEADER;
pub const B3_PARENT_SPAN_ID_HEADER: &str = b3::PARENT_SPAN_ID_HEADER;
pub const B3_SAMPLED_HEADER: &str = b3::SAMPLED_HEADER;
pub const B3_FLAGS_HEADER: &str = b3::FLAGS_HEADER;

/// The formats written when none are configured.
pub const DEFAULT_FORMATS: &[Format] = &[Format::W3c];

/// A remote or local span's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The caller's sampling decision (W3C `sampled` flag; B3 accept or debug). A deferred B3
    /// decision reads as `false`.
    pub sampled: bool,
    /// Vendor entries from `tracestate` (W3C only; empty for B3).
    pub trace_state: TraceState,
}

impl SpanContext {
    /// A context with an empty `tracestate`.
    pub fn new(trace_id: TraceId, span_id: SpanId, sampled: bool) -> SpanContext {
        SpanContext {
            trace_id,
            span_id,
            sampled,
            trace_state: TraceState::default(),
        }
    }

    /// Whether both ids are non-zero; [`inject`] writes nothing for an invalid context.
    pub fn is_valid(&self) -> bool {
        !hex::all_zero(&self.trace_id.0) && !hex::all_zero(&self.span_id.0)
    }
}

/// A trace-context header format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// W3C Trace Context: `traceparent` and `tracestate`.
    W3c,
    /// Zipkin B3 single header: `b3`.
    B3Single,
    /// Zipkin B3 multiple headers: `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled`.
    B3Multi,
}

impl Format {
    /// The name used in configuration: `w3c`, `b3` or `b3multi`.
    pub fn name(self) -> &'static str {
        match self {
            Format::W3c => "w3c",
            Format::B3Single => "b3",
            Format::B3Multi => "b3multi",
        }
    }

    /// The format named `name` (as [`Format::name`] spells it, any ASCII case).
    pub fn from_name(name: &str) -> Option<Format> {
        [Format::W3c, Format::B3Single, Format::B3Multi]
            .into_iter()
            .find(|format| format.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// What came in with a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The upstream span's context; `None` when no valid one came (start a new trace).
    pub context: Option<SpanContext>,
    /// The format `context` (or `sampling_only`) was read from.
    pub format: Option<Format>,
    /// A B3 sampling decision that came without ids (`b3: 0`, or `X-B3-Sampled` alone):
    /// `Some(false)` asks not to trace. `None` whenever `context` is set.
    pub sampling_only: Option<bool>,
    /// The upstream sampling decision, when one came: the `traceparent` sampled flag, a B3
    /// accept, deny or debug (with or without ids). `None` when there is none, including a
    /// B3 context whose decision is deferred (the receiver decides, as the B3 spec says).
    pub upstream_sampled: Option<bool>,
    pub event: EventHeaders,
    /// Why a header that was present got ignored (the first such reason), for counters and
    /// logs. Set even when another format supplied the context.
    pub invalid: Option<&'static str>,
}

/// Reads trace context and event metadata from `carrier`.
///
/// The first valid format wins: a `traceparent` (with its `tracestate`), then `b3`, then the
/// `X-B3-*` headers. Invalid headers are skipped and reported in [`Extracted::invalid`].
pub fn extract(carrier: &(impl Extractor + ?Sized)) -> Extracted {
    let incoming = extract_borrowed(carrier);
    Extracted {
        context: incoming.context,
        format: incoming.format,
        sampling_only: incoming.sampling_only,
        upstream_sampled: incoming.upstream_sampled,
        event: incoming.event.to_owned(),
        invalid: incoming.invalid,
    }
}

/// [`Extracted`], its event metadata borrowed from the carrier: what the consume path reads,
/// without copying an event id it may only hash.
#[derive(Debug, Default)]
pub(crate) struct Incoming<'a> {
    pub context: Option<SpanContext>,
    pub format: Option<Format>,
    pub sampling_only: Option<bool>,
    pub upstream_sampled: Option<bool>,
    pub event: EventRefs<'a>,
    pub invalid: Option<&'static str>,
}

/// [`extract`] without copying the event metadata. A carrier that can list its headers is
/// read in one pass; any other name by name.
pub(crate) fn extract_borrowed<'a, C: Extractor + ?Sized>(carrier: &'a C) -> Incoming<'a> {
    match Indexed::new(carrier) {
        Some(index) => read(&index),
        None => read(&carrier),
    }
}

fn read<'a>(headers: &impl Lookup<'a>) -> Incoming<'a> {
    let mut out = Incoming::default();
    extract_w3c(headers, &mut out);
    if out.context.is_none()
        && let Some(value) = headers.first(Name::B3)
    {
        match b3::parse_single(value) {
            Ok(found) => apply_b3(found, Format::B3Single, &mut out),
            Err(reason) => note(&mut out.invalid, reason),
        }
    }
    if out.format.is_none() {
        match b3::parse_multi(headers) {
            Ok(Some(found)) => apply_b3(found, Format::B3Multi, &mut out),
            Ok(None) => {}
            Err(reason) => note(&mut out.invalid, reason),
        }
    }
    out.event = event::read(headers, &mut out.invalid);
    out
}

fn note(invalid: &mut Option<&'static str>, reason: &'static str) {
    invalid.get_or_insert(reason);
}

fn extract_w3c<'a>(headers: &impl Lookup<'a>, out: &mut Incoming<'a>) {
    let (mut parent, mut parents) = (None, 0);
    headers.each(Name::TRACEPARENT, &mut |value| {
        parent.get_or_insert(value);
        parents += 1;
    });
    let parent = match (parent, parents) {
        (None, _) => return,
        (Some(value), 1) => match w3c::parse_traceparent(value) {
            Ok(parent) => parent,
            Err(reason) => return note(&mut out.invalid, reason),
        },
        _ => return note(&mut out.invalid, "traceparent: more than one header"),
    };
    let mut states = Vec::new();
    headers.each(Name::TRACESTATE, &mut |value| states.push(value));
    let trace_state = TraceState::parse_checked(&states).unwrap_or_else(|reason| {
        note(&mut out.invalid, reason);
        TraceState::default()
    });
    out.context = Some(SpanContext {
        trace_id: parent.trace_id,
        span_id: parent.span_id,
        sampled: parent.sampled,
        trace_state,
    });
    out.upstream_sampled = Some(parent.sampled);
    out.format = Some(Format::W3c);
}

fn apply_b3(found: b3::B3, format: Format, out: &mut Incoming<'_>) {
    match found {
        b3::B3::Context {
            trace_id,
            span_id,
            sampled,
        } => {
            out.context = Some(SpanContext::new(
                trace_id,
                span_id,
                sampled.unwrap_or(false),
            ));
            out.upstream_sampled = sampled;
        }
        b3::B3::SamplingOnly(sampled) => {
            out.sampling_only = Some(sampled);
            out.upstream_sampled = Some(sampled);
        }
    }
    out.format = Some(format);
}

/// Writes `context` into `carrier` in each of `formats`.
///
/// W3C writes `traceparent` (version 00) and, when there are entries, `tracestate` (truncated
/// to 512 characters, see [`TraceState::header_value`]). B3 writes a 128-bit trace id and an
/// explicit sampling state. Nothing is written for a context with an all-zero id.
pub fn inject(context: &SpanContext, formats: &[Format], carrier: &mut (impl Injector + ?Sized)) {
    if !context.is_valid() {
        return;
    }
    let SpanContext {
        trace_id,
        span_id,
        sampled,
        trace_state,
    } = context;
    for format in formats {
        match format {
            Format::W3c => {
                let value = w3c::format_traceparent(trace_id, span_id, *sampled);
                if let Ok(value) = std::str::from_utf8(&value) {
                    carrier.set(TRACEPARENT_HEADER, value);
                }
                if let Some(value) = trace_state.header_value() {
                    carrier.set(TRACESTATE_HEADER, &value);
                }
            }
            Format::B3Single => {
                let value = b3::format_single(trace_id, span_id, *sampled);
                if let Ok(value) = std::str::from_utf8(&value) {
                    carrier.set(B3_HEADER, value);
                }
            }
            Format::B3Multi => {
                let mut trace = [0u8; 32];
                let mut span = [0u8; 16];
                hex::encode(&trace_id.0, &mut trace);
                hex::encode(&span_id.0, &mut span);
                if let (Ok(trace), Ok(span)) =
                    (std::str::from_utf8(&trace), std::str::from_utf8(&span))
                {
                    carrier.set(B3_TRACE_ID_HEADER, trace);
                    carrier.set(B3_SPAN_ID_HEADER, span);
                    carrier.set(B3_SAMPLED_HEADER, if *sampled { "1" } else { "0" });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
            trace_state: TraceState::parse(&[trace_state]),
        }
    }

    #[test]
    fn nothing_to_extract_from_empty_headers() {
        assert_eq!(extract(&headers(&[])), Extracted::default());
    }

    #[test]
    fn w3c_context_with_tracestate_is_extracted() {
        let carrier = headers(&[
            ("TraceParent", &format!("00-{TRACE}-{SPAN}-01")),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("TRACESTATE", "congo=t61rcWkgMzE"),
        ]);
        let extracted = extract(&carrier);
        assert_eq!(ids(&extracted.context), some_ids(TRACE, SPAN, true));
        assert_eq!(extracted.format, Some(Format::W3c));
        assert_eq!(extracted.invalid, None);
        let state = extracted.context.map(|c| c.trace_state).unwrap_or_default();
        assert_eq!(
            state.header_value().as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
    }

    #[test]
    fn duplicated_traceparent_is_ignored() {
        let carrier = headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("traceparent", &format!("00-{OTHER_TRACE}-{SPAN}-01")),
            ("tracestate", "foo=1"),
        ]);
        let extracted = extract(&carrier);
        assert_eq!(extracted.context, None);
        assert_eq!(extracted.format, None);
        assert_eq!(extracted.invalid, Some("traceparent: more than one header"));
    }

    #[test]
    fn invalid_tracestate_keeps_the_traceparent() {
        let carrier = headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-00")),
            ("tracestate", "foo=1,foo=2"),
        ]);
        let extracted = extract(&carrier);
        assert_eq!(ids(&extracted.context), some_ids(TRACE, SPAN, false));
        assert!(extracted.context.is_some_and(|c| c.trace_state.is_empty()));
        assert_eq!(extracted.invalid, Some("tracestate: duplicate key"));
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
                let expected_state = if format == Format::W3c {
                    context.trace_state.clone()
                } else {
                    TraceState::default()
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
}
