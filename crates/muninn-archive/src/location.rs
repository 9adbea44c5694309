//! Where an archive lives, as text: a local path, `file://PATH` or `s3://BUCKET[/PREFIX]`, and
//! the S3 store behind the last, as `muninn_store::location` parses and opens them for blocks
//! too; here, the errors an archive's callers see.

use muninn_store::location::{self as store_location, Location, S3Settings, VALID_LOCATIONS};

use crate::archive::Archive;
use crate::error::{ArchiveError, ArchiveErrorKind, Result};

fn parse(location: &str) -> Result<Location> {
    Location::parse(location).map_err(|_| {
        ArchiveError::invalid(format!(
            "archive location {location:?} is not {VALID_LOCATIONS}"
        ))
    })
}

impl Archive {
    /// Checks the form of a location without opening it (configuration validation).
    pub fn check_location(location: &str) -> Result<()> {
        parse(location).map(|_| ())
    }

    /// The archive at `location`: a directory path or `file://PATH` opens it with
    /// [`Archive::open_local`]; `s3://BUCKET[/PREFIX]` opens the bucket (under the prefix, if
    /// given) with the settings of the standard AWS variables, as object_store reads them
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL` or `AWS_ENDPOINT` for another S3 service, `AWS_ALLOW_HTTP=true` for
    /// a plain-HTTP one, …); see [`Archive::open_s3`] for what a write on S3 guarantees.
    pub async fn open(location: &str) -> Result<Archive> {
        match parse(location)? {
            Location::Local(path) => Archive::open_local(path).await,
            Location::S3 { bucket, prefix } => {
                s3(&bucket, prefix.as_deref(), S3Settings::from_environment())
            }
        }
    }

    /// The archive in S3 bucket `bucket`, under `prefix` if given, with the settings in
    /// `options` only (the environment is not read): keys as the AWS variables name them, in
    /// any case, with or without `aws_` (`("endpoint", "http://127.0.0.1:9000")`,
    /// `("AWS_ALLOW_HTTP", "true")`, `("access_key_id", …)`, `("region", …)`); an unknown key
    /// is refused. Nothing is sent before the first read or write: a bucket that does not
    /// exist, or wrong keys, show up as object-store errors then.
    ///
    /// Durability on S3: every archive file and manifest is one PUT, which S3 applies
    /// atomically (a reader sees the whole new object or the old one, never a part), and a
    /// write returns only when the PUT completed, so a file is durable when `commit` returns and
    /// the rule "file first, then the manifest naming it" holds as on a local directory.
    pub fn open_s3(
        bucket: &str,
        prefix: Option<&str>,
        options: &[(&str, &str)],
    ) -> Result<Archive> {
        s3(bucket, prefix, S3Settings::explicit(options))
    }
}

fn s3(bucket: &str, prefix: Option<&str>, settings: S3Settings) -> Result<Archive> {
    let store = store_location::open_s3(bucket, prefix, &settings).map_err(|error| {
        ArchiveError::with_source(
            ArchiveErrorKind::Invalid,
            format!("archive location {}", error.message),
            error,
        )
    })?;
    let description = Location::S3 {
        bucket: bucket.to_string(),
        prefix: prefix
            .map(|prefix| prefix.trim_matches('/').to_string())
            .filter(|prefix| !prefix.is_empty()),
    }
    .description();
    Ok(Archive::with_object_store(store, description))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn locations_parse_into_paths_and_buckets_or_name_the_valid_forms() {
        assert_eq!(
            parse("file:///var/archive").unwrap(),
            Location::Local(PathBuf::from("/var/archive"))
        );
        assert_eq!(
            parse("s3://events/muninn/archive/").unwrap(),
            Location::S3 {
                bucket: "events".to_string(),
                prefix: Some("muninn/archive".to_string())
            }
        );
        for refused in ["", "s3://", "gs://bucket"] {
            let error = parse(refused).unwrap_err();
            assert_eq!(error.kind, ArchiveErrorKind::Invalid);
            assert!(error.message.starts_with("archive location"), "{error}");
            assert!(error.message.contains("s3://BUCKET[/PREFIX]"), "{error}");
        }
    }
}
