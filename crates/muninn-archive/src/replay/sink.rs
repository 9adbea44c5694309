//! The one interface the replay loop sends through: open a target (checking, before the first
//! message, that it is reachable and can take every message), hand it a message and get back a
//! delivery to await, make what was sent durable. Kafka and NATS are behind their features;
//! files are always there.

use std::future::Future;
use std::pin::Pin;

use super::file::FileSink;
use super::target::Target;
use crate::error::{ArchiveError, Result};
use crate::message::{Header, Message};

/// One message ready to leave. (Some fields are read only by the broker sinks, which a build
/// without their features leaves out.)
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) struct Outgoing<'a> {
    pub message: &'a Message,
    pub headers: Vec<Header>,
    /// The target partition, `None` to let the producer's partitioner choose.
    pub partition: Option<i32>,
}

/// Where the target put a message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivered {
    pub partition: Option<i32>,
    /// The Kafka offset or the JetStream stream sequence.
    pub offset: Option<i64>,
}

/// The target's answer for one message, to await; the error is the broker's, as text.
pub(crate) type Delivery =
    Pin<Box<dyn Future<Output = std::result::Result<Delivered, String>> + Send>>;

/// What the target must be able to take, known from the messages before connecting. (Read
/// only by the broker sinks, which a build without their features leaves out.)
#[derive(Debug, Clone)]
#[cfg_attr(not(all(feature = "kafka", feature = "nats")), allow(dead_code))]
pub(crate) struct Needs {
    /// The fewest partitions a Kafka topic needs: the highest explicit target partition + 1.
    pub partitions: i32,
    /// How many partitions to create a missing topic with.
    pub create_partitions: i32,
    /// Create a missing topic or stream instead of failing.
    pub create: bool,
    /// The settings to create a Kafka topic with (the archived topic's own).
    pub create_config: Vec<(String, String)>,
    /// The largest message (key, payload and headers, about as the target counts them against
    /// its limit) and its position.
    pub largest: Option<(String, usize)>,
    /// For a file target resumed from a checkpoint: the length the file had then.
    pub file_length: Option<u64>,
}

pub(crate) enum Sink {
    #[cfg(feature = "kafka")]
    Kafka(super::kafka::KafkaSink),
    #[cfg(feature = "nats")]
    Nats(super::nats::NatsSink),
    File(FileSink),
}

impl Sink {
    /// Connects to `target` and checks it, creating what is missing when `needs.create`.
    pub async fn open(target: &Target, needs: &Needs) -> Result<Sink> {
        match target {
            #[cfg(feature = "kafka")]
            Target::Kafka { bootstrap, topic } => Ok(Sink::Kafka(
                super::kafka::KafkaSink::open(bootstrap, topic, needs).await?,
            )),
            #[cfg(not(feature = "kafka"))]
            Target::Kafka { .. } => Err(ArchiveError::invalid(format!(
                "replay to {target}: this build has no Kafka support (muninn-archive's `kafka` feature)"
            ))),
            #[cfg(feature = "nats")]
            Target::Nats { url, subject } => Ok(Sink::Nats(
                super::nats::NatsSink::open(url, subject, needs).await?,
            )),
            #[cfg(not(feature = "nats"))]
            Target::Nats { .. } => Err(ArchiveError::invalid(format!(
                "replay to {target}: this build has no NATS support (muninn-archive's `nats` feature)"
            ))),
            Target::File { path } => Ok(Sink::File(FileSink::open(path, needs.file_length)?)),
        }
    }

    /// How many messages may await their delivery at once.
    pub fn window(&self) -> usize {
        match self {
            #[cfg(feature = "kafka")]
            Sink::Kafka(_) => super::kafka::WINDOW,
            #[cfg(feature = "nats")]
            Sink::Nats(_) => super::nats::WINDOW,
            Sink::File(_) => 1,
        }
    }

    /// Hands one message to the target; the error is the target's refusal, as text.
    pub async fn send(&mut self, outgoing: Outgoing<'_>) -> std::result::Result<Delivery, String> {
        match self {
            #[cfg(feature = "kafka")]
            Sink::Kafka(sink) => sink.send(outgoing).await,
            #[cfg(feature = "nats")]
            Sink::Nats(sink) => sink.send(outgoing).await,
            Sink::File(sink) => sink.send(outgoing),
        }
    }

    /// The bytes a message takes at the target, as counted in the report.
    pub fn bytes(target: &Target, outgoing: &Outgoing<'_>) -> u64 {
        let message = outgoing.message;
        let key = match target.carries_keys() {
            true => message.key.as_ref().map_or(0, Vec::len),
            false => 0,
        };
        let headers: usize = outgoing
            .headers
            .iter()
            .map(|header| header.name.len() + header.value.as_ref().map_or(0, Vec::len))
            .sum();
        (key + message.payload.as_ref().map_or(0, Vec::len) + headers) as u64
    }

    /// Makes everything delivered so far durable at the target (a file is synced; brokers
    /// acknowledged already). Returns a file target's length.
    pub fn sync(&mut self) -> Result<Option<u64>> {
        match self {
            Sink::File(sink) => sink.sync().map(Some),
            #[allow(unreachable_patterns)]
            _ => Ok(None),
        }
    }

    /// Sets `positions` (target partition → next offset) for consumer `group` on the target
    /// (Kafka or JetStream; the replay refuses a file before it starts).
    pub async fn set_group_offsets(
        &self,
        group: &str,
        positions: &std::collections::BTreeMap<i32, i64>,
    ) -> Result<()> {
        match self {
            #[cfg(feature = "kafka")]
            Sink::Kafka(sink) => sink.set_group_offsets(group, positions).await,
            #[cfg(feature = "nats")]
            Sink::Nats(sink) => sink.set_group_offsets(group, positions).await,
            _ => {
                let _ = positions;
                Err(ArchiveError::invalid(format!(
                    "set group offsets {group}: a file has no consumer groups"
                )))
            }
        }
    }

    /// Refuses, before the first message is sent, a group whose position cannot be set on
    /// the target (a JetStream consumer of that name exists already).
    pub async fn check_group(&self, group: &str) -> Result<()> {
        match self {
            #[cfg(feature = "nats")]
            Sink::Nats(sink) => sink.check_group_free(group).await.map(|_| ()),
            _ => {
                let _ = group;
                Ok(())
            }
        }
    }

    /// Called when the replay is dropped midway: waits (blocking, boundedly) for the answers
    /// to what is in flight, so that the checkpoint written next holds them.
    pub fn settle_blocking(&mut self) {
        match self {
            #[cfg(feature = "kafka")]
            Sink::Kafka(sink) => sink.flush_blocking(),
            _ => {}
        }
    }
}

/// The error for a message the target refused.
pub(crate) fn refused(target: &Target, message: &Message, error: &str) -> ArchiveError {
    ArchiveError::new(
        crate::error::ArchiveErrorKind::Broker,
        format!(
            "replay to {target}: {} was not delivered: {error}",
            super::headers::position(message)
        ),
    )
}
