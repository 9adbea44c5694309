//! Where extraction looks its header names up: the headers it reads, found in one pass over a
//! carrier that can list its headers, or the carrier itself, name by name, when it cannot.

use super::carrier::Extractor;

/// Every header name extraction reads, in lowercase; a [`Name`] is a position here.
pub(super) const KNOWN: [&str; N_NAMES] = [
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "muninn-event-id",
    "ce_id",
    "ce-id",
    "muninn-event-type",
    "ce_type",
    "ce-type",
    "muninn-event-schema",
    "ce_dataschema",
    "ce-dataschema",
];
const N_NAMES: usize = 17;

/// A header name extraction reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Name(u8);

impl Name {
    pub(super) const TRACEPARENT: Name = Name(0);
    pub(super) const TRACESTATE: Name = Name(1);
    pub(super) const B3: Name = Name(2);
    pub(super) const B3_TRACE_ID: Name = Name(3);
    pub(super) const B3_SPAN_ID: Name = Name(4);
    pub(super) const B3_PARENT_SPAN_ID: Name = Name(5);
    pub(super) const B3_SAMPLED: Name = Name(6);
    pub(super) const B3_FLAGS: Name = Name(7);
    pub(super) const EVENT_ID: Name = Name(8);
    pub(super) const CE_ID_KAFKA: Name = Name(9);
    pub(super) const CE_ID: Name = Name(10);
    pub(super) const EVENT_TYPE: Name = Name(11);
    pub(super) const CE_TYPE_KAFKA: Name = Name(12);
    pub(super) const CE_TYPE: Name = Name(13);
    pub(super) const EVENT_SCHEMA: Name = Name(14);
    pub(super) const CE_DATASCHEMA_KAFKA: Name = Name(15);
    pub(super) const CE_DATASCHEMA: Name = Name(16);

    pub(super) fn as_str(self) -> &'static str {
        KNOWN[self.index()]
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The name `header` is (ASCII case ignored), if extraction reads it. Called for every
    /// header of every consumed message: the length picks the one or two names it can be, and
    /// the header is compared with them a word at a time (lowercased first, eight bytes at a
    /// time, when it does not match as it is).
    #[inline]
    fn of(header: &str) -> Option<Name> {
        let bytes = header.as_bytes();
        let places = BY_LENGTH.get(bytes.len())?;
        if places[0].0 == NONE {
            return None;
        }
        let find = |[a, b, c]: Fingerprint| {
            // Word by word: comparing the arrays whole would load them back from the stack
            // with one wide load over three narrow stores, a store-forwarding stall.
            places.iter().find_map(|(id, [x, y, z])| {
                (*id != NONE && ((a ^ x) | (b ^ y) | (c ^ z)) == 0).then_some(Name(*id))
            })
        };
        // The lowercase spelling every Muninn SDK writes matches as it is.
        find(fingerprint(bytes, false)).or_else(|| find(fingerprint(bytes, true)))
    }
}

/// No name: a free place in [`BY_LENGTH`].
const NONE: u8 = u8::MAX;

/// For each length, the names of that length (their position in [`KNOWN`], or [`NONE`]) with
/// their fingerprints: one load from a header's length to what to compare it with. (A `match`
/// on the length cost an indirect branch per header, a table of positions a chain of loads.)
const BY_LENGTH: [[(u8, Fingerprint); 2]; 20] = {
    let mut table = [[(NONE, [u64::MAX; 3]); 2]; 20];
    let mut id = 0;
    while id < N_NAMES {
        let name = KNOWN[id].as_bytes();
        let place = if table[name.len()][0].0 == NONE { 0 } else { 1 };
        table[name.len()][place] = (id as u8, const_fingerprint(name));
        id += 1;
    }
    table
};

/// A known name's length and lowercase bytes as three words: for 8 bytes or more, the first
/// eight, the last eight and the eight from the ninth (or the first again), which overlap to
/// cover up to 24 bytes; for fewer, the bytes themselves.
type Fingerprint = [u64; 3];

/// [`fingerprint`] of a lowercase name, at compile time.
const fn const_fingerprint(name: &[u8]) -> Fingerprint {
    const fn word(name: &[u8], at: usize, len: usize) -> u64 {
        let mut word = 0u64;
        let mut index = 0;
        while index < len {
            word |= (name[at + index] as u64) << (8 * index);
            index += 1;
        }
        word
    }
    let len = name.len();
    if len < 8 {
        return [word(name, 0, len), 0, 0];
    }
    let middle = if len >= 16 { 8 } else { 0 };
    [
        word(name, 0, 8),
        word(name, len - 8, 8),
        word(name, middle, 8),
    ]
}

/// The fingerprint of `header`, or of `header` lowercased (ASCII, without a branch per byte).
#[inline]
fn fingerprint(header: &[u8], lowercase: bool) -> Fingerprint {
    const fn splat(byte: u8) -> u64 {
        u64::from_ne_bytes([byte; 8])
    }
    let len = header.len();
    if len < 8 {
        let mut word = 0u64;
        for (index, byte) in header.iter().enumerate() {
            let byte = if lowercase {
                byte.to_ascii_lowercase()
            } else {
                *byte
            };
            word |= u64::from(byte) << (8 * index);
        }
        return [word, 0, 0];
    }
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        let word = u64::from_le_bytes(bytes);
        if !lowercase {
            return word;
        }
        // 'A'..='Z' gain 0x20 (see `hex::in_range`: a byte's top bit marks it in range).
        // A byte of 0x80 or more may disturb its neighbour, but never matches a known name.
        let not_above = !word.wrapping_add(splat(0x7f - b'Z'));
        let not_below = word.wrapping_add(splat(0x80 - b'A'));
        let upper = not_above & not_below & !word & splat(0x80);
        word | (upper >> 2)
    };
    let middle = if len >= 16 { 8 } else { 0 };
    [word(0), word(len - 8), word(middle)]
}

/// What came under one name: its first value, and whether others followed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Found<'a> {
    pub first: Option<&'a str>,
    /// More than one value came.
    pub repeated: bool,
    /// A later value differs from the first.
    pub differing: bool,
}

impl<'a> Found<'a> {
    fn add(&mut self, value: &'a str) {
        match self.first {
            None => self.first = Some(value),
            Some(first) => {
                self.repeated = true;
                self.differing |= first != value;
            }
        }
    }
}

/// Values under a header name; they borrow from the carrier (`'a`), not from the lookup.
pub(super) trait Lookup<'a> {
    /// The first value under `name` (compared case-insensitively), and whether more came.
    fn find(&self, name: Name) -> Found<'a>;

    /// The first value under `name`.
    fn first(&self, name: Name) -> Option<&'a str> {
        self.find(name).first
    }

    /// Calls `visit` with every value under `name`, in carrier order.
    fn each(&self, name: Name, visit: &mut dyn FnMut(&'a str));

    /// Whether any of `names` may have come: `false` only when none did, which saves looking
    /// each of them up.
    fn may_have(&self, names: &[Name]) -> bool;
}

/// The headers of one message that extraction reads.
///
/// A carrier that lists its headers is read once, and each name's first value is kept in a
/// slot of its own, so that every later lookup is one load (names that repeat, which are rare,
/// are read again from the carrier when all their values are needed). A carrier that cannot
/// list its headers is asked name by name.
pub(crate) struct Headers<'a, C: ?Sized> {
    carrier: &'a C,
    /// Whether the carrier listed its headers into the slots below.
    listed: bool,
    first: [Option<&'a str>; N_NAMES],
    /// One bit per name: a value came.
    present: u32,
    /// One bit per name: more than one value came.
    repeated: u32,
    /// One bit per name: a later value differs from the first.
    differing: u32,
}

impl<'a, C: Extractor + ?Sized> Headers<'a, C> {
    /// Reads the carrier's headers (if it can list them) and hands them to `then`. The slots
    /// stay where they were filled: returning them cost a copy as long as the filling.
    #[inline(always)]
    pub(crate) fn read<R>(carrier: &'a C, then: impl FnOnce(&Self) -> R) -> R {
        let mut headers = Headers {
            carrier,
            listed: false,
            first: [None; N_NAMES],
            present: 0,
            repeated: 0,
            differing: 0,
        };
        headers.fill();
        then(&headers)
    }

    fn fill(&mut self) {
        let (first, present, repeated, differing) = (
            &mut self.first,
            &mut self.present,
            &mut self.repeated,
            &mut self.differing,
        );
        self.listed = self.carrier.for_each_header(&mut |header, value| {
            let Some(name) = Name::of(header) else {
                return;
            };
            let slot = &mut first[name.index()];
            match slot {
                None => {
                    *slot = Some(value);
                    *present |= 1 << name.0;
                }
                Some(seen) => {
                    *repeated |= 1 << name.0;
                    if *seen != value {
                        *differing |= 1 << name.0;
                    }
                }
            }
        });
    }
}

impl<'a, C: Extractor + ?Sized> Lookup<'a> for Headers<'a, C> {
    #[inline]
    fn find(&self, name: Name) -> Found<'a> {
        if self.listed {
            return Found {
                first: self.first[name.index()],
                repeated: self.repeated & (1 << name.0) != 0,
                differing: self.differing & (1 << name.0) != 0,
            };
        }
        let mut found = Found::default();
        self.carrier
            .for_each_value(name.as_str(), &mut |value| found.add(value));
        found
    }

    #[inline]
    fn first(&self, name: Name) -> Option<&'a str> {
        if self.listed {
            self.first[name.index()]
        } else {
            self.carrier.get(name.as_str())
        }
    }

    #[inline]
    fn may_have(&self, names: &[Name]) -> bool {
        !self.listed || names.iter().any(|name| self.present & (1 << name.0) != 0)
    }

    fn each(&self, name: Name, visit: &mut dyn FnMut(&'a str)) {
        if self.listed && self.repeated & (1 << name.0) == 0 {
            if let Some(value) = self.first[name.index()] {
                visit(value);
            }
        } else {
            self.carrier.for_each_value(name.as_str(), visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::carrier::headers;
    use super::*;

    fn values<'a>(lookup: &impl Lookup<'a>, name: Name) -> Vec<&'a str> {
        let mut values = Vec::new();
        lookup.each(name, &mut |value| values.push(value));
        values
    }

    fn every_name() -> impl Iterator<Item = Name> {
        (0..KNOWN.len() as u8).map(Name)
    }

    /// A carrier that can only look names up, as a user's own may.
    struct LookupsOnly<'a>(&'a [(String, String)]);

    impl Extractor for LookupsOnly<'_> {
        fn get_all(&self, key: &str) -> Vec<&str> {
            self.0.get_all(key)
        }
    }

    #[test]
    fn every_known_name_and_only_those_is_found_in_any_case() {
        for name in every_name() {
            let text = name.as_str();
            assert_eq!(Name::of(text), Some(name), "{text}");
            assert_eq!(Name::of(&text.to_uppercase()), Some(name), "{text}");
            let mixed: String = text
                .chars()
                .enumerate()
                .map(|(at, c)| {
                    if at % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            assert_eq!(Name::of(&mixed), Some(name), "{mixed}");
        }
        for other in [
            "",
            "b",
            "b4",
            "ce_ix",
            "traceparenx",
            "muninn-event-ids",
            "MUNINN-EVENT-SCHEMAS",
            "x-b3-flag",
            "traceparent\u{0}",
        ] {
            assert_eq!(Name::of(other), None, "{other}");
        }
        assert_eq!(Name::EVENT_SCHEMA.as_str(), "muninn-event-schema");
        assert_eq!(Name::CE_DATASCHEMA_KAFKA.as_str(), "ce_dataschema");
        // The fingerprint covers every byte of every name, and each name has its place.
        assert!(KNOWN.iter().all(|name| name.len() <= 24));
        for name in every_name() {
            let places = &BY_LENGTH[name.as_str().len()];
            assert!(places.iter().any(|(id, _)| *id == name.0), "{name:?}");
        }
        let places = BY_LENGTH.iter().flatten().filter(|(id, _)| *id != NONE);
        assert_eq!(places.count(), KNOWN.len());
    }

    #[test]
    fn a_listed_carrier_answers_as_one_asked_name_by_name() {
        let carrier = headers(&[
            ("TraceState", "a=1"),
            ("other", "x"),
            ("traceparent", "00-x"),
            ("TRACESTATE", "b=2"),
            ("Muninn-Event-Id", "e-1"),
            ("muninn-event-id", "e-1"),
            ("ce_id", "c-1"),
            ("CE_ID", "c-2"),
        ]);
        let lookups_only = LookupsOnly(&carrier);
        Headers::read(&carrier, |listed| {
            Headers::read(&lookups_only, |asked| same_answers(listed, asked))
        });
    }

    fn same_answers<A: Extractor + ?Sized, B: Extractor + ?Sized>(
        listed: &Headers<'_, A>,
        asked: &Headers<'_, B>,
    ) {
        assert!(listed.listed && !asked.listed);
        for name in every_name() {
            assert_eq!(values(listed, name), values(asked, name), "{name:?}");
            assert_eq!(listed.find(name), asked.find(name), "{name:?}");
            assert_eq!(listed.first(name), asked.first(name), "{name:?}");
        }
        assert_eq!(values(listed, Name::TRACESTATE), ["a=1", "b=2"]);
        let found = |name| listed.find(name);
        assert_eq!(
            found(Name::EVENT_ID),
            Found {
                first: Some("e-1"),
                repeated: true,
                differing: false
            }
        );
        assert_eq!(
            found(Name::CE_ID_KAFKA),
            Found {
                first: Some("c-1"),
                repeated: true,
                differing: true
            }
        );
        assert_eq!(found(Name::B3), Found::default());
        assert!(listed.may_have(&[Name::B3, Name::EVENT_ID]));
        assert!(!listed.may_have(&[Name::B3, Name::CE_ID]));
        assert!(
            asked.may_have(&[Name::B3]),
            "a carrier asked by name may have anything"
        );
    }
}
