//! Archive links in a journey: each hop that names its message (stream, partition, offset)
//! gets the link to it in the archive and, when the archive holds it, the broker's timestamp
//! and the time the message spent between the publish, the broker and the consume; a hop that
//! names only its event id gets the link to the event's archived messages. One look-up per
//! distinct message, run together and bounded in time, so a slow archive never stalls a journey.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use muninn_archive::{Archive, TimestampType};
use muninn_query::{Hop, Journey};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use super::ArchiveState;
use super::routes::{event_link, message_link};

/// At most this many messages are looked up for one journey (hops in time order)…
const MAX_LOOKUPS: usize = 32;
/// …within this time; the hops of look-ups still running then get their link only.
const LOOKUP_BUDGET: Duration = Duration::from_secs(2);
const NANOS_PER_MILLI: f64 = 1_000_000.0;

/// Where a message sat: stream, partition, offset.
type Position = (String, i32, i64);

/// What the archive said of a message.
#[derive(Clone, Copy)]
enum Lookup {
    Archived {
        timestamp_ms: i64,
        timestamp_type: TimestampType,
    },
    NotArchived,
}

/// The journey's JSON with an `archive` object on every hop that names its message or its
/// event id.
pub(crate) async fn add_archive_links(archive: &ArchiveState, journey: &Journey) -> Value {
    let positions: Vec<Option<Position>> = journey.hops.iter().map(position).collect();
    let lookups = look_up(&archive.archive, &positions).await;
    let mut value = serde_json::to_value(journey).unwrap_or(Value::Null);
    let Some(hops) = value.get_mut("hops").and_then(Value::as_array_mut) else {
        return value;
    };
    for (index, (hop, hop_value)) in journey.hops.iter().zip(hops.iter_mut()).enumerate() {
        let mut links = Map::new();
        if let Some(position) = &positions[index] {
            let (stream, partition, offset) = position;
            links.insert(
                "message".into(),
                message_link(stream, *partition, *offset).into(),
            );
            match lookups.get(position) {
                Some(Lookup::Archived {
                    timestamp_ms,
                    timestamp_type,
                }) => {
                    links.insert("archived".into(), true.into());
                    links.insert(
                        "broker_timestamp".into(),
                        muninn_model::format_rfc3339_nanos(timestamp_ms.saturating_mul(1_000_000))
                            .into(),
                    );
                    links.insert("timestamp_type".into(), timestamp_type.as_str().into());
                    let broker_ms = time_in_broker(journey, &positions, index, hop, *timestamp_ms);
                    if !broker_ms.is_empty() {
                        links.insert("broker_ms".into(), Value::Object(broker_ms));
                    }
                }
                Some(Lookup::NotArchived) => {
                    links.insert("archived".into(), false.into());
                }
                // Not looked up (too many, too slow, or the archive failed): the link only.
                None => {}
            }
        } else if let Some(event_id) = &hop.span.event_id {
            links.insert("event".into(), event_link(event_id).into());
        }
        if !links.is_empty()
            && let Some(object) = hop_value.as_object_mut()
        {
            object.insert("archive".into(), Value::Object(links));
        }
    }
    value
}

/// The hop's message, when it names stream, partition and offset that an archive can hold.
fn position(hop: &Hop) -> Option<Position> {
    let span = &hop.span;
    let (stream, partition, offset) = (span.stream.as_ref()?, span.partition?, span.offset?);
    (muninn_archive::check_stream_name(stream).is_ok() && partition >= 0 && offset >= 0)
        .then(|| (stream.clone(), partition, offset))
}

/// Looks up the first [`MAX_LOOKUPS`] distinct messages together, for at most
/// [`LOOKUP_BUDGET`]; a look-up that fails is logged and left out.
async fn look_up(archive: &Archive, positions: &[Option<Position>]) -> HashMap<Position, Lookup> {
    let mut distinct = BTreeSet::new();
    let mut tasks = JoinSet::new();
    for position in positions.iter().flatten() {
        if distinct.len() == MAX_LOOKUPS {
            break;
        }
        if !distinct.insert(position.clone()) {
            continue;
        }
        let archive = archive.clone();
        let position = position.clone();
        tasks.spawn(async move {
            let (stream, partition, offset) = &position;
            let found = archive.message(stream, *partition, *offset).await;
            (position, found)
        });
    }
    let mut lookups = HashMap::new();
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            let Ok((position, found)) = joined else {
                continue;
            };
            match found {
                Ok(Some(message)) => {
                    lookups.insert(
                        position,
                        Lookup::Archived {
                            timestamp_ms: message.timestamp_ms,
                            timestamp_type: message.timestamp_type,
                        },
                    );
                }
                Ok(None) => {
                    lookups.insert(position, Lookup::NotArchived);
                }
                Err(error) => {
                    tracing::warn!(%error, stream = %position.0, "journey: archive look-up failed");
                }
            }
        }
    };
    if tokio::time::timeout(LOOKUP_BUDGET, collect).await.is_err() {
        tracing::warn!("journey: archive look-ups took longer than {LOOKUP_BUDGET:?}; left out");
    }
    lookups
}

/// `after_publish_ms`: from the end of the publish of this message (this hop, or the journey's
/// producer hop at the same position) to the broker's timestamp; `before_consume_ms`: from the
/// broker's timestamp to the start of the consume (this hop, or for a producer the journey's
/// earliest consumer hop at the same position). Either is left out when no such hop exists.
fn time_in_broker(
    journey: &Journey,
    positions: &[Option<Position>],
    index: usize,
    hop: &Hop,
    timestamp_ms: i64,
) -> Map<String, Value> {
    let same_message = |action: &'static str| {
        journey
            .hops
            .iter()
            .zip(positions)
            .filter(move |(other, other_position)| {
                other.span.action == Some(action) && **other_position == positions[index]
            })
            .map(|(other, _)| other)
    };
    let broker_nanos = i128::from(timestamp_ms) * 1_000_000;
    let milliseconds = |nanos: i128| json!(nanos as f64 / NANOS_PER_MILLI);
    let mut broker_ms = Map::new();
    let producer = match hop.span.action {
        Some("produced") => Some(hop),
        _ => same_message("produced").next(),
    };
    if let Some(producer) = producer {
        let end =
            i128::from(producer.span.start_time_unix_nano) + i128::from(producer.span.duration_ns);
        broker_ms.insert("after_publish_ms".into(), milliseconds(broker_nanos - end));
    }
    let consumer = match hop.span.action {
        Some("consumed") => Some(hop),
        _ => same_message("consumed").min_by_key(|other| other.span.start_time_unix_nano),
    };
    if let Some(consumer) = consumer {
        let start = i128::from(consumer.span.start_time_unix_nano);
        broker_ms.insert(
            "before_consume_ms".into(),
            milliseconds(start - broker_nanos),
        );
    }
    broker_ms
}
