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
}

impl Injector for Vec<(String, String)> {
    fn set(&mut self, key: &str, value: &str) {
        self.retain(|(name, _)| !name.eq_ignore_ascii_case(key));
        self.push((key.to_owned(), value.to_owned()));
    }
}

impl Extractor for [(String, String)] {
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    }
}

impl Extractor for Vec<(String, String)> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.as_slice().get_all(key)
    }

    fn get(&self, key: &str) -> Option<&str> {
        Extractor::get(self.as_slice(), key)
    }
}

/// Byte-valued headers (Kafka, for one): a value that is not UTF-8 counts as absent.
impl Injector for Vec<(String, Vec<u8>)> {
    fn set(&mut self, key: &str, value: &str) {
        self.retain(|(name, _)| !name.eq_ignore_ascii_case(key));
        self.push((key.to_owned(), value.as_bytes().to_vec()));
    }
}

/// Byte-valued headers: a value that is not UTF-8 counts as absent.
impl Extractor for [(String, Vec<u8>)] {
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(key))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
            .collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(key))
            .find_map(|(_, value)| std::str::from_utf8(value).ok())
    }
}

impl Extractor for Vec<(String, Vec<u8>)> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.as_slice().get_all(key)
    }

    fn get(&self, key: &str) -> Option<&str> {
        Extractor::get(self.as_slice(), key)
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

impl<S: BuildHasher> Extractor for HashMap<String, String, S> {
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        if let Some(value) = HashMap::get(self, key) {
            return Some(value);
        }
        self.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn vec_lookup_ignores_name_case_and_keeps_order() {
        let headers = pairs(&[("TraceState", "a=1"), ("other", "x"), ("TRACESTATE", "b=2")]);
        assert_eq!(headers.get_all("tracestate"), vec!["a=1", "b=2"]);
        assert_eq!(Extractor::get(&headers, "tracestate"), Some("a=1"));
        assert_eq!(Extractor::get(&headers, "missing"), None);
        assert!(headers.get_all("missing").is_empty());
    }

    #[test]
    fn vec_set_replaces_every_case_variant() {
        let mut headers = pairs(&[
            ("Traceparent", "old"),
            ("keep", "1"),
            ("TRACEPARENT", "old2"),
        ]);
        headers.set("traceparent", "new");
        assert_eq!(headers, pairs(&[("keep", "1"), ("traceparent", "new")]));
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
