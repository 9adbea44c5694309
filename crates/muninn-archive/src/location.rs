//! Where an archive lives, as text: a local path, `file://PATH` or `s3://BUCKET[/PREFIX]`, and
//! the S3 store behind the last (any service speaking the S3 API, set up the way the AWS tools
//! are: `AWS_*` variables or the same keys given explicitly).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::archive::Archive;
use crate::error::{ArchiveError, ArchiveErrorKind, Result};

const VALID_FORMS: &str = "a directory path, file://PATH or s3://BUCKET[/PREFIX]";

/// Retries inside one S3 request. Short on purpose: a recorder retries every failed write
/// forever with its own backoff and reports the failure on `/healthz` meanwhile, which
/// object_store's default (up to 10 retries over 3 minutes) would hide.
fn request_retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
    }
}

/// A location, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Location<'a> {
    Local(&'a str),
    S3 {
        bucket: &'a str,
        prefix: Option<&'a str>,
    },
}

fn parse(location: &str) -> Result<Location<'_>> {
    let invalid = || {
        ArchiveError::invalid(format!(
            "archive location {location:?} is not {VALID_FORMS}"
        ))
    };
    if let Some(path) = location.strip_prefix("file://") {
        return if path.is_empty() {
            Err(invalid())
        } else {
            Ok(Location::Local(path))
        };
    }
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = match rest.split_once('/') {
            Some((bucket, prefix)) => (bucket, prefix.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return Err(invalid());
        }
        return Ok(Location::S3 {
            bucket,
            prefix: (!prefix.is_empty()).then_some(prefix),
        });
    }
    if location.is_empty() || location.contains("://") {
        return Err(invalid());
    }
    Ok(Location::Local(location))
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
            Location::S3 { bucket, prefix } => s3(AmazonS3Builder::from_env(), bucket, prefix, &[]),
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
        s3(AmazonS3Builder::new(), bucket, prefix, options)
    }
}

fn s3(
    mut builder: AmazonS3Builder,
    bucket: &str,
    prefix: Option<&str>,
    options: &[(&str, &str)],
) -> Result<Archive> {
    let prefix = prefix
        .map(|prefix| prefix.trim_matches('/'))
        .filter(|p| !p.is_empty());
    let description = match prefix {
        Some(prefix) => format!("s3://{bucket}/{prefix}"),
        None => format!("s3://{bucket}"),
    };
    if bucket.is_empty() {
        return Err(ArchiveError::invalid(format!(
            "archive location {description:?}: the bucket name is empty"
        )));
    }
    for (key, value) in options {
        let config_key: AmazonS3ConfigKey = key.to_ascii_lowercase().parse().map_err(|_| {
            ArchiveError::invalid(format!(
                "archive location {description}: unknown S3 setting {key:?} (use the names of \
                 the AWS variables, e.g. AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID)"
            ))
        })?;
        builder = builder.with_config(config_key, *value);
    }
    let store = builder
        .with_bucket_name(bucket)
        .with_retry(request_retries())
        .build()
        .map_err(|error| {
            ArchiveError::with_source(
                ArchiveErrorKind::Invalid,
                format!("archive location {description}"),
                error,
            )
        })?;
    let store: Arc<dyn ObjectStore> = match prefix {
        Some(prefix) => {
            let prefix = Path::parse(prefix).map_err(|error| {
                ArchiveError::with_source(
                    ArchiveErrorKind::Invalid,
                    format!("archive location {description}: prefix {prefix:?}"),
                    error,
                )
            })?;
            Arc::new(PrefixStore::new(store, prefix))
        }
        None => Arc::new(store),
    };
    Ok(Archive::with_object_store(store, description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_into_paths_and_buckets() {
        assert_eq!(
            parse("/var/archive").unwrap(),
            Location::Local("/var/archive")
        );
        assert_eq!(parse("archive").unwrap(), Location::Local("archive"));
        assert_eq!(
            parse("file:///var/archive").unwrap(),
            Location::Local("/var/archive")
        );
        assert_eq!(
            parse("s3://events").unwrap(),
            Location::S3 {
                bucket: "events",
                prefix: None
            }
        );
        assert_eq!(
            parse("s3://events/").unwrap(),
            Location::S3 {
                bucket: "events",
                prefix: None
            }
        );
        assert_eq!(
            parse("s3://events/muninn/archive/").unwrap(),
            Location::S3 {
                bucket: "events",
                prefix: Some("muninn/archive")
            }
        );
        for refused in [
            "",
            "s3://",
            "s3:///prefix",
            "file://",
            "gs://bucket",
            "http://host/x",
        ] {
            let error = parse(refused).unwrap_err();
            assert_eq!(error.kind, ArchiveErrorKind::Invalid);
            assert!(error.message.contains("s3://BUCKET[/PREFIX]"), "{error}");
        }
    }
}
