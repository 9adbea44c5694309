//! `muninn serve` configuration, in two stages: every source (a TOML file, `MUNINN_*`
//! environment variables, flags) gives a raw layer of text settings that remember where they
//! came from; the layers are stacked (flags > environment > file > defaults) and then validated
//! once into a `ServerConfig`, with errors that name the setting, its source, and what is valid.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::ArgMatches;
use clap::parser::ValueSource;
use muninn_server::ServerConfig;

use crate::tail_sampling_config::TailSamplingSection;
use serde::Deserialize;

/// The address `serve` and `demo` listen on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4320";
/// OTLP/gRPC's address unless told otherwise (OpenTelemetry's default port, on loopback).
pub const DEFAULT_OTLP_GRPC_LISTEN: &str = "127.0.0.1:4317";
const DEFAULT_DATA_DIR: &str = "./muninn-data";
const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
/// The version of the configuration file format this binary reads.
const FILE_FORMAT_VERSION: u32 = 1;

/// `muninn serve` flags; each also reads a `MUNINN_*` environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see muninn.example.toml); flags and environment override it.
    #[arg(long, env = "MUNINN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT [default: 127.0.0.1:4320]; port 0 picks a free port.
    #[arg(long, env = "MUNINN_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory of the embedded store (write-ahead log and blocks) [default: ./muninn-data].
    #[arg(long, env = "MUNINN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<String>,
    /// How long to keep data, like 12h, 7d, 30d; "0" or "forever" keeps everything [default: 7d].
    #[arg(long, env = "MUNINN_RETENTION", value_name = "DURATION")]
    pub retention: Option<String>,
    /// Largest request body, compressed or not: bytes, or with KiB/MiB/GiB [default: 16MiB].
    #[arg(long, env = "MUNINN_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<String>,
    /// Write the in-memory head to a block when it holds this many spans [default: 500000].
    #[arg(long, env = "MUNINN_FLUSH_MAX_SPANS", value_name = "N")]
    pub flush_max_spans: Option<String>,
    /// Write the head to a block when its oldest record is this old, like 5m [default: 5m].
    #[arg(long, env = "MUNINN_FLUSH_MAX_AGE", value_name = "DURATION")]
    pub flush_max_age: Option<String>,
    /// Share of events traced when no sampling rule matches, 0 to 1 [default: 1].
    #[arg(long, env = "MUNINN_DEFAULT_SAMPLE_RATE", value_name = "RATE")]
    pub default_sample_rate: Option<String>,
    /// OTLP/gRPC address, HOST:PORT, or "off" [default: 127.0.0.1:4317]; OTLP/HTTP is always
    /// served on --listen at /v1/traces.
    #[arg(long, env = "MUNINN_OTLP_GRPC_LISTEN", value_name = "ADDR")]
    pub otlp_grpc_listen: Option<String>,
    /// OTLP span attribute holding the event type, read before cloudevents.event_type.
    #[arg(long, env = "MUNINN_OTLP_EVENT_TYPE_ATTRIBUTE", value_name = "KEY")]
    pub otlp_event_type_attribute: Option<String>,
    /// OTLP span attribute holding the event id, read before cloudevents.event_id and
    /// messaging.message.id.
    #[arg(long, env = "MUNINN_OTLP_EVENT_ID_ATTRIBUTE", value_name = "KEY")]
    pub otlp_event_id_attribute: Option<String>,
}

/// Where a setting came from, as it is named in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(&'static str),
    File { key: &'static str, path: PathBuf },
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(formatter, "flag {flag}"),
            Origin::Env(variable) => write!(formatter, "environment variable {variable}"),
            Origin::File { key, path } => write!(formatter, "key `{key}` in {}", path.display()),
        }
    }
}

/// One setting as given, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub text: String,
    pub origin: Origin,
}

/// One layer of settings; `None` means this layer does not set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    pub listen: Option<Sourced>,
    pub data_dir: Option<Sourced>,
    pub retention: Option<Sourced>,
    pub max_body_bytes: Option<Sourced>,
    pub flush_max_spans: Option<Sourced>,
    pub flush_max_age: Option<Sourced>,
    pub default_sample_rate: Option<Sourced>,
    pub otlp_grpc_listen: Option<Sourced>,
    pub otlp_event_type_attribute: Option<Sourced>,
    pub otlp_event_id_attribute: Option<Sourced>,
    /// The `[tail_sampling]` table (file only; see `tail_sampling_config.rs`).
    pub tail_sampling: Option<TailSamplingSection>,
}

/// Each setting's file key, flag and environment variable.
struct Key {
    file: &'static str,
    flag: &'static str,
    env: &'static str,
}

const LISTEN: Key = Key {
    file: "listen",
    flag: "--listen",
    env: "MUNINN_LISTEN",
};
const DATA_DIR: Key = Key {
    file: "data_dir",
    flag: "--data-dir",
    env: "MUNINN_DATA_DIR",
};
const RETENTION: Key = Key {
    file: "retention",
    flag: "--retention",
    env: "MUNINN_RETENTION",
};
const MAX_BODY_BYTES: Key = Key {
    file: "max_body_bytes",
    flag: "--max-body-bytes",
    env: "MUNINN_MAX_BODY_BYTES",
};
const FLUSH_MAX_SPANS: Key = Key {
    file: "flush_max_spans",
    flag: "--flush-max-spans",
    env: "MUNINN_FLUSH_MAX_SPANS",
};
const DEFAULT_SAMPLE_RATE: Key = Key {
    file: "default_sample_rate",
    flag: "--default-sample-rate",
    env: "MUNINN_DEFAULT_SAMPLE_RATE",
};
const FLUSH_MAX_AGE: Key = Key {
    file: "flush_max_age",
    flag: "--flush-max-age",
    env: "MUNINN_FLUSH_MAX_AGE",
};
const OTLP_GRPC_LISTEN: Key = Key {
    file: "otlp_grpc_listen",
    flag: "--otlp-grpc-listen",
    env: "MUNINN_OTLP_GRPC_LISTEN",
};
const OTLP_EVENT_TYPE_ATTRIBUTE: Key = Key {
    file: "otlp_event_type_attribute",
    flag: "--otlp-event-type-attribute",
    env: "MUNINN_OTLP_EVENT_TYPE_ATTRIBUTE",
};
const OTLP_EVENT_ID_ATTRIBUTE: Key = Key {
    file: "otlp_event_id_attribute",
    flag: "--otlp-event-id-attribute",
    env: "MUNINN_OTLP_EVENT_ID_ATTRIBUTE",
};

/// The configuration file: every key optional, unknown keys refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    version: Option<u32>,
    listen: Option<Scalar>,
    data_dir: Option<Scalar>,
    retention: Option<Scalar>,
    max_body_bytes: Option<Scalar>,
    flush_max_spans: Option<Scalar>,
    flush_max_age: Option<Scalar>,
    default_sample_rate: Option<Scalar>,
    otlp_grpc_listen: Option<Scalar>,
    otlp_event_type_attribute: Option<Scalar>,
    otlp_event_id_attribute: Option<Scalar>,
    tail_sampling: Option<toml::Table>,
}

/// A file value written as a string or a number (`retention = "7d"`, `flush_max_spans = 1000`);
/// both are read as text, so the file, the environment and flags share one parser per setting.
#[derive(Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Scalar;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Scalar, E> {
                Ok(Scalar(text.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Scalar, E> {
                Ok(Scalar(number.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Scalar, E> {
                Ok(Scalar(number.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<Scalar, E> {
                Ok(Scalar(number.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl RawConfig {
    /// The layer of a TOML configuration file's text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<RawConfig> {
        let file: FileConfig = toml::from_str(text).map_err(|error| {
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
        let sourced = |key: &Key, value: Option<Scalar>| {
            value.map(|Scalar(text)| Sourced {
                text,
                origin: Origin::File {
                    key: key.file,
                    path: path.to_path_buf(),
                },
            })
        };
        Ok(RawConfig {
            listen: sourced(&LISTEN, file.listen),
            data_dir: sourced(&DATA_DIR, file.data_dir),
            retention: sourced(&RETENTION, file.retention),
            max_body_bytes: sourced(&MAX_BODY_BYTES, file.max_body_bytes),
            flush_max_spans: sourced(&FLUSH_MAX_SPANS, file.flush_max_spans),
            flush_max_age: sourced(&FLUSH_MAX_AGE, file.flush_max_age),
            default_sample_rate: sourced(&DEFAULT_SAMPLE_RATE, file.default_sample_rate),
            otlp_grpc_listen: sourced(&OTLP_GRPC_LISTEN, file.otlp_grpc_listen),
            otlp_event_type_attribute: sourced(
                &OTLP_EVENT_TYPE_ATTRIBUTE,
                file.otlp_event_type_attribute,
            ),
            otlp_event_id_attribute: sourced(
                &OTLP_EVENT_ID_ATTRIBUTE,
                file.otlp_event_id_attribute,
            ),
            tail_sampling: file
                .tail_sampling
                .map(|table| TailSamplingSection::new(table, path)),
        })
    }

    /// The layer of flags and environment variables, as clap merged them (flags win); `matches`
    /// are the `serve` subcommand's, and tell which of the two each value came from.
    pub fn from_args(args: &ServeArgs, matches: &ArgMatches) -> RawConfig {
        let sourced = |key: &Key, id: &str, value: &Option<String>| {
            value.as_ref().map(|text| {
                let origin = match matches.value_source(id) {
                    Some(ValueSource::EnvVariable) => Origin::Env(key.env),
                    _ => Origin::Flag(key.flag),
                };
                Sourced {
                    text: text.clone(),
                    origin,
                }
            })
        };
        RawConfig {
            listen: sourced(&LISTEN, "listen", &args.listen),
            data_dir: sourced(&DATA_DIR, "data_dir", &args.data_dir),
            retention: sourced(&RETENTION, "retention", &args.retention),
            max_body_bytes: sourced(&MAX_BODY_BYTES, "max_body_bytes", &args.max_body_bytes),
            flush_max_spans: sourced(&FLUSH_MAX_SPANS, "flush_max_spans", &args.flush_max_spans),
            flush_max_age: sourced(&FLUSH_MAX_AGE, "flush_max_age", &args.flush_max_age),
            default_sample_rate: sourced(
                &DEFAULT_SAMPLE_RATE,
                "default_sample_rate",
                &args.default_sample_rate,
            ),
            otlp_grpc_listen: sourced(
                &OTLP_GRPC_LISTEN,
                "otlp_grpc_listen",
                &args.otlp_grpc_listen,
            ),
            otlp_event_type_attribute: sourced(
                &OTLP_EVENT_TYPE_ATTRIBUTE,
                "otlp_event_type_attribute",
                &args.otlp_event_type_attribute,
            ),
            otlp_event_id_attribute: sourced(
                &OTLP_EVENT_ID_ATTRIBUTE,
                "otlp_event_id_attribute",
                &args.otlp_event_id_attribute,
            ),
            tail_sampling: None,
        }
    }

    /// `upper`'s settings where it has them, this layer's otherwise.
    pub fn overlaid_by(self, upper: RawConfig) -> RawConfig {
        RawConfig {
            listen: upper.listen.or(self.listen),
            data_dir: upper.data_dir.or(self.data_dir),
            retention: upper.retention.or(self.retention),
            max_body_bytes: upper.max_body_bytes.or(self.max_body_bytes),
            flush_max_spans: upper.flush_max_spans.or(self.flush_max_spans),
            flush_max_age: upper.flush_max_age.or(self.flush_max_age),
            default_sample_rate: upper.default_sample_rate.or(self.default_sample_rate),
            otlp_grpc_listen: upper.otlp_grpc_listen.or(self.otlp_grpc_listen),
            otlp_event_type_attribute: upper
                .otlp_event_type_attribute
                .or(self.otlp_event_type_attribute),
            otlp_event_id_attribute: upper
                .otlp_event_id_attribute
                .or(self.otlp_event_id_attribute),
            tail_sampling: upper.tail_sampling.or(self.tail_sampling),
        }
    }

    /// Checks every setting and fills in the defaults.
    pub fn validate(self) -> Result<ServerConfig> {
        let data_dir = match self.data_dir {
            None => PathBuf::from(DEFAULT_DATA_DIR),
            Some(setting) if setting.text.trim().is_empty() => {
                bail!(
                    "{}: must not be empty; give a directory path like ./muninn-data",
                    setting.origin
                )
            }
            Some(setting) => PathBuf::from(setting.text),
        };
        let mut config = ServerConfig::new(data_dir, 0);
        if let Some(setting) = &self.listen {
            config.listen =
                parse_listen(&setting.text).map_err(|hint| invalid(setting, "address", hint))?;
        } else {
            config.listen = parse_listen(DEFAULT_LISTEN)
                .map_err(|hint| anyhow!("default listen address: {hint}"))?;
        }
        if let Some(setting) = &self.retention {
            let retention = parse_retention(&setting.text)
                .map_err(|hint| invalid(setting, "retention", hint))?;
            config.store.retention = retention;
            config.limits.max_age_nanos = retention.map_or(i64::MAX, |duration| {
                i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
            });
        }
        config.max_body_bytes = match &self.max_body_bytes {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(setting) => {
                parse_body_bytes(&setting.text).map_err(|hint| invalid(setting, "size", hint))?
            }
        };
        if let Some(setting) = &self.flush_max_spans {
            config.store.flush_max_spans = setting
                .text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|count| *count > 0)
                .ok_or_else(|| {
                    invalid(
                        setting,
                        "span count",
                        "use a whole number of spans, at least 1, like 500000",
                    )
                })?;
        }
        if let Some(setting) = &self.flush_max_age {
            config.store.flush_max_age = muninn_model::parse_duration(&setting.text)
                .ok()
                .filter(|duration| !duration.is_zero())
                .ok_or_else(|| {
                    invalid(
                        setting,
                        "duration",
                        "use a duration above zero, like 30s, 5m or 1h",
                    )
                })?;
        }
        if let Some(setting) = &self.default_sample_rate {
            config.default_sample_rate_ppm = setting
                .text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(muninn_model::sampling::rate_to_ppm)
                .ok_or_else(|| {
                    invalid(
                        setting,
                        "sampling rate",
                        "use a number from 0 to 1, like 1, 0.1 or 0.001",
                    )
                })?;
        }
        config.otlp_grpc_listen = match &self.otlp_grpc_listen {
            None => Some(
                parse_listen(DEFAULT_OTLP_GRPC_LISTEN)
                    .map_err(|hint| anyhow!("default otlp_grpc_listen address: {hint}"))?,
            ),
            Some(setting) if setting.text.trim().eq_ignore_ascii_case("off") => None,
            Some(setting) => Some(parse_listen(&setting.text).map_err(|_| {
                invalid(
                    setting,
                    "address",
                    "use HOST:PORT with an IP address or localhost, like 127.0.0.1:4317 or 0.0.0.0:4317, or \"off\" to serve no OTLP/gRPC",
                )
            })?),
        };
        config.otlp_event_type_attribute = self
            .otlp_event_type_attribute
            .as_ref()
            .map(parse_attribute_key)
            .transpose()?;
        config.otlp_event_id_attribute = self
            .otlp_event_id_attribute
            .as_ref()
            .map(parse_attribute_key)
            .transpose()?;
        if let Some(section) = &self.tail_sampling {
            config.tail_sampling = section.validate()?;
        }
        Ok(config)
    }
}

/// An OTLP attribute key: 1 to 256 bytes, no control characters or surrounding spaces.
fn parse_attribute_key(setting: &Sourced) -> Result<String> {
    let key = setting.text.as_str();
    let valid = !key.is_empty()
        && key.len() <= 256
        && key.trim() == key
        && !key.chars().any(char::is_control);
    if !valid {
        return Err(invalid(
            setting,
            "attribute key",
            "use an OpenTelemetry attribute name of 1 to 256 characters without spaces around it, like event.type",
        ));
    }
    Ok(key.to_string())
}

fn invalid(setting: &Sourced, what: &str, hint: &str) -> anyhow::Error {
    anyhow!(
        "{}: {:?} is not a valid {what}; {hint}",
        setting.origin,
        setting.text
    )
}

/// Reads the configuration of `muninn serve` from its file (if any), environment and flags.
pub fn load(args: &ServeArgs, matches: &ArgMatches) -> Result<ServerConfig> {
    let file_layer = match &args.config {
        None => RawConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "reading configuration file {} (from --config or MUNINN_CONFIG)",
                    path.display()
                )
            })?;
            RawConfig::from_toml(&text, path)?
        }
    };
    file_layer
        .overlaid_by(RawConfig::from_args(args, matches))
        .validate()
}

/// `HOST:PORT` with an IP address or `localhost`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, &'static str> {
    const HINT: &str = "use HOST:PORT with an IP address or localhost, like 127.0.0.1:4320, 0.0.0.0:4320 or [::1]:4320";
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    match text.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => {
            let port: u16 = port.parse().map_err(|_| HINT)?;
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        }
        _ => Err(HINT),
    }
}

/// A retention period; `None` keeps data forever.
pub fn parse_retention(text: &str) -> Result<Option<Duration>, &'static str> {
    const HINT: &str =
        "use a duration like 12h, 7d or 30d, or \"0\" or \"forever\" to keep everything";
    let text = text.trim();
    if text == "0" || text.eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    let duration = muninn_model::parse_duration(text).map_err(|_| HINT)?;
    Ok((!duration.is_zero()).then_some(duration))
}

/// A body size limit: bytes, or a number with KiB, MiB or GiB; between 1 KiB and 1 GiB.
pub fn parse_body_bytes(text: &str) -> Result<usize, &'static str> {
    const HINT: &str =
        "use a number of bytes, or one with KiB, MiB or GiB, between 1KiB and 1GiB, like 16MiB";
    let text = text.trim();
    let split = text
        .find(|char: char| !char.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().map_err(|_| HINT)?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(HINT),
    };
    let bytes = number.checked_mul(multiplier).ok_or(HINT)?;
    if !(1 << 10..=1 << 30).contains(&bytes) {
        return Err(HINT);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<RawConfig> {
        RawConfig::from_toml(text, Path::new("muninn.toml"))
    }

    fn setting(text: &str, origin: Origin) -> Option<Sourced> {
        Some(Sourced {
            text: text.to_string(),
            origin,
        })
    }

    #[test]
    fn the_example_file_parses_and_matches_the_defaults() {
        let text = include_str!("../muninn.example.toml");
        let config = file(text).unwrap().validate().unwrap();
        let defaults = RawConfig::default().validate().unwrap();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.store.data_dir, defaults.store.data_dir);
        assert_eq!(
            config.store.retention,
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(config.limits.max_age_nanos, 7 * 86_400 * 1_000_000_000);
        assert_eq!(config.max_body_bytes, 16 << 20);
        assert_eq!(config.store.flush_max_spans, defaults.store.flush_max_spans);
        assert_eq!(config.store.flush_max_age, Duration::from_secs(300));
        assert_eq!(config.otlp_grpc_listen, defaults.otlp_grpc_listen);
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = RawConfig::default().validate().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:4320");
        assert_eq!(config.store.data_dir, PathBuf::from("./muninn-data"));
        assert_eq!(config.max_body_bytes, 16 << 20);
    }

    #[test]
    fn otlp_grpc_listens_on_4317_unless_moved_or_turned_off() {
        let default = RawConfig::default().validate().unwrap();
        assert_eq!(
            default.otlp_grpc_listen.map(|address| address.to_string()),
            Some("127.0.0.1:4317".to_string())
        );
        assert_eq!(default.otlp_event_type_attribute, None);
        let config = file(
            "otlp_grpc_listen = \"0.0.0.0:14317\"\notlp_event_type_attribute = \"event.type\"\n",
        )
        .unwrap()
        .overlaid_by(RawConfig {
            otlp_event_id_attribute: setting(
                "event.id",
                Origin::Env("MUNINN_OTLP_EVENT_ID_ATTRIBUTE"),
            ),
            ..RawConfig::default()
        })
        .validate()
        .unwrap();
        assert_eq!(
            config.otlp_grpc_listen.map(|address| address.to_string()),
            Some("0.0.0.0:14317".to_string())
        );
        assert_eq!(
            config.otlp_event_type_attribute.as_deref(),
            Some("event.type")
        );
        assert_eq!(config.otlp_event_id_attribute.as_deref(), Some("event.id"));
        let off = RawConfig {
            otlp_grpc_listen: setting("OFF", Origin::Flag("--otlp-grpc-listen")),
            ..RawConfig::default()
        };
        assert_eq!(off.validate().unwrap().otlp_grpc_listen, None);
        let error = RawConfig {
            otlp_grpc_listen: setting("4317", Origin::Env("MUNINN_OTLP_GRPC_LISTEN")),
            ..RawConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("MUNINN_OTLP_GRPC_LISTEN") && error.contains("\"off\""),
            "{error}"
        );
        let error = file("otlp_event_type_attribute = \" event.type\"\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("key `otlp_event_type_attribute` in muninn.toml")
                && error.contains("attribute name"),
            "{error}"
        );
    }

    #[test]
    fn flags_beat_environment_beats_file() {
        let file_layer =
            file("retention = \"1d\"\nlisten = \"127.0.0.1:1\"\nflush_max_spans = 10\n").unwrap();
        let environment_and_flags = RawConfig {
            retention: setting("30d", Origin::Flag("--retention")),
            listen: setting("127.0.0.1:2", Origin::Env("MUNINN_LISTEN")),
            ..RawConfig::default()
        };
        let config = file_layer
            .overlaid_by(environment_and_flags)
            .validate()
            .unwrap();
        assert_eq!(
            config.store.retention,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(config.listen.to_string(), "127.0.0.1:2");
        assert_eq!(config.store.flush_max_spans, 10);
    }

    #[test]
    fn unknown_file_keys_are_named_with_the_valid_ones() {
        let error = file("retension = \"7d\"\n").unwrap_err().to_string();
        assert!(error.contains("retension"), "{error}");
        assert!(error.contains("retention"), "{error}");
    }

    #[test]
    fn invalid_values_name_their_source_and_what_is_valid() {
        let error = file("retention = \"a week\"\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("key `retention` in muninn.toml"), "{error}");
        assert!(error.contains("forever"), "{error}");
        let layer = RawConfig {
            listen: setting("nowhere", Origin::Env("MUNINN_LISTEN")),
            ..RawConfig::default()
        };
        let error = layer.validate().unwrap_err().to_string();
        assert!(
            error.contains("MUNINN_LISTEN") && error.contains("127.0.0.1:4320"),
            "{error}"
        );
        let error = file("flush_max_spans = 0\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("flush_max_spans") && error.contains("at least 1"),
            "{error}"
        );
        let error = file("version = 2\n").unwrap_err().to_string();
        assert!(error.contains("version 1"), "{error}");
        let error = file("listen = true\n").unwrap_err().to_string();
        assert!(error.contains("a string or a number"), "{error}");
    }

    #[test]
    fn retention_forever_keeps_everything_and_lifts_the_age_limit() {
        for text in ["0", "forever", "Forever", "0s"] {
            let layer = RawConfig {
                retention: setting(text, Origin::Flag("--retention")),
                ..RawConfig::default()
            };
            let config = layer.validate().unwrap();
            assert_eq!(config.store.retention, None, "{text}");
            assert_eq!(config.limits.max_age_nanos, i64::MAX, "{text}");
        }
    }

    #[test]
    fn sizes_and_addresses_parse() {
        assert_eq!(parse_body_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_body_bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_body_bytes("2048"), Ok(2048));
        assert!(parse_body_bytes("12").is_err());
        assert!(parse_body_bytes("16MB!").is_err());
        assert_eq!(
            parse_listen("localhost:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(
            parse_listen("[::1]:4320").unwrap().to_string(),
            "[::1]:4320"
        );
        assert!(parse_listen("4320").is_err());
    }

    #[test]
    fn the_default_sample_rate_is_a_share_from_0_to_1() {
        let path = Path::new("muninn.toml");
        let config = RawConfig::from_toml("default_sample_rate = 0.25\n", path)
            .and_then(RawConfig::validate)
            .expect("valid");
        assert_eq!(config.default_sample_rate_ppm, 250_000);
        let default = RawConfig::default().validate().expect("valid");
        assert_eq!(default.default_sample_rate_ppm, 1_000_000);
        let error = RawConfig::from_toml("default_sample_rate = 2\n", path)
            .and_then(RawConfig::validate)
            .expect_err("out of range");
        assert_eq!(
            error.to_string(),
            "key `default_sample_rate` in muninn.toml: \"2\" is not a valid sampling rate; \
             use a number from 0 to 1, like 1, 0.1 or 0.001"
        );
    }
}
