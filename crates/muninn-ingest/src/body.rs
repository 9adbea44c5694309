//! Request bodies: `Content-Encoding` handling with a hard cap on the decompressed size (so a
//! gzip bomb costs at most the cap), and the error type of this crate.

use std::borrow::Cow;
use std::fmt;

/// What kind of input problem this is; the server maps each kind to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestErrorKind {
    /// The body is not well-formed JSON (400).
    Malformed,
    /// The body, or its decompressed form, is larger than allowed (413).
    TooLarge,
    /// An unsupported `Content-Encoding` (415).
    UnsupportedEncoding,
    /// The body claims an encoding it does not have, e.g. broken gzip (400).
    BadEncoding,
}

/// An error that refuses a whole request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestError {
    pub kind: IngestErrorKind,
    pub message: String,
    /// For `Malformed`: 1-based line and column of the problem.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl IngestError {
    pub(crate) fn new(kind: IngestErrorKind, message: impl Into<String>) -> Self {
        IngestError {
            kind,
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for IngestError {}

/// Undoes `Content-Encoding` (`gzip` or `identity`), refusing output past `max_bytes`.
pub fn decompress<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    max_bytes: usize,
) -> Result<Cow<'a, [u8]>, IngestError> {
    let encoding = content_encoding
        .map(str::trim)
        .unwrap_or("identity")
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => {
            if body.len() > max_bytes {
                return Err(too_large(max_bytes));
            }
            Ok(Cow::Borrowed(body))
        }
        "gzip" | "x-gzip" => gunzip(body, max_bytes).map(Cow::Owned),
        other => Err(IngestError::new(
            IngestErrorKind::UnsupportedEncoding,
            format!("Content-Encoding {other:?} is not supported; use gzip or identity"),
        )),
    }
}

/// Inflates every gzip member of `body` into one vector, refusing output past `max_bytes`.
///
/// The vector is sized once from the last member's trailer (its uncompressed size modulo 2³²,
/// a hint that a lying body only makes grow) and inflated into directly: `read_to_end` over a
/// decoder zeroed every chunk of it first and grew it by copies, a sixth of the server's CPU
/// per request in a profile.
fn gunzip(body: &[u8], max_bytes: usize) -> Result<Vec<u8>, IngestError> {
    let bad = |detail: &dyn fmt::Display| {
        IngestError::new(
            IngestErrorKind::BadEncoding,
            format!("body is not valid gzip: {detail}"),
        )
    };
    let hint = body
        .len()
        .checked_sub(4)
        .map(|at| u32::from_le_bytes(body[at..].try_into().expect("four bytes")) as usize)
        .unwrap_or(0);
    // One byte past the cap, so that a body of exactly the cap is told from a larger one.
    let limit = max_bytes.saturating_add(1);
    // Deflate expands at most 1,032 times: a larger claim is a lie, not worth reserving for.
    let hint = hint.min(body.len().saturating_mul(1032)).min(limit);
    let mut output = Vec::with_capacity(hint.max(64));
    let mut input = body;
    loop {
        let mut inflater = flate2::Decompress::new_gzip(15);
        loop {
            if output.len() == output.capacity() {
                if output.len() >= limit {
                    return Err(too_large(max_bytes));
                }
                output.reserve((output.len().max(4096)).min(limit - output.len()));
            }
            let before = inflater.total_in();
            let produced_before = output.len();
            let status = inflater
                .decompress_vec(input, &mut output, flate2::FlushDecompress::None)
                .map_err(|error| bad(&error))?;
            let consumed = (inflater.total_in() - before) as usize;
            let produced = output.len() - produced_before;
            input = &input[consumed..];
            if output.len() > max_bytes {
                return Err(too_large(max_bytes));
            }
            match status {
                flate2::Status::StreamEnd => break,
                // With room left to write, no progress means the input ended inside a member.
                _ if consumed == 0 && produced == 0 => {
                    return Err(bad(&"the body ends inside a gzip member"));
                }
                flate2::Status::Ok | flate2::Status::BufError => {}
            }
        }
        // Members may follow one another (RFC 1952 §2.2), as `gzip a b` writes them.
        if input.is_empty() {
            return Ok(output);
        }
    }
}

fn too_large(max_bytes: usize) -> IngestError {
    IngestError::new(
        IngestErrorKind::TooLarge,
        format!(
            "decompressed body is larger than the limit of {max_bytes} bytes; send smaller batches"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// No cap (`usize::MAX`) means no cap, not an empty body.
    #[test]
    fn the_largest_cap_decompresses_everything() {
        let text = b"{\"spans\":[]}".repeat(100);
        let compressed = gzip(&text);
        let body = decompress(&compressed, Some("gzip"), usize::MAX).unwrap();
        assert_eq!(&body[..], &text[..]);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_cap() {
        let bomb = gzip(&vec![b' '; 50 << 20]);
        assert!(bomb.len() < 100_000);
        let error = decompress(&bomb, Some("gzip"), 1 << 20).unwrap_err();
        assert_eq!(error.kind, IngestErrorKind::TooLarge);
    }

    #[test]
    fn gzip_round_trips_and_unknown_encodings_are_named() {
        assert_eq!(
            decompress(&gzip(b"[1]"), Some("GZIP"), 100)
                .unwrap()
                .as_ref(),
            b"[1]"
        );
        let error = decompress(b"x", Some("br"), 100).unwrap_err();
        assert_eq!(error.kind, IngestErrorKind::UnsupportedEncoding);
        assert!(error.message.contains("\"br\""));
        assert_eq!(
            decompress(b"not gzip", Some("gzip"), 100).unwrap_err().kind,
            IngestErrorKind::BadEncoding
        );
    }

    /// Members follow one another as `gzip a b` or a sender's appending writer makes them.
    #[test]
    fn every_gzip_member_is_inflated() {
        let mut body = gzip(b"[{\"a\":1},");
        body.extend(gzip(b"{\"b\":2}]"));
        let inflated = decompress(&body, Some("gzip"), 100).unwrap();
        assert_eq!(&inflated[..], b"[{\"a\":1},{\"b\":2}]");
    }

    /// The trailer's size sizes the output before inflating; a body that lies about it is still
    /// refused as bad gzip, as `gzip -t` refuses it (a length error), whatever it claims.
    #[test]
    fn a_lying_size_in_the_trailer_is_bad_gzip() {
        let text = b"0123456789".repeat(10_000);
        for claim in [0_u32, 7, 100_001, u32::MAX] {
            let mut body = gzip(&text);
            let at = body.len() - 4;
            body[at..].copy_from_slice(&claim.to_le_bytes());
            let error = decompress(&body, Some("gzip"), 1 << 20).unwrap_err();
            assert_eq!(error.kind, IngestErrorKind::BadEncoding, "claim {claim}");
        }
    }

    #[test]
    fn a_body_of_exactly_the_cap_passes_and_one_byte_more_is_refused() {
        let text = vec![b'x'; 10_000];
        assert_eq!(
            decompress(&gzip(&text), Some("gzip"), 10_000)
                .unwrap()
                .len(),
            10_000
        );
        let error = decompress(&gzip(&text), Some("gzip"), 9_999).unwrap_err();
        assert_eq!(error.kind, IngestErrorKind::TooLarge);
        assert!(error.message.contains("9999"), "{}", error.message);
    }

    /// A body cut short, inside a member or in another's header, is bad gzip, not a shorter body.
    #[test]
    fn a_truncated_or_damaged_body_is_bad_gzip() {
        let body = gzip(&b"0123456789".repeat(1_000));
        for cut in [1, 10, body.len() / 2, body.len() - 1] {
            let error = decompress(&body[..cut], Some("gzip"), 1 << 20).unwrap_err();
            assert_eq!(error.kind, IngestErrorKind::BadEncoding, "cut at {cut}");
            assert!(
                error.message.starts_with("body is not valid gzip"),
                "{}",
                error.message
            );
        }
        let mut two = body.clone();
        two.extend_from_slice(&body[..5]);
        assert_eq!(
            decompress(&two, Some("gzip"), 1 << 20).unwrap_err().kind,
            IngestErrorKind::BadEncoding
        );
        let mut flipped = body.clone();
        let at = flipped.len() - 6;
        flipped[at] ^= 0xff;
        assert_eq!(
            decompress(&flipped, Some("gzip"), 1 << 20)
                .unwrap_err()
                .kind,
            IngestErrorKind::BadEncoding,
            "a damaged CRC"
        );
    }
}
