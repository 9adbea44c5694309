//! Request bodies: `Content-Encoding` handling with a hard cap on the decompressed size (so a
//! gzip bomb costs at most the cap), and the error type of this crate.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

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
        "gzip" | "x-gzip" => {
            let mut output = Vec::with_capacity((body.len() * 4).min(max_bytes));
            let mut decoder =
                flate2::read::MultiGzDecoder::new(body).take((max_bytes as u64).saturating_add(1));
            decoder.read_to_end(&mut output).map_err(|error| {
                IngestError::new(
                    IngestErrorKind::BadEncoding,
                    format!("body is not valid gzip: {error}"),
                )
            })?;
            if output.len() > max_bytes {
                return Err(too_large(max_bytes));
            }
            Ok(Cow::Owned(output))
        }
        other => Err(IngestError::new(
            IngestErrorKind::UnsupportedEncoding,
            format!("Content-Encoding {other:?} is not supported; use gzip or identity"),
        )),
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
}
