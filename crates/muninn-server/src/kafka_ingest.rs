//! The Kafka ingest bus (docs/scaling.md): an ingest node consumes span batches from Kafka
//! topics as a consumer group (so each partition is one node's at a time), each message the
//! body `POST /api/v1/spans` takes (a JSON array or NDJSON of spans; `content-encoding: gzip`
//! as a message header when compressed). A message's offset is committed only once its spans
//! are durable in the WAL: a node killed before that leaves the message to the group, which
//! delivers it again (at least once). A message that can never be stored (not decodable, or
//! every span invalid) is counted, logged and committed past; a full store is waited out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use muninn_ingest::{decode_spans, decompress};
use muninn_store::StoreErrorKind;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};

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

/// Consumes until `shutdown` resolves.
pub(crate) async fn run(
    state: Arc<AppState>,
    config: KafkaIngestConfig,
    shutdown: impl Future<Output = ()>,
) {
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
    let consumer: StreamConsumer<RebalanceLog> = match client.create_with_context(RebalanceLog) {
        Ok(consumer) => consumer,
        Err(error) => {
            tracing::error!(%error, "kafka ingest: creating the consumer failed; nothing is consumed");
            return;
        }
    };
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    if let Err(error) = consumer.subscribe(&topics) {
        tracing::error!(%error, ?topics, "kafka ingest: subscribing failed; nothing is consumed");
        return;
    }
    tracing::info!(bootstrap = %config.bootstrap, group = %config.group, ?topics, "consuming span batches from kafka");
    tokio::pin!(shutdown);
    loop {
        let message = tokio::select! {
            _ = &mut shutdown => return,
            message = consumer.recv() => message,
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
            &state,
            message.payload().unwrap_or_default(),
            encoding.as_deref(),
        );
        tokio::select! {
            _ = &mut shutdown => return,
            stored = stored => if !stored { return },
        }
        if let Err(error) = consumer.commit_message(&message, CommitMode::Async) {
            tracing::warn!(%error, "kafka ingest: committing an offset failed; the message may be delivered again");
        }
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
