//! `muninn serve` configuration, in two stages: every source (a TOML file, `MUNINN_*`
//! environment variables, flags) gives a raw layer of text settings that remember where they
//! came from; the layers are stacked (flags > environment > file > defaults) and then validated
//! once into a `ServerConfig`, with errors that name the setting, its source, and what is valid.
//!
//! Each setting is declared once, in `settings.rs`'s `SETTINGS`: its file key, flag, environment
//! variable, help, default and parser; the flags (here), the file's keys (`file.rs`) and the
//! validation (here) are all read from there. The file-only tables are read beside them:
//! `[tail_sampling]` (`tail_sampling_config.rs`), `[archive]` (`archive.rs`), `[storage]`
//! (`storage.rs`), `[kafka_ingest]` (`kafka_ingest.rs`) and `[auth]` (`auth.rs`).

mod archive;
mod auth;
mod file;
mod kafka_ingest;
mod settings;
mod storage;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};
use muninn_server::ServerConfig;

use self::archive::ArchiveSection;
use self::auth::AuthSection;
use self::file::FileContents;
use self::kafka_ingest::KafkaIngestSection;
pub use self::settings::{DEFAULT_LISTEN, parse_body_bytes, parse_listen};
use self::settings::{SETTINGS, Setting};
use self::storage::StorageSection;
use crate::tail_sampling_config::TailSamplingSection;

/// `muninn serve`'s flags: `--config` and one per setting, each also read from its `MUNINN_*`
/// environment variable (clap merges the two, flags winning, and says which one it used).
#[derive(Debug, Clone)]
pub struct ServeArgs {
    /// The configuration file, from `--config` or `MUNINN_CONFIG`.
    pub config: Option<PathBuf>,
    /// The settings given as flags or environment variables.
    flags_and_environment: RawConfig,
    /// `--insecure`: listen beyond loopback without tokens all the same.
    pub insecure: bool,
}

impl clap::Args for ServeArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let config = Arg::new("config")
            .long("config")
            .env("MUNINN_CONFIG")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .action(ArgAction::Set)
            .help(
                "TOML configuration file (see muninn.example.toml); flags and environment \
                 override it",
            );
        let insecure = Arg::new("insecure")
            .long("insecure")
            .env("MUNINN_INSECURE")
            .action(ArgAction::SetTrue)
            .help(
                "Serve on a non-loopback address without [auth] tokens: anyone who reaches the \
                 port may write, read and change sampling rules",
            );
        SETTINGS
            .iter()
            .fold(command.arg(config).arg(insecure), |command, setting| {
                let help = match setting.default {
                    Some(default) => format!("{} [default: {default}]", setting.help),
                    None => setting.help.to_string(),
                };
                command.arg(
                    Arg::new(setting.key)
                        .long(setting.flag.trim_start_matches("--"))
                        .env(setting.env)
                        .value_name(setting.value_name)
                        .value_parser(clap::value_parser!(String))
                        .action(ArgAction::Set)
                        .help(help),
                )
            })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags_and_environment = RawConfig::default();
        for setting in SETTINGS {
            if let Some(text) = matches.get_one::<String>(setting.key) {
                let origin = match matches.value_source(setting.key) {
                    Some(ValueSource::EnvVariable) => Origin::Env(setting.env),
                    _ => Origin::Flag(setting.flag),
                };
                flags_and_environment.set(setting, text.clone(), origin);
            }
        }
        Ok(ServeArgs {
            config: matches.get_one::<PathBuf>("config").cloned(),
            flags_and_environment,
            insecure: matches.get_flag("insecure"),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Where a setting came from, as it is named in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Flag(&'static str),
    Env(&'static str),
    File {
        key: &'static str,
        path: PathBuf,
    },
    /// The setting's default (`Setting::default`), for a setting no source gave.
    Default(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(formatter, "flag {flag}"),
            Origin::Env(variable) => write!(formatter, "environment variable {variable}"),
            Origin::File { key, path } => write!(formatter, "key `{key}` in {}", path.display()),
            Origin::Default(key) => write!(formatter, "the default of `{key}`"),
        }
    }
}

/// One setting as given, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sourced {
    text: String,
    origin: Origin,
}

/// One layer of settings: those it sets, by key; the others are left to the layers below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    settings: BTreeMap<&'static str, Sourced>,
    /// The `[tail_sampling]` table (file only; see `tail_sampling_config.rs`).
    tail_sampling: Option<TailSamplingSection>,
    /// The `[archive]` table (file only; see `archive.rs`).
    archive: Option<ArchiveSection>,
    /// The `[storage]` table (file only; see `storage.rs`).
    storage: Option<StorageSection>,
    /// The `[kafka_ingest]` table (file only; see `kafka_ingest.rs`).
    kafka_ingest: Option<KafkaIngestSection>,
    /// The `[auth]` table (file only; see `auth.rs`).
    auth: Option<AuthSection>,
}

impl RawConfig {
    /// Sets `setting` in this layer.
    fn set(&mut self, setting: &'static Setting, text: String, origin: Origin) {
        self.settings.insert(setting.key, Sourced { text, origin });
    }

    /// The layer of a TOML configuration file's text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<RawConfig> {
        let file = FileContents::read(text, path)?;
        let mut layer = RawConfig {
            settings: BTreeMap::new(),
            tail_sampling: file
                .tail_sampling
                .map(|table| TailSamplingSection::new(table, path)),
            archive: file.archive.map(|table| ArchiveSection::new(table, path)),
            storage: file.storage.map(|table| StorageSection::new(table, path)),
            kafka_ingest: file
                .kafka_ingest
                .map(|table| KafkaIngestSection::new(table, path)),
            auth: file.auth.map(|table| AuthSection::new(table, path)),
        };
        for (setting, text) in file.settings {
            let origin = Origin::File {
                key: setting.key,
                path: path.to_path_buf(),
            };
            layer.set(setting, text, origin);
        }
        Ok(layer)
    }

    /// `upper`'s settings where it has them, this layer's otherwise.
    pub fn overlaid_by(mut self, upper: RawConfig) -> RawConfig {
        self.settings.extend(upper.settings);
        RawConfig {
            settings: self.settings,
            tail_sampling: upper.tail_sampling.or(self.tail_sampling),
            archive: upper.archive.or(self.archive),
            storage: upper.storage.or(self.storage),
            kafka_ingest: upper.kafka_ingest.or(self.kafka_ingest),
            auth: upper.auth.or(self.auth),
        }
    }

    /// Checks every setting and fills in the defaults.
    pub fn validate(self) -> Result<ServerConfig> {
        // Every field that a setting fills is set below: a default applies where no layer has it.
        let mut config = ServerConfig::new("", 0);
        for setting in SETTINGS {
            let (text, origin) = match (self.settings.get(setting.key), setting.default) {
                (Some(given), _) => (given.text.as_str(), &given.origin),
                (None, Some(default)) => (default, &Origin::Default(setting.key)),
                (None, None) => continue,
            };
            (setting.apply)(text, &mut config).map_err(|problem| anyhow!("{origin}: {problem}"))?;
        }
        if let Some(section) = &self.tail_sampling {
            config.tail_sampling = section.validate()?;
        }
        if let Some(section) = &self.archive {
            config.archive = section.validate()?;
        }
        if let Some(section) = &self.storage {
            config.store.blocks = Some(section.validate()?);
        }
        if let Some(section) = &self.kafka_ingest {
            config.kafka_ingest = Some(section.validate()?);
        }
        if let Some(section) = &self.auth {
            let (auth, peer_token) = section.validate()?;
            config.auth = Some(auth);
            config.peer_token = peer_token;
        }
        self.check_role(&mut config)?;
        self.check_tls(&config)?;
        Ok(config)
    }

    /// `tls_cert` and `tls_key` come together.
    fn check_tls(&self, config: &ServerConfig) -> Result<()> {
        let Some(tls) = &config.tls else {
            return Ok(());
        };
        // (the one that is empty, the one that was given)
        let (missing, given) = if tls.cert_path.as_os_str().is_empty() {
            ("tls_cert", "tls_key")
        } else if tls.key_path.as_os_str().is_empty() {
            ("tls_key", "tls_cert")
        } else {
            return Ok(());
        };
        let origin = self
            .settings
            .get(given)
            .map_or_else(|| given.to_string(), |sourced| sourced.origin.to_string());
        Err(anyhow!(
            "{origin}: TLS needs {missing} too (--{}, or {missing} in the file): the certificate \
             and its private key",
            missing.replace('_', "-")
        ))
    }

    /// A query node reads the blocks every node committed to a shared `[storage] url`, so it
    /// needs one, without a `node` of its own; `[storage] refresh` applies to it alone.
    fn check_role(&self, config: &mut ServerConfig) -> Result<()> {
        let role = self
            .settings
            .get("role")
            .map(|given| (given.text.trim().to_string(), given.origin.to_string()))
            .unwrap_or_else(|| ("all".into(), "the default of `role`".into()));
        let (role_text, origin) = role;
        let refresh = match &self.storage {
            Some(section) => section.refresh()?,
            None => None,
        };
        match (&mut config.store.role, &config.store.blocks) {
            (muninn_store::StoreRole::ReadOnly { .. }, _) if config.kafka_ingest.is_some() => {
                Err(anyhow!(
                    "{origin}: role query takes no spans; [kafka_ingest] belongs in the ingest \
                     nodes' configuration"
                ))
            }
            (muninn_store::StoreRole::ReadOnly { refresh_every }, Some(storage)) => {
                if storage.node.is_some() {
                    return Err(anyhow!(
                        "{origin}: role query reads every node's blocks; remove `storage.node`, \
                         which names an ingest node's own prefix"
                    ));
                }
                if let Some(refresh) = refresh {
                    *refresh_every = refresh;
                }
                Ok(())
            }
            (muninn_store::StoreRole::ReadOnly { .. }, None) => Err(anyhow!(
                "{origin}: role query answers from the blocks the ingest nodes write to a shared \
                 bucket; give it in the configuration file as [storage] url = \"s3://BUCKET/PREFIX\""
            )),
            (muninn_store::StoreRole::ReadWrite, _) if refresh.is_some() => Err(anyhow!(
                "`storage.refresh` applies to role query only (this node's role is {role_text})"
            )),
            (muninn_store::StoreRole::ReadWrite, _) => Ok(()),
        }
    }
}

/// Reads the configuration of `muninn serve` from its file (if any), environment and flags.
pub fn load(args: &ServeArgs) -> Result<ServerConfig> {
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
    let mut config = file_layer
        .overlaid_by(args.flags_and_environment.clone())
        .validate()?;
    config.insecure = args.insecure;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn file(text: &str) -> Result<RawConfig> {
        RawConfig::from_toml(text, Path::new("muninn.toml"))
    }

    /// TLS takes a certificate and its key, both or neither; the limits are checked.
    #[test]
    fn tls_needs_both_files_and_the_limits_their_ranges() {
        let load = |text: &str| file(text).and_then(RawConfig::validate);
        assert_eq!(load("").unwrap().tls, None);
        let both = load("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n").unwrap();
        let tls = both.tls.unwrap();
        assert_eq!(
            (tls.cert_path.to_str(), tls.key_path.to_str()),
            (Some("c.pem"), Some("k.pem"))
        );
        let error = load("tls_cert = \"c.pem\"\n").unwrap_err().to_string();
        assert!(
            error.contains("`tls_cert`") && error.contains("TLS needs tls_key too"),
            "{error}"
        );
        let error = load("tls_key = \"k.pem\"\n").unwrap_err().to_string();
        assert!(error.contains("TLS needs tls_cert too"), "{error}");
        let limits = load(
            "max_connections = 10\nheader_read_timeout = \"5s\"\nbody_read_timeout = \"2m\"\n",
        )
        .unwrap()
        .connections;
        assert_eq!(limits.max_connections, 10);
        assert_eq!(
            limits.header_read_timeout,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(
            limits.body_read_timeout,
            std::time::Duration::from_secs(120)
        );
        let queries = load("max_concurrent_queries = 4\nquery_timeout = \"5s\"\n")
            .unwrap()
            .queries;
        assert_eq!(queries.max_concurrent_queries, 4);
        assert_eq!(queries.query_timeout, std::time::Duration::from_secs(5));
        assert_eq!(
            load("").unwrap().queries,
            muninn_server::QueryLimits::default()
        );
        let scrub = |text: &str| load(text).unwrap().store.scrub.interval;
        assert_eq!(
            scrub(""),
            Some(std::time::Duration::from_secs(86_400)),
            "on by default"
        );
        assert_eq!(
            scrub("scrub_interval = \"6h\"\n"),
            Some(std::time::Duration::from_secs(6 * 3600))
        );
        assert_eq!(scrub("scrub_interval = \"off\"\n"), None);
        for (text, expected) in [
            ("scrub_interval = \"0s\"\n", "at least 1s"),
            (
                "max_concurrent_queries = 0\n",
                "use a number from 1 to 10000",
            ),
            ("query_timeout = \"2h\"\n", "from 1s to 1h"),
            ("max_connections = 0\n", "use a number from 1 to 1000000"),
            ("header_read_timeout = \"0s\"\n", "from 1s to 1h"),
            ("body_read_timeout = \"2h\"\n", "from 1s to 1h"),
            ("tls_key = \"\"\n", "must not be empty"),
        ] {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    /// A query node needs the shared bucket and no node name of its own; `refresh` is for it.
    #[test]
    fn the_role_and_the_storage_table_must_agree() {
        let load = |text: &str| file(text).and_then(RawConfig::validate);
        let query =
            load("role = \"query\"\n[storage]\nurl = \"s3://blocks/cluster\"\nrefresh = \"2s\"\n")
                .unwrap();
        assert_eq!(
            query.store.role,
            muninn_store::StoreRole::ReadOnly {
                refresh_every: std::time::Duration::from_secs(2)
            }
        );
        let ingest = load(
            "role = \"ingest\"\n[storage]\nurl = \"s3://b/c\"\nnode = \"ingest-a\"\n\
             advertise_url = \"http://ingest-a.internal:4320/\"\n",
        )
        .unwrap();
        assert_eq!(ingest.store.role, muninn_store::StoreRole::ReadWrite);
        let blocks = ingest.store.blocks.unwrap();
        assert_eq!(blocks.node.as_deref(), Some("ingest-a"));
        assert_eq!(
            blocks.advertise_url.as_deref(),
            Some("http://ingest-a.internal:4320")
        );
        for (text, expected) in [
            ("role = \"query\"\n", "[storage] url"),
            (
                "role = \"query\"\n[storage]\nurl = \"s3://b/c\"\nnode = \"q\"\n",
                "remove `storage.node`",
            ),
            (
                "[storage]\nurl = \"s3://b/c\"\nrefresh = \"2s\"\n",
                "applies to role query only",
            ),
            ("role = \"reader\"\n", "use all, ingest or query"),
            (
                "[storage]\nurl = \"s3://b/c\"\nadvertise_url = \"ingest-a:4320\"\n",
                "`storage.advertise_url`",
            ),
            (
                "[storage]\nurl = \"s3://b/c\"\nnode = \"Ingest A\"\n",
                "`storage.node`",
            ),
        ] {
            let error = format!("{:#}", load(text).unwrap_err());
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    fn setting(key: &str) -> &'static Setting {
        SETTINGS
            .iter()
            .find(|setting| setting.key == key)
            .unwrap_or_else(|| panic!("no setting {key}"))
    }

    /// A layer of the given settings: key, text, origin.
    fn layer(settings: &[(&str, &str, Origin)]) -> RawConfig {
        let mut layer = RawConfig::default();
        for (key, text, origin) in settings {
            layer.set(setting(key), text.to_string(), origin.clone());
        }
        layer
    }

    #[test]
    fn the_example_file_parses_and_matches_the_defaults() {
        let text = include_str!("../../muninn.example.toml");
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

    /// The defaults are read from `SETTINGS`; where the server and the store have defaults of
    /// their own, they are the same, so a library user and `muninn serve` get one behaviour.
    #[test]
    fn the_defaults_are_the_server_and_store_defaults_where_those_have_one() {
        let ours = RawConfig::default().validate().unwrap();
        let library = ServerConfig::new("./muninn-data", 4320);
        assert_eq!(ours.listen, library.listen);
        assert_eq!(ours.store.data_dir, library.store.data_dir);
        assert_eq!(ours.store.retention, library.store.retention);
        assert_eq!(ours.limits.max_age_nanos, library.limits.max_age_nanos);
        assert_eq!(ours.max_body_bytes, library.max_body_bytes);
        assert_eq!(ours.max_body_memory_bytes, library.max_body_memory_bytes);
        assert_eq!(ours.store.flush_max_spans, library.store.flush_max_spans);
        assert_eq!(ours.store.flush_max_age, library.store.flush_max_age);
        assert_eq!(
            ours.default_sample_rate_ppm,
            library.default_sample_rate_ppm
        );
    }

    #[test]
    fn every_setting_has_a_flag_whose_value_names_the_flag_as_its_origin() {
        use clap::{Args as _, FromArgMatches as _};
        let mut arguments = vec!["serve".to_string()];
        for setting in SETTINGS {
            arguments.push(setting.flag.to_string());
            arguments.push(format!("{} value", setting.key));
        }
        let matches = ServeArgs::augment_args(clap::Command::new("serve"))
            .try_get_matches_from(arguments)
            .unwrap();
        let args = ServeArgs::from_arg_matches(&matches).unwrap();
        for setting in SETTINGS {
            assert_eq!(
                args.flags_and_environment.settings.get(setting.key),
                Some(&Sourced {
                    text: format!("{} value", setting.key),
                    origin: Origin::Flag(setting.flag),
                })
            );
        }
        assert_eq!(args.config, None);
    }

    /// README's configuration table has one row per setting, with its flag, variable and
    /// default, and no row for a setting that does not exist.
    #[test]
    fn the_readme_configuration_table_lists_every_setting_as_declared() {
        let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&readme_path).unwrap();
        let table_rows: Vec<&str> = readme
            .lines()
            .skip_while(|line| !line.starts_with("| key | flag / env | default |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .filter(|line| !line.contains("file only"))
            .collect();
        let expected_rows: Vec<String> = SETTINGS
            .iter()
            .map(|setting| {
                let default = setting
                    .default
                    .map_or("unset".to_string(), |default| format!("`{default}`"));
                format!(
                    "| `{}` | `{}` / `{}` | {default} |",
                    setting.key, setting.flag, setting.env
                )
            })
            .collect();
        assert_eq!(table_rows.len(), expected_rows.len(), "{table_rows:#?}");
        for (row, expected) in table_rows.iter().zip(&expected_rows) {
            assert!(row.starts_with(expected), "{row}\nshould start {expected}");
        }
    }

    #[test]
    fn the_example_file_names_every_setting_with_its_flag_and_variable() {
        let example = include_str!("../../muninn.example.toml");
        for setting in SETTINGS {
            for name in [setting.key, setting.flag, setting.env] {
                assert!(example.contains(name), "{name} is not in the example");
            }
        }
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
        .overlaid_by(layer(&[(
            "otlp_event_id_attribute",
            "event.id",
            Origin::Env("MUNINN_OTLP_EVENT_ID_ATTRIBUTE"),
        )]))
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
        let off = layer(&[(
            "otlp_grpc_listen",
            "OFF",
            Origin::Flag("--otlp-grpc-listen"),
        )]);
        assert_eq!(off.validate().unwrap().otlp_grpc_listen, None);
        let error = layer(&[(
            "otlp_grpc_listen",
            "4317",
            Origin::Env("MUNINN_OTLP_GRPC_LISTEN"),
        )])
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
        let environment_and_flags = layer(&[
            ("retention", "30d", Origin::Flag("--retention")),
            ("listen", "127.0.0.1:2", Origin::Env("MUNINN_LISTEN")),
        ]);
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
        assert!(error.contains("`retention`"), "{error}");
        assert!(
            error.contains("line 1, column 1"),
            "points at the key: {error}"
        );
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
        let error = layer(&[("listen", "nowhere", Origin::Env("MUNINN_LISTEN"))])
            .validate()
            .unwrap_err()
            .to_string();
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
        let error = layer(&[("data_dir", " ", Origin::Env("MUNINN_DATA_DIR"))])
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "environment variable MUNINN_DATA_DIR: must not be empty; give a directory path like ./muninn-data"
        );
        let error = file("version = 2\n").unwrap_err().to_string();
        assert!(error.contains("version 1"), "{error}");
        let error = file("listen = [1]\n").unwrap_err().to_string();
        assert!(error.contains("a string, a number or a boolean"), "{error}");
        let error = file("tenant_header = 1\n")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tenant_header") && error.contains("use true or false"),
            "{error}"
        );
        let tenants = file("tenant_header = true\nmax_tenants = 3\n")
            .unwrap()
            .validate()
            .unwrap();
        assert!(tenants.tenancy.header);
        assert_eq!(tenants.tenancy.max_tenants, 3);
        let error = file("[tail_sampling]\n[tail_sampling]\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("duplicate key"), "{error}");
    }

    #[test]
    fn retention_forever_keeps_everything_and_lifts_the_age_limit() {
        for text in ["0", "forever", "Forever", "0s"] {
            let config = layer(&[("retention", text, Origin::Flag("--retention"))])
                .validate()
                .unwrap();
            assert_eq!(config.store.retention, None, "{text}");
            assert_eq!(config.limits.max_age_nanos, i64::MAX, "{text}");
        }
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
