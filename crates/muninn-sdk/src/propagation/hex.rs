//! Lowercase hex for ids in headers: strict decoding (uppercase is refused) and encoding into
//! caller-provided buffers, so writing a header needs no allocation.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The value of one lowercase hex digit; uppercase and anything else is `None`.
fn digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// Decodes exactly `2 * N` lowercase hex characters into `N` bytes.
pub(super) fn decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = (digit(*high)? << 4) | digit(*low)?;
    }
    Some(out)
}

/// Writes `bytes` as lowercase hex into the first `2 * bytes.len()` bytes of `out`.
pub(super) fn encode(bytes: &[u8], out: &mut [u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        if let [high, low] = pair {
            *high = DIGITS[usize::from(byte >> 4)];
            *low = DIGITS[usize::from(byte & 0x0f)];
        }
    }
}

pub(super) fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|byte| *byte == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_lowercase_only() {
        assert_eq!(decode::<2>(b"0aff"), Some([0x0a, 0xff]));
        assert_eq!(decode::<2>(b"0AFF"), None);
        assert_eq!(decode::<2>(b"0af"), None);
        assert_eq!(decode::<2>(b"0afg"), None);
        assert_eq!(decode::<1>(b"-1"), None);
    }

    #[test]
    fn encodes_lowercase() {
        let mut out = [0u8; 6];
        encode(&[0x00, 0xab, 0x9f], &mut out);
        assert_eq!(&out, b"00ab9f");
    }
}
