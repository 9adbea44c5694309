//! W3C Trace Context Level 2, the `tracestate` header: the list of vendor entries, read by
//! the Level 2 rules (invalid or repeated entries are dropped, the valid ones kept, at most
//! 32), and written back with the spec's truncation order.

use std::fmt;
use std::sync::Arc;

use super::w3c::trim_ows;

/// Most list-members a `tracestate` may hold.
pub(super) const MAX_MEMBERS: usize = 32;
/// `tracestate` longer than this is truncated on write (W3C: propagate at least 512).
pub(super) const MAX_HEADER_LEN: usize = 512;
/// Members longer than this are the first dropped when truncating.
const LONG_MEMBER_LEN: usize = 128;
/// Longest key and longest value.
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;

/// W3C `tracestate`: an ordered list of vendor `key=value` entries, each valid, each key once,
/// at most 32.
///
/// Cloning one shares its text: a span that continues a trace copies no entries.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TraceState {
    /// The entries joined by `,`, without optional whitespace; `None` when empty (almost
    /// always), so that a span context moves as a few words.
    list: Option<Arc<String>>,
}

impl TraceState {
    /// Combines one or more `tracestate` header values (in the order received) into one list,
    /// by the Level 2 rules: optional whitespace around members and empty members are
    /// skipped; a member that is invalid, or whose key came earlier in the list, is dropped;
    /// the first 32 members left are kept.
    pub fn parse(headers: &[&str]) -> TraceState {
        let mut parser = Parser::default();
        for header in headers {
            parser.push(header);
        }
        parser.finish().0
    }

    /// The value to send, or `None` when there are no entries.
    ///
    /// Longer than 512 characters, whole entries are dropped as W3C recommends: first entries
    /// longer than 128 characters (from the end of the list), then entries from the end,
    /// until it fits.
    pub fn header_value(&self) -> Option<String> {
        let text = self.list.as_deref()?;
        if text.len() <= MAX_HEADER_LEN {
            return Some(text.clone());
        }
        let members: Vec<&str> = text.split(',').collect();
        let mut keep = vec![true; members.len()];
        // Length of the kept members, each counted with one separator.
        let mut with_separators: usize = members.iter().map(|member| member.len() + 1).sum();
        for long_first in [true, false] {
            for (member, kept) in members.iter().zip(keep.iter_mut()).rev() {
                if with_separators <= MAX_HEADER_LEN + 1 {
                    break;
                }
                if *kept && (!long_first || member.len() > LONG_MEMBER_LEN) {
                    *kept = false;
                    with_separators -= member.len() + 1;
                }
            }
        }
        let kept: Vec<&str> = members
            .iter()
            .zip(&keep)
            .filter_map(|(member, kept)| kept.then_some(*member))
            .collect();
        (!kept.is_empty()).then(|| kept.join(","))
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_none()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.list.as_deref().map_or(0, |text| {
            text.bytes().filter(|byte| *byte == b',').count() + 1
        })
    }

    /// The entries in order, as `(key, value)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.list
            .as_deref()
            .into_iter()
            .flat_map(|text| text.split(','))
            .filter_map(|member| member.split_once('='))
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.list.as_deref().map_or("", String::as_str);
        write!(formatter, "TraceState({text:?})")
    }
}

/// Reads `tracestate` header values one after the other, keeping the members to propagate
/// (borrowed until [`Parser::finish`] copies them, once) and the first reason one was dropped.
pub(super) struct Parser<'a> {
    kept: [&'a str; MAX_MEMBERS],
    n_kept: usize,
    dropped: Option<&'static str>,
}

impl Default for Parser<'_> {
    fn default() -> Self {
        Parser {
            kept: [""; MAX_MEMBERS],
            n_kept: 0,
            dropped: None,
        }
    }
}

impl<'a> Parser<'a> {
    /// Adds the members of one header value, in order.
    pub(super) fn push(&mut self, header: &'a str) {
        for member in header.split(',') {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            if let Err(reason) = self.keep(member) {
                self.dropped.get_or_insert(reason);
            }
        }
    }

    fn keep(&mut self, member: &'a str) -> Result<(), &'static str> {
        let (key, value) = member
            .split_once('=')
            .ok_or("tracestate: list-member without '='")?;
        if !valid_key(key.as_bytes()) {
            return Err("tracestate: invalid key");
        }
        if !valid_value(value.as_bytes()) {
            return Err("tracestate: invalid value");
        }
        let kept = &self.kept[..self.n_kept];
        // `key=` is a prefix of a kept member exactly when that member has this key.
        if kept.iter().any(|other| {
            other.len() > key.len() && other.as_bytes()[key.len()] == b'=' && other.starts_with(key)
        }) {
            return Err("tracestate: duplicate key");
        }
        let slot = self
            .kept
            .get_mut(self.n_kept)
            .ok_or("tracestate: more than 32 list-members")?;
        *slot = member;
        self.n_kept += 1;
        Ok(())
    }

    /// The list kept, and why a member was dropped (the first reason), if one was.
    pub(super) fn finish(self) -> (TraceState, Option<&'static str>) {
        let kept = &self.kept[..self.n_kept];
        let list = (!kept.is_empty()).then(|| {
            let len = kept.iter().map(|member| member.len() + 1).sum::<usize>() - 1;
            let mut text = String::with_capacity(len);
            for member in kept {
                if !text.is_empty() {
                    text.push(',');
                }
                text.push_str(member);
            }
            Arc::new(text)
        });
        (TraceState { list }, self.dropped)
    }
}

/// A Level 2 key: `(lcalpha / DIGIT) 0*255(keychar)`, where `keychar` is `lcalpha / DIGIT /
/// "_" / "-" / "*" / "/" / "@"`. (Level 1's `tenant@system` form is one case of it.)
fn valid_key(key: &[u8]) -> bool {
    match key.split_first() {
        Some((first, rest)) => matches!(first, b'a'..=b'z' | b'0'..=b'9')
            && key.len() <= MAX_KEY_LEN
            && rest.iter().all(
                |byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'),
            ),
        None => false,
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

    fn parse_checked(headers: &[&str]) -> (TraceState, Option<&'static str>) {
        let mut parser = Parser::default();
        for header in headers {
            parser.push(header);
        }
        parser.finish()
    }

    #[test]
    fn the_first_reason_a_member_was_dropped_is_kept() {
        assert_eq!(
            parse_checked(&["a=1,B=2,c", "a=3"]),
            (TraceState::parse(&["a=1"]), Some("tracestate: invalid key"))
        );
        assert_eq!(parse_checked(&["a=1 , b=2"]).1, None);
    }

    #[test]
    fn up_to_512_characters_is_written_unchanged() {
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
    fn over_512_characters_drops_long_entries_first() {
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
    fn one_oversized_member_is_not_written() {
        let value = format!("{}={}", "k".repeat(256), "v".repeat(256));
        let state = TraceState::parse(&[&value]);
        assert_eq!(state.len(), 1);
        assert_eq!(state.header_value(), None);
    }
}
