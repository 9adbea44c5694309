//! Trace and span identifiers: fixed-size byte arrays that read and print as lowercase hex,
//! following W3C Trace Context (all-zero ids are invalid).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be {expected} hex characters, got {got}")]
    Length { expected: usize, got: usize },
    #[error("must contain only hex characters 0-9 a-f")]
    NotHex,
    #[error("must not be all zeros")]
    AllZero,
}

fn decode_hex<const N: usize>(text: &str) -> Result<[u8; N], IdError> {
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return Err(IdError::Length {
            expected: N * 2,
            got: bytes.len(),
        });
    }
    // A table and one check at the end, not a branch per character: ids are parsed several
    // times per span at ingest (trace, span, parent, links).
    let mut out = [0u8; N];
    let mut invalid = 0u8;
    for (index, pair) in bytes.chunks_exact(2).enumerate() {
        let (high, low) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
        invalid |= high | low;
        out[index] = (high << 4) | (low & 0x0f);
    }
    if invalid & NOT_HEX != 0 {
        return Err(IdError::NotHex);
    }
    if out.iter().all(|byte| *byte == 0) {
        return Err(IdError::AllZero);
    }
    Ok(out)
}

/// Marks a byte that is not a hex digit in [`HEX`].
const NOT_HEX: u8 = 0x80;

/// Each byte's value as a hex digit (either case), or [`NOT_HEX`].
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 10 {
        table[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        table[b'a' as usize + letter] = 10 + letter as u8;
        table[b'A' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    table
};

fn write_hex(bytes: &[u8], formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buffer = [0u8; 32];
    for (index, byte) in bytes.iter().enumerate() {
        buffer[index * 2] = DIGITS[(byte >> 4) as usize];
        buffer[index * 2 + 1] = DIGITS[(byte & 0x0f) as usize];
    }
    // The buffer holds only ASCII hex digits, so this cannot fail.
    formatter.write_str(std::str::from_utf8(&buffer[..bytes.len() * 2]).unwrap_or_default())
}

/// A 16-byte trace id, printed as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id, printed as 16 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// Parses 32 hex characters (either case); all zeros is invalid.
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        decode_hex::<16>(text).map(TraceId)
    }
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl TraceId {
    /// Parses a trace id as Zipkin and Jaeger write them: 1 to 32 hex characters, the
    /// missing leading zeros implied (a 64-bit id is 16 characters, the high half zero).
    pub fn from_short_hex(text: &str) -> Result<Self, IdError> {
        pad_hex::<32>(text).and_then(|padded| TraceId::from_hex(&padded))
    }

    /// 16 hex characters when the high half is zero (a 64-bit id), 32 otherwise: how Zipkin
    /// and Jaeger print trace ids.
    pub fn to_short_hex(&self) -> String {
        let full = self.to_hex();
        if self.0[..8].iter().all(|byte| *byte == 0) {
            full[16..].to_string()
        } else {
            full
        }
    }
}

/// Left-pads 1 to `N` characters with zeros to `N`.
fn pad_hex<const N: usize>(text: &str) -> Result<String, IdError> {
    if text.is_empty() || text.len() > N {
        return Err(IdError::Length {
            expected: N,
            got: text.len(),
        });
    }
    Ok(format!("{text:0>N$}"))
}

impl SpanId {
    /// Parses 1 to 16 hex characters, the missing leading zeros implied (Zipkin, Jaeger).
    pub fn from_short_hex(text: &str) -> Result<Self, IdError> {
        pad_hex::<16>(text).and_then(|padded| SpanId::from_hex(&padded))
    }

    /// Parses 16 hex characters (either case); all zeros is invalid.
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        decode_hex::<8>(text).map(SpanId)
    }
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, formatter)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "TraceId({self})")
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, formatter)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SpanId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_lowercases() {
        let id = TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").unwrap();
        assert_eq!(id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn rejects_bad_ids_with_reasons() {
        assert_eq!(
            TraceId::from_hex("abc"),
            Err(IdError::Length {
                expected: 32,
                got: 3
            })
        );
        assert_eq!(SpanId::from_hex("00f067aa0ba902bz"), Err(IdError::NotHex));
        assert_eq!(SpanId::from_hex("0000000000000000"), Err(IdError::AllZero));
    }

    #[test]
    fn short_ids_imply_leading_zeros() {
        let id = TraceId::from_short_hex("463ac35c9f6413ad").unwrap();
        assert_eq!(id.to_hex(), "0000000000000000463ac35c9f6413ad");
        assert_eq!(id.to_short_hex(), "463ac35c9f6413ad");
        let long = TraceId::from_short_hex("1463ac35c9f6413ad").unwrap();
        assert_eq!(long.to_short_hex(), "0000000000000001463ac35c9f6413ad");
        assert_eq!(
            SpanId::from_short_hex("a").unwrap().to_hex(),
            "000000000000000a"
        );
        assert!(TraceId::from_short_hex("").is_err());
        assert!(TraceId::from_short_hex(&"a".repeat(33)).is_err());
        assert_eq!(SpanId::from_short_hex("0"), Err(IdError::AllZero));
    }

    /// Every byte, in the high and the low place, is read as `u8::from_str_radix` reads it: a
    /// non-hex byte anywhere (also one past ASCII) is `NotHex`, never a wrong id.
    #[test]
    fn every_byte_is_a_hex_digit_exactly_when_the_standard_library_says_so() {
        for byte in 0..=255u8 {
            for place in [0, 1] {
                let mut text = *b"1a";
                text[place] = byte;
                let expected = std::str::from_utf8(&text)
                    .ok()
                    .and_then(|text| u8::from_str_radix(text, 16).ok())
                    .filter(|_| byte != b'+');
                let mut id = [b'0'; 16];
                id[14..].copy_from_slice(&text);
                let parsed = SpanId::from_hex(std::str::from_utf8(&id).unwrap_or("not utf-8"));
                match expected {
                    Some(value) if value != 0 => {
                        assert_eq!(parsed.map(|id| id.0[7]), Ok(value), "byte {byte:#x}")
                    }
                    Some(_) => assert_eq!(parsed, Err(IdError::AllZero)),
                    None => assert!(parsed.is_err(), "byte {byte:#x} at {place}"),
                }
            }
        }
    }
}
