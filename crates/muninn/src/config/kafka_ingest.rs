//! The `[kafka_ingest]` table of `muninn serve`'s configuration file: the Kafka topics an ingest
//! node consumes span batches from, as a consumer group (docs/scaling.md). File only. Errors
//! name the key as `kafka_ingest.<key>` with the file, and say what would be valid.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use muninn_server::{DEFAULT_KAFKA_INGEST_GROUP, KafkaIngestConfig};

/// The keys of `[kafka_ingest]`, in the order the example file documents them.
const KEYS: [&str; 4] = ["bootstrap", "topics", "group", "options"];

/// The `[kafka_ingest]` table as written, with the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaIngestSection {
    table: toml::Table,
    path: PathBuf,
}

// Tables compare by value; a NaN never validates, so equality stays an equivalence in use.
impl Eq for KafkaIngestSection {}

impl KafkaIngestSection {
    pub fn new(table: toml::Table, path: impl Into<PathBuf>) -> Self {
        KafkaIngestSection {
            table,
            path: path.into(),
        }
    }

    fn error(&self, key: &str, value: &toml::Value, hint: &str) -> anyhow::Error {
        anyhow!(
            "key `kafka_ingest.{key}` in {}: {value} is not valid; {hint}",
            self.path.display()
        )
    }

    pub fn validate(&self) -> Result<KafkaIngestConfig> {
        let mut bootstrap = None;
        let mut topics = None;
        let mut group = DEFAULT_KAFKA_INGEST_GROUP.to_string();
        let mut settings = Vec::new();
        let text = |key: &str, value: &toml::Value, example: &str| {
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
        };
        for (key, value) in &self.table {
            match key.as_str() {
                "bootstrap" => bootstrap = Some(text(key, value, "\"kafka-1:9092\"")?),
                "group" => group = text(key, value, "\"muninn-ingest\"")?,
                "topics" => {
                    let hint = "use a non-empty list of topic names, like [\"muninn-spans\"]";
                    let names = value
                        .as_array()
                        .filter(|items| !items.is_empty())
                        .ok_or_else(|| self.error(key, value, hint))?
                        .iter()
                        .map(|item| {
                            item.as_str()
                                .filter(|name| !name.is_empty())
                                .map(str::to_owned)
                                .ok_or_else(|| self.error(key, value, hint))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    topics = Some(names);
                }
                "options" => {
                    let hint = "use a table of librdkafka settings as strings, like \
                                { \"security.protocol\" = \"SSL\" }";
                    for (name, setting) in value
                        .as_table()
                        .ok_or_else(|| self.error(key, value, hint))?
                    {
                        let setting = setting
                            .as_str()
                            .ok_or_else(|| self.error(key, value, hint))?;
                        settings.push((name.clone(), setting.to_string()));
                    }
                }
                unknown => {
                    return Err(anyhow!(
                        "configuration file {}: unknown key `kafka_ingest.{unknown}`; the keys \
                         of [kafka_ingest] are {}",
                        self.path.display(),
                        KEYS.join(", ")
                    ));
                }
            }
        }
        let missing = |key: &str, hint: &str| {
            anyhow!(
                "configuration file {}: `kafka_ingest.{key}` is missing; {hint}",
                self.path.display()
            )
        };
        Ok(KafkaIngestConfig {
            bootstrap: bootstrap
                .ok_or_else(|| missing("bootstrap", "give the brokers, like \"kafka-1:9092\""))?,
            topics: topics.ok_or_else(|| {
                missing(
                    "topics",
                    "give the topics to consume, like [\"muninn-spans\"]",
                )
            })?,
            group,
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> KafkaIngestSection {
        KafkaIngestSection::new(text.parse::<toml::Table>().unwrap(), "/etc/muninn.toml")
    }

    #[test]
    fn the_table_becomes_the_consumer_or_names_what_is_wrong() {
        let config = section(
            "bootstrap = \"k1:9092\"\ntopics = [\"spans\"]\noptions = { \"client.id\" = \"a\" }\n",
        )
        .validate()
        .unwrap();
        assert_eq!(config.group, DEFAULT_KAFKA_INGEST_GROUP);
        assert_eq!(config.topics, ["spans"]);
        assert_eq!(
            config.settings,
            [("client.id".to_string(), "a".to_string())]
        );
        for (text, expected) in [
            ("topics = [\"s\"]\n", "`kafka_ingest.bootstrap` is missing"),
            (
                "bootstrap = \"k:9092\"\n",
                "`kafka_ingest.topics` is missing",
            ),
            (
                "bootstrap = \"k:9092\"\ntopics = []\n",
                "`kafka_ingest.topics`",
            ),
            (
                "bootstrap = \"k:9092\"\ntopics = [\"s\"]\ntopic = \"s\"\n",
                "unknown key",
            ),
        ] {
            let error = section(text).validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.contains("/etc/muninn.toml"), "{error}");
        }
    }
}
