//! Trace context and event metadata in message headers: W3C Trace Context (Level 2) and B3.
//!
//! [`extract_ref`] reads what came with a message (`traceparent`/`tracestate`, then `b3`, then
//! `X-B3-*`; event id, type and schema) without copying the event metadata, [`extract`] the
//! same as owned values; [`inject`] and [`inject_event`] write it on a message being produced.
//! Malformed headers never fail a call: they are ignored and the reason is reported in
//! [`Extracted::invalid`]. See `docs/propagation.md`.

mod b3;
mod carrier;
mod event;
mod hex;
mod index;
mod tracestate;
mod w3c;

#[cfg(any(feature = "kafka", feature = "nats"))]
pub(crate) use carrier::named;
pub use carrier::{Extractor, Injector};
pub use event::{
    EVENT_ID_HEADER, EVENT_SCHEMA_HEADER, EVENT_TYPE_HEADER, EventHeaders, EventHeadersRef,
    MAX_EVENT_HEADER_LEN, inject_event,
};
pub(crate) use index::Headers;
use index::{Lookup, Name};
pub use muninn_model::{SpanId, TraceId};
pub use tracestate::TraceState;

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
    /// W3C Level 2 `random` flag: at least the right-most 7 bytes of the trace id were drawn at
    /// random. Set on the traces this SDK starts, carried over from a W3C parent, `false` for a
    /// B3 one (B3 has no such flag).
    pub random: bool,
    /// Vendor entries from `tracestate` (W3C only; empty for B3).
    pub trace_state: TraceState,
}

impl SpanContext {
    /// A context with an empty `tracestate` and the `random` flag unset.
    pub fn new(trace_id: TraceId, span_id: SpanId, sampled: bool) -> SpanContext {
        SpanContext {
            trace_id,
            span_id,
            sampled,
            random: false,
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

/// What came in with a message, as owned values: [`ExtractedRef`], copied.
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
    /// Why a header that was present got ignored, or a `tracestate` entry dropped (the first
    /// such reason), for counters and logs. Set even when another format supplied the context.
    pub invalid: Option<&'static str>,
}

/// What came in with a message, its event metadata borrowed from the carrier: the fields of
/// [`Extracted`], without copying an event id, type or schema that the caller may only read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractedRef<'a> {
    /// See [`Extracted::context`]. Its `tracestate`, when one came, is the one part copied.
    pub context: Option<SpanContext>,
    pub format: Option<Format>,
    pub sampling_only: Option<bool>,
    pub upstream_sampled: Option<bool>,
    pub event: EventHeadersRef<'a>,
    pub invalid: Option<&'static str>,
}

impl ExtractedRef<'_> {
    /// The same, with the event metadata copied.
    pub fn into_owned(self) -> Extracted {
        Extracted {
            context: self.context,
            format: self.format,
            sampling_only: self.sampling_only,
            upstream_sampled: self.upstream_sampled,
            event: self.event.into_owned(),
            invalid: self.invalid,
        }
    }
}

/// Reads trace context and event metadata from `carrier`, as owned values; see
/// [`extract_ref`].
pub fn extract(carrier: &(impl Extractor + ?Sized)) -> Extracted {
    extract_ref(carrier).into_owned()
}

/// Reads trace context and event metadata from `carrier`, borrowing the event metadata.
///
/// The first valid format wins: a `traceparent` (with its `tracestate`), then `b3`, then the
/// `X-B3-*` headers. Invalid headers are skipped and reported in [`ExtractedRef::invalid`]. A
/// carrier that can list its headers ([`Extractor::for_each_header`]) is read in one pass; any
/// other is asked name by name.
pub fn extract_ref<C: Extractor + ?Sized>(carrier: &C) -> ExtractedRef<'_> {
    Headers::read(carrier, |headers| {
        // The event metadata first, so that the context goes straight into the result; the
        // trace context's reason for ignoring a header still comes first.
        let mut event_invalid = None;
        let event = event::read(headers, &mut event_invalid);
        let mut invalid = None;
        let upstream = headers.trace_context(&mut invalid);
        ExtractedRef {
            context: upstream.context,
            format: upstream.format,
            sampling_only: upstream.sampling_only,
            upstream_sampled: upstream.upstream_sampled,
            event,
            invalid: invalid.or(event_invalid),
        }
    })
}

/// The trace-context part of what came in (see [`Extracted`] for each field).
#[derive(Debug, Default)]
pub(crate) struct Upstream {
    pub context: Option<SpanContext>,
    pub format: Option<Format>,
    pub sampling_only: Option<bool>,
    pub upstream_sampled: Option<bool>,
}

/// What the consume path reads, each part only when it needs it.
impl<'a, C: Extractor + ?Sized> Headers<'a, C> {
    /// The upstream trace context, by precedence: W3C, then B3 single, then B3 multiple.
    ///
    /// Inlined, as is the W3C reading, so that a context goes to its caller in registers: built
    /// field by field in memory and copied whole, it stalled on store forwarding.
    #[inline]
    pub(crate) fn trace_context(&self, invalid: &mut Option<&'static str>) -> Upstream {
        match w3c_context(self, invalid) {
            Some(context) => Upstream {
                upstream_sampled: Some(context.sampled),
                context: Some(context),
                format: Some(Format::W3c),
                sampling_only: None,
            },
            None => b3_context(self, invalid),
        }
    }

    /// The event id: `muninn-event-id`, else a CloudEvents id.
    pub(crate) fn event_id(&self, invalid: &mut Option<&'static str>) -> Option<&'a str> {
        event::event_id(self, invalid)
    }

    /// The event type: `muninn-event-type`, else a CloudEvents type.
    pub(crate) fn event_type(&self, invalid: &mut Option<&'static str>) -> Option<&'a str> {
        event::event_type(self, invalid)
    }

    /// The event schema: `muninn-event-schema`, else a CloudEvents data schema.
    pub(crate) fn schema(&self, invalid: &mut Option<&'static str>) -> Option<&'a str> {
        event::schema(self, invalid)
    }
}

fn note(invalid: &mut Option<&'static str>, reason: &'static str) {
    invalid.get_or_insert(reason);
}

/// The context of a valid `traceparent`, with its `tracestate`.
#[inline]
fn w3c_context<'a>(
    headers: &impl Lookup<'a>,
    invalid: &mut Option<&'static str>,
) -> Option<SpanContext> {
    let found = headers.find(Name::TRACEPARENT);
    let parent = match found.first {
        None => return None,
        Some(_) if found.repeated => {
            note(invalid, "traceparent: more than one header");
            return None;
        }
        Some(value) => match w3c::parse_traceparent(value) {
            Ok(parent) => parent,
            // The `tracestate` is not read without a valid `traceparent`.
            Err(reason) => {
                note(invalid, reason);
                return None;
            }
        },
    };
    let trace_state = match headers.first(Name::TRACESTATE) {
        None => TraceState::default(),
        Some(_) => read_trace_state(headers, invalid),
    };
    Some(SpanContext {
        trace_id: TraceId(parent.trace_id.to_le_bytes()),
        span_id: SpanId(parent.span_id.to_le_bytes()),
        sampled: parent.flags & w3c::FLAG_SAMPLED != 0,
        random: parent.flags & w3c::FLAG_RANDOM != 0,
        trace_state,
    })
}

/// Every `tracestate` value, combined (the rare part of a W3C context, kept out of line).
#[inline(never)]
fn read_trace_state<'a>(
    headers: &impl Lookup<'a>,
    invalid: &mut Option<&'static str>,
) -> TraceState {
    let mut parser = tracestate::Parser::default();
    headers.each(Name::TRACESTATE, &mut |value| parser.push(value));
    let (kept, dropped) = parser.finish();
    if let Some(reason) = dropped {
        note(invalid, reason);
    }
    kept
}

/// B3, single header then multiple headers, when no W3C context came.
#[inline]
fn b3_context<'a>(headers: &impl Lookup<'a>, invalid: &mut Option<&'static str>) -> Upstream {
    if !headers.may_have(&b3::NAMES) {
        return Upstream::default();
    }
    if let Some(value) = headers.first(Name::B3) {
        match b3::parse_single(value) {
            Ok(found) => return from_b3(found, Format::B3Single),
            Err(reason) => note(invalid, reason),
        }
    }
    match b3::parse_multi(headers) {
        Ok(Some(found)) => from_b3(found, Format::B3Multi),
        Ok(None) => Upstream::default(),
        Err(reason) => {
            note(invalid, reason);
            Upstream::default()
        }
    }
}

#[inline]
fn from_b3(found: b3::B3, format: Format) -> Upstream {
    match found {
        b3::B3::Context {
            trace_id,
            span_id,
            sampled,
        } => Upstream {
            context: Some(SpanContext::new(
                trace_id,
                span_id,
                sampled.unwrap_or(false),
            )),
            format: Some(format),
            sampling_only: None,
            upstream_sampled: sampled,
        },
        b3::B3::SamplingOnly(sampled) => Upstream {
            context: None,
            format: Some(format),
            sampling_only: Some(sampled),
            upstream_sampled: Some(sampled),
        },
    }
}

/// A trace id as the 32 lowercase hex digits a `traceparent` carries, on the stack.
pub(crate) fn trace_id_hex(trace_id: &TraceId) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::encode(&trace_id.0, &mut out);
    out
}

/// Writes `context` into `carrier` in each of `formats`.
///
/// W3C writes `traceparent` (version 00, with the `sampled` and `random` flags) and, when
/// there are entries, `tracestate` (truncated to 512 characters, see
/// [`TraceState::header_value`]). B3 writes a 128-bit trace id and an explicit sampling state.
/// Nothing is written for a context with an all-zero id.
pub fn inject(context: &SpanContext, formats: &[Format], carrier: &mut (impl Injector + ?Sized)) {
    if !context.is_valid() {
        return;
    }
    let SpanContext {
        trace_id,
        span_id,
        sampled,
        random,
        trace_state,
    } = context;
    for format in formats {
        match format {
            Format::W3c => {
                let value = w3c::format_traceparent(trace_id, span_id, *sampled, *random);
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
mod tests;
