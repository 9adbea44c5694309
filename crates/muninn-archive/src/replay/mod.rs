//! Replay: archived messages sent again, to a Kafka topic, a NATS subject (JetStream) or a
//! file, byte for byte: key, headers in order, payload, and per-partition order, except that
//! headers asked for are dropped, `muninn-replayed-from` is appended, and with a tracer the
//! trace context is that of a new producer span linked to the original one.
//!
//! Not carried over: the timestamp (a replayed Kafka record is stamped when it is produced, so
//! the topic's retention does not delete it at once; the origin header names the original);
//! on NATS, the key (NATS messages have none), the difference between an absent and an empty
//! payload, and the order between different header names (see `nats.rs`). A file target
//! holds the archived messages themselves (see `file.rs`).
//!
//! Everything that can fail on the data (a partition map that misses a partition, a header
//! NATS cannot carry, a missing topic, too few partitions, a message too big) fails before
//! the first message is sent. A checkpoint file records what the target acknowledged, so a
//! replay started again with it sends only the rest.

mod checkpoint;
mod file;
mod groups;
mod headers;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nats")]
mod nats;
mod rate;
mod run;
mod sink;
mod target;

use std::collections::HashMap;
use std::path::PathBuf;

use checkpoint::Checkpoint;
pub use groups::GroupOffsets;
pub use headers::REPLAYED_FROM_HEADER;
use sink::{Needs, Outgoing, Sink};
pub use target::{PartitionMap, Target};

use crate::error::{ArchiveError, Result};
use crate::message::Message;

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// At most this many messages a second (spread evenly); `None` for as fast as the target
    /// takes them.
    pub rate_per_second: Option<u32>,
    /// Check everything that needs no connection and count what would be sent; connect to
    /// nothing, send nothing, write no checkpoint.
    pub dry_run: bool,
    /// A JSON file recording what the target acknowledged, written at least every second and
    /// at the end; messages it names as delivered are skipped.
    pub checkpoint: Option<PathBuf>,
    /// Header names (ASCII case ignored) removed from every message.
    pub drop_headers: Vec<String>,
    /// Target partitions, for Kafka targets (others take only [`PartitionMap::Same`]).
    pub partitions: PartitionMap,
    /// Create a missing Kafka topic or JetStream stream instead of failing.
    pub create: bool,
    /// With `create`, a Kafka topic is made like this one (the archived topic as the recorder
    /// saw it): at least its partitions, and its settings.
    pub create_like: Option<crate::topics::TopicConfig>,
    /// Give every replayed message the trace context of a new producer span of this tracer,
    /// linked to the original span; without one, trace headers are sent as archived.
    pub tracer: Option<muninn_sdk::Tracer>,
    /// After the replay, set this consumer group's positions, translated into the target's
    /// offsets, on the target: a Kafka group's committed offsets, or a JetStream durable
    /// consumer starting at the translated sequence (see `groups.rs`).
    pub set_group_offsets: Option<GroupOffsets>,
}

/// How far a replay is, reported regularly (and once at the start and the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayProgress {
    /// Messages the target acknowledged so far.
    pub sent: u64,
    /// Messages this run sends in all (those the checkpoint names as delivered left out).
    pub total: u64,
    /// Bytes (key, payload, header names and values) of the messages acknowledged.
    pub bytes: u64,
}

/// What a replay did, or with `dry_run` would do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Messages the target acknowledged.
    pub sent: u64,
    /// Their bytes: key (not for NATS, which has none), payload, header names and values.
    pub bytes: u64,
    /// Messages skipped because the checkpoint named them as delivered.
    pub skipped: u64,
    pub dry_run: bool,
    /// With `dry_run`: the messages and bytes a replay would send.
    pub would_send: u64,
    pub would_send_bytes: u64,
    /// With `set_group_offsets`: the (target partition, offset) pairs committed for the group.
    pub group_offsets: Vec<(i32, i64)>,
}

/// Sends `messages` (each partition's in offset order, as [`crate::Archive::read`] returns
/// them) to `target`; see the module documentation for what is kept and what is checked
/// before the first send. `progress` is called about every 100 ms.
///
/// Dropping the returned future midway stops the replay: the answers to Kafka sends in flight
/// are awaited (blocking, 10 s at most) and the checkpoint is written with them, so a resumed
/// replay neither loses nor repeats them. NATS publishes in flight at that moment are not
/// known to the checkpoint and are sent again when resumed.
pub async fn replay(
    messages: Vec<Message>,
    target: &Target,
    options: &ReplayOptions,
    progress: &(dyn Fn(ReplayProgress) + Send + Sync),
) -> Result<ReplayReport> {
    let slots = check_messages(&messages, target, options)?;
    let checkpoint = options
        .checkpoint
        .as_deref()
        .map(|path| Checkpoint::load(path, target, &options.partitions))
        .transpose()?;
    let pending: Vec<usize> = (0..messages.len())
        .filter(|&index| {
            let message = &messages[index];
            checkpoint.as_ref().is_none_or(|checkpoint| {
                checkpoint
                    .delivered(&message.stream, message.partition)
                    .is_none_or(|delivered| message.offset > delivered)
            })
        })
        .collect();
    let skipped = (messages.len() - pending.len()) as u64;
    let annotate = !matches!(target, Target::File { .. });
    if matches!(target, Target::Nats { .. }) {
        check_nats_headers(&messages, &pending, options)?;
    }
    let outgoing = |index: usize| {
        let message = &messages[index];
        Outgoing {
            message,
            headers: headers::outgoing(message, &options.drop_headers, None, annotate),
            partition: options.partitions.target(message.partition),
        }
    };
    if options.dry_run {
        let bytes = pending
            .iter()
            .map(|&index| Sink::bytes(target, &outgoing(index)))
            .sum();
        return Ok(ReplayReport {
            skipped,
            dry_run: true,
            would_send: pending.len() as u64,
            would_send_bytes: bytes,
            ..ReplayReport::default()
        });
    }
    let needs = Needs {
        partitions: pending
            .iter()
            .filter_map(|&index| options.partitions.target(messages[index].partition))
            .max()
            .map_or(1, |highest| highest + 1),
        create_partitions: pending
            .iter()
            .map(|&index| {
                let partition = messages[index].partition;
                options.partitions.target(partition).unwrap_or(partition)
            })
            .max()
            .map_or(1, |highest| highest + 1)
            .max(
                options
                    .create_like
                    .as_ref()
                    .map_or(1, |like| like.partitions),
            ),
        create_config: options
            .create_like
            .as_ref()
            .map(|like| like.config.clone().into_iter().collect())
            .unwrap_or_default(),
        create: options.create,
        largest: largest_message(target, &pending, outgoing, options),
        file_length: checkpoint
            .as_ref()
            .and_then(|checkpoint| checkpoint.file_length),
    };
    let sink = Sink::open(target, &needs).await?;
    if let Some(group) = &options.set_group_offsets {
        sink.check_group(&group.group).await?;
    }
    run::Run::new(
        &messages, &slots, sink, checkpoint, target, options, progress,
    )
    .send(&pending, skipped)
    .await
}

/// Checks what needs no connection: the rate, the partition map against the target and the
/// messages, and that each partition's messages come in offset order. Returns each message's
/// partition slot (an index into the list of archived (stream, partition) pairs).
fn check_messages(
    messages: &[Message],
    target: &Target,
    options: &ReplayOptions,
) -> Result<Vec<usize>> {
    if options.rate_per_second == Some(0) {
        return Err(ArchiveError::invalid(
            "rate 0 messages a second: give at least 1, or no rate to send as fast as possible",
        ));
    }
    if let Some(group) = &options.set_group_offsets {
        if matches!(target, Target::File { .. }) {
            return Err(ArchiveError::invalid(format!(
                "set group offsets {}: a file has no consumer groups; replay to a Kafka topic \
                 or a JetStream subject",
                group.group
            )));
        }
        if group.group.is_empty() {
            return Err(ArchiveError::invalid(
                "set group offsets: the group name is empty; give the consumer group's name",
            ));
        }
        if options.partitions == PartitionMap::ByKey {
            return Err(ArchiveError::invalid(format!(
                "set group offsets {}: with partitions by key the messages of one archived \
                 partition spread over many target partitions, so the group's positions cannot \
                 be translated; use `same` or a partition map",
                group.group
            )));
        }
    }
    if !matches!(target, Target::Kafka { .. }) && options.partitions != PartitionMap::Same {
        return Err(ArchiveError::invalid(format!(
            "partition map {}: only Kafka targets have partitions; {target} takes `same`",
            options.partitions
        )));
    }
    let mut last: HashMap<(&str, i32), (usize, i64)> = HashMap::new();
    let mut slots = Vec::with_capacity(messages.len());
    for message in messages {
        if let PartitionMap::Map(map) = &options.partitions
            && !map.contains_key(&message.partition)
        {
            return Err(ArchiveError::invalid(format!(
                "partition map {}: archived partition {} of {} is not in it; add {}:TARGET",
                options.partitions, message.partition, message.stream, message.partition
            )));
        }
        let next_slot = last.len();
        let (slot, previous) = last
            .entry((message.stream.as_str(), message.partition))
            .or_insert((next_slot, i64::MIN));
        if message.offset <= *previous {
            return Err(ArchiveError::invalid(format!(
                "messages of {}/{} are not in offset order ({} after {}); give each \
                 partition's messages in offset order, as Archive::read returns them",
                message.stream, message.partition, message.offset, previous
            )));
        }
        *previous = message.offset;
        slots.push(*slot);
    }
    Ok(slots)
}

/// Refuses, before anything is sent, a message with a header NATS would change.
fn check_nats_headers(
    messages: &[Message],
    pending: &[usize],
    options: &ReplayOptions,
) -> Result<()> {
    for &index in pending {
        let message = &messages[index];
        let replace_trace = options.tracer.is_some();
        for header in headers::kept(message, &options.drop_headers, replace_trace) {
            if let Some(why) = headers::nats_refusal(header) {
                return Err(ArchiveError::invalid(format!(
                    "message {} cannot be sent to NATS byte for byte: header {:?}: {why}; drop \
                     it (--drop-header {}) or replay to Kafka",
                    headers::position(message),
                    header.name,
                    header.name
                )));
            }
        }
    }
    Ok(())
}

/// The largest message, about as the target counts it against its limit: key (Kafka),
/// payload, headers with their framing (`name: value\r\n` on NATS, a little less on Kafka),
/// with room for the trace headers a tracer adds.
fn largest_message<'a>(
    target: &Target,
    pending: &[usize],
    outgoing: impl Fn(usize) -> Outgoing<'a>,
    options: &ReplayOptions,
) -> Option<(String, usize)> {
    let trace_room = if options.tracer.is_some() { 256 } else { 0 };
    pending
        .iter()
        .map(|&index| {
            let outgoing = outgoing(index);
            let framing = "NATS/1.0\r\n\r\n".len() + 4 * outgoing.headers.len();
            let size = Sink::bytes(target, &outgoing) as usize + framing + trace_room;
            (headers::position(outgoing.message), size)
        })
        .max_by_key(|(_, size)| *size)
}
