//! The file target: one JSON line per message ([`crate::to_json`], the form `archive cat`
//! prints and `replay --from-file` reads), synced when the replay ends and before each
//! checkpoint. The lines hold the archived messages as they were (their position is in them),
//! minus dropped headers: no `muninn-replayed-from`, no new trace context. A replay resumed from
//! a checkpoint cuts the file back to the length the checkpoint saw, then appends.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::sink::{Delivered, Delivery, Outgoing};
use crate::error::{ArchiveError, ArchiveErrorKind, Result};
use crate::json::to_json;
use crate::message::Message;

pub(crate) struct FileSink {
    path: PathBuf,
    file: BufWriter<File>,
    length: u64,
}

fn io_error(path: &Path, doing: &str, error: std::io::Error) -> ArchiveError {
    ArchiveError::with_source(
        ArchiveErrorKind::Invalid,
        format!("replay to file {}: {doing}", path.display()),
        error,
    )
}

impl FileSink {
    /// Creates (or empties) the file; or, resuming, cuts it to `resume_length` and appends.
    pub fn open(path: &Path, resume_length: Option<u64>) -> Result<FileSink> {
        let (file, length) = match resume_length {
            None => {
                let file = File::create(path).map_err(|error| io_error(path, "creating", error))?;
                // The new name is durable once its directory is synced.
                let parent = path
                    .parent()
                    .filter(|parent| !parent.as_os_str().is_empty());
                File::open(parent.unwrap_or(Path::new(".")))
                    .and_then(|directory| directory.sync_all())
                    .map_err(|error| io_error(path, "syncing its directory", error))?;
                (file, 0)
            }
            Some(length) => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|error| io_error(path, "reopening to resume", error))?;
                let found = file
                    .metadata()
                    .map_err(|error| io_error(path, "reading its length", error))?
                    .len();
                if found < length {
                    return Err(ArchiveError::invalid(format!(
                        "replay to file {}: it has {found} bytes, fewer than the {length} the \
                         checkpoint saw; delete the checkpoint to write the file again",
                        path.display()
                    )));
                }
                file.set_len(length)
                    .and_then(|()| file.seek(SeekFrom::End(0)))
                    .map_err(|error| io_error(path, "cutting it to the checkpoint", error))?;
                (file, length)
            }
        };
        Ok(FileSink {
            path: path.to_owned(),
            file: BufWriter::with_capacity(1 << 20, file),
            length,
        })
    }

    pub fn send(&mut self, outgoing: Outgoing<'_>) -> std::result::Result<Delivery, String> {
        let archived = outgoing.message;
        let message = Message::from_broker(
            archived.broker,
            archived.stream.clone(),
            archived.subject.clone(),
            archived.partition,
            archived.offset,
            archived.timestamp_ms,
            archived.timestamp_type,
            archived.key.clone(),
            outgoing.headers,
            archived.payload.clone(),
        );
        let mut line = to_json(&message).to_string();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|error| format!("writing {}: {error}", self.path.display()))?;
        self.length += line.len() as u64;
        Ok(Box::pin(std::future::ready(Ok(Delivered {
            partition: None,
            offset: None,
        }))))
    }

    /// Writes out the buffer and syncs the file; returns its length.
    pub fn sync(&mut self) -> Result<u64> {
        self.file
            .flush()
            .and_then(|()| self.file.get_ref().sync_all())
            .map_err(|error| io_error(&self.path, "syncing", error))?;
        Ok(self.length)
    }
}
