//! Where files live, as text: a local path, `file://PATH` or `s3://BUCKET[/PREFIX]`, and the S3
//! object store behind the last (any service speaking the S3 API, set up the way the AWS tools
//! are: the `AWS_*` variables, the shared credentials file, or the same keys given explicitly).
//! The blocks of `muninn serve` (`[storage] url`) and the event archive both open theirs here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::error::{StoreError, StoreErrorKind};
use crate::fs::{LocalDir, LocalReads, OsFileSystem, TieredStore};

/// The forms a location may take, for error messages.
pub const VALID_LOCATIONS: &str = "a directory path, file://PATH or s3://BUCKET[/PREFIX]";

/// A location, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 {
        bucket: String,
        /// Without leading or trailing `/`; `None` for the bucket's root.
        prefix: Option<String>,
    },
}

impl Location {
    /// Parses `text`; the error says what the valid forms are.
    pub fn parse(text: &str) -> Result<Location, StoreError> {
        let invalid = || {
            StoreError::new(
                StoreErrorKind::Config,
                format!("{text:?} is not {VALID_LOCATIONS}"),
            )
        };
        if let Some(path) = text.strip_prefix("file://") {
            return if path.is_empty() {
                Err(invalid())
            } else {
                Ok(Location::Local(PathBuf::from(path)))
            };
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = match rest.split_once('/') {
                Some((bucket, prefix)) => (bucket, prefix.trim_matches('/')),
                None => (rest, ""),
            };
            if bucket.is_empty() {
                return Err(invalid());
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
            });
        }
        if text.is_empty() || text.contains("://") {
            return Err(invalid());
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    /// The location `name` under this one (a directory, or a longer prefix): where a tenant's
    /// blocks live under the server's storage. `name` is one path segment.
    pub fn child(&self, name: &str) -> Location {
        match self {
            Location::Local(path) => Location::Local(path.join(name)),
            Location::S3 { bucket, prefix } => Location::S3 {
                bucket: bucket.clone(),
                prefix: Some(match prefix {
                    Some(prefix) => format!("{prefix}/{name}"),
                    None => name.to_string(),
                }),
            },
        }
    }

    /// `s3://BUCKET[/PREFIX]`, or the local path.
    pub fn description(&self) -> String {
        match self {
            Location::Local(path) => path.display().to_string(),
            Location::S3 {
                bucket,
                prefix: Some(prefix),
            } => format!("s3://{bucket}/{prefix}"),
            Location::S3 {
                bucket,
                prefix: None,
            } => format!("s3://{bucket}"),
        }
    }
}

/// How an S3 store is set up.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Start from the standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …) and, when
    /// they hold no keys, the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
    /// `~/.aws/credentials`, profile `AWS_PROFILE` or `default`).
    pub from_environment: bool,
    /// Settings over those: keys as the AWS variables name them, in any case, with or without
    /// `aws_` (`("endpoint", "http://127.0.0.1:9000")`, `("AWS_ALLOW_HTTP", "true")`,
    /// `("access_key_id", …)`, `("region", …)`); an unknown key is refused.
    pub options: Vec<(String, String)>,
    /// Retries inside one request (on throttling, 5xx answers and connection errors).
    pub retry: RetryConfig,
}

impl S3Settings {
    /// The environment and the credentials file only, with `request_retries`' retries.
    pub fn from_environment() -> S3Settings {
        S3Settings {
            from_environment: true,
            options: Vec::new(),
            retry: request_retries(),
        }
    }

    /// `options` only: nothing on the machine changes what the store talks to.
    pub fn explicit(options: &[(&str, &str)]) -> S3Settings {
        S3Settings {
            from_environment: false,
            options: options
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            retry: request_retries(),
        }
    }
}

/// Where a store keeps its blocks when not under its data directory (`[storage] url`).
#[derive(Debug, Clone)]
pub struct BlockStorage {
    pub location: Location,
    /// How the S3 store is set up, for an `s3://` location.
    pub s3: S3Settings,
    /// For an `s3://` location: the bytes of the newest blocks also kept on local disk (under
    /// the data directory's `cache/`), from which reads of them are served; 0 keeps none.
    pub cache_max_bytes: u64,
    /// This node's name in a cluster sharing the location: its blocks go under
    /// `nodes/<node>/`, where query nodes find them. `None`: the location is the node's own.
    pub node: Option<String>,
    /// Where query nodes reach this ingest node (`node.json`); its bound address by default.
    pub advertise_url: Option<String>,
}

/// The default of `BlockStorage::cache_max_bytes`: 8 GiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 8 << 30;

impl BlockStorage {
    /// An `s3://` location's settings with the default cache, or a directory.
    pub fn new(location: Location, s3: S3Settings) -> BlockStorage {
        BlockStorage {
            location,
            s3,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            node: None,
            advertise_url: None,
        }
    }

    /// The object store of the blocks and, for a remote one, the same as its tiers; for a
    /// local directory, the same as a `LocalDir`. A local directory's temporary files of puts
    /// that a crash interrupted are removed.
    pub(crate) async fn open(
        &self,
        data_dir: &std::path::Path,
    ) -> Result<OpenedBlocks, StoreError> {
        match &self.location {
            Location::Local(path) => {
                let path = match &self.node {
                    Some(node) => path.join(crate::block::NODES_PREFIX).join(node),
                    None => path.clone(),
                };
                let dir = LocalDir::new(path.clone(), Arc::new(OsFileSystem));
                dir.remove_temporary_files()
                    .await
                    .map_err(|error| StoreError::object_store(path.display(), error))?;
                Ok(OpenedBlocks {
                    object_store: Arc::new(dir.clone()),
                    tiers: None,
                    local: Some(Arc::new(dir)),
                })
            }
            Location::S3 { bucket, prefix } => {
                let node_prefix = self.node.as_ref().map(|node| {
                    let nodes = format!("{}/{node}", crate::block::NODES_PREFIX);
                    match prefix {
                        Some(prefix) => format!("{prefix}/{nodes}"),
                        None => nodes,
                    }
                });
                let prefix = node_prefix.as_deref().or(prefix.as_deref());
                let remote = open_s3(bucket, prefix, &self.s3)?;
                let cache_dir = data_dir.join("cache");
                let local = LocalDir::new(cache_dir.clone(), Arc::new(OsFileSystem));
                let tiered = TieredStore::open(remote, local, self.cache_max_bytes)
                    .await
                    .map_err(|error| StoreError::object_store(cache_dir.display(), error))?;
                let tiered = Arc::new(tiered);
                Ok(OpenedBlocks {
                    object_store: tiered.clone(),
                    tiers: Some(tiered.clone()),
                    local: Some(tiered),
                })
            }
        }
    }
}

/// Where the blocks are, opened.
pub(crate) struct OpenedBlocks {
    pub object_store: Arc<dyn ObjectStore>,
    /// The local copies of a remote store's blocks.
    pub tiers: Option<Arc<TieredStore>>,
    /// The blocks' bytes on local disk: their directory, or a remote store's local copies.
    pub local: Option<Arc<dyn LocalReads>>,
}

/// Retries inside one S3 request: 3, with exponential backoff, for at most 15 s. Short on
/// purpose: a flush or an archive write that still fails is retried as a whole later (its data
/// stays in the WAL or the broker meanwhile) and the failure is reported, which object_store's
/// default (up to 10 retries over 3 minutes) would hide.
pub fn request_retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
    }
}

/// The S3 store of bucket `bucket`, under `prefix` if given. Nothing is sent before the first
/// read or write: a bucket that does not exist, or wrong keys, show up as object-store errors
/// then.
pub fn open_s3(
    bucket: &str,
    prefix: Option<&str>,
    settings: &S3Settings,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let location = Location::S3 {
        bucket: bucket.to_string(),
        prefix: prefix
            .map(|prefix| prefix.trim_matches('/').to_string())
            .filter(|prefix| !prefix.is_empty()),
    };
    let description = location.description();
    let config_error = |message: String| StoreError::new(StoreErrorKind::Config, message);
    if bucket.is_empty() {
        return Err(config_error(format!(
            "{description:?}: the bucket name is empty"
        )));
    }
    let mut builder = if settings.from_environment {
        let mut builder = AmazonS3Builder::from_env();
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            for (key, value) in shared_credentials() {
                builder = builder.with_config(key, value);
            }
        }
        builder
    } else {
        AmazonS3Builder::new()
    };
    for (key, value) in &settings.options {
        let config_key: AmazonS3ConfigKey = key.to_ascii_lowercase().parse().map_err(|_| {
            config_error(format!(
                "{description}: unknown S3 setting {key:?} (use the names of the AWS \
                 variables, e.g. AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID)"
            ))
        })?;
        builder = builder.with_config(config_key, value);
    }
    let store = builder
        .with_bucket_name(bucket)
        .with_retry(settings.retry.clone())
        .build()
        .map_err(|error| config_error(format!("{description}: {error}")))?;
    Ok(match location {
        Location::S3 {
            prefix: Some(prefix),
            ..
        } => {
            let prefix = Path::parse(&prefix)
                .map_err(|error| config_error(format!("{description}: prefix: {error}")))?;
            Arc::new(PrefixStore::new(store, prefix))
        }
        _ => Arc::new(store),
    })
}

/// The keys of the AWS shared credentials file's profile, as object_store names them; none
/// when there is no such file or profile.
fn shared_credentials() -> Vec<(AmazonS3ConfigKey, String)> {
    let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(path) => PathBuf::from(path),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".aws").join("credentials"),
            None => return Vec::new(),
        },
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string());
    match std::fs::read_to_string(&path) {
        Ok(text) => profile_keys(&text, &profile),
        Err(_) => Vec::new(),
    }
}

/// The keys of `[profile]` in an AWS credentials file (INI: `key = value` lines under
/// `[name]` headers, `#` and `;` comments).
fn profile_keys(text: &str, profile: &str) -> Vec<(AmazonS3ConfigKey, String)> {
    let mut in_profile = false;
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            in_profile = name.trim() == profile;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = match key.trim() {
            "aws_access_key_id" => AmazonS3ConfigKey::AccessKeyId,
            "aws_secret_access_key" => AmazonS3ConfigKey::SecretAccessKey,
            "aws_session_token" => AmazonS3ConfigKey::Token,
            _ => continue,
        };
        if in_profile {
            keys.push((key, value.trim().to_string()));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_into_paths_and_buckets() {
        let local = |path: &str| Location::Local(PathBuf::from(path));
        let s3 = |bucket: &str, prefix: Option<&str>| Location::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.map(str::to_string),
        };
        assert_eq!(
            Location::parse("/var/blocks").unwrap(),
            local("/var/blocks")
        );
        assert_eq!(Location::parse("blocks").unwrap(), local("blocks"));
        assert_eq!(
            Location::parse("file:///var/blocks").unwrap(),
            local("/var/blocks")
        );
        assert_eq!(Location::parse("s3://events").unwrap(), s3("events", None));
        assert_eq!(Location::parse("s3://events/").unwrap(), s3("events", None));
        assert_eq!(
            Location::parse("s3://events/muninn/blocks/").unwrap(),
            s3("events", Some("muninn/blocks"))
        );
        assert_eq!(
            s3("events", Some("muninn/blocks")).description(),
            "s3://events/muninn/blocks"
        );
        let tenant = |location: &Location| location.child("tenants").child("a").description();
        assert_eq!(tenant(&s3("events", None)), "s3://events/tenants/a");
        assert_eq!(
            tenant(&s3("events", Some("muninn"))),
            "s3://events/muninn/tenants/a"
        );
        assert_eq!(tenant(&local("/var/blocks")), "/var/blocks/tenants/a");
        for refused in [
            "",
            "s3://",
            "s3:///prefix",
            "file://",
            "gs://bucket",
            "http://x/y",
        ] {
            let error = Location::parse(refused).unwrap_err();
            assert_eq!(error.kind, StoreErrorKind::Config);
            assert!(error.message.contains("s3://BUCKET[/PREFIX]"), "{error}");
        }
    }

    #[test]
    fn an_unknown_s3_setting_is_refused_by_name() {
        let error = open_s3("events", None, &S3Settings::explicit(&[("endpont", "x")]))
            .err()
            .unwrap();
        assert_eq!(error.kind, StoreErrorKind::Config);
        assert!(error.message.contains("\"endpont\""), "{error}");
        assert!(error.message.contains("AWS_ENDPOINT_URL"), "{error}");
    }

    #[test]
    fn the_credentials_file_gives_its_profiles_keys() {
        let text = "# comment\n[default]\naws_access_key_id = A1\naws_secret_access_key=S1\n\
                    region = eu-west-1\n\n[ci]\n; other\naws_access_key_id = A2\n\
                    aws_secret_access_key = S2\naws_session_token = T2\n";
        assert_eq!(
            profile_keys(text, "default"),
            vec![
                (AmazonS3ConfigKey::AccessKeyId, "A1".to_string()),
                (AmazonS3ConfigKey::SecretAccessKey, "S1".to_string()),
            ]
        );
        assert_eq!(profile_keys(text, "ci").len(), 3);
        assert!(profile_keys(text, "missing").is_empty());
    }
}
