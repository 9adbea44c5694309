//! Where a replay sends messages ([`Target`]: a Kafka topic, a NATS subject or a file) and
//! how archived partitions become target partitions ([`PartitionMap`]), parsed from the text
//! the CLI takes, with errors that name the text and the valid forms.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::error::{ArchiveError, Result};
use crate::layout::check_stream_name;

const TARGET_FORMS: &str = "use kafka://HOST:PORT[,HOST:PORT…]/TOPIC, nats://HOST:PORT/SUBJECT, \
                            file:///ABSOLUTE/PATH or file://RELATIVE/PATH";

const PARTITION_FORMS: &str = "use same (each message to its archived partition), key (the \
                               producer's partitioner hashes the key) or a list like 0:3,1:4 \
                               (archived partition:target partition)";

/// Where replayed messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Kafka topic; `bootstrap` is `host:port[,host:port…]`.
    Kafka { bootstrap: String, topic: String },
    /// A NATS subject that a JetStream stream captures; `url` is `nats://host:port`.
    Nats { url: String, subject: String },
    /// A file of JSON lines ([`crate::to_json`]).
    File { path: PathBuf },
}

impl Target {
    /// Parses `kafka://HOST:PORT[,HOST:PORT]/TOPIC`, `nats://HOST:PORT/SUBJECT`,
    /// `file:///abs/path` or `file://relative/path`.
    pub fn parse(text: &str) -> Result<Target> {
        let invalid = |why: &str| {
            ArchiveError::invalid(format!("replay target {text:?}: {why}; {TARGET_FORMS}"))
        };
        if let Some(rest) = text.strip_prefix("kafka://") {
            let (bootstrap, topic) = rest
                .split_once('/')
                .ok_or_else(|| invalid("no /TOPIC after the brokers"))?;
            let addresses: Vec<&str> = bootstrap.split(',').collect();
            for address in &addresses {
                check_address(address).map_err(|why| invalid(&why))?;
            }
            check_stream_name(topic).map_err(|error| invalid(&error.message))?;
            return Ok(Target::Kafka {
                bootstrap: addresses.join(","),
                topic: topic.to_owned(),
            });
        }
        if let Some(rest) = text.strip_prefix("nats://") {
            let (address, subject) = rest
                .split_once('/')
                .ok_or_else(|| invalid("no /SUBJECT after the server"))?;
            check_address(address).map_err(|why| invalid(&why))?;
            check_subject(subject).map_err(|why| invalid(&why))?;
            return Ok(Target::Nats {
                url: format!("nats://{address}"),
                subject: subject.to_owned(),
            });
        }
        if let Some(path) = text.strip_prefix("file://") {
            if path.is_empty() || path.ends_with('/') {
                return Err(invalid("no file name"));
            }
            return Ok(Target::File {
                path: PathBuf::from(path),
            });
        }
        Err(invalid("unknown scheme"))
    }

    /// Whether the target has a place for a message's key (NATS has none).
    pub(crate) fn carries_keys(&self) -> bool {
        !matches!(self, Target::Nats { .. })
    }
}

/// The canonical text of the target, the form [`Target::parse`] reads.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Kafka { bootstrap, topic } => write!(f, "kafka://{bootstrap}/{topic}"),
            Target::Nats { url, subject } => write!(f, "{url}/{subject}"),
            Target::File { path } => write!(f, "file://{}", path.display()),
        }
    }
}

fn check_address(address: &str) -> std::result::Result<(), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} is not HOST:PORT"))?;
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(format!("{address:?} has no usable host"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(format!(
            "{address:?}: the port must be a number from 1 to 65535"
        )),
    }
}

/// A subject one publishes to: the stream-name characters, dot-separated non-empty tokens, no
/// wildcards.
fn check_subject(subject: &str) -> std::result::Result<(), String> {
    check_stream_name(subject).map_err(|error| error.message)?;
    if subject.split('.').any(str::is_empty) {
        return Err(format!(
            "subject {subject:?}: tokens between dots must not be empty"
        ));
    }
    Ok(())
}

/// Which target partition each archived message goes to (Kafka targets only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PartitionMap {
    /// The partition it was archived from.
    #[default]
    Same,
    /// Whatever the producer's partitioner picks from the key (messages without a key are
    /// spread at random).
    ByKey,
    /// Archived partition → target partition; every archived partition replayed must be listed.
    Map(BTreeMap<i32, i32>),
}

impl PartitionMap {
    /// Parses `same`, `key` or `0:3,1:4`.
    pub fn parse(text: &str) -> Result<PartitionMap> {
        let invalid = |why: String| {
            ArchiveError::invalid(format!("partition map {text:?}: {why}; {PARTITION_FORMS}"))
        };
        match text.trim() {
            "same" => return Ok(PartitionMap::Same),
            "key" => return Ok(PartitionMap::ByKey),
            "" => return Err(invalid("empty".into())),
            _ => {}
        }
        let mut map = BTreeMap::new();
        for pair in text.split(',') {
            let (from, to) = pair
                .split_once(':')
                .ok_or_else(|| invalid(format!("{pair:?} is not FROM:TO")))?;
            let number = |side: &str| {
                side.trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|partition| *partition >= 0)
                    .ok_or_else(|| {
                        invalid(format!("{side:?} in {pair:?} is not a partition number"))
                    })
            };
            let (from, to) = (number(from)?, number(to)?);
            if map.insert(from, to).is_some() {
                return Err(invalid(format!("partition {from} is mapped twice")));
            }
        }
        Ok(PartitionMap::Map(map))
    }

    /// The explicit target partition of a message archived in `partition`: `None` for
    /// [`PartitionMap::ByKey`], or when the map does not list it (checked before sending).
    pub(crate) fn target(&self, partition: i32) -> Option<i32> {
        match self {
            PartitionMap::Same => Some(partition),
            PartitionMap::ByKey => None,
            PartitionMap::Map(map) => map.get(&partition).copied(),
        }
    }
}

/// The canonical text, the form [`PartitionMap::parse`] reads.
impl fmt::Display for PartitionMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionMap::Same => f.write_str("same"),
            PartitionMap::ByKey => f.write_str("key"),
            PartitionMap::Map(map) => {
                let pairs: Vec<String> = map
                    .iter()
                    .map(|(from, to)| format!("{from}:{to}"))
                    .collect();
                f.write_str(&pairs.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        for text in [
            "kafka://127.0.0.1:9092/orders",
            "kafka://a:9092,b:9093/orders.eu",
            "nats://127.0.0.1:4222/orders.created",
            "file:///tmp/out.ndjson",
            "file://out/replay.ndjson",
        ] {
            assert_eq!(Target::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            Target::parse("file://out.ndjson").unwrap(),
            Target::File {
                path: PathBuf::from("out.ndjson")
            }
        );
    }

    #[test]
    fn a_malformed_target_names_itself_and_the_valid_forms() {
        for bad in [
            "orders",
            "http://x:1/y",
            "kafka://127.0.0.1:9092",
            "kafka://127.0.0.1/orders",
            "kafka://127.0.0.1:0/orders",
            "kafka://a:1/ord ers",
            "kafka://a:1/",
            "nats://a:4222/orders..created",
            "nats://a:4222/orders.*",
            "file://",
        ] {
            let error = Target::parse(bad).unwrap_err();
            assert!(error.message.contains(&format!("{bad:?}")), "{error}");
            assert!(
                error.message.contains("nats://HOST:PORT/SUBJECT"),
                "{error}"
            );
        }
    }

    #[test]
    fn partition_maps_parse_and_malformed_ones_are_explained() {
        assert_eq!(PartitionMap::parse("same").unwrap(), PartitionMap::Same);
        assert_eq!(PartitionMap::parse("key").unwrap(), PartitionMap::ByKey);
        let map = PartitionMap::parse("0:3,1:4").unwrap();
        assert_eq!(map.to_string(), "0:3,1:4");
        assert_eq!((map.target(1), map.target(2)), (Some(4), None));
        for (bad, why) in [
            ("", "empty"),
            ("0-3", "is not FROM:TO"),
            ("0:x", "is not a partition number"),
            ("-1:2", "is not a partition number"),
            ("0:1,0:2", "mapped twice"),
        ] {
            let error = PartitionMap::parse(bad).unwrap_err();
            assert!(
                error.message.contains(why) && error.message.contains("0:3,1:4"),
                "{error}"
            );
        }
    }
}
