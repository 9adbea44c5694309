//! The one read path of a v1 or v2 `spans.parquet`: the row groups to read (those whose bloom filter
//! may hold what is looked for, or all), a row filter on a few columns evaluated before
//! anything else is decoded, and the columns to decode for the rows it keeps. Every query of
//! `mod.rs` is these three pieces and a decoder.

use std::fmt;

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::schema::types::SchemaDescriptor;

use super::filter::Filter;
use super::predicate::Predicate;
use crate::block::reader::ObjectReader;
use crate::error::StoreError;

/// A Parquet file and its footer, read once.
pub(super) struct ParquetFile {
    reader: ObjectReader,
    metadata: ArrowReaderMetadata,
}

/// What one read of a file reads.
pub(super) struct Read {
    /// The row groups to read, in file order; `None`: all of them.
    pub row_groups: Option<Vec<usize>>,
    /// The rows of those row groups that may hold what is looked for (pages ruled out by
    /// their statistics skipped); `None`: all of them.
    pub selection: Option<RowSelection>,
    /// The rows to keep; `None`: every row.
    pub predicate: Option<Predicate>,
    /// The leaf columns to decode for the rows kept; `None`: every column.
    pub projection: Option<Vec<usize>>,
}

/// The row groups whose bloom filter may hold what `may_hold` checks, and those without one.
pub(super) fn candidates(blooms: &[Option<Sbbf>], may_hold: impl Fn(&Sbbf) -> bool) -> Vec<usize> {
    blooms
        .iter()
        .enumerate()
        .filter(|(_, bloom)| bloom.as_ref().is_none_or(&may_hold))
        .map(|(row_group_idx, _)| row_group_idx)
        .collect()
}

impl ParquetFile {
    /// Reads the footer.
    pub(super) async fn open(mut reader: ObjectReader) -> Result<Self, StoreError> {
        let metadata = ArrowReaderMetadata::load_async(
            &mut reader,
            // The offset index lets a read skip the pages of columns where the row filter
            // kept no row (a search decodes trace ids only where something matched); the
            // column index (written for `trace_id` alone in v2) lets a trace look-up pick the
            // pages of its trace before decoding anything.
            ArrowReaderOptions::new()
                .with_offset_index_policy(PageIndexPolicy::Optional)
                .with_column_index_policy(PageIndexPolicy::Optional),
        )
        .await
        .map_err(|error| StoreError::corrupt(format!("{}: {error}", reader.path())))?;
        Ok(ParquetFile { reader, metadata })
    }

    /// How many rows one row group has (0 past the last).
    pub(super) fn row_group_len(&self, row_group: usize) -> usize {
        let metadata = self.metadata.metadata();
        if row_group >= metadata.num_row_groups() {
            return 0;
        }
        usize::try_from(metadata.row_group(row_group).num_rows()).unwrap_or(0)
    }

    /// The bytes the decoded footer holds in memory (page indexes included).
    pub(super) fn memory_bytes(&self) -> u64 {
        self.metadata.metadata().memory_size() as u64
    }

    /// An error about this file.
    pub(super) fn error(&self, error: impl fmt::Display) -> StoreError {
        StoreError::corrupt(format!("{}: {error}", self.reader.path()))
    }

    pub(super) fn schema(&self) -> &SchemaDescriptor {
        self.metadata.parquet_schema()
    }

    /// The index of the leaf column `name`, or an error naming the file and the column.
    pub(super) fn leaf(&self, name: &str) -> Result<usize, StoreError> {
        self.schema()
            .columns()
            .iter()
            .position(|column| column.name() == name)
            .ok_or_else(|| self.error(format!("no column {name:?}")))
    }

    /// Reads the rows and columns `read` asks for.
    pub(super) async fn read(&self, read: Read) -> Result<Vec<RecordBatch>, StoreError> {
        if read.row_groups.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let schema = self.schema();
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.reader.clone(),
            self.metadata.clone(),
        );
        if let Some(row_groups) = read.row_groups {
            builder = builder.with_row_groups(row_groups);
        }
        if let Some(selection) = read.selection {
            builder = builder.with_row_selection(selection);
        }
        if let Some(predicate) = read.predicate {
            let mask = ProjectionMask::leaves(schema, predicate.leaves);
            builder = builder.with_row_filter(RowFilter::new(vec![Box::new(
                ArrowPredicateFn::new(mask, predicate.keep),
            )]));
        }
        if let Some(leaves) = read.projection {
            builder = builder.with_projection(ProjectionMask::leaves(schema, leaves));
        }
        let stream = builder.build().map_err(|error| self.error(error))?;
        stream
            .try_collect()
            .await
            .map_err(|error| self.error(error))
    }

    /// The rows of `row_groups` (in that order) on pages of the fixed-size leaf column `leaf`
    /// whose smallest and largest values `may_hold` accepts; `None` where the file has no
    /// column index for it (every row is then read). The column's values must be sorted within
    /// each row group for this to skip anything, as `trace_id`'s are.
    pub(super) fn pages_holding(
        &self,
        leaf: usize,
        row_groups: &[usize],
        may_hold: impl Fn(&[u8], &[u8]) -> bool,
    ) -> Option<RowSelection> {
        let metadata = self.metadata.metadata();
        let page_index = metadata.page_index()?;
        let mut selectors = Vec::new();
        for &row_group in row_groups {
            let n_rows = usize::try_from(metadata.row_group(row_group).num_rows()).ok()?;
            let pages = page_index.offset_index(row_group, leaf)?.page_locations();
            let ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(index) =
                page_index.column_index(row_group, leaf)?
            else {
                return None;
            };
            for (page, location) in pages.iter().enumerate() {
                let first = usize::try_from(location.first_row_index).ok()?;
                let end = match pages.get(page + 1) {
                    Some(next) => usize::try_from(next.first_row_index).ok()?,
                    None => n_rows,
                };
                let n = end.checked_sub(first)?;
                let keep = match (index.min_value(page), index.max_value(page)) {
                    (Some(min), Some(max)) => may_hold(min, max),
                    _ => true,
                };
                selectors.push(if keep {
                    RowSelector::select(n)
                } else {
                    RowSelector::skip(n)
                });
            }
        }
        Some(RowSelection::from(selectors))
    }

    /// The smallest and largest value of one leaf column in each row group, as bytes (`None`
    /// where the file has no statistics). Truncated statistics still bound the values.
    pub(super) fn byte_ranges(&self, leaf: usize) -> Vec<Option<(Vec<u8>, Vec<u8>)>> {
        self.metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|row_group| {
                let statistics = row_group.column(leaf).statistics()?;
                Some((
                    statistics.min_bytes_opt()?.to_vec(),
                    statistics.max_bytes_opt()?.to_vec(),
                ))
            })
            .collect()
    }

    /// The bloom filter of one leaf column in each row group, read once to learn its size and
    /// then left in the file to be probed ([`Filter`]).
    pub(super) async fn filters_in_file(
        &self,
        leaf: usize,
    ) -> Result<Vec<Option<Filter>>, StoreError> {
        let blooms = self.blooms(leaf).await?;
        let row_groups = self.metadata.metadata().row_groups();
        Ok(blooms
            .into_iter()
            .zip(row_groups)
            .map(|(bloom, row_group)| {
                let column = row_group.column(leaf);
                bloom.map(|bloom| {
                    Filter::locate(
                        bloom,
                        column.bloom_filter_offset(),
                        column.bloom_filter_length(),
                    )
                })
            })
            .collect())
    }

    /// The bytes of `ranges` of the file, in that order.
    pub(super) async fn read_ranges(
        &self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> Result<Vec<bytes::Bytes>, StoreError> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        self.reader
            .clone()
            .get_byte_ranges(ranges)
            .await
            .map_err(|error| self.error(error))
    }

    /// The bloom filter of one leaf column in each row group (`None` where there is none).
    pub(super) async fn blooms(&self, leaf: usize) -> Result<Vec<Option<Sbbf>>, StoreError> {
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.reader.clone(),
            self.metadata.clone(),
        );
        let n_row_groups = self.metadata.metadata().num_row_groups();
        let mut blooms = Vec::with_capacity(n_row_groups);
        for row_group_idx in 0..n_row_groups {
            blooms.push(
                builder
                    .get_row_group_column_bloom_filter(row_group_idx, leaf)
                    .await
                    .map_err(|error| self.error(error))?,
            );
        }
        Ok(blooms)
    }
}
