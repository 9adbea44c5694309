//! Zipkin B3 propagation (openzipkin/b3-propagation): the single `b3` header and the
//! `X-B3-*` multiple headers. Ids must be lowercase hex, as the spec encodes them.

use muninn_model::{SpanId, TraceId};

use super::hex;
use super::index::{Lookup, Name};
use super::w3c::trim_ows;

pub(super) const B3_HEADER: &str = "b3";
pub(super) const TRACE_ID_HEADER: &str = "x-b3-traceid";
pub(super) const SPAN_ID_HEADER: &str = "x-b3-spanid";
pub(super) const PARENT_SPAN_ID_HEADER: &str = "x-b3-parentspanid";
pub(super) const SAMPLED_HEADER: &str = "x-b3-sampled";
pub(super) const FLAGS_HEADER: &str = "x-b3-flags";

/// Every header B3 is read from.
pub(super) const NAMES: [Name; 6] = [
    Name::B3,
    Name::B3_TRACE_ID,
    Name::B3_SPAN_ID,
    Name::B3_PARENT_SPAN_ID,
    Name::B3_SAMPLED,
    Name::B3_FLAGS,
];

/// What a valid B3 header set carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum B3 {
    /// Trace and span ids; `sampled` is `None` when the decision is deferred.
    Context {
        trace_id: TraceId,
        span_id: SpanId,
        sampled: Option<bool>,
    },
    /// Only a sampling decision (`b3: 0`, or `X-B3-Sampled` without ids).
    SamplingOnly(bool),
}

/// A 16- or 32-character trace id; 64-bit ids are left-padded with zeros to 128 bits.
#[inline]
fn parse_trace_id(
    text: &[u8],
    reason: &'static str,
    zero: &'static str,
) -> Result<TraceId, &'static str> {
    let id = match text.len() {
        16 => u128::from(hex::decode_u64(text).ok_or(reason)?) << 64,
        32 => hex::decode_u128(text).ok_or(reason)?,
        _ => return Err(reason),
    };
    if id == 0 {
        return Err(zero);
    }
    Ok(TraceId(id.to_le_bytes()))
}

#[inline]
fn parse_span_id(
    text: &[u8],
    reason: &'static str,
    zero: &'static str,
) -> Result<SpanId, &'static str> {
    match hex::decode_u64(text).ok_or(reason)? {
        0 => Err(zero),
        id => Ok(SpanId(id.to_le_bytes())),
    }
}

/// `1` accept, `0` deny, `d` debug (an emphasised accept).
fn sampling_state(text: &[u8]) -> Option<bool> {
    match text {
        b"1" | b"d" => Some(true),
        b"0" => Some(false),
        _ => None,
    }
}

/// Parses a `b3` value: `{TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]` or a lone
/// `{SamplingState}`.
#[inline]
pub(super) fn parse_single(value: &str) -> Result<B3, &'static str> {
    let mut fields = trim_ows(value).as_bytes().split(|byte| *byte == b'-');
    let first = fields.next().unwrap_or_default();
    let Some(second) = fields.next() else {
        return sampling_state(first)
            .map(B3::SamplingOnly)
            .ok_or("b3: neither ids nor a sampling state (1, 0 or d)");
    };
    let trace_id = parse_trace_id(
        first,
        "b3: trace id is not 16 or 32 lowercase hex digits",
        "b3: trace id is all zeros",
    )?;
    let span_id = parse_span_id(
        second,
        "b3: span id is not 16 lowercase hex digits",
        "b3: span id is all zeros",
    )?;
    let sampled = match fields.next() {
        None => None,
        Some(state) => Some(sampling_state(state).ok_or("b3: sampling state is not 1, 0 or d")?),
    };
    if let Some(parent) = fields.next() {
        parse_span_id(
            parent,
            "b3: parent span id is not 16 lowercase hex digits",
            "b3: parent span id is all zeros",
        )?;
    }
    if fields.next().is_some() {
        return Err("b3: more than 4 fields");
    }
    Ok(B3::Context {
        trace_id,
        span_id,
        sampled,
    })
}

/// Reads the `X-B3-*` headers; `Ok(None)` when none is present. As the spec says, the first
/// value of a repeated header wins.
#[inline]
pub(super) fn parse_multi<'a>(headers: &impl Lookup<'a>) -> Result<Option<B3>, &'static str> {
    let trace = headers.first(Name::B3_TRACE_ID).map(trim_ows);
    let span = headers.first(Name::B3_SPAN_ID).map(trim_ows);
    let parent = headers.first(Name::B3_PARENT_SPAN_ID).map(trim_ows);
    let sampled = headers.first(Name::B3_SAMPLED).map(trim_ows);
    let debug = headers.first(Name::B3_FLAGS).map(trim_ows) == Some("1");
    let sampled = match sampled {
        None => None,
        Some("1") => Some(true),
        Some("0") => Some(false),
        // Lenient reading of what tracers sent before the spec was written.
        Some(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Some(text) if text.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => return Err("x-b3-sampled: not 1 or 0"),
    };
    // Debug implies accept.
    let sampled = if debug { Some(true) } else { sampled };
    let (trace, span) = match (trace, span) {
        (Some(trace), Some(span)) => (trace, span),
        (None, None) if parent.is_none() => return Ok(sampled.map(B3::SamplingOnly)),
        _ => return Err("x-b3: x-b3-traceid and x-b3-spanid must come together"),
    };
    let trace_id = parse_trace_id(
        trace.as_bytes(),
        "x-b3-traceid: not 16 or 32 lowercase hex digits",
        "x-b3-traceid: all zeros",
    )?;
    let span_id = parse_span_id(
        span.as_bytes(),
        "x-b3-spanid: not 16 lowercase hex digits",
        "x-b3-spanid: all zeros",
    )?;
    if let Some(parent) = parent {
        parse_span_id(
            parent.as_bytes(),
            "x-b3-parentspanid: not 16 lowercase hex digits",
            "x-b3-parentspanid: all zeros",
        )?;
    }
    Ok(Some(B3::Context {
        trace_id,
        span_id,
        sampled,
    }))
}

/// A `b3` value `{TraceId}-{SpanId}-{1|0}` (128-bit trace id), written into a stack buffer.
pub(super) fn format_single(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> [u8; 51] {
    let mut out = [b'-'; 51];
    hex::encode(&trace_id.0, &mut out[..32]);
    hex::encode(&span_id.0, &mut out[33..49]);
    out[50] = if sampled { b'1' } else { b'0' };
    out
}

#[cfg(test)]
mod tests {
    use super::super::carrier::headers;
    use super::super::index::Headers;
    use super::*;

    fn multi(carrier: &[(String, String)]) -> Result<Option<B3>, &'static str> {
        Headers::read(carrier, parse_multi)
    }

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";
    const PARENT: &str = "05e3ac9a4f6e3b90";

    fn context(trace: &str, span: &str, sampled: Option<bool>) -> B3 {
        B3::Context {
            trace_id: TraceId::from_hex(trace).unwrap_or(TraceId([0; 16])),
            span_id: SpanId::from_hex(span).unwrap_or(SpanId([0; 8])),
            sampled,
        }
    }

    #[test]
    fn single_header_with_every_optional_field_combination() {
        assert_eq!(
            parse_single(&format!("{TRACE}-{SPAN}-1-{PARENT}")),
            Ok(context(TRACE, SPAN, Some(true)))
        );
        assert_eq!(
            parse_single(&format!("{TRACE}-{SPAN}-0")),
            Ok(context(TRACE, SPAN, Some(false)))
        );
        assert_eq!(
            parse_single(&format!("{TRACE}-{SPAN}-d")),
            Ok(context(TRACE, SPAN, Some(true)))
        );
        assert_eq!(
            parse_single(&format!("{TRACE}-{SPAN}")),
            Ok(context(TRACE, SPAN, None))
        );
        assert_eq!(
            parse_single(&format!(" {TRACE}-{SPAN}-1\t")),
            Ok(context(TRACE, SPAN, Some(true)))
        );
    }

    #[test]
    fn single_header_pads_64_bit_trace_ids() {
        assert_eq!(
            parse_single(&format!("a3ce929d0e0e4736-{SPAN}-1")),
            Ok(context(
                "0000000000000000a3ce929d0e0e4736",
                SPAN,
                Some(true)
            ))
        );
    }

    #[test]
    fn single_header_sampling_state_alone_carries_no_context() {
        assert_eq!(parse_single("0"), Ok(B3::SamplingOnly(false)));
        assert_eq!(parse_single("1"), Ok(B3::SamplingOnly(true)));
        assert_eq!(parse_single("d"), Ok(B3::SamplingOnly(true)));
        assert!(parse_single("2").is_err());
        assert!(parse_single("").is_err());
        assert!(parse_single("true").is_err());
    }

    #[test]
    fn single_header_refuses_malformed_values() {
        for bad in [
            format!("{}-{SPAN}-1", TRACE.to_uppercase()),
            format!("{TRACE}-{}-1", SPAN.to_uppercase()),
            format!("{TRACE}-{SPAN}-1-{}", PARENT.to_uppercase()),
            format!("{TRACE}-{SPAN}-D"),
            format!("{TRACE}-{SPAN}-true"),
            format!("{TRACE}-{SPAN}-"),
            format!("{TRACE}-{SPAN}-1-"),
            format!("{TRACE}-{SPAN}-{PARENT}"),
            format!("{TRACE}-{SPAN}-1-{PARENT}-extra"),
            format!("{}-{SPAN}-1", &TRACE[..31]),
            format!("{}-{SPAN}-1", &TRACE[..24]),
            format!("{TRACE}-{}-1", &SPAN[..15]),
            format!("{}-{SPAN}-1", "0".repeat(32)),
            format!("{}-{SPAN}-1", "0".repeat(16)),
            format!("{TRACE}-{}-1", "0".repeat(16)),
            format!("{TRACE}-{SPAN}-1-{}", "0".repeat(16)),
            format!("{TRACE}--1"),
            format!("-{SPAN}-1"),
        ] {
            assert!(parse_single(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn multi_headers_read_ids_sampled_and_debug() {
        let carrier = headers(&[
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", SPAN),
            ("X-B3-ParentSpanId", PARENT),
            ("X-B3-Sampled", "1"),
        ]);
        assert_eq!(multi(&carrier), Ok(Some(context(TRACE, SPAN, Some(true)))));

        let carrier = headers(&[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)]);
        assert_eq!(multi(&carrier), Ok(Some(context(TRACE, SPAN, None))));

        let carrier = headers(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "1"),
        ]);
        assert_eq!(
            multi(&carrier),
            Ok(Some(context(
                "0000000000000000a3ce929d0e0e4736",
                SPAN,
                Some(true)
            )))
        );
        // Debug wins over a contradicting deny.
        let carrier = headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ]);
        assert_eq!(multi(&carrier), Ok(Some(context(TRACE, SPAN, Some(true)))));
    }

    #[test]
    fn multi_headers_accept_legacy_true_false() {
        for (text, expected) in [
            ("true", true),
            ("false", false),
            ("True", true),
            ("FALSE", false),
        ] {
            let carrier = headers(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", text),
            ]);
            assert_eq!(
                multi(&carrier),
                Ok(Some(context(TRACE, SPAN, Some(expected)))),
                "{text}"
            );
        }
        let carrier = headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "yes"),
        ]);
        assert_eq!(multi(&carrier), Err("x-b3-sampled: not 1 or 0"));
    }

    #[test]
    fn multi_headers_sampling_only_and_absence() {
        assert_eq!(multi(&headers(&[])), Ok(None));
        assert_eq!(multi(&headers(&[("x-b3-flags", "0")])), Ok(None));
        assert_eq!(
            multi(&headers(&[("X-B3-Sampled", "0")])),
            Ok(Some(B3::SamplingOnly(false)))
        );
        assert_eq!(
            multi(&headers(&[("X-B3-Flags", "1")])),
            Ok(Some(B3::SamplingOnly(true)))
        );
    }

    #[test]
    fn multi_headers_refuse_incomplete_or_malformed_ids() {
        for carrier in [
            headers(&[("x-b3-traceid", TRACE)]),
            headers(&[("x-b3-spanid", SPAN), ("x-b3-sampled", "1")]),
            headers(&[("x-b3-parentspanid", PARENT)]),
            headers(&[
                ("x-b3-traceid", &TRACE.to_uppercase()),
                ("x-b3-spanid", SPAN),
            ]),
            headers(&[("x-b3-traceid", TRACE), ("x-b3-spanid", &SPAN[1..])]),
            headers(&[("x-b3-traceid", &"0".repeat(32)), ("x-b3-spanid", SPAN)]),
            headers(&[("x-b3-traceid", TRACE), ("x-b3-spanid", &"0".repeat(16))]),
            headers(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-parentspanid", "xyz"),
            ]),
        ] {
            assert!(multi(&carrier).is_err(), "{carrier:?}");
        }
    }

    #[test]
    fn multi_headers_first_value_wins() {
        let carrier = headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("X-B3-SpanId", PARENT),
        ]);
        assert_eq!(multi(&carrier), Ok(Some(context(TRACE, SPAN, None))));
    }

    #[test]
    fn single_header_is_written_with_128_bit_trace_id() {
        let trace_id =
            TraceId::from_hex("0000000000000000a3ce929d0e0e4736").unwrap_or(TraceId([1; 16]));
        let span_id = SpanId::from_hex(SPAN).unwrap_or(SpanId([1; 8]));
        let text = format_single(&trace_id, &span_id, false);
        assert_eq!(
            std::str::from_utf8(&text),
            Ok("0000000000000000a3ce929d0e0e4736-e457b5a2e4d86bd1-0")
        );
    }
}
