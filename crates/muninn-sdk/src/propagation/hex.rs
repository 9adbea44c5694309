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

/// `byte` in every byte of a word.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

const HIGH_BITS: u64 = splat(0x80);

/// Whether every byte of `word` lies in `low..=high` (both below 0x80), eight bytes at once:
/// for a byte `b` under 0x80, `b + (0x7f - high)` keeps its top bit clear exactly when
/// `b <= high`, and `b + (0x80 - low)` sets it exactly when `b >= low`; neither sum carries
/// into the next byte.
const fn in_range(word: u64, low: u8, high: u8) -> u64 {
    let not_above = !word.wrapping_add(splat(0x7f - high));
    let not_below = word.wrapping_add(splat(0x80 - low));
    not_above & not_below & HIGH_BITS
}

/// Eight lowercase hex characters (a little-endian load) as four bytes (a little-endian
/// `u32`), and whether all eight were lowercase hex digits. Without a branch or a table lookup
/// per character: a `traceparent` has 48 digits, and every consumed message has one.
#[inline(always)]
fn decode_word(word: u64) -> (u32, bool) {
    let ascii = word & HIGH_BITS == 0;
    let digits = in_range(word, b'0', b'9') | in_range(word, b'a', b'f');
    // '0'..'9' are 0x30..0x39, 'a'..'f' 0x61..0x66: the low nibble, plus 9 for a letter
    // (bit 6 set).
    let nibbles = (word & splat(0x0f)) + ((word >> 6) & splat(0x01)) * 9;
    // Character 2k is the high nibble of byte k: pair them in 16-bit lanes, then pack the
    // lanes.
    let lanes = ((nibbles & 0x000f_000f_000f_000f) << 4) | ((nibbles >> 8) & 0x000f_000f_000f_000f);
    let packed = (lanes | (lanes >> 8)) & 0x0000_ffff_0000_ffff;
    let packed = (packed | (packed >> 16)) & 0xffff_ffff;
    (packed as u32, ascii && digits == HIGH_BITS)
}

/// Decodes 16 lowercase hex characters (a span id) into 8 bytes, as the little-endian integer
/// whose `to_le_bytes` they are.
///
/// Ids are decoded into integers, eight characters at a time, and stored once by the caller:
/// writing bytes one by one and reading the id back whole would stall on store forwarding.
#[inline(always)]
pub(super) fn decode_u64(text: &[u8]) -> Option<u64> {
    let [low, high] = words(text)?;
    let (low, low_ok) = decode_word(low);
    let (high, high_ok) = decode_word(high);
    (low_ok & high_ok).then_some(u64::from(low) | (u64::from(high) << 32))
}

/// Decodes 32 lowercase hex characters (a trace id) into 16 bytes, as the little-endian
/// integer whose `to_le_bytes` they are.
#[inline(always)]
pub(super) fn decode_u128(text: &[u8]) -> Option<u128> {
    if text.len() != 32 {
        return None;
    }
    let (low, high) = text.split_at(16);
    Some(u128::from(decode_u64(low)?) | (u128::from(decode_u64(high)?) << 64))
}

/// Decodes 2 lowercase hex characters (a version or flags byte).
#[inline]
pub(super) fn decode_byte(text: &[u8]) -> Option<u8> {
    let [high, low] = text else {
        return None;
    };
    let (high, low) = (VALUES[usize::from(*high)], VALUES[usize::from(*low)]);
    ((high | low) & INVALID == 0).then_some((high << 4) | low)
}

/// Exactly 16 bytes as two little-endian words.
#[inline]
fn words(text: &[u8]) -> Option<[u64; 2]> {
    let text: &[u8; 16] = text.try_into().ok()?;
    let mut low = [0u8; 8];
    let mut high = [0u8; 8];
    low.copy_from_slice(&text[..8]);
    high.copy_from_slice(&text[8..]);
    Some([u64::from_le_bytes(low), u64::from_le_bytes(high)])
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
        assert_eq!(decode_byte(b"0a"), Some(0x0a));
        assert_eq!(decode_byte(b"0A"), None);
        assert_eq!(decode_byte(b"0"), None);
        assert_eq!(decode_byte(b"-1"), None);
        assert_eq!(
            decode_u64(b"0123456789abcdef").map(u64::to_le_bytes),
            Some([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef])
        );
        assert_eq!(decode_u64(b"0123456789abcde"), None);
        assert_eq!(decode_u64(b"0123456789abcdef0"), None);
        assert_eq!(
            decode_u128(b"000102030405060708090a0b0c0d0e0f").map(u128::to_le_bytes),
            Some(std::array::from_fn(|index| index as u8))
        );
        assert_eq!(decode_u128(b"000102030405060708090a0b0c0d0e0"), None);
        // Every byte that is not a lowercase hex digit is refused, in either place of a pair,
        // and in every position of the words read eight characters at a time.
        for byte in 0..=u8::MAX {
            let valid = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
            assert_eq!(decode_byte(&[byte, b'0']).is_some(), valid, "{byte:#04x}");
            assert_eq!(decode_byte(&[b'0', byte]).is_some(), valid, "{byte:#04x}");
            for at in 0..32 {
                let mut text = *b"0123456789abcdeffedcba9876543210";
                text[at] = byte;
                let decoded = decode_u128(&text);
                assert_eq!(decoded.is_some(), valid, "{byte:#04x} at {at}");
                if let Some(decoded) = decoded {
                    let mut again = [0u8; 32];
                    encode(&decoded.to_le_bytes(), &mut again);
                    assert_eq!(again, text);
                }
            }
        }
        // Every byte value decodes and encodes back.
        let all: Vec<u8> = (0..=u8::MAX).collect();
        let mut text = vec![0u8; 512];
        encode(&all, &mut text);
        let decoded: Vec<u8> = text
            .chunks_exact(32)
            .filter_map(decode_u128)
            .flat_map(u128::to_le_bytes)
            .collect();
        assert_eq!(decoded, all);
    }

    #[test]
    fn encodes_lowercase() {
        let mut out = [0u8; 6];
        encode(&[0x00, 0xab, 0x9f], &mut out);
        assert_eq!(&out, b"00ab9f");
    }
}
