//! Reads Parquet byte ranges through `object_store`, so block look-ups fetch only the footer,
//! the bloom filters and the row groups they need, on a local directory or S3 alike.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

fn to_parquet_error(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

/// A Parquet file in an object store whose size is known from the block's meta.
#[derive(Clone)]
pub(crate) struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    file_size: u64,
}

impl ObjectReader {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, path: Path, file_size: u64) -> Self {
        ObjectReader {
            store,
            path,
            file_size,
        }
    }

    /// The file's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(to_parquet_error)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(to_parquet_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let file_size = self.file_size;
            // The footer's thrift is checked before the parquet crate decodes it
            // (`footer_guard.rs`); then it is read again, in one range, to be decoded.
            if file_size < 12 {
                return Err(ParquetError::General(format!(
                    "{} bytes are not a Parquet file",
                    file_size
                )));
            }
            let tail = self.get_bytes(file_size - 8..file_size).await?;
            if &tail[4..8] != b"PAR1" {
                return Err(ParquetError::General(
                    "the file does not end with Parquet's magic PAR1".into(),
                ));
            }
            let length = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
            if length + 8 > file_size {
                return Err(ParquetError::General(format!(
                    "the footer claims {length} bytes of a {file_size}-byte file"
                )));
            }
            let footer = self
                .get_bytes(file_size - 8 - length..file_size - 8)
                .await?;
            super::footer_guard::check(&footer).map_err(ParquetError::General)?;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some((length + 8) as usize))
                .load_and_finish(self, file_size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
