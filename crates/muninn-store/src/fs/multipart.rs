//! Multipart uploads to a `LocalDir`: parts are written to a temporary file beside the object
//! as they are handed over, so a large object (a compaction's output) never has to be held in
//! memory whole; completing makes the file durable and gives it its name, as a put does, and an
//! upload aborted or dropped before completing leaves nothing behind.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload, PutResult, Result, UploadPart};

use super::open_files::OpenFiles;
use super::{FileSystem, WriteFile, parent_of, temporary_beside};

/// A multipart upload to a local file. Parts are written in the order `put_part` is called
/// (the write happens in that call, on the caller's thread), so the futures it returns are
/// already done and may be awaited in any order.
pub(super) struct LocalUpload {
    fs: Arc<dyn FileSystem>,
    /// The directory's open files: the one at `path` is closed when the upload replaces it.
    open_files: Arc<OpenFiles>,
    location: Path,
    path: PathBuf,
    temporary: PathBuf,
    /// The temporary file while the upload is open; `None` once completed or aborted.
    file: Option<Box<dyn WriteFile>>,
    /// The first write that failed: the upload fails when completed.
    failed: Option<io::Error>,
}

impl fmt::Debug for LocalUpload {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LocalUpload")
            .field("location", &self.location)
            .field("temporary", &self.temporary)
            .finish_non_exhaustive()
    }
}

impl LocalUpload {
    /// Starts an upload to `path` (`location` in errors); its directory must exist.
    pub(super) fn start(
        fs: Arc<dyn FileSystem>,
        open_files: Arc<OpenFiles>,
        location: Path,
        path: PathBuf,
    ) -> io::Result<LocalUpload> {
        let temporary = temporary_beside(&path)?;
        let file = fs.create(&temporary)?;
        Ok(LocalUpload {
            fs,
            open_files,
            location,
            path,
            temporary,
            file: Some(file),
            failed: None,
        })
    }

    fn error(&self, error: io::Error) -> object_store::Error {
        super::local_dir::to_error(&self.location, error)
    }

    fn remove_temporary(&mut self) -> io::Result<()> {
        if self.file.take().is_some() {
            return self.fs.remove_file(&self.temporary);
        }
        Ok(())
    }
}

#[async_trait]
impl MultipartUpload for LocalUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let written = match (&mut self.file, &self.failed) {
            (Some(file), None) => data
                .as_ref()
                .iter()
                .try_for_each(|chunk| file.write_all(chunk)),
            (None, _) => Err(io::Error::other(
                "the upload is already completed or aborted",
            )),
            (_, Some(error)) => Err(io::Error::new(error.kind(), error.to_string())),
        };
        let result = match written {
            Ok(()) => Ok(()),
            Err(error) => {
                let answer = self.error(io::Error::new(error.kind(), error.to_string()));
                self.failed.get_or_insert(error);
                Err(answer)
            }
        };
        futures::future::ready(result).boxed()
    }

    async fn complete(&mut self) -> Result<PutResult> {
        if let Some(error) = self.failed.take() {
            let _ = self.remove_temporary();
            return Err(self.error(error));
        }
        let Some(mut file) = self.file.take() else {
            return Err(self.error(io::Error::other(
                "the upload is already completed or aborted",
            )));
        };
        let (fs, temporary, path) = (self.fs.clone(), self.temporary.clone(), self.path.clone());
        let open_files = self.open_files.clone();
        let done = tokio::task::spawn_blocking(move || {
            let durable = (|| {
                file.flush()?;
                file.sync_data()?;
                drop(file);
                fs.rename(&temporary, &path)?;
                open_files.forget(&path);
                fs.sync_dir(parent_of(&path)?)
            })();
            if durable.is_err() {
                let _ = fs.remove_file(&temporary);
            }
            durable
        })
        .await
        .map_err(io::Error::other)
        .and_then(|durable| durable);
        done.map_err(|error| self.error(error))?;
        Ok(PutResult {
            e_tag: None,
            version: None,
        })
    }

    async fn abort(&mut self) -> Result<()> {
        self.remove_temporary().map_err(|error| self.error(error))
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        // Dropped before completing: the temporary file goes (a crash leaves it to the
        // clean-up of temporary files at the next start).
        let _ = self.remove_temporary();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path as FsPath;

    use object_store::{ObjectStore, ObjectStoreExt};

    use crate::fs::{LocalDir, SimulatedFs};

    use super::*;

    fn local_dir(fs: &SimulatedFs) -> LocalDir {
        LocalDir::new("/data", Arc::new(fs.clone()))
    }

    async fn read(store: &LocalDir, location: &Path) -> Result<Vec<u8>> {
        Ok(store.get(location).await?.bytes().await?.to_vec())
    }

    /// Every file under `dir`, temporary ones included.
    fn files_in(fs: &SimulatedFs, dir: &str) -> Vec<String> {
        fs.read_dir(FsPath::new(dir))
            .map(|entries| entries.into_iter().map(|entry| entry.name).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn an_upload_appears_whole_only_when_completed_and_survives_a_power_loss() {
        let fs = SimulatedFs::new();
        let store = local_dir(&fs);
        let location = Path::from("blocks/v1/dt=2026-11-20/hour=10/b1/spans.parquet");
        let mut upload = store.put_multipart(&location).await.unwrap();
        let parts: [&'static [u8]; 3] = [b"first part, ", b"second, ", b"and the last"];
        let pending: Vec<UploadPart> = parts
            .iter()
            .map(|part| upload.put_part(PutPayload::from_static(part)))
            .collect();
        // Awaited out of order, as `WriteMultipart` may.
        for part in pending.into_iter().rev() {
            part.await.unwrap();
        }
        assert!(matches!(
            read(&store, &location).await,
            Err(object_store::Error::NotFound { .. })
        ));
        let listed = store
            .list_with_delimiter(Some(&Path::from("blocks/v1/dt=2026-11-20/hour=10/b1")))
            .await
            .unwrap();
        assert!(
            listed.objects.is_empty(),
            "an open upload is not an object: {listed:?}"
        );

        upload.complete().await.unwrap();
        assert_eq!(read(&store, &location).await.unwrap(), parts.concat());
        assert_eq!(
            files_in(&fs, "/data/blocks/v1/dt=2026-11-20/hour=10/b1"),
            vec!["spans.parquet".to_string()]
        );
        let rebooted = local_dir(&fs.after_power_loss());
        assert_eq!(read(&rebooted, &location).await.unwrap(), parts.concat());
    }

    #[tokio::test]
    async fn an_upload_aborted_or_dropped_before_completing_leaves_no_file() {
        let fs = SimulatedFs::new();
        let store = local_dir(&fs);
        let location = Path::from("p/object");
        let mut aborted = store.put_multipart(&location).await.unwrap();
        aborted
            .put_part(PutPayload::from_static(b"bytes"))
            .await
            .unwrap();
        assert_eq!(
            files_in(&fs, "/data/p").len(),
            1,
            "the parts are in a temporary file"
        );
        aborted.abort().await.unwrap();
        assert!(files_in(&fs, "/data/p").is_empty());

        let mut dropped = store.put_multipart(&location).await.unwrap();
        dropped
            .put_part(PutPayload::from_static(b"bytes"))
            .await
            .unwrap();
        drop(dropped);
        assert!(files_in(&fs, "/data/p").is_empty());
        assert!(matches!(
            read(&store, &location).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn an_upload_cut_by_a_power_loss_before_completing_is_not_an_object() {
        let fs = SimulatedFs::new();
        let store = local_dir(&fs);
        let location = Path::from("p/object");
        let mut upload = store.put_multipart(&location).await.unwrap();
        upload
            .put_part(PutPayload::from_static(b"bytes"))
            .await
            .unwrap();
        let rebooted_fs = fs.after_power_loss();
        let rebooted = local_dir(&rebooted_fs);
        assert!(matches!(
            read(&rebooted, &location).await,
            Err(object_store::Error::NotFound { .. })
        ));
        rebooted.remove_temporary_files().await.unwrap();
        assert!(
            files_in(&rebooted_fs, "/data/p").is_empty(),
            "what the upload had written is cleaned up at the next start"
        );
    }
}
