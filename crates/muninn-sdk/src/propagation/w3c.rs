//! W3C Trace Context: the `traceparent` header (Level 1 parsing rules, including the rules
//! for future versions) and the `tracestate` list (Level 1 key grammar, 32-member limit, and
//! the spec's truncation order when writing).

use std::fmt;

use muninn_model::{SpanId, TraceId};

use super::hex;

/// Length of a version-00 `traceparent` value.
const TRACEPARENT_LEN: usize = 55;
/// Most list-members a `tracestate` may hold.
pub(super) const MAX_MEMBERS: usize = 32;
/// `tracestate` longer than this is truncated on write (W3C: propagate at least 512).
pub(super) const MAX_HEADER_LEN: usize = 512;
/// Members longer than this are the first dropped when truncating.
const LONG_MEMBER_LEN: usize = 128;
/// Longest `tracestate` value.
const MAX_VALUE_LEN: usize = 256;

/// Strips HTTP optional whitespace (spaces and horizontal tabs) from both ends.
pub(super) fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// The ids and sampled flag of a valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TraceParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

/// Parses one `traceparent` value; the error says why it must be ignored.
pub(super) fn parse_traceparent(value: &str) -> Result<TraceParent, &'static str> {
    let text = trim_ows(value).as_bytes();
    let version = match text {
        [high, low, b'-', ..] => hex::decode::<1>(&[*high, *low])
            .ok_or("traceparent: version is not 2 lowercase hex digits followed by '-'")?,
        _ => return Err("traceparent: version is not 2 lowercase hex digits followed by '-'"),
    };
    match version {
        [0xff] => return Err("traceparent: version ff is forbidden"),
        [0x00] if text.len() != TRACEPARENT_LEN => {
            return Err("traceparent: version 00 must be exactly 55 characters");
        }
        _ if text.len() < TRACEPARENT_LEN => {
            return Err("traceparent: shorter than 55 characters");
        }
        // A future version may append fields, each introduced by '-'.
        _ if text.len() > TRACEPARENT_LEN && text.get(TRACEPARENT_LEN) != Some(&b'-') => {
            return Err("traceparent: trace-flags not followed by '-' or the end");
        }
        _ => {}
    }
    if text.get(35) != Some(&b'-') || text.get(52) != Some(&b'-') {
        return Err("traceparent: fields not separated by '-'");
    }
    let trace_id = text
        .get(3..35)
        .and_then(hex::decode::<16>)
        .ok_or("traceparent: trace-id is not 32 lowercase hex digits")?;
    if hex::all_zero(&trace_id) {
        return Err("traceparent: trace-id is all zeros");
    }
    let span_id = text
        .get(36..52)
        .and_then(hex::decode::<8>)
        .ok_or("traceparent: parent-id is not 16 lowercase hex digits")?;
    if hex::all_zero(&span_id) {
        return Err("traceparent: parent-id is all zeros");
    }
    let [flags] = text
        .get(53..55)
        .and_then(hex::decode::<1>)
        .ok_or("traceparent: trace-flags are not 2 lowercase hex digits")?;
    Ok(TraceParent {
        trace_id: TraceId(trace_id),
        span_id: SpanId(span_id),
        sampled: flags & 0x01 == 0x01,
    })
}

/// A version-00 `traceparent` value, written into a stack buffer.
pub(super) fn format_traceparent(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> [u8; 55] {
    let mut out = [b'-'; TRACEPARENT_LEN];
    out[0] = b'0';
    out[1] = b'0';
    hex::encode(&trace_id.0, &mut out[3..35]);
    hex::encode(&span_id.0, &mut out[36..52]);
    out[53] = b'0';
    out[54] = if sampled { b'1' } else { b'0' };
    out
}

/// W3C `tracestate`: an ordered list of vendor `key=value` entries, already validated.
///
/// [`TraceState::parse`] refuses the whole list when any part of it is invalid (as the W3C
/// test suite expects), so a `TraceState` always holds at most 32 valid, distinct entries.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TraceState {
    /// `None` when empty (almost always): a span context then moves as a few words, and
    /// copying one costs no allocation.
    list: Option<Box<Members>>,
}

#[derive(Clone, Default, PartialEq, Eq)]
struct Members {
    /// The members joined by `,`, without optional whitespace or empty members.
    text: String,
    /// Each member's `(start, position of '=', end)` in `text`.
    members: Vec<(usize, usize, usize)>,
}

impl Members {
    fn get(&self, key: &str) -> Option<&str> {
        self.entries()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().filter_map(|(start, equals, end)| {
            Some((
                self.text.get(*start..*equals)?,
                self.text.get(equals + 1..*end)?,
            ))
        })
    }
}

impl TraceState {
    /// Combines one or more `tracestate` header values (in the order received) into one list.
    ///
    /// Optional whitespace around members and empty members are skipped. An invalid member,
    /// a duplicate key or more than 32 members makes the result empty.
    pub fn parse(headers: &[&str]) -> TraceState {
        Self::parse_checked(headers).unwrap_or_default()
    }

    /// Like [`TraceState::parse`], with the reason the list was refused.
    pub(super) fn parse_checked(headers: &[&str]) -> Result<TraceState, &'static str> {
        let mut state = Members::default();
        for member in headers.iter().flat_map(|header| header.split(',')) {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            if state.members.len() == MAX_MEMBERS {
                return Err("tracestate: more than 32 list-members");
            }
            let (key, value) = member
                .split_once('=')
                .ok_or("tracestate: list-member without '='")?;
            if !valid_key(key.as_bytes()) {
                return Err("tracestate: invalid key");
            }
            if !valid_value(value.as_bytes()) {
                return Err("tracestate: invalid value");
            }
            if state.get(key).is_some() {
                return Err("tracestate: duplicate key");
            }
            if !state.text.is_empty() {
                state.text.push(',');
            }
            let start = state.text.len();
            state.text.push_str(member);
            state
                .members
                .push((start, start + key.len(), state.text.len()));
        }
        Ok(TraceState {
            list: (!state.members.is_empty()).then(|| Box::new(state)),
        })
    }

    /// The value to send, or `None` when there are no entries.
    ///
    /// Longer than 512 characters, whole entries are dropped as W3C recommends: first entries
    /// longer than 128 characters (from the end of the list), then entries from the end,
    /// until it fits.
    pub fn header_value(&self) -> Option<String> {
        let list = self.list.as_deref()?;
        if list.text.len() <= MAX_HEADER_LEN && list.members.len() <= MAX_MEMBERS {
            return Some(list.text.clone());
        }
        let mut keep: Vec<bool> = list
            .members
            .iter()
            .enumerate()
            .map(|(index, _)| index < MAX_MEMBERS)
            .collect();
        // Length of the kept members, each counted with one separator.
        let mut with_separators: usize = list
            .members
            .iter()
            .zip(&keep)
            .filter(|(_, kept)| **kept)
            .map(|((start, _, end), _)| end - start + 1)
            .sum();
        for long_first in [true, false] {
            for ((start, _, end), kept) in list.members.iter().zip(keep.iter_mut()).rev() {
                if with_separators <= MAX_HEADER_LEN + 1 {
                    break;
                }
                let len = end - start;
                if *kept && (!long_first || len > LONG_MEMBER_LEN) {
                    *kept = false;
                    with_separators -= len + 1;
                }
            }
        }
        let mut out = String::with_capacity(with_separators);
        for ((start, _, end), kept) in list.members.iter().zip(&keep) {
            if *kept && let Some(member) = list.text.get(*start..*end) {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(member);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.list.as_deref()?.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_none()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.list.as_deref().map_or(0, |list| list.members.len())
    }

    /// The entries in order, as `(key, value)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.list.as_deref().into_iter().flat_map(Members::entries)
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.list.as_deref().map_or("", |list| list.text.as_str());
        write!(formatter, "TraceState({text:?})")
    }
}

/// `lcalpha / DIGIT / "_" / "-" / "*" / "/"`: the characters after a key's first.
fn key_char(byte: u8) -> bool {
    matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// `first` followed by at most `max_rest` key characters.
fn key_part(part: &[u8], first: fn(&u8) -> bool, max_rest: usize) -> bool {
    match part.split_first() {
        Some((head, rest)) => {
            first(head) && rest.len() <= max_rest && rest.iter().all(|byte| key_char(*byte))
        }
        None => false,
    }
}

/// A Level 1 key: `simple-key` (`lcalpha 0*255(key_char)`), or `tenant-id "@" system-id`
/// (`(lcalpha / DIGIT) 0*240(key_char) "@" lcalpha 0*13(key_char)`).
fn valid_key(key: &[u8]) -> bool {
    let lcalpha = u8::is_ascii_lowercase;
    let lcalpha_or_digit = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    match key.iter().position(|byte| *byte == b'@') {
        None => key_part(key, lcalpha, 255),
        Some(at) => {
            let (tenant, system) = key.split_at(at);
            key_part(tenant, lcalpha_or_digit, 240)
                && key_part(system.get(1..).unwrap_or_default(), lcalpha, 13)
        }
    }
}

/// `0*255(chr) nblk-chr`: 1 to 256 printable ASCII characters except `,` and `=`, not ending
/// in a space.
fn valid_value(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_VALUE_LEN
        && value.last() != Some(&b' ')
        && value
            .iter()
            .all(|byte| matches!(byte, 0x20..=0x7e) && *byte != b',' && *byte != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "12345678901234567890123456789012";
    const PARENT: &str = "1234567890123456";

    fn parent(value: &str) -> Result<(String, String, bool), &'static str> {
        parse_traceparent(value).map(|parsed| {
            (
                parsed.trace_id.to_hex(),
                parsed.span_id.to_hex(),
                parsed.sampled,
            )
        })
    }

    fn valid(value: &str) -> bool {
        parse_traceparent(value).is_ok()
    }

    #[test]
    fn traceparent_reads_ids_and_sampled_flag() {
        assert_eq!(
            parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Ok((
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into(),
                true
            ))
        );
        assert_eq!(
            parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").map(|p| p.2),
            Ok(false)
        );
        // Only bit 0 means sampled; other bits are ignored, not refused.
        assert_eq!(
            parent(&format!("00-{TRACE}-{PARENT}-09")).map(|p| p.2),
            Ok(true)
        );
        assert_eq!(
            parent(&format!("00-{TRACE}-{PARENT}-02")).map(|p| p.2),
            Ok(false)
        );
        assert_eq!(
            parent(&format!("00-{TRACE}-{PARENT}-ff")).map(|p| p.2),
            Ok(true)
        );
    }

    #[test]
    fn traceparent_tolerates_surrounding_optional_whitespace() {
        for value in [
            format!(" 00-{TRACE}-{PARENT}-01"),
            format!("\t00-{TRACE}-{PARENT}-01"),
            format!("00-{TRACE}-{PARENT}-01 "),
            format!("00-{TRACE}-{PARENT}-01\t"),
            format!("\t 00-{TRACE}-{PARENT}-01 \t"),
        ] {
            assert_eq!(
                parent(&value).map(|p| p.0),
                Ok(TRACE.to_string()),
                "{value:?}"
            );
        }
        // Other whitespace is not optional whitespace.
        assert!(!valid(&format!("\n00-{TRACE}-{PARENT}-01")));
        assert!(!valid(&format!("00-{TRACE}-{PARENT}-01\r")));
        // Whitespace inside the value is not tolerated.
        assert!(!valid(&format!("00- {TRACE}-{PARENT}-01")));
    }

    #[test]
    fn traceparent_refuses_uppercase_hex_anywhere() {
        assert_eq!(
            parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Err("traceparent: trace-id is not 32 lowercase hex digits")
        );
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"),
            Err("traceparent: parent-id is not 16 lowercase hex digits")
        );
        assert!(!valid(&format!("00-{TRACE}-{PARENT}-0A")));
        assert!(!valid(&format!("CC-{TRACE}-{PARENT}-01")));
    }

    #[test]
    fn traceparent_version_rules() {
        assert_eq!(
            parse_traceparent(&format!("ff-{TRACE}-{PARENT}-01")),
            Err("traceparent: version ff is forbidden")
        );
        for bad in [
            format!(".0-{TRACE}-{PARENT}-01"),
            format!("0.-{TRACE}-{PARENT}-01"),
            format!("0-{TRACE}-{PARENT}-01"),
            format!("000-{TRACE}-{PARENT}-01"),
            format!("0000-{TRACE}-{PARENT}-01"),
            String::new(),
            "0".into(),
            "00".into(),
            "00-".into(),
        ] {
            assert!(!valid(&bad), "{bad:?}");
        }
        // Version 00 is exactly 55 characters: no trailing data, not even a new field.
        assert_eq!(
            parse_traceparent(&format!("00-{TRACE}-{PARENT}-01.")),
            Err("traceparent: version 00 must be exactly 55 characters")
        );
        assert!(!valid(&format!(
            "00-{TRACE}-{PARENT}-01-what-the-future-will-be-like"
        )));
    }

    #[test]
    fn traceparent_future_version_is_read_by_version_00_rules() {
        assert_eq!(
            parent(&format!("cc-{TRACE}-{PARENT}-01")).map(|p| p.0),
            Ok(TRACE.to_string())
        );
        assert_eq!(
            parent(&format!(
                "cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"
            )),
            Ok((TRACE.to_string(), PARENT.to_string(), true))
        );
        assert_eq!(
            parse_traceparent(&format!(
                "cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like"
            )),
            Err("traceparent: trace-flags not followed by '-' or the end")
        );
        assert_eq!(
            parse_traceparent(&format!("cc-{TRACE}-{PARENT}-1")),
            Err("traceparent: shorter than 55 characters")
        );
        // The known fields must still be well-formed.
        assert!(!valid(&format!("01-{TRACE}-{PARENT}-0x-extra")));
        assert!(!valid(&format!("01-{TRACE}1-{PARENT}-01")));
    }

    #[test]
    fn traceparent_field_lengths_characters_and_separators() {
        for bad in [
            format!("00-.2345678901234567890123456789012-{PARENT}-01"),
            format!("00-1234567890123456789012345678901.-{PARENT}-01"),
            format!("00-123456789012345678901234567890123-{PARENT}-01"),
            format!("00-1234567890123456789012345678901-{PARENT}-01"),
            format!("00-{TRACE}-.234567890123456-01"),
            format!("00-{TRACE}-123456789012345.-01"),
            format!("00-{TRACE}-12345678901234567-01"),
            format!("00-{TRACE}-123456789012345-01"),
            format!("00-{TRACE}-{PARENT}-.0"),
            format!("00-{TRACE}-{PARENT}-0."),
            format!("00-{TRACE}-{PARENT}-001"),
            format!("00-{TRACE}-{PARENT}-1"),
            format!("00_{TRACE}-{PARENT}-01"),
            format!("00-{TRACE}_{PARENT}-01"),
            format!("00-{TRACE}-{PARENT}_01"),
            format!("00-{TRACE}-{PARENT}-é"),
        ] {
            assert!(!valid(&bad), "{bad:?}");
        }
    }

    #[test]
    fn traceparent_refuses_all_zero_ids() {
        assert_eq!(
            parse_traceparent(&format!("00-{}-{PARENT}-01", "0".repeat(32))),
            Err("traceparent: trace-id is all zeros")
        );
        assert_eq!(
            parse_traceparent(&format!("00-{TRACE}-{}-01", "0".repeat(16))),
            Err("traceparent: parent-id is all zeros")
        );
    }

    #[test]
    fn traceparent_formats_version_00_lowercase() {
        let trace_id = TraceId([0xab; 16]);
        let span_id = SpanId([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        let text = format_traceparent(&trace_id, &span_id, true);
        assert_eq!(
            std::str::from_utf8(&text),
            Ok("00-abababababababababababababababab-0123456789abcdef-01")
        );
        let text = format_traceparent(&trace_id, &span_id, false);
        assert_eq!(
            std::str::from_utf8(&text),
            Ok("00-abababababababababababababababab-0123456789abcdef-00")
        );
    }

    fn entries(state: &TraceState) -> Vec<(String, String)> {
        state
            .entries()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    fn members(range: std::ops::RangeInclusive<usize>) -> String {
        range
            .map(|index| format!("bar{index:02}={index:02}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn tracestate_combines_headers_in_order_and_skips_whitespace_and_empty_members() {
        let state = TraceState::parse(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]);
        assert_eq!(
            state.header_value().as_deref(),
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3")
        );
        let state = TraceState::parse(&["foo=1 \t , \t bar=2, \t baz=3"]);
        assert_eq!(state.get("foo"), Some("1"));
        assert_eq!(state.get("bar"), Some("2"));
        assert_eq!(state.get("baz"), Some("3"));
        assert_eq!(state.header_value().as_deref(), Some("foo=1,bar=2,baz=3"));
        for value in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
            assert_eq!(
                TraceState::parse(&[value]).get("foo"),
                Some("1"),
                "{value:?}"
            );
        }
        let state = TraceState::parse(&["", "foo=1,, ,\t,", " "]);
        assert_eq!(entries(&state), vec![("foo".into(), "1".into())]);
        assert!(TraceState::parse(&[""]).is_empty());
        assert_eq!(TraceState::parse(&[""]).header_value(), None);
        assert!(TraceState::parse(&[]).is_empty());
    }

    #[test]
    fn tracestate_keeps_leading_spaces_of_values() {
        let state = TraceState::parse(&["foo= bar baz "]);
        assert_eq!(state.get("foo"), Some(" bar baz"));
    }

    #[test]
    fn tracestate_member_limit_is_32() {
        // Split across headers like the W3C test suite does.
        let (first, second, third) = (members(1..=10), members(11..=20), members(21..=30));
        let state = TraceState::parse(&[&first, &second, &third, &members(31..=32)]);
        assert_eq!(state.len(), 32);
        assert_eq!(state.get("bar01"), Some("01"));
        assert_eq!(state.get("bar32"), Some("32"));
        assert_eq!(
            TraceState::parse_checked(&[&first, &second, &third, &members(31..=33)]),
            Err("tracestate: more than 32 list-members")
        );
        assert!(TraceState::parse(&[&members(1..=33)]).is_empty());
        // Empty members do not count toward the limit.
        let padded = format!(",,{},,,,", members(1..=32));
        assert_eq!(TraceState::parse(&[&padded]).len(), 32);
    }

    #[test]
    fn tracestate_duplicate_keys_discard_everything() {
        for headers in [
            vec!["foo=1,foo=1"],
            vec!["foo=1,foo=2"],
            vec!["foo=1", "foo=1"],
            vec!["foo=1", "foo=2"],
            vec!["foo=1,bar=2", "baz=3,bar=4"],
        ] {
            assert_eq!(
                TraceState::parse_checked(&headers),
                Err("tracestate: duplicate key"),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn tracestate_key_grammar() {
        let simple = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let tenant = format!("{simple}@a-z0-9_-*/");
        let value: String = (0x20u8..=0x7e)
            .filter(|byte| *byte != b',' && *byte != b'=')
            .map(char::from)
            .collect();
        let state = TraceState::parse(&[&format!("{simple}={value}")]);
        assert_eq!(state.get(simple), Some(value.as_str()));
        let state = TraceState::parse(&[&format!("{tenant}={value}")]);
        assert_eq!(state.get(&tenant), Some(value.as_str()));

        for good in [
            "z".repeat(256),
            format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            "0tenant@vendor".into(),
            "a@b".into(),
        ] {
            assert_eq!(
                TraceState::parse(&["foo=1", &format!("{good}=1")]).len(),
                2,
                "{good}"
            );
        }
        for bad in [
            "z".repeat(257),
            format!("{}@v", "t".repeat(242)),
            format!("t@{}", "v".repeat(15)),
            "foo ".into(),
            "FOO".into(),
            "foo.bar".into(),
            "0foo".into(),
            "_foo".into(),
            String::new(),
            "foo@".into(),
            "@foo".into(),
            "foo@@bar".into(),
            "foo@bar@baz".into(),
            "foo@0bar".into(),
            "foo@Bar".into(),
            "_t@vendor".into(),
            "fóo".into(),
        ] {
            assert_eq!(
                TraceState::parse_checked(&["bar=2", &format!("{bad}=1")]),
                Err("tracestate: invalid key"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tracestate_value_grammar() {
        assert_eq!(
            TraceState::parse(&[&format!("foo={}", "v".repeat(256))]).len(),
            1
        );
        for bad in [
            "foo=bar=baz".to_string(),
            "foo=,bar=3".into(),
            "foo=".into(),
            format!("foo={}", "v".repeat(257)),
            "foo=a\u{7f}b".into(),
            "foo=tab\tinside".into(),
            "foo=é".into(),
            "foo=a\nb".into(),
        ] {
            assert_eq!(
                TraceState::parse_checked(&[&bad]),
                Err("tracestate: invalid value"),
                "{bad:?}"
            );
        }
        assert_eq!(
            TraceState::parse_checked(&["foo"]),
            Err("tracestate: list-member without '='")
        );
    }

    #[test]
    fn tracestate_up_to_512_characters_is_written_unchanged() {
        // 32 members of 15 characters plus 31 commas = 511 characters.
        let value: Vec<String> = (0..32)
            .map(|index| format!("k{index:02}={}", "v".repeat(11)))
            .collect();
        let value = value.join(",");
        assert_eq!(value.len(), 511);
        assert_eq!(
            TraceState::parse(&[&value]).header_value().as_deref(),
            Some(value.as_str())
        );
    }

    #[test]
    fn tracestate_over_512_characters_drops_long_entries_first() {
        // a (short), b (200 chars), c (short), d (200 chars), e (150 chars): 578 characters.
        let long_b = format!("b={}", "x".repeat(198));
        let long_d = format!("d={}", "y".repeat(198));
        let long_e = format!("e={}", "z".repeat(148));
        let value = format!("a=1,{long_b},c=3,{long_d},{long_e}");
        assert!(value.len() > 512);
        let state = TraceState::parse(&[&value]);
        // Dropping the last long entry (e) is enough: 427 characters remain.
        assert_eq!(
            state.header_value(),
            Some(format!("a=1,{long_b},c=3,{long_d}"))
        );

        // When long entries are not enough, short entries go from the end.
        let members: Vec<String> = (0..31)
            .map(|index| format!("k{index:02}={}", "v".repeat(16)))
            .collect();
        let value = format!("big={},{}", "x".repeat(200), members.join(","));
        let state = TraceState::parse(&[&value]);
        assert_eq!(state.len(), 32);
        let written = state.header_value().unwrap_or_default();
        assert!(written.len() <= 512, "{}", written.len());
        assert!(!written.contains("big="));
        assert!(written.starts_with("k00="));
        // 20-character members plus commas: 24 fit in 512.
        assert_eq!(written.split(',').count(), 24);
        assert!(written.ends_with(&members[23]));
    }

    #[test]
    fn tracestate_of_one_oversized_member_is_not_written() {
        let value = format!("{}={}", "k".repeat(256), "v".repeat(256));
        let state = TraceState::parse(&[&value]);
        assert_eq!(state.len(), 1);
        assert_eq!(state.header_value(), None);
    }
}
