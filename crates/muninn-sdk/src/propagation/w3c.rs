//! W3C Trace Context Level 2, the `traceparent` header: its parsing rules (including those
//! for versions after 00), its two known flags (`sampled` and `random`), and writing it as
//! version 00. The `tracestate` list is in `tracestate.rs`.

use muninn_model::{SpanId, TraceId};

use super::hex;

/// Length of a version-00 `traceparent` value, and of the part of a later version read.
const TRACEPARENT_LEN: usize = 55;
/// `trace-flags` bit 0: the caller may have recorded trace data.
pub(super) const FLAG_SAMPLED: u8 = 0x01;
/// `trace-flags` bit 1 (Level 2): at least the right-most 7 bytes of the trace id are random.
pub(super) const FLAG_RANDOM: u8 = 0x02;

/// Strips HTTP optional whitespace (spaces and horizontal tabs) from both ends.
#[inline]
pub(super) fn trim_ows(text: &str) -> &str {
    let ows = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let bytes = text.as_bytes();
    if !bytes.first().is_some_and(ows) && !bytes.last().is_some_and(ows) {
        return text;
    }
    let start = bytes
        .iter()
        .position(|byte| !ows(byte))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|byte| !ows(byte))
        .map_or(start, |last| last + 1);
    // Both ends are ASCII bytes, so both are character boundaries.
    text.get(start..end).unwrap_or_default()
}

/// The ids and flags of a valid `traceparent`. The ids are the little-endian integers whose
/// `to_le_bytes` they are: integers stay in registers where byte arrays went through memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    /// Only [`FLAG_SAMPLED`] and [`FLAG_RANDOM`] are read; the others are reserved.
    pub flags: u8,
}

const BAD_VERSION: &str = "traceparent: version is not 2 lowercase hex digits followed by '-'";

/// Parses one `traceparent` value; the error says why it must be ignored.
///
/// Flags other than `sampled` and `random` are ignored (Level 2 reserves them), and are not
/// written again: a vendor sends only the flags it knows for the version it writes. Inlined,
/// so that the ids go to the context in registers rather than through a stored result.
#[inline]
pub(super) fn parse_traceparent(value: &str) -> Result<TraceParent, &'static str> {
    let text = trim_ows(value).as_bytes();
    let Some(head) = text.get(..TRACEPARENT_LEN) else {
        // Too short for any version: say what is wrong with what is there.
        return Err(match text {
            [high, low, b'-', ..] if hex::decode_byte(&[*high, *low]).is_some() => {
                if text.starts_with(b"ff-") {
                    "traceparent: version ff is forbidden"
                } else if text.starts_with(b"00-") {
                    "traceparent: version 00 must be exactly 55 characters"
                } else {
                    "traceparent: shorter than 55 characters"
                }
            }
            _ => BAD_VERSION,
        });
    };
    // version "-" trace-id "-" parent-id "-" trace-flags, at fixed places.
    let version = match hex::decode_byte(&head[..2]) {
        Some(version) if head[2] == b'-' => version,
        _ => return Err(BAD_VERSION),
    };
    match version {
        0xff => return Err("traceparent: version ff is forbidden"),
        0x00 if text.len() != TRACEPARENT_LEN => {
            return Err("traceparent: version 00 must be exactly 55 characters");
        }
        // A later version may append fields, each introduced by '-'.
        _ if text.get(TRACEPARENT_LEN).is_some_and(|next| *next != b'-') => {
            return Err("traceparent: trace-flags not followed by '-' or the end");
        }
        _ => {}
    }
    if head[35] != b'-' || head[52] != b'-' {
        return Err("traceparent: fields not separated by '-'");
    }
    let trace_id = hex::decode_u128(&head[3..35])
        .ok_or("traceparent: trace-id is not 32 lowercase hex digits")?;
    let span_id = hex::decode_u64(&head[36..52])
        .ok_or("traceparent: parent-id is not 16 lowercase hex digits")?;
    let flags = hex::decode_byte(&head[53..55])
        .ok_or("traceparent: trace-flags are not 2 lowercase hex digits")?;
    if trace_id == 0 {
        return Err("traceparent: trace-id is all zeros");
    }
    if span_id == 0 {
        return Err("traceparent: parent-id is all zeros");
    }
    Ok(TraceParent {
        trace_id,
        span_id,
        flags,
    })
}

/// A version-00 `traceparent` value with the `sampled` and `random` flags, written into a
/// stack buffer.
pub(super) fn format_traceparent(
    trace_id: &TraceId,
    span_id: &SpanId,
    sampled: bool,
    random: bool,
) -> [u8; TRACEPARENT_LEN] {
    let mut out = [b'-'; TRACEPARENT_LEN];
    out[0] = b'0';
    out[1] = b'0';
    hex::encode(&trace_id.0, &mut out[3..35]);
    hex::encode(&span_id.0, &mut out[36..52]);
    out[53] = b'0';
    out[54] = b'0' + u8::from(sampled) * FLAG_SAMPLED + u8::from(random) * FLAG_RANDOM;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_formats_version_00_lowercase_with_known_flags() {
        let trace_id = TraceId([0xab; 16]);
        let span_id = SpanId([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        for (sampled, random, flags) in [
            (false, false, "00"),
            (true, false, "01"),
            (false, true, "02"),
            (true, true, "03"),
        ] {
            let text = format_traceparent(&trace_id, &span_id, sampled, random);
            assert_eq!(
                std::str::from_utf8(&text),
                Ok(
                    format!("00-abababababababababababababababab-0123456789abcdef-{flags}")
                        .as_str()
                )
            );
            let parsed = std::str::from_utf8(&text).map(parse_traceparent);
            assert_eq!(
                parsed,
                Ok(Ok(TraceParent {
                    trace_id: u128::from_le_bytes(trace_id.0),
                    span_id: u64::from_le_bytes(span_id.0),
                    flags: u8::from(sampled) | (u8::from(random) << 1),
                }))
            );
        }
    }

    #[test]
    fn the_reason_names_the_first_rule_broken() {
        const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
        const PARENT: &str = "00f067aa0ba902b7";
        for (value, reason) in [
            (String::new(), BAD_VERSION),
            ("0".into(), BAD_VERSION),
            ("00".into(), BAD_VERSION),
            ("0g-".into(), BAD_VERSION),
            (
                "00-".into(),
                "traceparent: version 00 must be exactly 55 characters",
            ),
            ("ff-".into(), "traceparent: version ff is forbidden"),
            ("cc-".into(), "traceparent: shorter than 55 characters"),
            (
                format!("00-{TRACE}-{PARENT}-01-"),
                "traceparent: version 00 must be exactly 55 characters",
            ),
            (
                format!("cc-{TRACE}-{PARENT}-01x"),
                "traceparent: trace-flags not followed by '-' or the end",
            ),
            (
                format!("00-{TRACE}_{PARENT}-01"),
                "traceparent: fields not separated by '-'",
            ),
            (
                format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
                "traceparent: trace-id is not 32 lowercase hex digits",
            ),
            (
                format!("00-{TRACE}-{}-01", PARENT.to_uppercase()),
                "traceparent: parent-id is not 16 lowercase hex digits",
            ),
            (
                format!("00-{TRACE}-{PARENT}-0A"),
                "traceparent: trace-flags are not 2 lowercase hex digits",
            ),
            (
                format!("00-{}-{PARENT}-01", "0".repeat(32)),
                "traceparent: trace-id is all zeros",
            ),
            (
                format!("00-{TRACE}-{}-01", "0".repeat(16)),
                "traceparent: parent-id is all zeros",
            ),
        ] {
            assert_eq!(parse_traceparent(&value), Err(reason), "{value:?}");
        }
    }
}
