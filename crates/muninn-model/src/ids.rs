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
    let mut out = [0u8; N];
    for (index, pair) in bytes.chunks_exact(2).enumerate() {
        let high = hex_value(pair[0]).ok_or(IdError::NotHex)?;
        let low = hex_value(pair[1]).ok_or(IdError::NotHex)?;
        out[index] = (high << 4) | low;
    }
    if out.iter().all(|byte| *byte == 0) {
        return Err(IdError::AllZero);
    }
    Ok(out)
}

fn hex_value(char: u8) -> Option<u8> {
    match char {
        b'0'..=b'9' => Some(char - b'0'),
        b'a'..=b'f' => Some(char - b'a' + 10),
        b'A'..=b'F' => Some(char - b'A' + 10),
        _ => None,
    }
}

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
}
