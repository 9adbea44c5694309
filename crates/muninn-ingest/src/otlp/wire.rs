//! A protobuf reader for the parts of `ExportTraceServiceRequest` that Muninn keeps, borrowing
//! ids, names, keys and values from the body instead of building prost's owned messages: the
//! hot path of OTLP/HTTP protobuf and OTLP/gRPC, where prost's decoding (about 30 small
//! allocations a span, most of them freed again by the mapping) cost more than the mapping.
//!
//! It reads what prost reads, with the same rules: unknown fields (including groups) are
//! skipped, a singular field that repeats keeps its last value, a repeated message that
//! repeats appends, messages of a `oneof` merge or replace as protobuf says, and every string
//! it reads must be UTF-8. Fields Muninn drops (events, the scope, trace state, schema URLs)
//! are skipped without being checked, so a body prost would refuse for an invalid string there
//! is read; a body prost reads is always read the same (the tests hold the two side by side).

use super::{AttrRef, LinkInput, SpanInput, ValueRef, json_of_values};

/// Nested arrays and maps deeper than this are refused (prost stops at 100 messages deep).
const MAX_VALUE_DEPTH: usize = 100;

/// Why a body is not a protobuf `ExportTraceServiceRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError(pub String);

type Result<T> = std::result::Result<T, WireError>;

fn error(message: impl Into<String>) -> WireError {
    WireError(message.into())
}

/// The protobuf wire types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireType {
    Varint,
    Fixed64,
    Len,
    StartGroup,
    EndGroup,
    Fixed32,
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, position: 0 }
    }

    fn is_done(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift_idx in 0..10 {
            let Some(&byte) = self.bytes.get(self.position) else {
                return Err(error("a varint runs past the end of its message"));
            };
            self.position += 1;
            if shift_idx == 9 && byte > 1 {
                return Err(error("a varint is longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * shift_idx);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(error("a varint is longer than 10 bytes"))
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8]> {
        let end = self
            .position
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| error("a field runs past the end of its message"))?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    fn fixed64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    /// The next field's number and wire type.
    fn tag(&mut self) -> Result<(u32, WireType)> {
        let key = self.varint()?;
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            other => return Err(error(format!("invalid wire type {other}"))),
        };
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|number| *number >= 1 && *number <= 0x1fff_ffff)
            .ok_or_else(|| error(format!("invalid field number {}", key >> 3)))?;
        Ok((number, wire_type))
    }

    fn len_delimited(&mut self) -> Result<&'a [u8]> {
        let length = usize::try_from(self.varint()?)
            .map_err(|_| error("a length does not fit in memory"))?;
        self.take(length)
    }

    fn text(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.len_delimited()?)
            .map_err(|_| error("a string field is not valid UTF-8"))
    }

    /// Skips a field of an unknown number (or one Muninn drops).
    fn skip(&mut self, number: u32, wire_type: WireType, depth: usize) -> Result<()> {
        match wire_type {
            WireType::Varint => {
                self.varint()?;
            }
            WireType::Fixed64 => {
                self.take(8)?;
            }
            WireType::Len => {
                self.len_delimited()?;
            }
            WireType::Fixed32 => {
                self.take(4)?;
            }
            WireType::StartGroup => {
                if depth >= MAX_VALUE_DEPTH {
                    return Err(error("groups are nested too deep"));
                }
                loop {
                    if self.is_done() {
                        return Err(error("a group is not closed"));
                    }
                    let (inner_number, inner_type) = self.tag()?;
                    if inner_type == WireType::EndGroup {
                        if inner_number != number {
                            return Err(error("a group is closed with the wrong field number"));
                        }
                        break;
                    }
                    self.skip(inner_number, inner_type, depth + 1)?;
                }
            }
            WireType::EndGroup => return Err(error("a group ends that was not started")),
        }
        Ok(())
    }
}

/// Checks that a known field arrives with its wire type.
fn expect(wire_type: WireType, expected: WireType, field: &str) -> Result<()> {
    if wire_type == expected {
        Ok(())
    } else {
        Err(error(format!(
            "field {field} has wire type {wire_type:?}, expected {expected:?}"
        )))
    }
}

/// What the request holds, span by span: `resource` once per `ResourceSpans` (before its
/// spans), `span` for each span with its place.
pub(crate) trait Visitor {
    fn resource(&mut self, attributes: Vec<AttrRef<'_>>);
    fn span(&mut self, span: SpanInput<'_>, resource_idx: usize, scope_idx: usize, span_idx: usize);
}

/// Reads `body` as an `ExportTraceServiceRequest`, handing what it holds to `visitor`. On an
/// error some spans may have been visited already; the caller discards them.
pub(crate) fn read_request(body: &[u8], visitor: &mut impl Visitor) -> Result<()> {
    let mut reader = Reader::new(body);
    let mut resource_idx = 0;
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        if number == 1 {
            expect(wire_type, WireType::Len, "resource_spans")?;
            read_resource_spans(reader.len_delimited()?, resource_idx, visitor)?;
            resource_idx += 1;
        } else {
            reader.skip(number, wire_type, 0)?;
        }
    }
    Ok(())
}

fn read_resource_spans(
    bytes: &[u8],
    resource_idx: usize,
    visitor: &mut impl Visitor,
) -> Result<()> {
    // The resource may come after the spans on the wire: read it first.
    let mut attributes = Vec::new();
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        if number == 1 {
            expect(wire_type, WireType::Len, "resource")?;
            read_resource(reader.len_delimited()?, &mut attributes)?;
        } else {
            reader.skip(number, wire_type, 0)?;
        }
    }
    visitor.resource(attributes);
    let mut reader = Reader::new(bytes);
    let mut scope_idx = 0;
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        if number == 2 {
            expect(wire_type, WireType::Len, "scope_spans")?;
            read_scope_spans(reader.len_delimited()?, resource_idx, scope_idx, visitor)?;
            scope_idx += 1;
        } else {
            reader.skip(number, wire_type, 0)?;
        }
    }
    Ok(())
}

fn read_resource<'a>(bytes: &'a [u8], attributes: &mut Vec<AttrRef<'a>>) -> Result<()> {
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        if number == 1 {
            expect(wire_type, WireType::Len, "resource.attributes")?;
            if let Some(attribute) = read_key_value(reader.len_delimited()?, 0)? {
                attributes.push(attribute);
            }
        } else {
            reader.skip(number, wire_type, 0)?;
        }
    }
    Ok(())
}

fn read_scope_spans(
    bytes: &[u8],
    resource_idx: usize,
    scope_idx: usize,
    visitor: &mut impl Visitor,
) -> Result<()> {
    let mut reader = Reader::new(bytes);
    let mut span_idx = 0;
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        if number == 2 {
            expect(wire_type, WireType::Len, "spans")?;
            let span = read_span(reader.len_delimited()?)?;
            visitor.span(span, resource_idx, scope_idx, span_idx);
            span_idx += 1;
        } else {
            reader.skip(number, wire_type, 0)?;
        }
    }
    Ok(())
}

fn read_span(bytes: &[u8]) -> Result<SpanInput<'_>> {
    let mut span = SpanInput {
        trace_id: &[],
        span_id: &[],
        parent_span_id: &[],
        name: "",
        kind: 0,
        start_time_unix_nano: 0,
        end_time_unix_nano: 0,
        attributes: Vec::with_capacity(16),
        links: Vec::new(),
        status: None,
    };
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        match number {
            1 => {
                expect(wire_type, WireType::Len, "trace_id")?;
                span.trace_id = reader.len_delimited()?;
            }
            2 => {
                expect(wire_type, WireType::Len, "span_id")?;
                span.span_id = reader.len_delimited()?;
            }
            4 => {
                expect(wire_type, WireType::Len, "parent_span_id")?;
                span.parent_span_id = reader.len_delimited()?;
            }
            5 => {
                expect(wire_type, WireType::Len, "name")?;
                span.name = reader.text()?;
            }
            6 => {
                expect(wire_type, WireType::Varint, "kind")?;
                span.kind = reader.varint()? as i32;
            }
            7 => {
                expect(wire_type, WireType::Fixed64, "start_time_unix_nano")?;
                span.start_time_unix_nano = reader.fixed64()?;
            }
            8 => {
                expect(wire_type, WireType::Fixed64, "end_time_unix_nano")?;
                span.end_time_unix_nano = reader.fixed64()?;
            }
            9 => {
                expect(wire_type, WireType::Len, "attributes")?;
                if let Some(attribute) = read_key_value(reader.len_delimited()?, 0)? {
                    span.attributes.push(attribute);
                }
            }
            13 => {
                expect(wire_type, WireType::Len, "links")?;
                span.links.push(read_link(reader.len_delimited()?)?);
            }
            15 => {
                expect(wire_type, WireType::Len, "status")?;
                let (code, message) = span.status.unwrap_or((0, ""));
                span.status = Some(read_status(reader.len_delimited()?, code, message)?);
            }
            _ => reader.skip(number, wire_type, 0)?,
        }
    }
    Ok(span)
}

fn read_link(bytes: &[u8]) -> Result<LinkInput<'_>> {
    let mut link = LinkInput {
        trace_id: &[],
        span_id: &[],
        attributes: Vec::new(),
    };
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        match number {
            1 => {
                expect(wire_type, WireType::Len, "links.trace_id")?;
                link.trace_id = reader.len_delimited()?;
            }
            2 => {
                expect(wire_type, WireType::Len, "links.span_id")?;
                link.span_id = reader.len_delimited()?;
            }
            4 => {
                expect(wire_type, WireType::Len, "links.attributes")?;
                if let Some(attribute) = read_key_value(reader.len_delimited()?, 0)? {
                    link.attributes.push(attribute);
                }
            }
            _ => reader.skip(number, wire_type, 0)?,
        }
    }
    Ok(link)
}

/// A status merged onto what earlier occurrences of the field said.
fn read_status<'a>(bytes: &'a [u8], mut code: i32, mut message: &'a str) -> Result<(i32, &'a str)> {
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        match number {
            2 => {
                expect(wire_type, WireType::Len, "status.message")?;
                message = reader.text()?;
            }
            3 => {
                expect(wire_type, WireType::Varint, "status.code")?;
                code = reader.varint()? as i32;
            }
            _ => reader.skip(number, wire_type, 0)?,
        }
    }
    Ok((code, message))
}

/// An `AnyValue` being read: the variant set last, with nested arrays and maps kept as the
/// messages they were sent as until they are turned into JSON.
#[derive(Default)]
enum AnyState<'a> {
    #[default]
    Unset,
    Value(ValueRef<'a>),
    /// Every occurrence of an `array_value` (they merge: their values concatenate).
    Array(Vec<&'a [u8]>),
    /// Every occurrence of a `kvlist_value`.
    Kvlist(Vec<&'a [u8]>),
    /// `string_value_strindex` (profiles only): no value here.
    StringIndex,
}

/// A key and its value; `None` when the value is absent (the attribute is dropped).
fn read_key_value(bytes: &[u8], depth: usize) -> Result<Option<AttrRef<'_>>> {
    let mut key = "";
    let mut value = AnyState::Unset;
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        match number {
            1 => {
                expect(wire_type, WireType::Len, "key")?;
                key = reader.text()?;
            }
            2 => {
                expect(wire_type, WireType::Len, "value")?;
                read_any_value(reader.len_delimited()?, &mut value)?;
            }
            _ => reader.skip(number, wire_type, 0)?,
        }
    }
    Ok(finish_value(value, depth)?.map(|value| (key, value)))
}

/// Reads one occurrence of an `AnyValue` onto `state` (protobuf merges repeated occurrences).
fn read_any_value<'a>(bytes: &'a [u8], state: &mut AnyState<'a>) -> Result<()> {
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        match number {
            1 => {
                expect(wire_type, WireType::Len, "string_value")?;
                *state = AnyState::Value(ValueRef::Str(reader.text()?));
            }
            2 => {
                expect(wire_type, WireType::Varint, "bool_value")?;
                *state = AnyState::Value(ValueRef::Bool(reader.varint()? != 0));
            }
            3 => {
                expect(wire_type, WireType::Varint, "int_value")?;
                *state = AnyState::Value(ValueRef::Int(reader.varint()? as i64));
            }
            4 => {
                expect(wire_type, WireType::Fixed64, "double_value")?;
                *state = AnyState::Value(ValueRef::Float(f64::from_bits(reader.fixed64()?)));
            }
            5 => {
                expect(wire_type, WireType::Len, "array_value")?;
                let array = reader.len_delimited()?;
                match state {
                    AnyState::Array(arrays) => arrays.push(array),
                    _ => *state = AnyState::Array(vec![array]),
                }
            }
            6 => {
                expect(wire_type, WireType::Len, "kvlist_value")?;
                let list = reader.len_delimited()?;
                match state {
                    AnyState::Kvlist(lists) => lists.push(list),
                    _ => *state = AnyState::Kvlist(vec![list]),
                }
            }
            7 => {
                expect(wire_type, WireType::Len, "bytes_value")?;
                *state = AnyState::Value(ValueRef::Bytes(reader.len_delimited()?));
            }
            8 => {
                expect(wire_type, WireType::Varint, "string_value_strindex")?;
                reader.varint()?;
                *state = AnyState::StringIndex;
            }
            _ => reader.skip(number, wire_type, 0)?,
        }
    }
    Ok(())
}

fn finish_value(state: AnyState<'_>, depth: usize) -> Result<Option<ValueRef<'_>>> {
    Ok(match state {
        AnyState::Unset | AnyState::StringIndex => None,
        AnyState::Value(value) => Some(value),
        nested => Some(ValueRef::Json(json_of_nested(nested, depth)?.to_string())),
    })
}

/// An array or map (and what it holds) as JSON, as `json_of_values` writes prost's.
fn json_of_nested(state: AnyState<'_>, depth: usize) -> Result<serde_json::Value> {
    if depth >= MAX_VALUE_DEPTH {
        return Err(error("attribute values are nested too deep"));
    }
    match state {
        AnyState::Unset | AnyState::StringIndex => Ok(serde_json::Value::Null),
        AnyState::Value(value) => Ok(json_of_values(&value)),
        AnyState::Array(arrays) => {
            let mut items = Vec::new();
            for array in arrays {
                let mut reader = Reader::new(array);
                while !reader.is_done() {
                    let (number, wire_type) = reader.tag()?;
                    if number == 1 {
                        expect(wire_type, WireType::Len, "array_value.values")?;
                        let mut item = AnyState::Unset;
                        read_any_value(reader.len_delimited()?, &mut item)?;
                        items.push(json_of_nested(item, depth + 1)?);
                    } else {
                        reader.skip(number, wire_type, 0)?;
                    }
                }
            }
            Ok(serde_json::Value::Array(items))
        }
        AnyState::Kvlist(lists) => {
            let mut object = serde_json::Map::new();
            for list in lists {
                let mut reader = Reader::new(list);
                while !reader.is_done() {
                    let (number, wire_type) = reader.tag()?;
                    if number == 1 {
                        expect(wire_type, WireType::Len, "kvlist_value.values")?;
                        let (key, value) = read_entry(reader.len_delimited()?, depth + 1)?;
                        object.insert(key.to_string(), value);
                    } else {
                        reader.skip(number, wire_type, 0)?;
                    }
                }
            }
            Ok(serde_json::Value::Object(object))
        }
    }
}

/// One entry of a map value: its key and value as JSON (null when absent).
fn read_entry(bytes: &[u8], depth: usize) -> Result<(&str, serde_json::Value)> {
    let mut key = "";
    let mut value = AnyState::Unset;
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let (number, wire_type) = reader.tag()?;
        match number {
            1 => {
                expect(wire_type, WireType::Len, "key")?;
                key = reader.text()?;
            }
            2 => {
                expect(wire_type, WireType::Len, "value")?;
                read_any_value(reader.len_delimited()?, &mut value)?;
            }
            _ => reader.skip(number, wire_type, 0)?,
        }
    }
    Ok((key, json_of_nested(value, depth)?))
}
