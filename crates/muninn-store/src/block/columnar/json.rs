//! JSON text of v1's and v2's `attributes`, `resource` and `links` columns, both ways: keys
//! kept in the order received, numbers read back from their text, each distinct attribute list
//! encoded once per block.

use std::fmt;

use arrow::array::{ArrayBuilder, StringArray, StringBuilder};
use muninn_model::{AttributeValue, Attributes, Link, SpanId, Text, TraceId};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Attributes as one JSON object, keys in the order they were received.
struct JsonAttributes<'a>(&'a Attributes);

impl Serialize for JsonAttributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .map(|(key, value)| (key, JsonAttributeValue(value))),
        )
    }
}

struct JsonAttributeValue<'a>(&'a AttributeValue);

impl Serialize for JsonAttributeValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttributeValue::String(text) => serializer.serialize_str(text),
            AttributeValue::Int(number) => serializer.serialize_i64(*number),
            // Non-finite floats become `null` and are not read back.
            AttributeValue::Float(number) => serializer.serialize_f64(*number),
            AttributeValue::Bool(flag) => serializer.serialize_bool(*flag),
        }
    }
}

#[derive(Serialize)]
struct JsonLink<'a> {
    trace_id: String,
    span_id: String,
    attributes: JsonAttributes<'a>,
}

#[derive(Deserialize)]
struct StoredLink {
    trace_id: String,
    span_id: String,
    attributes: Option<Box<RawValue>>,
}

/// A JSON object's members in document order, their values not yet parsed.
struct JsonObjectMembers(Vec<(Text, Box<RawValue>)>);

impl<'de> Deserialize<'de> for JsonObjectMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = JsonObjectMembers;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<Text, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(JsonObjectMembers(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Encodes each distinct attribute list once per block: a service's spans share their
/// resource, and low-cardinality attributes repeat across many spans. Each distinct list gets a
/// key, its place in one array of texts: the key of a dictionary-encoded column, so that
/// neither arrow's dictionary builder nor Parquet's writer hashes the text of every row.
pub(in crate::block) struct JsonCache<'a> {
    index: ahash::AHashMap<u64, Vec<(&'a Attributes, i32)>>,
    /// Every distinct text, in the order of their keys.
    texts: StringBuilder,
    /// The list asked for last and its key: spans that share one resource (`Arc`) are found
    /// by address, without hashing.
    last: Option<(&'a Attributes, i32)>,
}

impl Default for JsonCache<'_> {
    /// Empty, with no room taken ahead (arrow's default is 1,024 texts): a small batch of the
    /// head keeps its texts as built.
    fn default() -> Self {
        JsonCache {
            index: ahash::AHashMap::new(),
            texts: StringBuilder::with_capacity(0, 0),
            last: None,
        }
    }
}

impl<'a> JsonCache<'a> {
    /// Distinct lists the index holds before it starts over (bounds its memory on unique
    /// attributes; the texts are kept, each list then being encoded again when it recurs).
    const MAX_ENTRIES: usize = 65_536;

    /// The key of `attributes`' text, encoding it when it is new.
    pub(super) fn key(&mut self, attributes: &'a Attributes) -> i32 {
        use std::hash::{Hash, Hasher};
        if let Some((last, key)) = self.last
            && std::ptr::eq(last, attributes)
        {
            return key;
        }
        let mut hasher = ahash::AHasher::default();
        for (key, value) in attributes {
            key.hash(&mut hasher);
            match value {
                AttributeValue::String(text) => (0u8, text).hash(&mut hasher),
                AttributeValue::Int(number) => (1u8, number).hash(&mut hasher),
                AttributeValue::Float(number) => (2u8, number.to_bits()).hash(&mut hasher),
                AttributeValue::Bool(flag) => (3u8, flag).hash(&mut hasher),
            }
        }
        let hash = hasher.finish();
        if self.index.len() >= Self::MAX_ENTRIES {
            self.index.clear();
        }
        let bucket = self.index.entry(hash).or_default();
        let key = match bucket.iter().find(|(cached, _)| *cached == attributes) {
            Some((_, key)) => *key,
            None => {
                // A block holds fewer than 2^31 rows, so fewer distinct texts.
                let key = i32::try_from(self.texts.len()).unwrap_or(i32::MAX);
                RECENT_TEXTS.with_borrow_mut(|recent| {
                    self.texts.append_value(recent.text(hash, attributes));
                });
                bucket.push((attributes, key));
                key
            }
        };
        self.last = Some((attributes, key));
        key
    }

    /// The texts, in the order of their keys: the values of a dictionary column whose keys
    /// [`Self::key`] gave.
    pub(super) fn finish(mut self) -> StringArray {
        self.texts.finish()
    }
}

/// The texts of the attribute lists a thread encoded lately, by the hash `JsonCache` computes.
/// The head builds the columns of each request apart (a request of 1,000 spans of the
/// benchmark's fleet draws several hundred of its at most 960 distinct lists), so without it
/// each list would be written as JSON again in every request.
#[derive(Default)]
struct RecentTexts {
    index: ahash::AHashMap<u64, Vec<(Attributes, String)>>,
}

impl RecentTexts {
    /// Lists kept before the cache starts over: a few megabytes a thread at most.
    const MAX_ENTRIES: usize = 8_192;

    fn text(&mut self, hash: u64, attributes: &Attributes) -> &str {
        if self.index.len() >= Self::MAX_ENTRIES {
            self.index.clear();
        }
        let bucket = self.index.entry(hash).or_default();
        let at = match bucket.iter().position(|(cached, _)| cached == attributes) {
            Some(at) => at,
            None => {
                bucket.push((attributes.clone(), attributes_to_json(attributes)));
                bucket.len() - 1
            }
        };
        &bucket[at].1
    }
}

thread_local! {
    static RECENT_TEXTS: std::cell::RefCell<RecentTexts> = std::cell::RefCell::default();
}

fn attributes_to_json(attributes: &Attributes) -> String {
    serde_json::to_string(&JsonAttributes(attributes)).unwrap_or_else(|_| "{}".to_string())
}

/// Reads what `attributes_to_json` wrote, keeping the order of the keys. Numbers are read from
/// their text: serde_json's own float parsing can be one unit in the last place off.
pub(in crate::block) fn attributes_from_json(text: &str) -> Attributes {
    let Ok(JsonObjectMembers(members)) = serde_json::from_str(text) else {
        return Vec::new();
    };
    members
        .into_iter()
        .filter_map(|(key, value)| Some((key, attribute_value_from_json(value.get())?)))
        .collect()
}

fn attribute_value_from_json(text: &str) -> Option<AttributeValue> {
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str(text).ok().map(AttributeValue::String),
        b't' | b'f' => serde_json::from_str(text).ok().map(AttributeValue::Bool),
        b'-' | b'0'..=b'9' => match text.parse::<i64>() {
            Ok(integer) => Some(AttributeValue::Int(integer)),
            Err(_) => text.parse::<f64>().ok().map(AttributeValue::Float),
        },
        // `null` (a non-finite float), arrays and objects.
        _ => None,
    }
}

/// The `links` text of a span; `None` (a null) when it has no links.
pub(in crate::block) fn links_to_json(links: &[Link]) -> Option<String> {
    if links.is_empty() {
        return None;
    }
    let links: Vec<JsonLink<'_>> = links
        .iter()
        .map(|link| JsonLink {
            trace_id: link.trace_id.to_hex(),
            span_id: link.span_id.to_hex(),
            attributes: JsonAttributes(&link.attributes),
        })
        .collect();
    serde_json::to_string(&links).ok()
}

pub(in crate::block) fn links_from_json(text: &str) -> Vec<Link> {
    let Ok(links) = serde_json::from_str::<Vec<Box<RawValue>>>(text) else {
        return Vec::new();
    };
    links
        .iter()
        .filter_map(|link| {
            let link: StoredLink = serde_json::from_str(link.get()).ok()?;
            Some(Link {
                trace_id: TraceId::from_hex(&link.trace_id).ok()?,
                span_id: SpanId::from_hex(&link.span_id).ok()?,
                attributes: link
                    .attributes
                    .map(|attributes| attributes_from_json(attributes.get()))
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// What the `links` text of a span linking to `trace_id` holds, as `links_to_json` writes it:
/// a row filter on the text finds such spans in blocks without `link_trace_ids` (a text match,
/// checked again on the decoded spans by the caller).
pub(in crate::block) fn link_text_needle(trace_id: TraceId) -> String {
    format!("\"trace_id\":\"{}\"", trace_id.to_hex())
}
