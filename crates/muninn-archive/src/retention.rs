//! Retention per stream pattern, by whole hours: `orders.*=30d` keeps thirty days of the
//! streams the pattern matches, the first matching rule wins, and a stream no rule matches is
//! kept. An hour goes when all of it is older than its stream's limit: its manifests are
//! deleted first (readers stop seeing its files), then the files.

use std::time::Duration;

use futures::TryStreamExt as _;
use object_store::ObjectStoreExt as _;
use serde::Serialize;

use crate::archive::Archive;
use crate::error::{ArchiveError, Result};
use crate::layout::{self, Hour};

/// One rule: streams matching `pattern` (`*` matches any run of characters) keep `keep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    pub pattern: String,
    pub keep: Duration,
}

impl RetentionRule {
    /// Parses `PATTERN=DURATION`, like `orders.*=30d` or `*=2d`.
    pub fn parse(text: &str) -> Result<RetentionRule> {
        let hint = "use PATTERN=DURATION, like orders.*=30d or *=2d";
        let (pattern, keep) = text
            .split_once('=')
            .ok_or_else(|| ArchiveError::invalid(format!("retention rule {text:?}: {hint}")))?;
        if pattern.is_empty() {
            return Err(ArchiveError::invalid(format!(
                "retention rule {text:?}: no stream pattern; {hint}"
            )));
        }
        let keep = muninn_model::parse_duration(keep)
            .map_err(|error| ArchiveError::invalid(format!("retention rule {text:?}: {error}")))?;
        if keep < Duration::from_secs(3600) {
            return Err(ArchiveError::invalid(format!(
                "retention rule {text:?}: keep at least 1h (retention works by whole hours)"
            )));
        }
        Ok(RetentionRule {
            pattern: pattern.to_owned(),
            keep,
        })
    }

    pub fn matches(&self, stream: &str) -> bool {
        pattern_matches(&self.pattern, stream)
    }
}

/// Whether `stream` matches `pattern`, where `*` matches any run of characters (retention's
/// and compaction's stream patterns).
pub(crate) fn pattern_matches(pattern: &str, stream: &str) -> bool {
    glob(pattern.as_bytes(), stream.as_bytes())
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((first, rest)) => text
            .split_first()
            .is_some_and(|(head, tail)| head == first && glob(rest, tail)),
    }
}

/// What a retention run removed (or, dry, would remove), and what stays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// (stream, hour as `2026-12-03T17`) removed.
    pub hours_removed: Vec<(String, String)>,
    pub files_removed: u64,
    pub bytes_removed: u64,
    pub messages_removed: u64,
    pub bytes_kept: u64,
    /// Files of consumer groups' positions (one per stream, hour and broker) removed.
    pub group_files_removed: u64,
}

impl Archive {
    /// Applies `rules` at `now_ms` (dry: only reports). The first rule matching a stream
    /// applies; streams no rule matches are kept whole.
    pub async fn retain(
        &self,
        rules: &[RetentionRule],
        now_ms: i64,
        dry_run: bool,
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        for summary in self.streams().await? {
            let Some(rule) = rules.iter().find(|rule| rule.matches(&summary.stream)) else {
                report.bytes_kept += summary.bytes;
                continue;
            };
            let cutoff = now_ms - rule.keep.as_millis() as i64;
            for hour in self.hours(&summary.stream).await? {
                let dir = layout::hour_dir(&summary.stream, hour);
                let objects: Vec<object_store::ObjectMeta> = self
                    .store
                    .list(Some(&dir))
                    .try_collect()
                    .await
                    .map_err(|error| ArchiveError::object_store(format!("listing {dir}"), error))?;
                let bytes: u64 = objects.iter().map(|object| object.size).sum();
                if hour.end_ms() > cutoff {
                    report.bytes_kept += bytes;
                    continue;
                }
                report
                    .hours_removed
                    .push((summary.stream.clone(), hour_label(hour)));
                report.bytes_removed += bytes;
                for (manifest_hour, manifest) in self.manifests(Some(&summary.stream)).await? {
                    if manifest_hour == hour {
                        report.messages_removed += manifest.message_count();
                        report.files_removed += manifest.files.len() as u64;
                    }
                }
                if dry_run {
                    continue;
                }
                // Manifests first: once they are gone no reader sees the hour's files.
                let (manifests, files): (Vec<_>, Vec<_>) = objects
                    .into_iter()
                    .partition(|object| object.location.as_ref().ends_with(".manifest.json"));
                for object in manifests.iter().chain(&files) {
                    self.store.delete(&object.location).await.map_err(|error| {
                        ArchiveError::object_store(format!("deleting {}", object.location), error)
                    })?;
                }
            }
        }
        // The consumer groups' positions of a stream follow the stream's rule.
        for stream in self.group_streams().await? {
            let Some(rule) = rules.iter().find(|rule| rule.matches(&stream)) else {
                continue;
            };
            let cutoff = now_ms - rule.keep.as_millis() as i64;
            report.group_files_removed += self
                .remove_group_hours(&stream, Hour::of(cutoff), dry_run)
                .await?;
        }
        Ok(report)
    }
}

fn hour_label(hour: Hour) -> String {
    chrono::DateTime::from_timestamp_millis(hour.0)
        .map(|time| time.format("%Y-%m-%dT%H").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_match_by_glob() {
        let rule = RetentionRule::parse("orders.*=30d").unwrap();
        assert_eq!(rule.keep, Duration::from_secs(30 * 86_400));
        assert!(rule.matches("orders.eu") && rule.matches("orders.") && !rule.matches("order"));
        assert!(RetentionRule::parse("*=2d").unwrap().matches("anything"));
        for bad in ["orders", "=1d", "x=soon", "x=10m"] {
            let error = RetentionRule::parse(bad).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }
}
