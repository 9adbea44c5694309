//! Where the bytes at rest go: every `spans.parquet` below `blocks/`, found recursively
//! whatever the block format's directory layout (`blocks/v1/…`, `blocks/v2/…`), is read
//! through its footer alone, and its bytes are attributed to each column (leaf path), the
//! bloom filters, the page indexes, the footer and the rest.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context;
use parquet::file::metadata::ParquetMetaDataReader;

use crate::report::{bytes, thousands};

/// The file every block's spans are in, whatever the format version.
const SPANS_FILE: &str = "spans.parquet";

/// The bytes of every `spans.parquet`, by what they hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpansFiles {
    pub n_files: usize,
    pub total_bytes: u64,
    pub n_rows: u64,
    pub n_row_groups: usize,
    /// First directory below `blocks/` (the format's, e.g. `v1`) → (files, bytes).
    pub by_top_dir: BTreeMap<String, (usize, u64)>,
    /// Leaf column path → compressed bytes of its column chunks (dictionary and data pages
    /// with their headers).
    pub columns: BTreeMap<String, u64>,
    pub bloom_filters: u64,
    /// Column chunks with a bloom filter whose length the footer does not give (older
    /// writers): their filters are counted in `other`.
    pub n_bloom_filters_of_unknown_length: usize,
    pub page_indexes: u64,
    /// The footers (Thrift metadata, its length and the closing magic).
    pub footers: u64,
    /// The rest: the leading magic and anything between the parts above.
    pub other: u64,
    /// Files that could not be read (e.g. deleted by a compaction while being read).
    pub unreadable: Vec<String>,
}

/// Every file named `spans.parquet` below `dir`, in path order (none when `dir` is absent).
fn spans_files_below(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let file_type = entry
                .file_type()
                .with_context(|| format!("reading {}", entry.path().display()))?;
            if file_type.is_dir() {
                pending.push(entry.path());
            } else if entry.file_name() == SPANS_FILE {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The length of a Parquet file's footer: its metadata, the 4-byte length and `PAR1`.
fn footer_bytes(file: &mut std::fs::File) -> std::io::Result<u64> {
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::End(-8))?;
    file.read_exact(&mut tail)?;
    let metadata_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    Ok(u64::from(metadata_len) + 8)
}

fn length(value: Option<i64>) -> u64 {
    value.map_or(0, |length| u64::try_from(length).unwrap_or(0))
}

impl SpansFiles {
    /// Reads the footer of every `spans.parquet` below `blocks_dir`. A file that cannot be
    /// read is listed in `unreadable` and left out of the figures.
    pub(crate) fn read(blocks_dir: &Path) -> anyhow::Result<SpansFiles> {
        let mut files = SpansFiles::default();
        for path in spans_files_below(blocks_dir)? {
            if let Err(error) = files.add(blocks_dir, &path) {
                files
                    .unreadable
                    .push(format!("{}: {error:#}", path.display()));
            }
        }
        Ok(files)
    }

    fn add(&mut self, blocks_dir: &Path, path: &Path) -> anyhow::Result<()> {
        let mut file = std::fs::File::open(path).context("opening")?;
        let file_bytes = file.metadata().context("reading its size")?.len();
        let footer = footer_bytes(&mut file).context("reading the footer's length")?;
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .context("reading the Parquet footer")?;
        let mut columns: Vec<(String, u64)> = Vec::new();
        let (mut bloom_filters, mut page_indexes, mut n_unknown_blooms) = (0u64, 0u64, 0usize);
        for row_group in metadata.row_groups() {
            for column in row_group.columns() {
                columns.push((
                    column.column_path().string(),
                    u64::try_from(column.compressed_size()).unwrap_or(0),
                ));
                match (column.bloom_filter_offset(), column.bloom_filter_length()) {
                    (_, Some(length)) => bloom_filters += length.max(0) as u64,
                    (Some(_), None) => n_unknown_blooms += 1,
                    (None, None) => {}
                }
                page_indexes += length(column.column_index_length().map(i64::from))
                    + length(column.offset_index_length().map(i64::from));
            }
        }
        // Only now that the whole footer was read do its figures count.
        let accounted: u64 =
            columns.iter().map(|(_, size)| size).sum::<u64>() + bloom_filters + page_indexes;
        for (column, size) in columns {
            *self.columns.entry(column).or_default() += size;
        }
        self.bloom_filters += bloom_filters;
        self.n_bloom_filters_of_unknown_length += n_unknown_blooms;
        self.page_indexes += page_indexes;
        self.footers += footer;
        self.other += file_bytes.saturating_sub(accounted + footer);
        self.n_files += 1;
        self.total_bytes += file_bytes;
        self.n_rows += u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
        self.n_row_groups += metadata.num_row_groups();
        let top_dir = path
            .strip_prefix(blocks_dir)
            .ok()
            .and_then(|relative| relative.components().next())
            .filter(|_| path.parent() != Some(blocks_dir))
            .map(|component| component.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".to_string());
        let entry = self.by_top_dir.entry(top_dir).or_default();
        entry.0 += 1;
        entry.1 += file_bytes;
        Ok(())
    }

    /// The table: per column its bytes, bytes per span of `n_spans` and share of all
    /// `spans.parquet` bytes, largest first; then the bloom filters, page indexes, footers and
    /// the rest.
    pub(crate) fn table(&self, n_spans: u64) -> Vec<String> {
        let per_span = |size: u64| size as f64 / n_spans.max(1) as f64;
        let share = |size: u64| 100.0 * size as f64 / self.total_bytes.max(1) as f64;
        let formats = self
            .by_top_dir
            .iter()
            .map(|(dir, (n_files, size))| format!("blocks/{dir}: {n_files}, {}", bytes(*size)))
            .collect::<Vec<_>>()
            .join("; ");
        let mut lines = vec![format!(
            "{SPANS_FILE} files: {} ({formats}), {}, {} rows in {} row groups",
            self.n_files,
            bytes(self.total_bytes),
            thousands(self.n_rows),
            self.n_row_groups
        )];
        let mut rows: Vec<(String, u64)> = self
            .columns
            .iter()
            .map(|(column, size)| (column.clone(), *size))
            .collect();
        rows.sort_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(&right.0)));
        let bloom_label = if self.n_bloom_filters_of_unknown_length > 0 {
            format!(
                "(bloom filters; {} of unknown length in other)",
                self.n_bloom_filters_of_unknown_length
            )
        } else {
            "(bloom filters)".to_string()
        };
        rows.extend([
            (bloom_label, self.bloom_filters),
            ("(page indexes)".to_string(), self.page_indexes),
            ("(footers)".to_string(), self.footers),
            ("(other)".to_string(), self.other),
        ]);
        let width = rows
            .iter()
            .map(|(name, _)| name.chars().count())
            .max()
            .unwrap_or(0)
            .max("column (leaf path)".len());
        lines.push(format!(
            "  {:<width$} {:>10} {:>8} {:>7}",
            "column (leaf path)", "bytes", "B/span", "share"
        ));
        for (name, size) in rows
            .iter()
            .chain([&("total".to_string(), self.total_bytes)])
        {
            lines.push(format!(
                "  {name:<width$} {:>10} {:>8.2} {:>6.1}%",
                bytes(*size),
                per_span(*size),
                share(*size)
            ));
        }
        for problem in &self.unreadable {
            lines.push(format!("  unreadable, left out: {problem}"));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::basic::Type as PhysicalType;
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    use super::*;

    /// A `spans.parquet` of one byte-array column `trace_id` with `n_rows` rows.
    fn write_spans_file(path: &Path, n_rows: usize, bloom_filter: bool) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let schema = Arc::new(
            Type::group_type_builder("spans")
                .with_fields(vec![Arc::new(
                    Type::primitive_type_builder("trace_id", PhysicalType::BYTE_ARRAY)
                        .with_repetition(parquet::basic::Repetition::REQUIRED)
                        .build()
                        .unwrap(),
                )])
                .build()
                .unwrap(),
        );
        let properties = Arc::new(
            WriterProperties::builder()
                .set_bloom_filter_enabled(bloom_filter)
                .build(),
        );
        let file = std::fs::File::create(path).unwrap();
        let mut writer = SerializedFileWriter::new(file, schema, properties).unwrap();
        let mut row_group = writer.next_row_group().unwrap();
        let mut column = row_group.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = (0..n_rows)
            .map(|row| ByteArray::from(format!("{row:032x}").into_bytes()))
            .collect();
        column
            .typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        column.close().unwrap();
        row_group.close().unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn every_spans_file_below_blocks_is_found_and_its_bytes_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = dir.path().join("blocks");
        write_spans_file(
            &blocks.join("v1/dt=2026-01-01/hour=00/a/spans.parquet"),
            100,
            true,
        );
        write_spans_file(
            &blocks.join("v2/dt=2026-01-01/hour=00/b/spans.parquet"),
            50,
            false,
        );
        std::fs::write(blocks.join("v1/dt=2026-01-01/hour=00/a/meta.json"), "{}").unwrap();
        std::fs::create_dir_all(blocks.join("v2/dt=2026-01-01/hour=00/c")).unwrap();
        std::fs::write(
            blocks.join("v2/dt=2026-01-01/hour=00/c/spans.parquet"),
            "not",
        )
        .unwrap();

        let files = SpansFiles::read(&blocks).unwrap();
        assert_eq!(files.n_files, 2);
        assert_eq!(files.n_rows, 150);
        assert_eq!(files.unreadable.len(), 1);
        assert_eq!(
            files.by_top_dir.keys().collect::<Vec<_>>(),
            vec!["v1", "v2"]
        );
        assert!(files.columns["trace_id"] > 0);
        assert!(files.bloom_filters > 0);
        let parts = files.columns.values().sum::<u64>()
            + files.bloom_filters
            + files.page_indexes
            + files.footers
            + files.other;
        assert_eq!(parts, files.total_bytes);
        let table = files.table(150);
        assert!(
            table
                .iter()
                .any(|line| line.trim_start().starts_with("trace_id"))
        );
        assert!(table.last().unwrap().contains("unreadable"));
        assert!(
            SpansFiles::read(&dir.path().join("absent"))
                .unwrap()
                .n_files
                == 0
        );
    }
}
