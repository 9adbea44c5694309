//! The `[storage]` table of `muninn serve`'s configuration file: where the blocks live when not
//! under the data directory — another directory, or an S3 bucket (any service speaking the S3
//! API) with a bounded local copy of the newest blocks (`cache`) — read into the store's
//! `BlockStorage`. File only. Credentials come from the standard
//! AWS variables or the shared credentials file unless the table gives keys. Errors name the
//! key as `storage.<key>` with the file, and say what would be valid.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use muninn_store::location::{self, BlockStorage, Location, S3Settings};

/// The keys of `[storage]`, in the order the example file documents them.
const KEYS: [&str; 11] = [
    "url",
    "node",
    "advertise_url",
    "refresh",
    "endpoint",
    "region",
    "path_style",
    "cache",
    "access_key_id",
    "secret_access_key",
    "session_token",
];

/// The `[storage]` table as written, with the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageSection {
    table: toml::Table,
    path: PathBuf,
}

// Tables compare by value; a NaN never validates, so equality stays an equivalence in use.
impl Eq for StorageSection {}

impl StorageSection {
    pub fn new(table: toml::Table, path: impl Into<PathBuf>) -> Self {
        StorageSection {
            table,
            path: path.into(),
        }
    }

    fn error(&self, key: &str, value: &toml::Value, hint: &str) -> anyhow::Error {
        anyhow!(
            "key `storage.{key}` in {}: {value} is not valid; {hint}",
            self.path.display()
        )
    }

    fn text(&self, key: &str, value: &toml::Value, example: &str) -> Result<String> {
        value
            .as_str()
            .filter(|text| !text.trim().is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                self.error(
                    key,
                    value,
                    &format!("use a non-empty string, like {example}"),
                )
            })
    }

    /// The validated storage (the S3 client is built, without contacting the service, so that
    /// a setting it refuses stops the start here).
    pub fn validate(&self) -> Result<BlockStorage> {
        let mut url = None;
        let mut cache_max_bytes = location::DEFAULT_CACHE_MAX_BYTES;
        let mut node = None;
        let mut advertise_url = None;
        // AWS variable names, as `S3Settings::options` takes them.
        let mut options: Vec<(String, String)> = Vec::new();
        for (key, value) in &self.table {
            match key.as_str() {
                "url" => {
                    let text = self.text(key, value, "\"s3://muninn-blocks/prod\"")?;
                    let parsed = Location::parse(&text).map_err(|error| {
                        self.error(key, value, &format!("use {}", location::VALID_LOCATIONS))
                            .context(error.message)
                    })?;
                    url = Some(parsed);
                }
                "endpoint" => {
                    let endpoint = self.text(key, value, "\"http://127.0.0.1:9000\"")?;
                    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                        return Err(self.error(
                            key,
                            value,
                            "use the service's http:// or https:// URL, like \
                             \"https://s3.eu-west-1.amazonaws.com\"",
                        ));
                    }
                    if endpoint.starts_with("http://") {
                        options.push(("AWS_ALLOW_HTTP".into(), "true".into()));
                    }
                    options.push(("AWS_ENDPOINT_URL".into(), endpoint));
                }
                "region" => {
                    options.push(("AWS_REGION".into(), self.text(key, value, "\"eu-west-1\"")?))
                }
                "path_style" => {
                    let path_style = value
                        .as_bool()
                        .ok_or_else(|| self.error(key, value, "use true or false"))?;
                    options.push((
                        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST".into(),
                        (!path_style).to_string(),
                    ));
                }
                "node" => {
                    let name = self.text(key, value, "\"ingest-a\"")?;
                    let valid = name.len() <= 64
                        && name.chars().all(|char| {
                            char.is_ascii_lowercase() || char.is_ascii_digit() || char == '-'
                        });
                    if !valid {
                        return Err(self.error(
                            key,
                            value,
                            "use up to 64 lowercase letters, digits and -, like \"ingest-a\"",
                        ));
                    }
                    node = Some(name);
                }
                "advertise_url" => {
                    let url = self.text(key, value, "\"http://ingest-a.internal:4320\"")?;
                    let valid = (url.starts_with("http://") || url.starts_with("https://"))
                        && url.len() > "https://".len();
                    if !valid {
                        return Err(self.error(
                            key,
                            value,
                            "use the http:// URL query nodes reach this node at, like \
                             \"http://ingest-a.internal:4320\"",
                        ));
                    }
                    advertise_url = Some(url.trim_end_matches('/').to_string());
                }
                // Read by `refresh`, with the role.
                "refresh" => {}
                "cache" => {
                    let text = match value {
                        toml::Value::Integer(number) => number.to_string(),
                        toml::Value::String(text) => text.clone(),
                        _ => String::new(),
                    };
                    cache_max_bytes = super::settings::parse_size(&text).ok_or_else(|| {
                        self.error(
                            key,
                            value,
                            "use a number of bytes, or one with KiB, MiB or GiB, like \"8GiB\", \
                             or 0 for no local copies",
                        )
                    })?;
                }
                "access_key_id" | "secret_access_key" | "session_token" => {
                    let variable = match key.as_str() {
                        "access_key_id" => "AWS_ACCESS_KEY_ID",
                        "secret_access_key" => "AWS_SECRET_ACCESS_KEY",
                        _ => "AWS_SESSION_TOKEN",
                    };
                    options.push((variable.into(), self.text(key, value, "\"…\"")?));
                }
                unknown => {
                    return Err(anyhow!(
                        "configuration file {}: unknown key `storage.{unknown}`; the keys of \
                         [storage] are {}",
                        self.path.display(),
                        KEYS.join(", ")
                    ));
                }
            }
        }
        let location = url.ok_or_else(|| {
            anyhow!(
                "configuration file {}: `storage.url` is missing; give where the blocks live, \
                 like url = \"s3://muninn-blocks/prod\" or url = \"file:///mnt/blocks\"",
                self.path.display()
            )
        })?;
        let s3 = S3Settings {
            options,
            ..S3Settings::from_environment()
        };
        match &location {
            Location::Local(_) => {
                let local_keys = ["url", "node", "refresh", "advertise_url"];
                if let Some((key, _)) = self
                    .table
                    .iter()
                    .find(|(key, _)| !local_keys.contains(&key.as_str()))
                {
                    return Err(anyhow!(
                        "key `storage.{key}` in {}: S3 settings apply only to an s3:// url",
                        self.path.display()
                    ));
                }
            }
            Location::S3 { bucket, prefix } => {
                location::open_s3(bucket, prefix.as_deref(), &s3).map_err(|error| {
                    anyhow!("[storage] in {}: {}", self.path.display(), error.message)
                })?;
            }
        }
        Ok(BlockStorage {
            cache_max_bytes,
            node,
            advertise_url,
            ..BlockStorage::new(location, s3)
        })
    }

    /// `refresh`: how often a query node lists the nodes' blocks again.
    pub fn refresh(&self) -> Result<Option<std::time::Duration>> {
        let Some(value) = self.table.get("refresh") else {
            return Ok(None);
        };
        value
            .as_str()
            .and_then(|text| muninn_model::parse_duration(text).ok())
            .filter(|duration| !duration.is_zero())
            .map(Some)
            .ok_or_else(|| {
                self.error(
                    "refresh",
                    value,
                    "use a duration above zero as text, like \"10s\"",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> StorageSection {
        StorageSection::new(text.parse::<toml::Table>().unwrap(), "/etc/muninn.toml")
    }

    #[test]
    fn an_s3_url_with_its_settings_becomes_the_block_storage() {
        let storage = section(
            "url = \"s3://blocks/prod/\"\nendpoint = \"http://127.0.0.1:9000\"\n\
             region = \"eu-west-1\"\npath_style = true\n",
        )
        .validate()
        .unwrap();
        assert_eq!(
            storage.location,
            Location::S3 {
                bucket: "blocks".into(),
                prefix: Some("prod".into())
            }
        );
        assert!(storage.s3.from_environment);
        let option = |name: &str| {
            storage
                .s3
                .options
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(option("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:9000"));
        assert_eq!(option("AWS_ALLOW_HTTP"), Some("true"));
        assert_eq!(option("AWS_REGION"), Some("eu-west-1"));
        assert_eq!(option("AWS_VIRTUAL_HOSTED_STYLE_REQUEST"), Some("false"));
        let local = section("url = \"file:///mnt/blocks\"\n")
            .validate()
            .unwrap();
        assert_eq!(local.location, Location::Local("/mnt/blocks".into()));
    }

    #[test]
    fn bad_storage_settings_are_refused_by_key_with_what_is_valid() {
        for (text, expected) in [
            ("region = \"x\"\n", "`storage.url` is missing"),
            ("url = \"gs://x\"\n", "s3://BUCKET[/PREFIX]"),
            ("url = \"\"\n", "`storage.url`"),
            (
                "url = \"s3://b\"\nendpoint = \"127.0.0.1:9000\"\n",
                "`storage.endpoint`",
            ),
            (
                "url = \"s3://b\"\npath_style = \"yes\"\n",
                "use true or false",
            ),
            (
                "url = \"s3://b\"\nbucket = \"b\"\n",
                "unknown key `storage.bucket`",
            ),
            (
                "url = \"/mnt/blocks\"\nregion = \"eu-west-1\"\n",
                "only to an s3:// url",
            ),
        ] {
            let error = format!("{:#}", section(text).validate().unwrap_err());
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.contains("/etc/muninn.toml"), "{text:?}: {error}");
        }
    }

    /// The example file's `[storage]` table, uncommented, names every key and is valid.
    #[test]
    fn the_example_file_documents_every_key() {
        let example = include_str!("../../muninn.example.toml");
        let table: String = example
            .lines()
            .skip_while(|line| *line != "# [storage]")
            .skip(1)
            .take_while(|line| line.starts_with("# ") && !line.starts_with("# ["))
            .map(|line| format!("{}\n", line.trim_start_matches('#').trim_start()))
            .collect();
        for key in KEYS {
            assert!(
                table.contains(&format!("{key} = ")),
                "{key} is not in the example:\n{table}"
            );
        }
        let storage = section(&table).validate().unwrap();
        assert_eq!(
            storage.location,
            Location::S3 {
                bucket: "muninn-blocks".into(),
                prefix: Some("prod".into())
            }
        );
    }
}
