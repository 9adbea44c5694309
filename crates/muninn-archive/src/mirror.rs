//! The offsite copy: `mirror` copies to a second archive (another directory, another object
//! store) the files and manifests it does not hold yet, files before the manifest that names
//! them, so a mirror interrupted at any point is a consistent, older archive and the next run
//! goes on where it stopped; after a partition-hour's manifest, the files the target holds for
//! it that the manifest does not name (those a compaction replaced) are deleted. `verify`
//! compares manifests, counts and checksums of two archives, or checks one archive's files
//! against its manifests.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::{ObjectStoreExt as _, PutPayload};
use serde::Serialize;

use crate::archive::{Archive, FileRef};
use crate::error::{ArchiveError, Result};
use crate::layout::{self, Hour, HourObject};
use crate::manifest::{FileEntry, Manifest};

/// What a mirror run copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MirrorReport {
    pub files_copied: u64,
    pub bytes_copied: u64,
    pub manifests_written: u64,
    /// Files the target already held with the same checksum.
    pub files_already_there: u64,
    /// Files the target held for a partition-hour that its manifest no longer names (a
    /// compaction replaced them), deleted after the manifest was written.
    pub files_removed: u64,
}

/// Archive files by (stream, hour, partition).
type FilesByPartitionHour = BTreeMap<(String, Hour, i32), Vec<String>>;

/// One difference `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `stream=…/dt=…/hour=…/p<P>` or a file path.
    pub place: String,
    pub problem: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.place, self.problem)
    }
}

fn place(manifest: &Manifest, hour: Hour) -> String {
    format!(
        "{}/p{}",
        layout::manifest_path(&manifest.stream, hour, manifest.partition)
            .as_ref()
            .rsplit_once('/')
            .map_or("", |(dir, _)| dir),
        manifest.partition
    )
}

impl Archive {
    /// Copies to `target` every committed file it lacks (or holds with another checksum), then
    /// the manifests that changed, then deletes the files the target holds for a partition-hour
    /// that its manifest does not name. `progress` is called after each file with the bytes
    /// copied. The target must be written by mirror runs only, one at a time.
    pub async fn mirror_to(
        &self,
        target: &Archive,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<MirrorReport> {
        let mut report = MirrorReport::default();
        let mut target_files = target.archive_files().await?;
        for (hour, manifest) in self.manifests(None).await? {
            let key = (manifest.stream.clone(), hour, manifest.partition);
            let Some(manifest) = self
                .mirror_manifest(target, hour, manifest, progress, &mut report)
                .await?
            else {
                continue;
            };
            let named: HashSet<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
            for name in target_files.remove(&key).unwrap_or_default() {
                if named.contains(name.as_str()) {
                    continue;
                }
                let path = layout::file_path(&manifest.stream, hour, &name);
                match target.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(error) => {
                        return Err(ArchiveError::object_store(
                            format!("{}: deleting {path}", target.description()),
                            error,
                        ));
                    }
                }
                report.files_removed += 1;
            }
        }
        Ok(report)
    }

    /// Mirrors one manifest and its files; returns the manifest the target now holds, or `None`
    /// when it is gone from this archive (retention removed its hour meanwhile). A file gone
    /// since the manifest was read (a compaction replaced it) makes it start again with the
    /// manifest as it is now.
    async fn mirror_manifest(
        &self,
        target: &Archive,
        hour: Hour,
        mut manifest: Manifest,
        progress: &(dyn Fn(u64) + Send + Sync),
        report: &mut MirrorReport,
    ) -> Result<Option<Manifest>> {
        let manifest_path = layout::manifest_path(&manifest.stream, hour, manifest.partition);
        let mut attempts = 0;
        loop {
            match self
                .copy_manifest(target, hour, &manifest, progress, report)
                .await
            {
                Ok(()) => return Ok(Some(manifest)),
                Err(error) if error.is_not_found() && attempts < 3 => {
                    attempts += 1;
                    match self.manifest(&manifest_path).await? {
                        Some(now) if now != manifest => manifest = now,
                        Some(_) => return Err(error),
                        None => return Ok(None),
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn copy_manifest(
        &self,
        target: &Archive,
        hour: Hour,
        manifest: &Manifest,
        progress: &(dyn Fn(u64) + Send + Sync),
        report: &mut MirrorReport,
    ) -> Result<()> {
        let manifest_path = layout::manifest_path(&manifest.stream, hour, manifest.partition);
        let theirs = target.manifest(&manifest_path).await?;
        if theirs.as_ref() == Some(manifest) {
            report.files_already_there += manifest.files.len() as u64;
            return Ok(());
        }
        for entry in &manifest.files {
            let same = theirs.as_ref().is_some_and(|theirs| {
                theirs
                    .files
                    .iter()
                    .any(|file| file.name == entry.name && file.xxh3 == entry.xxh3)
            });
            if same {
                report.files_already_there += 1;
                continue;
            }
            let path = layout::file_path(&manifest.stream, hour, &entry.name);
            let bytes = self.get(&path).await?;
            let size = bytes.len() as u64;
            target
                .store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|error| {
                    ArchiveError::object_store(
                        format!("{}: writing {path}", target.description()),
                        error,
                    )
                })?;
            report.files_copied += 1;
            report.bytes_copied += size;
            progress(size);
        }
        let bytes = serde_json::to_vec_pretty(manifest)
            .map_err(|error| ArchiveError::corrupt(format!("encoding {manifest_path}: {error}")))?;
        target
            .store
            .put(&manifest_path, PutPayload::from(bytes))
            .await
            .map_err(|error| {
                ArchiveError::object_store(
                    format!("{}: writing {manifest_path}", target.description()),
                    error,
                )
            })?;
        report.manifests_written += 1;
        Ok(())
    }

    /// Every archive file under `v1/`, by partition-hour (one listing).
    async fn archive_files(&self) -> Result<FilesByPartitionHour> {
        let root = layout::root();
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|error| {
                ArchiveError::object_store(format!("{}: listing {root}", self.description()), error)
            })?;
        let mut files = FilesByPartitionHour::new();
        for object in objects {
            if let (Some((stream, hour, HourObject::File(name))), Some(file_name)) = (
                layout::parse_object_path(&object.location),
                object.location.filename(),
            ) {
                files
                    .entry((stream, hour, name.partition))
                    .or_default()
                    .push(file_name.to_owned());
            }
        }
        Ok(files)
    }

    /// Differences between this archive and `other`: manifests, files, counts and checksums
    /// that one holds and the other does not. With `deep`, every file of `other` is also read
    /// and checked against its checksum.
    pub async fn verify_against(&self, other: &Archive, deep: bool) -> Result<Vec<Difference>> {
        let ours = self.manifests(None).await?;
        let theirs = other.manifests(None).await?;
        let key = |(hour, manifest): &(Hour, Manifest)| {
            (manifest.stream.clone(), manifest.partition, *hour)
        };
        let theirs_by_key: std::collections::BTreeMap<_, _> =
            theirs.iter().map(|entry| (key(entry), &entry.1)).collect();
        let ours_by_key: std::collections::BTreeMap<_, _> =
            ours.iter().map(|entry| (key(entry), &entry.1)).collect();
        let mut differences = Vec::new();
        for (hour, manifest) in &ours {
            let here = place(manifest, *hour);
            let Some(their) = theirs_by_key.get(&key(&(*hour, manifest.clone()))) else {
                differences.push(Difference {
                    place: here,
                    problem: format!(
                        "missing in {} ({} files, {} messages)",
                        other.description(),
                        manifest.files.len(),
                        manifest.message_count()
                    ),
                });
                continue;
            };
            compare_files(
                &here,
                manifest,
                their,
                other.description(),
                &mut differences,
            );
        }
        for (hour, manifest) in &theirs {
            if !ours_by_key.contains_key(&key(&(*hour, manifest.clone()))) {
                differences.push(Difference {
                    place: place(manifest, *hour),
                    problem: format!("only in {}", other.description()),
                });
            }
        }
        if deep {
            differences.extend(other.check_files().await?);
        }
        Ok(differences)
    }

    /// Reads every committed file and checks it against its manifest (existence, checksum,
    /// message count).
    pub async fn check_files(&self) -> Result<Vec<Difference>> {
        let mut differences = Vec::new();
        for (hour, manifest) in self.manifests(None).await? {
            for entry in &manifest.files {
                let file = FileRef {
                    stream: manifest.stream.clone(),
                    partition: manifest.partition,
                    hour,
                    entry: entry.clone(),
                };
                let path = layout::file_path(&manifest.stream, hour, &entry.name);
                match self.read_file(&file).await {
                    Ok(messages) if messages.len() as u64 == entry.count => {}
                    Ok(messages) => differences.push(Difference {
                        place: path.to_string(),
                        problem: format!(
                            "holds {} messages, its manifest says {} ({})",
                            messages.len(),
                            entry.count,
                            self.description()
                        ),
                    }),
                    Err(error) => differences.push(Difference {
                        place: path.to_string(),
                        problem: format!("{error} ({})", self.description()),
                    }),
                }
            }
        }
        Ok(differences)
    }

    async fn get(&self, path: &object_store::path::Path) -> Result<Bytes> {
        let read = |error| {
            ArchiveError::object_store(format!("{}: reading {path}", self.description()), error)
        };
        self.store
            .get(path)
            .await
            .map_err(read)?
            .bytes()
            .await
            .map_err(read)
    }
}

fn compare_files(
    here: &str,
    ours: &Manifest,
    theirs: &Manifest,
    other: &str,
    differences: &mut Vec<Difference>,
) {
    let find = |manifest: &Manifest, name: &str| -> Option<FileEntry> {
        manifest
            .files
            .iter()
            .find(|file| file.name == name)
            .cloned()
    };
    for file in &ours.files {
        match find(theirs, &file.name) {
            None => differences.push(Difference {
                place: format!("{here}: {}", file.name),
                problem: format!("missing in {other}"),
            }),
            Some(their) if their.count != file.count || their.xxh3 != file.xxh3 => {
                differences.push(Difference {
                    place: format!("{here}: {}", file.name),
                    problem: format!(
                        "differs in {other}: {} messages, checksum {} here; {} messages, checksum {} there",
                        file.count, file.xxh3, their.count, their.xxh3
                    ),
                });
            }
            Some(_) => {}
        }
    }
    for file in &theirs.files {
        if find(ours, &file.name).is_none() {
            differences.push(Difference {
                place: format!("{here}: {}", file.name),
                problem: format!("only in {other}"),
            });
        }
    }
}
