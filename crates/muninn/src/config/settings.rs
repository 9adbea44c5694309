//! The settings of `muninn serve`, each declared once: file key, flag, environment variable,
//! help, default, and the parser that reads its text into the `ServerConfig`. The flags, the
//! file's keys and the validation in `mod.rs` and `file.rs` are all driven by `SETTINGS`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use muninn_server::ServerConfig;

/// The address `serve` and `demo` listen on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4320";

/// One setting of `muninn serve`. The flag and the environment variable are the file key
/// spelled `--data-dir` and `MUNINN_DATA_DIR` (a test holds every row to that); they are written
/// out so that a search for any of the three finds the row.
pub(super) struct Setting {
    /// The key in the configuration file.
    pub key: &'static str,
    pub flag: &'static str,
    pub env: &'static str,
    /// The flag's placeholder in `--help`.
    pub value_name: &'static str,
    /// The flag's `--help`, without the default, which is added to it.
    pub help: &'static str,
    /// The text used when no source sets it, read by `apply` like any other; `None`: unset.
    pub default: Option<&'static str>,
    /// Reads the text into the configuration, or says what is wrong with it (`Err`, to follow
    /// the name of the source in the error).
    pub apply: fn(&str, &mut ServerConfig) -> Result<(), String>,
}

/// Every setting of `muninn serve` but the file-only `[tail_sampling]` and `[archive]` tables, in the order of
/// `--help`, of validation, and of README's configuration table.
pub(super) const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        flag: "--listen",
        env: "MUNINN_LISTEN",
        value_name: "ADDR",
        help: "Address to listen on, HOST:PORT; port 0 picks a free port",
        default: Some(DEFAULT_LISTEN),
        apply: |text, config| {
            config.listen = parse_listen(text).map_err(|hint| not_valid(text, "address", hint))?;
            Ok(())
        },
    },
    Setting {
        key: "data_dir",
        flag: "--data-dir",
        env: "MUNINN_DATA_DIR",
        value_name: "DIR",
        help: "Directory of the embedded store (write-ahead log and blocks)",
        default: Some("./muninn-data"),
        apply: |text, config| {
            if text.trim().is_empty() {
                return Err("must not be empty; give a directory path like ./muninn-data".into());
            }
            config.store.data_dir = PathBuf::from(text);
            Ok(())
        },
    },
    Setting {
        key: "retention",
        flag: "--retention",
        env: "MUNINN_RETENTION",
        value_name: "DURATION",
        help: "How long to keep data, like 12h, 7d, 30d; \"0\" or \"forever\" keeps everything",
        default: Some("7d"),
        apply: |text, config| {
            let retention =
                parse_retention(text).map_err(|hint| not_valid(text, "retention", hint))?;
            config.store.retention = retention;
            config.limits.max_age_nanos = retention.map_or(i64::MAX, |duration| {
                i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
            });
            Ok(())
        },
    },
    Setting {
        key: "max_body_bytes",
        flag: "--max-body-bytes",
        env: "MUNINN_MAX_BODY_BYTES",
        value_name: "BYTES",
        help: "Largest request body, compressed or not: bytes, or with KiB/MiB/GiB",
        default: Some("16MiB"),
        apply: |text, config| {
            config.max_body_bytes =
                parse_body_bytes(text).map_err(|hint| not_valid(text, "size", hint))?;
            Ok(())
        },
    },
    Setting {
        key: "flush_max_spans",
        flag: "--flush-max-spans",
        env: "MUNINN_FLUSH_MAX_SPANS",
        value_name: "N",
        help: "Write the in-memory head to a block when it holds this many spans",
        default: Some("1000000"),
        apply: |text, config| {
            config.store.flush_max_spans = text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|count| *count > 0)
                .ok_or_else(|| {
                    not_valid(
                        text,
                        "span count",
                        "use a whole number of spans, at least 1, like 500000",
                    )
                })?;
            Ok(())
        },
    },
    Setting {
        key: "memory_limit",
        flag: "--memory-limit",
        env: "MUNINN_MEMORY_LIMIT",
        value_name: "BYTES",
        help: "The memory the node keeps itself under: a quarter for working memory, then \
               request bodies (max_body_memory) and the blocks' filters; the spans not yet in \
               blocks get the rest, and appends wait past it",
        default: Some("1536MiB"),
        apply: |text, config| {
            config.store.memory_limit_bytes = parse_size(text)
                .filter(|bytes| *bytes >= 16 << 20)
                .ok_or_else(|| {
                not_valid(
                    text,
                    "size",
                    "use bytes or KiB/MiB/GiB, at least 16MiB, like 1536MiB",
                )
            })?;
            Ok(())
        },
    },
    Setting {
        key: "max_body_memory",
        flag: "--max-body-memory",
        env: "MUNINN_MAX_BODY_MEMORY",
        value_name: "BYTES",
        help: "Most memory ingest request bodies in flight may hold together, as received and \
               decompressed; requests wait past it",
        default: Some("256MiB"),
        apply: |text, config| {
            config.max_body_memory_bytes = parse_size(text)
                .filter(|bytes| *bytes >= 1 << 20)
                .ok_or_else(|| {
                    not_valid(
                        text,
                        "size",
                        "use bytes or KiB/MiB/GiB, at least 1MiB, like 256MiB",
                    )
                })?;
            Ok(())
        },
    },
    Setting {
        key: "block_format",
        flag: "--block-format",
        env: "MUNINN_BLOCK_FORMAT",
        value_name: "VERSION",
        help: "Block format version new blocks are written in, 2 or 1 (blocks of both are read)",
        default: Some("2"),
        apply: |text, config| {
            config.store.block.format_version = match text.trim() {
                "1" => 1,
                "2" => 2,
                _ => {
                    return Err(not_valid(
                        text,
                        "block format version",
                        "use 2 (the default) or 1",
                    ));
                }
            };
            Ok(())
        },
    },
    Setting {
        key: "flush_max_age",
        flag: "--flush-max-age",
        env: "MUNINN_FLUSH_MAX_AGE",
        value_name: "DURATION",
        help: "Write the head to a block when its oldest record is this old, like 5m",
        default: Some("5m"),
        apply: |text, config| {
            config.store.flush_max_age = muninn_model::parse_duration(text)
                .ok()
                .filter(|duration| !duration.is_zero())
                .ok_or_else(|| {
                    not_valid(
                        text,
                        "duration",
                        "use a duration above zero, like 30s, 5m or 1h",
                    )
                })?;
            Ok(())
        },
    },
    Setting {
        key: "scrub_interval",
        flag: "--scrub-interval",
        env: "MUNINN_SCRUB_INTERVAL",
        value_name: "DURATION",
        help: "How often every block is read and checked against its checksum (once at start, \
               then at this interval, at most 32 MiB/s), like 24h, or \"off\"; a block a read \
               finds damaged is checked at once either way",
        default: Some("24h"),
        apply: |text, config| {
            config.store.scrub.interval = if text.trim().eq_ignore_ascii_case("off") {
                None
            } else {
                Some(
                    muninn_model::parse_duration(text)
                        .ok()
                        .filter(|duration| *duration >= std::time::Duration::from_secs(1))
                        .ok_or_else(|| {
                            not_valid(
                                text,
                                "duration",
                                "use a duration of at least 1s, like 1h or 24h, or \"off\"",
                            )
                        })?,
                )
            };
            Ok(())
        },
    },
    Setting {
        key: "default_sample_rate",
        flag: "--default-sample-rate",
        env: "MUNINN_DEFAULT_SAMPLE_RATE",
        value_name: "RATE",
        help: "Share of events traced when no sampling rule matches, 0 to 1",
        default: Some("1"),
        apply: |text, config| {
            config.default_sample_rate_ppm = text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(muninn_model::sampling::rate_to_ppm)
                .ok_or_else(|| {
                    not_valid(
                        text,
                        "sampling rate",
                        "use a number from 0 to 1, like 1, 0.1 or 0.001",
                    )
                })?;
            Ok(())
        },
    },
    Setting {
        key: "otlp_grpc_listen",
        flag: "--otlp-grpc-listen",
        env: "MUNINN_OTLP_GRPC_LISTEN",
        value_name: "ADDR",
        help: "OTLP/gRPC address, HOST:PORT, or \"off\"; OTLP/HTTP is always served on --listen \
               at /v1/traces",
        default: Some("127.0.0.1:4317"),
        apply: |text, config| {
            config.otlp_grpc_listen = if text.trim().eq_ignore_ascii_case("off") {
                None
            } else {
                Some(parse_listen(text).map_err(|_| {
                    not_valid(
                        text,
                        "address",
                        "use HOST:PORT with an IP address or localhost, like 127.0.0.1:4317 or \
                         0.0.0.0:4317, or \"off\" to serve no OTLP/gRPC",
                    )
                })?)
            };
            Ok(())
        },
    },
    Setting {
        key: "otlp_event_type_attribute",
        flag: "--otlp-event-type-attribute",
        env: "MUNINN_OTLP_EVENT_TYPE_ATTRIBUTE",
        value_name: "KEY",
        help: "OTLP span attribute holding the event type, read before cloudevents.event_type",
        default: None,
        apply: |text, config| {
            config.otlp_event_type_attribute = Some(parse_attribute_key(text)?);
            Ok(())
        },
    },
    Setting {
        key: "otlp_event_id_attribute",
        flag: "--otlp-event-id-attribute",
        env: "MUNINN_OTLP_EVENT_ID_ATTRIBUTE",
        value_name: "KEY",
        help: "OTLP span attribute holding the event id, read before cloudevents.event_id and \
               messaging.message.id",
        default: None,
        apply: |text, config| {
            config.otlp_event_id_attribute = Some(parse_attribute_key(text)?);
            Ok(())
        },
    },
    Setting {
        key: "role",
        flag: "--role",
        env: "MUNINN_ROLE",
        value_name: "ROLE",
        help: "all: take spans and answer queries on this node's data; ingest: the same, \
               writing to its own prefix of a shared bucket ([storage] node); query: answer \
               from the blocks every node committed to the bucket ([storage] url), taking no \
               spans",
        default: Some("all"),
        apply: |text, config| {
            config.store.role = match text.trim() {
                "all" | "ingest" => muninn_store::StoreRole::ReadWrite,
                "query" => muninn_store::StoreRole::ReadOnly {
                    refresh_every: DEFAULT_REFRESH,
                },
                _ => return Err(not_valid(text, "role", "use all, ingest or query")),
            };
            Ok(())
        },
    },
    Setting {
        key: "tls_cert",
        flag: "--tls-cert",
        env: "MUNINN_TLS_CERT",
        value_name: "FILE",
        help: "Serve HTTP and OTLP/gRPC over TLS with this PEM certificate chain (leaf first); \
               needs --tls-key; read again when it changes",
        default: None,
        apply: |text, config| {
            let path = parse_path(text, "./tls/cert.pem")?;
            tls_of(config).cert_path = path;
            Ok(())
        },
    },
    Setting {
        key: "tls_key",
        flag: "--tls-key",
        env: "MUNINN_TLS_KEY",
        value_name: "FILE",
        help: "The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)",
        default: None,
        apply: |text, config| {
            let path = parse_path(text, "./tls/key.pem")?;
            tls_of(config).key_path = path;
            Ok(())
        },
    },
    Setting {
        key: "max_connections",
        flag: "--max-connections",
        env: "MUNINN_MAX_CONNECTIONS",
        value_name: "N",
        help: "Connections open at once on each listener; past it the listener stops accepting \
               until one closes",
        default: Some("1024"),
        apply: |text, config| {
            config.connections.max_connections = text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|count| (1..=1_000_000).contains(count))
                .ok_or_else(|| {
                    not_valid(text, "connection count", "use a number from 1 to 1000000")
                })?;
            Ok(())
        },
    },
    Setting {
        key: "header_read_timeout",
        flag: "--header-read-timeout",
        env: "MUNINN_HEADER_READ_TIMEOUT",
        value_name: "DURATION",
        help: "How long a client has to send a request's headers (also how long an idle \
               keep-alive connection stays open); then the connection is closed",
        default: Some("30s"),
        apply: |text, config| {
            config.connections.header_read_timeout = parse_timeout(text)?;
            Ok(())
        },
    },
    Setting {
        key: "body_read_timeout",
        flag: "--body-read-timeout",
        env: "MUNINN_BODY_READ_TIMEOUT",
        value_name: "DURATION",
        help: "How long a client has to send a whole ingest request body; then it gets 408 and \
               nothing of it is stored",
        default: Some("60s"),
        apply: |text, config| {
            config.connections.body_read_timeout = parse_timeout(text)?;
            Ok(())
        },
    },
    Setting {
        key: "max_concurrent_queries",
        flag: "--max-concurrent-queries",
        env: "MUNINN_MAX_CONCURRENT_QUERIES",
        value_name: "COUNT",
        help: "Queries that run at once; four times as many wait in line for a place, and more \
               are answered 503 with Retry-After",
        default: Some("16"),
        apply: |text, config| {
            config.queries.max_concurrent_queries = text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|count| (1..=10_000).contains(count))
                .ok_or_else(|| not_valid(text, "query count", "use a number from 1 to 10000"))?;
            Ok(())
        },
    },
    Setting {
        key: "query_timeout",
        flag: "--query-timeout",
        env: "MUNINN_QUERY_TIMEOUT",
        value_name: "DURATION",
        help: "A query's time limit from its arrival, waiting included: past it no further \
               block is read and the answer says it is partial (Muninn-Partial: time-limit)",
        default: Some("30s"),
        apply: |text, config| {
            config.queries.query_timeout = parse_timeout(text)?;
            Ok(())
        },
    },
    Setting {
        key: "tenant_header",
        flag: "--tenant-header",
        env: "MUNINN_TENANT_HEADER",
        value_name: "BOOL",
        help: "Take a request's tenant from X-Scope-OrgID when its token names none (set it only \
               behind a proxy that authenticates callers and sets the header); then a request \
               naming no tenant is refused",
        default: Some("false"),
        apply: |text, config| {
            config.tenancy.header = match text.trim().to_ascii_lowercase().as_str() {
                "true" | "on" => true,
                "false" | "off" => false,
                _ => return Err(not_valid(text, "switch", "use true or false")),
            };
            Ok(())
        },
    },
    Setting {
        key: "max_tenants",
        flag: "--max-tenants",
        env: "MUNINN_MAX_TENANTS",
        value_name: "COUNT",
        help: "Tenants with a store open at once, besides the default tenant; a new tenant past \
               it is answered 503. Each tenant's store has memory_limit of its own",
        default: Some("64"),
        apply: |text, config| {
            config.tenancy.max_tenants = text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|count| (1..=10_000).contains(count))
                .ok_or_else(|| not_valid(text, "tenant count", "use a number from 1 to 10000"))?;
            Ok(())
        },
    },
];

/// The TLS files set so far (`tls_cert` and `tls_key` fill one each; `mod.rs` checks both are).
fn tls_of(config: &mut ServerConfig) -> &mut muninn_server::TlsConfig {
    config.tls.get_or_insert_with(|| muninn_server::TlsConfig {
        cert_path: PathBuf::new(),
        key_path: PathBuf::new(),
    })
}

/// A file path: not empty.
fn parse_path(text: &str, example: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err(format!(
            "must not be empty; give a file path like {example}"
        ));
    }
    Ok(PathBuf::from(text))
}

/// A timeout: a duration from one second to one hour.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    muninn_model::parse_duration(text)
        .ok()
        .filter(|duration| (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(duration))
        .ok_or_else(|| {
            not_valid(
                text,
                "timeout",
                "use a duration from 1s to 1h, like 10s, 30s or 2m",
            )
        })
}

/// How often a query node lists the nodes' blocks again unless `[storage] refresh` says.
pub const DEFAULT_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// `"TEXT" is not a valid WHAT; HINT`, the message of a value its parser refused.
fn not_valid(text: &str, what: &str, hint: &str) -> String {
    format!("{text:?} is not a valid {what}; {hint}")
}

/// An OTLP attribute key: 1 to 256 bytes, no control characters or surrounding spaces.
fn parse_attribute_key(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 256
        && text.trim() == text
        && !text.chars().any(char::is_control);
    if !valid {
        return Err(not_valid(
            text,
            "attribute key",
            "use an OpenTelemetry attribute name of 1 to 256 characters without spaces around it, like event.type",
        ));
    }
    Ok(text.to_string())
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
fn parse_retention(text: &str) -> Result<Option<Duration>, &'static str> {
    const HINT: &str =
        "use a duration like 12h, 7d or 30d, or \"0\" or \"forever\" to keep everything";
    let text = text.trim();
    if text == "0" || text.eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    let duration = muninn_model::parse_duration(text).map_err(|_| HINT)?;
    Ok((!duration.is_zero()).then_some(duration))
}

/// A size (a body limit, `archive compact --target-size`): bytes, or a number with KiB, MiB or
/// GiB; between 1 KiB and 1 GiB.
pub fn parse_body_bytes(text: &str) -> Result<usize, &'static str> {
    const HINT: &str =
        "use a number of bytes, or one with KiB, MiB or GiB, between 1KiB and 1GiB, like 16MiB";
    parse_size(text)
        .filter(|bytes| (1 << 10..=1 << 30).contains(bytes))
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or(HINT)
}

/// A size: a number of bytes, or one with K/KiB, M/MiB or G/GiB.
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|char: char| !char.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_one_name_spelled_for_the_file_the_flag_and_the_environment() {
        for setting in SETTINGS {
            assert_eq!(
                setting.flag,
                format!("--{}", setting.key.replace('_', "-")),
                "{}",
                setting.key
            );
            assert_eq!(
                setting.env,
                format!("MUNINN_{}", setting.key.to_ascii_uppercase()),
                "{}",
                setting.key
            );
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
}
