//! Message headers as carriers of propagation fields: the [`Injector`] and [`Extractor`]
//! traits and their implementations for the header shapes brokers hand out.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// The write side of a carrier (message headers).
///
/// Muninn always passes header names in lowercase. Implementations should replace any value
/// already stored under the same name (compared case-insensitively), so injecting twice does
/// not leave two conflicting headers; the implementations in this crate do.
pub trait Injector {
    fn set(&mut self, key: &str, value: &str);
}

/// The read side of a carrier (message headers).
pub trait Extractor {
    /// Every value stored under `key`, in carrier order, with names compared
    /// case-insensitively (ASCII). Empty when the header is absent.
    fn get_all(&self, key: &str) -> Vec<&str>;

    /// The first value stored under `key` (names compared case-insensitively).
    fn get(&self, key: &str) -> Option<&str> {
        self.get_all(key).into_iter().next()
    }

    /// Calls `visit` with every value stored under `key`, in carrier order, as
    /// [`Extractor::get_all`] lists them. The default goes through `get_all`; carriers that can
    /// walk their headers without collecting them override it.
    fn for_each_value<'a>(&'a self, key: &str, visit: &mut dyn FnMut(&'a str)) {
        for value in self.get_all(key) {
            visit(value);
        }
    }

    /// Calls `visit` once with every header, as (name, value) in carrier order, and returns
    /// true; or returns false, visiting nothing, when the carrier cannot list its headers
    /// (the default). Extraction then reads its dozen names in one pass over the headers
    /// instead of one pass per name. Values that are not UTF-8 are skipped.
    fn for_each_header<'a>(&'a self, visit: &mut dyn FnMut(&'a str, &'a str)) -> bool {
        let _ = visit;
        false
    }
}

/// The values of the pairs named `key` (ASCII case ignored), in order: what `get_all` and
/// `for_each_value` read from a carrier listed as (name, value) pairs.
pub(crate) fn named<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    key: &str,
) -> impl Iterator<Item = &'a str> {
    pairs
        .filter(move |(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, value)| value)
}

impl Injector for Vec<(String, String)> {
    fn set(&mut self, key: &str, value: &str) {
        self.retain(|(name, _)| !name.eq_ignore_ascii_case(key));
        self.push((key.to_owned(), value.to_owned()));
    }
}

fn string_pairs(pairs: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    pairs
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

impl Extractor for [(String, String)] {
    fn get_all(&self, key: &str) -> Vec<&str> {
        named(string_pairs(self), key).collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        named(string_pairs(self), key).next()
    }

    fn for_each_value<'a>(&'a self, key: &str, visit: &mut dyn FnMut(&'a str)) {
        named(string_pairs(self), key).for_each(visit);
    }

    fn for_each_header<'a>(&'a self, visit: &mut dyn FnMut(&'a str, &'a str)) -> bool {
        string_pairs(self).for_each(|(name, value)| visit(name, value));
        true
    }
}

impl Extractor for Vec<(String, String)> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.as_slice().get_all(key)
    }

    fn get(&self, key: &str) -> Option<&str> {
        Extractor::get(self.as_slice(), key)
    }

    fn for_each_value<'a>(&'a self, key: &str, visit: &mut dyn FnMut(&'a str)) {
        self.as_slice().for_each_value(key, visit);
    }

    fn for_each_header<'a>(&'a self, visit: &mut dyn FnMut(&'a str, &'a str)) -> bool {
        self.as_slice().for_each_header(visit)
    }
}

/// Byte-valued headers (Kafka, for one): a value that is not UTF-8 counts as absent.
impl Injector for Vec<(String, Vec<u8>)> {
    fn set(&mut self, key: &str, value: &str) {
        self.retain(|(name, _)| !name.eq_ignore_ascii_case(key));
        self.push((key.to_owned(), value.as_bytes().to_vec()));
    }
}

/// The pairs whose value is UTF-8.
fn utf8_pairs(pairs: &[(String, Vec<u8>)]) -> impl Iterator<Item = (&str, &str)> {
    pairs.iter().filter_map(|(name, value)| {
        let value = std::str::from_utf8(value).ok()?;
        Some((name.as_str(), value))
    })
}

/// Byte-valued headers: a value that is not UTF-8 counts as absent.
impl Extractor for [(String, Vec<u8>)] {
    fn get_all(&self, key: &str) -> Vec<&str> {
        named(utf8_pairs(self), key).collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        named(utf8_pairs(self), key).next()
    }

    fn for_each_value<'a>(&'a self, key: &str, visit: &mut dyn FnMut(&'a str)) {
        named(utf8_pairs(self), key).for_each(visit);
    }

    fn for_each_header<'a>(&'a self, visit: &mut dyn FnMut(&'a str, &'a str)) -> bool {
        utf8_pairs(self).for_each(|(name, value)| visit(name, value));
        true
    }
}

impl Extractor for Vec<(String, Vec<u8>)> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.as_slice().get_all(key)
    }

    fn get(&self, key: &str) -> Option<&str> {
        Extractor::get(self.as_slice(), key)
    }

    fn for_each_value<'a>(&'a self, key: &str, visit: &mut dyn FnMut(&'a str)) {
        self.as_slice().for_each_value(key, visit);
    }

    fn for_each_header<'a>(&'a self, visit: &mut dyn FnMut(&'a str, &'a str)) -> bool {
        self.as_slice().for_each_header(visit)
    }
}

/// A map holds one value per exact name; names differing only in case are all read (in the
/// map's iteration order) and all replaced on [`Injector::set`].
impl<S: BuildHasher> Injector for HashMap<String, String, S> {
    fn set(&mut self, key: &str, value: &str) {
        self.retain(|name, _| !name.eq_ignore_ascii_case(key));
        self.insert(key.to_owned(), value.to_owned());
    }
}

fn map_pairs<S>(map: &HashMap<String, String, S>) -> impl Iterator<Item = (&str, &str)> {
    map.iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

impl<S: BuildHasher> Extractor for HashMap<String, String, S> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        named(map_pairs(self), key).collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        if let Some(value) = HashMap::get(self, key) {
            return Some(value);
        }
        named(map_pairs(self), key).next()
    }

    fn for_each_value<'a>(&'a self, key: &str, visit: &mut dyn FnMut(&'a str)) {
        named(map_pairs(self), key).for_each(visit);
    }

    fn for_each_header<'a>(&'a self, visit: &mut dyn FnMut(&'a str, &'a str)) -> bool {
        map_pairs(self).for_each(|(name, value)| visit(name, value));
        true
    }
}

/// Headers as a `Vec` of pairs, for tests.
#[cfg(test)]
pub(super) fn headers(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_lookup_ignores_name_case_and_keeps_order() {
        let headers = headers(&[("TraceState", "a=1"), ("other", "x"), ("TRACESTATE", "b=2")]);
        assert_eq!(headers.get_all("tracestate"), vec!["a=1", "b=2"]);
        assert_eq!(Extractor::get(&headers, "tracestate"), Some("a=1"));
        assert_eq!(Extractor::get(&headers, "missing"), None);
        assert!(headers.get_all("missing").is_empty());
    }

    #[test]
    fn vec_set_replaces_every_case_variant() {
        let mut carrier = headers(&[
            ("Traceparent", "old"),
            ("keep", "1"),
            ("TRACEPARENT", "old2"),
        ]);
        carrier.set("traceparent", "new");
        assert_eq!(carrier, headers(&[("keep", "1"), ("traceparent", "new")]));
    }

    #[test]
    fn byte_values_that_are_not_utf8_are_absent() {
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            ("b3".into(), vec![0xff, 0xfe]),
            ("B3".into(), b"0".to_vec()),
            ("x".into(), vec![0xc3]),
        ];
        assert_eq!(headers.get_all("b3"), vec!["0"]);
        assert_eq!(Extractor::get(&headers, "b3"), Some("0"));
        assert_eq!(Extractor::get(&headers, "x"), None);
        headers.set("x", "ok");
        assert_eq!(Extractor::get(&headers, "X"), Some("ok"));
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn hash_map_lookup_and_set_ignore_name_case() {
        let mut headers: HashMap<String, String> = HashMap::new();
        headers.insert("X-B3-TraceId".into(), "abc".into());
        assert_eq!(headers.get_all("x-b3-traceid"), vec!["abc"]);
        assert_eq!(Extractor::get(&headers, "x-b3-traceid"), Some("abc"));
        headers.set("x-b3-traceid", "def");
        assert_eq!(headers.len(), 1);
        assert_eq!(Extractor::get(&headers, "X-B3-TRACEID"), Some("def"));
    }
}
