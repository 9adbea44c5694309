//! Where extraction looks its header names up: the carrier itself, name by name, or the few
//! headers it reads, found in one pass over a carrier that can list its headers.

use super::carrier::Extractor;

/// Every header name extraction reads, in lowercase; a [`Name`] is a position here.
pub(super) const KNOWN: [&str; 17] = [
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
        KNOWN[usize::from(self.0)]
    }

    /// The name `header` is (ASCII case ignored), if extraction reads it. Called for every
    /// header of every consumed message: the length picks the one or two names it can be, and
    /// the lowercase spelling every Muninn SDK writes compares as plain bytes.
    fn of(header: &str) -> Option<Name> {
        let candidates: &[u8] = match header.len() {
            2 => &[2],
            5 => &[9, 10],
            7 => &[12, 13],
            10 => &[1, 7],
            11 => &[0, 4],
            12 => &[3, 6],
            13 => &[15, 16],
            15 => &[8],
            17 => &[11, 5],
            19 => &[14],
            _ => &[],
        };
        let exact = |id: &&u8| KNOWN[usize::from(**id)] == header;
        let any_case = |id: &&u8| KNOWN[usize::from(**id)].eq_ignore_ascii_case(header);
        candidates
            .iter()
            .find(exact)
            .or_else(|| candidates.iter().find(any_case))
            .map(|id| Name(*id))
    }
}

/// Headers with a known name that one index holds; a message with more is read name by name.
const SLOTS: usize = 12;

/// Values under a header name; they borrow from the carrier (`'a`), not from the lookup.
pub(super) trait Lookup<'a> {
    /// Calls `visit` with every value under `name` (compared case-insensitively), in carrier
    /// order.
    fn each(&self, name: Name, visit: &mut dyn FnMut(&'a str));

    /// The first value under `name`.
    fn first(&self, name: Name) -> Option<&'a str> {
        let mut first = None;
        self.each(name, &mut |value| {
            first.get_or_insert(value);
        });
        first
    }
}

/// A carrier read name by name.
impl<'a, C: Extractor + ?Sized> Lookup<'a> for &'a C {
    fn each(&self, name: Name, visit: &mut dyn FnMut(&'a str)) {
        let carrier: &'a C = self;
        carrier.for_each_value(name.as_str(), visit);
    }

    fn first(&self, name: Name) -> Option<&'a str> {
        let carrier: &'a C = self;
        carrier.get(name.as_str())
    }
}

/// The headers of a carrier that extraction reads, found in one pass.
pub(super) struct Indexed<'a> {
    /// (name, value), in carrier order.
    entries: [(Name, &'a str); SLOTS],
    len: usize,
}

impl<'a> Indexed<'a> {
    /// `None` when the carrier cannot list its headers, or has more than the index holds.
    pub(super) fn new<C: Extractor + ?Sized>(carrier: &'a C) -> Option<Self> {
        let mut index = Indexed {
            entries: [(Name(0), ""); SLOTS],
            len: 0,
        };
        let mut overflow = false;
        let listed = carrier.for_each_header(&mut |header, value| {
            let Some(name) = Name::of(header) else {
                return;
            };
            match index.entries.get_mut(index.len) {
                Some(slot) => {
                    *slot = (name, value);
                    index.len += 1;
                }
                None => overflow = true,
            }
        });
        (listed && !overflow).then_some(index)
    }
}

impl<'a> Lookup<'a> for Indexed<'a> {
    fn each(&self, name: Name, visit: &mut dyn FnMut(&'a str)) {
        self.entries[..self.len]
            .iter()
            .filter(|(entry, _)| *entry == name)
            .for_each(|(_, value)| visit(value));
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

    #[test]
    fn every_known_name_and_only_those_is_found_in_any_case() {
        for name in every_name() {
            let text = name.as_str();
            assert_eq!(Name::of(text), Some(name), "{text}");
            assert_eq!(Name::of(&text.to_uppercase()), Some(name), "{text}");
        }
        for other in [
            "",
            "b",
            "b4",
            "ce_ix",
            "traceparenx",
            "muninn-event-ids",
            "x-b3-flag",
        ] {
            assert_eq!(Name::of(other), None, "{other}");
        }
        assert_eq!(Name::EVENT_SCHEMA.as_str(), "muninn-event-schema");
        assert_eq!(Name::CE_DATASCHEMA_KAFKA.as_str(), "ce_dataschema");
    }

    #[test]
    fn the_index_answers_as_the_carrier_does() {
        let carrier = headers(&[
            ("TraceState", "a=1"),
            ("other", "x"),
            ("traceparent", "00-x"),
            ("TRACESTATE", "b=2"),
            ("Muninn-Event-Id", "e-1"),
        ]);
        let index = Indexed::new(&carrier).expect("a Vec lists its headers");
        let direct = &carrier;
        for name in every_name() {
            assert_eq!(values(&index, name), values(&direct, name), "{name:?}");
            assert_eq!(index.first(name), direct.first(name), "{name:?}");
        }
        assert_eq!(values(&index, Name::TRACESTATE), ["a=1", "b=2"]);
        assert_eq!(index.first(Name::EVENT_ID), Some("e-1"));
    }

    #[test]
    fn more_known_headers_than_slots_are_read_name_by_name() {
        let many: Vec<(String, String)> = (0..=SLOTS)
            .map(|n| ("tracestate".to_string(), format!("k{n}=v")))
            .collect();
        assert!(Indexed::new(&many).is_none());
        let fits: Vec<(String, String)> = many[..SLOTS].to_vec();
        let index = Indexed::new(&fits).expect("fits");
        assert_eq!(values(&index, Name::TRACESTATE).len(), SLOTS);
    }

    #[test]
    fn a_carrier_that_cannot_list_its_headers_gets_no_index() {
        struct Named;
        impl Extractor for Named {
            fn get_all(&self, key: &str) -> Vec<&str> {
                if key == "traceparent" {
                    vec!["00-x"]
                } else {
                    Vec::new()
                }
            }
        }
        assert!(Indexed::new(&Named).is_none());
        let direct = &Named;
        assert_eq!(direct.first(Name::TRACEPARENT), Some("00-x"));
    }
}
