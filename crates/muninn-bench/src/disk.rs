//! Size at rest: bytes under `blocks/` (Parquet, roll-ups, metas), the WAL and the whole data
//! directory, and where the Parquet bytes go, column by column, from the files' footers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use parquet::file::metadata::ParquetMetaDataReader;

/// File sizes under a directory, by kind.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirSizes {
    pub total: u64,
    pub parquet: u64,
    pub rollup: u64,
    pub meta: u64,
    pub other: u64,
    pub n_parquet_files: usize,
    pub parquet_paths: Vec<PathBuf>,
}

/// Sums the sizes of every file below `dir` (0 when it does not exist).
pub(crate) fn dir_sizes(dir: &Path) -> anyhow::Result<DirSizes> {
    let mut sizes = DirSizes::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let metadata = entry
                .metadata()
                .with_context(|| format!("reading {}", entry.path().display()))?;
            if metadata.is_dir() {
                pending.push(entry.path());
                continue;
            }
            let length = metadata.len();
            sizes.total += length;
            let name = entry.file_name();
            match name.to_str().unwrap_or_default() {
                name if name.ends_with(".parquet") => {
                    sizes.parquet += length;
                    sizes.n_parquet_files += 1;
                    sizes.parquet_paths.push(entry.path());
                }
                "rollup.json" => sizes.rollup += length,
                "meta.json" => sizes.meta += length,
                _ => sizes.other += length,
            }
        }
    }
    Ok(sizes)
}

/// Parquet bytes by what they hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParquetBreakdown {
    /// Column name → compressed bytes of its column chunks (data and dictionary pages).
    pub columns: BTreeMap<String, u64>,
    pub bloom_filters: u64,
    pub page_indexes: u64,
    /// Footers and whatever else the file holds.
    pub rest: u64,
    pub n_row_groups: usize,
}

/// Reads the footers of the given Parquet files and attributes their bytes.
pub(crate) fn parquet_breakdown(paths: &[PathBuf]) -> anyhow::Result<ParquetBreakdown> {
    let mut breakdown = ParquetBreakdown::default();
    for path in paths {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let file_bytes = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .with_context(|| format!("reading the Parquet footer of {}", path.display()))?;
        let mut accounted = 0u64;
        for row_group in metadata.row_groups() {
            breakdown.n_row_groups += 1;
            for column in row_group.columns() {
                let compressed = u64::try_from(column.compressed_size()).unwrap_or_default();
                *breakdown
                    .columns
                    .entry(column.column_path().string())
                    .or_default() += compressed;
                let bloom = column
                    .bloom_filter_length()
                    .map(|length| length.max(0) as u64)
                    .unwrap_or_default();
                let indexes = column
                    .column_index_length()
                    .map(|length| length.max(0) as u64)
                    .unwrap_or_default()
                    + column
                        .offset_index_length()
                        .map(|length| length.max(0) as u64)
                        .unwrap_or_default();
                breakdown.bloom_filters += bloom;
                breakdown.page_indexes += indexes;
                accounted += compressed + bloom + indexes;
            }
        }
        breakdown.rest += file_bytes.saturating_sub(accounted);
    }
    Ok(breakdown)
}
