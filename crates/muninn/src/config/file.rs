//! The configuration file of `muninn serve`: TOML whose keys are `version`, the settings of
//! `SETTINGS` (a string or a number each, read as text) and the `[tail_sampling]`, `[archive]`,
//! `[storage]`, `[kafka_ingest]` and `[auth]` tables. An unknown key or a value of the wrong type is refused with TOML's line
//! and column.

use std::fmt;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use serde::de::{self, MapAccess};

use super::settings::{SETTINGS, Setting};

/// The version of the configuration file format this binary reads.
const FILE_FORMAT_VERSION: u32 = 1;

/// The configuration file as written: `version`, the settings as text, `[tail_sampling]`,
/// `[archive]`, `[storage]`.
#[derive(Default)]
pub(super) struct FileContents {
    pub settings: Vec<(&'static Setting, String)>,
    pub tail_sampling: Option<toml::Table>,
    pub archive: Option<toml::Table>,
    pub storage: Option<toml::Table>,
    pub kafka_ingest: Option<toml::Table>,
    pub auth: Option<toml::Table>,
    version: Option<u32>,
}

impl FileContents {
    /// Reads a configuration file's text; `path` names it in errors.
    pub(super) fn read(text: &str, path: &Path) -> Result<FileContents> {
        let file: FileContents = toml::from_str(text).map_err(|error| {
            anyhow!(
                "configuration file {}: {}",
                path.display(),
                error.to_string().trim_end()
            )
        })?;
        if let Some(version) = file.version
            && version != FILE_FORMAT_VERSION
        {
            bail!(
                "configuration file {}: `version = {version}` is not supported; this muninn reads version {FILE_FORMAT_VERSION}",
                path.display()
            );
        }
        Ok(file)
    }
}

/// A key of the configuration file. An unknown key is refused as it is read, so the TOML error
/// points at it.
enum FileKey {
    Version,
    Setting(&'static Setting),
    TailSampling,
    Archive,
    Storage,
    KafkaIngest,
    Auth,
}

impl<'de> Deserialize<'de> for FileKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = String::deserialize(deserializer)?;
        match key.as_str() {
            "version" => Ok(FileKey::Version),
            "tail_sampling" => Ok(FileKey::TailSampling),
            "archive" => Ok(FileKey::Archive),
            "storage" => Ok(FileKey::Storage),
            "kafka_ingest" => Ok(FileKey::KafkaIngest),
            "auth" => Ok(FileKey::Auth),
            _ => match SETTINGS.iter().find(|setting| setting.key == key) {
                Some(setting) => Ok(FileKey::Setting(setting)),
                None => {
                    let known: Vec<String> = std::iter::once("version")
                        .chain(SETTINGS.iter().map(|setting| setting.key))
                        .chain([
                            "tail_sampling",
                            "archive",
                            "storage",
                            "kafka_ingest",
                            "auth",
                        ])
                        .map(|key| format!("`{key}`"))
                        .collect();
                    Err(de::Error::custom(format!(
                        "unknown key `{key}`; the keys are {}",
                        known.join(", ")
                    )))
                }
            },
        }
    }
}

impl<'de> Deserialize<'de> for FileContents {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = FileContents;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a table of settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileContents, A::Error> {
                let mut file = FileContents::default();
                while let Some(key) = map.next_key::<FileKey>()? {
                    match key {
                        FileKey::Version => file.version = Some(map.next_value()?),
                        FileKey::TailSampling => file.tail_sampling = Some(map.next_value()?),
                        FileKey::Archive => file.archive = Some(map.next_value()?),
                        FileKey::Storage => file.storage = Some(map.next_value()?),
                        FileKey::KafkaIngest => file.kafka_ingest = Some(map.next_value()?),
                        FileKey::Auth => file.auth = Some(map.next_value()?),
                        FileKey::Setting(setting) => {
                            let Scalar(text) = map.next_value()?;
                            file.settings.push((setting, text));
                        }
                    }
                }
                Ok(file)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A file value written as a string or a number (`retention = "7d"`, `flush_max_spans = 1000`);
/// both are read as text, so the file, the environment and flags share one parser per setting.
#[derive(Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Scalar;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string, a number or a boolean")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar, E> {
                Ok(Scalar(text.to_string()))
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Scalar, E> {
                Ok(Scalar(number.to_string()))
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Scalar, E> {
                Ok(Scalar(number.to_string()))
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Scalar, E> {
                Ok(Scalar(number.to_string()))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
