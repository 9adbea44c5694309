//! The Kafka ingest bus (docs/scaling.md): an ingest node consumes span batches from Kafka
//! topics as a consumer group (so each partition is one node's at a time), each message the
//! body `POST /api/v1/spans` takes (a JSON array or NDJSON of spans; `content-encoding: gzip`
//! as a message header when compressed). A message's offset is committed only once its spans
//! are durable in the WAL: a node killed before that leaves the message to the group, which
//! delivers it again (at least once). A message that can never be stored (not decodable, or
//! every span invalid) is counted, logged and committed past; a full store is waited out. A node
//! that finds partitions of other members with messages waiting and no committed progress for
//! three group sessions leaves the group and joins it again, so that they are assigned
//! (`muninn_kafka_rejoins_total`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use muninn_ingest::{decode_spans, decompress};
use muninn_store::StoreErrorKind;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::server::AppState;

/// Where an ingest node reads span batches from (`[kafka_ingest]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaIngestConfig {
    /// `HOST:PORT[,HOST:PORT…]`.
    pub bootstrap: String,
    pub topics: Vec<String>,
    /// The consumer group the ingest nodes share.
    pub group: String,
    /// More librdkafka consumer settings.
    pub settings: Vec<(String, String)>,
}

/// Logs each rebalance: which partitions this node was given or lost (what to read first when
/// a partition seems not to be consumed).
struct RebalanceLog;

impl ClientContext for RebalanceLog {}

impl ConsumerContext for RebalanceLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let names = |partitions: &TopicPartitionList| -> Vec<String> {
            partitions
                .elements()
                .iter()
                .map(|element| format!("{}/{}", element.topic(), element.partition()))
                .collect()
        };
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = ?names(partitions), "kafka ingest: partitions assigned")
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = ?names(partitions), "kafka ingest: partitions revoked")
            }
            Rebalance::Error(error) => tracing::warn!(%error, "kafka ingest: rebalance failed"),
        }
    }
}

/// The consumer group unless the configuration names one.
pub const DEFAULT_GROUP: &str = "muninn-ingest";

/// Consumes until `shutdown` resolves. When the group leaves partitions with messages waiting
/// unconsumed (`orphaned`), the node leaves the group and joins it again as a new member.
pub(crate) async fn run(
    state: Arc<AppState>,
    config: KafkaIngestConfig,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let stall_after = stall_after(&config.settings);
    loop {
        let Some(consumer) = subscribe(&config) else {
            return;
        };
        let consumer = Arc::new(consumer);
        let rejoin = consume(
            &state,
            &consumer,
            &config.topics,
            stall_after,
            &mut shutdown,
        )
        .await;
        // Dropping the consumer closes it: it leaves the group (a blocking call).
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        if !rejoin {
            return;
        }
        state.metrics.kafka_rejoins.inc();
    }
}

type GroupConsumer = StreamConsumer<RebalanceLog>;

/// A consumer in the group, subscribed to the topics; `None` (logged) when that fails.
fn subscribe(config: &KafkaIngestConfig) -> Option<GroupConsumer> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.bootstrap)
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("fetch.wait.max.ms", "10")
        // The sticky assignor puts each member's generation in its join metadata, so every
        // rejoin after a member's session expired starts a new generation, and the expired
        // member's partitions are given to the live ones. With the range assignor a rejoin's
        // metadata is unchanged, and tansu 0.6 then keeps the old assignment: a killed node's
        // partitions stayed with nobody (docs/scaling.md).
        .set("partition.assignment.strategy", "cooperative-sticky");
    for (name, value) in &config.settings {
        client.set(name, value);
    }
    let consumer: GroupConsumer = match client.create_with_context(RebalanceLog) {
        Ok(consumer) => consumer,
        Err(error) => {
            tracing::error!(%error, "kafka ingest: creating the consumer failed; nothing is consumed");
            return None;
        }
    };
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    if let Err(error) = consumer.subscribe(&topics) {
        tracing::error!(%error, ?topics, "kafka ingest: subscribing failed; nothing is consumed");
        return None;
    }
    tracing::info!(bootstrap = %config.bootstrap, group = %config.group, ?topics, "consuming span batches from kafka");
    Some(consumer)
}

/// Consumes until `shutdown` resolves or the store stops taking writes (`false`), or until
/// partitions are found orphaned (`true`: rejoin).
async fn consume(
    state: &AppState,
    consumer: &Arc<GroupConsumer>,
    topics: &[String],
    stall_after: Duration,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let mut stalls = Stalls::default();
    let mut check = tokio::time::interval(check_every(stall_after));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            _ = shutdown.as_mut() => return false,
            message = consumer.recv() => message,
            _ = check.tick() => {
                let (checked, orphaned) = {
                    let consumer = consumer.clone();
                    let topics = topics.to_vec();
                    let mut stalls = std::mem::take(&mut stalls);
                    let found = tokio::task::spawn_blocking(move || {
                        let orphaned = stalls.orphaned(&consumer, &topics, stall_after, Instant::now());
                        (stalls, orphaned)
                    })
                    .await;
                    match found {
                        Ok(found) => found,
                        Err(_) => (Stalls::default(), Ok(Vec::new())),
                    }
                };
                stalls = checked;
                match orphaned {
                    Ok(orphaned) if !orphaned.is_empty() => {
                        tracing::warn!(
                            partitions = ?orphaned,
                            after_s = stall_after.as_secs(),
                            "kafka ingest: partitions with messages waiting have not been consumed \
                             by any member of the group; leaving and joining it again so that \
                             they are assigned"
                        );
                        return true;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(%error, "kafka ingest: checking the group's partitions failed")
                    }
                }
                continue;
            }
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "kafka ingest: receiving failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let encoding = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|header| header.key.eq_ignore_ascii_case("content-encoding"))
                .and_then(|header| header.value)
                .and_then(|value| std::str::from_utf8(value).ok())
                .map(str::to_string)
        });
        let stored = store_message(
            state,
            message.payload().unwrap_or_default(),
            encoding.as_deref(),
        );
        tokio::select! {
            _ = shutdown.as_mut() => return false,
            stored = stored => if !stored { return false },
        }
        if let Err(error) = consumer.commit_message(&message, CommitMode::Async) {
            tracing::warn!(%error, "kafka ingest: committing an offset failed; the message may be delivered again");
        }
    }
}

/// How long a partition of another member may keep messages waiting with the group's committed
/// offset unmoved before this node rejoins the group: three group sessions
/// (`session.timeout.ms`, librdkafka's 45 s unless set). A member that died has lost its
/// partitions by then on a broker that follows the protocol; tansu 0.6.0 has been seen to leave
/// them with nobody after two members died in quick succession (docs/scaling.md).
fn stall_after(settings: &[(String, String)]) -> Duration {
    let session_ms = settings
        .iter()
        .find(|(name, _)| name == "session.timeout.ms")
        .and_then(|(_, value)| value.parse::<u64>().ok())
        .unwrap_or(45_000);
    Duration::from_millis(session_ms.saturating_mul(3).max(3_000))
}

/// How often the group's partitions are checked: a sixth of `stall_after`, 1–30 s.
fn check_every(stall_after: Duration) -> Duration {
    (stall_after / 6).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// The partitions not assigned to this node that have messages waiting, with the committed
/// offset they have had since when.
#[derive(Default)]
struct Stalls {
    since: HashMap<(String, i32), (i64, Instant)>,
}

impl Stalls {
    /// Asks the broker for every partition of `topics`, this node's assignment, the group's
    /// committed offsets and the partitions' ends; the partitions that are not this node's, have
    /// messages waiting and whose committed offset has not moved for `stall_after`.
    fn orphaned(
        &mut self,
        consumer: &GroupConsumer,
        topics: &[String],
        stall_after: Duration,
        now: Instant,
    ) -> KafkaResult<Vec<String>> {
        let timeout = Duration::from_secs(5);
        let mine = consumer.assignment()?;
        let mut all = TopicPartitionList::new();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
            for found in metadata.topics() {
                for partition in found.partitions() {
                    all.add_partition(found.name(), partition.id());
                }
            }
        }
        let committed = consumer.committed_offsets(all, timeout)?;
        let mut orphaned = Vec::new();
        for element in committed.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let key = (topic.to_string(), partition);
            if mine.find_partition(topic, partition).is_some() {
                self.since.remove(&key);
                continue;
            }
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
            let position = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            if position >= high {
                self.since.remove(&key);
                continue;
            }
            match self.since.get(&key) {
                Some(&(at, since)) if at == position => {
                    if now.duration_since(since) >= stall_after {
                        orphaned.push(format!("{topic}/{partition}"));
                    }
                }
                _ => {
                    self.since.insert(key, (position, now));
                }
            }
        }
        Ok(orphaned)
    }
}

/// Decodes and stores one message's spans, waiting while the store is full. `false` when the
/// store stopped taking writes (the message stays uncommitted).
async fn store_message(state: &AppState, payload: &[u8], encoding: Option<&str>) -> bool {
    let decoded = decompress(payload, encoding, state.max_body_bytes)
        .and_then(|body| decode_spans(&body, &state.limits, muninn_model::now_unix_nanos()));
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            state.metrics.count_rejection("kafka_message", "body");
            tracing::warn!(%error, "kafka ingest: a message is not a span batch; skipped");
            return true;
        }
    };
    for rejection in &decoded.rejected {
        state.metrics.count_rejection("span", &rejection.field);
    }
    if decoded.records.is_empty() {
        return true;
    }
    let n_spans = decoded.records.len() as u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        match state
            .store
            .append(decoded.records.clone(), Vec::new())
            .await
        {
            Ok(_) => {
                state.metrics.ingested_spans.inc_by(n_spans);
                return true;
            }
            // Memory full, or the WAL not writable (a full disk): both pass by themselves.
            Err(error)
                if matches!(
                    error.kind,
                    StoreErrorKind::Overloaded | StoreErrorKind::Unavailable
                ) =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                tracing::error!(%error, "kafka ingest: the store refused a batch; consuming stops");
                return false;
            }
        }
    }
}
