//! The replay checkpoint: a small JSON file naming, per archived (stream, partition), the last
//! offset the target acknowledged, and the target it belongs to. It is replaced atomically
//! (temporary file, sync, rename, directory sync), so after a crash it holds either the old or
//! the new positions, never a mix; a replay started again with it skips what was delivered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use muninn_store::OsFileSystem;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::groups::Landings;
use super::target::{PartitionMap, Target};
use crate::error::{ArchiveError, ArchiveErrorKind, Result};

const CHECKPOINT_VERSION: u32 = 1;

/// The file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    /// xxh3 of the target and partition map: a checkpoint of another target is refused.
    fingerprint: String,
    target: String,
    partitions: String,
    delivered: Vec<Position>,
    /// For a file target: the length of the file when the positions were written (a crash
    /// may leave lines after it, which a resumed replay cuts off and writes again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_length: Option<u64>,
    /// With `--set-group-offsets`: where messages of each archived partition landed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    landings: Vec<PositionLandings>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PositionLandings {
    stream: String,
    partition: i32,
    #[serde(flatten)]
    landings: Landings,
}

#[derive(Debug, Serialize, Deserialize)]
struct Position {
    stream: String,
    partition: i32,
    offset: i64,
}

/// A checkpoint loaded (or new) and the positions delivered since.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    path: PathBuf,
    fingerprint: String,
    target: String,
    partitions: String,
    delivered: BTreeMap<(String, i32), i64>,
    landings: BTreeMap<(String, i32), Landings>,
    pub file_length: Option<u64>,
}

fn fingerprint(target: &str, partitions: &str) -> String {
    format!(
        "{:016x}",
        xxh3_64(format!("{target}\n{partitions}").as_bytes())
    )
}

impl Checkpoint {
    /// Reads the checkpoint at `path`, or starts an empty one when there is no file. A file
    /// written for another target or partition map is an error.
    pub fn load(path: &Path, target: &Target, partitions: &PartitionMap) -> Result<Checkpoint> {
        let path = std::path::absolute(path).map_err(|error| {
            ArchiveError::with_source(
                ArchiveErrorKind::Invalid,
                format!("checkpoint {}", path.display()),
                error,
            )
        })?;
        let (target, partitions) = (target.to_string(), partitions.to_string());
        let mut checkpoint = Checkpoint {
            fingerprint: fingerprint(&target, &partitions),
            path,
            target,
            partitions,
            delivered: BTreeMap::new(),
            landings: BTreeMap::new(),
            file_length: None,
        };
        let bytes = match std::fs::read(&checkpoint.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(checkpoint),
            Err(error) => {
                return Err(ArchiveError::with_source(
                    ArchiveErrorKind::Invalid,
                    format!("checkpoint {}", checkpoint.path.display()),
                    error,
                ));
            }
        };
        let file: CheckpointFile = serde_json::from_slice(&bytes)
            .ok()
            .filter(|file: &CheckpointFile| file.version == CHECKPOINT_VERSION)
            .ok_or_else(|| {
                ArchiveError::invalid(format!(
                    "checkpoint {}: not a replay checkpoint of version {CHECKPOINT_VERSION}; \
                     give another file, or delete it to replay everything",
                    checkpoint.path.display()
                ))
            })?;
        if file.fingerprint != checkpoint.fingerprint {
            return Err(ArchiveError::invalid(format!(
                "checkpoint {} belongs to a replay to {} (partitions {}), not to {} \
                 (partitions {}); give another checkpoint file, or delete it to replay everything",
                checkpoint.path.display(),
                file.target,
                file.partitions,
                checkpoint.target,
                checkpoint.partitions
            )));
        }
        checkpoint.delivered = file
            .delivered
            .into_iter()
            .map(|position| ((position.stream, position.partition), position.offset))
            .collect();
        checkpoint.landings = file
            .landings
            .into_iter()
            .map(|found| ((found.stream, found.partition), found.landings))
            .collect();
        checkpoint.file_length = file.file_length;
        Ok(checkpoint)
    }

    /// The last offset of (`stream`, `partition`) the target acknowledged.
    pub fn delivered(&self, stream: &str, partition: i32) -> Option<i64> {
        self.delivered.get(&(stream.to_owned(), partition)).copied()
    }

    /// Where messages of (`stream`, `partition`) landed, as far as earlier runs know.
    pub fn landings(&self, stream: &str, partition: i32) -> Option<Landings> {
        self.landings.get(&(stream.to_owned(), partition)).copied()
    }

    pub fn record_landings(&mut self, stream: &str, partition: i32, landings: Landings) {
        self.landings
            .insert((stream.to_owned(), partition), landings);
    }

    pub fn record(&mut self, stream: &str, partition: i32, offset: i64) {
        self.delivered
            .insert((stream.to_owned(), partition), offset);
    }

    /// Replaces the file with the current positions, durably.
    pub fn save(&self) -> Result<()> {
        let file = CheckpointFile {
            version: CHECKPOINT_VERSION,
            fingerprint: self.fingerprint.clone(),
            target: self.target.clone(),
            partitions: self.partitions.clone(),
            delivered: self
                .delivered
                .iter()
                .map(|((stream, partition), offset)| Position {
                    stream: stream.clone(),
                    partition: *partition,
                    offset: *offset,
                })
                .collect(),
            file_length: self.file_length,
            landings: self
                .landings
                .iter()
                .map(|((stream, partition), landings)| PositionLandings {
                    stream: stream.clone(),
                    partition: *partition,
                    landings: *landings,
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        muninn_store::write_file_atomically(&OsFileSystem, &self.path, [bytes.as_slice()]).map_err(
            |error| {
                ArchiveError::with_source(
                    ArchiveErrorKind::Invalid,
                    format!("writing checkpoint {}", self.path.display()),
                    error,
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_refuses_another_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.checkpoint.json");
        let target = Target::parse("kafka://127.0.0.1:9092/orders").unwrap();
        let mut checkpoint = Checkpoint::load(&path, &target, &PartitionMap::Same).unwrap();
        assert_eq!(checkpoint.delivered("orders", 3), None);
        checkpoint.record("orders", 3, 41);
        checkpoint.record("orders", 3, 42);
        checkpoint.save().unwrap();

        let again = Checkpoint::load(&path, &target, &PartitionMap::Same).unwrap();
        assert_eq!(again.delivered("orders", 3), Some(42));

        let other = Target::parse("kafka://127.0.0.1:9092/orders-copy").unwrap();
        let error = Checkpoint::load(&path, &other, &PartitionMap::Same).unwrap_err();
        assert!(
            error
                .message
                .contains("belongs to a replay to kafka://127.0.0.1:9092/orders ")
                && error
                    .message
                    .contains("not to kafka://127.0.0.1:9092/orders-copy"),
            "{error}"
        );
        let error = Checkpoint::load(&path, &target, &PartitionMap::ByKey).unwrap_err();
        assert!(error.message.contains("(partitions key)"), "{error}");

        std::fs::write(&path, b"{}").unwrap();
        let error = Checkpoint::load(&path, &target, &PartitionMap::Same).unwrap_err();
        assert!(error.message.contains("not a replay checkpoint"), "{error}");
    }
}
