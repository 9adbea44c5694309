//! Where things live in the archive's object store: `v1/stream=<stream>/dt=<day>/hour=<HH>/`
//! holds, per partition, the Parquet files named by their first offset
//! (`p<partition>-o<first offset, 20 digits>.parquet`: a retry after a crash rewrites the same
//! name), the files compaction merged them into, named by the range they cover
//! (`p<partition>-o<first offset>-c<last offset>.parquet`, both 20 digits), and the manifest
//! that commits them (`p<partition>.manifest.json`).

use chrono::{DateTime, Datelike, Timelike, Utc};
use object_store::path::Path;

use crate::error::{ArchiveError, Result};
use crate::format::ARCHIVE_FORMAT_VERSION;

const MS_PER_HOUR: i64 = 3_600_000;

/// An hour, as unix milliseconds at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(pub i64);

impl Hour {
    pub fn of(timestamp_ms: i64) -> Hour {
        Hour(timestamp_ms.div_euclid(MS_PER_HOUR) * MS_PER_HOUR)
    }

    pub fn end_ms(self) -> i64 {
        self.0 + MS_PER_HOUR
    }

    fn datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }

    /// `dt=2026-12-03/hour=17`, the two path segments.
    fn segments(self) -> (String, String) {
        let time = self.datetime();
        (
            format!(
                "dt={:04}-{:02}-{:02}",
                time.year(),
                time.month(),
                time.day()
            ),
            format!("hour={:02}", time.hour()),
        )
    }

    /// `2026-12-03T17`, for listings.
    pub fn label(self) -> String {
        self.datetime().format("%Y-%m-%dT%H").to_string()
    }

    /// Parses the two path segments back.
    fn parse(day: &str, hour: &str) -> Option<Hour> {
        let day = day.strip_prefix("dt=")?;
        let hour: u32 = hour.strip_prefix("hour=")?.parse().ok()?;
        let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
        let time = date.and_hms_opt(hour, 0, 0)?.and_utc();
        Some(Hour(time.timestamp_millis()))
    }
}

/// Checks a stream name: Kafka's topic rule (1 to 249 of `[A-Za-z0-9._-]`), which JetStream
/// stream names also satisfy in practice.
pub fn check_stream_name(stream: &str) -> Result<()> {
    let valid = !stream.is_empty()
        && stream.len() <= 249
        && stream != "."
        && stream != ".."
        && stream
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ArchiveError::invalid(format!(
            "stream {stream:?}: use 1 to 249 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
        )))
    }
}

fn version_root() -> String {
    format!("v{ARCHIVE_FORMAT_VERSION}")
}

/// `v1/`: everything of this format.
pub fn root() -> Path {
    Path::from(version_root())
}

/// `v1/stream=<stream>/`.
pub fn stream_dir(stream: &str) -> Path {
    Path::from_iter([version_root(), format!("stream={stream}")])
}

/// `v1/stream=<stream>/dt=…/hour=…/`.
pub fn hour_dir(stream: &str, hour: Hour) -> Path {
    let (day, hour) = hour.segments();
    Path::from_iter([version_root(), format!("stream={stream}"), day, hour])
}

/// The name of the file whose first message has `first_offset`.
pub fn file_name(partition: i32, first_offset: i64) -> String {
    format!("p{partition}-o{first_offset:020}.parquet")
}

/// The name of the file compaction merges a partition's `first_offset..=last_offset` into.
pub fn compacted_file_name(partition: i32, first_offset: i64, last_offset: i64) -> String {
    format!("p{partition}-o{first_offset:020}-c{last_offset:020}.parquet")
}

/// What an archive file's name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileName {
    pub partition: i32,
    pub first_offset: i64,
    /// The last offset, in the name of a file compaction wrote; `None` for a recorder's file.
    pub compacted_to: Option<i64>,
}

/// What an object in an hour's directory is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HourObject {
    /// `p<P>.manifest.json`.
    Manifest { partition: i32 },
    /// `p<P>-o<first>.parquet` or `p<P>-o<first>-c<last>.parquet`.
    File(FileName),
}

impl HourObject {
    pub fn parse(name: &str) -> Option<HourObject> {
        if let Some(partition) = name.strip_suffix(".manifest.json") {
            let partition = partition.strip_prefix('p')?.parse().ok()?;
            return Some(HourObject::Manifest { partition });
        }
        let (partition, offsets) = name.strip_suffix(".parquet")?.split_once("-o")?;
        let partition = partition.strip_prefix('p')?.parse().ok()?;
        let (first, compacted_to) = match offsets.split_once("-c") {
            Some((first, last)) => (first, Some(last.parse().ok()?)),
            None => (offsets, None),
        };
        Some(HourObject::File(FileName {
            partition,
            first_offset: first.parse().ok()?,
            compacted_to,
        }))
    }

    pub fn partition(self) -> i32 {
        match self {
            HourObject::Manifest { partition } => partition,
            HourObject::File(name) => name.partition,
        }
    }
}

pub fn file_path(stream: &str, hour: Hour, name: &str) -> Path {
    hour_dir(stream, hour).join(name)
}

pub fn manifest_path(stream: &str, hour: Hour, partition: i32) -> Path {
    hour_dir(stream, hour).join(format!("p{partition}.manifest.json"))
}

/// What a path under `v1/` names, when it is a manifest: (stream, hour, partition).
pub fn parse_manifest_path(path: &Path) -> Option<(String, Hour, i32)> {
    match parse_object_path(path)? {
        (stream, hour, HourObject::Manifest { partition }) => Some((stream, hour, partition)),
        _ => None,
    }
}

/// What a path under `v1/` names, when it is a manifest or an archive file of a stream's hour.
pub fn parse_object_path(path: &Path) -> Option<(String, Hour, HourObject)> {
    let parts: Vec<String> = path.parts().map(|part| part.as_ref().to_owned()).collect();
    let [version, stream, day, hour, name] = parts.as_slice() else {
        return None;
    };
    if *version != version_root() {
        return None;
    }
    let stream = stream.strip_prefix("stream=")?.to_owned();
    let hour = Hour::parse(day, hour)?;
    Some((stream, hour, HourObject::parse(name)?))
}

/// The stream a `v1/stream=<stream>` directory holds.
pub fn parse_stream_dir(path: &Path) -> Option<String> {
    let parts: Vec<String> = path.parts().map(|part| part.as_ref().to_owned()).collect();
    match parts.as_slice() {
        [version, stream] if *version == version_root() => {
            Some(stream.strip_prefix("stream=")?.to_owned())
        }
        _ => None,
    }
}

/// The hour a `…/dt=…/hour=…` directory stands for.
pub fn parse_hour_dir(path: &Path) -> Option<Hour> {
    let parts: Vec<String> = path.parts().map(|part| part.as_ref().to_owned()).collect();
    match parts.as_slice() {
        [.., day, hour] => Hour::parse(day, hour),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_hive_style_and_parse_back() {
        let hour = Hour::of(1_764_781_234_567); // 2025-12-03T17:00:34Z
        assert_eq!(hour.label(), "2025-12-03T17");
        let manifest = manifest_path("orders.eu", hour, 5);
        assert_eq!(
            manifest.as_ref(),
            "v1/stream=orders.eu/dt=2025-12-03/hour=17/p5.manifest.json"
        );
        assert_eq!(
            parse_manifest_path(&manifest),
            Some(("orders.eu".to_owned(), hour, 5))
        );
        assert_eq!(
            file_path("orders.eu", hour, &file_name(5, 1842)).as_ref(),
            "v1/stream=orders.eu/dt=2025-12-03/hour=17/p5-o00000000000000001842.parquet"
        );
    }

    #[test]
    fn file_names_say_their_partition_and_offsets_and_whether_compaction_wrote_them() {
        let hour = Hour::of(1_764_781_234_567);
        let recorded = file_path("orders", hour, &file_name(5, 1842));
        let compacted = file_path("orders", hour, &compacted_file_name(5, 1842, 90_000));
        assert_eq!(
            compacted.as_ref(),
            "v1/stream=orders/dt=2025-12-03/hour=17/p5-o00000000000000001842-c00000000000000090000.parquet"
        );
        let file = |compacted_to| {
            HourObject::File(FileName {
                partition: 5,
                first_offset: 1842,
                compacted_to,
            })
        };
        assert_eq!(
            parse_object_path(&recorded),
            Some(("orders".to_owned(), hour, file(None)))
        );
        assert_eq!(
            parse_object_path(&compacted),
            Some(("orders".to_owned(), hour, file(Some(90_000))))
        );
        assert_eq!(
            HourObject::parse("p12.manifest.json"),
            Some(HourObject::Manifest { partition: 12 })
        );
        for other in ["notes.txt", "p1-oX.parquet", "p1.parquet", "kafka.parquet"] {
            assert_eq!(HourObject::parse(other), None, "{other}");
        }
        assert_eq!(
            parse_stream_dir(&stream_dir("orders.eu")),
            Some("orders.eu".to_owned())
        );
        assert_eq!(parse_stream_dir(&Path::from("v1/groups")), None);
    }

    #[test]
    fn a_stream_name_outside_kafkas_rule_is_refused_with_the_rule() {
        for bad in ["", "a/b", "a b", "..", &"x".repeat(250)] {
            let error = check_stream_name(bad).unwrap_err();
            assert!(error.message.contains("use 1 to 249 characters"), "{error}");
        }
        check_stream_name("orders.created_v2-eu").unwrap();
    }
}
