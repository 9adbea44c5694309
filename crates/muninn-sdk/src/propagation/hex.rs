//! Lowercase hex for ids in headers: strict decoding (uppercase is refused) and encoding into
//! caller-provided buffers, so writing a header needs no allocation.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Each byte's value as a lowercase hex digit, or `INVALID` (uppercase is refused too).
const VALUES: [u8; 256] = {
    let mut values = [INVALID; 256];
    let mut digit = 0;
    while digit < 16 {
        values[DIGITS[digit] as usize] = digit as u8;
        digit += 1;
    }
    values
};
/// Any bit of it set in a looked-up value marks a byte that is not a lowercase hex digit.
const INVALID: u8 = 0xf0;

/// Decodes exactly `2 * N` lowercase hex characters into `N` bytes.
///
/// Without a branch per digit: every digit is looked up, and the invalid bit is checked once
/// at the end (a `traceparent` has 48 digits).
pub(super) fn decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    let mut seen = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let high = VALUES[usize::from(pair[0])];
        let low = VALUES[usize::from(pair[1])];
        seen |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    (seen & INVALID == 0).then_some(out)
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
        // Every byte that is not a lowercase hex digit is refused, in either place of a pair.
        for byte in 0..=u8::MAX {
            let valid = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
            assert_eq!(decode::<1>(&[byte, b'0']).is_some(), valid, "{byte:#04x}");
            assert_eq!(decode::<1>(&[b'0', byte]).is_some(), valid, "{byte:#04x}");
        }
        let all: Vec<u8> = (0..=u8::MAX).collect();
        let mut text = vec![0u8; 512];
        encode(&all, &mut text);
        assert_eq!(decode::<256>(&text).map(|bytes| bytes.to_vec()), Some(all));
    }

    #[test]
    fn encodes_lowercase() {
        let mut out = [0u8; 6];
        encode(&[0x00, 0xab, 0x9f], &mut out);
        assert_eq!(&out, b"00ab9f");
    }
}
