//! Size at rest: bytes under `blocks/` (Parquet, roll-ups, metas), the WAL and the whole data
//! directory, by kind of file (`columns.rs` breaks the spans files down by column).

use std::path::Path;

use anyhow::Context;

/// File sizes under a directory, by kind.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirSizes {
    pub total: u64,
    pub parquet: u64,
    pub rollup: u64,
    pub meta: u64,
    pub other: u64,
    pub n_parquet_files: usize,
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
                }
                "rollup.json" | "rollup.json.zst" => sizes.rollup += length,
                "meta.json" => sizes.meta += length,
                _ => sizes.other += length,
            }
        }
    }
    Ok(sizes)
}
