//! A file handed to the object store while it is being written: the bytes a writer produces go
//! out a part at a time through a multipart upload, so memory holds at most a part being filled
//! and `MAX_PARTS_IN_FLIGHT` on their way, however large the file grows (a compaction's output
//! of millions of spans).

use std::io;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::runtime::Handle;

use crate::error::StoreError;

/// The size of a part: above the 5 MiB that S3-API stores require of every part but the last.
const PART_BYTES: usize = 8 << 20;

/// Parts being uploaded at once; a writer waits for one to finish before starting another.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// An `io::Write` into an object of the store. Writes must run where the thread may block (in
/// `tokio::task::block_in_place`): a write that fills a part waits while too many are in flight.
pub(crate) struct UploadSink {
    path: Path,
    upload: WriteMultipart,
    handle: Handle,
    written: u64,
    crc32: crc32fast::Hasher,
}

impl UploadSink {
    /// Starts the upload of `path`; the object appears only when `finish` returns.
    pub(crate) async fn start(
        store: &Arc<dyn ObjectStore>,
        path: &Path,
    ) -> Result<UploadSink, StoreError> {
        let upload = store
            .put_multipart(path)
            .await
            .map_err(|error| StoreError::object_store(path, error))?;
        Ok(UploadSink {
            path: path.clone(),
            upload: WriteMultipart::new_with_chunk_size(upload, PART_BYTES),
            handle: Handle::current(),
            written: 0,
            crc32: crc32fast::Hasher::new(),
        })
    }

    /// Uploads what is left and completes the upload; the object's size in bytes and its
    /// CRC-32.
    pub(crate) async fn finish(self) -> Result<(u64, u32), StoreError> {
        self.upload
            .finish()
            .await
            .map_err(|error| StoreError::object_store(&self.path, error))?;
        Ok((self.written, self.crc32.finalize()))
    }
}

impl io::Write for UploadSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.upload.write(buf);
        self.written += buf.len() as u64;
        self.crc32.update(buf);
        self.handle
            .block_on(self.upload.wait_for_capacity(MAX_PARTS_IN_FLIGHT))
            .map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use object_store::ObjectStoreExt;

    use super::*;
    use crate::fs::{LocalDir, OsFileSystem};

    /// A file of several parts arrives whole, in order, and only when finished.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_larger_than_a_part_is_uploaded_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalDir::new(dir.path(), Arc::new(OsFileSystem)));
        let path = Path::from("blocks/b1/spans.parquet");
        let content: Vec<u8> = (0..(2 * PART_BYTES + 12_345))
            .map(|index| (index % 251) as u8)
            .collect();
        let mut sink = UploadSink::start(&store, &path).await.unwrap();
        tokio::task::block_in_place(|| {
            for chunk in content.chunks(100_000) {
                sink.write_all(chunk).unwrap();
            }
        });
        assert!(
            store.head(&path).await.is_err(),
            "the object appears only when the upload is finished"
        );
        assert_eq!(
            sink.finish().await.unwrap(),
            (content.len() as u64, crc32fast::hash(&content))
        );
        let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert!(
            stored.as_ref() == content.as_slice(),
            "the bytes come back as written"
        );
    }
}
