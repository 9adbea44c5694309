//! The `[archive]` table of `muninn serve`'s configuration file, with its sub-tables
//! `[archive.kafka]` and `[archive.nats]`, read into the server's `ArchiveConfig`. File only
//! (no flags or environment: it is a set of recorders, not one value); its presence gives the
//! server an event archive, and its sub-tables run recorders inside the server, unless it says
//! `enabled = false`. Errors name the key as `archive.<key>` with the file, and say what would
//! be valid.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use muninn_archive::{KafkaSource, NatsSource, RecorderOptions, RetentionRule};
use muninn_server::{ArchiveConfig, MaintenanceConfig};

/// The keys of `[archive]`, of `[archive.kafka]` and of `[archive.nats]`, in the order the
/// example file documents them.
const KEYS: [&str; 11] = [
    "enabled",
    "location",
    "max_file_bytes",
    "max_file_messages",
    "max_file_age",
    "group_positions_every",
    "retain",
    "compact",
    "maintenance_every",
    "kafka",
    "nats",
];
const KAFKA_KEYS: [&str; 4] = ["bootstrap", "topics", "group", "options"];
const NATS_KEYS: [&str; 3] = ["url", "streams", "durable"];

/// The consumer group (Kafka) and durable consumer (JetStream) unless the file names one: the
/// same as `muninn archive run`'s, so the two take turns on one archive.
const DEFAULT_GROUP: &str = "muninn-archive";

/// The `[archive]` table as written, with the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveSection {
    table: toml::Table,
    path: PathBuf,
}

// Tables compare by value; a NaN never validates, so equality stays an equivalence in use.
impl Eq for ArchiveSection {}

impl ArchiveSection {
    pub fn new(table: toml::Table, path: impl Into<PathBuf>) -> Self {
        ArchiveSection {
            table,
            path: path.into(),
        }
    }

    fn error(&self, key: &str, value: &toml::Value, hint: &str) -> anyhow::Error {
        anyhow!(
            "key `archive.{key}` in {}: {value} is not valid; {hint}",
            self.path.display()
        )
    }

    fn missing(&self, key: &str, hint: &str) -> anyhow::Error {
        anyhow!(
            "configuration file {}: `archive.{key}` is missing; {hint}",
            self.path.display()
        )
    }

    fn unknown(&self, table: &str, key: &str, known: &[&str]) -> anyhow::Error {
        anyhow!(
            "configuration file {}: unknown key `{table}.{key}`; the keys of [{table}] are {}",
            self.path.display(),
            known.join(", ")
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

    fn names(&self, key: &str, value: &toml::Value, example: &str) -> Result<Vec<String>> {
        let hint = format!("use a non-empty list of names, like {example}");
        let items = value
            .as_array()
            .filter(|items| !items.is_empty())
            .ok_or_else(|| self.error(key, value, &hint))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .filter(|text| !text.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| self.error(key, value, &hint))
            })
            .collect()
    }

    fn table<'a>(&self, key: &str, value: &'a toml::Value) -> Result<&'a toml::Table> {
        value.as_table().ok_or_else(|| {
            self.error(
                key,
                value,
                &format!("write it as a table, [archive.{key}] after [archive]"),
            )
        })
    }

    /// The validated configuration, or `None` when the table says `enabled = false`.
    pub fn validate(&self) -> Result<Option<ArchiveConfig>> {
        let mut enabled = true;
        let mut location = None;
        let mut recorder = RecorderOptions::default();
        let mut maintenance = MaintenanceConfig::default();
        let (mut kafka, mut nats) = (None, None);
        for (key, value) in &self.table {
            match key.as_str() {
                "enabled" => {
                    enabled = value
                        .as_bool()
                        .ok_or_else(|| self.error(key, value, "use true or false"))?
                }
                "location" => location = Some(self.text(key, value, "\"./muninn-archive\"")?),
                "max_file_bytes" => {
                    let text = match value {
                        toml::Value::Integer(number) => number.to_string(),
                        toml::Value::String(text) => text.clone(),
                        _ => String::new(),
                    };
                    recorder.max_file_bytes = super::settings::parse_body_bytes(&text)
                        .map_err(|hint| self.error(key, value, hint))?;
                }
                "max_file_messages" => {
                    recorder.max_file_messages = value
                        .as_integer()
                        .and_then(|number| usize::try_from(number).ok())
                        .filter(|number| *number > 0)
                        .ok_or_else(|| {
                            self.error(key, value, "use a whole number of at least 1, like 500000")
                        })?
                }
                "max_file_age" => {
                    const HINT: &str = "use a duration above zero as text, like \"60s\" or \"5m\"";
                    recorder.max_file_age = value
                        .as_str()
                        .and_then(|text| muninn_model::parse_duration(text).ok())
                        .filter(|duration| !duration.is_zero())
                        .ok_or_else(|| self.error(key, value, HINT))?
                }
                "group_positions_every" => {
                    const HINT: &str =
                        "use a duration above zero as text, like \"60s\", or \"off\"";
                    recorder.group_positions_every = match value.as_str() {
                        Some("off") => None,
                        text => Some(
                            text.and_then(|text| muninn_model::parse_duration(text).ok())
                                .filter(|duration| !duration.is_zero())
                                .ok_or_else(|| self.error(key, value, HINT))?,
                        ),
                    }
                }
                "retain" => {
                    let example = "[\"orders.*=30d\", \"*=2d\"]";
                    maintenance.retention = self
                        .names(key, value, example)?
                        .iter()
                        .map(|rule| {
                            RetentionRule::parse(rule).map_err(|error| {
                                self.error(key, value, &format!("{error}; like {example}"))
                            })
                        })
                        .collect::<Result<_>>()?;
                }
                "compact" => {
                    maintenance.compact = value
                        .as_bool()
                        .ok_or_else(|| self.error(key, value, "use true or false"))?
                }
                "maintenance_every" => {
                    const HINT: &str = "use a duration above zero as text, like \"1h\" or \"15m\"";
                    maintenance.every = value
                        .as_str()
                        .and_then(|text| muninn_model::parse_duration(text).ok())
                        .filter(|duration| !duration.is_zero())
                        .ok_or_else(|| self.error(key, value, HINT))?
                }
                "kafka" => kafka = Some(self.kafka(self.table(key, value)?)?),
                "nats" => nats = Some(self.nats(self.table(key, value)?)?),
                unknown => return Err(self.unknown("archive", unknown, &KEYS)),
            }
        }
        let location = location.ok_or_else(|| {
            self.missing(
                "location",
                "give the archive's directory, like location = \"./muninn-archive\"",
            )
        })?;
        let config = ArchiveConfig {
            location,
            kafka,
            nats,
            recorder,
            maintenance,
        };
        config.validate().map_err(|error| {
            anyhow!(
                "key `archive.{}` in {}: {}",
                error.key,
                self.path.display(),
                error.message
            )
        })?;
        Ok(enabled.then_some(config))
    }

    fn kafka(&self, table: &toml::Table) -> Result<KafkaSource> {
        let (mut bootstrap, mut topics) = (None, None);
        let mut group = DEFAULT_GROUP.to_owned();
        let mut settings = Vec::new();
        for (key, value) in table {
            let full = format!("kafka.{key}");
            match key.as_str() {
                "bootstrap" => {
                    bootstrap = Some(self.text(&full, value, "\"kafka-1:9092,kafka-2:9092\"")?)
                }
                "topics" => {
                    topics = Some(self.names(&full, value, "[\"orders\", \"^payments\\\\..*\"]")?)
                }
                "group" => group = self.text(&full, value, "\"muninn-archive\"")?,
                "options" => {
                    const HINT: &str = "use a table of librdkafka settings, like { \"security.protocol\" = \"SSL\" }";
                    let options = value
                        .as_table()
                        .ok_or_else(|| self.error(&full, value, HINT))?;
                    for (name, setting) in options {
                        let setting = match setting {
                            toml::Value::String(text) => text.clone(),
                            toml::Value::Integer(_) | toml::Value::Boolean(_) => {
                                setting.to_string()
                            }
                            _ => return Err(self.error(&format!("{full}.{name}"), setting, HINT)),
                        };
                        settings.push((name.clone(), setting));
                    }
                }
                unknown => return Err(self.unknown("archive.kafka", unknown, &KAFKA_KEYS)),
            }
        }
        Ok(KafkaSource {
            bootstrap: bootstrap.ok_or_else(|| {
                self.missing("kafka.bootstrap", "give the brokers, like bootstrap = \"kafka-1:9092\"")
            })?,
            topics: topics.ok_or_else(|| {
                self.missing(
                    "kafka.topics",
                    "give the topics to record, like topics = [\"orders\"] (a name starting with ^ is a pattern)",
                )
            })?,
            group,
            settings,
        })
    }

    fn nats(&self, table: &toml::Table) -> Result<NatsSource> {
        let (mut url, mut streams) = (None, None);
        let mut durable = DEFAULT_GROUP.to_owned();
        for (key, value) in table {
            let full = format!("nats.{key}");
            match key.as_str() {
                "url" => url = Some(self.text(&full, value, "\"nats://127.0.0.1:4222\"")?),
                "streams" => {
                    streams = Some(self.names(&full, value, "[\"orders\", \"payments-*\"]")?)
                }
                "durable" => durable = self.text(&full, value, "\"muninn-archive\"")?,
                unknown => return Err(self.unknown("archive.nats", unknown, &NATS_KEYS)),
            }
        }
        Ok(NatsSource {
            url: url.ok_or_else(|| {
                self.missing("nats.url", "give the NATS server, like url = \"nats://127.0.0.1:4222\"")
            })?,
            streams: streams.ok_or_else(|| {
                self.missing(
                    "nats.streams",
                    "give the JetStream streams to record, like streams = [\"orders\"] (* matches any characters)",
                )
            })?,
            durable,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn section(text: &str) -> ArchiveSection {
        let table: toml::Table = toml::from_str(text).expect("valid TOML");
        ArchiveSection::new(table, "muninn.toml")
    }

    #[test]
    fn every_key_is_read_and_the_rest_take_their_defaults() {
        let config = section(
            "location = \"/var/lib/muninn/archive\"\nmax_file_bytes = \"8MiB\"\n\
             max_file_messages = 1000\nmax_file_age = \"10s\"\n\
             [kafka]\nbootstrap = \"k1:9092,k2:9092\"\ntopics = [\"orders\", \"^payments\\\\..*\"]\n\
             options = { \"security.protocol\" = \"SSL\", \"fetch.wait.max.ms\" = 100 }\n\
             [nats]\nurl = \"nats://n:4222\"\nstreams = [\"orders*\"]\ndurable = \"archiver\"\n",
        )
        .validate()
        .unwrap()
        .expect("enabled");
        assert_eq!(config.location, "/var/lib/muninn/archive");
        assert_eq!(config.recorder.max_file_bytes, 8 << 20);
        assert_eq!(config.recorder.max_file_messages, 1000);
        assert_eq!(config.recorder.max_file_age, Duration::from_secs(10));
        let kafka = config.kafka.expect("kafka");
        assert_eq!(kafka.bootstrap, "k1:9092,k2:9092");
        assert_eq!(kafka.topics, ["orders", "^payments\\..*"]);
        assert_eq!(kafka.group, "muninn-archive");
        assert_eq!(
            kafka.settings,
            [
                ("fetch.wait.max.ms".to_owned(), "100".to_owned()),
                ("security.protocol".to_owned(), "SSL".to_owned())
            ]
        );
        let nats = config.nats.expect("nats");
        assert_eq!(
            (
                nats.url.as_str(),
                nats.streams.as_slice(),
                nats.durable.as_str()
            ),
            (
                "nats://n:4222",
                ["orders*".to_owned()].as_slice(),
                "archiver"
            )
        );

        let upkeep = section(
            "location = \"a\"\nretain = [\"orders.*=30d\", \"*=2d\"]\ncompact = false\n\
             maintenance_every = \"15m\"\ngroup_positions_every = \"off\"\n",
        )
        .validate()
        .unwrap()
        .expect("enabled");
        assert_eq!(upkeep.maintenance.retention.len(), 2);
        assert!(upkeep.maintenance.retention[0].matches("orders.eu"));
        assert!(!upkeep.maintenance.compact);
        assert_eq!(upkeep.maintenance.every, Duration::from_secs(900));
        assert_eq!(upkeep.recorder.group_positions_every, None);
        for (bad, named) in [
            ("retain = [\"orders\"]", "archive.retain"),
            ("retain = \"*=2d\"", "archive.retain"),
            ("compact = \"yes\"", "archive.compact"),
            ("maintenance_every = \"0s\"", "archive.maintenance_every"),
            (
                "group_positions_every = \"never\"",
                "archive.group_positions_every",
            ),
        ] {
            let error = section(&format!("location = \"a\"\n{bad}\n"))
                .validate()
                .unwrap_err()
                .to_string();
            assert!(error.contains(named), "{bad}: {error}");
        }

        let bare = section("location = \"a\"")
            .validate()
            .unwrap()
            .expect("enabled");
        assert!(bare.kafka.is_none() && bare.nats.is_none());
        assert_eq!(
            bare.recorder.max_file_bytes,
            RecorderOptions::default().max_file_bytes
        );
        assert!(
            section("location = \"a\"\nenabled = false")
                .validate()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_table_in_the_file_gives_the_server_an_archive_and_it_has_none_without() {
        use crate::config::RawConfig;
        let path = std::path::Path::new("muninn.toml");
        let load = |text: &str| RawConfig::from_toml(text, path).and_then(RawConfig::validate);
        assert!(load("retention = \"7d\"\n").unwrap().archive.is_none());
        let example = load(include_str!("../../muninn.example.toml")).unwrap();
        assert!(example.archive.is_none(), "off in the example file");
        let on = load("[archive]\nlocation = \"arch\"\n[archive.nats]\nurl = \"nats://n:4222\"\nstreams = [\"s\"]\n")
            .unwrap()
            .archive
            .expect("an archive");
        assert_eq!(on.location, "arch");
        assert_eq!(
            on.nats.map(|nats| nats.durable).as_deref(),
            Some("muninn-archive")
        );
        let error = load("[archive]\nlocation = \"arch\"\nmax_file_age = 10\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("key `archive.max_file_age` in muninn.toml:"),
            "{error}"
        );
    }

    /// The example file's `[archive]` tables, uncommented, are valid and show the defaults.
    #[test]
    fn the_example_file_documents_every_key_with_its_default() {
        let example = include_str!("../../muninn.example.toml");
        let tables: String = example
            .lines()
            .skip_while(|line| *line != "# [archive]")
            .take_while(|line| line.starts_with('#'))
            .map(|line| format!("{}\n", line.trim_start_matches('#').trim_start()))
            .collect();
        for key in KEYS.iter().chain(&KAFKA_KEYS).chain(&NATS_KEYS) {
            let written = match *key {
                "enabled" => true,
                "kafka" | "nats" => tables.contains(&format!("\n[archive.{key}]")),
                _ => tables.contains(&format!("\n{key} = ")),
            };
            assert!(written, "{key} is not in the example:\n{tables}");
        }
        let path = std::path::Path::new("muninn.toml");
        let config = crate::config::RawConfig::from_toml(&tables, path)
            .and_then(crate::config::RawConfig::validate)
            .unwrap()
            .archive
            .expect("an archive");
        let defaults = RecorderOptions::default();
        assert_eq!(config.location, "./muninn-archive");
        assert_eq!(config.recorder.max_file_bytes, defaults.max_file_bytes);
        assert_eq!(
            config.recorder.max_file_messages,
            defaults.max_file_messages
        );
        assert_eq!(config.recorder.max_file_age, defaults.max_file_age);
        let kafka = config.kafka.expect("kafka");
        assert_eq!(kafka.topics, ["orders", "^payments\\..*"]);
        assert_eq!(kafka.group, DEFAULT_GROUP);
        assert_eq!(config.nats.expect("nats").durable, DEFAULT_GROUP);
    }

    #[test]
    fn errors_name_the_key_the_file_and_what_is_valid() {
        let error = |text: &str| section(text).validate().unwrap_err().to_string();
        assert_eq!(
            error("max_file_messages = 0\nlocation = \"a\""),
            "key `archive.max_file_messages` in muninn.toml: 0 is not valid; use a whole number of at least 1, like 500000"
        );
        assert_eq!(
            error("max_file_bytes = 5"),
            "key `archive.max_file_bytes` in muninn.toml: 5 is not valid; use a number of bytes, or one with KiB, MiB or GiB, between 1KiB and 1GiB, like 16MiB"
        );
        let missing = error("max_file_age = \"1m\"");
        assert!(
            missing.contains("`archive.location` is missing") && missing.contains("muninn.toml"),
            "{missing}"
        );
        let unknown = error("location = \"a\"\nlocaton = \"b\"");
        assert!(
            unknown.contains("`archive.locaton`") && unknown.contains("location"),
            "{unknown}"
        );
        let unknown = error("location = \"a\"\n[kafka]\nbrokers = \"k:9092\"");
        assert!(
            unknown.contains("`archive.kafka.brokers`") && unknown.contains("bootstrap"),
            "{unknown}"
        );
        assert!(
            error("location = \"a\"\n[kafka]\nbootstrap = \"k:9092\"")
                .contains("`archive.kafka.topics` is missing")
        );
        assert!(
            error("location = \"a\"\n[kafka]\nbootstrap = \"k:9092\"\ntopics = \"orders\"")
                .starts_with("key `archive.kafka.topics` in muninn.toml:")
        );
        // The server's own checks, named the same way.
        let bad_topic =
            error("location = \"a\"\n[kafka]\nbootstrap = \"k:9092\"\ntopics = [\"or ders\"]");
        assert!(
            bad_topic.starts_with("key `archive.kafka.topics` in muninn.toml:")
                && bad_topic.contains("pattern starting with ^"),
            "{bad_topic}"
        );
        assert!(
            error("location = \"ftp://bucket\"")
                .starts_with("key `archive.location` in muninn.toml:")
        );
        assert!(
            error("location = \"a\"\n[nats]\nurl = \"nats://n\"\nstreams = []")
                .starts_with("key `archive.nats.streams` in muninn.toml:")
        );
        assert!(error("location = \"a\"\nkafka = 1").contains("as a table"));
    }
}
