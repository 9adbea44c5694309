//! A check of a Parquet footer's thrift before the parquet crate decodes it: every list, set
//! and map must claim no more elements than there are bytes left. parquet 59 skipped the
//! elements of a list of booleans one by one without reading a byte (the compact protocol
//! spends a byte on each boolean in a list), so a damaged footer claiming 2^31 of them cost
//! about 9 s of a core (`fuzz/regressions/block-slow/`); the check stays in front of the
//! versions since, which were not measured on that input. A footer Parquet writers produce
//! always passes; the walk is linear in the footer's bytes.

/// The deepest nesting of structs and containers accepted (parquet's own limit is 64).
const MAX_DEPTH: u8 = 64;

/// Why a footer was refused: what, and at which byte.
pub(crate) type Refusal = String;

/// Walks `footer` (the thrift `FileMetaData`, without the length and magic after it) and
/// refuses it at the first container claiming more elements than bytes remain, or anything
/// that is not compact-protocol thrift.
pub(crate) fn check(footer: &[u8]) -> Result<(), Refusal> {
    let mut walker = Walker {
        bytes: footer,
        at: 0,
    };
    walker.structure(MAX_DEPTH)
}

struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Walker<'_> {
    fn refuse(&self, what: &str) -> Refusal {
        format!("the footer's thrift at byte {}: {what}", self.at)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    fn byte(&mut self) -> Result<u8, Refusal> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| self.refuse("ends early"))?;
        self.at += 1;
        Ok(byte)
    }

    fn skip(&mut self, n: usize) -> Result<(), Refusal> {
        if n > self.remaining() {
            return Err(self.refuse(&format!("{n} bytes claimed, {} left", self.remaining())));
        }
        self.at += n;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, Refusal> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.refuse("a varint longer than 10 bytes"))
    }

    /// A count of elements, which must fit in what is left: each takes at least one byte.
    fn count(&mut self, count: u64, each: usize) -> Result<usize, Refusal> {
        let needed = usize::try_from(count)
            .ok()
            .and_then(|count| count.checked_mul(each));
        match needed {
            Some(needed) if needed <= self.remaining() => Ok(count as usize),
            _ => Err(self.refuse(&format!(
                "a container claims {count} elements, {} bytes left",
                self.remaining()
            ))),
        }
    }

    fn structure(&mut self, depth: u8) -> Result<(), Refusal> {
        let depth = depth
            .checked_sub(1)
            .ok_or_else(|| self.refuse("nested too deep"))?;
        loop {
            let header = self.byte()?;
            if header == 0 {
                return Ok(());
            }
            if header >> 4 == 0 {
                // A field id of its own, after the header (zigzag i16).
                self.varint()?;
            }
            match header & 0x0f {
                // A boolean field's value is in its header.
                1 | 2 => {}
                kind => self.value(kind, depth)?,
            }
        }
    }

    fn value(&mut self, kind: u8, depth: u8) -> Result<(), Refusal> {
        match kind {
            // Booleans as elements of a container: a byte each.
            1..=3 => self.skip(1),
            4..=6 => self.varint().map(drop),
            7 => self.skip(8),
            8 => {
                let length = self.varint()?;
                let length = usize::try_from(length).map_err(|_| self.refuse("a huge binary"))?;
                self.skip(length)
            }
            9 | 10 => {
                let depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| self.refuse("nested too deep"))?;
                let header = self.byte()?;
                let short = u64::from(header >> 4);
                let count = if short == 15 { self.varint()? } else { short };
                let count = self.count(count, 1)?;
                for _ in 0..count {
                    self.value(header & 0x0f, depth)?;
                }
                Ok(())
            }
            11 => {
                let depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| self.refuse("nested too deep"))?;
                let count = self.varint()?;
                if count == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                let count = self.count(count, 2)?;
                for _ in 0..count {
                    self.value(kinds >> 4, depth)?;
                    self.value(kinds & 0x0f, depth)?;
                }
                Ok(())
            }
            12 => self.structure(depth),
            other => Err(self.refuse(&format!("type {other} is not thrift"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The footers of the golden blocks pass.
    #[test]
    fn the_footers_parquet_writes_pass() {
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let mut checked = 0;
        let mut pending = vec![golden];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.file_name() == Some("spans.parquet".as_ref()) {
                    let file = std::fs::read(&path).unwrap();
                    let end = file.len() - 8;
                    let length = u32::from_le_bytes(file[end..end + 4].try_into().unwrap());
                    let footer = &file[end - length as usize..end];
                    assert_eq!(check(footer), Ok(()), "{}", path.display());
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 16);
    }

    #[test]
    fn a_list_claiming_more_elements_than_bytes_is_refused() {
        // Field 1, a list (type 9) of booleans (type 1) with a long count: 2^31 - 1.
        let footer = [0x19, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00];
        let refusal = check(&footer).unwrap_err();
        assert_eq!(
            refusal,
            "the footer's thrift at byte 7: a container claims 2147483647 elements, 1 bytes left"
        );
        // Three booleans in a list take three bytes.
        assert_eq!(check(&[0x19, 0x31, 1, 2, 1, 0x00]), Ok(()));
        assert!(check(&[0x19, 0x31, 1, 2]).is_err(), "ends early");
        assert!(check(&[0x1d]).is_err(), "type 13 is not thrift");
    }
}
