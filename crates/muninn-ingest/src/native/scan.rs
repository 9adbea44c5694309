//! The common native body read by hand: a JSON array of span objects whose strings hold no
//! escapes, scanned once into the same `WireSpan`s serde's derived code makes from it, without
//! serde's visitors (matching each key through a chain of string compares, an `Option` layer
//! per field, a call per token). Anything outside that (an escape, a field twice, a value of
//! another type, a float where an integer goes, an integer outside `i64`, `-0`) makes it
//! give up, and the body is decoded by serde_json as before, which finds and names the error.
//! `tests.rs` checks that both read the same spans from the same bodies.

use std::borrow::Cow;

use muninn_model::{AttributeValue, Text};

use super::{WireAttributes, WireInteger, WireLink, WireSpan, WireStatus};

/// The scan gave up: serde_json decodes the body instead (and reports what is wrong, if
/// anything is).
#[derive(Debug)]
pub(super) struct GiveUp;

type Scan<T> = Result<T, GiveUp>;

/// Nesting a skipped value may have before the scan gives up (serde_json refuses past 128).
const MAX_DEPTH: usize = 64;

/// A number as JSON wrote it, when it is one the scan reads exactly as serde_json does.
enum Number {
    Integer(i64),
    Float(f64),
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_whitespace(&mut self) {
        let bytes = self.bytes();
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes().get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Scan<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        if next {
            self.at += 1;
        }
        next
    }

    /// Consumes the literal `word` (`null`, `true`, `false`) if it comes next.
    fn eat_word(&mut self, word: &[u8]) -> bool {
        self.skip_whitespace();
        let next = self.bytes()[self.at..].starts_with(word);
        if next {
            self.at += word.len();
        }
        next
    }

    /// A string without escapes or control characters, borrowed from the body.
    fn string(&mut self) -> Scan<&'a str> {
        self.expect(b'"')?;
        let bytes = self.bytes();
        let start = self.at;
        let length = bytes[start..]
            .iter()
            .position(|byte| matches!(byte, b'"' | b'\\') || *byte < 0x20)
            .ok_or(GiveUp)?;
        let end = start + length;
        if bytes[end] != b'"' {
            return Err(GiveUp);
        }
        self.at = end + 1;
        // On a char boundary: the body is UTF-8 and both ends are ASCII quotes.
        self.text.get(start..end).ok_or(GiveUp)
    }

    /// A number, as an integer when it has no fraction or exponent.
    fn number(&mut self) -> Scan<Number> {
        self.skip_whitespace();
        let bytes = self.bytes();
        let start = self.at;
        let mut at = start;
        let negative = bytes.get(at) == Some(&b'-');
        if negative {
            at += 1;
        }
        let digits_start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let n_digits = at - digits_start;
        // JSON has no leading zeros; a lone `-0` is left to serde_json.
        if n_digits == 0 || (n_digits > 1 && bytes[digits_start] == b'0') {
            return Err(GiveUp);
        }
        let mut is_float = false;
        if bytes.get(at) == Some(&b'.') {
            is_float = true;
            at += 1;
            let fraction_start = at;
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == fraction_start {
                return Err(GiveUp);
            }
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            is_float = true;
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let exponent_start = at;
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == exponent_start {
                return Err(GiveUp);
            }
        }
        let text = &self.text[start..at];
        self.at = at;
        if is_float {
            // Rust's parse rounds correctly, as serde_json's `float_roundtrip` does.
            let number: f64 = text.parse().map_err(|_| GiveUp)?;
            return if number.is_finite() {
                Ok(Number::Float(number))
            } else {
                Err(GiveUp)
            };
        }
        // Past `i64`'s range serde_json reads a `u64` or a float: left to it.
        if n_digits > 19 || (negative && text == "-0") {
            return Err(GiveUp);
        }
        text.parse().map(Number::Integer).map_err(|_| GiveUp)
    }

    fn integer(&mut self) -> Scan<i64> {
        match self.number()? {
            Number::Integer(number) => Ok(number),
            Number::Float(_) => Err(GiveUp),
        }
    }

    /// Skips any value (a field serde ignores, or an attribute value Muninn does not store).
    fn skip_value(&mut self, depth: usize) -> Scan<()> {
        if depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        match self.peek().ok_or(GiveUp)? {
            b'"' => self.string().map(drop),
            b'{' => {
                self.at += 1;
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.string()?;
                    self.expect(b':')?;
                    self.skip_value(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b'}');
                    }
                }
            }
            b'[' => {
                self.at += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b']');
                    }
                }
            }
            b't' if self.eat_word(b"true") => Ok(()),
            b'f' if self.eat_word(b"false") => Ok(()),
            b'n' if self.eat_word(b"null") => Ok(()),
            _ => self.number().map(drop),
        }
    }

    /// The members of an object, each handed to `member` with its key; `member` reads the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Scan<()>) -> Scan<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            member(self, key)?;
            if !self.eat(b',') {
                return self.expect(b'}');
            }
        }
    }

    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Scan<T>) -> Scan<Option<T>> {
        if self.eat_word(b"null") {
            Ok(None)
        } else {
            read(self).map(Some)
        }
    }

    fn text(&mut self) -> Scan<Text> {
        self.string().map(Text::from)
    }

    fn wire_integer(&mut self) -> Scan<WireInteger> {
        if self.peek() == Some(b'"') {
            return Ok(WireInteger::Text(self.string()?.to_string()));
        }
        self.integer().map(WireInteger::Number)
    }

    /// An attribute object, as `WireAttributes`' visitor reads it.
    fn attributes(&mut self) -> Scan<WireAttributes> {
        let mut entries = Vec::with_capacity(8);
        let mut unsupported = None;
        self.object(|cursor, key| {
            let key = muninn_model::attribute_key(key);
            let value = match cursor.peek().ok_or(GiveUp)? {
                b'"' => Some(AttributeValue::String(cursor.text()?)),
                b't' if cursor.eat_word(b"true") => Some(AttributeValue::Bool(true)),
                b'f' if cursor.eat_word(b"false") => Some(AttributeValue::Bool(false)),
                b'n' if cursor.eat_word(b"null") => None,
                b'[' | b'{' => {
                    cursor.skip_value(1)?;
                    None
                }
                _ => Some(match cursor.number()? {
                    Number::Integer(number) => AttributeValue::Int(number),
                    Number::Float(number) => AttributeValue::Float(number),
                }),
            };
            match value {
                Some(value) => entries.push((key, value)),
                None => {
                    unsupported.get_or_insert(key);
                }
            }
            Ok(())
        })?;
        Ok(WireAttributes {
            entries,
            unsupported,
        })
    }

    fn status(&mut self) -> Scan<WireStatus> {
        let (mut code, mut message) = (None, None);
        let mut seen = 0u32;
        self.object(|cursor, key| {
            match key {
                "code" => {
                    once(&mut seen, 0)?;
                    code = cursor.optional(|cursor| cursor.string().map(str::to_string))?;
                }
                "message" => {
                    once(&mut seen, 1)?;
                    message = cursor.optional(Self::text)?;
                }
                _ => cursor.skip_value(1)?,
            }
            Ok(())
        })?;
        Ok(WireStatus { code, message })
    }

    fn link(&mut self) -> Scan<WireLink<'a>> {
        let (mut trace_id, mut span_id, mut attributes) = (None, None, None);
        let mut seen = 0u32;
        self.object(|cursor, key| {
            match key {
                "trace_id" => {
                    once(&mut seen, 0)?;
                    trace_id = Some(cursor.string()?);
                }
                "span_id" => {
                    once(&mut seen, 1)?;
                    span_id = Some(cursor.string()?);
                }
                "attributes" => {
                    once(&mut seen, 2)?;
                    attributes = cursor.optional(Self::attributes)?;
                }
                _ => cursor.skip_value(1)?,
            }
            Ok(())
        })?;
        Ok(WireLink {
            trace_id: Cow::Borrowed(trace_id.ok_or(GiveUp)?),
            span_id: Cow::Borrowed(span_id.ok_or(GiveUp)?),
            attributes,
        })
    }

    fn links(&mut self) -> Scan<Vec<WireLink<'a>>> {
        self.expect(b'[')?;
        let mut links = Vec::new();
        if self.eat(b']') {
            return Ok(links);
        }
        loop {
            links.push(self.link()?);
            if !self.eat(b',') {
                self.expect(b']')?;
                return Ok(links);
            }
        }
    }

    /// One span object, every field as serde's derived `Deserialize` of `WireSpan` reads it.
    fn span(&mut self) -> Scan<WireSpan<'a>> {
        let mut span = PartialSpan::default();
        let mut seen = 0u32;
        self.object(|cursor, key| {
            match key {
                "trace_id" => {
                    once(&mut seen, 0)?;
                    span.trace_id = Some(cursor.string()?);
                }
                "span_id" => {
                    once(&mut seen, 1)?;
                    span.span_id = Some(cursor.string()?);
                }
                "parent_span_id" => {
                    once(&mut seen, 2)?;
                    span.parent_span_id = cursor.optional(Self::string)?;
                }
                "name" => {
                    once(&mut seen, 3)?;
                    span.name = Some(cursor.text()?);
                }
                "kind" => {
                    once(&mut seen, 4)?;
                    span.kind = Some(cursor.string()?);
                }
                "service" => {
                    once(&mut seen, 5)?;
                    span.service = Some(cursor.text()?);
                }
                "resource" => {
                    once(&mut seen, 6)?;
                    span.resource = cursor.optional(Self::attributes)?;
                }
                "start_time_unix_nano" => {
                    once(&mut seen, 7)?;
                    span.start = Some(cursor.wire_integer()?);
                }
                "duration_nano" => {
                    once(&mut seen, 8)?;
                    span.duration = cursor.optional(Self::wire_integer)?;
                }
                "end_time_unix_nano" => {
                    once(&mut seen, 9)?;
                    span.end = cursor.optional(Self::wire_integer)?;
                }
                "status" => {
                    once(&mut seen, 10)?;
                    span.status = cursor.optional(Self::status)?;
                }
                "attributes" => {
                    once(&mut seen, 11)?;
                    span.attributes = cursor.optional(Self::attributes)?;
                }
                "links" => {
                    once(&mut seen, 12)?;
                    span.links = cursor.optional(Self::links)?;
                }
                "event_id" => {
                    once(&mut seen, 13)?;
                    span.event_id = cursor.optional(Self::text)?;
                }
                "event_type" => {
                    once(&mut seen, 14)?;
                    span.event_type = cursor.optional(Self::text)?;
                }
                "schema" => {
                    once(&mut seen, 15)?;
                    span.schema = cursor.optional(Self::text)?;
                }
                "stream" => {
                    once(&mut seen, 16)?;
                    span.stream = cursor.optional(Self::text)?;
                }
                "broker" => {
                    once(&mut seen, 17)?;
                    span.broker = cursor.optional(Self::string)?;
                }
                "modified" => {
                    once(&mut seen, 18)?;
                    span.modified = if cursor.eat_word(b"true") {
                        Some(true)
                    } else if cursor.eat_word(b"false") {
                        Some(false)
                    } else if cursor.eat_word(b"null") {
                        None
                    } else {
                        return Err(GiveUp);
                    };
                }
                "partition" => {
                    once(&mut seen, 19)?;
                    span.partition = cursor.optional(Self::integer)?;
                }
                "offset" => {
                    once(&mut seen, 20)?;
                    span.offset = cursor.optional(Self::integer)?;
                }
                "message_id" => {
                    once(&mut seen, 21)?;
                    span.message_id = cursor.optional(Self::text)?;
                }
                _ => cursor.skip_value(1)?,
            }
            Ok(())
        })?;
        span.finish()
    }
}

/// Marks field `index` of a small object as read; a field twice is serde's error.
fn once(seen: &mut u32, index: u32) -> Scan<()> {
    if *seen & (1 << index) != 0 {
        return Err(GiveUp);
    }
    *seen |= 1 << index;
    Ok(())
}

/// A span's fields as they are found, in any order.
#[derive(Default)]
struct PartialSpan<'a> {
    trace_id: Option<&'a str>,
    span_id: Option<&'a str>,
    parent_span_id: Option<&'a str>,
    name: Option<Text>,
    kind: Option<&'a str>,
    service: Option<Text>,
    resource: Option<WireAttributes>,
    start: Option<WireInteger>,
    duration: Option<WireInteger>,
    end: Option<WireInteger>,
    status: Option<WireStatus>,
    attributes: Option<WireAttributes>,
    links: Option<Vec<WireLink<'a>>>,
    event_id: Option<Text>,
    event_type: Option<Text>,
    schema: Option<Text>,
    stream: Option<Text>,
    broker: Option<&'a str>,
    modified: Option<bool>,
    partition: Option<i64>,
    offset: Option<i64>,
    message_id: Option<Text>,
}

impl<'a> PartialSpan<'a> {
    /// The span, when every field serde requires is there.
    fn finish(self) -> Scan<WireSpan<'a>> {
        Ok(WireSpan {
            trace_id: Cow::Borrowed(self.trace_id.ok_or(GiveUp)?),
            span_id: Cow::Borrowed(self.span_id.ok_or(GiveUp)?),
            parent_span_id: self.parent_span_id.map(Cow::Borrowed),
            name: self.name.ok_or(GiveUp)?,
            kind: Cow::Borrowed(self.kind.ok_or(GiveUp)?),
            service: self.service.ok_or(GiveUp)?,
            resource: self.resource,
            start_time_unix_nano: self.start.ok_or(GiveUp)?,
            duration_nano: self.duration,
            end_time_unix_nano: self.end,
            status: self.status,
            attributes: self.attributes,
            links: self.links,
            event_id: self.event_id,
            event_type: self.event_type,
            schema: self.schema,
            stream: self.stream,
            broker: self.broker.map(Cow::Borrowed),
            modified: self.modified,
            partition: self.partition,
            offset: self.offset,
            message_id: self.message_id,
        })
    }
}

/// The spans of a body that is a JSON array of span objects the scan reads whole; `Err` for
/// any other body, which serde_json then decodes.
pub(super) fn spans(text: &str) -> Scan<Vec<WireSpan<'_>>> {
    let mut cursor = Cursor { text, at: 0 };
    cursor.expect(b'[')?;
    let mut spans = Vec::new();
    if !cursor.eat(b']') {
        loop {
            if cursor.peek() != Some(b'{') {
                return Err(GiveUp);
            }
            spans.push(cursor.span()?);
            if !cursor.eat(b',') {
                cursor.expect(b']')?;
                break;
            }
        }
    }
    if cursor.peek().is_some() {
        return Err(GiveUp);
    }
    Ok(spans)
}
